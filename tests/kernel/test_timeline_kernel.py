"""The timeline and the verdict on the real kernel: a qdisc wait that starts halfway, a slow reader.

The live source is polled once a second into a Timeline, as the dashboard and headless do. Each test
runs its own traffic on a filtered port for a few seconds (other engineers' loads may share the
machine) and checks the series interval by interval, then the verdict a person would read.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from netns import VethPair  # tests/kernel is on sys.path (rootdir-less test dir)

from tui.model.filters import Filters
from tui.model.snapshot import RECV, SEND
from tui.model.summary import snapshot_summary
from tui.model.timeline import Timeline
from tui.model.verdict import DEV_PLACEHOLDER, overall, verdict
from tui.sources.live import LiveSource

pytestmark = pytest.mark.kernel

TBF_RATE_BPS = 1_000_000  # tc "1mbit"
TBF_BURST = 1514  # one full frame: the filler empties the bucket
FILLER_PAYLOAD = 1472  # UDP payload -> 1514 bytes on the veth
REQUEST = 1448  # TCP payload -> 1514 bytes on the wire
EXPECTED_WAIT_US = 1514 * 8 / TBF_RATE_BPS * 1e6  # a request behind the filler waits 12112 us


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def polled(filters: Filters) -> Iterator[tuple[LiveSource, Timeline, Callable[[], float]]]:
    """A started live source, a Timeline, and ``tick()``: wait for the next second, poll, add;
    returns the new interval's end (timeline seconds)."""
    source = LiveSource(filters=filters, interval_s=1.0)
    source.start()
    timeline = Timeline(1.0)
    next_at = time.monotonic() + 1.0

    def tick() -> float:
        nonlocal next_at
        time.sleep(max(next_at - time.monotonic(), 0))
        next_at += 1.0
        snap = source.poll()
        assert snap is not None
        interval = timeline.add(snap)
        assert interval is not None
        return interval.end_s

    try:
        yield source, timeline, tick
    finally:
        source.close()


def test_a_tbf_qdisc_added_halfway_shows_in_the_series_and_the_verdict_names_the_qdisc() -> None:
    port = free_port()
    # rport: only the client's socket, whose requests queue behind the filler on the shaped device
    with VethPair() as pair, polled(Filters.parse(rport=str(port))) as (_source, timeline, tick):
        server = pair.popen(pair.ns_a, "server", "--bind", pair.ip_a, "--port", str(port),
                            "--count", "100", "--size", str(REQUEST))
        client = None
        try:
            assert server.stdout is not None
            json.loads(server.stdout.readline())  # listening
            client = pair.popen(pair.ns_b, "client", "--connect", pair.ip_a, "--port", str(port),
                                "--count", "100", "--size", str(REQUEST),
                                "--filler-size", str(FILLER_PAYLOAD), "--gap", "0.06")
            for _ in range(3):
                tick()
            pair.tc(pair.ns_b, "qdisc", "add", "dev", pair.dev_b, "root", "tbf", "rate", "1mbit",
                    "burst", str(TBF_BURST), "latency", "500ms")
            shaped_from = timeline.latest.time_s  # intervals starting here on are all shaped
            unshaped = timeline.copy()  # what the screen showed before: kept as it was
            while client.poll() is None and timeline.latest.time_s < 15:
                tick()
            assert client.wait(timeout=30) == 0, client.stderr.read() if client.stderr else ""
            tick()
        finally:
            for proc in (client, server):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
    qdisc = [(i.start_s, i.point(SEND, "qdisc")) for i in timeline.intervals()]
    before = [p.p50_ns / 1000 for start, p in qdisc if start < shaped_from - 0.5 and p and p.count]
    after = [p.p50_ns / 1000 for start, p in qdisc if start >= shaped_from and p and p.count >= 5]
    assert len(before) >= 2 and len(after) >= 3, (before, after)
    assert max(before) < 200, before  # veth without a qdisc: a few microseconds
    for p50 in after:
        assert EXPECTED_WAIT_US * 0.93 <= p50 <= EXPECTED_WAIT_US * 1.10 + 300, after
    # The newest seconds are all shaped: the qdisc takes the send path's time, by far.
    current, previous = timeline.window(3), timeline.window_before(3)
    named = overall(current, previous)
    assert (named.rule, named.path, named.stage) == ("dominant", SEND, "qdisc"), named
    assert named.command == f"tc -s qdisc show dev {DEV_PLACEHOLDER}"
    # Before the tbf, nothing on the send path stood out.
    assert verdict(unshaped.window(None), None, SEND).rule == "none"
    # The JSON document says the same.
    doc = snapshot_summary(timeline.latest, timeline=timeline)
    assert doc["verdict"]["stage"] == "qdisc" and doc["verdict"]["path"] == SEND
    shaped = [i["paths"][SEND]["qdisc"]["p50_us"] for i in doc["timeline"] if i["start_s"] >= shaped_from
              and i["paths"][SEND]["qdisc"]["count"] >= 5]
    assert shaped and all(EXPECTED_WAIT_US * 0.93 <= p <= EXPECTED_WAIT_US * 1.10 + 300 for p in shaped)


SLEEP_S = 0.03  # the reader's nap after each message


def _sleepy_server(listener: socket.socket, count: int, size: int, errors: list[BaseException]) -> None:
    try:
        conn, _ = listener.accept()
        with conn:
            for _ in range(count):
                got = b""
                while len(got) < size:
                    data = conn.recv(size - len(got))
                    if not data:
                        raise ConnectionError("client closed early")
                    got += data
                conn.sendall(b"r" * size)
                time.sleep(SLEEP_S)  # the next request arrives now and waits in the socket queue
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def test_a_reader_that_sleeps_after_each_message_is_named_not_the_qdisc() -> None:
    count, size = 90, 64
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        # lport: the server's socket only, so the receive path is the requests it reads late
        with polled(Filters.parse(lport=str(port))) as (_source, timeline, tick):
            errors: list[BaseException] = []
            server = threading.Thread(target=_sleepy_server, args=(listener, count, size, errors))
            server.start()

            def client() -> None:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    for _ in range(count):
                        sock.sendall(b"q" * size)
                        got = 0
                        while got < size:
                            got += len(sock.recv(size - got))

            talker = threading.Thread(target=client)
            talker.start()
            while talker.is_alive() and (timeline.latest is None or timeline.latest.time_s < 12):
                tick()
            talker.join(timeout=10)
            server.join(timeout=10)
            tick()
    assert not errors, errors
    queue_s = [p.p50_ns / 1e9 for p in timeline.series(RECV, "sock_queue") if p and p.count >= 5]
    assert queue_s and all(SLEEP_S * 0.8 <= q <= SLEEP_S * 1.5 for q in queue_s), queue_s
    doc = snapshot_summary(timeline.latest, timeline=timeline)
    assert (doc["verdict"]["path"], doc["verdict"]["stage"]) == (RECV, "sock_queue"), doc["verdict"]
    assert doc["verdict"]["rule"] == "dominant"
    assert "reads late" in doc["verdict"]["words"]
    assert doc["verdicts"][SEND]["stage"] != "qdisc", doc["verdicts"][SEND]
