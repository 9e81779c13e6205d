"""The Source interface: what the worker thread drives and the UI never sees directly."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from tui.model.snapshot import Snapshot


class SourceError(Exception):
    """A source cannot start or go on; the message is one line a user can act on."""


@runtime_checkable
class Source(Protocol):
    """Gives Snapshots. ``start`` may be slow (compile, attach) and runs in the worker thread."""

    #: seconds between snapshots the source is designed for (replay: as recorded)
    interval_s: float

    def start(self) -> None:
        """Compile, attach, open files. Raises SourceError with a one-line reason."""

    def poll(self) -> Snapshot | None:
        """The next snapshot (cumulative since start), or None when the source has ended."""

    def close(self) -> None:
        """Detach and release everything. Idempotent; safe after a failed start."""


class SourceContext:
    """Mixin giving a Source ``with`` support: start on enter, close on exit."""

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
