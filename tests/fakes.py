"""Sources with known behaviour, shared by the UI and the runner tests (no textual, no bcc)."""

from __future__ import annotations

from tui.model.filters import Filters
from tui.model.snapshot import Snapshot
from tui.sources.base import SourceError
from tui.sources.synthetic import SyntheticSource

FAST_S = 0.05  #: poll interval of the test sources (the tests never assert on time)


class FakeLiveSource:
    """Synthetic data dressed as a live source: not paused with the view, filters set in place."""

    live = True
    kind = "live"

    def __init__(self) -> None:
        self.interval_s = FAST_S
        self._inner = SyntheticSource(seed=7, interval_s=0.5)
        self.filters_seen: list[Filters] = []
        self.closed = 0

    def start(self) -> None:
        self._inner.start()

    def poll(self) -> Snapshot | None:
        return self._inner.poll()

    def close(self) -> None:
        self.closed += 1

    def set_filters(self, filters: Filters) -> None:
        self.filters_seen.append(filters)


class FailingSource:
    """A source whose start fails the way a live source does when it cannot attach."""

    interval_s = FAST_S
    live = True
    kind = "live"

    def start(self) -> None:
        raise SourceError("cannot attach tracepoint net:net_dev_queue: permission denied")

    def poll(self) -> Snapshot | None:  # pragma: no cover - never reached
        return None

    def close(self) -> None:
        pass

    def set_filters(self, filters: Filters) -> None:  # pragma: no cover - never reached
        pass
