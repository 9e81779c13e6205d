#!/usr/bin/env python3
"""Render the README screenshots (SVG) from the deterministic synthetic source.

Usage: .venv/bin/python scripts/make_screenshots.py [OUTPUT_DIR]   (default: screenshots/)

Each view runs the real app headless (Textual's run_test) at a fixed terminal size on demo data
that ends after a fixed number of ticks, then exports the screen with save_screenshot.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tui.app import NetlatApp
from tui.sources.synthetic import SyntheticSource
from tui.widgets.histogram import LatencyHistogram

REPO = Path(__file__).resolve().parents[1]
TICKS = 20  # past the demo's qdisc episode (synthetic.DEMO_STEP), so the verdict and heatmap show it
#: file name, terminal size, keys pressed once the data has ended
VIEWS = (
    ("send.svg", (120, 36), ()),
    ("receive.svg", (120, 36), ("r",)),
    ("socket.svg", (120, 36), ("r", "d")),
    ("groups.svg", (120, 36), ("g",)),
    ("help.svg", (100, 32), ("question_mark",)),
    ("send-80x24.svg", (80, 24), ()),
    ("heatmap-80x24.svg", (80, 24), ("h",)),
)


async def settle(app: NetlatApp, pilot) -> None:  # type: ignore[no-untyped-def]
    """Wait for the demo data to end and every histogram to finish its throttled redraw."""
    for _ in range(400):
        pending = any(h._timer_pending for s in app.screen_stack for h in s.query(LatencyHistogram))
        if app.viewer.state == "ended" and not pending:
            return
        await pilot.pause(0.05)
    raise SystemExit("screenshot app never settled")


async def shoot(name: str, size: tuple[int, int], keys: tuple[str, ...], out: Path) -> Path:
    source = SyntheticSource(seed=7, interval_s=1.0, limit=TICKS)
    app = NetlatApp(source, poll_every_s=0.02, coalesce=False)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        await pilot.pause(0.3)
        if keys:
            await pilot.press(*keys)
            await pilot.pause(0.3)
            await settle(app, pilot)
        return Path(app.save_screenshot(filename=name, path=str(out)))


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else REPO / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    for name, size, keys in VIEWS:
        print(asyncio.run(shoot(name, size, keys, out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
