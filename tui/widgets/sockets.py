"""Top sockets table: keyed rows updated in place, so the cursor and the sort survive each refresh."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from tui.model.groups import netns_label, short_name
from tui.model.snapshot import SEND, Snapshot, SocketStats
from tui.widgets.units import capped, fmt_bytes, fmt_count, fmt_ns

#: Rows shown at most (the busiest); the kernel's LRU map may hold thousands of sockets.
MAX_ROWS = 200


@dataclass(frozen=True, slots=True)
class SocketRow:
    """One socket's figures on the selected path, as the table shows them."""

    key: int
    pid: int
    comm: str
    proto: str
    local: str
    remote: str
    pkts_s: float
    bytes_s: float
    p50: float | None
    p99: float | None
    max: float | None
    group: str = ""  #: short name of the socket's cgroup (container, pod, unit)
    netns: str = ""  #: its network namespace: ip netns name, else inode


def socket_rows(
    shown: Snapshot, current: Snapshot, previous: Snapshot | None, path: str
) -> list[SocketRow]:
    """Rows of ``shown``'s sockets on ``path``: percentiles from ``shown`` (since start or clear),
    rates from the change between the cumulative ``previous`` and ``current`` snapshots."""
    dt = current.time_s - previous.time_s if previous is not None else 0.0
    now = {s.key: s for s in current.sockets}
    before = {s.key: s for s in previous.sockets} if previous is not None and dt > 0 else {}

    def moved(s: SocketStats) -> tuple[int, int]:
        return (s.tx_packets, s.tx_bytes) if path == SEND else (s.rx_packets, s.rx_bytes)

    def rates(sock: SocketStats) -> tuple[float, float]:
        old, new = before.get(sock.key), now.get(sock.key)
        # A socket new since the previous snapshot, or whose counters went back (a reused row), has
        # no rate.
        if old is not None and new is not None:
            (p0, b0), (p1, b1) = moved(old), moved(new)
            if p1 >= p0 and b1 >= b0:
                return (p1 - p0) / dt, (b1 - b0) / dt
        return 0.0, 0.0

    # Percentiles are most of a row's cost: with thousands of sockets, only those that can make
    # the MAX_ROWS shown (the busiest, and every socket tied with the last of them) get a p99,
    # the order's tie-break, and only the MAX_ROWS shown get a row.
    rated = sorted(((rates(s), s) for s in shown.sockets), key=lambda rs: rs[0][0], reverse=True)
    if len(rated) > MAX_ROWS:
        last = rated[MAX_ROWS - 1][0][0]
        rated = [rs for rs in rated if rs[0][0] >= last]
    ranked = [(rate, capped(sock.hist(path).percentile(99), sock.max_ns), sock) for rate, sock in rated]
    ranked.sort(key=lambda r: (r[0][0], r[1] or 0), reverse=True)
    rows = []
    for (rate_p, rate_b), p99, sock in ranked[:MAX_ROWS]:
        hist = sock.hist(path)
        # max_ns is the socket's exact largest value over both paths: an upper bound for either
        top = min(hist.max_bound() or 0, sock.max_ns) if sock.max_ns else hist.max_bound()
        rows.append(
            SocketRow(
                key=sock.key, pid=sock.pid, comm=sock.comm, proto=sock.protocol,
                local=sock.local, remote=sock.remote, pkts_s=rate_p, bytes_s=rate_b,
                p50=capped(hist.percentile(50), sock.max_ns), p99=p99,
                max=float(top) if hist and top else None,
                group=short_name(sock.cgroup) if sock.cgroup else "", netns=netns_label(sock),
            )
        )
    return rows


class Cell:
    """A table cell that shows text but sorts by a raw value (None sorts lowest)."""

    __slots__ = ("text", "value")

    def __init__(self, value: Any, text: str, right: bool = False) -> None:
        self.value = value
        self.text = Text(text, justify="right" if right else "left", no_wrap=True)

    def __rich__(self) -> Text:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cell) and (self.value, self.text.plain) == (other.value, other.text.plain)

    def __hash__(self) -> int:
        return hash((self.value, self.text.plain))

    def sort_key(self) -> tuple[bool, Any]:
        return (self.value is not None, self.value if self.value is not None else 0)


#: column key, heading, (row -> Cell); figures before endpoints so 80 columns show them all
COLUMNS: tuple[tuple[str, str, Any], ...] = (
    ("pid", "pid", lambda r: Cell(r.pid, str(r.pid), right=True)),
    ("comm", "comm", lambda r: Cell(r.comm, r.comm)),
    ("proto", "proto", lambda r: Cell(r.proto, r.proto)),
    ("pkts_s", "pkts/s", lambda r: Cell(round(r.pkts_s, 1), fmt_count(r.pkts_s), right=True)),
    ("bytes_s", "bytes/s", lambda r: Cell(round(r.bytes_s), fmt_bytes(r.bytes_s), right=True)),
    ("p50", "p50", lambda r: Cell(r.p50, fmt_ns(r.p50), right=True)),
    ("p99", "p99", lambda r: Cell(r.p99, fmt_ns(r.p99), right=True)),
    # the workload right after the latency it suffers: in view at 80 columns, max scrolls
    ("group", "group", lambda r: Cell(r.group, r.group)),
    ("max", "max", lambda r: Cell(r.max, fmt_ns(r.max), right=True)),
    ("local", "local", lambda r: Cell(r.local, r.local)),
    ("remote", "remote", lambda r: Cell(r.remote, r.remote)),
    ("netns", "netns", lambda r: Cell(r.netns, r.netns)),
)
#: the order the sort key cycles through; numbers sort descending, names ascending
SORT_ORDER = ("pkts_s", "p99", "p50", "max", "bytes_s", "pid", "comm", "group", "local", "remote",
              "proto", "netns")
_ASCENDING = {"pid", "comm", "proto", "local", "remote", "group", "netns"}


class SocketTable(DataTable):
    """The busiest sockets on the selected path; ``sort_column`` picks the order."""

    DEFAULT_CSS = """
    SocketTable { height: 1fr; min-height: 4; }
    """
    #: column key, heading, (row -> Cell); the sort cycle; the columns sorted ascending
    columns_spec: tuple[tuple[str, str, Any], ...] = COLUMNS
    sort_cycle: tuple[str, ...] = SORT_ORDER
    ascending: frozenset[str] = frozenset(_ASCENDING)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.sort_column = self.sort_cycle[0]

    def on_mount(self) -> None:
        for key, heading, _ in self.columns_spec:
            self.add_column(heading, key=key)

    def update_snapshot(self, rows: list[Any]) -> None:
        """Add, update in place and drop rows by socket key, then re-apply the sort."""
        at_key = self.selected_key()
        wanted = {str(r.key): r for r in rows}
        for row_key in [k for k in self.rows if k.value not in wanted]:
            self.remove_row(row_key)
        present = {k.value for k in self.rows}
        for key, row in wanted.items():
            cells = [make(row) for _, _, make in self.columns_spec]
            if key not in present:
                self.add_row(*cells, key=key)
                continue
            for (column, _, _), cell in zip(self.columns_spec, cells, strict=True):
                if self.get_cell(key, column) != cell:
                    self.update_cell(key, column, cell, update_width=True)
        self.apply_sort()
        if at_key is not None and at_key in wanted:
            self.move_cursor(row=self.get_row_index(at_key), animate=False)

    def selected_key(self) -> str | None:
        """Row key (socket key as text) under the cursor, or None for an empty table."""
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def cycle_sort(self) -> str:
        """Sort by the next column in SORT_ORDER; returns its heading."""
        order = self.sort_cycle
        self.sort_column = order[(order.index(self.sort_column) + 1) % len(order)]
        self.sort_by(self.sort_column)
        return self.heading(self.sort_column)

    def sort_by(self, column: str) -> None:
        at_key = self.selected_key()
        self.sort_column = column
        self.apply_sort()
        if at_key is not None:
            self.move_cursor(row=self.get_row_index(at_key), animate=False)

    def apply_sort(self) -> None:
        self.sort(self.sort_column, key=Cell.sort_key, reverse=self.sort_column not in self.ascending)

    def heading(self, column: str) -> str:
        return next(h for k, h, _ in self.columns_spec if k == column)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))
