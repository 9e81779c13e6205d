"""Snapshots to and from plain JSON-ready dicts, with strict validation (the record/replay format).

A recording is JSON lines: one header line ``{"format": FORMAT, "version": VERSION, ...}`` followed by
one full cumulative snapshot per line. Reading never trusts the file: every field is type-checked
and a problem raises :class:`SerializeError` naming the field, so the replay source can report
"line N: field: problem" instead of a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tui.model.histogram import Histogram, bucket_count
from tui.model.snapshot import (
    PATHS,
    PacketEvent,
    PathStats,
    PeerStats,
    PlanInfo,
    Snapshot,
    SocketStats,
    SourceMeta,
    StageSpec,
    StageStats,
)

FORMAT = "netlat-tui/record"
VERSION = 1


class SerializeError(ValueError):
    """A recorded value is missing or of the wrong kind; str() names the field."""


# ----------------------------------------------------------------------------- writing


def header(interval_s: float) -> dict[str, Any]:
    """The first line of a recording."""
    return {"format": FORMAT, "version": VERSION, "interval_s": interval_s}


def hist_to_dict(hist: Histogram) -> dict[str, Any]:
    return {"sub_bits": hist.sub_bits, "buckets": {str(i): c for i, c in hist.sparse().items()}}


def _spec_to_dict(spec: StageSpec) -> dict[str, Any]:
    return {
        "key": spec.key, "label": spec.label, "layer": spec.layer,
        "opens": spec.opens, "closes": spec.closes, "total": spec.total,
    }


def _stage_to_dict(stats: StageStats) -> dict[str, Any]:
    return {"key": stats.spec.key, "hist": hist_to_dict(stats.hist), "max_ns": stats.max_ns}


def _socket_to_dict(s: SocketStats) -> dict[str, Any]:
    return {
        "key": s.key, "pid": s.pid, "comm": s.comm, "protocol": s.protocol, "family": s.family,
        "laddr": s.laddr, "lport": s.lport, "raddr": s.raddr, "rport": s.rport,
        "tx_packets": s.tx_packets, "tx_bytes": s.tx_bytes,
        "rx_packets": s.rx_packets, "rx_bytes": s.rx_bytes,
        "send_hist": hist_to_dict(s.send_hist), "recv_hist": hist_to_dict(s.recv_hist),
        "max_ns": s.max_ns, **_workload_to_dict(s),
        **({"peers": [_peer_to_dict(p) for p in s.peers], "peer_count": s.peer_count,
            "peer_drops": s.peer_drops} if s.peers or s.peer_drops else {}),
    }


def _peer_to_dict(p: PeerStats) -> dict[str, Any]:
    return {
        "addr": p.addr, "port": p.port, "tx_packets": p.tx_packets, "tx_bytes": p.tx_bytes,
        "rx_packets": p.rx_packets, "rx_bytes": p.rx_bytes, "tx_mean_ns": p.tx_mean_ns,
        "rx_mean_ns": p.rx_mean_ns, "rx_max_ns": p.rx_max_ns,
    }


def _event_to_dict(e: PacketEvent) -> dict[str, Any]:
    return {
        "time_ns": e.time_ns, "path": e.path, "pid": e.pid, "comm": e.comm, "protocol": e.protocol,
        "laddr": e.laddr, "lport": e.lport, "raddr": e.raddr, "rport": e.rport, "length": e.length,
        "stages_ns": dict(e.stages_ns), "total_ns": e.total_ns, "deferred": e.deferred,
        **_workload_to_dict(e),
    }


#: A socket's or event's cgroup and network namespace: optional in a recording (older ones lack them).
_WORKLOAD_FIELDS: tuple[tuple[str, type], ...] = (
    ("cgroup_id", int), ("cgroup", str), ("netns", int), ("netns_name", str),
)


def _workload_to_dict(item: SocketStats | PacketEvent) -> dict[str, Any]:
    return {key: getattr(item, key) for key, _ in _WORKLOAD_FIELDS}


def _workload_from_dict(obj: Any, where: str) -> dict[str, Any]:
    return {key: (_count(obj, key, where) if kind is int else _field(obj, key, kind, where))
            for key, kind in _WORKLOAD_FIELDS if isinstance(obj, dict) and key in obj}


def snapshot_to_dict(snap: Snapshot) -> dict[str, Any]:
    """Everything in a snapshot, losslessly, as JSON-ready values."""
    plan = snap.plan
    return {
        "seq": snap.seq,
        "time_s": snap.time_s,
        "meta": {
            "source": snap.meta.source, "host": snap.meta.host, "kernel": snap.meta.kernel,
            "filters": snap.meta.filters, "notes": list(snap.meta.notes),
        },
        "plan": {
            "name": plan.name,
            "stages": {p: [_spec_to_dict(s) for s in specs] for p, specs in plan.stages.items()},
            "totals": {p: [_spec_to_dict(s) for s in specs] for p, specs in plan.totals.items()},
            "merged": list(plan.merged),
            "sample": plan.sample,
        },
        "paths": {
            name: {
                "stages": [_stage_to_dict(s) for s in stats.stages],
                "totals": [_stage_to_dict(s) for s in stats.totals],
                "counters": dict(stats.counters),
            }
            for name, stats in snap.paths.items()
        },
        "sockets": [_socket_to_dict(s) for s in snap.sockets],
        "events": [_event_to_dict(e) for e in snap.events],
        "events_lost": snap.events_lost,
        "events_total": snap.events_total,
        "sockets_seen": snap.sockets_seen,
        "sockets_dropped": snap.sockets_dropped,
        "sockets_max": snap.sockets_max,
    }


# ----------------------------------------------------------------------------- reading


def _field(obj: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(obj, dict):
        raise SerializeError(f"{where}: expected an object")
    if key not in obj:
        raise SerializeError(f"{where}.{key}: missing")
    value = obj[key]
    # bool is an int subclass: never accept it where a number is meant; a float may be written as int.
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise SerializeError(f"{where}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _count(obj: Any, key: str, where: str) -> int:
    value = _field(obj, key, int, where)
    if value < 0:
        raise SerializeError(f"{where}.{key}: negative")
    return value


def _str_list(obj: Any, key: str, where: str) -> tuple[str, ...]:
    items = _field(obj, key, list, where)
    if not all(isinstance(i, str) for i in items):
        raise SerializeError(f"{where}.{key}: expected a list of strings")
    return tuple(items)


def hist_from_dict(obj: Any, where: str) -> Histogram:
    sub_bits = _field(obj, "sub_bits", int, where)
    if not 0 <= sub_bits <= 8:
        raise SerializeError(f"{where}.sub_bits: out of range")
    buckets = _field(obj, "buckets", dict, where)
    sparse: dict[int, int] = {}
    size = bucket_count(sub_bits)
    for index, count in buckets.items():
        if not index.isdigit() or int(index) >= size:
            raise SerializeError(f"{where}.buckets: bad bucket index {index!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise SerializeError(f"{where}.buckets[{index}]: expected a count")
        sparse[int(index)] = count
    return Histogram.from_sparse(sparse, sub_bits)


def _spec_from_dict(obj: Any, where: str) -> StageSpec:
    return StageSpec(
        key=_field(obj, "key", str, where), label=_field(obj, "label", str, where),
        layer=_field(obj, "layer", str, where), opens=_field(obj, "opens", str, where),
        closes=_field(obj, "closes", str, where), total=_field(obj, "total", bool, where),
    )


def _specs_by_path(obj: Any, key: str, where: str) -> dict[str, tuple[StageSpec, ...]]:
    table = _field(obj, key, dict, where)
    out = {}
    for path, specs in table.items():
        if not isinstance(specs, list):
            raise SerializeError(f"{where}.{key}.{path}: expected a list")
        out[path] = tuple(_spec_from_dict(s, f"{where}.{key}.{path}[{i}]") for i, s in enumerate(specs))
    return out


def _plan_from_dict(obj: Any) -> PlanInfo:
    where = "plan"
    sample = _field(obj, "sample", int, where)
    if sample < 1:
        raise SerializeError("plan.sample: must be at least 1")
    return PlanInfo(
        name=_field(obj, "name", str, where),
        stages=_specs_by_path(obj, "stages", where),
        totals=_specs_by_path(obj, "totals", where),
        merged=_str_list(obj, "merged", where),
        sample=sample,
    )


def _stages_from_list(
    items: Any, specs: tuple[StageSpec, ...], where: str
) -> tuple[StageStats, ...]:
    if not isinstance(items, list):
        raise SerializeError(f"{where}: expected a list")
    by_key = {s.key: s for s in specs}
    out = []
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        key = _field(item, "key", str, here)
        if key not in by_key:
            raise SerializeError(f"{here}.key: {key!r} is not a stage of the plan")
        out.append(StageStats(by_key[key], hist_from_dict(_field(item, "hist", dict, here), f"{here}.hist"),
                              _count(item, "max_ns", here)))
    return tuple(out)


def _path_from_dict(name: str, obj: Any, plan: PlanInfo) -> PathStats:
    where = f"paths.{name}"
    counters = _field(obj, "counters", dict, where)
    for key, value in counters.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise SerializeError(f"{where}.counters.{key}: expected int")
    return PathStats(
        path=name,
        stages=_stages_from_list(obj.get("stages"), tuple(plan.stages.get(name, ())), f"{where}.stages"),
        totals=_stages_from_list(obj.get("totals"), tuple(plan.totals.get(name, ())), f"{where}.totals"),
        counters=dict(counters),
    )


def _socket_from_dict(obj: Any, where: str) -> SocketStats:
    return SocketStats(
        key=_field(obj, "key", int, where), pid=_count(obj, "pid", where),
        comm=_field(obj, "comm", str, where), protocol=_field(obj, "protocol", str, where),
        family=_field(obj, "family", int, where),
        laddr=_field(obj, "laddr", str, where), lport=_count(obj, "lport", where),
        raddr=_field(obj, "raddr", str, where), rport=_count(obj, "rport", where),
        tx_packets=_count(obj, "tx_packets", where), tx_bytes=_count(obj, "tx_bytes", where),
        rx_packets=_count(obj, "rx_packets", where), rx_bytes=_count(obj, "rx_bytes", where),
        send_hist=hist_from_dict(_field(obj, "send_hist", dict, where), f"{where}.send_hist"),
        recv_hist=hist_from_dict(_field(obj, "recv_hist", dict, where), f"{where}.recv_hist"),
        max_ns=_count(obj, "max_ns", where), **_workload_from_dict(obj, where),
        # optional: recordings made before UDP peers have none
        peers=tuple(_peer_from_dict(p, f"{where}.peers[{i}]") for i, p in enumerate(obj.get("peers", ()))),
        peer_count=_count(obj, "peer_count", where) if "peer_count" in obj else 0,
        peer_drops=_count(obj, "peer_drops", where) if "peer_drops" in obj else 0,
    )


def _mean(obj: Any, name: str, where: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise SerializeError(f"{where}.{name}: expected a duration in ns or null")
    return float(value)


def _peer_from_dict(obj: Any, where: str) -> PeerStats:
    if not isinstance(obj, dict):
        raise SerializeError(f"{where}: expected an object")
    return PeerStats(
        addr=_field(obj, "addr", str, where), port=_count(obj, "port", where),
        tx_packets=_count(obj, "tx_packets", where), tx_bytes=_count(obj, "tx_bytes", where),
        rx_packets=_count(obj, "rx_packets", where), rx_bytes=_count(obj, "rx_bytes", where),
        tx_mean_ns=_mean(obj, "tx_mean_ns", where), rx_mean_ns=_mean(obj, "rx_mean_ns", where),
        rx_max_ns=_count(obj, "rx_max_ns", where),
    )


def _event_from_dict(obj: Any, where: str) -> PacketEvent:
    stages = _field(obj, "stages_ns", dict, where)
    for key, value in stages.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SerializeError(f"{where}.stages_ns.{key}: expected a duration in ns")
    path = _field(obj, "path", str, where)
    if path not in PATHS:
        raise SerializeError(f"{where}.path: {path!r} is not one of {', '.join(PATHS)}")
    return PacketEvent(
        time_ns=_count(obj, "time_ns", where), path=path, pid=_count(obj, "pid", where),
        comm=_field(obj, "comm", str, where), protocol=_field(obj, "protocol", str, where),
        laddr=_field(obj, "laddr", str, where), lport=_count(obj, "lport", where),
        raddr=_field(obj, "raddr", str, where), rport=_count(obj, "rport", where),
        length=_count(obj, "length", where), stages_ns=dict(stages),
        total_ns=_count(obj, "total_ns", where), deferred=_field(obj, "deferred", bool, where),
        **_workload_from_dict(obj, where),
    )


def _list(obj: Any, key: str, where: str) -> list[Any]:
    return _field(obj, key, list, where)


def snapshot_from_dict(obj: Any) -> Snapshot:
    """Rebuild a Snapshot; raises SerializeError naming the first bad field."""
    if not isinstance(obj, dict):
        raise SerializeError("snapshot: expected an object")
    meta = _field(obj, "meta", dict, "snapshot")
    plan = _plan_from_dict(_field(obj, "plan", dict, "snapshot"))
    raw_paths: Mapping[str, Any] = _field(obj, "paths", dict, "snapshot")
    missing = [p for p in PATHS if p not in raw_paths]
    if missing:
        raise SerializeError(f"paths: missing {', '.join(missing)}")
    time_s = _field(obj, "time_s", float, "snapshot")
    return Snapshot(
        seq=_count(obj, "seq", "snapshot"),
        time_s=float(time_s),
        meta=SourceMeta(
            source=_field(meta, "source", str, "meta"), host=_field(meta, "host", str, "meta"),
            kernel=_field(meta, "kernel", str, "meta"), filters=_field(meta, "filters", str, "meta"),
            notes=_str_list(meta, "notes", "meta"),
        ),
        plan=plan,
        paths={name: _path_from_dict(name, value, plan) for name, value in raw_paths.items()},
        sockets=tuple(
            _socket_from_dict(s, f"sockets[{i}]") for i, s in enumerate(_list(obj, "sockets", "snapshot"))
        ),
        events=tuple(
            _event_from_dict(e, f"events[{i}]") for i, e in enumerate(_list(obj, "events", "snapshot"))
        ),
        events_lost=_count(obj, "events_lost", "snapshot"),
        events_total=_count(obj, "events_total", "snapshot"),
        # the socket table's own counts came later: recordings without them read as 0
        **{key: _count(obj, key, "snapshot") for key in ("sockets_seen", "sockets_dropped", "sockets_max")
           if key in obj},
    )


def check_header(obj: Any) -> float:
    """Validate a recording's first line; returns its recorded interval in seconds."""
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise SerializeError(f"not a netlat-tui recording (expected a {FORMAT!r} header)")
    version = obj.get("version")
    if version != VERSION:
        raise SerializeError(f"recording format version {version!r} is not supported (expected {VERSION})")
    interval = _field(obj, "interval_s", float, "header")
    if not interval > 0:
        raise SerializeError("header.interval_s: must be above 0")
    return float(interval)
