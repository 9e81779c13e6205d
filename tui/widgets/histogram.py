"""Live log2 latency histogram of one stage (plotext via textual-plotext) with percentile markers."""

from __future__ import annotations

import math
import time

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from tui.model.histogram import Histogram, bucket_bounds
from tui.widgets.units import capped, fmt_count, fmt_ns, unit_for

#: The fine log-linear buckets are folded into powers of two; this many at least are shown.
MIN_OCTAVES = 6
#: Redraw at most this often (seconds); snapshots arriving faster only update the stored data.
REDRAW_EVERY_S = 0.25
#: (percentile, caption, plotext colour) of the vertical markers.
MARKERS = ((50, "p50", "green"), (90, "p90", "yellow"), (99, "p99", "red"))


def octave_counts(hist: Histogram) -> dict[int, int]:
    """Counts per power of two: octave k holds values in [2**k, 2**(k+1)) ns (0 and 1 ns in octave 0)."""
    out: dict[int, int] = {}
    for index, count in hist.sparse().items():
        low = bucket_bounds(index, hist.sub_bits)[0]
        octave = max(low.bit_length() - 1, 0)
        out[octave] = out.get(octave, 0) + count
    return out


def octave_range(octaves: dict[int, int]) -> range:
    """The octaves to draw: every non-empty one, widened to MIN_OCTAVES."""
    low, high = min(octaves), max(octaves)
    while high - low + 1 < MIN_OCTAVES:
        if low > 0:
            low -= 1
        high += 1
    return range(low, high + 1)


def octave_label(octave: int, unit: tuple[str, float]) -> str:
    """Lower edge of an octave in ``unit`` without the unit name, e.g. ``4`` or ``0.5``."""
    value = (1 << octave) / unit[1]
    return f"{value:.0f}" if value >= 1 else f"{value:.2g}"


class LatencyHistogram(Vertical):
    """Caption with percentiles over a plotext bar chart of log2 buckets."""

    DEFAULT_CSS = """
    LatencyHistogram { height: 1fr; min-height: 8; }
    LatencyHistogram > .caption {
        height: auto; max-height: 2; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis;
    }
    LatencyHistogram > PlotextPlot { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._title = ""
        self._hist: Histogram | None = None
        self._max_ns = 0
        self._last_draw = 0.0
        self._timer_pending = False

    def compose(self) -> ComposeResult:
        yield Static("waiting for data…", classes="caption")
        yield PlotextPlot()

    def update_snapshot(self, title: str, hist: Histogram | None, max_ns: int = 0) -> None:
        """Show ``hist`` (a stage's distribution) under ``title``; drawn at most a few times a second."""
        self._title, self._hist, self._max_ns = title, hist, max_ns
        wait = self._last_draw + REDRAW_EVERY_S - time.monotonic()
        if wait <= 0:
            self._draw()
        elif not self._timer_pending:
            self._timer_pending = True
            self.set_timer(wait, self._draw)

    @property
    def plot(self) -> PlotextPlot:
        return self.query_one(PlotextPlot)

    def _draw(self) -> None:
        self._timer_pending = False
        self._last_draw = time.monotonic()
        caption = self.query_one(".caption", Static)
        plt = self.plot.plt
        plt.clear_data()
        plt.clear_figure()
        hist = self._hist
        if hist is None or not hist:
            caption.update(Text.assemble((self._title, "bold"), "  no packets yet"))
            self.plot.refresh()
            return
        pct = {q: capped(hist.percentile(q), self._max_ns) for q, _, _ in MARKERS}
        top = self._max_ns or hist.max_bound() or 0
        octaves = octave_counts(hist)
        shown = octave_range(octaves)
        unit = unit_for(pct[99] or top)
        labels = [octave_label(k, unit) for k in shown]
        counts = [octaves.get(k, 0) for k in shown]
        plt.bar(labels, counts, color="cyan", width=0.8)
        top_count = max(counts)
        ticks = [0, top_count // 2, top_count] if top_count > 1 else [0, top_count]
        plt.yticks(ticks, [fmt_count(t) for t in ticks])  # "1.1k", not "1083.0": narrower, readable
        for q, _, color in (*MARKERS, (100, "max", "magenta")):
            value = top if q == 100 else pct[q]
            if value:
                # bar i (x = i + 1) spans [2**(low+i), 2**(low+i+1)): place the marker by log2 inside it
                plt.vline(1 + math.log2(max(value, 1)) - shown.start - 0.5, color)
        plt.xlabel(f"latency ({unit[0]}, log2 buckets)")
        caption.update(self._caption(hist, pct, top))
        self.plot.refresh()

    def _caption(self, hist: Histogram, pct: dict[float, float | None], top: int) -> Text:
        """Two lines that never wrap: the title and packet count, then the percentiles and max
        (p90 left out where the panel is too narrow for all four)."""
        figures = [(name, color, pct[q]) for q, name, color in MARKERS] + [("max", "magenta", top)]
        room = self.size.width - 2
        if sum(len(f"{name} {fmt_ns(v)} ") for name, _, v in figures) > room:
            figures = [f for f in figures if f[0] != "p90"]
        text = Text.assemble((self._title, "bold"), f"  n={fmt_count(hist.total)}\n")
        for i, (name, color, value) in enumerate(figures):
            text.append(f"{' ' if i else ''}{name} ", style=color)
            text.append(fmt_ns(value))
        return text
