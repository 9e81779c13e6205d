"""Log-linear latency histograms: the bucket scheme shared with the BPF C side, and percentiles.

The kernel counts each latency (nanoseconds) into a bucket; user space only ever sees bucket counts.
A bucket index is the value's power of two plus ``sub_bits`` bits below the leading one, the same
idea as HdrHistogram. With ``sub_bits=3`` (8 sub-buckets per octave) a bucket is at most 1/8 of its
lower bound wide, so a percentile reported at the bucket midpoint is within 6.25% of the true value.
Values below ``2**sub_bits`` (and below 16 ns for sub_bits=3) are counted exactly.

The C mirror of :func:`bucket_index` lives in ``tui/bpf/netlat.h``; a unit test checks they agree.
"""

from __future__ import annotations

import functools
import itertools
import operator
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any

#: Sub-bucket bits of the per-stage histograms (8 sub-buckets per power of two).
STAGE_SUB_BITS = 3
#: Sub-bucket bits of the per-socket histograms (4 per octave: p50/p99 within 12.5%).
SOCKET_SUB_BITS = 2
#: Largest power of two tracked; larger values land in the last bucket (2**39 ns is about 9 minutes).
MAX_LOG2 = 39


def bucket_count(sub_bits: int) -> int:
    """Number of buckets for a scheme: exact values below 2**sub_bits, then 2**sub_bits per octave."""
    return (MAX_LOG2 - sub_bits + 2) << sub_bits


def bucket_index(value_ns: int, sub_bits: int = STAGE_SUB_BITS) -> int:
    """Bucket of a non-negative value; the Python twin of ``netlat_bucket()`` in the BPF C."""
    if value_ns < (1 << sub_bits):
        return max(value_ns, 0)
    msb = value_ns.bit_length() - 1
    if msb > MAX_LOG2:
        return bucket_count(sub_bits) - 1
    sub = (value_ns >> (msb - sub_bits)) & ((1 << sub_bits) - 1)
    return ((msb - sub_bits + 1) << sub_bits) + sub


def bucket_bounds(index: int, sub_bits: int = STAGE_SUB_BITS) -> tuple[int, int]:
    """Half-open range ``[low, high)`` of values (ns) that fall into bucket ``index``."""
    if index < (1 << sub_bits):
        return index, index + 1
    group = index >> sub_bits
    sub = index & ((1 << sub_bits) - 1)
    low = ((1 << sub_bits) + sub) << (group - 1)
    return low, low + (1 << (group - 1))


def bucket_mid(index: int, sub_bits: int = STAGE_SUB_BITS) -> float:
    """Representative value of a bucket: exact for width-1 buckets, else the midpoint."""
    low, high = bucket_bounds(index, sub_bits)
    return float(low) if high - low == 1 else (low + high) / 2.0


class Histogram:
    """Immutable bucket counts of one latency distribution (values in nanoseconds).

    ``counts`` may be given as they are, or filled on first use: from the kernel's raw uint32
    array (:meth:`from_raw`) or from (index, count) pairs to add up (:meth:`from_pairs`). A poll of
    20,000 sockets builds 40,000 histograms and the screen reads a few hundred of them, so the
    others are never decoded; raw ones also compare as bytes. Not frozen by the language (a
    plain slots class, so that building one stays cheap) but never changed once built.
    """

    __slots__ = ("_counts", "_nonzero", "_pairs", "raw", "sub_bits")

    def __init__(self, counts: tuple[int, ...], sub_bits: int = STAGE_SUB_BITS) -> None:
        self._counts: tuple[int, ...] | None = counts
        self._pairs: array | tuple[Callable[..., array], Any] | None = None
        #: (indexes, counts) of the non-empty buckets, ascending, once asked for: percentiles,
        #: totals and the max walk these few instead of every bucket
        self._nonzero: tuple[list[int], list[int]] | None = None
        #: the kernel's bytes (native uint32 per bucket) when built by :meth:`from_raw`, else None
        self.raw: bytes | None = None
        self.sub_bits = sub_bits

    @classmethod
    def empty(cls, sub_bits: int = STAGE_SUB_BITS) -> Histogram:
        return _empty(cls, sub_bits)

    @classmethod
    def from_raw(cls, raw: bytes, sub_bits: int) -> Histogram:
        """Counts stored as native uint32, one per bucket (the BPF side's arrays): ``raw`` is
        exactly ``4 * bucket_count(sub_bits)`` bytes, decoded when first needed."""
        if len(raw) != 4 * bucket_count(sub_bits):
            raise ValueError(f"raw histogram of {len(raw)} bytes, expected {4 * bucket_count(sub_bits)}")
        hist = cls.__new__(cls)
        hist._counts, hist._pairs, hist._nonzero, hist.raw, hist.sub_bits = None, None, None, raw, sub_bits
        return hist

    @classmethod
    def from_pairs(cls, pairs: array | tuple[Callable[..., array], Any], sub_bits: int) -> Histogram:
        """The sum of flat (index, count, index, count, ...) pairs (indexes may repeat), added up
        when first needed; ``pairs`` may be a function and its arguments giving them then."""
        hist = cls.__new__(cls)
        hist._counts, hist._pairs, hist._nonzero, hist.raw, hist.sub_bits = None, pairs, None, None, sub_bits
        return hist

    @property
    def counts(self) -> tuple[int, ...]:
        """Count per bucket, ``bucket_count(sub_bits)`` of them."""
        counts = self._counts
        if counts is None:
            if self.raw is not None:
                counts = tuple(memoryview(self.raw).cast("I"))
            else:
                dense = [0] * bucket_count(self.sub_bits)
                for index, count in zip(*self.nonzero(), strict=True):
                    dense[index] = count
                counts = tuple(dense)
            self._counts = counts
        return counts

    def nonzero(self) -> tuple[list[int], list[int]]:
        """(indexes, counts) of the non-empty buckets, ascending."""
        nonzero = self._nonzero
        if nonzero is None:
            if self._counts is None and self.raw is None:
                flat = self._pairs if self._pairs is not None else ()
                if type(flat) is tuple and flat:  # (function, *its arguments): one object, not a partial
                    flat = flat[0](*flat[1:])
                summed: dict[int, int] = {}
                for index, count in zip(flat[::2], flat[1::2], strict=True):
                    summed[index] = summed.get(index, 0) + count
                indexes = sorted(i for i, c in summed.items() if c)
                # _pairs stays: a thread that read _nonzero before this one set it still needs them
                nonzero = (indexes, [summed[i] for i in indexes])
            else:
                src = self._counts if self._counts is not None else memoryview(self.raw).cast("I")
                nonzero = (list(itertools.compress(range(len(src)), src)), list(itertools.compress(src, src)))
            self._nonzero = nonzero
        return nonzero

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        if self.raw is not None and other.raw is not None:
            return self.sub_bits == other.sub_bits and self.raw == other.raw
        return self.sub_bits == other.sub_bits and self.counts == other.counts

    def __hash__(self) -> int:
        return hash((self.counts, self.sub_bits))

    def __repr__(self) -> str:
        return f"Histogram({self.sparse()!r}, sub_bits={self.sub_bits})"

    @classmethod
    def from_values(cls, values_ns: Iterable[int], sub_bits: int = STAGE_SUB_BITS) -> Histogram:
        counts = [0] * bucket_count(sub_bits)
        for value in values_ns:
            counts[bucket_index(int(value), sub_bits)] += 1
        return cls(tuple(counts), sub_bits)

    @classmethod
    def from_sparse(cls, buckets: dict[int, int], sub_bits: int = STAGE_SUB_BITS) -> Histogram:
        """Build from ``{bucket index: count}``; indexes out of range are a ValueError."""
        counts = [0] * bucket_count(sub_bits)
        for index, count in buckets.items():
            if not 0 <= index < len(counts) or count < 0:
                raise ValueError(f"bad histogram bucket {index}={count}")
            counts[index] = count
        return cls(tuple(counts), sub_bits)

    def sparse(self) -> dict[int, int]:
        """Non-zero buckets as ``{index: count}`` (the form used in JSON and replay files)."""
        return dict(zip(*self.nonzero(), strict=True))

    @property
    def total(self) -> int:
        return sum(self.nonzero()[1])

    def __bool__(self) -> bool:
        if self.raw is not None:
            return bool(self.raw.strip(b"\0"))
        if self._counts is not None:
            return any(self._counts)
        return bool(self.nonzero()[0])

    def minus(self, older: Histogram) -> Histogram:
        """Counts added since ``older`` (a counter reset shows as the newer counts alone)."""
        # Hot: a dashboard tick subtracts two per socket (20,000 sockets on a busy server), so
        # C-level map/min over the tuples, and one shared empty histogram when nothing moved.
        if older.sub_bits != self.sub_bits or len(older.counts) != len(self.counts):
            raise ValueError("histograms of different schemes")
        if older == self:
            return _empty(Histogram, self.sub_bits)
        diff = tuple(map(operator.sub, self.counts, older.counts))
        if min(diff) < 0:
            return self
        return Histogram(diff, self.sub_bits)

    def plus(self, other: Histogram) -> Histogram:
        if other.sub_bits != self.sub_bits:
            raise ValueError("histograms of different schemes")
        return Histogram(
            tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)), self.sub_bits
        )

    def percentile(self, q: float) -> float | None:
        """Value (ns) at quantile ``q`` in [0, 100], or None when empty."""
        total = self.total
        if total == 0:
            return None
        # Nearest-rank: the smallest bucket whose cumulative count reaches ceil(q% of total).
        rank = max(1, -(-round(q * total * 1000) // 100_000))
        seen = 0
        indexes, counts = self.nonzero()
        for index, count in zip(indexes, counts, strict=True):
            seen += count
            if seen >= rank:
                return bucket_mid(index, self.sub_bits)
        return bucket_mid(indexes[-1], self.sub_bits)  # pragma: no cover

    def percentiles(self, qs: Sequence[float] = (50, 90, 99, 99.9)) -> dict[float, float | None]:
        return {q: self.percentile(q) for q in qs}

    def max_bound(self) -> int | None:
        """Upper edge (ns, exclusive) of the highest non-empty bucket, or None when empty."""
        indexes = self.nonzero()[0]
        return bucket_bounds(indexes[-1], self.sub_bits)[1] - 1 if indexes else None

    def mean(self) -> float | None:
        total = self.total
        if total == 0:
            return None
        return sum(c * bucket_mid(i, self.sub_bits) for i, c in zip(*self.nonzero(), strict=True)) / total


@functools.cache
def _empty(cls: type[Histogram], sub_bits: int) -> Histogram:
    """The all-zero histogram of a scheme, shared (instances are immutable)."""
    return cls((0,) * bucket_count(sub_bits), sub_bits)
