"""The socket table grouped: one row per cgroup (container, pod, unit), keyed by its path."""

from __future__ import annotations

from dataclasses import dataclass

from tui.model.groups import group_key, group_sockets
from tui.model.snapshot import SEND, Snapshot
from tui.widgets.sockets import MAX_ROWS, Cell, SocketTable
from tui.widgets.units import capped, fmt_bytes, fmt_count, fmt_ns


@dataclass(frozen=True, slots=True)
class GroupRow:
    """One cgroup's sockets on the selected path, as the grouped table shows them."""

    key: str  #: the cgroup path (the row key: the cursor stays on its group)
    name: str  #: short name: container, pod or unit
    sockets: int
    pkts_s: float
    bytes_s: float
    p50: float | None
    p99: float | None
    max: float | None
    netns: str


def group_rates(current: Snapshot, previous: Snapshot | None, path: str) -> dict[str, tuple[float, float]]:
    """Per cgroup, packets and bytes per second on ``path`` between two cumulative snapshots: the
    sum over its sockets present in both whose counters did not go back (LRU reuse)."""
    dt = current.time_s - previous.time_s if previous is not None else 0.0
    if previous is None or dt <= 0:
        return {}
    before = {s.key: s for s in previous.sockets}
    rates: dict[str, tuple[float, float]] = {}
    for sock in current.sockets:
        old = before.get(sock.key)
        if old is None:
            continue
        if path == SEND:
            dp, db = sock.tx_packets - old.tx_packets, sock.tx_bytes - old.tx_bytes
        else:
            dp, db = sock.rx_packets - old.rx_packets, sock.rx_bytes - old.rx_bytes
        if dp >= 0 and db >= 0:
            p, b = rates.get(group_key(sock), (0.0, 0.0))
            rates[group_key(sock)] = (p + dp / dt, b + db / dt)
    return rates


def group_rows(shown: Snapshot, current: Snapshot, previous: Snapshot | None, path: str) -> list[GroupRow]:
    """Rows of ``shown``'s sockets summed per cgroup: percentiles over the window on screen, rates
    between the last two cumulative snapshots (as socket_rows)."""
    rates = group_rates(current, previous, path)
    rows = []
    for group in group_sockets(shown.sockets):
        hist, top = group.hist(path), group.max_ns
        bound = min(hist.max_bound() or 0, top) if top else hist.max_bound()
        pkts_s, bytes_s = rates.get(group.key, (0.0, 0.0))
        rows.append(GroupRow(
            key=group.key, name=group.name, sockets=group.sockets, pkts_s=pkts_s, bytes_s=bytes_s,
            p50=capped(hist.percentile(50), top), p99=capped(hist.percentile(99), top),
            max=float(bound) if hist and bound else None, netns=" ".join(group.netns),
        ))
    rows.sort(key=lambda r: (r.pkts_s, r.p99 or 0), reverse=True)
    return rows[:MAX_ROWS]


#: column key, heading, (row -> Cell): the socket table's figures, then the group's full path
GROUP_COLUMNS = (
    ("name", "group", lambda r: Cell(r.name, r.name)),
    ("sockets", "socks", lambda r: Cell(r.sockets, str(r.sockets), right=True)),
    ("pkts_s", "pkts/s", lambda r: Cell(round(r.pkts_s, 1), fmt_count(r.pkts_s), right=True)),
    ("bytes_s", "bytes/s", lambda r: Cell(round(r.bytes_s), fmt_bytes(r.bytes_s), right=True)),
    ("p50", "p50", lambda r: Cell(r.p50, fmt_ns(r.p50), right=True)),
    ("p99", "p99", lambda r: Cell(r.p99, fmt_ns(r.p99), right=True)),
    ("max", "max", lambda r: Cell(r.max, fmt_ns(r.max), right=True)),
    ("netns", "netns", lambda r: Cell(r.netns, r.netns)),
    ("cgroup", "cgroup", lambda r: Cell(r.key, r.key)),
)


class GroupTable(SocketTable):
    """The socket table with one row per cgroup (the ``g`` key); same keyed rows and sorting."""

    DEFAULT_CSS = """
    GroupTable { height: 1fr; min-height: 4; }
    """
    columns_spec = GROUP_COLUMNS
    sort_cycle = ("pkts_s", "p99", "p50", "max", "bytes_s", "sockets", "name", "cgroup", "netns")
    ascending = frozenset({"name", "cgroup", "netns"})
