#!/usr/bin/env python3
"""Socket table read cost: the live source's poll with thousands of sockets in the kernel's table.

Opens --connections loopback TCP connections (both ends land in the socket map: 2 entries each),
one exchange on each, then measures side by side in one run (A B A B ..., --pairs pairs, medians):
- walk vs batch: BCC's key-by-key ``items()`` (two syscalls an entry) against one
  BPF_MAP_LOOKUP_BATCH (``items_lookup_batch``, what the live source uses where the kernel has it);
- poll: a whole LiveSource.poll() when no socket moved (cached rows) and the socket read after
  every socket moved (each row rebuilt);
- the dashboard's path with every socket moving each tick: the runner's ``Timeline.add`` and
  ``window(10)`` (worker thread), then the socket table's rows (``socket_rows``, event loop).

    sudo .venv/bin/python bench/socket_table.py --connections 10000
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

from benchlib import check_quiet, log, machine_info, median, write_result

from tui.model.filters import Filters
from tui.model.timeline import Timeline
from tui.sources.live import LiveSource, table_items
from tui.widgets.sockets import socket_rows
from tui.workload.wire import connection_pairs


def _ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


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
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root")
    doc: dict = {"machine": machine_info(), "quiet_at_start": check_quiet(), "args": vars(args)}
    source = LiveSource(filters=Filters())
    source.start()
    holders = Holders(args.connections)
    try:
        source.poll()
        table = source._bpf[b"sockets"]
        doc["entries"] = len(table_items(table))
        walk, batch, poll, moved = [], [], [], []
        timeline, previous = Timeline(1.0), None
        add, window, rows = [], [], []
        for _ in range(args.pairs):
            walk.append(_ms(lambda: list(table.items())))
            batch.append(_ms(lambda: table_items(table)))
            poll.append(_ms(source.poll))
            holders.move()  # every socket moves: no cached row is reusable
            t0 = time.perf_counter()
            snap = source.poll()
            moved.append((time.perf_counter() - t0) * 1000)
            add.append(_ms(lambda: timeline.add(snap)))  # noqa: B023
            window.append(_ms(lambda: timeline.window(10.0)))
            shown = timeline.window(10.0)
            rows.append(_ms(lambda: socket_rows(shown, snap, previous, "send")))  # noqa: B023
            previous = snap
    finally:
        holders.close()
        source.close()
    doc["ms"] = {"walk": walk, "batch": batch, "poll_unmoved": poll, "poll_all_moved": moved,
                 "timeline_add": add, "window_10s": window, "socket_rows": rows}
    ratios = [w / b for w, b in zip(walk, batch, strict=True)]
    doc["median_ms"] = {k: round(median(v), 2) for k, v in doc["ms"].items()}
    doc["walk_over_batch"] = round(median(ratios), 1)
    write_result(args.name, doc)
    log(f"{doc['entries']} entries: walk {doc['median_ms']['walk']} ms, batch {doc['median_ms']['batch']} ms "
        f"(walk/batch {doc['walk_over_batch']}x per pair); poll {doc['median_ms']['poll_unmoved']} ms "
        f"unmoved, {doc['median_ms']['poll_all_moved']} ms after every socket moved; dashboard: "
        f"timeline add {doc['median_ms']['timeline_add']} ms, "
        f"10 s window {doc['median_ms']['window_10s']} ms, "
        f"socket rows {doc['median_ms']['socket_rows']} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
