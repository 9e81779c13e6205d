"""The C bucket function in tui/bpf/netlat.h agrees with tui.model.histogram, and percentiles hold."""

from __future__ import annotations

import math
import random
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest

from tui.bpf.program import table_defines
from tui.model.histogram import (
    MAX_LOG2,
    SOCKET_SUB_BITS,
    STAGE_SUB_BITS,
    Histogram,
    bucket_bounds,
    bucket_count,
    bucket_index,
)

_DRIVER = r"""
#include <stdio.h>
#include "tables.h"
#include "netlat.h"
int main(void) {
    unsigned long long v; unsigned int sub;
    while (scanf("%llu %u", &v, &sub) == 2) printf("%u\n", netlat_bucket(v, sub));
    return 0;
}
"""


def _values() -> list[int]:
    rng = random.Random(3)
    edges = [(1 << b) + d for b in range(0, 64) for d in (-1, 0, 1)]
    spread = [int(rng.lognormvariate(9, 3)) for _ in range(4000)]
    return sorted({v for v in edges + spread + list(range(0, 300)) if 0 <= v < 1 << 64})


@pytest.fixture(scope="module")
def c_bucket(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = next(filter(None, map(shutil.which, ("cc", "gcc", "gcc-12", "clang"))), None)
    if cc is None:
        pytest.skip("no C compiler (setup.sh installs gcc)")
    tmp = tmp_path_factory.mktemp("bucket")
    (tmp / "driver.c").write_text(_DRIVER)
    (tmp / "tables.h").write_text(table_defines())  # netlat.h's sizes, generated from histogram.py
    header_dir = Path(str(files("tui.bpf").joinpath("netlat.h"))).parent
    exe = tmp / "bucket"
    subprocess.run([cc, "-O2", "-I", str(tmp), "-I", str(header_dir), "-o", str(exe), str(tmp / "driver.c")],
                   check=True)
    return exe


@pytest.mark.parametrize("sub_bits", [STAGE_SUB_BITS, SOCKET_SUB_BITS])
def test_c_bucket_matches_python(c_bucket: Path, sub_bits: int) -> None:
    values = _values()
    stdin = "".join(f"{v} {sub_bits}\n" for v in values)
    out = subprocess.run([str(c_bucket)], input=stdin, capture_output=True, text=True, check=True)
    got = [int(x) for x in out.stdout.split()]
    want = [bucket_index(v, sub_bits) for v in values]
    mismatches = [(v, g, w) for v, g, w in zip(values, got, want, strict=True) if g != w]
    assert not mismatches[:5]
    assert max(got) == bucket_count(sub_bits) - 1  # values above 2**MAX_LOG2 land in the last bucket


def test_every_value_falls_inside_its_bucket_bounds() -> None:
    for v in _values():
        if v >> (MAX_LOG2 + 1):
            continue
        low, high = bucket_bounds(bucket_index(v))
        assert low <= v < high, v


def test_percentiles_within_ten_percent_of_exact() -> None:
    rng = random.Random(11)
    values = sorted(int(rng.lognormvariate(10, 1.2)) for _ in range(20_000))
    hist = Histogram.from_values(values)
    for q in (50, 90, 99, 99.9):
        exact = values[max(0, math.ceil(len(values) * q / 100) - 1)]
        assert abs(hist.percentile(q) - exact) <= 0.10 * exact, q


def test_raw_and_pair_forms_give_the_figures_of_the_plain_one() -> None:
    from array import array

    rng = random.Random(5)
    n = bucket_count(SOCKET_SUB_BITS)
    for _ in range(200):
        counts = [rng.choice((0, 0, 0, 0, rng.randrange(1, 50))) for _ in range(n)]
        plain = Histogram(tuple(counts), SOCKET_SUB_BITS)
        raw = Histogram.from_raw(array("I", counts).tobytes(), SOCKET_SUB_BITS)
        # the same counts split into two pair lists, one with a zero count and a repeated index
        flat = [x for i, c in enumerate(counts) if c for x in (i, c // 2, i, c - c // 2)] + [3, 0]
        pairs = Histogram.from_pairs(array("Q", flat), SOCKET_SUB_BITS)
        for form in (raw, pairs):
            assert form.sparse() == plain.sparse() and form.total == plain.total
            assert bool(form) == bool(plain) and form.max_bound() == plain.max_bound()
            assert form.mean() == plain.mean()
            assert [form.percentile(q) for q in (0, 1, 50, 90, 99, 100)] == [
                plain.percentile(q) for q in (0, 1, 50, 90, 99, 100)]
            assert form.counts == plain.counts and form == plain
    empty = Histogram.from_pairs(array("Q"), SOCKET_SUB_BITS)
    assert not empty and empty.percentile(50) is None and empty.max_bound() is None and empty.total == 0
