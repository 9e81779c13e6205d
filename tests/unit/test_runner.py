"""The source runner's seams without Textual: commands from another thread, one path for filters."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from fakes import FailingSource, FakeLiveSource

from tui.model.filters import Filters
from tui.model.snapshot import Snapshot
from tui.model.timeline import Timeline
from tui.sources.replay import RecordingSource, load_recording
from tui.sources.runner import SourceRunner, Tick
from tui.sources.synthetic import SyntheticSource
from tui.view.state import ViewerState

FAST_S = 0.01


class Sink:
    """Records what the runner reports, thread-safely."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, object]] = []
        self.lock = threading.Lock()

    def _add(self, kind: str, value: object = None) -> None:
        with self.lock:
            self.reports.append((kind, value))

    def starting(self, description: str) -> None:
        self._add("starting", description)

    def started(self, filters: Filters | None) -> None:
        self._add("started", filters)

    def tick(self, tick: Tick) -> None:
        self._add("snapshot", tick.snapshot)

    def ended(self) -> None:
        self._add("ended")

    def failed(self, reason: str) -> None:
        self._add("failed", reason)

    def kinds(self) -> list[str]:
        with self.lock:
            return [k for k, _ in self.reports]

    def snapshots(self) -> list[Snapshot]:
        with self.lock:
            return [v for k, v in self.reports if k == "snapshot"]  # type: ignore[misc]


def wait_for(ready: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def start(runner: SourceRunner, sink: Sink) -> tuple[threading.Thread, threading.Event]:
    cancelled = threading.Event()
    thread = threading.Thread(target=runner.run, args=(sink, cancelled), daemon=True)
    thread.start()
    return thread, cancelled


def test_filters_reach_a_live_source_between_two_polls_and_each_is_applied_once() -> None:
    source, sink = FakeLiveSource(), Sink()
    runner = SourceRunner(source)
    thread, cancelled = start(runner, sink)
    wait_for(lambda: len(sink.snapshots()) >= 2, "snapshots")
    # Two changes in quick succession from another thread: neither may be lost (the old app kept
    # one pending slot that a second write could overwrite between the worker's read and clear).
    runner.set_filters(Filters(port=80))
    runner.set_filters(Filters(port=443))
    wait_for(lambda: len(source.filters_seen) == 2, "both filter changes")
    cancelled.set()
    thread.join(5)
    assert source.filters_seen == [Filters(port=80), Filters(port=443)]
    kinds = sink.kinds()
    assert kinds[:2] == ["starting", "started"]
    assert kinds.count("starting") == 3, "a live refilter announces the recompile"
    assert [v for k, v in sink.reports if k == "started"] == [None, Filters(port=80), Filters(port=443)]
    assert runner.closed.is_set() and source.closed == 1


def test_pause_stops_demo_data_but_not_a_live_source() -> None:
    for source, stops in ((SyntheticSource(seed=1, interval_s=FAST_S), True), (FakeLiveSource(), False)):
        sink = Sink()
        runner = SourceRunner(source, poll_every_s=FAST_S)
        thread, cancelled = start(runner, sink)
        wait_for(lambda sink=sink: len(sink.snapshots()) >= 2, "snapshots")
        runner.set_paused(True)
        time.sleep(0.05)  # a poll already under way lands
        held = len(sink.snapshots())
        time.sleep(0.2)  # twenty poll intervals
        assert (len(sink.snapshots()) == held) is stops
        runner.set_paused(False)
        wait_for(lambda sink=sink, held=held: len(sink.snapshots()) > held + 2, "polling again")
        cancelled.set()
        thread.join(5)


def test_demo_filters_narrow_the_snapshots_without_restarting() -> None:
    source, sink = SyntheticSource(seed=1, interval_s=0.5), Sink()
    runner = SourceRunner(source, poll_every_s=FAST_S)
    thread, cancelled = start(runner, sink)
    wait_for(lambda: len(sink.snapshots()) >= 2, "snapshots")
    runner.set_filters(Filters(comm="redis-server"))
    wait_for(lambda: ("started", Filters(comm="redis-server")) in sink.reports, "the refilter")
    seen = len(sink.snapshots())
    wait_for(lambda: len(sink.snapshots()) >= seen + 2, "narrowed snapshots")
    cancelled.set()
    thread.join(5)
    snaps = sink.snapshots()
    after = snaps[seen:]
    assert all({s.comm for s in snap.sockets} == {"redis-server"} for snap in after)
    assert all(e.comm == "redis-server" for snap in after for e in snap.events)
    assert snaps[-1].seq == len(snaps), "demo data go on counting (no restart)"
    assert sink.kinds().count("starting") == 1, "nothing is recompiled for demo data"


def test_a_recording_follows_the_filter_change(tmp_path) -> None:
    path = tmp_path / "run.jsonl"
    source, sink = RecordingSource(SyntheticSource(seed=1, interval_s=0.5), path), Sink()
    runner = SourceRunner(source, poll_every_s=FAST_S)
    thread, cancelled = start(runner, sink)
    wait_for(lambda: len(sink.snapshots()) >= 1, "a snapshot")
    runner.set_filters(Filters(pid=777))
    wait_for(lambda: any(s.meta.filters.startswith("pid=777") for s in sink.snapshots()), "narrowed")
    cancelled.set()
    thread.join(5)
    recorded = load_recording(path)[1]
    assert recorded[0].meta.filters == ""
    assert recorded[-1].meta.filters == "pid=777 (sockets+events only)"
    assert {s.pid for s in recorded[-1].sockets} == {777}


def test_a_failed_start_is_one_line_and_still_closes() -> None:
    sink = Sink()
    runner = SourceRunner(FailingSource())
    runner.run(sink, threading.Event())
    assert sink.reports[-1] == ("failed", "cannot attach tracepoint net:net_dev_queue: permission denied")
    assert runner.closed.is_set()


def test_taps_see_every_snapshot_before_the_sink() -> None:
    seen: list[int] = []
    sink = Sink()
    demo = SyntheticSource(seed=1, interval_s=FAST_S, limit=4)
    runner = SourceRunner(demo, taps=[lambda s: seen.append(s.seq)])
    runner.run(sink, threading.Event())
    assert seen == [1, 2, 3, 4] and sink.kinds()[-1] == "ended"


@pytest.mark.parametrize("restarted", [True, False])
def test_viewer_state_after_a_refilter(restarted: bool) -> None:
    source = SyntheticSource(seed=1, interval_s=0.5)
    timeline = Timeline(0.5)
    viewer = ViewerState(Filters(), running_state="demo")
    viewer.started(None, restarted=True)
    for _ in range(4):
        snap = source.poll()
        timeline.add(snap)
        viewer.add(Tick(snap, None, timeline.copy(), None, timeline.window(None)))
        if snap.seq == 3:
            viewer.clear()  # the app clears both: the frame on screen and the runner's timeline
            timeline.clear()
    assert viewer.recent_events and viewer.shown.timeline.cleared
    viewer.started(Filters(pid=4242), restarted=restarted)
    assert viewer.filters == Filters(pid=4242)
    if restarted:  # live probes rebuilt: counts start again, nothing to compare against
        assert viewer.current is None and viewer.shown is None
    else:  # demo data narrowed: the ticks stay, kept events are narrowed too
        assert viewer.current is snap
        assert viewer.recent_events and all(e.pid == 4242 for e in viewer.recent_events)


def test_tune_gc_raises_only_the_young_generation_threshold() -> None:
    import gc

    from tui.sources.runner import GC_YOUNG_THRESHOLD, tune_gc

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 11, 12)
        tune_gc()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 11, 12) and GC_YOUNG_THRESHOLD > 700
    finally:
        gc.set_threshold(*before)
