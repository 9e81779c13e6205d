"""Latency heatmap of one stage: one column per interval (newest on the right), latency up, packets
as shade (Brendan Gregg's latency heatmaps), drawn as coloured Rich text blocks.

The widget keeps the series it was given and bins it (:func:`tui.model.heatmap.bin_heatmap`) at its
own size on every render, so a resize needs no new data; the app only calls :meth:`update_heatmap`.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

from tui.model.heatmap import SHADES, HeatGrid, bin_heatmap
from tui.model.timeline import StagePoint
from tui.widgets.status import fmt_seconds
from tui.widgets.units import fmt_count, fmt_ns

#: Colour per shade level 1..SHADES (viridis, from its visible blue up): bright enough on a dark
#: background that one packet shows.
RAMP = ("#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725", "#ffffff")
#: Glyph per pair of levels, so the shades also read without colour (NO_COLOR, monochrome).
GLYPHS = "░▒▓█"
#: Width of the latency labels on the left.
LABEL_W = 7
#: Lines around the cells: the title above, the time axis below.
CHROME_H = 2


def cell_style(level: int, shades: int = SHADES) -> tuple[str, str]:
    """(glyph, colour) of a shade level; level 0 is a blank."""
    if level <= 0:
        return " ", ""
    index = (level - 1) * len(RAMP) // shades
    return GLYPHS[index * len(GLYPHS) // len(RAMP)], RAMP[index]


def row_labels(grid: HeatGrid) -> list[str]:
    """A latency label on the top and bottom rows and every third row between, else blank."""
    labels = []
    for i, (low, _high) in enumerate(grid.rows):
        shown = i in (0, grid.height - 1) or (i % 3 == 0 and grid.height - 1 - i >= 2)
        labels.append(fmt_ns(low) if shown else "")
    return labels


class LatencyHeatmap(Widget):
    """One stage's latency over time; feed it with :meth:`update_heatmap`."""

    DEFAULT_CSS = """
    LatencyHeatmap { height: 1fr; min-height: 5; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._series: tuple[StagePoint | None, ...] = ()
        self._starts: tuple[float, ...] = ()
        self._title = ""
        self.grid: HeatGrid | None = None  #: the grid last drawn (for tests and tooltips)

    def update_heatmap(
        self, series: Sequence[StagePoint | None], starts: Sequence[float] = (), title: str = ""
    ) -> None:
        """Show ``series`` (one stage per interval, oldest first: ``Timeline.series(path, key)``),
        whose intervals start at ``starts`` (``Timeline.starts()``, as many, for the time axis), under
        ``title``. An empty series shows "no packets yet" (after a clear)."""
        self._series, self._starts, self._title = tuple(series), tuple(starts), title
        self.refresh()

    def render(self) -> RenderableType:
        width, height = self.content_region.width, self.content_region.height
        cols, rows = max(width - LABEL_W - 1, 1), max(height - CHROME_H, 1)
        grid = bin_heatmap(self._series, rows, cols, self._starts or None)
        self.grid = grid
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(self._title or "latency heatmap", style="bold")
        if not grid.height:
            out.append("  no packets yet", style="dim")
            return out
        out.append(f"  max {fmt_count(grid.top)}/cell", style="dim")
        out.append("  ")
        for level in (1, grid.shades // 2, grid.shades):
            glyph, colour = cell_style(level, grid.shades)
            out.append(glyph * 2, style=colour)
        out.append("\n")
        pad = cols - grid.width  # the newest column sits on the right edge
        for label, levels in zip(row_labels(grid), grid.levels, strict=True):
            out.append(f"{label:>{LABEL_W}} ", style="dim")
            out.append(" " * pad)
            for level in levels:
                glyph, colour = cell_style(level, grid.shades)
                out.append(glyph, style=colour)
            out.append("\n")
        out.append(self._axis(grid, cols), style="dim")
        return out

    def _axis(self, grid: HeatGrid, cols: int) -> str:
        """``-42s`` under the oldest column shown, ``now`` under the newest."""
        starts = [s for s in grid.starts if s is not None]
        left = ""
        if len(starts) >= 2:  # the oldest column's age at the end of the newest (one step on)
            left = f"-{fmt_seconds(starts[-1] - starts[0] + starts[-1] - starts[-2])}"
        room = cols - len("now")
        pad = cols - grid.width
        text = " " * pad + left
        return " " * (LABEL_W + 1) + text[:room].ljust(room) + "now"
