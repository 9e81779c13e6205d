"""The source runner: starts a Source, polls it at its pace and applies commands between two polls.

It runs in one thread (the dashboard's worker, the exporter's main loop) and is the only code that
touches the source after it is built, so starting, refiltering and closing never race. Other threads
talk to it through its ``set_*``/``clear``/``step`` methods, which only queue a command, and hear
from it through a :class:`RunnerSink`. No textual import: the app adapts the sink to its messages,
tests use a plain object.

It also keeps the :class:`~tui.model.timeline.Timeline` and sums the chosen window there: with a
thousand busy sockets that is a few hundred milliseconds a tick, which must not run on the UI's
event loop. Each poll becomes a :class:`Tick`.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from tui.errors import UserError
from tui.model.filters import Filters
from tui.model.snapshot import Snapshot
from tui.model.timeline import DEFAULT_WINDOW_S, Timeline
from tui.sources.base import Source, SourceError

#: A live source's second snapshot comes this soon (its first holds almost nothing yet).
FIRST_FRAME_S = 0.3
#: While waiting between polls, commands are looked at this often.
COMMAND_POLL_S = 0.05
#: Tracked allocations (net of frees) between two young-generation garbage collections; Python's
#: default is 700.
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Collect the young generation every GC_YOUNG_THRESHOLD allocations instead of every 700.

    A tick of a busy host builds some 100,000 short-lived, acyclic objects (a snapshot's sockets
    and their histograms, the window's sums): with the default threshold the collector ran
    between every few hundred of them, promoted them all to the old generation while they were
    still alive, and so ran a full collection of the whole heap every tick (100-300 ms of a 1 s
    tick at 20,000 moving sockets, bench/socket_table.py). With this threshold they are freed by
    their reference counts before a collection sees them. Cycles still get collected (later)."""
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, gen1, gen2)


@dataclass(frozen=True, slots=True)
class Tick:
    """One poll as the viewer needs it: the cumulative snapshot, the timeline so far (a copy: its
    intervals are immutable and shared) and the chosen window already summed."""

    snapshot: Snapshot
    previous: Snapshot | None  #: the snapshot before it from the same run (rates), None after a restart
    timeline: Timeline | None  #: None when the runner keeps none (the exporter)
    window_s: float | None  #: the window ``window`` covers (None: since start or clear)
    window: Snapshot  #: ``timeline.window(window_s)``
    stepped: bool = False  #: asked for by a step in a recording: shown even while paused

    def with_events_of(self, older: Tick) -> Tick:
        """This tick carrying ``older``'s sampled events too (a coalesced frame loses no event)."""
        if not older.snapshot.events:
            return self
        events = older.snapshot.events + self.snapshot.events
        return replace(self, snapshot=replace(self.snapshot, events=events))


class RunnerSink(Protocol):
    """What the runner reports, in order: starting, started, then snapshots until ended or failed."""

    def starting(self, description: str) -> None:
        """The source is being (re)started; compiling and attaching probes can take seconds."""

    def started(self, filters: Filters | None) -> None:
        """The source runs; ``filters`` are the ones just applied by a refilter, else None."""

    def tick(self, tick: Tick) -> None:
        """One poll's snapshot, with the timeline and the window."""

    def ended(self) -> None:
        """The source has no more snapshots."""

    def failed(self, reason: str) -> None:
        """The source could not start or went wrong; ``reason`` is one line for the user."""


@dataclass(frozen=True, slots=True)
class SetFilters:
    filters: Filters


@dataclass(frozen=True, slots=True)
class SetPaused:
    paused: bool


@dataclass(frozen=True, slots=True)
class SetWindow:
    seconds: float | None


@dataclass(frozen=True, slots=True)
class Clear:
    pass


@dataclass(frozen=True, slots=True)
class Step:
    snapshots: int  #: recorded snapshots to move by (negative: back)


Command = SetFilters | SetPaused | SetWindow | Clear | Step


class SourceRunner:
    """Drives one source in the calling thread; see the module docstring."""

    def __init__(
        self,
        source: Source,
        *,
        poll_every_s: float | None = None,
        taps: Iterable[Callable[[Snapshot], None]] = (),
        timeline: bool = True,
    ) -> None:
        self.source = source
        #: overrides the source's own pace (tests and screenshots replay demo data quickly)
        self.poll_every_s = poll_every_s
        #: called with every snapshot before the sink (e.g. a metrics endpoint), in the runner thread
        self.taps = tuple(taps)
        self.started = threading.Event()  #: run() has begun
        self.closed = threading.Event()  #: the source is closed (probes detached)
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._paused = False
        self._close_lock = threading.Lock()
        self.window_s: float | None = DEFAULT_WINDOW_S
        self._at_end = False  # a recording played to its end, still there to step back into
        self._last: Snapshot | None = None  # the snapshot of the previous tick
        self._filters = Filters()  # the last filters set (recorded/demo windows are narrowed by them)
        #: intervals for windows, heatmap and verdict; off where nobody looks at them (the exporter)
        self.keeps_timeline = timeline
        self.timeline = Timeline(source.interval_s)

    # ---- from any thread ----

    def set_filters(self, filters: Filters) -> None:
        """Apply ``filters`` between two polls (a live source recompiles its probes)."""
        self._commands.put(SetFilters(filters))

    def set_paused(self, paused: bool) -> None:
        """Recorded and demo data stop while paused; a live source keeps counting."""
        self._commands.put(SetPaused(paused))

    def set_window(self, seconds: float | None) -> None:
        """Sum the newest ``seconds`` of intervals for every later tick (None: since start/clear)."""
        self._commands.put(SetWindow(seconds))

    def clear(self) -> None:
        """Forget the timeline: later ticks count from the next snapshot on."""
        self._commands.put(Clear())

    def step(self, snapshots: int) -> None:
        """Recorded data: move the playback by ``snapshots`` and show that one (while paused too)."""
        self._commands.put(Step(snapshots))

    def close(self) -> None:
        """Close the source (idempotent); the fallback when the runner thread never ran or hangs."""
        with self._close_lock:
            try:
                self.source.close()
            finally:
                self.closed.set()

    # ---- in the runner thread ----

    def run(self, sink: RunnerSink, cancelled: threading.Event) -> None:
        """Start the source and report one snapshot per interval until ``cancelled`` or the end."""
        self.started.set()
        try:
            sink.starting("loading probes…" if self.source.live else "starting…")
            self.source.start()
            sink.started(None)
            while not cancelled.is_set():
                self._apply_commands(sink)
                if self._at_end or (self._paused and not self.source.live):
                    cancelled.wait(COMMAND_POLL_S)
                    continue
                snap = self.source.poll()
                if snap is None:
                    sink.ended()
                    if not hasattr(self.source, "seek"):
                        return
                    self._at_end = True  # a recording: wait for a step back (or quit)
                    continue
                self._report(snap, sink)
                if self._wait(cancelled, self._interval(snap)):
                    return
        except (SourceError, UserError) as exc:
            sink.failed(str(exc))
        except Exception as exc:  # the UI must say what broke, in one line, rather than die
            sink.failed(f"{type(exc).__name__}: {exc}")
        finally:
            self.close()

    def _report(self, snap: Snapshot, sink: RunnerSink) -> None:
        for tap in self.taps:
            tap(snap)
        if self.keeps_timeline:
            self.timeline.add(snap)
        sink.tick(self._tick(snap))

    def _tick(self, snap: Snapshot) -> Tick:
        previous, self._last = self._last, snap
        if previous is not None and (snap.seq <= previous.seq or snap.time_s < previous.time_s):
            previous = None  # a new run of the source (a refilter, a step, a replay of several runs)
        if not self.keeps_timeline:
            return Tick(snap, previous, None, None, snap)
        window = self.timeline.window(self.window_s) or snap
        if not self.source.live:
            # Recorded and demo data narrow what they give from a filter change on; a window may
            # still hold intervals from before it.
            window = self._filters.narrow(window)
        return Tick(snap, previous, self.timeline.copy(), self.window_s, window)

    def _interval(self, snap: Snapshot) -> float:
        wait = self.poll_every_s or self.source.interval_s
        if snap.seq == 1 and self.source.live:
            wait = min(wait, FIRST_FRAME_S)  # show real figures soon after attaching
        return wait

    def _wait(self, cancelled: threading.Event, seconds: float) -> bool:
        """Sleep until the next poll; wake early for a command. True when cancelled."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if cancelled.wait(min(left, COMMAND_POLL_S)):
                return True
            if not self._commands.empty():
                return False
        return cancelled.is_set()

    def _apply_commands(self, sink: RunnerSink) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            if isinstance(command, SetPaused):
                self._paused = command.paused
            elif isinstance(command, SetWindow):
                self.window_s = command.seconds
            elif isinstance(command, Clear):
                self.timeline.clear()
            elif isinstance(command, Step):
                self._step(command.snapshots, sink)
            else:
                if self.source.live:
                    sink.starting("recompiling probes for the new filters…")
                    self.timeline = Timeline(self.source.interval_s)  # counts restart from zero
                self.source.set_filters(command.filters)
                self._filters = command.filters
                sink.started(command.filters)

    def _step(self, snapshots: int, sink: RunnerSink) -> None:
        """Move a recording's playback and rebuild the timeline up to the new position."""
        seek = getattr(self.source, "seek", None)
        if seek is None:
            return  # live probes and demo data cannot move in time
        history = seek(snapshots)
        if not history:
            return
        self.timeline = Timeline(self.source.interval_s)
        for snap in history:
            self.timeline.add(snap)
        self._last = history[-2] if len(history) > 1 else None
        if self._at_end:
            self._at_end = False
            sink.started(None)  # playing (or paused) again after the end
        sink.tick(replace(self._tick(history[-1]), stepped=True))
