"""Debian 13 in the guest (its own kernel 6.12, BCC 0.31, exact headers): the function plans there.

6.12 has kprobes and fentry, and trampolines that take more than six arguments (6.6+), so every
hook of the fentry plan must attach with fentry, ip6_xmit included (6.1 falls back for it). It lacks
tcp:tcp_sendmsg_locked, so ``auto`` must pick fentry and the tracepoint plan cannot run. One boot
(two vCPUs, no NICs: the NIC scenarios run on 6.1 and 7.x) runs both plans through the same figure
checks as the other guests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import vm_figures as fig

PLANS = ("fentry", "kprobe")
STEPS = ("plan-fentry", "plan-kprobe", "cli-auto")

#: every figure check that needs no NIC, by name (one test each, per plan)
CHECKS: dict[str, Callable[[dict], None]] = {
    "loopback_counts": fig.check_loopback_counts,
    "filter_keeps_only_the_port": fig.check_loopback_sockets,
    "socket_layer": fig.check_socket_layer,
    "udp": fig.check_udp,
    "stage_sums_loopback": lambda r: fig.check_stage_sums(r, "loopback"),
    "stage_sums_veth": lambda r: fig.check_stage_sums(r, "veth"),
    "stage_sums_tbf": lambda r: fig.check_stage_sums(r, "tbf"),
    "veth_counts": fig.check_veth_counts,
    "tbf_delay_in_qdisc": fig.check_tbf_delay,
    "clean_exit": fig.check_clean_exit,
}


@pytest.fixture(scope="module")
def out(run_guest) -> Path:
    run = run_guest(f"sh tests/vm/guest/plans_job.sh {' '.join(STEPS)}", "trixie", suite="trixie")
    assert run.exit_status == 0, run.output[-3000:]
    return run.out_dir


def _plan_result(out: Path, plan: str) -> dict:
    rc = int((out / f"plan-{plan}.rc").read_text())
    kernel = (out / "kernel.txt").read_text().strip()
    stderr = (out / f"plan-{plan}.err").read_text()
    assert rc == 0, f"the {plan} plan did not run on {kernel}: {fig.failure_reason(stderr)}"
    return json.loads((out / f"plan-{plan}.json").read_text())


def test_guest_runs_debian_13_s_own_kernel(out: Path) -> None:
    kernel = (out / "kernel.txt").read_text().strip()
    assert kernel.startswith("6.12.") and kernel.endswith("-cloud-amd64"), kernel


def test_auto_picks_fentry_and_measures(out: Path) -> None:
    assert (out / "cli-auto.rc").read_text().strip() == "0", (out / "cli-auto.err").read_text()[-2000:]
    doc = json.loads((out / "cli-auto.out").read_text())
    assert doc["plan"]["name"] == "fentry"
    assert doc["paths"]["send"]["totals"]["total"]["count"] > 0
    assert doc["paths"]["recv"]["totals"]["e2e"]["count"] > 0


def test_fentry_plan_hooks_every_function_with_fentry(out: Path) -> None:
    # 6.6+ trampolines take up to 12 arguments: ip6_xmit (7) attaches too, nothing falls back
    fig.check_fentry_hooks(_plan_result(out, "fentry"), fallback_allowed=())


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("plan", PLANS)
def test_plan_figures(out: Path, plan: str, check: str) -> None:
    CHECKS[check](_plan_result(out, plan))
