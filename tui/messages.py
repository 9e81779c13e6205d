"""Typed messages from the source worker thread to the app (the worker never touches a widget)."""

from __future__ import annotations

from collections.abc import Callable

from textual.message import Message

from tui.model.filters import Filters
from tui.sources.runner import Tick


class SourceStarting(Message):
    """The worker is starting the source (compiling and attaching probes can take seconds)."""

    def __init__(self, description: str) -> None:
        super().__init__()
        self.description = description


class SourceStarted(Message):
    """The source is running; snapshots follow."""

    def __init__(self, filters: Filters | None, restarted: bool) -> None:
        super().__init__()
        #: the filters just applied by a refilter (None: the first start)
        self.filters = filters
        #: the source counts from zero again (a first start, or live probes rebuilt)
        self.restarted = restarted


class SnapshotReady(Message):
    """One poll: the snapshot, the timeline and the window (a :class:`~tui.sources.runner.Tick`)."""

    def __init__(self, tick: Tick, coalesce: bool = True) -> None:
        super().__init__()
        self.tick = tick
        #: whether a newer tick may replace this one while queued (off: every tick is shown)
        self.coalesce = coalesce

    def can_replace(self, message: Message) -> bool:
        """Whether a newer queued tick may supersede this one (Textual asks the older message).

        Snapshots are cumulative and the newer timeline holds every interval of this one, so the
        newer tick holds all this one's figures except its sampled events; it takes them over so
        that dropping a stale frame loses no event line.
        """
        if not self.coalesce or not isinstance(message, SnapshotReady):
            return False
        message.tick = message.tick.with_events_of(self.tick)
        return True


class SourceEnded(Message):
    """The source has no more snapshots (a replay reached its end, or a synthetic limit)."""


class SourceFailed(Message):
    """The source could not start or went wrong; ``reason`` is one line for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class MessageSink:
    """The source runner's reports (:class:`tui.sources.runner.RunnerSink`) as messages to the app."""

    def __init__(self, post: Callable[[Message], object], live: bool, coalesce: bool = True) -> None:
        self._post = post
        self._live = live
        self._coalesce = coalesce

    def starting(self, description: str) -> None:
        self._post(SourceStarting(description))

    def started(self, filters: Filters | None) -> None:
        self._post(SourceStarted(filters, restarted=filters is None or self._live))

    def tick(self, tick: Tick) -> None:
        self._post(SnapshotReady(tick, self._coalesce))

    def ended(self) -> None:
        self._post(SourceEnded())

    def failed(self, reason: str) -> None:
        self._post(SourceFailed(reason))
