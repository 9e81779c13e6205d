"""The exporter's pure parts: kernel buckets as exact ``le`` counts, the collector's metric families,
per-process-name totals under a cap, and the listen address."""

from __future__ import annotations

import argparse
import random
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from tui.argtypes import listen_address
from tui.exporter.buckets import (
    cumulative_buckets,
    edges_ns,
    estimated_sum_seconds,
    is_kernel_edge,
    le_seconds,
)
from tui.exporter.collector import OTHER_COMM, LabelTotals, SnapshotCollector
from tui.model.groups import short_name
from tui.model.histogram import SOCKET_SUB_BITS, STAGE_SUB_BITS, Histogram
from tui.model.snapshot import RECV, SEND, Snapshot
from tui.sources.synthetic import SyntheticSource

# ---- bucket conversion ----


def test_default_edges_are_powers_of_two_from_256ns_to_17s() -> None:
    edges = edges_ns()
    assert edges == tuple(1 << m for m in range(8, 35))
    assert edges_ns(4)[:5] == (256, 320, 384, 448, 512)
    assert len(edges_ns(8)) == 26 * 8 + 1


@pytest.mark.parametrize("per_octave", [1, 2, 4, 8])
def test_every_offered_edge_is_a_kernel_bucket_edge(per_octave: int) -> None:
    assert all(is_kernel_edge(e, STAGE_SUB_BITS) for e in edges_ns(per_octave))


def test_a_known_histogram_gives_exact_le_counts() -> None:
    # Values on both sides of edges: 1023 is below the 1024 edge, 1024 is not.
    values = [300, 1023, 1024, 1025, 1500, 2047, 2048, 4096, 70_000, 3_000_000_000, 40_000_000_000]
    hist = Histogram.from_values(values)
    buckets = dict(cumulative_buckets(hist, edges_ns()))
    assert buckets[le_seconds(512)] == 1  # 300
    assert buckets[le_seconds(1024)] == 2  # + 1023
    assert buckets[le_seconds(2048)] == 6  # + 1024, 1025, 1500, 2047
    assert buckets[le_seconds(4096)] == 7  # + 2048
    assert buckets[le_seconds(8192)] == 8  # + 4096
    assert buckets[le_seconds(1 << 17)] == 9  # + 70 us
    assert buckets[le_seconds(1 << 32)] == 10  # + 3 s
    assert buckets[le_seconds(1 << 34)] == 10  # 40 s is beyond the last edge
    assert buckets[float("inf")] == 11
    assert le_seconds(1024) == pytest.approx(1.023e-6)


@pytest.mark.parametrize("per_octave", [1, 2, 8])
def test_each_le_count_is_the_number_of_values_at_or_below_it(per_octave: int) -> None:
    rng = random.Random(per_octave)
    values = [int(rng.lognormvariate(9, 2)) for _ in range(5000)]
    values += [e for e in edges_ns(per_octave)[:10]] + [e - 1 for e in edges_ns(per_octave)[:10]]
    hist = Histogram.from_values(values)
    for le, count in cumulative_buckets(hist, edges_ns(per_octave)):
        assert count == sum(1 for v in values if v / 1e9 <= le), le


def test_an_edge_inside_a_kernel_bucket_is_refused() -> None:
    hist = Histogram.from_values([5000])
    with pytest.raises(ValueError, match="not a bucket edge"):
        cumulative_buckets(hist, [1000])
    # 1/8-octave steps are edges of the stage histograms but not of the 4-per-octave socket ones.
    assert is_kernel_edge(1152, STAGE_SUB_BITS) and not is_kernel_edge(1152, SOCKET_SUB_BITS)


def test_estimated_sum_is_within_a_sixteenth() -> None:
    values = [1000, 1100, 5000, 123_456, 9_999_999]
    estimate = estimated_sum_seconds(Histogram.from_values(values))
    assert estimate == pytest.approx(sum(values) / 1e9, rel=1 / 16)
    assert estimated_sum_seconds(Histogram.from_values([3, 5])) == pytest.approx(8e-9)


# ---- the collector ----


def synthetic(polls: int = 3) -> Snapshot:
    source = SyntheticSource()
    source.start()
    snap = None
    for _ in range(polls):
        snap = source.poll()
    assert snap is not None
    return snap


def scrape(collector: SnapshotCollector, openmetrics: bool = False) -> dict:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if openmetrics:
        families = parse_openmetrics(generate_openmetrics(registry).decode())
    else:
        families = text_string_to_metric_families(generate_latest(registry).decode())
    return {f.name: f for f in families}


def sample(family, suffix: str, **labels: str) -> float:
    hits = [s.value for s in family.samples
            if s.name == family.name + suffix and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(hits) == 1, (family.name + suffix, labels, hits)
    return hits[0]


def test_nothing_is_exported_before_the_first_snapshot() -> None:
    assert scrape(SnapshotCollector()) == {}


@pytest.mark.parametrize("openmetrics", [False, True])
def test_histograms_counters_and_info_follow_the_snapshot(openmetrics: bool) -> None:
    snap = synthetic()
    collector = SnapshotCollector()
    collector.publish(snap)
    families = scrape(collector, openmetrics)
    stages, totals = families["netlat_stage_latency_seconds"], families["netlat_path_latency_seconds"]
    for path in (SEND, RECV):
        for fam, group in ((stages, snap.path(path).stages), (totals, snap.path(path).totals)):
            for st in group:
                labels = {"path": path, "stage": st.spec.key, "layer": st.spec.layer, "plan": "synthetic"}
                assert sample(fam, "_count", **labels) == st.hist.total
                assert sample(fam, "_bucket", le="+Inf", **labels) == st.hist.total
                want = dict(cumulative_buckets(st.hist, edges_ns()))
                got = {float(s.labels["le"]): s.value for s in fam.samples
                       if s.name.endswith("_bucket") and s.labels["stage"] == st.spec.key
                       and s.labels["path"] == path}
                assert got == want
    packets = families["netlat_packets"]  # the parsers strip _total from a counter family's name
    assert sample(packets, "_total", path=SEND) == snap.path(SEND).counters["packets"]
    info = families["netlat" if openmetrics else "netlat_info"]  # the text format has no info type
    labels = next(s.labels for s in info.samples)
    assert labels["plan"] == "synthetic" and labels["kernel"] == snap.meta.kernel


def test_latency_labels_are_bounded_and_never_per_socket() -> None:
    collector = SnapshotCollector(comm_limit=2)
    collector.publish(synthetic())
    for family in scrape(collector).values():
        for s in family.samples:
            assert not {"pid", "socket", "sock", "laddr", "raddr", "lport", "rport"} & set(s.labels)
    comms = {s.labels["comm"] for s in scrape(collector)["netlat_comm_packets"].samples}
    assert len(comms) <= 3 and OTHER_COMM in comms


def test_program_costs_are_exported_as_counters_in_seconds() -> None:
    collector = SnapshotCollector()
    collector.publish(synthetic(), {("net_dev_queue", SEND): (10, 2_500)})
    families = scrape(collector)
    assert sample(families["netlat_bpf_program_runs"], "_total", program="net_dev_queue") == 10
    assert sample(families["netlat_bpf_program_run_seconds"], "_total", path=SEND) == 2.5e-6


def test_comm_totals_stay_monotonic_when_sockets_leave_the_table() -> None:
    snap = synthetic(2)
    totals = LabelTotals(limit=10)
    first = totals.update(snap)
    # Every socket but one closes; the remaining one grows by 5 packets.
    kept = replace(snap.sockets[0], tx_packets=snap.sockets[0].tx_packets + 5)
    second = totals.update(replace(snap, sockets=(kept,)))
    for comm, fig in first.items():
        extra = 5 if comm == kept.comm else 0
        assert second[comm].tx_packets == fig.tx_packets + extra
    assert sum(f.tx_packets for f in first.values()) == sum(s.tx_packets for s in snap.sockets)


def test_comm_cap_sends_later_names_to_other() -> None:
    snap = synthetic(2)
    names = sorted({s.comm for s in snap.sockets})
    assert len(names) >= 3
    figures = LabelTotals(limit=1).update(snap)
    assert set(figures) == {snap.sockets[0].comm, OTHER_COMM}
    assert sum(f.rx_packets for f in figures.values()) == sum(s.rx_packets for s in snap.sockets)


def test_cgroup_labels_sum_each_workload_s_sockets_under_a_cap() -> None:
    snap = synthetic(2)
    by_group: dict[str, int] = {}
    for s in snap.sockets:
        by_group[s.cgroup] = by_group.get(s.cgroup, 0) + s.rx_packets
    assert len(by_group) >= 3, by_group
    collector = SnapshotCollector(cgroup_limit=50)
    collector.publish(snap)
    families = scrape(collector)
    for group, packets in by_group.items():
        assert sample(families["netlat_cgroup_packets"], "_total", path="recv", cgroup=group) == packets
    workloads = {s.labels["cgroup"]: s.labels["workload"] for s in families["netlat_cgroup_packets"].samples}
    assert workloads == {g: short_name(g) for g in by_group}
    assert "netlat_comm_packets" not in families  # only what was asked for
    capped = SnapshotCollector(cgroup_limit=1)
    capped.publish(snap)
    groups = {s.labels["cgroup"] for s in scrape(capped)["netlat_cgroup_packets"].samples}
    assert len(groups) == 2 and OTHER_COMM in groups


def test_socket_histograms_use_only_their_own_edges() -> None:
    collector = SnapshotCollector(edges=edges_ns(8), comm_limit=5)
    collector.publish(synthetic())
    latency = scrape(collector)["netlat_comm_latency_seconds"]
    les = {float(s.labels["le"]) for s in latency.samples if s.name.endswith("_bucket")}
    assert le_seconds(1152) not in les and le_seconds(1280) in les


# ---- the listen address ----


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1:9465", ("127.0.0.1", 9465)),
    ("0.0.0.0:0", ("0.0.0.0", 0)),
    ("[::1]:9465", ("::1", 9465)),
    ("[::]:80", ("::", 80)),
])
def test_listen_address_accepts(text: str, want: tuple[str, int]) -> None:
    assert listen_address(text) == want


@pytest.mark.parametrize(("text", "message"), [
    ("9465", "expected ADDR:PORT"),
    (":9465", "expected ADDR:PORT"),
    ("localhost:9465", "not an IP address"),
    ("::1:9465", "in brackets"),
    ("[127.0.0.1]:9465", "expected ADDR:PORT"),
    ("127.0.0.1:65536", "port must be 0..65535"),
    ("127.0.0.1:http", "port: expected a port number"),
    ("300.1.1.1:80", "not an IP address"),
])
def test_listen_address_refuses_in_one_line(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message) as err:
        listen_address(text)
    assert "\n" not in str(err.value)


def test_program_costs_only_while_the_kernel_counts_them() -> None:
    from tui.exporter.run import program_costs

    class Fake:
        def __init__(self, stats: dict) -> None:
            self.stats = stats

        def prog_stats(self) -> dict:
            return self.stats

    assert program_costs(Fake({"net_dev_queue": (0, 0), "netif_receive_skb": (0, 0)})) == {}
    assert program_costs(Fake({"net_dev_queue": (4, 400), "netif_receive_skb": (2, 100)})) == {
        ("net_dev_queue", SEND): (4, 400), ("netif_receive_skb", RECV): (2, 100)}
    assert program_costs(SyntheticSource()) == {}  # no programs at all
