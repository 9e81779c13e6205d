"""In the guest (stock Debian kernel, exact headers): BCC compiles, a kprobe on tcp_sendmsg attaches
and counts real loopback sends, and detaching leaves no kprobe behind."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def smoke(run_guest) -> dict:
    run = run_guest("python3 tests/vm/guest/smoke_kprobe.py", "smoke")
    assert run.exit_status == 0, run.output[-3000:]
    return json.loads((run.out_dir / "smoke.json").read_text())


def test_guest_runs_a_stock_cloud_kernel(smoke: dict) -> None:
    assert smoke["kernel"].endswith("-cloud-amd64"), smoke["kernel"]


def test_kprobe_counts_every_send_to_the_server_port(smoke: dict) -> None:
    # The port is read through struct sock as the installed headers lay it out: a match means the
    # headers fit the running kernel, and every send() is exactly one tcp_sendmsg call.
    assert smoke["calls"] == smoke["sends"]
    assert smoke["bytes"] == smoke["sends"] * smoke["size"]


def test_kretprobe_sees_every_return_of_the_client_thread(smoke: dict) -> None:
    assert smoke["returns"] == smoke["sends"]


def test_probes_attach_in_the_kernel_and_detach(smoke: dict) -> None:
    # The kernel's own list (debugfs kprobes/list): a kprobe and a kretprobe on tcp_sendmsg+0x0.
    assert smoke["kernel_kprobes"] == ["k tcp_sendmsg+0x0", "r tcp_sendmsg+0x0"]
    assert smoke["kernel_kprobes_after_cleanup"] == []
