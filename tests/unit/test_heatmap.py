"""Heatmap binning: exact grids, row groups that fit the height, a log shade that shows one packet."""

from __future__ import annotations

import pytest

from tui.model.heatmap import bin_heatmap, row_groups, shade
from tui.model.histogram import Histogram, bucket_bounds, bucket_count
from tui.model.timeline import StagePoint


def pt(buckets: dict[int, int]) -> StagePoint:
    return StagePoint.of_hist(Histogram.from_sparse(buckets))


def test_grid_rows_are_the_finest_bucket_groups_that_fit() -> None:
    # buckets 40..47 are 128..256 ns (one octave, 8 sub-buckets); 4 rows hold them two by two
    grid = bin_heatmap([pt({40: 3}), None, pt({40: 1, 47: 2})], rows=4, columns=10, starts=[0, 1, 2])
    assert grid.counts == ((0, 0, 2), (0, 0, 0), (0, 0, 0), (3, 0, 1))
    assert grid.levels == ((0, 0, 5), (0, 0, 0), (0, 0, 0), (8, 0, 1))
    assert grid.rows == ((224, 256), (192, 224), (160, 192), (128, 160))
    assert (grid.top, grid.width, grid.height, grid.starts) == (3, 3, 4, (0, 1, 2))


def test_spare_rows_widen_the_range_evenly() -> None:
    grid = bin_heatmap([pt({40: 7})], rows=5, columns=4)
    assert grid.counts == ((0,), (0,), (7,), (0,), (0,))
    assert grid.rows[0] == bucket_bounds(42) and grid.rows[-1] == bucket_bounds(38) == (112, 120)
    # ... but never below the first bucket
    low = bin_heatmap([pt({2: 1})], rows=5, columns=4)
    assert low.counts == ((0,), (0,), (1,), (0,), (0,)) and low.rows[-1] == (0, 1)


def test_a_wide_range_folds_into_octave_groups() -> None:
    grid = bin_heatmap([pt({8: 1, 300: 4})], rows=3, columns=1)
    assert grid.counts == ((4,), (0,), (1,))
    assert grid.rows == ((bucket_bounds(256)[0], bucket_bounds(bucket_count(3) - 1)[1]),
                         (bucket_bounds(128)[0], bucket_bounds(255)[1]),
                         (0, bucket_bounds(127)[1]))


def test_only_the_newest_columns_that_fit_are_shown() -> None:
    points = [pt({40 + i: i + 1}) for i in range(6)]
    grid = bin_heatmap(points, rows=8, columns=3, starts=[float(i) for i in range(6)])
    assert grid.width == 3 and grid.starts == (3.0, 4.0, 5.0)
    assert [sum(col) for col in zip(*grid.counts, strict=True)] == [4, 5, 6]


@pytest.mark.parametrize("points", [[], [None, None], [pt({})]])
def test_no_packets_is_an_empty_grid(points: list) -> None:
    grid = bin_heatmap(points, rows=5, columns=5)
    assert grid.counts == () and grid.width == grid.height == grid.top == 0
    assert bin_heatmap([pt({1: 1})], rows=0, columns=5).counts == ()


def test_shade_is_logarithmic_and_never_hides_one_packet() -> None:
    assert shade(0, 10**6) == 0
    assert shade(1, 10**6) == 1  # one slow packet beside a million fast ones still shows
    assert shade(10**6, 10**6) == 8
    assert shade(1000, 10**6) == 1 + 3  # half-way in log terms: floor(7 * 0.5) = 3
    assert shade(1, 1) == 8 and shade(5, 5, shades=4) == 4
    levels = [shade(c, 5000) for c in range(1, 5001)]
    assert levels == sorted(levels) and set(levels) == set(range(1, 9))


def test_row_groups_fit_and_stay_in_range() -> None:
    assert row_groups(40, 47, 4, 304) == (2, 20, 4)
    assert row_groups(40, 40, 1, 304) == (1, 40, 1)
    assert row_groups(300, 303, 10, 304) == (1, 294, 10)  # widened downwards at the top end
    assert row_groups(0, 303, 2, 304) == (256, 0, 2)
