"""The Textual app: runs a Source in a worker thread and shows its snapshots on the dashboard.

A :class:`~tui.sources.runner.SourceRunner` drives the source (live probes, replay or demo data) in
a worker thread and reports through messages; a :class:`~tui.view.state.ViewerState` holds what the
person looks at and turns snapshots into a :class:`~tui.view.frame.Frame`; the app publishes that
frame in one reactive that the screens watch. Layout lives in ``tui/screens/`` and ``app.tcss``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable
from textual.worker import get_current_worker

from tui.messages import (
    MessageSink,
    SnapshotReady,
    SourceEnded,
    SourceFailed,
    SourceStarted,
    SourceStarting,
)
from tui.model.filters import Filters
from tui.model.snapshot import SEND, Snapshot
from tui.model.summary import snapshot_summary
from tui.model.timeline import window_name
from tui.screens.dashboard import DashboardScreen
from tui.screens.filter_dialog import FilterDialog
from tui.screens.help import HelpScreen
from tui.screens.socket_detail import SocketScreen
from tui.sources.base import Source
from tui.sources.factory import make_source
from tui.sources.runner import SourceRunner
from tui.view.frame import Frame
from tui.view.state import ViewerState
from tui.widgets.sockets import SocketTable

#: How long run_app waits for the worker to close the source (detach probes) after the UI exits.
CLOSE_TIMEOUT_S = 15.0
#: After SIGTERM/SIGHUP and the source closed, the process ends within this many seconds regardless.
EXIT_GRACE_S = 3.0


class NetlatApp(App[int]):
    """Live per-layer TCP/IP latency dashboard."""

    TITLE = "netlat-tui"
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("s", "set_path('send')", "send", tooltip="show the send path"),
        Binding("r", "set_path('recv')", "receive", tooltip="show the receive path"),
        Binding("space,p", "toggle_pause", "pause", key_display="space",
                tooltip="freeze the view (replay and demo data stop; live probes keep counting)"),
        Binding("c", "clear", "clear", tooltip="count from now on (the header says 'since clear')"),
        Binding("f", "filter", "filter",
                tooltip="filter by pid, port, comm, protocol, address, cgroup, netns"),
        Binding("o", "sort", "sort", tooltip="sort the socket table by the next column"),
        Binding("d", "drill", "socket",
                tooltip="drill into the selected socket (enter on a row does the same)"),
        Binding("g", "toggle_groups", "groups",
                tooltip="one table row per cgroup (container, pod, unit), or per socket"),
        Binding("v", "next_stage", "stage", tooltip="histogram: next stage or total of the path"),
        Binding("t", "next_window", "window",
                tooltip="figures over the last 1 s, 10 s, 60 s, or since start/clear (default 10 s)"),
        Binding("h", "toggle_heatmap", "heatmap",
                tooltip="80 columns: the latency heatmap over time instead of the histogram"),
        Binding("comma", "step(-1)", "back", key_display=",", show=False,
                tooltip="replay: one snapshot back (pause first to stay there)"),
        Binding("full_stop", "step(1)", "forward", key_display=".", show=False,
                tooltip="replay: one snapshot forward"),
        Binding("less_than_sign", "step(-10)", "back 10", key_display="<", show=False,
                tooltip="replay: ten snapshots back"),
        Binding("greater_than_sign", "step(10)", "forward 10", key_display=">", show=False,
                tooltip="replay: ten snapshots forward"),
        Binding("e", "export", "export", tooltip="write the figures on screen as JSON"),
        Binding("w", "screenshot_svg", "screenshot", tooltip="save the screen as an SVG file"),
        Binding("question_mark,f1", "help", "help", key_display="?", tooltip="this help"),
        Binding("q", "quit", "quit", tooltip="detach the probes and quit (also ctrl+c)"),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
    ]

    path: reactive[str] = reactive(SEND, init=False)
    paused: reactive[bool] = reactive(False, init=False)
    #: what every screen shows; screens watch it (always_update: frames are never compared)
    frame: reactive[Frame | None] = reactive(None, init=False, always_update=True)

    def __init__(
        self,
        source: Source,
        *,
        filters: Filters | None = None,
        export_dir: Path | None = None,
        poll_every_s: float | None = None,
        coalesce: bool = True,
        taps: Iterable[Callable[[Snapshot], None]] = (),
    ) -> None:
        super().__init__()
        self.runner = SourceRunner(source, poll_every_s=poll_every_s, taps=taps)
        self.viewer = ViewerState(filters or Filters(), running_state=source.kind)
        self.export_dir = export_dir or Path.cwd()
        #: let a newer snapshot replace a queued one (a slow terminal stays current); tests that
        #: compare exact per-tick rates turn it off
        self.coalesce = coalesce

    # -- lifecycle ------------------------------------------------------------------------------

    def get_default_screen(self) -> Screen:
        return DashboardScreen()

    @property
    def dashboard(self) -> DashboardScreen:
        """The main screen (always at the bottom of the stack, whatever is pushed above it)."""
        screen = self.screen_stack[0]
        assert isinstance(screen, DashboardScreen)
        return screen

    def on_mount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            # Leave through the normal exit path so the worker detaches the probes and the
            # terminal is restored (Textual itself handles ctrl+c as a key).
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, signum: int) -> None:
        self.exit(return_code=128 + signum)
        # After SIGHUP the terminal is usually gone (ssh dropped) and Textual's shutdown can hang
        # writing to it (its output thread dies on EIO and the final put blocks on a full queue).
        # Do not linger: once the worker has closed the source (probes detached), give the normal
        # shutdown a moment, then leave regardless.
        threading.Thread(target=self._exit_after_signal, args=(128 + signum,), daemon=True).start()

    def _exit_after_signal(self, code: int) -> None:
        """Watchdog (daemon thread) for a signalled exit."""
        self.runner.closed.wait(CLOSE_TIMEOUT_S)
        time.sleep(EXIT_GRACE_S)
        os._exit(code)

    def on_ready(self) -> None:
        """The dashboard is on screen: show the loading state, then start the source in the worker."""
        self.publish(refigure=False)
        self.run_source()

    def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    @work(thread=True, exclusive=True, exit_on_error=False, group="source")
    def run_source(self) -> None:
        """The source runner's loop, in a thread: it reports through messages, never to a widget."""
        sink = MessageSink(self.post_message, live=self.runner.source.live, coalesce=self.coalesce)
        self.runner.run(sink, get_current_worker().cancelled_event)

    # -- messages from the worker ---------------------------------------------------------------

    def on_source_starting(self, message: SourceStarting) -> None:
        self.viewer.starting(message.description)
        self.publish(refigure=False)

    def on_source_started(self, message: SourceStarted) -> None:
        self.viewer.started(message.filters, message.restarted)
        self.publish(refigure=message.filters is not None)

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self.viewer.add(message.tick)
        if not self.viewer.paused or message.tick.stepped:
            self.publish()

    def on_source_ended(self, _: SourceEnded) -> None:
        self.viewer.ended()
        self.publish(refigure=False)

    def on_source_failed(self, message: SourceFailed) -> None:
        self.viewer.failed(message.reason)
        self.notify(message.reason, title="source failed", severity="error", timeout=30)
        self.publish(refigure=False)

    # -- rendering ------------------------------------------------------------------------------

    def publish(self, refigure: bool = True) -> None:
        """Hand the screens a new frame (figures rebuilt unless ``refigure`` is off)."""
        if not self.is_running or not self.screen_stack:
            return  # starting up or shutting down: queued reports must not touch widgets then
        with self.batch_update():
            self.frame = self.viewer.frame(refigure)

    def watch_path(self, path: str) -> None:
        self.viewer.path = path
        self.publish()

    def watch_paused(self, paused: bool) -> None:
        self.viewer.set_paused(paused)
        self.runner.set_paused(paused)
        self.publish()

    # -- actions --------------------------------------------------------------------------------

    def action_set_path(self, path: str) -> None:
        self.path = path

    def action_toggle_path(self) -> None:
        self.path = self.viewer.toggle_path()

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused

    def action_clear(self) -> None:
        """Count from now: the timeline, heatmap and every window start again."""
        self.viewer.clear()
        self.runner.clear()
        self.publish()
        self.notify("cleared: figures count from now", timeout=2)

    def action_next_stage(self) -> None:
        self.viewer.next_stage()
        self.publish()

    def action_next_window(self) -> None:
        window = self.viewer.next_window()
        self.runner.set_window(window)
        self.publish()
        self.notify(f"window: {window_name(window)}", timeout=2)

    def action_toggle_heatmap(self) -> None:
        self.dashboard.toggle_class("-heatmap")

    def action_step(self, snapshots: int) -> None:
        if self.runner.source.kind != "replay":
            self.notify("stepping is for replays (--replay FILE)", severity="warning", timeout=2)
            return
        self.runner.step(snapshots)

    def action_sort(self) -> None:
        dashboard = self.dashboard
        what = "groups" if dashboard.grouped else "sockets"
        self.notify(f"{what} sorted by {dashboard.table.cycle_sort()}", timeout=2)

    def action_toggle_groups(self) -> None:
        self.dashboard.toggle_class("-groups")
        self.publish()
        what = "one row per cgroup" if self.dashboard.grouped else "one row per socket"
        self.notify(f"table: {what}", timeout=2)

    def action_drill(self) -> None:
        if isinstance(self.screen, SocketScreen):
            return
        if self.dashboard.grouped:
            self.notify("groups have no drill-down: g lists the sockets again", severity="warning",
                        timeout=3)
            return
        key = self.dashboard.table.selected_key()
        if key is None:
            self.notify("no socket to show yet", severity="warning", timeout=2)
            return
        self.push_screen(SocketScreen(int(key)))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, SocketTable):
            self.action_drill()

    def action_filter(self) -> None:
        if self.runner.source.live:
            note = "Live: the probes are recompiled with the new filters; counts restart."
        else:
            note = "Recorded or demo data: filters narrow the sockets and sampled events only."
        self.push_screen(FilterDialog(self.viewer.filters, note), self._filters_chosen)

    def _filters_chosen(self, filters: Filters | None) -> None:
        if filters is not None and filters != self.viewer.filters:
            self.runner.set_filters(filters)  # applied between two polls; SourceStarted follows

    def action_export(self) -> None:
        """Write the snapshot on screen (since start or clear, filtered) as the summary JSON."""
        view = self.viewer.view
        if view is None:
            self.notify("nothing to export yet", severity="warning", timeout=2)
            return
        shown = view.shown
        timeline = view.timeline
        window = timeline.span(view.window) if timeline is not None else view.current.time_s
        target = unique_path(self.export_dir / f"netlat-snapshot-{shown.seq}.json")
        try:
            doc = snapshot_summary(shown, window, timeline=timeline, filters=self.viewer.filters)
            target.write_text(json.dumps(doc, indent=2) + "\n")
        except OSError as exc:
            self.notify(f"cannot write {target}: {exc.strerror}", severity="error")
            return
        self.notify(f"exported {target}", timeout=4)

    def action_screenshot_svg(self) -> None:
        try:
            saved = self.save_screenshot(path=str(self.export_dir))
        except OSError as exc:
            self.notify(f"cannot save screenshot: {exc.strerror}", severity="error")
            return
        self.notify(f"saved {saved}", timeout=4)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            status = self.viewer.status()
            hooks = ("probes: " + "; ".join(status.hooks),) if status.hooks else ()
            self.push_screen(HelpScreen(self.all_bindings(), notes=(*status.merged, *status.notes, *hooks)))

    def all_bindings(self) -> list[Binding]:
        """The app's keys plus the dashboard's own (tab), for the help screen and the palette."""
        return [b for b in (*self.BINDINGS, *DashboardScreen.BINDINGS) if isinstance(b, Binding)]

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every key's action, also in the command palette (ctrl+p)."""
        yield from super().get_system_commands(screen)
        for binding in self.all_bindings():
            if binding.description and binding.key != "ctrl+c":
                action = binding.action
                yield SystemCommand(
                    f"{binding.description} ({binding.key_display or binding.key})",
                    f"netlat-tui: {binding.description}",
                    lambda action=action: self.run_action(action),
                )


def unique_path(path: Path) -> Path:
    """``path``, or ``name-1.ext``, ``name-2.ext``... when it exists (never overwrite an export)."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def run_app(args: argparse.Namespace) -> int:
    """Build the source, run the dashboard (with the loopback workload if asked), close everything."""
    source = make_source(args)
    if source.live:
        from tui.system import preflight

        preflight()  # root, tracefs, bcc, headers: one-line errors before the screen opens
    from tui.exporter.server import dashboard_endpoint

    metrics = dashboard_endpoint(args)  # listening now: a busy port is one line before the screen
    app = NetlatApp(source, filters=args.filters, taps=(metrics.publish,) if metrics else ())
    try:
        if getattr(args, "workload", "none") == "loopback":
            from tui.workload import LoopbackWorkload

            with LoopbackWorkload():
                app.run()
        else:
            app.run()
    finally:
        app.workers.cancel_all()  # normally done by Textual already; makes sure the worker loop ends
        if not app.runner.started.is_set() or not app.runner.closed.wait(CLOSE_TIMEOUT_S):
            app.runner.close()  # the worker never ran or is stuck: close here rather than leak probes
        if metrics is not None:
            metrics.close()
    return app.return_code or 0
