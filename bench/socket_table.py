#!/usr/bin/env python3
"""Socket table read cost: the live source's poll with thousands of sockets in the kernel's table.

Opens --connections loopback TCP connections (both ends land in the socket map: 2 entries each),
one exchange on each, then measures side by side in one run (A B A B ..., --pairs pairs, medians):
- walk vs batch: BCC's key-by-key ``items()`` (two syscalls an entry) against one
  BPF_MAP_LOOKUP_BATCH (``items_lookup_batch``, what the live source uses where the kernel has it);
- poll: a whole LiveSource.poll() when no socket moved (cached rows) and the socket read after
  every socket moved (each row rebuilt);
- the dashboard's path with every socket moving each tick: the runner's ``Timeline.add`` and
  ``window(10)`` (worker thread; ``worker`` is the runner's whole tick: poll, add, window and the
  timeline's copy), then the socket table's rows (``socket_rows``, event loop).

Every figure is wall time (ms) and this thread's CPU time (``cpu_ms``: less moved by other jobs on
a shared machine). The garbage collector runs as netlat-tui sets it (``tune_gc``), unless
``--default-gc``.

    sudo .venv/bin/python bench/socket_table.py --connections 10000
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

from benchlib import check_quiet, log, machine_info, median, write_result

from tui.model.filters import Filters
from tui.model.timeline import Timeline
from tui.sources.live import LiveSource, table_items
from tui.sources.runner import tune_gc
from tui.widgets.sockets import socket_rows
from tui.workload.wire import connection_pairs


class Clock:
    """Wall and CPU milliseconds of each timed piece, by name."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    def time(self, name: str, fn: Callable[[], object]) -> object:
        t0, c0 = time.perf_counter(), time.thread_time()
        out = fn()
        self.wall.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
        self.cpu.setdefault(name, []).append((time.thread_time() - c0) * 1000)
        return out


def _holder(n: int, port: int, conn: Connection) -> None:
    """A process holding ``n`` loopback connections (both ends; a process may not open enough
    descriptors for 10,000): on each message it exchanges one byte on every connection."""
    listener, pairs = connection_pairs(n, port=port)
    conn.send("ready")
    while conn.recv() == "move":
        for client, server in pairs:
            client.send(b"x")
            server.recv(1)
        conn.send("moved")
    for client, server in pairs:
        client.close()
        server.close()
    listener.close()


class Holders:
    """``connections`` loopback connections spread over processes of at most 5,000 each."""

    def __init__(self, connections: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self.pipes, self.procs = [], []
        for i in range(0, connections, 5000):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_holder, args=(min(5000, connections - i), 0, theirs))
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)
        for pipe in self.pipes:
            assert pipe.recv() == "ready"

    def move(self) -> None:
        for pipe in self.pipes:
            pipe.send("move")
        for pipe in self.pipes:
            assert pipe.recv() == "moved"

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send("stop")
        for proc in self.procs:
            proc.join(timeout=60)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=10000)
    p.add_argument("--pairs", type=int, default=7)
    p.add_argument("--name", default="socket_table")
    p.add_argument("--default-gc", action="store_true", help="leave Python's collector thresholds alone")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root")
    doc: dict = {"machine": machine_info(), "quiet_at_start": check_quiet(), "args": vars(args)}
    if not args.default_gc:
        tune_gc()
    doc["gc_threshold"] = gc.get_threshold()
    source = LiveSource(filters=Filters())
    source.start()
    holders = Holders(args.connections)
    try:
        source.poll()
        table = source._bpf[b"sockets"]
        doc["entries"] = len(table_items(table))
        clock = Clock()
        timeline, previous = Timeline(1.0), None
        for _ in range(args.pairs):
            clock.time("walk", lambda: list(table.items()))
            clock.time("batch", lambda: table_items(table))
            clock.time("poll_unmoved", source.poll)
            holders.move()  # every socket moves: no cached row is reusable
            t0, c0 = time.perf_counter(), time.thread_time()
            snap = clock.time("poll_all_moved", source.poll)
            clock.time("timeline_add", lambda: timeline.add(snap))  # noqa: B023
            shown = clock.time("window_10s", lambda: timeline.window(10.0))
            timeline.copy()  # what the runner hands the app with each tick
            clock.wall.setdefault("worker", []).append((time.perf_counter() - t0) * 1000)
            clock.cpu.setdefault("worker", []).append((time.thread_time() - c0) * 1000)
            clock.time("socket_rows", lambda: socket_rows(shown, snap, previous, "send"))  # noqa: B023
            previous = snap
    finally:
        holders.close()
        source.close()
    doc["ms"], doc["cpu_ms"] = clock.wall, clock.cpu
    ratios = [w / b for w, b in zip(clock.wall["walk"], clock.wall["batch"], strict=True)]
    doc["median_ms"] = {k: round(median(v), 2) for k, v in clock.wall.items()}
    doc["median_cpu_ms"] = {k: round(median(v), 2) for k, v in clock.cpu.items()}
    doc["walk_over_batch"] = round(median(ratios), 1)
    write_result(args.name, doc)
    m, c = doc["median_ms"], doc["median_cpu_ms"]

    def fig(name: str) -> str:
        return f"{m[name]} ms ({c[name]} cpu)"

    log(f"{doc['entries']} entries: walk {fig('walk')}, batch {fig('batch')} (walk/batch "
        f"{doc['walk_over_batch']}x per pair); poll {fig('poll_unmoved')} unmoved, {fig('poll_all_moved')} "
        f"after every socket moved; worker tick {fig('worker')}: timeline add {fig('timeline_add')}, "
        f"10 s window {fig('window_10s')}; event loop: socket rows {fig('socket_rows')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
