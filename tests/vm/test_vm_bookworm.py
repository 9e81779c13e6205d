"""Debian 12 in the guest (kernel 6.1, BCC 0.26, exact headers): what most users run.

This kernel has kprobes and fentry but not the newer tcp/sock tracepoints, so ``auto`` must pick
kprobe (or fentry) and the kprobe plan must stand on its own. One boot runs every step
(tests/vm/guest/plans_job.sh); the tests check the files it wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import vm_figures as fig

STEPS = ("plan-kprobe", "doctor", "cli-auto", "cli-kprobe", "cli-bad-filter")


@pytest.fixture(scope="module")
def out(run_guest) -> Path:
    run = run_guest(f"sh tests/vm/guest/plans_job.sh {' '.join(STEPS)}", "bookworm", suite="bookworm")
    assert run.exit_status == 0, run.output[-3000:]
    return run.out_dir


def _step(out: Path, name: str) -> tuple[int, str, str]:
    rc = int((out / f"{name}.rc").read_text())
    return rc, (out / f"{name}.out").read_text(), (out / f"{name}.err").read_text()


def _ok_json(out: Path, name: str) -> dict:
    rc, stdout, stderr = _step(out, name)
    assert rc == 0, f"{name} exited {rc}: {fig.failure_reason(stderr)}"
    return json.loads(stdout)


@pytest.fixture(scope="module")
def kprobe(out: Path) -> dict:
    rc, _, stderr = _step(out, "plan-kprobe")
    kernel = (out / "kernel.txt").read_text().strip()
    assert rc == 0, f"the kprobe plan did not run on {kernel}: {fig.failure_reason(stderr)}"
    return json.loads((out / "plan-kprobe.json").read_text())


def test_doctor_tells_the_truth(out: Path) -> None:
    doc = _ok_json(out, "doctor")
    kernel = (out / "kernel.txt").read_text().strip()
    assert doc["kernel"] == kernel
    assert doc["ok"] is True, doc["reason"]
    assert doc["features"]["kprobes"] is True
    assert doc["features"]["fentry"] is True
    assert doc["headers"]["kind"] == "exact" and doc["headers"]["version"] == kernel, doc["headers"]
    # Exact headers: every struct offset the probes use agrees with BTF.
    assert doc["offsets"]["btf"] and doc["offsets"]["mismatched"] == [], doc["offsets"]
    assert doc["tracepoints"]["sock:sk_data_ready"] is False  # 6.1 predates it: doctor must not guess
    assert doc["plan"]["auto"] in ("kprobe", "fentry"), doc["plan"]


def test_auto_picks_kprobe_or_fentry_and_measures(out: Path) -> None:
    doc = _ok_json(out, "cli-auto")
    assert doc["plan"]["name"] in ("kprobe", "fentry")
    assert doc["paths"]["send"]["totals"]["total"]["count"] > 0
    assert doc["paths"]["recv"]["totals"]["e2e"]["count"] > 0


def test_cli_kprobe_headless_json(out: Path) -> None:
    doc = _ok_json(out, "cli-kprobe")
    assert doc["plan"]["name"] == "kprobe"
    for path in ("send", "recv"):
        declared = {s["key"] for s in doc["plan"]["stages"][path]}
        assert declared == set(doc["paths"][path]["stages"]) | set(doc["paths"][path]["totals"])
    assert doc["paths"]["send"]["totals"]["total"]["count"] > 0
    assert doc["paths"]["recv"]["totals"]["e2e"]["count"] > 0


def test_bad_filter_is_one_line(out: Path) -> None:
    rc, stdout, stderr = _step(out, "cli-bad-filter")
    assert rc == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "port" in stderr and "Traceback" not in stderr, stderr


def test_kprobe_loopback_counts(kprobe: dict) -> None:
    fig.check_loopback_counts(kprobe)


def test_kprobe_filter_keeps_only_the_port(kprobe: dict) -> None:
    fig.check_loopback_sockets(kprobe)


def test_kprobe_udp_datagrams_timed_to_their_read(kprobe: dict) -> None:
    fig.check_udp(kprobe)


@pytest.mark.parametrize("scenario", ["loopback", "veth", "tbf"])
def test_kprobe_stage_sums(kprobe: dict, scenario: str) -> None:
    fig.check_stage_sums(kprobe, scenario)


def test_kprobe_veth_counts(kprobe: dict) -> None:
    fig.check_veth_counts(kprobe)


def test_kprobe_tbf_delay_lands_in_qdisc(kprobe: dict) -> None:
    fig.check_tbf_delay(kprobe)


def test_kprobe_plan_leaves_nothing(kprobe: dict, out: Path) -> None:
    fig.check_clean_exit(kprobe)
    assert (out / "kprobes-at-end.txt").read_text().strip() == ""
    assert json.loads((out / "bpf-progs-at-end.json").read_text() or "[]") == []
