"""Drill-down into one socket: its own latency histogram and per-layer bars from its sampled packets."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui.model.groups import short_name
from tui.model.histogram import Histogram
from tui.model.snapshot import RECV, SEND, PacketEvent, SocketStats
from tui.view.frame import Frame, View
from tui.widgets.histogram import LatencyHistogram
from tui.widgets.layer_bars import LayerBars, LayerRow
from tui.widgets.units import fmt_bytes, fmt_count, fmt_ns


def belongs(event: PacketEvent, sock: SocketStats) -> bool:
    """Whether a sampled packet travelled on this socket (same protocol and 4-tuple, either way)."""
    if event.protocol != sock.protocol:
        return False
    ours = (sock.laddr, sock.lport, sock.raddr, sock.rport)
    return (event.laddr, event.lport, event.raddr, event.rport) in (
        ours,
        (ours[2], ours[3], ours[0], ours[1]),
    )


def sampled_layer_rows(
    view: View, sock: SocketStats, events: Iterable[PacketEvent]
) -> tuple[list[LayerRow], int]:
    """Per-stage rows of the socket's sampled packets on the view's path, and how many packets."""
    mine = [e for e in events if e.path == view.path and belongs(e, sock)]
    rows = []
    for spec in view.shown.plan.stages.get(view.path, ()):
        values = [e.stages_ns[spec.key] for e in mine if spec.key in e.stages_ns]
        rows.append(LayerRow.of(spec.label, spec.layer, Histogram.from_values(values)))
    rows.append(LayerRow.of("total", "", Histogram.from_values(e.total_ns for e in mine), total=True))
    return rows, len(mine)


def workload_line(sock: SocketStats) -> str:
    """The socket's workload (short name of its own cgroup) and network namespace."""
    netns = "unknown"
    if sock.netns:
        netns = f"{sock.netns_name} ({sock.netns})" if sock.netns_name else str(sock.netns)
    return f" {short_name(sock.cgroup)} · netns {netns}\n" if sock.cgroup else f" netns {netns}\n"


def cgroup_line(sock: SocketStats) -> str:
    """The full path of the socket's own cgroup below the cgroup2 mount (folded, never wrapped)."""
    if sock.cgroup:
        return f" cgroup {sock.cgroup}"
    if sock.cgroup_id:
        return f" cgroup id {sock.cgroup_id}, not under the cgroup2 mount"
    return " cgroup unknown"


def peer_lines(sock: SocketStats, rows: int) -> Text:
    """A UDP socket's busiest peers, ``rows`` at most, one line each (fits 80 columns)."""
    text = Text()
    if not sock.peers and not sock.peer_drops:
        return text
    shown = sock.peers[:rows]
    text.append(f" peers {sock.peer_count}", "bold")
    text.append(f" (busiest {len(shown)}, since start)" if len(shown) < sock.peer_count else " (since start)")
    if sock.peer_drops:
        text.append(f"  {fmt_count(sock.peer_drops)} datagrams dropped (peer table full)", "red")
    text.append(f"\n  {'peer':<26}{'tx':>8}{'rx':>8}{'send avg':>10}{'recv avg':>10}{'recv max':>10}\n",
                "dim")
    for peer in shown:
        name = peer.endpoint if len(peer.endpoint) <= 25 else "…" + peer.endpoint[-24:]
        text.append(
            f"  {name:<26}{fmt_count(peer.tx_packets):>8}{fmt_count(peer.rx_packets):>8}"
            f"{fmt_ns(peer.tx_mean_ns):>10}{fmt_ns(peer.rx_mean_ns):>10}"
            f"{fmt_ns(peer.rx_max_ns or None):>10}\n"
        )
    return text


def peer_rows_for_height(height: int) -> int:
    """Peer lines the drill-down can spare at a terminal height: 3 at 24 lines, 10 from 52."""
    return max(3, min(10, height // 4 - 3))


def socket_summary(sock: SocketStats, peer_rows: int = 5) -> Text:
    text = Text.assemble(
        (f" {sock.comm} ", "bold reverse"),
        f" pid {sock.pid}  {sock.protocol}  {sock.local} ⇄ {sock.remote}\n",
        workload_line(sock),
    )
    for path, pkts, nbytes in (
        (SEND, sock.tx_packets, sock.tx_bytes),
        (RECV, sock.rx_packets, sock.rx_bytes),
    ):
        hist = sock.hist(path)
        text.append(
            f" {path:<4} {fmt_count(pkts):>7} pkts {fmt_bytes(nbytes):>9}"
            f"  p50 {fmt_ns(hist.percentile(50)):>7}  p99 {fmt_ns(hist.percentile(99)):>7}\n"
        )
    text.append_text(peer_lines(sock, peer_rows))
    text.rstrip()  # the cgroup line follows (#sock-cgroup)
    return text


class SocketScreen(Screen):
    """One socket, on the path selected in the app; escape goes back."""

    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "back"),
        Binding("tab", "app.toggle_path", "switch path", show=False),
    ]

    DEFAULT_CSS = """
    SocketScreen #sock-summary { height: auto; background: $boost; }
    SocketScreen #sock-cgroup {
        height: auto; background: $boost; text-wrap: nowrap; text-overflow: fold; margin-bottom: 1;
    }
    SocketScreen #sock-charts { height: 1fr; }
    SocketScreen #sock-charts > * { width: 1fr; }
    """

    def __init__(self, socket_key: int) -> None:
        super().__init__()
        self.socket_key = socket_key

    def compose(self) -> ComposeResult:
        yield Static("", id="sock-summary")
        yield Static("", id="sock-cgroup")
        with Horizontal(id="sock-charts"):
            yield LatencyHistogram(id="sock-histogram")
            yield LayerBars(id="sock-layers")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "frame", self.show_frame)

    def show_frame(self, frame: Frame | None) -> None:
        if frame is not None and frame.view is not None:
            self.show_view(frame.view, frame.recent_events)

    def show_view(self, view: View, recent_events: Iterable[PacketEvent]) -> None:
        sock = next((s for s in view.shown.sockets if s.key == self.socket_key), None)
        summary = self.query_one("#sock-summary", Static)
        if sock is None:
            summary.update(" this socket is gone (closed, evicted or filtered out); escape to go back")
            self.query_one("#sock-cgroup", Static).update("")
            return
        summary.update(socket_summary(sock, peer_rows_for_height(self.app.size.height)))
        self.query_one("#sock-cgroup", Static).update(cgroup_line(sock))
        self.query_one(LatencyHistogram).update_snapshot(
            f"{sock.comm} {view.path} latency", sock.hist(view.path)
        )
        rows, sampled = sampled_layer_rows(view, sock, recent_events)
        self.query_one(LayerBars).update_snapshot(f"{view.path} by layer ({sampled} sampled packets)", rows)
