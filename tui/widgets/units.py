"""Human units for latencies, rates and sizes (pure; shared by every widget)."""

from __future__ import annotations

_UNITS = (("ns", 1.0), ("us", 1e3), ("ms", 1e6), ("s", 1e9))


def unit_for(ns: float) -> tuple[str, float]:
    """The unit (name, ns per unit) in which ``ns`` reads as 1-999."""
    name, scale = _UNITS[0]
    for unit, size in _UNITS:
        if abs(ns) >= size:
            name, scale = unit, size
    return name, scale


def fmt_ns(ns: float | None, unit: tuple[str, float] | None = None) -> str:
    """``12.3us`` (3 significant digits) or ``-`` for no value; ``unit`` forces a unit."""
    if ns is None:
        return "-"
    name, scale = unit or unit_for(ns)
    value = ns / scale
    if name == "ns":
        return f"{value:.0f}ns"
    if value >= 100:
        return f"{value:.0f}{name}"
    if value >= 10:
        return f"{value:.1f}{name}"
    return f"{value:.2f}{name}"


def fmt_count(value: float) -> str:
    """``950``, ``12.3k``, ``4.5M``."""
    for suffix, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f}{suffix}"
    return f"{value:.0f}"


def fmt_bytes(value: float) -> str:
    """``512B``, ``1.5KiB``, ``3.0MiB``."""
    for suffix, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(value) >= size:
            return f"{value / size:.1f}{suffix}"
    return f"{value:.0f}B"


def capped(ns: float | None, max_ns: float = 0) -> float | None:
    """A bucket-midpoint percentile, never above the exact maximum when that is known (``max_ns``)."""
    return min(ns, max_ns) if ns is not None and max_ns else ns
