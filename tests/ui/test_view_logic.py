"""The pure logic behind the widgets: units, log2 folding, slowest layer, socket rates, view filters."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from tui.model.filters import Filters
from tui.model.histogram import SOCKET_SUB_BITS, Histogram
from tui.model.snapshot import SocketStats
from tui.sources.synthetic import SyntheticSource
from tui.view.frame import build_status, build_view, next_stage
from tui.widgets.histogram import octave_counts, octave_range
from tui.widgets.layer_bars import LayerRow, slowest
from tui.widgets.sockets import socket_rows
from tui.widgets.status import status_text
from tui.widgets.units import fmt_bytes, fmt_count, fmt_ns, unit_for


@pytest.mark.parametrize(
    ("ns", "text"),
    [(7, "7ns"), (999, "999ns"), (1_234, "1.23us"), (12_345, "12.3us"), (123_456, "123us"),
     (4_500_000, "4.50ms"), (2_000_000_000, "2.00s"), (None, "-")],
)
def test_latency_unit_follows_the_magnitude(ns, text: str) -> None:
    assert fmt_ns(ns) == text


def test_forced_unit_and_other_formats() -> None:
    assert unit_for(50_000) == ("us", 1e3)
    assert fmt_ns(500, unit_for(50_000)) == "0.50us"
    assert fmt_count(12_345) == "12.3k" and fmt_count(950) == "950"
    assert fmt_bytes(1536) == "1.5KiB" and fmt_bytes(3 << 20) == "3.0MiB"


def test_fine_buckets_fold_into_powers_of_two() -> None:
    hist = Histogram.from_values([1_000, 1_500, 1_600, 3_000, 3_100, 3_900])
    # 1000 is in [512, 1024), 1500/1600 in [1024, 2048), the rest in [2048, 4096)
    assert octave_counts(hist) == {9: 1, 10: 2, 11: 3}
    assert octave_range(octave_counts(hist)) == range(7, 14)  # widened on both sides to >= 6 bars


def test_slowest_is_the_stage_with_the_highest_median_never_a_total() -> None:
    rows = [
        LayerRow("a", "L4", 1_000.0, 90_000.0, 10),
        LayerRow("b", "L2", 5_000.0, 6_000.0, 10),
        LayerRow("total", "", 9_000.0, 99_000.0, 10, total=True),
    ]
    assert slowest(rows) == 1
    assert slowest([LayerRow("x", "", None, None, 0)]) is None


def test_socket_rates_are_the_change_over_elapsed_time() -> None:
    source = SyntheticSource(seed=1, interval_s=0.5)
    first, second = source.poll(), source.poll()
    rows = {r.key: r for r in socket_rows(second, second, first, "send")}
    for old, new in zip(first.sockets, second.sockets, strict=True):
        assert rows[new.key].pkts_s == pytest.approx((new.tx_packets - old.tx_packets) / 0.5)
        assert rows[new.key].bytes_s == pytest.approx((new.tx_bytes - old.tx_bytes) / 0.5)
    recv = {r.key: r for r in socket_rows(second, second, first, "recv")}
    sock = second.sockets[0]
    assert recv[sock.key].p50 == sock.recv_hist.percentile(50) != rows[sock.key].p50


def test_socket_rows_keep_the_busiest_then_the_slowest_of_those_tied() -> None:
    # 600 sockets in three rate groups (the 200 rows end inside the middle one, 300 tied) whose
    # p99 differ: the rows are the busiest, then among the tied the highest p99, then stable order
    template = SyntheticSource(seed=1).poll()
    proto = template.sockets[0]

    def sock(i: int, tx: int) -> SocketStats:
        hist = Histogram.from_sparse({10 + i % 37: 1 + i % 5, 60: 1}, SOCKET_SUB_BITS)
        return replace(proto, key=1000 + i, tx_packets=tx, tx_bytes=tx, send_hist=hist, max_ns=0)

    before = replace(template, time_s=1.0, sockets=tuple(sock(i, 0) for i in range(600)))
    after = replace(template, time_s=2.0,
                    sockets=tuple(sock(i, 50 if i < 100 else 20 if i < 400 else 5) for i in range(600)))
    rows = socket_rows(after, after, before, "send")
    assert len(rows) == 200 and [r.pkts_s for r in rows] == [50.0] * 100 + [20.0] * 100
    p99 = {s.key: s.send_hist.percentile(99) for s in after.sockets}
    by_rate = sorted(after.sockets, key=lambda s: -s.tx_packets)
    want = sorted(by_rate, key=lambda s: (s.tx_packets, p99[s.key]), reverse=True)[:200]
    assert [r.key for r in rows] == [s.key for s in want]
    assert [r.p99 for r in rows] == [p99[s.key] for s in want]
    assert rows[150].p50 == after.sockets[rows[150].key - 1000].send_hist.percentile(50)


def test_view_filters_narrow_sockets_and_events_only() -> None:
    snap = SyntheticSource(seed=2).poll()
    narrowed = Filters(port=6379).narrow(snap)
    assert {s.comm for s in narrowed.sockets} == {"redis-server"}
    assert all(6379 in (e.lport, e.rport) for e in narrowed.events)
    assert narrowed.paths == snap.paths
    assert Filters(protocol="udp").narrow(snap).sockets[0].comm == "coredns"


def test_view_since_clear_and_stage_cycle() -> None:
    source = SyntheticSource(seed=3)
    base = source.poll()
    now = source.poll()
    view = build_view(now.since(base), now, base, "recv")
    assert view.stage_key == "stack"
    recv = view.shown.paths["recv"]
    assert recv.get("stack").hist.total == 400  # one tick's packets, the baseline's gone
    udp = sum(s.rx_packets for s in view.shown.sockets if s.protocol == "UDP")
    assert recv.get("e2e").hist.total == 400 - udp
    assert view.packets_rate("send") == pytest.approx(400 / 0.5)
    assert next_stage(now, "recv", "stack") == "e2e"
    assert next_stage(now, "recv", "copy") == "stack"


def test_the_app_module_does_not_import_bcc() -> None:
    code = "import sys, tui.app; print(sorted(m for m in sys.modules if m.split('.')[0] == 'bcc'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_percentiles_never_exceed_the_exact_maximum() -> None:
    hist = Histogram.from_values([1_000] * 98 + [8_200] * 2)  # 8200 lies in [8192, 9216)
    assert hist.percentile(99) == 8_704  # the bucket midpoint, above every value measured
    row = LayerRow.of("stage", "L2", hist, max_ns=8_200)
    assert row.p99 == 8_200
    assert row.p50 == hist.percentile(50) < 8_200  # percentiles below the max are untouched
    assert LayerRow.of("stage", "L2", hist).p99 == 8_704  # max unknown: the midpoint stands


def test_header_warns_of_skipped_probe_runs_only_when_there_are_some() -> None:
    source = SyntheticSource(seed=4)
    base, now = source.poll(), source.poll()
    quiet = build_status("live", "send", build_view(now.since(base), now, None, "send"), "")
    assert quiet.missed == 0 and "skipped" not in status_text(quiet).plain
    send = now.paths["send"]
    missed = replace(send, counters={**send.counters, "missed": 3})
    busy = replace(now, paths={**now.paths, "send": missed})
    status = build_status("live", "send", build_view(busy.since(now), busy, None, "send"), "")
    assert status.missed == 3
    assert "kernel skipped 3 probe runs" in status_text(status).plain


def test_header_says_when_the_socket_table_dropped_rows_in_one_short_line() -> None:
    source = SyntheticSource(seed=4)
    base, now = source.poll(), source.poll()
    quiet = build_status("live", "send", build_view(now.since(base), now, None, "send"), "")
    assert "socket table" not in status_text(quiet).plain
    full = replace(now, sockets_dropped=1234, sockets_max=32768)
    status = build_status("live", "send", build_view(full.since(now), full, None, "send"), "")
    line = next(ln for ln in status_text(status).plain.splitlines() if "socket table" in ln)
    assert line == " ⚠ socket table full (32.8k rows): 1.2k sockets not listed (--max-sockets)"
    assert len(line) <= 80


def test_header_shows_the_probes_cost_over_the_last_tick_within_80_columns() -> None:
    from tui.model.snapshot import Cost

    source = SyntheticSource(seed=4)
    base, now = source.poll(), source.poll()
    no_cost = build_status("live", "send", build_view(now, now, base, "send"), "")
    assert "cost:" not in status_text(no_cost).plain  # not a live source
    packets = now.packets_seen() - base.packets_seen()
    base = replace(base, cost=Cost(wall_s=1.0, cpu_s=0.5, rss_bytes=90 << 20, bpf_ns=10**6, bpf_runs=10,
                                   bpf_measured=True))
    now = replace(now, cost=Cost(wall_s=2.0, cpu_s=0.52, rss_bytes=92 << 20, bpf_ns=10**6 + 800 * packets,
                                 bpf_runs=10 + 11 * packets, bpf_measured=True))
    status = build_status("live", "send", build_view(now, now, base, "send"), "")
    assert status.cost is not None and status.cost["bpf_ns_per_packet"] == 800
    line = next(x for x in status_text(status).plain.splitlines() if "cost:" in x)
    assert line.startswith(" cost: BPF 800 ns/pkt ") and "netlat-tui 2.0% CPU 92 MB" in line, line
    assert len(line) <= 80
    off = replace(now, cost=replace(now.cost, bpf_measured=False))
    text = status_text(build_status("live", "send", build_view(off, off, base, "send"), "")).plain
    assert "BPF not measured" in text


def test_udp_peer_lines_fit_80_columns_and_say_when_peers_were_refused() -> None:
    from tui.model.snapshot import PeerStats, SocketStats
    from tui.screens.socket_detail import peer_lines, peer_rows_for_height, socket_summary

    peers = tuple(PeerStats(addr=f"2001:db8:ffff:ffff:ffff:ffff:ffff:{i:x}", port=65000 + i,
                            tx_packets=10**6 * (9 - i), rx_packets=10**6, tx_mean_ns=1234.0,
                            rx_mean_ns=None, rx_max_ns=0) for i in range(8))
    sock = SocketStats(key=1, pid=1, comm="unbound", protocol="UDP", family=6, laddr="::", lport=53,
                       raddr="::", rport=0, peers=peers, peer_count=12000, peer_drops=4321)
    text = peer_lines(sock, 5).plain
    lines = text.splitlines()
    assert len(lines) == 2 + 5 and all(len(line) <= 80 for line in lines)
    assert "peers 12000 (busiest 5, since start)" in lines[0] and "4.3k datagrams dropped" in lines[0]
    assert lines[2].startswith("  …") and lines[2].split()[1:3] == ["9.0M", "1.0M"]
    assert peer_rows_for_height(24) == 3 and peer_rows_for_height(52) == 10
    # a TCP socket's drill-down is unchanged: no peer section
    tcp = SocketStats(key=2, pid=1, comm="nginx", protocol="TCP", family=4, laddr="10.0.0.1", lport=443,
                      raddr="10.0.0.2", rport=5000)
    assert "peers" not in socket_summary(tcp).plain
