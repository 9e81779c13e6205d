"""A filter change on live probes through the one path the UI uses (the source runner), for real."""

from __future__ import annotations

import threading
import time

import pytest
from netns import run_pair  # tests/kernel is on sys.path (rootdir-less test dir)
from test_probes import N, assert_counted, free_port

from tui.model.filters import Filters
from tui.model.snapshot import RECV, SEND, Snapshot
from tui.sources.live import LiveSource
from tui.sources.runner import SourceRunner, Tick

pytestmark = pytest.mark.kernel


class Sink:
    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.starts: list[Filters | None] = []
        self.failures: list[str] = []

    def starting(self, description: str) -> None:
        pass

    def started(self, filters: Filters | None) -> None:
        self.starts.append(filters)

    def tick(self, tick: Tick) -> None:
        self.snapshots.append(tick.snapshot)

    def ended(self) -> None:
        pass

    def failed(self, reason: str) -> None:
        self.failures.append(reason)


def wait_for(ready, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_filter_change_recompiles_and_counts_only_the_new_port_from_zero() -> None:
    first, second = free_port(), free_port()
    sink = Sink()
    source = LiveSource(filters=Filters(port=first), interval_s=0.2)
    runner = SourceRunner(source)
    cancelled = threading.Event()
    thread = threading.Thread(target=runner.run, args=(sink, cancelled), daemon=True)
    thread.start()
    try:
        wait_for(lambda: sink.snapshots or sink.failures, "the probes to attach")
        assert not sink.failures
        run_pair(None, None, "127.0.0.1", N, 64, port=first)
        run_pair(None, None, "127.0.0.1", N // 2, 64, port=second)
        wait_for(lambda: sink.snapshots[-1].path(SEND).get("total").hist.total >= 2 * N, "first port")
        before = sink.snapshots[-1]

        runner.set_filters(Filters(port=second))
        wait_for(lambda: len(sink.starts) == 2, "the recompile")
        seen = len(sink.snapshots)
        run_pair(None, None, "127.0.0.1", N // 2, 64, port=first)
        run_pair(None, None, "127.0.0.1", N, 64, port=second)
        wait_for(lambda: len(sink.snapshots) > seen + 1
                 and sink.snapshots[-1].path(RECV).get("e2e").hist.total >= 2 * N, "second port")
        time.sleep(0.5)  # one more tick: nothing else may arrive
        after = sink.snapshots[-1]
    finally:
        cancelled.set()
        thread.join(15)
    assert runner.closed.is_set() and not sink.failures
    assert sink.starts == [None, Filters(port=second)]
    # before the change: exactly the first port's exchanges
    assert_counted(before, SEND, "total", 2 * N)
    # after it: counts restarted (the snapshot sequence too) and only the second port is counted
    restarts = [i for i, snap in enumerate(sink.snapshots) if snap.seq == 1]
    assert len(restarts) == 2 and after.seq == len(sink.snapshots) - restarts[1]
    assert after.meta.filters == f"port={second}"
    assert_counted(after, SEND, "total", 2 * N)
    assert_counted(after, RECV, "e2e", 2 * N)
    # closed sockets leave the table after one tick: look at every snapshot since the change
    rows = [s for snap in sink.snapshots[restarts[1]:] for s in snap.sockets]
    assert all(second in (s.lport, s.rport) for s in rows) and rows
