"""The snapshot model: deltas since an older snapshot, summaries, and the synthetic source."""

from __future__ import annotations

import json

from tui.bpf.plans import TRACEPOINT_INFO
from tui.model.histogram import Histogram
from tui.model.snapshot import RECV, SEND
from tui.model.summary import SCHEMA, hist_stat, snapshot_summary
from tui.sources.synthetic import SYNTHETIC_PLAN, SyntheticSource


def _two_snapshots():
    source = SyntheticSource(seed=3, packets_per_tick=100)
    source.start()
    first, second = source.poll(), source.poll()
    source.close()
    return first, second


def test_synthetic_source_is_deterministic() -> None:
    a = SyntheticSource(seed=11)
    b = SyntheticSource(seed=11)
    c = SyntheticSource(seed=12)
    for _ in range(3):
        sa, sb, sc = a.poll(), b.poll(), c.poll()
    assert sa == sb
    assert sa != sc


def _check_counts(snap, packets: int) -> None:
    """Like the tracepoint plan: every packet in exactly one send total (in-syscall, deferred or UDP);
    each in-syscall stage counts the in-syscall packets; every received packet reaches the socket
    (stack) and all but UDP datagrams reach the application (the L5 stages and e2e)."""
    send, recv = snap.path(SEND), snap.path(RECV)
    assert send.counters["packets"] == recv.counters["packets"] == packets
    count = {p.path: {st.spec.key: st.hist.total for st in p.all()} for p in (send, recv)}
    tx, rx = count[SEND], count[RECV]
    assert tx["total"] + tx["deferred"] + tx["udp_l2"] == packets
    assert tx["deferred"] == send.counters["deferred"] > 0 and tx["udp_l2"] == send.counters["udp"] > 0
    assert tx["tcp_ip"] == tx["qdisc"] == tx["device"] == tx["total"]
    assert rx["backlog"] == rx["ip_tcp"] == rx["stack"] == packets
    udp = sum(s.rx_packets for s in snap.sockets if s.protocol == "UDP")
    assert udp > 0 and rx["sock_queue"] == rx["copy"] == rx["e2e"] == packets - udp
    assert rx["udp_e2e"] == udp


def test_synthetic_counts_every_packet_where_the_tracepoint_plan_would() -> None:
    _, second = _two_snapshots()
    _check_counts(second, 200)
    assert second.plan.stages == TRACEPOINT_INFO.stages and second.plan.totals == TRACEPOINT_INFO.totals


def test_since_leaves_only_the_newer_tick() -> None:
    first, second = _two_snapshots()
    delta = second.since(first)
    _check_counts(delta, 100)
    assert sum(s.tx_packets for s in delta.sockets) == 100
    assert sum(s.rx_packets for s in delta.sockets) == 100
    assert delta.events_total == second.events_total - first.events_total


def test_since_treats_a_counter_reset_as_new_counts() -> None:
    first, second = _two_snapshots()
    # Older has more counts than newer (a source restart): the newer figures stand alone.
    reset = first.since(second)
    assert reset.path(SEND).counters["packets"] == 100
    assert reset.path(SEND).stages[0].hist == first.path(SEND).stages[0].hist


def test_send_total_median_close_to_sum_of_stage_medians_in_synthetic() -> None:
    # The synthetic total is the exact sum of its stages per packet, so its mean must equal the
    # sum of stage means within bucket resolution (<= 6.25% per bucket midpoint).
    _, second = _two_snapshots()
    send = second.path(SEND)
    stage_means = sum(s.hist.mean() for s in send.stages)
    total_mean = send.get("total").hist.mean()
    assert abs(total_mean - stage_means) / total_mean < 0.0625


def test_summary_document_has_every_declared_stage_and_serialises() -> None:
    _, second = _two_snapshots()
    doc = snapshot_summary(second)
    text = json.dumps(doc)
    back = json.loads(text)
    assert back["schema"] == SCHEMA
    for path in (SEND, RECV):
        declared = [s["key"] for s in back["plan"]["stages"][path]]
        assert declared == [s.key for s in SYNTHETIC_PLAN.specs(path)]
        got = set(back["paths"][path]["stages"]) | set(back["paths"][path]["totals"])
        assert got == set(declared)
        for key, stat in back["paths"][path]["stages"].items():
            assert stat["count"] == second.path(path).get(key).hist.total > 0
            assert stat["p50_us"] <= stat["p90_us"] <= stat["p99_us"] <= stat["p999_us"]
            assert stat["p999_us"] <= stat["max_us"] * 1.07
            assert sum(stat["buckets"].values()) == stat["count"]
    assert back["events"]["delivered"] == second.events_total


def test_summary_percentiles_match_the_histogram() -> None:
    stat = hist_stat(Histogram.from_values([1000] * 90 + [50_000] * 10))
    assert stat["count"] == 100
    assert abs(stat["p50_us"] - 1.0) < 0.0625
    assert abs(stat["p90_us"] - 1.0) < 0.0625
    assert abs(stat["p99_us"] - 50.0) / 50.0 < 0.0625
    assert stat["max_us"] >= 50.0


def test_percentiles_never_exceed_the_exact_max() -> None:
    # 961 ns lands in [960, 1024), whose midpoint 992 is above it; the exact max caps it.
    stat = hist_stat(Histogram.from_values([961] * 10), max_ns=961)
    assert stat["p50_us"] == stat["p999_us"] == stat["max_us"] == 0.961
    assert hist_stat(Histogram.from_values([961] * 10))["p50_us"] == 0.992


def test_since_forgets_a_max_set_before_the_baseline() -> None:
    first, second = _two_snapshots()
    stage = second.path(SEND).stages[0]
    older = first.path(SEND).stages[0]
    kept = stage.since(older)
    assert kept.max_ns == (stage.max_ns if stage.max_ns > older.max_ns else 0)
    assert stage.since(stage).max_ns == 0


def test_with_traffic_is_replace_of_the_counts_and_histograms() -> None:
    from dataclasses import FrozenInstanceError, fields, replace

    import pytest

    from tui.model.histogram import SOCKET_SUB_BITS, Histogram
    from tui.model.snapshot import PeerStats, SocketStats

    # every field set to something other than its default, so a field left behind shows
    values = {f.name: f"v-{f.name}" for f in fields(SocketStats)}
    values |= {"key": 11, "pid": 22, "family": 6, "lport": 33, "rport": 44, "tx_packets": 1, "tx_bytes": 2,
               "rx_packets": 3, "rx_bytes": 4, "max_ns": 5, "cgroup_id": 66, "netns": 77, "peer_count": 88,
               "peer_drops": 99, "peers": (PeerStats("10.0.0.9", 53, tx_packets=1),),
               "send_hist": Histogram.from_sparse({1: 1}, SOCKET_SUB_BITS),
               "recv_hist": Histogram.from_sparse({2: 2}, SOCKET_SUB_BITS)}
    sock = SocketStats(**values)
    send, recv = Histogram.from_sparse({7: 3}, SOCKET_SUB_BITS), Histogram.empty(SOCKET_SUB_BITS)
    from tui.model.snapshot import socket_stats

    built = socket_stats(*(values[f.name] for f in fields(SocketStats)))
    assert built == sock and type(built) is SocketStats and hash(built) == hash(sock)
    with pytest.raises(FrozenInstanceError):
        built.pid = 1  # type: ignore[misc]
    assert sock.with_traffic(10, 20, 30, 40, send, recv, 50) == replace(
        sock, tx_packets=10, tx_bytes=20, rx_packets=30, rx_bytes=40, send_hist=send, recv_hist=recv,
        max_ns=50)
