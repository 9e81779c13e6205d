"""Per-layer breakdown: one bar per stage of a path (median solid, p99 shaded), slowest marked,
and, once given trends, a sparkline of each stage's p99 over the last minutes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

from tui.model.histogram import Histogram
from tui.widgets.sparkline import spark
from tui.widgets.units import capped, fmt_count, fmt_ns


@dataclass(frozen=True, slots=True)
class LayerRow:
    """One stage as the bars show it."""

    label: str
    layer: str
    p50: float | None
    p99: float | None
    count: int
    total: bool = False
    key: str = ""  #: the stage key, which :meth:`LayerBars.update_trends` matches

    @classmethod
    def of(
        cls, label: str, layer: str, hist: Histogram, total: bool = False, max_ns: int = 0,
        key: str = "",
    ) -> LayerRow:
        p50, p99 = capped(hist.percentile(50), max_ns), capped(hist.percentile(99), max_ns)
        return cls(label, layer, p50, p99, hist.total, total, key)


def slowest(rows: list[LayerRow]) -> int | None:
    """Index of the stage (not total) with the highest median, None when nothing was measured."""
    best: tuple[float, int] | None = None
    for i, row in enumerate(rows):
        if not row.total and row.p50 is not None and (best is None or row.p50 > best[0]):
            best = (row.p50, i)
    return None if best is None else best[1]


class LayerBars(Widget):
    """Stage bars scaled to the largest p99 so the layer where time goes stands out."""

    DEFAULT_CSS = """
    LayerBars { height: auto; min-height: 4; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._title = ""
        self._rows: list[LayerRow] = []
        self._footer = ""
        self._trends: dict[str, tuple[float | None, ...]] = {}
        self._trend_caption = ""

    def update_trends(
        self, trends: Mapping[str, Sequence[float | None]], caption: str = "trend"
    ) -> None:
        """Sparklines after each row's figures: ``trends`` maps a row's stage key (``LayerRow.key``)
        to its values per interval, oldest first, None where it had no packets (e.g.
        ``Timeline.trends(path)``); the newest that fit are drawn. ``{}`` removes them."""
        self._trends = {key: tuple(values) for key, values in trends.items()}
        self._trend_caption = caption
        self.refresh()

    def update_snapshot(
        self, title: str, rows: list[LayerRow], counters: dict[str, int] | None = None
    ) -> None:
        """Show ``rows`` (stages first, then totals) and the path's counters on the last line."""
        self._title = title
        self._rows = rows
        self._footer = "  ".join(f"{k} {fmt_count(v)}" for k, v in (counters or {}).items())
        self.refresh(layout=True)

    def _spark_width(self, bar_w: int) -> int:
        """Columns the sparklines take from the bar: half a narrow bar, all but 12 of a wide one;
        none without trends or room for 3."""
        longest = max((len(self._trends.get(r.key, ())) for r in self._rows), default=0)
        if not longest:
            return 0
        room = bar_w // 2 if bar_w < 24 else bar_w - 12
        return min(longest, room) if room >= 3 else 0

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[no-untyped-def]
        return len(self._rows) + 2 + (1 if self._footer else 0)

    def render(self) -> RenderableType:
        width = max(self.content_region.width, 30)
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(self._title or "layers", style="bold")
        out.append("   █ median  ░ to p99\n", style="dim")
        if not self._rows:
            out.append("no stages yet")
            return out
        label_w = min(max(len(r.label) for r in self._rows), 16)
        # Narrow panes (80-column terminals) drop the layer column and the "slowest" words;
        # the slowest stage is still shown in reverse video.
        roomy = width >= 60
        layer_w = min(max(len(r.layer) for r in self._rows), 6) if roomy else 0
        suffix = " ◀ slowest" if roomy else ""
        bar_w = max(width - label_w - layer_w - 2 - 17 - len(suffix) - 1, 4)
        spark_w = self._spark_width(bar_w)
        bar_w -= spark_w + 1 if spark_w else 0
        scale = max((r.p99 or 0) for r in self._rows) or 1.0
        hot = slowest(self._rows)
        for i, row in enumerate(self._rows):
            style = "bold reverse" if i == hot else ("dim" if row.total else "")
            out.append(f"{row.label[:label_w]:<{label_w}} ", style=style)
            if layer_w:
                out.append(f"{row.layer[:layer_w]:<{layer_w}} ", style="dim")
            solid = round(bar_w * (row.p50 or 0) / scale)
            if row.p50 and not solid:
                solid = 1  # never hide a measured stage behind a zero-length bar
            shade = min(max(round(bar_w * (row.p99 or 0) / scale) - solid, 0), bar_w - solid)
            bar_style = "bold red" if i == hot else ("blue" if row.total else "green")
            out.append("█" * solid, style=bar_style)
            out.append("░" * shade, style=bar_style)
            out.append(" " * (bar_w - solid - shade))
            out.append(f" {fmt_ns(row.p50):>8}{fmt_ns(row.p99):>8}")
            if spark_w:
                out.append(" " + spark(self._trends.get(row.key, ()), spark_w), style=bar_style)
            out.append(suffix + "\n" if i == hot else "\n", style="bold")
        pad = label_w + 1 + (layer_w + 1 if layer_w else 0) + bar_w
        out.append(f"{'':<{pad}} {'p50':>8}{'p99':>8}", style="dim")
        if spark_w:
            out.append(f" {self._trend_caption[:spark_w]:>{spark_w}}", style="dim")
        if self._footer:
            out.append(f"\n{self._footer}", style="dim")
        return out
