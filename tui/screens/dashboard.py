"""The main screen: status, histogram beside the per-layer bars, top sockets, sampled events."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer

from tui.model.snapshot import PathStats
from tui.model.timeline import window_name
from tui.view.frame import Frame, View
from tui.widgets.event_log import EventLog
from tui.widgets.groups import GroupTable, group_rows
from tui.widgets.heatmap import LatencyHeatmap
from tui.widgets.histogram import LatencyHistogram
from tui.widgets.layer_bars import LayerBars, LayerRow
from tui.widgets.sockets import SocketTable, socket_rows
from tui.widgets.status import StatusBar
from tui.widgets.verdict_line import VerdictLine

#: Narrow terminals stack the histogram above the bars instead of beside them.
BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]


def layer_rows(stats: PathStats) -> list[LayerRow]:
    """Every stage of a path in packet order, then its totals."""
    return [LayerRow.of(s.spec.label, s.spec.layer, s.hist, s.spec.total, s.max_ns, key=s.spec.key)
            for s in stats.all()]


def histogram_title(view: View) -> str:
    stats = view.shown.paths[view.path].get(view.stage_key)
    name = stats.spec.label if stats is not None else view.stage_key
    return f"{view.path} · {name}"


class DashboardScreen(Screen):
    """Everything at a glance; it shows each frame the app publishes.

    At 80 columns the chart panel shows the histogram or the heatmap (``h`` flips them); from
    ``WIDE`` columns on, both stand side by side."""

    HORIZONTAL_BREAKPOINTS = BREAKPOINTS
    #: tab flips the path here (dialogs keep tab for moving between fields)
    BINDINGS = [
        Binding("tab", "app.toggle_path", "switch path", show=False, tooltip="flip send / receive")
    ]

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield VerdictLine(id="verdict")
        with Horizontal(id="charts"):
            yield LatencyHistogram(id="histogram")
            yield LatencyHeatmap(id="heatmap")
            yield LayerBars(id="layers")
        yield SocketTable(id="sockets")
        yield GroupTable(id="groups")
        yield EventLog(id="events")
        yield Footer()

    @property
    def grouped(self) -> bool:
        """Whether the table shows one row per cgroup (the ``g`` key) rather than per socket."""
        return self.has_class("-groups")

    @property
    def table(self) -> SocketTable:
        """The table on screen: the sockets, or their groups."""
        return self.query_one(GroupTable) if self.grouped else self.query_one("#sockets", SocketTable)

    def on_mount(self) -> None:
        self.query_one(LatencyHistogram).loading = True
        self.watch(self.app, "frame", self.show_frame, init=False)

    def show_frame(self, frame: Frame | None) -> None:
        """Show one frame (published inside the app's ``batch_update``)."""
        if frame is None:
            return
        self.query_one(StatusBar).update_status(frame.status)
        self.query_one(LatencyHistogram).loading = frame.loading
        if frame.view is not None:
            self.show_view(frame.view, frame)

    def show_view(self, view: View, frame: Frame) -> None:
        stats = view.shown.paths[view.path]
        stage = stats.get(view.stage_key)
        window = window_name(view.window, frame.status.cleared)
        self.query_one(VerdictLine).update_verdict(view.verdict, window)
        self.query_one(LatencyHistogram).update_snapshot(
            histogram_title(view), stage.hist if stage else None, stage.max_ns if stage else 0
        )
        bars = self.query_one(LayerBars)
        bars.update_snapshot(f"{view.path} path by layer", layer_rows(stats),
                             dict(stats.counters))
        if view.timeline is not None:
            self.query_one(LatencyHeatmap).update_heatmap(
                view.timeline.series(view.path, view.stage_key), view.timeline.starts(),
                f"{stage.spec.label if stage else view.stage_key} over time",
            )
            bars.update_trends(view.timeline.trends(view.path), "p99 trend")
        if self.grouped:
            self.query_one(GroupTable).update_snapshot(
                group_rows(view.shown, view.current, view.previous, view.path)
            )
        else:
            self.query_one("#sockets", SocketTable).update_snapshot(
                socket_rows(view.shown, view.current, view.previous, view.path)
            )
        self.query_one(EventLog).update_snapshot(frame.new_events)
