"""argparse value types shared by netlat-tui's command lines: numbers parsed and range checked, CPUs,
IPv4 addresses and IPv4:PORT.

argparse turns the ArgumentTypeError raised here into one usage line and exit status 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)
Bound = int | float


def parse_number(
    text: str,
    convert: Callable[[str], N],
    *,
    expect: str,
    what: str = "",
    above: Bound | None = None,
    at_least: Bound | None = None,
    at_most: Bound | None = None,
) -> N:
    """``convert(text)`` within the bounds given; ArgumentTypeError naming ``what`` otherwise."""
    prefix = f"{what}: " if what else ""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{prefix}expected {expect}, got {text!r}") from None
    bounds = []
    if at_least is not None and at_most is not None:
        bounds.append(f"{at_least}..{at_most}")
    else:
        if above is not None:
            bounds.append(f"above {above}")
        if at_least is not None:
            bounds.append(f"at least {at_least}")
        if at_most is not None:
            bounds.append(f"at most {at_most}")
    if (
        (above is not None and not value > above)
        or (at_least is not None and value < at_least)
        or (at_most is not None and value > at_most)
    ):
        subject = f"{what} must" if what else "must"
        raise argparse.ArgumentTypeError(f"{subject} be {' and '.join(bounds)}, got {text}")
    return value


def number(convert: Callable[[str], N], *, expect: str, what: str = "", above: Bound | None = None,
           at_least: Bound | None = None, at_most: Bound | None = None) -> Callable[[str], N]:
    """An argparse ``type=`` for :func:`parse_number` with fixed bounds."""

    def parse(text: str) -> N:
        return parse_number(text, convert, expect=expect, what=what, above=above,
                            at_least=at_least, at_most=at_most)

    return parse


def listen_address(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` (IPv6 as ``[ADDR]:PORT``) with an IP address and a port 0..65535 (0: any free one).

    Only IP literals: a name would be resolved, maybe to an address the user did not mean to open."""
    expect = f"expected ADDR:PORT such as 127.0.0.1:9465 or [::1]:9465, got {text!r}"
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(expect)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            raise argparse.ArgumentTypeError(expect)
    elif ":" in host:
        raise argparse.ArgumentTypeError(f"an IPv6 address goes in brackets: [{host}]:{port_text}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{host!r} is not an IP address ({expect})") from None
    port = parse_number(port_text, int, expect="a port number", what="port", at_least=0, at_most=65535)
    return str(address), port


def whole(what: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type=`` for a whole number in ``low..high``, called ``what`` in its error."""
    return number(int, expect="a whole number", what=what, at_least=low, at_most=high)


def cpu(text: str) -> int:
    """A CPU of this machine (by count, not this process's affinity: a caller pinned elsewhere may
    still place its children on any CPU)."""
    value = parse_number(text, int, expect="a whole number", what="CPU", at_least=0, at_most=4095)
    if value >= (os.cpu_count() or 1):
        raise argparse.ArgumentTypeError(f"CPU {value} is not available here")
    return value


def ipv4(text: str) -> str:
    """An IPv4 address, normalised."""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an IPv4 address, got {text!r}") from None


def ipv4_port(text: str) -> tuple[str, int]:
    """``IPv4:PORT`` as (address, port)."""
    host, sep, port = text.rpartition(":")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected IPv4:PORT, got {text!r}") from None
    if not sep:
        raise argparse.ArgumentTypeError(f"expected IPv4:PORT, got {text!r}")
    return host, whole("port", 1, 65535)(port)


#: what ``--metrics-by`` may label by
METRICS_LABELS = ("comm", "cgroup")


def metrics_labels(text: str) -> tuple[str, ...]:
    """``comm``, ``cgroup`` or both, comma-separated: the labels the exporter adds."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",")))
    wrong = [n for n in names if n not in METRICS_LABELS]
    if wrong or not names:
        raise argparse.ArgumentTypeError(f"expected comm, cgroup or comm,cgroup, got {text!r}")
    return names
