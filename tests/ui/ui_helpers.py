"""Shared pieces of the UI tests: sources with known behaviour and a bounded wait for app state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from fakes import FAST_S, FailingSource, FakeLiveSource
from textual.pilot import Pilot

from tui.app import NetlatApp
from tui.sources.synthetic import SyntheticSource

__all__ = ["FAST_S", "FailingSource", "FakeLiveSource", "synthetic_app", "until"]

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
