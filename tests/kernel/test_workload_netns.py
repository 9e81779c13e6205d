"""The benchmarks' request/response load across a veth pair between two namespaces this test creates.

It checks the load's own count against the server's count, the kernel's TCP_INFO and the veth's
packet counters, and that the namespaces are gone afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tui.workload import LoopbackWorkload

pytestmark = pytest.mark.kernel

SERVER_IP = "10.214.0.1"
CLIENT_IP = "10.214.0.2"
PORT = 5301


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str, str]]:
    tag = f"nlw{os.getpid() % 100000}"
    ns_s, ns_c, dev_s = f"{tag}s", f"{tag}c", f"{tag}a"
    try:
        _ip("netns", "add", ns_s)
        _ip("netns", "add", ns_c)
        _ip("link", "add", dev_s, "netns", ns_s, "type", "veth", "peer", "name", f"{tag}b", "netns", ns_c)
        _ip("-n", ns_s, "addr", "add", f"{SERVER_IP}/24", "dev", dev_s)
        _ip("-n", ns_c, "addr", "add", f"{CLIENT_IP}/24", "dev", f"{tag}b")
        _ip("-n", ns_s, "link", "set", dev_s, "up")
        _ip("-n", ns_c, "link", "set", f"{tag}b", "up")
        yield ns_s, ns_c, dev_s
    finally:
        for ns in (ns_s, ns_c):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    assert ns_s not in _ip("netns", "list")
    assert ns_c not in _ip("netns", "list")


def _rx_packets(ns: str, dev: str) -> int:
    return json.loads(_ip("-n", ns, "-s", "-j", "link", "show", "dev", dev))[0]["stats64"]["rx"]["packets"]


def test_rr_across_veth_counts_agree_with_server_kernel_and_device(namespaces: tuple[str, str, str]) -> None:
    ns_s, ns_c, dev_s = namespaces
    rx_before = _rx_packets(ns_s, dev_s)
    server = subprocess.Popen(
        ["ip", "netns", "exec", ns_s, sys.executable, "-m", "tui.workload", "serve", "--bind", SERVER_IP,
         "--port", str(PORT), "--duration", "30"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert json.loads(server.stdout.readline()) == {"listening": f"{SERVER_IP}:{PORT}"}
        out = subprocess.run(
            ["ip", "netns", "exec", ns_c, sys.executable, "-m", "tui.workload", "rr", "--connect",
             f"{SERVER_IP}:{PORT}", "--duration", "0.3", "--json"],
            check=True, capture_output=True, text=True,
        )
        served = json.loads(server.stdout.readline())["served"]
    finally:
        server.wait(timeout=30)
    doc = json.loads(out.stdout)
    assert doc["transactions"] > 0
    assert served == doc["transactions"]
    assert doc["data_segs_out"] == doc["data_segs_in"] == doc["transactions"]
    # every request crossed the veth: one packet each, plus the handshake, FIN and a few IPv6 extras
    rx = _rx_packets(ns_s, dev_s) - rx_before
    assert doc["transactions"] <= rx <= doc["transactions"] + 50


def test_rr_client_cannot_reach_outside_its_namespace(namespaces: tuple[str, str, str]) -> None:
    _, ns_c, _ = namespaces
    out = subprocess.run(
        ["ip", "netns", "exec", ns_c, sys.executable, "-m", "tui.workload", "rr", "--connect",
         f"{SERVER_IP}:{PORT + 1}", "--duration", "0.1"],
        capture_output=True, text=True,
    )
    assert out.returncode == 1  # nothing listens there: refused, one line, no traceback
    assert out.stderr.count("\n") == 1
    assert "tui.workload:" in out.stderr


def test_loopback_workload_segments_match_counts_under_load() -> None:
    with LoopbackWorkload("mixed", rr_rate=None, bulk_rate=None, udp_rate=None, size=1, limit=2000) as load:
        assert load.wait(60)
        counts = load.counts()
        segs = load.segments()
    assert counts.tcp_rr == counts.tcp_rr_served == segs["tcp_rr"].data_segs_out == 2000
    assert segs["tcp_rr"].data_segs_in == 2000
    assert counts.udp_rr == counts.udp_rr_served == 2000
