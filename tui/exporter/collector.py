"""A prometheus_client custom collector over the newest Snapshot: pure translation, no state of its own
beyond what was published.

The writer (the exporter loop or the dashboard's worker thread) calls :meth:`SnapshotCollector.publish`
once per snapshot; the HTTP thread calls :meth:`collect` on each scrape. A publish swaps one immutable
record under a lock, so a scrape always sees one whole snapshot, and the metric families are built at
scrape time (a scrape every 15 s costs less than a translation every 1 s poll).

Metric names follow Prometheus' conventions: base unit seconds, ``_total`` for counters, labels
``path``, ``stage``, ``layer``, ``plan``; never a per-socket or per-pid label. Per process name
(``comm``) or per cgroup (the socket's own workload) only on request and under a cap
(:class:`LabelTotals`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tui import __version__
from tui.exporter.buckets import cumulative_buckets, edges_ns, estimated_sum_seconds, is_kernel_edge
from tui.model.groups import group_key, short_name
from tui.model.histogram import Histogram
from tui.model.snapshot import PATHS, Snapshot, SocketStats, StageStats

NS_PER_S = 1e9
#: label value that collects every process name (or cgroup) beyond the cap
OTHER_COMM = OTHER = "_other"
#: per-path counters -> (metric name without _total, help); unknown counters get a generic name
COUNTERS: Mapping[str, tuple[str, str]] = {
    "packets": ("netlat_packets", "Packets (skbs) through the path, every one (--sample or not)."),
    "segs": ("netlat_segments", "Wire segments of those packets (a GSO or GRO skb carries several)."),
    "bytes": ("netlat_bytes", "Payload bytes through the path."),
    "deferred": ("netlat_deferred_packets",
                 "TCP packets that left outside their send syscall (timed in stage deferred)."),
    "udp": ("netlat_udp_datagrams", "UDP datagrams sent."),
    "stale": ("netlat_stale_packets",
              "Packets whose state was older than the age limit when their next event came."),
    "evicted": ("netlat_evicted_packets",
                "Packets in flight overwritten by another in the same in-kernel slot."),
    "missed": ("netlat_missed_probe_runs",
               "Probe runs the kernel skipped (a probe already running on that CPU)."),
    "events_sent": ("netlat_events_sent", "Sampled per-packet events sent to user space."),
    "events_lost": ("netlat_events_lost", "Sampled per-packet events dropped (ring buffer full)."),
    "events_limited": ("netlat_events_limited", "Sampled per-packet events held back by the rate limit."),
}
_LATENCY_LABELS = ("path", "stage", "layer", "plan")


@dataclass(frozen=True, slots=True)
class CommFigures:
    """One process name's (or cgroup's) traffic, summed over its sockets since the exporter started."""

    tx_packets: int = 0
    tx_bytes: int = 0
    rx_packets: int = 0
    rx_bytes: int = 0
    send_hist: Histogram | None = None
    recv_hist: Histogram | None = None

    def plus(self, s: SocketStats) -> CommFigures:
        def add(mine: Histogram | None, theirs: Histogram) -> Histogram:
            return theirs if mine is None else mine.plus(theirs)

        return CommFigures(
            self.tx_packets + s.tx_packets, self.tx_bytes + s.tx_bytes,
            self.rx_packets + s.rx_packets, self.rx_bytes + s.rx_bytes,
            add(self.send_hist, s.send_hist), add(self.recv_hist, s.recv_hist),
        )


def comm_of(sock: SocketStats) -> str:
    return sock.comm


class LabelTotals:
    """Monotonic totals per label value (``key`` of a socket: its process name, its cgroup) from
    the socket table, under a cap on label values.

    Sockets come and go (the kernel's socket map is an LRU; closed sockets leave), so summing the
    current table would make counters go backwards. Instead each socket's growth since the previous
    snapshot is added to its label value's running total. The first ``limit`` values with traffic
    keep a label of their own for the exporter's life; later ones are summed under ``_other``.
    """

    def __init__(self, limit: int, key: Callable[[SocketStats], str] = comm_of) -> None:
        self.limit = limit
        self.key = key
        self._last: dict[int, SocketStats] = {}
        self._totals: dict[str, CommFigures] = {}

    def update(self, snapshot: Snapshot) -> Mapping[str, CommFigures]:
        totals = dict(self._totals)
        current = {}
        for sock in snapshot.sockets:
            current[sock.key] = sock
            old = self._last.get(sock.key)
            grown = sock.since(old) if old is not None else sock
            if not (grown.tx_packets or grown.rx_packets or grown.send_hist or grown.recv_hist):
                continue
            own = len(totals) - (OTHER in totals)
            value = self.key(sock)
            name = value if value in totals or own < self.limit else OTHER
            totals[name] = totals.get(name, CommFigures()).plus(grown)
        self._last = current
        self._totals = totals
        return dict(totals)


@dataclass(frozen=True, slots=True)
class Published:
    """What one scrape reads: a snapshot and the figures gathered beside it."""

    snapshot: Snapshot
    #: (BPF program, path) -> (run count, run time ns); only while the kernel counts them
    programs: Mapping[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    comms: Mapping[str, CommFigures] = field(default_factory=dict)
    #: cgroup path (group_key) -> its sockets' figures
    cgroups: Mapping[str, CommFigures] = field(default_factory=dict)


class SnapshotCollector(Collector):
    """Translates the newest published Snapshot into metric families on each scrape."""

    def __init__(self, edges: Sequence[int] | None = None, comm_limit: int = 0,
                 cgroup_limit: int = 0) -> None:
        #: kernel bucket edges (ns) exported as ``le`` (tui.exporter.buckets)
        self.edges = tuple(edges) if edges is not None else edges_ns()
        self._comms = LabelTotals(comm_limit) if comm_limit > 0 else None
        self._cgroups = LabelTotals(cgroup_limit, group_key) if cgroup_limit > 0 else None
        self._lock = threading.Lock()
        self._published: Published | None = None

    def publish(self, snapshot: Snapshot,
                programs: Mapping[tuple[str, str], tuple[int, int]] | None = None) -> None:
        """Make ``snapshot`` what scrapes see (call from one thread: the one that polls)."""
        comms = self._comms.update(snapshot) if self._comms is not None else {}
        cgroups = self._cgroups.update(snapshot) if self._cgroups is not None else {}
        record = Published(snapshot, dict(programs or {}), comms, cgroups)
        with self._lock:
            self._published = record

    @property
    def published(self) -> Published | None:
        with self._lock:
            return self._published

    def describe(self) -> list[Metric]:
        return []  # names depend on the plan; registering must not call collect()

    def collect(self) -> Iterator[Metric]:
        record = self.published
        if record is None:
            return
        snap = record.snapshot
        yield self._info(snap)
        stages = HistogramMetricFamily(
            "netlat_stage_latency_seconds",
            "Time a packet spends in one stage of the path (kernel buckets; _sum from bucket midpoints).",
            labels=_LATENCY_LABELS)
        totals = HistogramMetricFamily(
            "netlat_path_latency_seconds",
            "Time a packet spends across several stages (path totals; _sum from bucket midpoints).",
            labels=_LATENCY_LABELS)
        for path in _paths(snap):
            stats = snap.path(path)
            for family, group in ((stages, stats.stages), (totals, stats.totals)):
                for st in group:
                    self._add_histogram(family, st, path, snap.plan.name)
        yield stages
        yield totals
        yield from self._counters(snap)
        if record.programs:
            yield from _programs(record.programs)
        if record.comms:
            yield from self._label_metrics("comm", "a process name's", ("comm",),
                                           {(c,): f for c, f in record.comms.items()})
        if record.cgroups:
            # the cgroup path, and its short name (docker:<id>, pod:<uid>, nginx.service) for legends
            rows = {(g, g if g == OTHER else short_name(g)): f for g, f in record.cgroups.items()}
            yield from self._label_metrics("cgroup", "a cgroup's (the sockets' own workload)",
                                           ("cgroup", "workload"), rows)

    def _add_histogram(self, family: HistogramMetricFamily, st: StageStats, path: str, plan: str) -> None:
        buckets = cumulative_buckets(st.hist, self._edges_for(st.hist))
        family.add_metric([path, st.spec.key, st.spec.layer, plan],
                          [(_le(le), count) for le, count in buckets], estimated_sum_seconds(st.hist))

    def _edges_for(self, hist: Histogram) -> tuple[int, ...]:
        return tuple(e for e in self.edges if is_kernel_edge(e, hist.sub_bits))

    @staticmethod
    def _info(snap: Snapshot) -> InfoMetricFamily:
        info = InfoMetricFamily("netlat", "The probe plan, kernel and source behind the figures.")
        info.add_metric([], {
            "plan": snap.plan.name, "kernel": snap.meta.kernel, "host": snap.meta.host,
            "source": snap.meta.source, "sample": str(snap.plan.sample),
            "filters": snap.meta.filters, "version": __version__,
        })
        return info

    @staticmethod
    def _counters(snap: Snapshot) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily] = {}
        for path in _paths(snap):
            for key, value in snap.path(path).counters.items():
                name, help_ = COUNTERS.get(key, (f"netlat_{_sanitize(key)}", f"Path counter {key}."))
                family = families.get(name)
                if family is None:
                    family = families[name] = CounterMetricFamily(name, help_, labels=["path"])
                family.add_metric([path], value)
        yield from families.values()

    def _label_metrics(self, name: str, whose: str, labels: tuple[str, ...],
                       rows: Mapping[tuple[str, ...], CommFigures]) -> Iterator[Metric]:
        """netlat_<name>_packets/_bytes/_latency_seconds, one series per path and label values."""
        names = ["path", *labels]
        packets = CounterMetricFamily(f"netlat_{name}_packets", f"Packets of {whose} sockets.",
                                      labels=names)
        bytes_ = CounterMetricFamily(f"netlat_{name}_bytes", f"Payload bytes of {whose} sockets.",
                                     labels=names)
        latency = HistogramMetricFamily(
            f"netlat_{name}_latency_seconds",
            f"Path latency of {whose} sockets (kernel buckets; _sum from bucket midpoints).",
            labels=names)
        for values, fig in sorted(rows.items()):
            for path, n, b, hist in (("send", fig.tx_packets, fig.tx_bytes, fig.send_hist),
                                     ("recv", fig.rx_packets, fig.rx_bytes, fig.recv_hist)):
                packets.add_metric([path, *values], n)
                bytes_.add_metric([path, *values], b)
                if hist is not None:
                    buckets = cumulative_buckets(hist, self._edges_for(hist))
                    latency.add_metric([path, *values], [(_le(le), c) for le, c in buckets],
                                       estimated_sum_seconds(hist))
        yield packets
        yield bytes_
        yield latency


def _programs(programs: Mapping[tuple[str, str], tuple[int, int]]) -> Iterator[Metric]:
    runs = CounterMetricFamily("netlat_bpf_program_runs", "Runs of one of netlat-tui's BPF programs.",
                               labels=["program", "path"])
    seconds = CounterMetricFamily("netlat_bpf_program_run_seconds",
                                  "Time spent in one of netlat-tui's BPF programs (BPF_ENABLE_STATS).",
                                  labels=["program", "path"])
    for (program, path), (count, ns) in sorted(programs.items()):
        runs.add_metric([program, path], count)
        seconds.add_metric([program, path], ns / NS_PER_S)
    yield runs
    yield seconds


def _paths(snap: Snapshot) -> list[str]:
    """Paths in a stable order (send, recv, then any other)."""
    return sorted(snap.paths, key=lambda p: (PATHS.index(p) if p in PATHS else len(PATHS), p))


def _le(seconds: float) -> str:
    # repr keeps every digit of (edge - 1) ns; prometheus_client would reformat a float the same way.
    return "+Inf" if seconds == float("inf") else repr(seconds)


def _sanitize(key: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)
