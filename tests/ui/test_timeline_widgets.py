"""The heatmap and the layer bars' sparklines in a tiny host app: sizes, content, one slow packet."""

from __future__ import annotations

from dataclasses import replace

import pytest
from textual.app import App, ComposeResult

from tui.model.histogram import Histogram
from tui.model.snapshot import RECV
from tui.model.timeline import StagePoint, Timeline
from tui.model.verdict import MEANING_MAX, RULES, Verdict, command_for
from tui.sources.synthetic import SyntheticSource
from tui.widgets.heatmap import GLYPHS, LABEL_W, LatencyHeatmap, cell_style
from tui.widgets.layer_bars import LayerBars, LayerRow
from tui.widgets.sparkline import BLOCKS, spark


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield LatencyHeatmap(id="heat")
        yield LayerBars(id="bars")


def timeline(ticks: int) -> Timeline:
    source, line = SyntheticSource(seed=9, interval_s=1.0, packets_per_tick=100), Timeline(1.0)
    for _ in range(ticks):
        line.add(source.poll())
    return line


def lines(widget: LatencyHeatmap | LayerBars) -> list[str]:
    return widget.render().plain.splitlines()


async def test_heatmap_fills_its_box_with_the_newest_columns_on_the_right() -> None:
    line = timeline(120)
    async with Host().run_test(size=(80, 24)) as pilot:
        heat = pilot.app.query_one(LatencyHeatmap)
        heat.styles.height = 12
        heat.update_heatmap(line.series(RECV, "sock_queue"), line.starts(), "recv · socket queue")
        await pilot.pause()
        drawn = lines(heat)
        width = heat.content_region.width
        assert len(drawn) == heat.content_region.height == 12
        assert all(len(row) <= width for row in drawn)
        grid = heat.grid
        assert grid.width == width - LABEL_W - 1 and grid.height == 10  # title and axis lines
        assert drawn[0].startswith("recv · socket queue  max ")
        assert drawn[-1].rstrip().endswith("now") and "-" in drawn[-1]
        assert drawn[1][:LABEL_W].strip().endswith("s")  # a latency label on the top row
        # Bigger terminal, more columns (one per interval, up to the 120 kept).
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        lines(heat)
        assert heat.grid.width == min(120, heat.content_region.width - LABEL_W - 1)


async def test_heatmap_shows_one_slow_packet_and_says_when_empty() -> None:
    fast = StagePoint.of_hist(Histogram.from_values([1000] * 10_000))
    slow = StagePoint.of_hist(Histogram.from_values([1000] * 10_000 + [10_000_000]))
    async with Host().run_test(size=(80, 24)) as pilot:
        heat = pilot.app.query_one(LatencyHeatmap)
        heat.update_heatmap([fast, fast, slow, fast], [0.0, 1.0, 2.0, 3.0], "send · qdisc")
        await pilot.pause()
        cells = [row[LABEL_W + 1:] for row in lines(heat)[1:-1]]
        lit = [row for row in cells if row.strip()]
        # The slowest lit row: the one 10 ms packet, lightest shade, in the third of four columns
        # (right-aligned); the 10,000 fast ones, darkest, below it in every column.
        assert lit[0].strip() == cell_style(1)[0] == GLYPHS[0] and lit[0][-2] == GLYPHS[0]
        assert lit[-1].strip() == GLYPHS[-1] * 4 and len(lit) == 2
        heat.update_heatmap([], [], "send · qdisc")
        await pilot.pause()
        assert lines(heat) == ["send · qdisc  no packets yet"]


async def test_layer_bars_draw_a_sparkline_per_stage_at_80_columns() -> None:
    line = timeline(30)
    snap = line.window(10)
    stats = snap.path(RECV)
    rows = [LayerRow.of(s.spec.label, s.spec.layer, s.hist, s.spec.total, s.max_ns, key=s.spec.key)
            for s in stats.all()]
    async with Host().run_test(size=(80, 24)) as pilot:
        bars = pilot.app.query_one(LayerBars)
        bars.styles.width = 46  # the dashboard's narrow layout
        bars.update_snapshot("recv path by layer", rows, dict(stats.counters))
        await pilot.pause()
        plain = lines(bars)
        bars.update_trends(line.trends(RECV))
        await pilot.pause()
        drawn = lines(bars)
        width = bars.content_region.width
        assert len(drawn) == len(plain) and all(len(row) <= width for row in drawn)
        queue = next(row for row in drawn if row.startswith("socket queue"))
        trend = queue.split()[-1]
        assert len(trend) >= 4 and set(trend) <= set(BLOCKS)
        assert drawn[-2].rstrip().endswith("p99") or "p99" in drawn[-2]
        # No trends: exactly the rows as before.
        bars.update_trends({})
        await pilot.pause()
        assert lines(bars) == plain


def test_spark_scales_to_the_largest_and_blanks_missing_intervals() -> None:
    assert spark([0, 1, 2, 4, None, 8], 6) == "▁▂▃▅ █"  # round(7 * v / 8)
    assert spark([5.0, 5.0], 4) == "  ██"
    assert spark([1, 2, 3], 2) == "▆█"  # the newest two
    assert spark([0.0, 0.0], 2) == "▁▁" and spark([1.0], 0) == ""


async def test_verdict_line_fits_two_lines_at_80_columns() -> None:
    from tui.model.verdict import verdict
    from tui.widgets.verdict_line import VerdictLine, verdict_text

    line = timeline(12)
    now = line.window(10)
    slow = [replace(s, hist=Histogram.from_values([31_000_000] * 50), max_ns=67_200_000)
            if s.spec.key == "sock_queue" else s for s in now.path(RECV).stages]
    sleepy = replace(now, paths={**now.paths, RECV: replace(now.path(RECV), stages=tuple(slow))})

    class VerdictHost(App[None]):
        def compose(self) -> ComposeResult:
            yield VerdictLine()

    async with VerdictHost().run_test(size=(80, 24)) as pilot:
        widget = pilot.app.query_one(VerdictLine)
        for shown in (verdict(sleepy, None, RECV), verdict(now, None, RECV), None):
            widget.update_verdict(shown, "10s")
            await pilot.pause()
            assert 1 <= widget.size.height <= 2
            text = verdict_text(shown, "10s").plain
            if shown is not None and shown.command:  # the longest words of the table, whole
                assert text.startswith("▶ [10s] socket queue is ")
                assert text.endswith("→ pidstat -u -w -p <pid> 1") and len(text) <= 2 * 78
                assert widget.size.height == 2


@pytest.mark.parametrize(("path", "key"), sorted(RULES))
def test_every_verdict_fits_two_lines_at_80_columns(path: str, key: str) -> None:
    from tui.widgets.verdict_line import verdict_text

    now = timeline(12).window(10)  # the tracepoint plan's stages; the kprobe plan's labels are shorter
    assert len(RULES[(path, key)].meaning) + len(RULES[(path, key)].command) <= MEANING_MAX
    stages = now.path(path).stages
    label = max((s.spec.label for s in stages), key=len)
    worst = Verdict("dominant", path, key, f"{label} is 100% of {path} time (mean 12.1ms, p99 12.0ms): "
                    + RULES[(path, key)].meaning, command_for(RULES[(path, key)], None))
    assert len(verdict_text(worst, "10s").plain) <= 2 * 78  # two lines inside the padding
