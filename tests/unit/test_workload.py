"""The loopback workload counts what it really did, and stops without leaving threads or sockets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tui.workload import (
    THREAD_PREFIX,
    LoopbackWorkload,
    WorkloadCounts,
    WorkloadError,
)

N = 300


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _workload_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


def _until(predicate, limit_s: float = 10.0) -> None:
    """Wait for a condition that must come true (not a timed assertion: the figure is checked after)."""
    end = time.monotonic() + limit_s
    while not predicate() and time.monotonic() < end:
        time.sleep(0.01)


def test_tcp_rr_counts_every_exchange_on_both_sides_and_in_the_kernel() -> None:
    with LoopbackWorkload("rr", rr_rate=None, size=1, limit=N) as load:
        assert load.wait(30)
        counts = load.counts()
        segs = load.segments()["tcp_rr"]
    assert counts.tcp_rr == N
    assert counts.tcp_rr_served == N
    # TCP_NODELAY and 1-byte messages: one data segment each way per exchange, by the kernel's count
    assert segs.data_segs_out == N
    assert segs.data_segs_in == N


def test_tcp_bulk_bytes_sent_equal_bytes_received() -> None:
    with LoopbackWorkload("bulk", bulk_rate=None, bulk_chunk=4096, limit=50) as load:
        assert load.wait(30)
        _until(lambda: load.counts().tcp_bulk_received >= 50 * 4096)
        counts = load.counts()
    assert counts.tcp_bulk_sent == 50 * 4096
    assert counts.tcp_bulk_received == 50 * 4096


def test_udp_rr_counts_every_reply() -> None:
    with LoopbackWorkload("udp", udp_rate=None, size=32, limit=N) as load:
        assert load.wait(30)
        counts = load.counts()
    assert counts.udp_rr + counts.udp_lost == N
    assert counts.udp_rr_served == counts.udp_rr
    assert counts.udp_lost == 0  # loopback with one request in flight never drops


def test_mixed_runs_three_flows_on_distinct_listening_ports() -> None:
    with LoopbackWorkload("mixed", rr_rate=None, bulk_rate=None, udp_rate=None, limit=20) as load:
        assert load.wait(30)
        ports = dict(load.ports)
        listening = _listening_tcp_ports()
    assert set(ports) == {"tcp_rr", "tcp_bulk", "udp_rr"}
    assert len(set(ports.values())) == 3
    assert ports["tcp_rr"] in listening
    assert ports["tcp_bulk"] in listening
    assert load.counts().tcp_rr == 20
    assert load.errors == []


def _listening_tcp_ports() -> set[int]:
    ports = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # TCP_LISTEN
                ports.add(int(local.split(":")[1], 16))
    return ports


def test_stop_leaves_no_thread_no_socket_and_counts_stop_moving() -> None:
    fds_before = _open_fds()
    load = LoopbackWorkload("mixed")  # default pacing: the threads are mostly asleep or blocked
    load.start()
    assert len(_workload_threads()) == 6
    _until(lambda: load.counts().tcp_rr > 0 and load.counts().udp_rr > 0)
    load.stop()
    assert _workload_threads() == []
    assert _open_fds() == fds_before
    frozen = load.counts()
    time.sleep(0.05)
    assert load.counts() == frozen
    assert frozen.tcp_rr > 0
    load.stop()  # idempotent


def test_unknown_kind_and_bad_sizes_are_refused() -> None:
    with pytest.raises(WorkloadError, match="unknown workload kind"):
        LoopbackWorkload("tcp")
    with pytest.raises(WorkloadError, match="message size"):
        LoopbackWorkload("rr", size=0)
    with pytest.raises(WorkloadError, match="limit"):
        LoopbackWorkload("rr", limit=-1)


def test_counts_are_a_frozen_copy() -> None:
    with LoopbackWorkload("rr", rr_rate=None, limit=5) as load:
        assert load.wait(30)
        counts = load.counts()
    assert isinstance(counts, WorkloadCounts)
    with pytest.raises(AttributeError):
        counts.tcp_rr = 0  # type: ignore[misc]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["rr", "--cpu", "4095"], "CPU 4095 is not available here"),
        (["rr", "--duration", "-1"], "must be above 0"),
        (["rr", "--connect", "localhost:80"], "expected IPv4:PORT"),
        (["rr", "--size", "0"], "size must be 1..65536"),
        (["serve"], "required: --port"),
    ],
)
def test_cli_rejects_bad_input_with_one_line(argv: list[str], message: str) -> None:
    out = subprocess.run([sys.executable, "-m", "tui.workload", *argv], capture_output=True, text=True)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_pinned_rr_client_and_forked_server_agree() -> None:
    # a child process: run_rr pins the calling process, which must not be pytest
    cpu = min(os.sched_getaffinity(0))
    out = subprocess.run(
        [sys.executable, "-m", "tui.workload", "rr", "--duration", "0.3", "--cpu", str(cpu), "--json"],
        capture_output=True, text=True, check=True,
    )
    doc = json.loads(out.stdout)
    assert doc["transactions"] == doc["served"] > 0
    assert doc["tps"] == pytest.approx(doc["transactions"] / doc["duration_s"], rel=0.01)
    assert doc["cpu"] == doc["server_cpu"] == cpu
    assert doc["data_segs_out"] == doc["data_segs_in"] == doc["transactions"]
