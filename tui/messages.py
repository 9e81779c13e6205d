"""Typed messages from the source worker thread to the app (the worker never touches a widget)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from textual.message import Message

from tui.model.filters import Filters
from tui.model.snapshot import Snapshot


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
    """One tick's immutable snapshot."""

    def __init__(self, snapshot: Snapshot, coalesce: bool = True) -> None:
        super().__init__()
        self.snapshot = snapshot
        #: whether a newer snapshot may replace this one while queued (off: every tick is shown)
        self.coalesce = coalesce

    def can_replace(self, message: Message) -> bool:
        """Whether a newer queued snapshot may supersede this one (Textual asks the older message).

        Snapshots are cumulative, so the newer one holds all this one's figures except its sampled
        events; it takes them over so that dropping a stale frame loses no event line.
        """
        if not self.coalesce or not isinstance(message, SnapshotReady):
            return False
        if self.snapshot.events:
            message.snapshot = replace(
                message.snapshot, events=self.snapshot.events + message.snapshot.events
            )
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

    def snapshot(self, snapshot: Snapshot) -> None:
        self._post(SnapshotReady(snapshot, self._coalesce))

    def ended(self) -> None:
        self._post(SourceEnded())

    def failed(self, reason: str) -> None:
        self._post(SourceFailed(reason))
