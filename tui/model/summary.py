"""The headless JSON document: a snapshot reduced to percentiles a script can read.

Schema (``schema`` = "netlat-tui/summary/1"; times in microseconds, floats):

    {"schema", "source", "host", "kernel", "filters", "duration_s",
     "plan": {"name", "sample", "merged": [str],
              "stages": {path: [{"key", "label", "layer", "opens", "closes", "total"}]}},
     "paths": {path: {"counters": {name: int},
                      "stages": {key: STAT}, "totals": {key: STAT}}},
     "sockets": [{"pid", "comm", "protocol", "family", "local", "remote",
                  "tx_packets", "tx_bytes", "rx_packets", "rx_bytes",
                  "send": STAT, "recv": STAT}],
     "events": {"delivered": int, "lost": int},
     "workload": {...}}   (headless with --workload only: the workload's own counts)

    STAT = {"count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us",
            "sub_bits", "buckets": {"<index>": count}}

Percentiles are None for an empty distribution. Bucket bounds follow tui.model.histogram.

Counters of the live source (cumulative over the document's window): ``packets``, ``bytes``;
send only: ``deferred`` (left outside the send syscall), ``udp``; both: ``stale`` (older than the
age limit, ignored), ``evicted`` (a packet in flight overwritten), ``events_sent``,
``events_limited``, ``events_lost`` (sampled events), ``missed`` (probe runs the kernel skipped:
each may be a packet missing from the counts).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tui.model.histogram import Histogram
from tui.model.snapshot import Snapshot, StageSpec

SCHEMA = "netlat-tui/summary/1"
TOP_SOCKETS = 20


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


def snapshot_summary(snap: Snapshot, duration_s: float | None = None) -> dict[str, Any]:
    """Reduce a (cumulative or ``since``) snapshot to the documented headless JSON document."""
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
        }
        for s in busiest[:TOP_SOCKETS]
    ]
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
        },
        "paths": paths,
        "sockets": sockets,
        "events": {"delivered": snap.events_total, "lost": snap.events_lost},
    }
