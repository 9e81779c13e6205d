"""Time on screen: a bounded ring of per-interval differences of cumulative snapshots.

The kernel's histograms stay cumulative. A :class:`Timeline` is fed every cumulative Snapshot as it
arrives (:meth:`Timeline.add`) and keeps what happened between two consecutive ones as an
:class:`Interval` (HdrHistogram's interval-log idea), so any window is a sum of intervals:

- ``window(10)``: the newest intervals covering 10 seconds (``window(1)``, ``window(60)`` likewise),
- ``window_before(10)``: the 10 seconds before those (the verdict's "moved" rule compares the two),
- ``window(None)``: since start, or since :meth:`Timeline.clear`.

The same intervals feed the heatmap (:mod:`tui.model.heatmap`, via :meth:`Timeline.series`), the
layer bars' sparklines (:meth:`Timeline.trends`) and the JSON ``timeline``.

Memory is bounded: at most ``keep_s / interval_s`` intervals are kept (10 minutes at 1 s by default),
each compact (a stage keeps its non-empty buckets and its percentiles, not a full histogram); the
per-socket deltas, the bulky part, are kept only for the newest ``socket_keep_s`` (the longest
rolling window), so a wider window sums the stages exactly but lists only those sockets.

A source restart (time going backwards, or a path's packet counter dropping) starts a new segment:
the interval after it holds the new source's figures alone, and "since start/clear" carries what
the old segment counted. Nothing here imports textual or bcc.
"""

from __future__ import annotations

import math
import operator
import struct
from array import array
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate, compress

from tui.model.histogram import SOCKET_SUB_BITS, STAGE_SUB_BITS, Histogram, bucket_count
from tui.model.snapshot import PathStats, Snapshot, SocketStats, StageStats

#: Seconds of intervals a Timeline keeps by default (the heatmap's and sparklines' history).
KEEP_S = 600.0
#: Seconds of per-socket deltas kept by default: the longest rolling window of the dashboard.
SOCKET_KEEP_S = 60.0
#: The rolling windows the dashboard offers (seconds); None is "since start / clear".
WINDOWS: tuple[float | None, ...] = (1.0, 10.0, 60.0, None)
#: Empty per-socket histogram shared by every compacted socket (its buckets are packed apart).
_EMPTY_SOCKET_HIST = Histogram.empty(SOCKET_SUB_BITS)
#: The dashboard's default window.
DEFAULT_WINDOW_S = 10.0


def window_name(seconds: float | None, cleared: bool = False) -> str:
    """``1s``, ``10s``, ``60s``; ``since start`` or ``since clear`` for None."""
    if seconds is None:
        return "since clear" if cleared else "since start"
    return f"{seconds:g}s"


def pack(hist: Histogram) -> bytes:
    """A histogram's non-empty buckets as (index, count) pairs of native uint64."""
    return _pack_counts(hist.counts)


def _pack_counts(counts: Sequence[int]) -> bytes:
    # Hot (two per moved socket per tick): every step at C level, no per-bucket Python loop.
    index = list(compress(range(len(counts)), counts))
    if not index:
        return b""
    flat = [0] * (2 * len(index))
    flat[::2] = index
    flat[1::2] = compress(counts, counts)
    return array("Q", flat).tobytes()


def unpack(packed: bytes) -> tuple[tuple[int, int], ...]:
    """The (index, count) pairs :func:`pack` wrote."""
    flat = array("Q", packed)
    return tuple(zip(flat[::2], flat[1::2], strict=True))


def _traffic(s: SocketStats) -> bool:
    """Whether a socket delta moved anything (bytes too: a TCP read can move bytes whose segments
    were counted at an earlier call)."""
    return bool(s.tx_packets or s.rx_packets or s.tx_bytes or s.rx_bytes)


#: What must not change for one interval's socket identity to serve the next (SocketStats but
#: its counts and histograms).
_IDENTITY = operator.attrgetter("pid", "comm", "protocol", "family", "laddr", "lport", "raddr", "rport",
                                "cgroup_id", "cgroup", "netns", "netns_name", "peers", "peer_count",
                                "peer_drops")
#: Numbers per socket in SocketColumns.counts: the interval's tx packets, tx bytes, rx packets,
#: rx bytes, the socket's max, then its cumulative tx packets, tx bytes, rx packets, rx bytes.
_WIDTH = 9
_LOW32 = (1 << 32) - 1


class SocketColumns:
    """The sockets that moved in one interval, column by column.

    One object per socket and interval, kept for the 60 s of socket history, was millions of
    objects at 20,000 busy sockets, and every full garbage collection walked them all (a few
    hundred ms each, every few ticks). Here an interval is a handful of objects: the keys, each
    socket's identity (a SocketStats with no counts, shared by the intervals while it does not
    change), its counts in one array, its packed histogram deltas in one bytes object each way.
    The counts keep the cumulative figures beside the deltas, so a window's counts are one
    subtraction per socket (newest cumulative less the oldest's start) rather than a sum over its
    intervals; ``breaks`` are the sockets whose figures restarted here (new rows, rows whose
    counters went back, intervals of differences), where that shortcut does not hold.
    """

    __slots__ = ("breaks", "counts", "ids", "keys", "recv", "recv_at", "send", "send_at")

    def __init__(self, ids: list[SocketStats], counts: list[int], breaks: Iterable[int],
                 send: list[bytes], recv: list[bytes]) -> None:
        self.ids = tuple(ids)
        self.keys = tuple(s.key for s in self.ids)
        self.counts = array("q", counts)
        self.breaks = frozenset(breaks)
        self.send, self.send_at = b"".join(send), array("I", accumulate(map(len, send), initial=0))
        self.recv, self.recv_at = b"".join(recv), array("I", accumulate(map(len, recv), initial=0))

    def __len__(self) -> int:
        return len(self.keys)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def packed(self, i: int, send: bool) -> bytes:
        """Socket ``i``'s histogram delta as :func:`pack` wrote it."""
        if send:
            return self.send[self.send_at[i]:self.send_at[i + 1]]
        return self.recv[self.recv_at[i]:self.recv_at[i + 1]]

    @classmethod
    def of(cls, sockets: Iterable[SocketStats]) -> SocketColumns:
        """Socket differences as they are (those that moved), each a restart of its figures."""
        ids, counts, send, recv = [], [], [], []
        empty = _EMPTY_SOCKET_HIST
        for s in sockets:
            if _traffic(s):
                ids.append(s.with_traffic(0, 0, 0, 0, empty, empty, 0))
                counts += (s.tx_packets, s.tx_bytes, s.rx_packets, s.rx_bytes, s.max_ns,
                           s.tx_packets, s.tx_bytes, s.rx_packets, s.rx_bytes)
                send.append(pack(s.send_hist))
                recv.append(pack(s.recv_hist))
        return cls(ids, counts, (s.key for s in ids), send, recv)


_NO_SOCKETS = SocketColumns([], [], (), [], [])


class _Moved:
    """Builds an interval's SocketColumns from two cumulative snapshots' sockets (Timeline.add)."""

    def __init__(self, ids: dict[int, tuple[tuple[object, ...], SocketStats]]) -> None:
        #: key -> (identity fields, identity SocketStats) of the previous interval
        self.old_ids = ids
        self.new_ids: dict[int, tuple[tuple[object, ...], SocketStats]] = {}

    def columns(self, sockets: Iterable[SocketStats], before: Mapping[int, SocketStats]) -> SocketColumns:
        ids, counts, breaks, send, recv = [], [], [], [], []
        old_ids, new_ids, empty = self.old_ids, self.new_ids, _EMPTY_SOCKET_HIST
        for new in sockets:
            key = new.key
            old = before.get(key)
            if old is new:  # a source reuses an unchanged row's SocketStats
                if (kept := old_ids.get(key)) is not None:
                    new_ids[key] = kept
                continue
            tx, txb, rx, rxb = new.tx_packets, new.tx_bytes, new.rx_packets, new.rx_bytes
            if old is None or old.tx_packets > tx or old.rx_packets > rx:
                # new, or its row restarted (as SocketStats.since): the whole row is the delta
                if not (tx or rx or txb or rxb):
                    continue
                counts += (tx, txb, rx, rxb, new.max_ns, tx, txb, rx, rxb)
                breaks.append(key)
                send.append(pack(new.send_hist))
                recv.append(pack(new.recv_hist))
            else:
                d = (tx - old.tx_packets, txb - old.tx_bytes, rx - old.rx_packets, rxb - old.rx_bytes)
                if not any(d):
                    continue
                counts += (*d, new.max_ns, tx, txb, rx, rxb)
                if new.max_ns < old.max_ns:
                    breaks.append(key)  # not the same row after all: a window must not span it
                send.append(_pack_since(new.send_hist, old.send_hist))
                recv.append(_pack_since(new.recv_hist, old.recv_hist))
            fields = _IDENTITY(new)
            kept = old_ids.get(key)
            if kept is None or kept[0] != fields:
                kept = (fields, new.with_traffic(0, 0, 0, 0, empty, empty, 0))
            new_ids[key] = kept
            ids.append(kept[1])
        return SocketColumns(ids, counts, breaks, send, recv)


def _pack_since(new: Histogram, old: Histogram) -> bytes:
    """:func:`pack` of ``new.minus(old)``."""
    if new is old:  # the live source reuses a histogram that did not change
        return b""
    if new.raw is not None and old.raw is not None and new.sub_bits == old.sub_bits:
        return raw_delta(new.raw, old.raw)
    if new.counts == old.counts:
        return b""
    return pack(new.minus(old))


_U32 = struct.Struct("=I")


def raw_delta(new: bytes, old: bytes) -> bytes:
    """:func:`pack` of ``new - old``, two equally long arrays of native uint32 counts (a socket's
    kernel histogram at two ticks), or of ``new`` alone when a count went down (as
    :meth:`Histogram.minus`). Between two ticks a moved socket's histogram changes in a bucket or
    two of 156: their XOR as one integer finds those buckets at C speed, with no per-bucket loop."""
    if new == old:
        return b""
    diff = int.from_bytes(new, "little") ^ int.from_bytes(old, "little")
    flat: list[int] = []
    base = 0  # bucket of diff's lowest 32 bits
    while diff:
        lane = base + (((diff & -diff).bit_length() - 1) >> 5)  # the next changed bucket
        a, b = _U32.unpack_from(new, 4 * lane)[0], _U32.unpack_from(old, 4 * lane)[0]
        if a < b:
            return _pack_counts(memoryview(new).cast("I"))
        flat += (lane, a - b)
        diff >>= 32 * (lane + 1 - base)
        base = lane + 1
    return array("Q", flat).tobytes()


@dataclass(frozen=True, slots=True)
class StagePoint:
    """One stage over one interval: packets, percentiles (ns, capped at the exact max when known)
    and the non-empty buckets, compactly."""

    count: int
    p50_ns: float | None
    p90_ns: float | None
    p99_ns: float | None
    max_ns: int  #: exact largest value when it was set in this interval, else 0 (unknown)
    #: the non-empty buckets as (index, count) pairs of native uint64 (a tenth of the memory of
    #: Python tuples: 600 intervals of 13 stages are a few MB); read them through ``buckets``
    packed: bytes = b""
    sub_bits: int = STAGE_SUB_BITS

    @property
    def buckets(self) -> tuple[tuple[int, int], ...]:
        """(bucket index, count) of the non-empty buckets, ascending."""
        return unpack(self.packed)

    @classmethod
    def of(cls, stats: StageStats) -> StagePoint:
        return cls.of_hist(stats.hist, stats.max_ns)

    @classmethod
    def of_hist(cls, hist: Histogram, top: int = 0) -> StagePoint:
        def at(q: float) -> float | None:
            ns = hist.percentile(q)
            return min(ns, top) if ns is not None and top else ns

        return cls(
            count=hist.total, p50_ns=at(50), p90_ns=at(90), p99_ns=at(99), max_ns=top,
            packed=pack(hist),
            sub_bits=hist.sub_bits,
        )

    def hist(self) -> Histogram:
        return Histogram.from_sparse(dict(self.buckets), self.sub_bits)

    def percentile(self, q: float) -> float | None:
        """p50, p90 or p99 as kept; any other quantile from the buckets."""
        kept = {50: self.p50_ns, 90: self.p90_ns, 99: self.p99_ns}
        if q in kept:
            return kept[q]
        ns = self.hist().percentile(q)
        return min(ns, self.max_ns) if ns is not None and self.max_ns else ns


@dataclass(frozen=True, slots=True)
class Interval:
    """What was counted between two consecutive snapshots (timeline seconds ``start_s``-``end_s``)."""

    start_s: float  #: source seconds, kept increasing across source restarts
    end_s: float
    points: Mapping[str, Mapping[str, StagePoint]]  #: path -> stage/total key -> its figures
    counters: Mapping[str, Mapping[str, int]]  #: path -> counter -> count in the interval
    #: sockets with traffic in the interval (deltas); empty once older than the socket horizon
    sockets: SocketColumns = _NO_SOCKETS
    events_total: int = 0
    events_lost: int = 0

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def point(self, path: str, key: str) -> StagePoint | None:
        return self.points.get(path, {}).get(key)

    @classmethod
    def of(cls, delta: Snapshot, start_s: float, end_s: float,
           sockets: SocketColumns | None = None) -> Interval:
        """Compact a difference of snapshots (``newer.since(older)``) into an interval; ``sockets``
        when the caller compacted them already (then ``delta`` needs none)."""
        return cls(
            start_s=start_s,
            end_s=end_s,
            points={
                name: {s.spec.key: StagePoint.of(s) for s in stats.all()}
                for name, stats in delta.paths.items()
            },
            counters={name: dict(stats.counters) for name, stats in delta.paths.items()},
            sockets=SocketColumns.of(delta.sockets) if sockets is None else sockets,
            events_total=delta.events_total,
            events_lost=delta.events_lost,
        )


class Timeline:
    """Per-interval differences of the cumulative snapshots it is fed, and windows over them.

    Typical use (the app, per snapshot): ``timeline.add(snap)``, then ``timeline.window(10)`` for
    every figure, ``timeline.series(path, key)`` for the heatmap and ``timeline.trends(path)`` for
    the sparklines. ``clear()`` for the ``c`` key; ``copy()`` freezes what a paused screen shows.
    """

    def __init__(
        self, interval_s: float = 1.0, keep_s: float = KEEP_S, socket_keep_s: float = SOCKET_KEEP_S
    ) -> None:
        if not interval_s > 0:
            raise ValueError("interval_s must be above 0")
        self.interval_s = interval_s
        #: intervals kept at most (the oldest falls off first)
        self.max_intervals = max(1, math.ceil(keep_s / interval_s))
        #: newest intervals that keep their per-socket deltas
        self.socket_intervals = max(1, math.ceil(socket_keep_s / interval_s))
        self._ring: deque[Interval] = deque(maxlen=self.max_intervals)
        self.latest: Snapshot | None = None  #: the newest cumulative snapshot fed
        self._offset = 0.0  # timeline seconds = source seconds + offset (restarts keep time going)
        self._base: Snapshot | None = None  # cumulative snapshot "since" counts from (None: source start)
        self._carry: Interval | None = None  # since clear, counted by sources before a restart
        self._cleared_at = 0.0  # timeline seconds of the clear (or 0: start)
        self._memo: dict[tuple[object, ...], Snapshot | None] = {}  # windows asked since the last add
        #: the latest snapshot's sockets by key, and their identities as the last interval kept them
        self._by_key: dict[int, SocketStats] = {}
        self._by_key_of: Snapshot | None = None
        self._ids: dict[int, tuple[tuple[object, ...], SocketStats]] = {}

    # ------------------------------------------------------------------------------- feeding

    def add(self, snap: Snapshot) -> Interval | None:
        """Take the next cumulative snapshot; returns the interval it closed (also kept), or None
        when ``snap`` is the latest one again (same seq and time: nothing new to count)."""
        prev = self.latest
        if prev is not None and (snap.seq, snap.time_s) == (prev.seq, prev.time_s):
            return None
        if prev is not None and _restarted(prev, snap):
            # Keep what the old source counted since clear, then count the new one from its start.
            carry = [self._since_clear_segment()]
            self._carry = _merge(carry if self._carry is None else [self._carry, *carry])
            self._offset = self._now(prev)
            self._base = prev = None
        # The first snapshot of a source run counts from that run's start (its own time zero).
        start = self._now(prev) if prev is not None else self._offset
        moved = _Moved(self._ids if prev is not None else {})
        before = self._by_key if prev is not None and self._by_key_of is prev else (
            {s.key: s for s in prev.sockets} if prev is not None else {})
        columns = moved.columns(snap.sockets, before)
        delta = snap.since(prev, sockets=False) if prev is not None else snap
        interval = Interval.of(delta, start, snap.time_s + self._offset, columns)
        self._ids = moved.new_ids
        self._by_key, self._by_key_of = {s.key: s for s in snap.sockets}, snap
        self._ring.append(interval)
        self._memo.clear()
        if len(self._ring) > self.socket_intervals:
            old = len(self._ring) - self.socket_intervals - 1
            if self._ring[old].sockets:
                self._ring[old] = replace(self._ring[old], sockets=_NO_SOCKETS)
        self.latest = snap
        return interval

    def clear(self) -> None:
        """Forget every interval; windows count from the latest snapshot on (the ``c`` key)."""
        self._ring.clear()
        self._memo.clear()
        self._carry = None
        self._base = self.latest
        self._cleared_at = self._now(self.latest) if self.latest is not None else self._offset

    def copy(self) -> Timeline:
        """An independent copy (intervals are immutable and shared): what a paused screen keeps."""
        other = Timeline.__new__(Timeline)
        for name in ("interval_s", "max_intervals", "socket_intervals", "latest", "_offset", "_base",
                     "_carry", "_cleared_at", "_by_key", "_by_key_of", "_ids"):
            setattr(other, name, getattr(self, name))
        other._ring = deque(self._ring, maxlen=self.max_intervals)
        other._memo = {}
        return other

    # ------------------------------------------------------------------------------- reading

    @property
    def cleared(self) -> bool:
        """Whether "since start" now means since a clear."""
        return self._base is not None or self._cleared_at > 0

    def intervals(self, last: int | None = None) -> tuple[Interval, ...]:
        """The kept intervals, oldest first (the newest ``last`` when given)."""
        ring = tuple(self._ring)
        return ring if last is None else ring[max(len(ring) - last, 0):]

    def window(self, seconds: float | None, sockets: bool = True) -> Snapshot | None:
        """Figures of the newest intervals covering ``seconds`` (None: since start or clear).

        The result is a Snapshot like ``latest.since(older)``: the plan, meta, seq, time and sampled
        events of the latest snapshot, with the paths, sockets (those with traffic; none with
        ``sockets=False``, which is cheaper) and event counts summed over the window. None before
        the first snapshot. Asking again before the next ``add`` returns the same object.
        """
        if self.latest is None:
            return None
        memo = ("window", seconds, sockets)
        if memo not in self._memo:
            if seconds is None:
                parts = [self._since_clear_segment()]
                parts = [self._carry, *parts] if self._carry is not None else parts
            else:
                parts = self._select(seconds, 0)
            self._memo[memo] = _sum(self.latest, parts, sockets)
        return self._memo[memo]

    def window_before(self, seconds: float, sockets: bool = True) -> Snapshot | None:
        """The same length of time just before ``window(seconds)``; None when nothing is kept there."""
        if self.latest is None:
            return None
        memo = ("before", seconds, sockets)
        if memo not in self._memo:
            chosen = self._select(seconds, 0)
            before = self._select(seconds, len(chosen))
            self._memo[memo] = _sum(self.latest, before, sockets) if before else None
        return self._memo[memo]

    def span(self, seconds: float | None) -> float:
        """Seconds ``window(seconds)`` really covers (whole intervals; less early on)."""
        if self.latest is None:
            return 0.0
        if seconds is None:
            return self._now(self.latest) - self._cleared_at
        chosen = self._select(seconds, 0)
        return chosen[-1].end_s - chosen[0].start_s if chosen else 0.0

    def starts(self, last: int | None = None) -> tuple[float, ...]:
        """Start (timeline seconds) of each kept interval, oldest first: the heatmap's time axis."""
        return tuple(i.start_s for i in self.intervals(last))

    def series(self, path: str, key: str, last: int | None = None) -> tuple[StagePoint | None, ...]:
        """One stage's figures per interval, oldest first (None: the stage was not in that interval)."""
        return tuple(i.point(path, key) for i in self.intervals(last))

    def trend(self, path: str, key: str, q: float = 99, last: int | None = None) -> tuple[float | None, ...]:
        """A stage's ``q`` percentile (50, 90 or 99) per interval in ns, None where it had no packets."""
        return tuple(p.percentile(q) if p is not None and p.count else None
                     for p in self.series(path, key, last))

    def trends(
        self, path: str, q: float = 99, last: int | None = None
    ) -> dict[str, tuple[float | None, ...]]:
        """:meth:`trend` of every stage and total of ``path`` in the latest plan, keyed by stage key."""
        if self.latest is None:
            return {}
        return {spec.key: self.trend(path, spec.key, q, last) for spec in self.latest.plan.specs(path)}

    # ------------------------------------------------------------------------------- internals

    def _now(self, snap: Snapshot) -> float:
        return snap.time_s + self._offset

    def _since_clear_segment(self) -> Interval:
        """The current source's figures since clear (or its start), as one interval."""
        assert self.latest is not None
        base = self._base
        delta = self.latest.since(base) if base is not None else self.latest
        start = self._offset + (base.time_s if base is not None else 0.0)
        return Interval.of(delta, start, self._now(self.latest))

    def _select(self, seconds: float, skip: int) -> list[Interval]:
        """The newest intervals (leaving out the newest ``skip``) whose span is closest to
        ``seconds``: the fewest that reach it, or one fewer when that is nearer (ties: more)."""
        ring = list(self._ring)[: len(self._ring) - skip]
        if not ring:
            return []
        end = ring[-1].end_s
        for k in range(1, len(ring) + 1):
            span = end - ring[-k].start_s
            if span >= seconds:
                shorter = end - ring[-k + 1].start_s if k > 1 else None
                if shorter is not None and seconds - shorter < span - seconds:
                    k -= 1
                return ring[-k:]
        return ring


def _restarted(prev: Snapshot, snap: Snapshot) -> bool:
    """A new source run: time went backwards or a path's packet counter dropped."""
    if snap.time_s < prev.time_s:
        return True
    for name, stats in snap.paths.items():
        old = prev.paths.get(name)
        if old is not None and stats.counters.get("packets", 0) < old.counters.get("packets", 0):
            return True
    return False


def _merge(parts: Sequence[Interval]) -> Interval:
    """Several intervals as one (used to carry a finished segment across a restart)."""
    points: dict[str, dict[str, list[StagePoint]]] = {}
    for part in parts:
        for path, stages in part.points.items():
            for key, point in stages.items():
                points.setdefault(path, {}).setdefault(key, []).append(point)
    return Interval(
        start_s=parts[0].start_s,
        end_s=parts[-1].end_s,
        points={path: {key: _point_sum(ps) for key, ps in stages.items()}
                for path, stages in points.items()},
        counters=_counter_sum(parts),
        sockets=SocketColumns.of(_socket_sum(parts)),
        events_total=sum(p.events_total for p in parts),
        events_lost=sum(p.events_lost for p in parts),
    )


def _stage_sum(points: Iterable[StagePoint]) -> tuple[Histogram, int]:
    """Summed buckets and the exact max (0: unknown) of one stage over several intervals."""
    points = list(points)
    sub_bits = points[0].sub_bits if points else STAGE_SUB_BITS
    counts = [0] * bucket_count(sub_bits)
    top = 0
    for point in points:
        for index, count in point.buckets:
            counts[index] += count
        # An interval knows its max only when it raised the cumulative max; the newest such one
        # bounds every value of the window, so the largest known max is the window's exact max.
        top = max(top, point.max_ns)
    return Histogram(tuple(counts), sub_bits), top


def _point_sum(points: Iterable[StagePoint]) -> StagePoint:
    hist, top = _stage_sum(points)
    return StagePoint.of_hist(hist, top)


def _counter_sum(parts: Iterable[Interval]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for part in parts:
        for path, counters in part.counters.items():
            mine = out.setdefault(path, {})
            for name, value in counters.items():
                mine[name] = mine.get(name, 0) + value
    return out


class _Gather:
    """One socket's packed histogram deltas over a window's intervals, found through per-interval
    indexes built the first time a window's histogram is read (most never are)."""

    def __init__(self, cols: Sequence[SocketColumns]) -> None:
        self.cols = cols
        self._at: list[dict[int, int]] | None = None

    def at(self) -> list[dict[int, int]]:
        if self._at is None:
            self._at = [dict(zip(c.keys, range(len(c)), strict=True)) for c in self.cols]
        return self._at

    def places(self, key: int) -> list[tuple[SocketColumns, int]]:
        """(columns, index) of every interval where ``key`` moved, oldest first."""
        return [(c, i) for c, at in zip(self.cols, self.at(), strict=True) if (i := at.get(key)) is not None]

    def pairs(self, key: int, send: bool) -> array:
        return array("Q", b"".join(c.packed(i, send) for c, i in self.places(key)))


def _socket_sum(parts: Iterable[Interval]) -> tuple[SocketStats, ...]:
    """Every socket of ``parts`` once, its counts and histograms summed (the newest identity: pid
    and comm may change on a reused key), in the order they first moved.

    A 10 s window of 20,000 busy sockets spans 200,000 socket deltas: their counts come from the
    newest interval's cumulative figures less the oldest's start (dict updates at C speed find
    both), the histograms are summed when first read."""
    cols = [p.sockets for p in parts if p.sockets]
    if not cols:
        return ()
    newest: dict[int, int] = {}  # key -> (interval << 32) | index, in the order sockets first moved
    oldest: dict[int, int] = {}
    for j, c in enumerate(cols):
        newest.update(zip(c.keys, range(j << 32, (j << 32) + len(c)), strict=True))
    for j in range(len(cols) - 1, -1, -1):
        c = cols[j]
        oldest.update(zip(c.keys, range(j << 32, (j << 32) + len(c)), strict=True))
    # A socket whose figures restarted after its oldest interval here: summed interval by interval.
    slow = {k for j, c in enumerate(cols) if j for k in c.breaks if oldest[k] >> 32 < j}
    gather = _Gather(cols)
    pairs = gather.pairs
    out = []
    for key, at in newest.items():
        c1, i1 = cols[at >> 32], at & _LOW32
        if key in slow:
            tx = txb = rx = rxb = top = 0
            for c, i in gather.places(key):
                v = c.counts[_WIDTH * i:_WIDTH * i + 5]
                tx, txb, rx, rxb, top = tx + v[0], txb + v[1], rx + v[2], rxb + v[3], max(top, v[4])
        else:
            first = oldest[key]
            v0, o = cols[first >> 32].counts, _WIDTH * (first & _LOW32)
            v1, n = c1.counts, _WIDTH * i1
            # newest cumulative less (oldest cumulative less its delta): the figures at the start
            tx = v1[n + 5] - v0[o + 5] + v0[o]
            txb = v1[n + 6] - v0[o + 6] + v0[o + 1]
            rx = v1[n + 7] - v0[o + 7] + v0[o + 2]
            rxb = v1[n + 8] - v0[o + 8] + v0[o + 3]
            top = v1[n + 4]  # the row's max only grows (a drop is a break)
        out.append(c1.ids[i1].with_traffic(
            tx, txb, rx, rxb,
            Histogram.from_pairs((pairs, key, True), SOCKET_SUB_BITS),
            Histogram.from_pairs((pairs, key, False), SOCKET_SUB_BITS), top))
    return tuple(out)


def _sum(template: Snapshot, parts: Sequence[Interval | None], sockets: bool = True) -> Snapshot:
    """A Snapshot shaped like ``template`` holding the sum of ``parts`` (without sockets when not
    ``sockets``)."""
    kept = [p for p in parts if p is not None]
    counters = _counter_sum(kept)
    paths = {}
    for name, stats in template.paths.items():

        def summed(group: tuple[StageStats, ...]) -> tuple[StageStats, ...]:
            return tuple(
                StageStats(s.spec, *_stage_sum(
                    pt for p in kept if (pt := p.point(name, s.spec.key)) is not None))  # noqa: B023
                for s in group
            )

        paths[name] = PathStats(
            path=name, stages=summed(stats.stages), totals=summed(stats.totals),
            counters={k: counters.get(name, {}).get(k, 0) for k in stats.counters}
            | counters.get(name, {}),
        )
    return replace(
        template,
        paths=paths,
        sockets=_socket_sum(kept) if sockets else (),
        events_total=sum(p.events_total for p in kept),
        events_lost=sum(p.events_lost for p in kept),
    )
