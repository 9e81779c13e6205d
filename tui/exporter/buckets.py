"""In-kernel log-linear histograms as Prometheus cumulative ``le`` buckets, with no re-binning error.

A kernel bucket holds integer nanoseconds in a half-open range ``[low, high)`` (tui.model.histogram).
Prometheus' bucket ``le=x`` counts observations ``<= x``. The two meet exactly only at the kernel's
own bucket edges: for an edge ``E`` (the ``low`` of some kernel bucket) the values below ``E`` are
exactly the buckets before it, and since values are whole nanoseconds, ``v < E`` is ``v <= E - 1``.
So an exported bucket is ``le = (E - 1) ns``, expressed in seconds, and its count is the exact sum of
the kernel buckets below ``E``. (``le = E`` would be off by the values equal to ``E``, which share a
kernel bucket with larger ones; any edge that is not a kernel edge would need a guess at how a
kernel bucket's counts spread.) Every power of two from 8 ns up is a kernel edge, as is every
1/2**sub_bits step of an octave, so the edges offered here are powers of two, optionally split
into 2, 4 or 8 steps per octave (``per_octave``); a step finer than the histogram's own is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from tui.model.histogram import MAX_LOG2, Histogram, bucket_bounds, bucket_index, bucket_mid

#: Default exported range: 2**8 ns (256 ns: loopback's device and copy stages take well under a
#: microsecond) to 2**34 ns (17.2 s), one edge per octave: 27 finite buckets and +Inf.
DEFAULT_MIN_LOG2 = 8
DEFAULT_MAX_LOG2 = 34
PER_OCTAVE_CHOICES = (1, 2, 4, 8)
NS_PER_S = 1_000_000_000


def edges_ns(per_octave: int = 1, min_log2: int = DEFAULT_MIN_LOG2,
             max_log2: int = DEFAULT_MAX_LOG2) -> tuple[int, ...]:
    """Kernel bucket edges (ns) from ``2**min_log2`` to ``2**max_log2``, ``per_octave`` per octave."""
    if per_octave not in PER_OCTAVE_CHOICES:
        raise ValueError(f"edges per octave must be one of {PER_OCTAVE_CHOICES}, got {per_octave}")
    if not 3 <= min_log2 <= max_log2 <= MAX_LOG2:
        raise ValueError(f"bad edge range 2**{min_log2}..2**{max_log2}")
    out = []
    for m in range(min_log2, max_log2):
        step = (1 << m) // per_octave
        out.extend((1 << m) + j * step for j in range(per_octave))
    out.append(1 << max_log2)
    return tuple(out)


def is_kernel_edge(edge_ns: int, sub_bits: int) -> bool:
    """Whether ``edge_ns`` starts a bucket of the scheme (so counts below it are exact)."""
    return edge_ns > 0 and bucket_bounds(bucket_index(edge_ns, sub_bits), sub_bits)[0] == edge_ns


def le_seconds(edge_ns: int) -> float:
    """The ``le`` bound (seconds) that holds exactly the whole-ns values below ``edge_ns``."""
    return (edge_ns - 1) / NS_PER_S


def cumulative_buckets(hist: Histogram, edges: Sequence[int]) -> list[tuple[float, int]]:
    """``[(le seconds, count of values <= le), ..., (+inf, total)]`` for ascending kernel ``edges``.

    Exact: each count is a sum of whole kernel buckets. An edge that is not a kernel bucket edge
    of ``hist``'s scheme is a ValueError (it could only be estimated)."""
    out: list[tuple[float, int]] = []
    seen, index = 0, 0
    for edge in edges:
        if not is_kernel_edge(edge, hist.sub_bits):
            raise ValueError(f"{edge} ns is not a bucket edge of the {hist.sub_bits}-bit histogram")
        stop = bucket_index(edge, hist.sub_bits)
        if stop < index:
            raise ValueError("bucket edges must ascend")
        seen += sum(hist.counts[index:stop])
        index = stop
        out.append((le_seconds(edge), seen))
    out.append((float("inf"), hist.total))
    return out


def estimated_sum_seconds(hist: Histogram) -> float:
    """Sum of the observations (s) taken at their buckets' midpoints: the kernel counts buckets, not
    sums. Exact below 2**sub_bits ns; else each value is within half its bucket's width (at most
    1/16 of it with 3 sub-bucket bits, 1/8 with 2), so the sum is within 6.25% (12.5%)."""
    return sum(c * bucket_mid(i, hist.sub_bits) for i, c in enumerate(hist.counts) if c) / NS_PER_S
