"""The viewer's state: what the person looks at (path, stage, window, pause, filters) and the ticks it
needs, turned into one :class:`~tui.view.frame.Frame` per refresh.

Pure Python and single-threaded (the app's event loop owns it): the source runner reports, the app
forwards each report here, then publishes :meth:`ViewerState.frame` to the screens. The heavy sums
(a window over every socket) arrive done in each :class:`~tui.sources.runner.Tick`; only a window
change while paused, or a clear, sums one here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

from tui.model.filters import Filters
from tui.model.snapshot import RECV, SEND, PacketEvent, Snapshot
from tui.model.timeline import DEFAULT_WINDOW_S, WINDOWS
from tui.sources.runner import Tick
from tui.view.frame import Frame, Status, View, build_status, build_view, next_stage

#: Sampled events kept for the socket drill-down's per-layer bars (since clear).
RECENT_EVENTS = 5000
#: Sampled events waiting for the event log while the view is paused or between refreshes.
UNSHOWN_EVENTS = 500


class ViewerState:
    """The dashboard's state; every method is called from the app's event loop."""

    def __init__(self, filters: Filters, running_state: str) -> None:
        self.filters = filters
        #: what the header says while snapshots flow: "live", "replay" or "demo"
        self.running_state = running_state
        self.state = "starting"
        self.path = SEND
        self.stage_key = ""
        self.paused = False
        self.window: float | None = DEFAULT_WINDOW_S  #: seconds of the rolling window, None: all
        self.latest: Tick | None = None  #: the newest tick received
        self.shown: Tick | None = None  #: the tick on screen (held while paused)
        self.view: View | None = None  #: the figures last shown
        self.recent_events: deque[PacketEvent] = deque(maxlen=RECENT_EVENTS)
        self._unshown_events: deque[PacketEvent] = deque(maxlen=UNSHOWN_EVENTS)

    @property
    def current(self) -> Snapshot | None:
        """The newest cumulative snapshot received."""
        return self.latest.snapshot if self.latest is not None else None

    # ---- what the source runner reports ----

    def starting(self, description: str) -> None:
        self.state = description

    def started(self, refiltered: Filters | None, restarted: bool) -> None:
        """The source runs. A (re)started source counts from zero: forget the old ticks.
        Recorded and demo data given new filters go on counting; only the kept events are narrowed."""
        if refiltered is not None:
            self.filters = refiltered
        if restarted:
            self.latest = self.shown = None
        elif refiltered is not None:
            kept = [e for e in self.recent_events if refiltered.matches(e)]
            self.recent_events = deque(kept, maxlen=RECENT_EVENTS)
            self._unshown_events = deque(
                (e for e in self._unshown_events if refiltered.matches(e)), maxlen=UNSHOWN_EVENTS
            )
        self.state = "paused" if self.paused else self.running_state

    def add(self, tick: Tick) -> None:
        self.latest = tick
        if not self.paused or self.shown is None or tick.stepped:
            self.shown = tick
        self.recent_events.extend(tick.snapshot.events)
        self._unshown_events.extend(tick.snapshot.events)

    def ended(self) -> None:
        self.state = "ended"

    def failed(self, reason: str) -> None:
        self.state = f"error: {reason}"

    # ---- what the person asks for ----

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        if not paused:
            self.shown = self.latest
        if self.state in (self.running_state, "paused"):
            self.state = "paused" if paused else self.running_state

    def toggle_path(self) -> str:
        return RECV if self.path == SEND else SEND

    def next_window(self) -> float | None:
        """The window after the current one in 1 s, 10 s, 60 s, all (the ``t`` key)."""
        at = WINDOWS.index(self.window) if self.window in WINDOWS else -1
        self.window = WINDOWS[(at + 1) % len(WINDOWS)]
        self._resum()
        return self.window

    def clear(self) -> None:
        """Count from now: the timeline on screen forgets its intervals (the runner's does too)."""
        self.recent_events.clear()
        if self.shown is not None and self.shown.timeline is not None:
            timeline = self.shown.timeline.copy()
            timeline.clear()
            self.shown = replace(self.shown, timeline=timeline)
            self._resum(force=True)

    def next_stage(self) -> None:
        if self.current is not None:
            self.stage_key = next_stage(self.current, self.path, self.stage_key)

    def _resum(self, force: bool = False) -> None:
        """Sum the window on screen here when the runner has not (a window change or a clear)."""
        tick = self.shown
        if tick is not None and tick.timeline is not None and (force or tick.window_s != self.window):
            window = tick.timeline.window(self.window) or tick.snapshot
            self.shown = replace(tick, window_s=self.window, window=window)

    # ---- what the screens get ----

    def frame(self, refigure: bool = True) -> Frame:
        """The frame to show now. ``refigure`` rebuilds the figures from the tick on screen (a key
        the person pressed, or a new tick while not paused); else only the header changes."""
        tick = self.shown
        if refigure and tick is not None:
            self._resum()
            tick = self.shown
            assert tick is not None
            self.view = build_view(
                tick.window, tick.snapshot, tick.previous, self.path, self.stage_key,
                timeline=tick.timeline, window=self.window, filters=self.filters,
            )
            self.stage_key = self.view.stage_key
            new_events = tuple(self._unshown_events)
            self._unshown_events.clear()
        else:
            new_events = ()
        return Frame(
            status=self.status(),
            view=self.view,
            new_events=new_events,
            recent_events=self.recent_events,
            loading=self.view is None and not self.state.startswith(("ended", "error")),
        )

    def status(self) -> Status:
        filters = self.current.meta.filters if self.current is not None else self.filters.describe()
        return build_status(self.state, self.path, self.view, filters)
