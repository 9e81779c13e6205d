#!/usr/bin/env python3
"""Socket table read cost: the live source's poll with thousands of sockets in the kernel's table.

Opens --connections loopback TCP connections (both ends land in the socket map: 2 entries each),
one exchange on each, then measures side by side in one run (A B A B ..., --pairs pairs, medians):
- walk vs batch: BCC's key-by-key ``items()`` (two syscalls an entry) against one
  BPF_MAP_LOOKUP_BATCH (``items_lookup_batch``, what the live source uses where the kernel has it);
- poll: a whole LiveSource.poll() when no socket moved (cached rows) and the socket read after
  every socket moved (each row rebuilt).

    sudo .venv/bin/python bench/socket_table.py --connections 1500
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from benchlib import check_quiet, log, machine_info, median, write_result

from tui.model.filters import Filters
from tui.sources.live import LiveSource, table_items
from tui.workload.wire import connection_pairs


def _ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=1500)
    p.add_argument("--pairs", type=int, default=7)
    p.add_argument("--name", default="socket_table")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root")
    doc: dict = {"machine": machine_info(), "quiet_at_start": check_quiet(), "args": vars(args)}
    source = LiveSource(filters=Filters())
    source.start()
    listener, pairs = connection_pairs(args.connections)
    try:
        source.poll()
        table = source._bpf[b"sockets"]
        doc["entries"] = len(table_items(table))
        walk, batch, poll, moved = [], [], [], []
        for _ in range(args.pairs):
            walk.append(_ms(lambda: list(table.items())))
            batch.append(_ms(lambda: table_items(table)))
            poll.append(_ms(source.poll))
            for client, server in pairs:  # every socket moves: no cached row is reusable
                client.send(b"x")
                server.recv(1)
            moved.append(_ms(source.poll))
    finally:
        for client, server in pairs:
            client.close()
            server.close()
        listener.close()
        source.close()
    doc["ms"] = {"walk": walk, "batch": batch, "poll_unmoved": poll, "poll_all_moved": moved}
    ratios = [w / b for w, b in zip(walk, batch, strict=True)]
    doc["median_ms"] = {k: round(median(v), 2) for k, v in doc["ms"].items()}
    doc["walk_over_batch"] = round(median(ratios), 1)
    write_result(args.name, doc)
    log(f"{doc['entries']} entries: walk {doc['median_ms']['walk']} ms, batch {doc['median_ms']['batch']} ms "
        f"(walk/batch {doc['walk_over_batch']}x per pair); poll {doc['median_ms']['poll_unmoved']} ms "
        f"unmoved, {doc['median_ms']['poll_all_moved']} ms after every socket moved")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
