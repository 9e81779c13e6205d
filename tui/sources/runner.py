"""The source runner: starts a Source, polls it at its pace and applies commands between two polls.

It runs in one thread (the dashboard's worker, the exporter's main loop) and is the only code that
touches the source after it is built, so starting, refiltering and closing never race. Other threads
talk to it through :meth:`SourceRunner.set_filters` / :meth:`SourceRunner.set_paused`, which only
queue a command, and hear from it through a :class:`RunnerSink`. No textual import: the app adapts
the sink to its messages, tests use a plain object.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from tui.errors import UserError
from tui.model.filters import Filters
from tui.model.snapshot import Snapshot
from tui.sources.base import Source, SourceError

#: A live source's second snapshot comes this soon (its first holds almost nothing yet).
FIRST_FRAME_S = 0.3
#: While waiting between polls, commands are looked at this often.
COMMAND_POLL_S = 0.05


class RunnerSink(Protocol):
    """What the runner reports, in order: starting, started, then snapshots until ended or failed."""

    def starting(self, description: str) -> None:
        """The source is being (re)started; compiling and attaching probes can take seconds."""

    def started(self, filters: Filters | None) -> None:
        """The source runs; ``filters`` are the ones just applied by a refilter, else None."""

    def snapshot(self, snapshot: Snapshot) -> None:
        """One tick's snapshot."""

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


Command = SetFilters | SetPaused


class SourceRunner:
    """Drives one source in the calling thread; see the module docstring."""

    def __init__(
        self,
        source: Source,
        *,
        poll_every_s: float | None = None,
        taps: Iterable[Callable[[Snapshot], None]] = (),
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

    # ---- from any thread ----

    def set_filters(self, filters: Filters) -> None:
        """Apply ``filters`` between two polls (a live source recompiles its probes)."""
        self._commands.put(SetFilters(filters))

    def set_paused(self, paused: bool) -> None:
        """Recorded and demo data stop while paused; a live source keeps counting."""
        self._commands.put(SetPaused(paused))

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
                if self._paused and not self.source.live:
                    cancelled.wait(COMMAND_POLL_S)
                    continue
                snap = self.source.poll()
                if snap is None:
                    sink.ended()
                    return
                for tap in self.taps:
                    tap(snap)
                sink.snapshot(snap)
                if self._wait(cancelled, self._interval(snap)):
                    return
        except (SourceError, UserError) as exc:
            sink.failed(str(exc))
        except Exception as exc:  # the UI must say what broke, in one line, rather than die
            sink.failed(f"{type(exc).__name__}: {exc}")
        finally:
            self.close()

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
            else:
                if self.source.live:
                    sink.starting("recompiling probes for the new filters…")
                self.source.set_filters(command.filters)
                sink.started(command.filters)
