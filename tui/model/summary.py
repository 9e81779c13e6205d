"""The headless JSON document: a snapshot reduced to percentiles a script can read.

Schema (``schema`` = "netlat-tui/summary/2"; times in microseconds, floats):

    {"schema", "source", "host", "kernel", "filters", "duration_s",
     "plan": {"name", "sample", "merged": [str],
              "stages": {path: [{"key", "label", "layer", "opens", "closes", "total"}]},
              "hooks": [{"hook", "symbol", "attach"}]},
     "paths": {path: {"counters": {name: int},
                      "stages": {key: STAT}, "totals": {key: STAT}}},
     "sockets": [{"pid", "comm", "protocol", "family", "local", "remote",
                  "tx_packets", "tx_bytes", "rx_packets", "rx_bytes",
                  "send": STAT, "recv": STAT,
                  "cgroup", "cgroup_id", "workload", "netns", "netns_name",
                  UDP sockets with peers: "peer_count", "peer_drops",
                  "peers": [{"peer", "tx_packets", "rx_packets", "tx_mean_us", "rx_mean_us",
                             "rx_max_us"}] (the busiest, since start)}],
     "groups": [{"cgroup", "workload", "sockets", "netns": [str],
                 "tx_packets", "tx_bytes", "rx_packets", "rx_bytes", "tx_packets_s", "rx_packets_s",
                 "send": STAT, "recv": STAT}],
     "socket_table": {"listed", "rows", "seen", "dropped", "max"},
     "events": {"delivered": int, "lost": int},
     "cost": COST | None,   (live source only)
     "interval_s": float | None,
     "timeline": [{"start_s", "end_s",
                   "paths": {path: {key: {"count", "p50_us", "p90_us", "p99_us"}}}}],
     "verdict": VERDICT, "verdicts": {path: VERDICT},
     "workload": {...}}   (headless with --workload only: the workload's own counts)

    VERDICT = {"rule", "path", "stage", "words", "command"}   (tui.model.verdict)

    COST = {"bpf_ns_per_packet", "bpf_cpu_percent", "bpf_runs_per_packet", "cpu_percent", "rss_mb"}
      over the document's window: our BPF programs' run time per packet seen on a path (a loopback
      packet crosses two: per data packet it costs twice this) and as a share of one CPU (null with
      --no-cost), netlat-tui's own CPU share and resident memory.

    STAT = {"count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us",
            "sub_bits", "buckets": {"<index>": count}}

Percentiles are None for an empty distribution. Bucket bounds follow tui.model.histogram.

``plan.hooks`` (added in version 2, empty but for the live source) lists what the probes attached:
per hook the kernel symbol or tracepoint and the attach type (fentry, fexit, kprobe, kretprobe,
raw_tracepoint); under the fentry plan a function that refused fentry shows its kprobe.

``sockets`` lists every socket of the window, busiest (packets) first, or the ``top`` busiest
(headless ``--top N``). Socket counters count every send and read call, whatever ``--sample`` says
(only the ``send``/``recv`` latency distributions are sampled): bytes are what the calls moved,
TCP packets are the kernel's own data segments (tcp_info's ``data_segs_out``/``data_segs_in``),
UDP packets the datagrams sent and read. ``socket_table``: sockets ``listed`` here, ``rows`` in the
window, ``seen`` (rows the kernel table created since start), ``dropped`` (sockets refused a row
because the table was full: their traffic is in no row) and ``max`` (``--max-sockets``; 0 unknown).
Path counters count skbs: ``packets`` (a GSO skb is one packet carrying several wire segments).

Version 2 added ``interval_s``, ``timeline``, ``verdict``/``verdicts`` and later ``socket_table``;
every key of version 1 is unchanged. ``timeline`` holds the intervals a
:class:`~tui.model.timeline.Timeline` kept (the newest 10 minutes at most; headless keeps the whole
run), oldest first, in source seconds, with every
stage and total of each path (count 0 and null percentiles where nothing was counted);
``interval_s`` is the timeline's nominal interval (``--interval``). The verdict judges the newest
``VERDICT_WINDOW_S`` of the timeline against the same length before it (the whole document, with no
comparison, when there is no timeline): ``verdict`` is the one for both paths, ``verdicts`` each
path's own.

Workloads: a socket's ``cgroup`` is the full path of its own cgroup v2 below the cgroup2 mount (the
group of the process that created it; null when unknown), ``cgroup_id`` that group's id (the inode
of its directory), ``workload`` its short name (a container, pod or unit when the path shows one,
tui.model.groups), ``netns`` the inode of its network namespace and ``netns_name`` its ``ip netns``
name (null when it has none). ``groups`` sums every socket of the document per cgroup (busiest
first): counts, packets per second over ``duration_s`` and each path's latency. These keys were
added to version 2; none of its other keys changed.

Counters of the live source (cumulative over the document's window): ``packets``, ``bytes``;
send only: ``deferred`` (left outside the send syscall), ``udp``; both: ``stale`` (older than the
age limit, ignored), ``evicted`` (a packet in flight overwritten), ``events_sent``,
``events_limited``, ``events_lost`` (sampled events), ``missed`` (probe runs the kernel skipped:
each may be a packet missing from the counts).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tui.model.filters import Filters
from tui.model.groups import group_sockets, short_name
from tui.model.histogram import Histogram
from tui.model.snapshot import PATHS, RECV, SEND, Snapshot, SocketStats, StageSpec
from tui.model.timeline import DEFAULT_WINDOW_S, Interval, StagePoint, Timeline
from tui.model.verdict import overall, verdict

SCHEMA = "netlat-tui/summary/2"
TOP_GROUPS = 50
#: Seconds of the newest timeline window the verdict judges (the dashboard's default window).
VERDICT_WINDOW_S = DEFAULT_WINDOW_S


def _us(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1000.0, 3)


def _peers(s: SocketStats) -> dict[str, Any]:
    """A UDP socket's peers for the JSON: how many, the datagrams refused a row, the busiest."""
    return {
        "peer_count": s.peer_count,
        "peer_drops": s.peer_drops,
        "peers": [{"peer": p.endpoint, "tx_packets": p.tx_packets, "rx_packets": p.rx_packets,
                   "tx_mean_us": _us(p.tx_mean_ns), "rx_mean_us": _us(p.rx_mean_ns),
                   "rx_max_us": _us(p.rx_max_ns or None)} for p in s.peers],
    }


def _us(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1000.0, 3)


def hist_stat(hist: Histogram, max_ns: int = 0) -> dict[str, Any]:
    """Count, percentiles (us), max and sparse buckets of one distribution.

    Percentiles are bucket midpoints; with the exact maximum known, none is reported above it.
    """
    p = hist.percentiles((50, 90, 99, 99.9))
    top = max_ns or hist.max_bound()

    def at(q: float) -> float | None:
        ns = p[q]
        return _us(min(ns, max_ns) if ns is not None and max_ns else ns)

    return {
        "count": hist.total,
        "p50_us": at(50),
        "p90_us": at(90),
        "p99_us": at(99),
        "p999_us": at(99.9),
        "max_us": _us(top) if hist.total else None,
        "mean_us": _us(hist.mean()),
        "sub_bits": hist.sub_bits,
        "buckets": {str(i): c for i, c in hist.sparse().items()},
    }


def _spec(spec: StageSpec) -> dict[str, Any]:
    return asdict(spec)


def point_stat(point: StagePoint | None) -> dict[str, Any]:
    """Count and p50/p90/p99 (us) of one stage in one interval."""
    if point is None:
        return {"count": 0, "p50_us": None, "p90_us": None, "p99_us": None}
    return {"count": point.count, "p50_us": _us(point.p50_ns), "p90_us": _us(point.p90_ns),
            "p99_us": _us(point.p99_ns)}


def interval_summary(interval: Interval, snap: Snapshot) -> dict[str, Any]:
    """One timeline entry: the interval's times and every stage and total of ``snap``'s plan."""
    return {
        "start_s": round(interval.start_s, 3),
        "end_s": round(interval.end_s, 3),
        "paths": {
            path: {spec.key: point_stat(interval.point(path, spec.key)) for spec in snap.plan.specs(path)}
            for path in snap.paths
        },
    }


def verdict_summary(
    snap: Snapshot, timeline: Timeline | None = None, filters: Filters | None = None
) -> dict[str, Any]:
    """``verdict`` and ``verdicts`` of the document (see the schema above)."""
    current, previous = snap, None
    if timeline is not None and timeline.latest is not None:
        current = timeline.window(VERDICT_WINDOW_S, sockets=False) or snap
        previous = timeline.window_before(VERDICT_WINDOW_S, sockets=False)
    each = {p: verdict(current, previous, p, filters).to_dict() for p in PATHS if p in current.paths}
    return {"verdict": overall(current, previous, filters).to_dict(), "verdicts": each}


def workload_summary(sock: SocketStats) -> dict[str, Any]:
    """A socket's cgroup (full path, id, short name) and network namespace (inode, name)."""
    return {"cgroup": sock.cgroup or None, "cgroup_id": sock.cgroup_id or None,
            "workload": short_name(sock.cgroup) if sock.cgroup else None,
            "netns": sock.netns or None, "netns_name": sock.netns_name or None}


def groups_summary(snap: Snapshot, seconds: float) -> list[dict[str, Any]]:
    """Every socket of the document summed per cgroup (busiest first, TOP_GROUPS at most)."""
    def rate(n: int) -> float | None:
        return round(n / seconds, 3) if seconds > 0 else None

    return [
        {"cgroup": g.key, "workload": g.name, "sockets": g.sockets, "netns": list(g.netns),
         "tx_packets": g.packets(SEND), "tx_bytes": g.bytes(SEND), "rx_packets": g.packets(RECV),
         "rx_bytes": g.bytes(RECV), "tx_packets_s": rate(g.packets(SEND)),
         "rx_packets_s": rate(g.packets(RECV)),
         "send": hist_stat(g.hist(SEND)), "recv": hist_stat(g.hist(RECV))}
        for g in group_sockets(snap.sockets)[:TOP_GROUPS]
    ]


def snapshot_summary(
    snap: Snapshot,
    duration_s: float | None = None,
    timeline: Timeline | None = None,
    filters: Filters | None = None,
    top: int | None = None,
) -> dict[str, Any]:
    """Reduce a (cumulative or ``since``) snapshot to the documented headless JSON document, with
    ``timeline``'s intervals and a verdict over its newest window (``filters`` name the interface
    and process in the verdict's command); every socket, or the ``top`` busiest."""
    plan = snap.plan
    paths: dict[str, Any] = {}
    for name, stats in snap.paths.items():
        paths[name] = {
            "counters": dict(stats.counters),
            "stages": {s.spec.key: hist_stat(s.hist, s.max_ns) for s in stats.stages},
            "totals": {s.spec.key: hist_stat(s.hist, s.max_ns) for s in stats.totals},
        }
    busiest = sorted(snap.sockets, key=lambda s: s.tx_packets + s.rx_packets, reverse=True)
    sockets = [
        {
            "pid": s.pid,
            "comm": s.comm,
            "protocol": s.protocol,
            "family": s.family,
            "local": s.local,
            "remote": s.remote,
            "tx_packets": s.tx_packets,
            "tx_bytes": s.tx_bytes,
            "rx_packets": s.rx_packets,
            "rx_bytes": s.rx_bytes,
            "send": hist_stat(s.send_hist),
            "recv": hist_stat(s.recv_hist),
            **workload_summary(s),
            **(_peers(s) if s.peers or s.peer_drops else {}),
        }
        for s in (busiest if top is None else busiest[:top])
    ]
    seconds = snap.time_s if duration_s is None else duration_s
    return {
        "schema": SCHEMA,
        "source": snap.meta.source,
        "host": snap.meta.host,
        "kernel": snap.meta.kernel,
        "filters": snap.meta.filters,
        "notes": list(snap.meta.notes),
        "duration_s": round(snap.time_s if duration_s is None else duration_s, 3),
        "plan": {
            "name": plan.name,
            "sample": plan.sample,
            "merged": list(plan.merged),
            "stages": {path: [_spec(s) for s in plan.specs(path)] for path in plan.stages},
            "hooks": [{"hook": h, "symbol": sym, "attach": kind} for h, sym, kind in plan.hooks],
        },
        "paths": paths,
        "sockets": sockets,
        "groups": groups_summary(snap, seconds),
        "socket_table": {"listed": len(sockets), "rows": len(snap.sockets), "seen": snap.sockets_seen,
                         "dropped": snap.sockets_dropped, "max": snap.sockets_max},
        "events": {"delivered": snap.events_total, "lost": snap.events_lost},
        "cost": snap.cost.figures(snap.packets_seen()) if snap.cost is not None else None,
        "interval_s": timeline.interval_s if timeline is not None else None,
        "timeline": [interval_summary(i, snap) for i in timeline.intervals()]
        if timeline is not None else [],
        **verdict_summary(snap, timeline, filters),
    }
