"""The immutable Snapshot every source produces and every widget reads.

A Snapshot holds cumulative figures since its source started (histograms, socket counters), plus the
sampled events that arrived since the previous snapshot. Rates and "since clear" views are derived
by subtracting an older snapshot (:meth:`Snapshot.since`), never kept as mutable state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from tui.model.histogram import SOCKET_SUB_BITS, Histogram

SEND = "send"
RECV = "recv"
PATHS: tuple[str, ...] = (SEND, RECV)
#: A UDP socket's busiest peers kept in its SocketStats (the drill-down shows them).
PEERS_SHOWN = 10


@dataclass(frozen=True, slots=True)
class StageSpec:
    """What one measured interval is: its name, layer and the two events that bound it."""

    key: str  #: stable identifier used in maps, JSON and tests, e.g. "qdisc"
    label: str  #: short human name, e.g. "qdisc wait"
    layer: str  #: e.g. "L5", "L4/L3" (merged), "L2"
    opens: str  #: event that starts it, e.g. "net:net_dev_queue"
    closes: str  #: event that ends it, e.g. "net:net_dev_start_xmit"
    total: bool = False  #: a path total (spans several stages) rather than one stage


@dataclass(frozen=True, slots=True)
class PlanInfo:
    """A probe plan as the UI and the JSON describe it."""

    name: str  #: "tracepoint", "kprobe", "fentry", "synthetic", ...
    stages: Mapping[str, tuple[StageSpec, ...]]  #: path -> its stages, in packet order
    totals: Mapping[str, tuple[StageSpec, ...]]  #: path -> its totals (e.g. recv: stack, e2e)
    merged: tuple[str, ...] = ()  #: one line each on layers this plan cannot separate
    sample: int = 1  #: 1 packet in ``sample`` is followed
    #: what the probes attached: (hook, kernel symbol or tracepoint, attach type), live source only
    hooks: tuple[tuple[str, str, str], ...] = ()

    def specs(self, path: str) -> tuple[StageSpec, ...]:
        return tuple(self.stages.get(path, ())) + tuple(self.totals.get(path, ()))


@dataclass(frozen=True, slots=True)
class StageStats:
    """Cumulative latency distribution of one stage or total."""

    spec: StageSpec
    hist: Histogram
    max_ns: int = 0  #: exact largest value seen (0 when unknown or empty)

    def since(self, older: StageStats) -> StageStats:
        # The exact max survives only if it was set after ``older``; otherwise it is unknown (0).
        max_ns = self.max_ns if self.max_ns > older.max_ns else 0
        return replace(self, hist=self.hist.minus(older.hist), max_ns=max_ns)


@dataclass(frozen=True, slots=True)
class PathStats:
    """Everything measured on one path (send or recv)."""

    path: str
    stages: tuple[StageStats, ...]
    totals: tuple[StageStats, ...]
    #: named counters of the path, cumulative, e.g. {"packets": n, "deferred": n, "bytes": n}
    counters: Mapping[str, int] = field(default_factory=dict)

    def all(self) -> tuple[StageStats, ...]:
        return self.stages + self.totals

    def get(self, key: str) -> StageStats | None:
        return next((s for s in self.all() if s.spec.key == key), None)

    def since(self, older: PathStats) -> PathStats:
        old = {s.spec.key: s for s in older.all()}

        def sub(stats: tuple[StageStats, ...]) -> tuple[StageStats, ...]:
            return tuple(s.since(old[s.spec.key]) if s.spec.key in old else s for s in stats)

        counters = {k: v - older.counters.get(k, 0) for k, v in self.counters.items()}
        if any(v < 0 for v in counters.values()):
            counters = dict(self.counters)
        return replace(self, stages=sub(self.stages), totals=sub(self.totals), counters=counters)


@dataclass(frozen=True, slots=True)
class PeerStats:
    """One far end of a UDP socket (cumulative since start): datagrams to and from it and their
    mean times (send: UDP L2; receive: to the application)."""

    addr: str
    port: int
    tx_packets: int = 0
    rx_packets: int = 0
    tx_bytes: int = 0
    rx_bytes: int = 0
    tx_mean_ns: float | None = None
    rx_mean_ns: float | None = None  #: over the received datagrams whose read was timed
    rx_max_ns: int = 0

    @property
    def packets(self) -> int:
        return self.tx_packets + self.rx_packets

    @property
    def endpoint(self) -> str:
        return endpoint(self.addr, self.port)


@dataclass(frozen=True, slots=True)
class SocketStats:
    """One socket's cumulative traffic and latency, keyed by a stable id (sock cookie or address)."""

    key: int
    pid: int
    comm: str
    protocol: str  #: "TCP" or "UDP"
    family: int  #: 4 or 6
    laddr: str
    lport: int
    raddr: str
    rport: int
    tx_packets: int = 0
    tx_bytes: int = 0
    rx_packets: int = 0
    rx_bytes: int = 0
    send_hist: Histogram = field(default_factory=lambda: Histogram.empty(SOCKET_SUB_BITS))
    recv_hist: Histogram = field(default_factory=lambda: Histogram.empty(SOCKET_SUB_BITS))
    max_ns: int = 0
    #: the socket's own cgroup v2 (the creating process's group, not whoever runs when a packet
    #: moves): its id (directory inode), its path below the cgroup2 mount ("" when unknown)
    cgroup_id: int = 0
    cgroup: str = ""
    netns: int = 0  #: inode of the socket's network namespace (0 when unknown)
    netns_name: str = ""  #: its ``ip netns`` name, "" when it has none
    #: UDP: the busiest peers (by packets, at most PEERS_SHOWN), cumulative since start
    peers: tuple[PeerStats, ...] = ()
    peer_count: int = 0  #: peers with a row in the kernel's peer table
    peer_drops: int = 0  #: datagrams of a peer refused a row (the peer table was full)

    @property
    def local(self) -> str:
        return endpoint(self.laddr, self.lport)

    @property
    def remote(self) -> str:
        return endpoint(self.raddr, self.rport)

    def hist(self, path: str) -> Histogram:
        return self.send_hist if path == SEND else self.recv_hist

    def with_traffic(self, tx_packets: int, tx_bytes: int, rx_packets: int, rx_bytes: int,
                     send_hist: Histogram, recv_hist: Histogram, max_ns: int) -> SocketStats:
        """This socket (identity, workload, peers) with other counts and histograms: ``replace()``
        without its per-call walk of the fields, which a tick of 20,000 moving sockets felt."""
        return socket_stats(self.key, self.pid, self.comm, self.protocol, self.family, self.laddr,
                            self.lport, self.raddr, self.rport, tx_packets, tx_bytes, rx_packets, rx_bytes,
                            send_hist, recv_hist, max_ns, self.cgroup_id, self.cgroup, self.netns,
                            self.netns_name, self.peers, self.peer_count, self.peer_drops)

    def since(self, older: SocketStats) -> SocketStats:
        if older.tx_packets > self.tx_packets or older.rx_packets > self.rx_packets:
            return self  # the kernel's LRU evicted and re-created the entry
        return replace(
            self,
            tx_packets=self.tx_packets - older.tx_packets,
            tx_bytes=self.tx_bytes - older.tx_bytes,
            rx_packets=self.rx_packets - older.rx_packets,
            rx_bytes=self.rx_bytes - older.rx_bytes,
            send_hist=self.send_hist.minus(older.send_hist),
            recv_hist=self.recv_hist.minus(older.recv_hist),
        )


def _slot_constructor(cls: type) -> Callable[..., Any]:
    """``cls(*values)`` with every field given, in order, built with one slot descriptor call per
    field instead of the frozen dataclass ``__init__``'s ``object.__setattr__`` (0.8 against 1.4 us
    for SocketStats' 23 fields; a tick of 20,000 moving sockets builds 40,000). Generated from
    ``fields()`` as dataclasses generates ``__init__``, so it follows the class. Still frozen."""
    names = [f.name for f in fields(cls)]
    scope: dict[str, Any] = {"new": object.__new__, "cls": cls}
    scope |= {f"set_{name}": getattr(cls, name).__set__ for name in names}
    body = "".join(f"    set_{name}(obj, {name})\n" for name in names)
    exec(f"def build({', '.join(names)}):\n    obj = new(cls)\n{body}    return obj\n", scope)
    return scope["build"]


#: SocketStats(*every field), faster (see _slot_constructor): the live source and the timeline
socket_stats: Callable[..., SocketStats] = _slot_constructor(SocketStats)


def endpoint(addr: str, port: int) -> str:
    """``addr:port`` with IPv6 addresses bracketed."""
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


@dataclass(frozen=True, slots=True)
class PacketEvent:
    """One sampled packet with its per-stage split (the seed's printf line, done properly)."""

    time_ns: int  #: bpf_ktime_get_ns() when the packet finished its path
    path: str
    pid: int
    comm: str
    protocol: str
    laddr: str
    lport: int
    raddr: str
    rport: int
    length: int
    #: stage key -> ns, only the stages the packet was seen through
    stages_ns: Mapping[str, int]
    total_ns: int
    deferred: bool = False  #: send path: left outside the send syscall (softirq, timer)
    cgroup_id: int = 0  #: the socket's own cgroup v2 id (see SocketStats)
    cgroup: str = ""
    netns: int = 0
    netns_name: str = ""


@dataclass(frozen=True, slots=True)
class SourceMeta:
    """Where the figures come from, for the header line."""

    source: str  #: "live", "replay", "synthetic"
    host: str
    kernel: str
    filters: str = ""  #: human description of active filters, "" when none
    notes: tuple[str, ...] = ()  #: warnings worth showing (e.g. headers mismatch, offsets from BTF)


@dataclass(frozen=True, slots=True)
class Cost:
    """What measuring costs, cumulative since the live source started: our BPF programs' run time
    (the kernel's BPF_ENABLE_STATS, the way bpftop reads it) and netlat-tui's own CPU and memory."""

    wall_s: float = 0.0  #: seconds the figures below cover
    cpu_s: float = 0.0  #: netlat-tui's own CPU time (user + system, every thread)
    rss_bytes: int = 0  #: netlat-tui's resident memory now
    bpf_ns: int = 0  #: run time of our BPF programs
    bpf_runs: int = 0  #: runs of our BPF programs
    bpf_measured: bool = False  #: False: BPF run time not measured (--no-cost, or the kernel refused)

    def since(self, older: Cost) -> Cost:
        return replace(self, wall_s=self.wall_s - older.wall_s, cpu_s=self.cpu_s - older.cpu_s,
                       bpf_ns=self.bpf_ns - older.bpf_ns, bpf_runs=self.bpf_runs - older.bpf_runs)

    def figures(self, packets: int) -> dict[str, float | None]:
        """Per-second shares and per-packet time over ``wall_s``; ``packets`` is what the probes saw
        on both paths (a loopback packet crosses both: per data packet it costs twice this)."""
        wall = self.wall_s if self.wall_s > 0 else None
        bpf = self.bpf_measured
        return {
            "bpf_ns_per_packet": round(self.bpf_ns / packets) if bpf and packets else None,
            "bpf_cpu_percent": round(100 * self.bpf_ns / 1e9 / wall, 2) if bpf and wall else None,
            "bpf_runs_per_packet": round(self.bpf_runs / packets, 2) if bpf and packets else None,
            "cpu_percent": round(100 * self.cpu_s / wall, 2) if wall else None,
            "rss_mb": round(self.rss_bytes / 2**20, 1),
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One tick of every figure, immutable; the only thing the UI ever receives from a source."""

    seq: int
    time_s: float  #: seconds since the source started (monotonic)
    meta: SourceMeta
    plan: PlanInfo
    paths: Mapping[str, PathStats]
    sockets: tuple[SocketStats, ...] = ()
    events: tuple[PacketEvent, ...] = ()  #: sampled events since the previous snapshot
    sockets_seen: int = 0  #: cumulative sockets given a row in the socket table
    sockets_dropped: int = 0  #: cumulative sockets refused a row (the table was full)
    sockets_max: int = 0  #: rows the socket table holds at most (0: unknown or unbounded)
    events_lost: int = 0  #: cumulative sampled events dropped (ring buffer full or rate limit)
    events_total: int = 0  #: cumulative sampled events delivered
    cost: Cost | None = None  #: what measuring costs (live source only)

    def path(self, name: str) -> PathStats:
        return self.paths[name]

    def since(self, older: Snapshot, sockets: bool = True) -> Snapshot:
        """Figures accumulated after ``older`` (used for "clear" and for per-interval rates); without
        ``sockets`` the result has none (a timeline takes their deltas itself, more cheaply)."""
        paths = {
            name: stats.since(older.paths[name]) if name in older.paths else stats
            for name, stats in self.paths.items()
        }
        old_sockets = {s.key: s for s in older.sockets} if sockets else {}
        socket_deltas = tuple(
            s.since(old_sockets[s.key]) if s.key in old_sockets else s for s in self.sockets
        ) if sockets else ()
        return replace(
            self,
            paths=paths,
            sockets=socket_deltas,
            events_lost=max(0, self.events_lost - older.events_lost),
            events_total=max(0, self.events_total - older.events_total),
            cost=self.cost.since(older.cost) if self.cost and older.cost else self.cost,
        )

    def packets_seen(self) -> int:
        """Packets the probes saw on both paths (the path counters count every one, sampled or not)."""
        return sum(p.counters.get("packets", 0) for p in self.paths.values())
