"""The viewer's state: what the person looks at (path, stage, pause, clear, filters) and the snapshots
it needs, turned into one :class:`~tui.view.frame.Frame` per refresh.

Pure Python and single-threaded (the app's event loop owns it): the source runner reports, the app
forwards each report here, then publishes :meth:`ViewerState.frame` to the screens.
"""

from __future__ import annotations

from collections import deque

from tui.model.filters import Filters
from tui.model.snapshot import RECV, SEND, PacketEvent, Snapshot
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
        self.current: Snapshot | None = None
        self.previous: Snapshot | None = None
        self.baseline: Snapshot | None = None
        self.view: View | None = None  #: the figures last shown (frozen while paused)
        self.recent_events: deque[PacketEvent] = deque(maxlen=RECENT_EVENTS)
        self._unshown_events: deque[PacketEvent] = deque(maxlen=UNSHOWN_EVENTS)

    # ---- what the source runner reports ----

    def starting(self, description: str) -> None:
        self.state = description

    def started(self, refiltered: Filters | None, restarted: bool) -> None:
        """The source runs. A (re)started source counts from zero: forget the old baseline and rates.
        Recorded and demo data given new filters go on counting; only the kept events are narrowed."""
        if refiltered is not None:
            self.filters = refiltered
        if restarted:
            self.current = self.previous = self.baseline = None
        elif refiltered is not None:
            kept = [e for e in self.recent_events if refiltered.matches(e)]
            self.recent_events = deque(kept, maxlen=RECENT_EVENTS)
            self._unshown_events = deque(
                (e for e in self._unshown_events if refiltered.matches(e)), maxlen=UNSHOWN_EVENTS
            )
        self.state = "paused" if self.paused else self.running_state

    def add(self, snapshot: Snapshot) -> None:
        if self.current is not None and snapshot.time_s < self.current.time_s:
            self.baseline = None  # the source restarted (e.g. a replay of several runs)
        self.previous, self.current = self.current, snapshot
        self.recent_events.extend(snapshot.events)
        self._unshown_events.extend(snapshot.events)

    def ended(self) -> None:
        self.state = "ended"

    def failed(self, reason: str) -> None:
        self.state = f"error: {reason}"

    # ---- what the person asks for ----

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        if self.state in (self.running_state, "paused"):
            self.state = "paused" if paused else self.running_state

    def toggle_path(self) -> str:
        return RECV if self.path == SEND else SEND

    def clear(self) -> None:
        """Count from now: later figures are shown as the change since this snapshot."""
        self.baseline = self.current
        self.recent_events.clear()

    def next_stage(self) -> None:
        if self.current is not None:
            self.stage_key = next_stage(self.current, self.path, self.stage_key)

    # ---- what the screens get ----

    def frame(self, refigure: bool = True) -> Frame:
        """The frame to show now. ``refigure`` rebuilds the figures from the latest snapshot (a key
        the person pressed, or a new snapshot while not paused); else the view on screen stays and
        only the header changes."""
        if refigure and self.current is not None:
            self.view = build_view(self.current, self.previous, self.baseline, self.path, self.stage_key)
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
        return build_status(self.state, self.path, self.view, self.baseline, filters)
