"""The Timeline: windows are exact sums of intervals, bounded, and survive clears and restarts."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import pytest

from tui.model.histogram import SOCKET_SUB_BITS, Histogram
from tui.model.snapshot import RECV, SEND, Snapshot, SocketStats
from tui.model.timeline import Timeline, window_name
from tui.sources.synthetic import SyntheticSource


def snapshots(n: int, seed: int = 5, interval_s: float = 0.5, per_tick: int = 60) -> list[Snapshot]:
    source = SyntheticSource(seed=seed, interval_s=interval_s, packets_per_tick=per_tick)
    return [source.poll() for _ in range(n)]


def fed(snaps: list[Snapshot], interval_s: float = 0.5) -> Timeline:
    timeline = Timeline(interval_s=interval_s)
    for snap in snaps:
        timeline.add(snap)
    return timeline


def figures(snap: Snapshot) -> dict:
    """Everything a window promises, comparable with ==."""
    return {
        "stages": {(p, s.spec.key): (s.hist, s.max_ns) for p, st in snap.paths.items() for s in st.all()},
        "counters": {p: dict(st.counters) for p, st in snap.paths.items()},
        "sockets": {s.key: (s.tx_packets, s.tx_bytes, s.rx_packets, s.rx_bytes, s.send_hist, s.recv_hist)
                    for s in snap.sockets if s.tx_packets or s.rx_packets},
        "events": (snap.events_total, snap.events_lost),
    }


def hists(snap: Snapshot) -> dict:
    return {(p, s.spec.key): s.hist for p, st in snap.paths.items() for s in st.all()}


def test_summed_intervals_equal_the_cumulative_difference_exactly() -> None:
    snaps = snapshots(12)
    timeline = fed(snaps)
    assert len(timeline.intervals()) == 12
    # Since start: the latest cumulative snapshot, max_ns included.
    assert figures(timeline.window(None)) == figures(snaps[-1])
    # Every rolling window: the newest snapshot less the one at the window's start.
    for k in (1, 2, 5, 11):
        window = timeline.window(k * 0.5)
        assert hists(window) == hists(snaps[-1].since(snaps[-1 - k]))
        assert figures(window)["sockets"] == figures(snaps[-1].since(snaps[-1 - k]))["sockets"]
        assert timeline.span(k * 0.5) == pytest.approx(k * 0.5)
    # The whole ring summed is the cumulative snapshot too.
    assert figures(timeline.window(1e9)) == figures(snaps[-1])


def test_window_keeps_the_latest_identity_and_events() -> None:
    snaps = snapshots(4)
    window = fed(snaps).window(1.0)
    assert (window.seq, window.time_s, window.plan, window.meta) == (
        snaps[-1].seq, snaps[-1].time_s, snaps[-1].plan, snaps[-1].meta)
    assert window.events == snaps[-1].events
    assert window.events_total == snaps[-1].events_total - snaps[-3].events_total


def test_window_before_is_the_same_length_just_before() -> None:
    snaps = snapshots(10)
    timeline = fed(snaps)
    before = timeline.window_before(2.0)  # 4 intervals of 0.5 s before the newest 4
    assert hists(before) == hists(snaps[-5].since(snaps[-9]))
    assert timeline.window_before(5.0) is None  # nothing left before the whole ring
    # 3 s is the newest 6 intervals; before them only 4 are left (2 s, from the source's start).
    assert hists(timeline.window_before(3.0)) == hists(snaps[3])


@pytest.mark.parametrize(
    ("seconds", "taken"),
    [(1.0, 1), (1.4, 1), (1.6, 2), (2.5, 2), (3.1, 3), (10.0, 10), (100.0, 12)],
)
def test_a_window_takes_the_intervals_closest_to_its_length(seconds: float, taken: int) -> None:
    # Live intervals jitter around 1 s: 10 s must take 10 of them, not 11.
    times = [1.001, 1.999, 3.002, 4.0, 4.998, 6.001, 7.0, 8.003, 8.999, 10.0, 11.001, 12.0]
    snaps = [replace(s, time_s=t) for s, t in zip(snapshots(12), times, strict=True)]
    timeline = fed(snaps, interval_s=1.0)
    window = timeline.window(seconds)
    assert hists(window) == hists(snaps[-1].since(snaps[-1 - taken]) if taken < 12 else snaps[-1])


def test_clear_counts_from_the_latest_snapshot() -> None:
    snaps = snapshots(8)
    timeline = fed(snaps[:5])
    timeline.clear()
    assert timeline.intervals() == ()
    empty = timeline.window(None)
    assert all(not s.hist for st in empty.paths.values() for s in st.all())
    assert timeline.window(10) == replace(empty, sockets=())  # nothing since clear
    for snap in snaps[5:]:
        timeline.add(snap)
    assert hists(timeline.window(None)) == hists(snaps[-1].since(snaps[4]))
    assert hists(timeline.window(100)) == hists(snaps[-1].since(snaps[4]))
    assert timeline.span(None) == pytest.approx(1.5)


def test_a_source_restart_starts_a_new_segment_and_since_start_carries_the_old_one() -> None:
    first, second = snapshots(5, seed=1), snapshots(3, seed=2)
    timeline = fed(first + second)
    starts = [i.start_s for i in timeline.intervals()]
    assert starts == sorted(starts) and timeline.intervals()[5].start_s == pytest.approx(2.5)
    # The interval after the restart is the new source's own figures, not a difference.
    assert hists(timeline.window(0.5)) == hists(second[2].since(second[1]))
    restart = timeline.intervals()[5]
    assert restart.point(SEND, "qdisc").count == second[0].path(SEND).get("qdisc").hist.total
    # Since start: both runs added up; so is the whole ring.
    both = {k: h.plus(hists(second[-1])[k]) for k, h in hists(first[-1]).items()}
    assert hists(timeline.window(None)) == both
    assert hists(timeline.window(1e9)) == both
    assert timeline.span(None) == pytest.approx(2.5 + 1.5)


def test_a_dropping_packet_counter_is_a_restart_too() -> None:
    first, second = snapshots(4, seed=1), snapshots(2, seed=2)
    later = [replace(s, time_s=s.time_s + 10) for s in second]  # time moves on, counters reset
    timeline = fed(first + later)
    both = {k: h.plus(hists(later[-1])[k]) for k, h in hists(first[-1]).items()}
    assert hists(timeline.window(None)) == both


def test_memory_is_bounded_and_old_intervals_drop_their_sockets() -> None:
    snaps = snapshots(30)
    timeline = Timeline(interval_s=0.5, keep_s=5.0, socket_keep_s=2.0)
    for snap in snaps:
        timeline.add(snap)
    kept = timeline.intervals()
    assert len(kept) == 10 and kept[-1].end_s == snaps[-1].time_s
    assert [bool(i.sockets) for i in kept] == [False] * 6 + [True] * 4
    # Stages of a wide window stay exact; its sockets are those of the newest 2 s.
    assert hists(timeline.window(5.0)) == hists(snaps[-1].since(snaps[-11]))
    assert figures(timeline.window(5.0))["sockets"] == figures(snaps[-1].since(snaps[-5]))["sockets"]


def test_series_and_trends_follow_the_intervals() -> None:
    snaps = snapshots(6)
    timeline = fed(snaps)
    series = timeline.series(RECV, "sock_queue")
    assert len(series) == 6
    delta = snaps[3].since(snaps[2]).path(RECV).get("sock_queue")
    assert series[3].count == delta.hist.total
    assert series[3].hist() == delta.hist
    assert series[3].p99_ns == min(delta.hist.percentile(99), delta.max_ns or float("inf"))
    trends = timeline.trends(SEND, q=50, last=4)
    assert set(trends) == {s.key for s in snaps[0].plan.specs(SEND)}
    assert trends["qdisc"] == tuple(p.p50_ns for p in timeline.series(SEND, "qdisc")[-4:])
    assert Timeline().trends(SEND) == {}


def test_a_copy_is_frozen_while_the_original_moves_on() -> None:
    snaps = snapshots(6)
    timeline = fed(snaps[:4])
    frozen = timeline.copy()
    for snap in snaps[4:]:
        timeline.add(snap)
    timeline.clear()
    assert len(frozen.intervals()) == 4
    assert hists(frozen.window(None)) == hists(snaps[3])


def test_nothing_fed_means_no_window() -> None:
    timeline = Timeline()
    assert timeline.window(10) is None and timeline.window(None) is None
    assert timeline.window_before(10) is None and timeline.span(10) == 0.0
    with pytest.raises(ValueError):
        Timeline(interval_s=0)


def test_a_replayed_recording_gives_the_same_windows_series_and_verdict(tmp_path) -> None:
    from tui.model.verdict import overall
    from tui.sources.replay import RecordingSource, ReplaySource

    path = tmp_path / "run.jsonl"
    recorder = RecordingSource(SyntheticSource(seed=3, interval_s=0.5, packets_per_tick=50), path)
    recorder.start()
    live = [recorder.poll() for _ in range(8)]
    recorder.close()
    replay = ReplaySource.open(path)
    replay.start()
    again = [replay.poll() for _ in range(8)]
    a, b = fed(live), fed(again)
    for seconds in (0.5, 2.0, None):
        assert figures(a.window(seconds)) == figures(b.window(seconds))
    assert a.series(RECV, "sock_queue") == b.series(RECV, "sock_queue")
    assert overall(a.window(1.0), a.window_before(1.0)) == overall(b.window(1.0), b.window_before(1.0))


def test_the_same_snapshot_twice_adds_nothing() -> None:
    snaps = snapshots(3)
    timeline = fed(snaps)
    assert timeline.add(snaps[-1]) is None
    assert len(timeline.intervals()) == 3


def test_window_names() -> None:
    assert [window_name(w) for w in (1.0, 10.0, 60.0, None)] == ["1s", "10s", "60s", "since start"]
    assert window_name(None, cleared=True) == "since clear" and window_name(2.5) == "2.5s"


def test_windows_without_sockets_and_asked_twice() -> None:
    snaps = snapshots(6)
    timeline = fed(snaps[:5])
    full, bare = timeline.window(1.0), timeline.window(1.0, sockets=False)
    assert bare.sockets == () and full.sockets and hists(bare) == hists(full)
    assert timeline.window(1.0) is full  # the same until the next snapshot
    assert timeline.window_before(1.0) is timeline.window_before(1.0)
    timeline.add(snaps[5])
    assert hists(timeline.window(1.0)) == hists(snaps[5].since(snaps[3]))


def _sock(key: int, tx: int, rx: int, send: dict[int, int], pid: int = 100,
          max_ns: int = 5000) -> SocketStats:
    return SocketStats(key=key, pid=pid, comm=f"app{pid}", protocol="TCP", family=4, laddr="10.0.0.1",
                       lport=key, raddr="10.0.0.2", rport=80, tx_packets=tx, tx_bytes=10 * tx,
                       rx_packets=rx, rx_bytes=7 * rx,
                       send_hist=Histogram.from_sparse(send, SOCKET_SUB_BITS),
                       recv_hist=Histogram.from_sparse({5: rx} if rx else {}, SOCKET_SUB_BITS), max_ns=max_ns)


def _reference(snaps: list[Snapshot]) -> dict[int, tuple]:
    """Sum of every interval's socket deltas (SocketStats.since, those that moved), by key: what
    a window promises, the newest identity of each socket."""
    out: dict[int, tuple] = {}
    for older, newer in pairwise(snaps):
        old = {s.key: s for s in older.sockets}
        for s in newer.sockets:
            d = s.since(old[s.key]) if s.key in old else s
            if not (d.tx_packets or d.rx_packets or d.tx_bytes or d.rx_bytes):
                continue
            tx, txb, rx, rxb, sh, rh, top, _ = out.get(s.key, (0, 0, 0, 0, Histogram.empty(SOCKET_SUB_BITS),
                                                               Histogram.empty(SOCKET_SUB_BITS), 0, None))
            out[s.key] = (tx + d.tx_packets, txb + d.tx_bytes, rx + d.rx_packets, rxb + d.rx_bytes,
                          sh.plus(d.send_hist), rh.plus(d.recv_hist), max(top, d.max_ns), (s.pid, s.comm))
    return out


def _window_sockets(window: Snapshot) -> dict[int, tuple]:
    return {s.key: (s.tx_packets, s.tx_bytes, s.rx_packets, s.rx_bytes, s.send_hist, s.recv_hist, s.max_ns,
                    (s.pid, s.comm)) for s in window.sockets}


def test_socket_windows_sum_their_intervals_through_row_restarts_and_new_sockets() -> None:
    base = snapshots(1)[0]
    rows = [
        # key 1 moves every tick and changes pid at tick 4; key 2's row restarts at tick 3 (its
        # counters go back); key 3 appears at tick 2; key 4 moves at ticks 1 and 4 only; key 5's
        # max goes down at tick 4 with its counters still growing (another row, same key)
        [_sock(1, 1, 1, {20: 1}), _sock(2, 5, 5, {30: 5}), _sock(4, 1, 0, {10: 1}),
         _sock(5, 1, 1, {9: 1}, max_ns=90_000)],
        [_sock(1, 2, 2, {20: 2}), _sock(2, 9, 6, {30: 9}), _sock(4, 2, 0, {10: 2}),
         _sock(5, 2, 1, {9: 2}, max_ns=90_000)],
        [_sock(1, 3, 3, {20: 2, 21: 1}), _sock(2, 12, 8, {30: 12}), _sock(3, 4, 4, {40: 4}),
         _sock(4, 2, 0, {10: 2}), _sock(5, 3, 2, {9: 3}, max_ns=90_000)],
        [_sock(1, 4, 3, {20: 3, 21: 1}), _sock(2, 2, 1, {31: 2}), _sock(3, 6, 4, {40: 6}),
         _sock(4, 2, 0, {10: 2}), _sock(5, 4, 3, {9: 4}, max_ns=90_000)],
        [_sock(1, 6, 4, {20: 5, 21: 1}, pid=101), _sock(2, 3, 1, {31: 3}), _sock(3, 7, 5, {40: 7}),
         _sock(4, 5, 1, {10: 5}), _sock(5, 6, 4, {9: 6}, max_ns=2_000)],
        [_sock(1, 7, 5, {20: 6, 21: 1}, pid=101), _sock(2, 4, 2, {31: 4}), _sock(3, 7, 5, {40: 7}),
         _sock(4, 5, 1, {10: 5}), _sock(5, 7, 4, {9: 7}, max_ns=2_000)],
    ]
    snaps = [replace(base, seq=i + 1, time_s=float(i + 1), sockets=tuple(r)) for i, r in enumerate(rows)]
    timeline = Timeline(interval_s=1.0)
    for snap in snaps:
        timeline.add(snap)
    start = replace(snaps[0], sockets=())  # the first interval counts from the source's start
    for k in range(1, 7):
        want = _reference([start, *snaps][-1 - k:])
        assert _window_sockets(timeline.window(float(k))) == want, k
    whole = _window_sockets(timeline.window(None))
    assert whole[1][:4] == (7, 70, 5, 35) and whole[1][7] == (101, "app101")
    assert whole[2][:4] == (4, 40, 2, 14)  # since start is the cumulative row: the restarted one
    assert _window_sockets(timeline.window(1e9))[2][:4] == (12 + 4, 120 + 40, 8 + 2, 56 + 14)  # summed


def test_socket_windows_do_not_depend_on_the_order_sockets_are_listed_in() -> None:
    base = snapshots(1)[0]
    ticks = [[_sock(k, t * k, t, {10 + k: t * k}) for k in range(1, 6)] for t in range(1, 6)]
    ticks[2].reverse()  # another order, then a socket missing and the order back
    del ticks[3][1]
    snaps = [replace(base, seq=i + 1, time_s=float(i + 1), sockets=tuple(r)) for i, r in enumerate(ticks)]
    timeline = Timeline(interval_s=1.0)
    for snap in snaps:
        timeline.add(snap)
    start = replace(snaps[0], sockets=())
    for k in range(1, 6):
        assert _window_sockets(timeline.window(float(k))) == _reference([start, *snaps][-1 - k:]), k


def test_socket_windows_across_a_source_restart_and_a_clear() -> None:
    base = snapshots(1)[0]
    first = [replace(base, seq=i, time_s=float(i), sockets=(_sock(1, 2 * i, i, {20: 2 * i}),))
             for i in range(1, 4)]
    # a new run of the source: time starts again, the same socket key counts from zero
    second = [replace(base, seq=i + 1, time_s=float(i + 1) / 2, sockets=(_sock(1, i + 1, 0, {22: i + 1}),))
              for i in range(2)]
    timeline = Timeline(interval_s=1.0)
    for snap in first + second:
        timeline.add(snap)
    [s] = timeline.window(None).sockets
    assert (s.tx_packets, s.rx_packets, s.send_hist.sparse()) == (6 + 2, 3, {20: 6, 22: 2})
    [s] = timeline.window(1e9).sockets  # every interval kept: the same sums
    assert (s.tx_packets, s.rx_packets, s.send_hist.sparse()) == (8, 3, {20: 6, 22: 2})
    timeline.clear()
    timeline.add(replace(second[-1], seq=3, time_s=1.5, sockets=(_sock(1, 5, 1, {22: 5}),)))
    [s] = timeline.window(None).sockets
    assert (s.tx_packets, s.rx_packets, s.send_hist.sparse()) == (3, 1, {22: 3})
