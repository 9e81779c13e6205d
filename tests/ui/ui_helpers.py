"""Shared pieces of the UI tests: sources with known behaviour and a bounded wait for app state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from tui.app import NetlatApp
from tui.model.filters import Filters
from tui.model.snapshot import Snapshot
from tui.sources.base import SourceError
from tui.sources.synthetic import SyntheticSource

FAST_S = 0.05  #: poll interval of the test sources (the UI tests never assert on time)


class FakeLiveSource:
    """Synthetic data dressed as a live source: not paused with the view, filters set in place."""

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

    def start(self) -> None:
        raise SourceError("cannot attach tracepoint net:net_dev_queue: permission denied")

    def poll(self) -> Snapshot | None:  # pragma: no cover - never reached
        return None

    def close(self) -> None:
        pass


def synthetic_app(tmp_path: Path | None = None, limit: int | None = None) -> NetlatApp:
    """The dashboard on deterministic demo data: 0.5 s of virtual time per tick, polled every FAST_S."""
    source = SyntheticSource(seed=7, interval_s=0.5, limit=limit)
    # every tick is delivered (no coalescing) so that per-tick rates are the same on every run
    return NetlatApp(source, export_dir=tmp_path, poll_every_s=FAST_S, coalesce=False)


async def until(pilot: Pilot, ready: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Let the app run until ``ready()``; fail naming ``what`` if it never happens."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not ready():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)
