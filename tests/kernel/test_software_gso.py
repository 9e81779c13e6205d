"""Software GSO on the send path: a device without TSO makes the kernel cut each bulk TCP skb into
segments after net_dev_queue (validate_xmit_skb -> skb_gso_segment), and the device sees only the
segments, under new addresses. Each packet must still be timed to the device.

The veth's TSO is turned off with ethtool (what virtio-net on a qemu hub, tunnels without offload
and many virtual NICs give). Two ways to the device: straight from net_dev_queue (noqueue, the veth
default) and through a qdisc that queues and dequeues (tbf: never bypassed, it hands packets on
one at a time; at a rate far above the traffic's, and at 1 Gbit/s, where packets wait in it and
the sender's own CPU is rarely the one that dequeues them). The witnesses: the
namespace's own Tcp OutSegs + RetransSegs for the segments counted, and the stage that ends at
net_dev_queue (queued in the send syscall) for the packets that must reach the device timed.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from netns import VethPair, run_bulk  # tests/kernel is on sys.path (rootdir-less test dir)
from test_path_counters import snmp

from tui.model.filters import Filters
from tui.model.snapshot import SEND
from tui.sources.live import LiveSource

pytestmark = pytest.mark.kernel

BULK = 16 << 20


def tso_off(pair: VethPair) -> None:
    subprocess.run(["ip", "netns", "exec", pair.ns_a, "ethtool", "-K", pair.dev_a, "tso", "off"],
                   check=True, capture_output=True, text=True)
    features = subprocess.run(["ip", "netns", "exec", pair.ns_a, "ethtool", "-k", pair.dev_a],
                              check=True, capture_output=True, text=True).stdout
    assert "tcp-segmentation-offload: off" in features, features
    assert "generic-segmentation-offload: on" in features, features


QDISCS = {"noqueue": (), "tbf": ("tbf", "rate", "20gbit", "burst", "4mb", "latency", "100ms"),
          "tbf_shaping": ("tbf", "rate", "1gbit", "burst", "256kb", "latency", "100ms")}


@pytest.mark.parametrize("qdisc", sorted(QDISCS))
def test_software_gso_packets_are_timed_to_the_device(qdisc: str) -> None:
    with VethPair() as pair:
        tso_off(pair)
        if QDISCS[qdisc]:
            pair.tc(pair.ns_a, "qdisc", "add", "dev", pair.dev_a, "root", *QDISCS[qdisc])
        source = LiveSource(filters=Filters.parse(netns=pair.ns_a), cost=False)
        source.start()
        try:
            before = snmp(pair.ns_a)
            server, client = run_bulk(pair, 4, BULK)
            snap = source.poll()
            after = snmp(pair.ns_a)
        finally:
            source.close()
    assert server["received"] == client["sent"] == BULK
    path = snap.path(SEND)
    counters = path.counters
    out_segs = sum(after[k] - before[k] for k in ("Tcp.OutSegs", "Tcp.RetransSegs"))
    queued = path.get("tcp_ip").hist.total  # in-syscall packets, at net_dev_queue
    timed = {key: path.get(key).hist.total for key in ("qdisc", "device", "total")}
    figures = json.dumps({"counters": counters, "out_segs": out_segs, "queued": queued, "timed": timed,
                          "deferred": path.get("deferred").hist.total,
                          "diag": {k: after[k] - before.get(k, 0) for k in after
                                   if after[k] != before.get(k, 0) and "Tcp" in k}})
    print(figures)
    # some packets were GSO skbs of several segments, cut in software (else this tests nothing)
    assert counters["packets"] < counters["segs"] <= out_segs, figures
    # Every segment is on the send path. Behind the shaping tbf, under CPU load, about one run in
    # ten counts 45-270 segments (one to six GSO skbs) fewer than OutSegs + RetransSegs. Not the
    # engine: a minimal independent raw tracepoint program on the same veth misses the same skbs
    # at net_dev_queue, qdisc_enqueue, qdisc_dequeue and net_dev_start_xmit alike, with no
    # recursion miss counted, while the tbf's own counter (tc -s) and the veth's tx count them
    # (bench/tracepoint_gaps.py: 1 of 30 runs without netlat-tui attached). So only "never more
    # than TCP sent" holds there; the exact count is proven unshaped here and in
    # test_path_counters.py.
    if qdisc != "tbf_shaping":
        assert counters["segs"] == out_segs, figures
    missed = counters.get("missed", 0)
    for key, n in timed.items():
        assert queued - missed <= n <= queued, f"{key}: {figures}"
    # and every packet the path counted (every one is followed here) closes, in its send or
    # deferred, but for those counted lost: overwritten in flight (evicted: behind the shaping
    # tbf a few hundred packets wait, more than the direct-mapped send array always holds apart)
    closed = timed["total"] + path.get("deferred").hist.total
    assert counters["packets"] - counters["evicted"] - missed <= closed <= counters["packets"], figures
