"""Debian 12 in the guest (kernel 6.1, BCC 0.26, exact headers): what most users run.

This kernel has kprobes and fentry but not the newer tcp/sock tracepoints, so ``auto`` must pick
fentry and the kprobe and fentry plans must stand on their own, with the same figure checks. One
boot runs every step (tests/vm/guest/plans_job.sh); the tests check the files it wrote. The guest has
its two NICs (``nics=True``) and two vCPUs: both plans also measure over the virtio-net driver with
RPS on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import vm_figures as fig

#: what the NIC scenarios measured here (6.1, two vCPUs, RPS), on top of vm_figures' causes
KPROBE_NIC_LOSS = fig.KPROBE_NIC_LOSS + (
    " Measured on 6.1 (2 vCPUs, RPS to CPU 1): e2e 1983-1999 of 2000, the witness's misses 1-17, "
    "equal to the loss each run; bulk: in 3 of 6 runs the receiver's bytes 752-134664 short of "
    "4194304; 'missed' 0 (before it counted them).")

PLANS = ("kprobe", "fentry")
STEPS = ("plan-kprobe", "plan-fentry", "doctor", "cli-auto", "cli-kprobe", "cli-bad-filter")


@pytest.fixture(scope="module")
def out(run_guest) -> Path:
    run = run_guest(f"sh tests/vm/guest/plans_job.sh {' '.join(STEPS)}", "bookworm", suite="bookworm",
                    nics=True)
    assert run.exit_status == 0, run.output[-3000:]
    return run.out_dir


def _step(out: Path, name: str) -> tuple[int, str, str]:
    rc = int((out / f"{name}.rc").read_text())
    return rc, (out / f"{name}.out").read_text(), (out / f"{name}.err").read_text()


def _ok_json(out: Path, name: str) -> dict:
    rc, stdout, stderr = _step(out, name)
    assert rc == 0, f"{name} exited {rc}: {fig.failure_reason(stderr)}"
    return json.loads(stdout)


@pytest.fixture(scope="module", params=PLANS)
def kprobe(out: Path, request: pytest.FixtureRequest) -> dict:
    """What the kprobe plan, then the fentry plan (the same hooks as fentry/fexit) measured."""
    plan = request.param
    rc, _, stderr = _step(out, f"plan-{plan}")
    kernel = (out / "kernel.txt").read_text().strip()
    assert rc == 0, f"the {plan} plan did not run on {kernel}: {fig.failure_reason(stderr)}"
    return json.loads((out / f"plan-{plan}.json").read_text())


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
    assert doc["plan"]["auto"] == "fentry", doc["plan"]
    # per hook: the symbol resolved and the attach type, after a real attach
    hooks = {h["hook"]: h for h in doc["plan"]["hooks"]}
    assert hooks["tcp_sendmsg"]["attach"] in ("fentry", "fexit"), hooks
    assert {"sock_sendmsg", "ip_queue_xmit", "tcp_v4_rcv", "data_ready"} <= set(hooks), hooks


def test_auto_picks_fentry_and_measures(out: Path) -> None:
    doc = _ok_json(out, "cli-auto")
    assert doc["plan"]["name"] == "fentry"
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


def test_kprobe_times_the_socket_layer(kprobe: dict) -> None:
    fig.check_socket_layer(kprobe)


def test_fentry_plan_hooks_every_function_with_fentry(out: Path) -> None:
    # Debian 12's 6.1 has every hooked function in BTF; only ip6_xmit (7 arguments: trampolines
    # take 6 at most before 6.6, the attach fails with ENOTSUPP) falls back to its kprobe.
    result = json.loads((out / "plan-fentry.json").read_text())
    fig.check_fentry_hooks(result, fallback_allowed=("ip6_xmit",))


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


# ---- over the guest's two virtio-net NICs (6.1, two vCPUs, RPS to CPU 1) ----


def test_kprobe_nic_send_counts(kprobe: dict) -> None:
    fig.check_nic_counts(kprobe, "send")


def test_kprobe_nic_recv_counts(kprobe: dict) -> None:
    # the kprobe plan's lost data-ready runs are counted in 'missed' (rx_copy), so it faces the check
    fig.check_nic_counts(kprobe, "recv")


def test_kprobe_nic_loss_is_skipped_kprobe_runs(kprobe: dict) -> None:
    fig.check_kprobe_loss_is_skipped_kprobes(kprobe)


def test_kprobe_nic_first_sight_without_netif_rx(kprobe: dict) -> None:
    fig.check_nic_first_sight(kprobe)


def test_kprobe_nic_backlog_crosses_cpus(kprobe: dict) -> None:
    fig.check_nic_rps(kprobe)


def test_kprobe_nic_bulk_bytes_match_tcp_info(kprobe: dict, request: pytest.FixtureRequest) -> None:
    # a read whose packets all lost their data-ready run is not counted (same fault)
    fig.expect_kprobe_loss(request, kprobe, KPROBE_NIC_LOSS, ("nic_bulk",))
    fig.check_nic_bulk_bytes(kprobe)


def test_kprobe_nic_bulk_recv_path_counts_tcp_info_data_segments(kprobe: dict) -> None:
    fig.check_nic_bulk_recv_path_bytes(kprobe)


def test_kprobe_nic_bulk_send_counts_every_segment(kprobe: dict) -> None:
    fig.check_nic_bulk_send_segments(kprobe)


def test_kprobe_nic_bulk_send_times_every_packet(kprobe: dict) -> None:
    fig.check_nic_bulk_send_times_close(kprobe)


@pytest.mark.parametrize("scenario", ["nic", "nic_tbf", "nic_bulk"])
def test_kprobe_nic_stage_sums(kprobe: dict, scenario: str) -> None:
    # nic_bulk: its receive e2e is timed per read from the read's first skb while socket queue is
    # timed per skb (one read here takes dozens), so their means are of different packets.
    totals = (("send", "total"), ("recv", "stack")) if scenario == "nic_bulk" else fig.ALL_TOTALS
    fig.check_stage_sums(kprobe, scenario, totals)


def test_kprobe_nic_tbf_delay_lands_in_qdisc(kprobe: dict) -> None:
    fig.check_tbf_delay(kprobe, "nic_tbf", "nic")


def test_kprobe_nic_figures_written(kprobe: dict, out: Path) -> None:
    kernel = (out / "kernel.txt").read_text().strip()
    note = f"## kprobe plan over two virtio-net NICs, kernel {kernel}\n\n{fig.nic_figures(kprobe)}\n"
    (out / "nic-figures.md").write_text(note)
    print(note, file=sys.stderr)
