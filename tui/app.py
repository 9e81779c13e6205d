"""The Textual app: runs a Source in a worker thread and shows its snapshots on the dashboard.

The app holds the little state a viewer needs (selected path, paused, clear baseline, filters) and
turns each snapshot into a :class:`~tui.screens.view_model.View` for the screens. Layout lives in
``tui/screens/`` and ``app.tcss``; the source (live probes, replay or demo data) is never touched
from the event loop: start, poll and close all run in the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable
from textual.worker import get_current_worker

from tui.errors import UserError
from tui.messages import SnapshotReady, SourceEnded, SourceFailed, SourceStarted, SourceStarting
from tui.model.filters import Filters
from tui.model.snapshot import RECV, SEND, PacketEvent, Snapshot
from tui.model.summary import snapshot_summary
from tui.screens.dashboard import DashboardScreen
from tui.screens.filter_dialog import FilterDialog
from tui.screens.help import HelpScreen
from tui.screens.socket_detail import SocketScreen
from tui.screens.view_model import View, build_status, build_view, event_matches, next_stage
from tui.sources.base import Source, SourceError
from tui.sources.factory import is_live, make_source, pauses_with_view, unwrap
from tui.sources.replay import RecordingSource, ReplaySource
from tui.widgets.sockets import SocketTable

#: Sampled events kept for the socket drill-down's per-layer bars (since clear).
RECENT_EVENTS = 5000
#: A live source's second snapshot comes this soon (its first holds almost nothing yet).
FIRST_FRAME_S = 0.3
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
        Binding("f", "filter", "filter", tooltip="filter by pid, port, comm, protocol, address"),
        Binding("o", "sort", "sort", tooltip="sort the socket table by the next column"),
        Binding("d", "drill", "socket",
                tooltip="drill into the selected socket (enter on a row does the same)"),
        Binding("v", "next_stage", "stage", tooltip="histogram: next stage or total of the path"),
        Binding("e", "export", "export", tooltip="write the figures on screen as JSON"),
        Binding("w", "screenshot_svg", "screenshot", tooltip="save the screen as an SVG file"),
        Binding("question_mark,f1", "help", "help", key_display="?", tooltip="this help"),
        Binding("q", "quit", "quit", tooltip="detach the probes and quit (also ctrl+c)"),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
    ]

    path: reactive[str] = reactive(SEND, init=False)
    paused: reactive[bool] = reactive(False, init=False)

    def __init__(
        self,
        source: Source,
        *,
        filters: Filters | None = None,
        rebuild: Callable[[Filters], Source] | None = None,
        export_dir: Path | None = None,
        poll_every_s: float | None = None,
        coalesce: bool = True,
    ) -> None:
        super().__init__()
        self.source = source
        self.filters = filters or Filters()
        #: builds a new live source for new filters (None: filter the view instead)
        self.rebuild = rebuild if is_live(source) else None
        self.export_dir = export_dir or Path.cwd()
        #: overrides the source's own pace (tests and screenshots replay demo data quickly)
        self.poll_every_s = poll_every_s
        #: let a newer snapshot replace a queued one (a slow terminal stays current); tests that
        #: compare exact per-tick rates turn it off
        self.coalesce = coalesce
        self.state = "starting"
        #: what the header says while snapshots flow: live probes, a replayed file or demo data
        self.running_state = running_state(source)
        self.stage_key = ""
        self.current: Snapshot | None = None
        self.previous: Snapshot | None = None
        self.baseline: Snapshot | None = None
        self.view: View | None = None
        self.recent_events: deque[PacketEvent] = deque(maxlen=RECENT_EVENTS)
        self._unshown_events: deque[PacketEvent] = deque(maxlen=500)
        self._pending_filters: Filters | None = None
        self._pause_flag = threading.Event()  # read by the worker thread
        self.worker_started = threading.Event()
        self.source_closed = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------

    def get_default_screen(self) -> Screen:
        return DashboardScreen()

    @property
    def is_running_dashboard(self) -> bool:
        """False while starting up or shutting down: queued snapshots must not touch widgets then."""
        return (
            self.is_running
            and bool(self.screen_stack)
            and isinstance(self.screen_stack[0], DashboardScreen)
        )

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
        self.source_closed.wait(CLOSE_TIMEOUT_S)
        time.sleep(EXIT_GRACE_S)
        os._exit(code)

    def on_ready(self) -> None:
        """The dashboard is on screen: show the loading state, then start the source in the worker."""
        self.dashboard.query_one("#histogram").loading = True
        self.show_status()
        self.run_source()

    def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    @work(thread=True, exclusive=True, exit_on_error=False, group="source")
    def run_source(self) -> None:
        """Start the source, then post one snapshot per interval until cancelled or ended."""
        worker = get_current_worker()
        source = self.source
        self.worker_started.set()
        try:
            self.post_message(SourceStarting(self._starting_text(source)))
            source.start()
            self.post_message(SourceStarted())
            while not worker.is_cancelled:
                if self._pending_filters is not None:
                    filters, self._pending_filters = self._pending_filters, None
                    self.post_message(SourceStarting("recompiling probes for the new filters…"))
                    source = self.source = self._refilter(source, filters)
                    self.post_message(SourceStarted())
                if self._pause_flag.is_set() and pauses_with_view(source):
                    worker.cancelled_event.wait(0.1)
                    continue
                snapshot = source.poll()
                if snapshot is None:
                    self.post_message(SourceEnded())
                    break
                self.post_message(SnapshotReady(snapshot, self.coalesce))
                wait = self.poll_every_s or source.interval_s
                if snapshot.seq == 1 and is_live(source):
                    wait = min(wait, FIRST_FRAME_S)  # show real figures soon after attaching
                if worker.cancelled_event.wait(wait):
                    break
        except (SourceError, UserError) as exc:
            self.post_message(SourceFailed(str(exc)))
        except Exception as exc:  # the UI must say what broke, in one line, rather than die
            self.post_message(SourceFailed(f"{type(exc).__name__}: {exc}"))
        finally:
            try:
                source.close()
            finally:
                self.source_closed.set()

    def _refilter(self, source: Source, filters: Filters) -> Source:
        """Apply new filters to a live source: in place if it can, else close and rebuild it."""
        if hasattr(source, "set_filters"):
            source.set_filters(filters)
            return source
        assert self.rebuild is not None
        recorder = source if isinstance(source, RecordingSource) else None
        (recorder.inner if recorder else source).close()
        fresh = self.rebuild(filters)
        fresh.start()
        if recorder is not None:
            recorder.inner = fresh
            return recorder
        return fresh

    @staticmethod
    def _starting_text(source: Source) -> str:
        return "loading probes…" if is_live(source) else "starting…"

    # -- messages from the worker ---------------------------------------------------------------

    def on_source_starting(self, message: SourceStarting) -> None:
        self.state = message.description
        self.show_status()

    def on_source_started(self, _: SourceStarted) -> None:
        # A (re)started source counts from zero again: forget the old baseline and rates.
        self.current = self.previous = self.baseline = None
        self.state = "paused" if self.paused else self.running_state
        self.show_status()

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        snap = message.snapshot
        if self.current is not None and snap.time_s < self.current.time_s:
            self.baseline = None  # the source restarted (e.g. a replay of several runs)
        self.previous, self.current = self.current, snap
        events = [e for e in snap.events if self.rebuild is not None or event_matches(e, self.filters)]
        self.recent_events.extend(events)
        self._unshown_events.extend(events)
        if not self.paused:
            self.refresh_view()

    def on_source_ended(self, _: SourceEnded) -> None:
        self.state = "ended"
        if self.is_running_dashboard:
            self.dashboard.query_one("#histogram").loading = False
        self.show_status()

    def on_source_failed(self, message: SourceFailed) -> None:
        self.state = f"error: {message.reason}"
        if self.is_running_dashboard:
            self.dashboard.query_one("#histogram").loading = False
        self.notify(message.reason, title="source failed", severity="error", timeout=30)
        self.show_status()

    # -- rendering ------------------------------------------------------------------------------

    def refresh_view(self) -> None:
        """Rebuild the View from the latest snapshot and hand it to every screen showing it."""
        if self.current is None or not self.is_running_dashboard:
            return
        view_filters = Filters() if self.rebuild is not None else self.filters
        self.view = build_view(
            self.current, self.previous, self.baseline, view_filters, self.path, self.stage_key
        )
        self.stage_key = self.view.stage_key
        events = list(self._unshown_events)
        self._unshown_events.clear()
        with self.batch_update():
            self.dashboard.query_one("#histogram").loading = False
            for screen in self.screen_stack:
                if isinstance(screen, DashboardScreen):
                    screen.update_view(self.view, events)
                elif isinstance(screen, SocketScreen):
                    screen.update_view(self.view, self.recent_events)
            self.show_status()

    def show_status(self) -> None:
        if not self.is_running_dashboard:
            return
        self.dashboard.update_status(
            build_status(self.state, self.path, self.view, self.baseline, self._filters_text())
        )

    def _filters_text(self) -> str:
        text = self.filters.describe()
        if text and self.rebuild is None:
            text = f"{text} (sockets+events only)"
        recorded = self.current.meta.filters if self.current is not None else ""
        if recorded and self.rebuild is None:  # a replay of filtered probes
            text = f"{text}; recorded with {recorded}" if text else f"recorded with {recorded}"
        return text

    def watch_path(self) -> None:
        self.refresh_view()
        self.show_status()

    def watch_paused(self, paused: bool) -> None:
        if paused:
            self._pause_flag.set()
        else:
            self._pause_flag.clear()
        if self.state in (self.running_state, "paused"):
            self.state = "paused" if paused else self.running_state
        self.refresh_view()
        self.show_status()

    # -- actions --------------------------------------------------------------------------------

    def action_set_path(self, path: str) -> None:
        self.path = path

    def action_toggle_path(self) -> None:
        self.path = RECV if self.path == SEND else SEND

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused

    def action_clear(self) -> None:
        """Count from now: later figures are shown as the change since this snapshot."""
        self.baseline = self.current
        self.recent_events.clear()
        self.refresh_view()
        self.notify("cleared: figures count from now", timeout=2)

    def action_next_stage(self) -> None:
        if self.current is not None:
            self.stage_key = next_stage(self.current, self.path, self.stage_key)
            self.refresh_view()

    def action_sort(self) -> None:
        table = self.dashboard.query_one(SocketTable)
        self.notify(f"sockets sorted by {table.cycle_sort()}", timeout=2)

    def action_drill(self) -> None:
        if isinstance(self.screen, SocketScreen):
            return
        key = self.dashboard.query_one(SocketTable).selected_key()
        if key is None:
            self.notify("no socket to show yet", severity="warning", timeout=2)
            return
        self.push_screen(SocketScreen(int(key)))
        self.call_after_refresh(self.refresh_view)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, SocketTable):
            self.action_drill()

    def action_filter(self) -> None:
        if self.rebuild is not None:
            note = "Live: the probes are recompiled with the new filters; counts restart."
        else:
            note = "Recorded or demo data: filters narrow the sockets and sampled events only."
        self.push_screen(FilterDialog(self.filters, note), self._filters_chosen)

    def _filters_chosen(self, filters: Filters | None) -> None:
        if filters is None or filters == self.filters:
            return
        self.filters = filters
        if self.rebuild is not None:
            self._pending_filters = filters  # the worker applies it between two polls
        else:
            self.recent_events = deque(
                (e for e in self.recent_events if event_matches(e, filters)), maxlen=RECENT_EVENTS
            )
        self.refresh_view()
        self.show_status()

    def action_export(self) -> None:
        """Write the snapshot on screen (since start or clear, filtered) as the summary JSON."""
        if self.view is None:
            self.notify("nothing to export yet", severity="warning", timeout=2)
            return
        shown = self.view.shown
        window = self.current.time_s - (self.baseline.time_s if self.baseline else 0.0)
        target = unique_path(self.export_dir / f"netlat-snapshot-{shown.seq}.json")
        try:
            target.write_text(json.dumps(snapshot_summary(shown, window), indent=2) + "\n")
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
            self.push_screen(HelpScreen(self.all_bindings()))

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


def running_state(source: Source) -> str:
    if is_live(source):
        return "live"
    return "replay" if isinstance(unwrap(source), ReplaySource) else "demo"


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
    rebuild = None
    if is_live(source):
        from tui.system import preflight

        preflight()  # root, tracefs, bcc, headers: one-line errors before the screen opens
        rebuild = lambda filters: make_source(args, filters, record=False)  # noqa: E731
    app = NetlatApp(source, filters=args.filters, rebuild=rebuild)
    try:
        if getattr(args, "workload", "none") == "loopback":
            from tui.workload import LoopbackWorkload

            with LoopbackWorkload():
                app.run()
        else:
            app.run()
    finally:
        app.workers.cancel_all()  # normally done by Textual already; makes sure the worker loop ends
        if not app.worker_started.is_set() or not app.source_closed.wait(CLOSE_TIMEOUT_S):
            app.source.close()  # the worker never ran or is stuck: close here rather than leak probes
    return app.return_code or 0
