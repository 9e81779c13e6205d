"""The Source interface: what the worker thread drives and the UI never sees directly."""

from __future__ import annotations

from dataclasses import replace
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from tui.model.filters import Filters
from tui.model.snapshot import Snapshot


class SourceError(Exception):
    """A source cannot start or go on; the message is one line a user can act on."""


@runtime_checkable
class Source(Protocol):
    """Gives Snapshots. ``start`` may be slow (compile, attach) and runs in the worker thread."""

    #: seconds between snapshots the source is designed for (replay: as recorded)
    interval_s: float
    #: measures the kernel now: filters go into the probes (counts restart), and the source keeps
    #: counting while the view is paused; recorded and demo data pause with the view instead
    live: bool
    #: what the header calls it while it runs: "live", "replay" or "demo"
    kind: str

    def start(self) -> None:
        """Compile, attach, open files. Raises SourceError with a one-line reason."""

    def poll(self) -> Snapshot | None:
        """The next snapshot (cumulative since start), or None when the source has ended."""

    def close(self) -> None:
        """Detach and release everything. Idempotent; safe after a failed start."""

    def set_filters(self, filters: Filters) -> None:
        """Use these filters from the next poll on (a live source recompiles and restarts its
        counts; recorded and demo data narrow the sockets and events they itemise)."""


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


class ItemFilters:
    """Mixin for recorded and demo data: filters narrow the sockets and sampled events a snapshot
    itemises; the path histograms were aggregated before any filter and stay as they are."""

    live = False
    filters: Filters = Filters()

    def set_filters(self, filters: Filters) -> None:
        self.filters = filters

    def narrowed(self, snapshot: Snapshot) -> Snapshot:
        """``snapshot`` with this source's filters applied, and the header's text saying how."""
        if not self.filters:
            return snapshot
        text = f"{self.filters.describe()} (sockets+events only)"
        if snapshot.meta.filters:  # a recording of filtered probes
            text = f"{text}; recorded with {snapshot.meta.filters}"
        narrowed = self.filters.narrow(snapshot)
        return replace(narrowed, meta=replace(snapshot.meta, filters=text))
