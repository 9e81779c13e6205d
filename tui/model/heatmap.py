"""Latency heatmap binning (Brendan Gregg's latency heatmaps): time across, latency up, packets as shade.

A column is one interval of the timeline (:meth:`tui.model.timeline.Timeline.series` of one stage);
a row is a group of the log-linear histogram buckets. The rows are the finest power-of-two groups of
buckets (1/8, 1/4, 1/2 octave, 1, 2, 4 ... octaves with 8 sub-buckets per octave) whose range
holds every non-empty bucket in the shown columns within the height; spare rows widen the range
evenly (one more above when odd), so the picture keeps its neighbourhood. Shades are on a log scale
of the grid's largest cell, so a single slow packet is still drawn, one shade above blank.
Pure and deterministic: the widget (tui.widgets.heatmap) only draws what :func:`bin_heatmap` gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tui.model.histogram import bucket_bounds, bucket_count
from tui.model.timeline import StagePoint

#: Shades above blank; level 1 is a single packet, level SHADES the grid's largest cell.
SHADES = 8


def shade(count: int, top: int, shades: int = SHADES) -> int:
    """Log-scale shade of a cell: 0 for no packets, 1 for one, ``shades`` for ``top``.

    ``1 + the largest k < shades with count**(shades-1) >= top**k``, i.e.
    ``1 + floor((shades-1) * log(count) / log(top))``, in exact integer arithmetic.
    """
    if count <= 0:
        return 0
    if top <= 1:
        return shades
    power = count ** (shades - 1)
    k = 0
    while k + 1 < shades and power >= top ** (k + 1):
        k += 1
    return 1 + k


@dataclass(frozen=True, slots=True)
class HeatGrid:
    """A binned heatmap: rows top (slowest) first, columns oldest first."""

    counts: tuple[tuple[int, ...], ...]  #: packets per cell, [row][column]
    levels: tuple[tuple[int, ...], ...]  #: shade per cell, 0 (blank) to ``shades``
    rows: tuple[tuple[int, int], ...]  #: latency range [low, high) in ns of each row
    starts: tuple[float | None, ...] = ()  #: start (timeline seconds) of each column, when known
    top: int = 0  #: the largest cell
    shades: int = SHADES

    @property
    def width(self) -> int:
        return len(self.counts[0]) if self.counts else 0

    @property
    def height(self) -> int:
        return len(self.counts)


def row_groups(low: int, high: int, rows: int, buckets: int) -> tuple[int, int, int]:
    """(group size in buckets, first group, number of groups) showing buckets ``low..high`` in at
    most ``rows`` rows, widened evenly to ``rows`` when there is room (within ``0..buckets-1``)."""
    size = 1
    while high // size - low // size + 1 > rows:
        size *= 2
    first, last = low // size, high // size
    groups = -(-buckets // size)
    spare = min(rows, groups) - (last - first + 1)
    first = max(first - spare // 2, 0)
    last = min(first + min(rows, groups) - 1, groups - 1)
    first = max(last - min(rows, groups) + 1, 0)
    return size, first, last - first + 1


def bin_heatmap(
    points: Sequence[StagePoint | None],
    rows: int,
    columns: int,
    starts: Sequence[float] | None = None,
    shades: int = SHADES,
) -> HeatGrid:
    """The newest ``columns`` points as at most ``rows`` x ``columns`` cells (empty when no packets).

    ``points`` is one stage's series (None: the stage was absent in that interval); ``starts``,
    the intervals' start times, is carried along for the axis.
    """
    if rows < 1 or columns < 1:
        return HeatGrid((), (), (), (), 0, shades)
    first_col = max(len(points) - columns, 0)
    shown = list(points[first_col:])
    times = tuple(starts[first_col:]) if starts is not None else (None,) * len(shown)
    indexes = [i for p in shown if p is not None for i, c in p.buckets if c]
    if not indexes:
        return HeatGrid((), (), (), times, 0, shades)
    sub_bits = next(p.sub_bits for p in shown if p is not None and p.buckets)
    n_buckets = bucket_count(sub_bits)
    size, first, n_rows = row_groups(min(indexes), max(indexes), rows, n_buckets)
    grid = [[0] * len(shown) for _ in range(n_rows)]
    for col, point in enumerate(shown):
        if point is None:
            continue
        for index, count in point.buckets:
            group = index // size - first
            if 0 <= group < n_rows:
                grid[n_rows - 1 - group][col] += count
    top = max(max(r) for r in grid)
    bounds = []
    for group in range(first + n_rows - 1, first - 1, -1):
        low = bucket_bounds(group * size, sub_bits)[0]
        high = bucket_bounds(min(group * size + size, n_buckets) - 1, sub_bits)[1]
        bounds.append((low, high))
    return HeatGrid(
        counts=tuple(tuple(r) for r in grid),
        levels=tuple(tuple(shade(c, top, shades) for c in r) for r in grid),
        rows=tuple(bounds),
        starts=times,
        top=top,
        shades=shades,
    )
