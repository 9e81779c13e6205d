#!/usr/bin/env python3
"""BPF run time per UDP datagram: an unconnected 1-byte UDP request/response on loopback.

probe_cost.py measures the TCP load; this is its UDP twin, in process: the live source is started
(with any filters given), kernel.bpf_stats_enabled is on for the run (the previous setting is put
back), and COUNT exchanges between two unconnected sockets pinned to one CPU run, as a resolver
and its client do. "ns per datagram" is the summed run time of every program over the datagrams
(two per exchange, each seen on its send and its receive path).

    sudo .venv/bin/python bench/udp_cost.py
    sudo .venv/bin/python bench/udp_cost.py --count 50000 --port 0    # --port 0: the server's port
"""

from __future__ import annotations

import argparse
import os
import socket
import time

from benchlib import bpf_stats_enabled, check_quiet, log, machine_info, wait_quiet, write_result

from tui.model.filters import Filters
from tui.sources.live import LiveSource


def measure(count: int, cpu: int, port: int | None) -> dict:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client.bind(("127.0.0.1", 0))
    target = server.getsockname()
    filters = Filters.parse(port=str(target[1] if port == 0 else port) if port is not None else None)
    os.sched_setaffinity(0, {cpu})
    source = LiveSource(filters=filters)
    source.start()
    try:
        before = source.prog_stats()
        start = time.monotonic()
        for _ in range(count):
            client.sendto(b"x", target)
            data, peer = server.recvfrom(64)
            server.sendto(data, peer)
            client.recvfrom(64)
        elapsed = time.monotonic() - start
        after = source.prog_stats()
        snap = source.poll()
    finally:
        source.close()
        server.close()
        client.close()
    datagrams = 2 * count
    progs = {name: (runs - before.get(name, (0, 0))[0], ns - before.get(name, (0, 0))[1])
             for name, (runs, ns) in after.items()}
    return {
        "filters": filters.describe(),
        "datagrams": datagrams,
        "tps": round(count / elapsed),
        "bpf_ns_per_datagram": round(sum(ns for _, ns in progs.values()) / datagrams),
        "bpf_runs_per_datagram": round(sum(runs for runs, _ in progs.values()) / datagrams, 2),
        "timed": {"udp_l2": snap.path("send").get("udp_l2").hist.total,
                  "udp_e2e": snap.path("recv").get("udp_e2e").hist.total},
        "programs": {name: {"runs_per_datagram": round(runs / datagrams, 3), "ns_per_run": round(ns / runs)}
                     for name, (runs, ns) in sorted(progs.items(), key=lambda p: -p[1][1]) if runs},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=20000, help="exchanges (two datagrams each)")
    p.add_argument("--cpu", type=int, default=1)
    p.add_argument("--port", type=int, help="--port filter (0: the server's port); default none")
    p.add_argument("--name", default="udp_cost")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root")
    doc = {"machine": machine_info(), "quiet_at_start": check_quiet(), "args": vars(args)}
    with bpf_stats_enabled():
        log(f"measuring (machine busy {wait_quiet():.0%})")
        doc["result"] = r = measure(args.count, args.cpu, args.port)
    write_result(args.name, doc)
    print(f"\n{r['bpf_ns_per_datagram']} ns of BPF per UDP datagram ({r['bpf_runs_per_datagram']} "
          f"program runs per datagram, {r['tps']} exchanges/s, timed {r['timed']})")
    for name, prog in r["programs"].items():
        print(f"  {name:26} {prog['runs_per_datagram']:8} {prog['ns_per_run']:7} ns/run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
