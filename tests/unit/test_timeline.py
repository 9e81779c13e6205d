"""The Timeline: windows are exact sums of intervals, bounded, and survive clears and restarts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tui.model.snapshot import RECV, SEND, Snapshot
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
