#!/usr/bin/env python3
"""Bulk TCP over veth: throughput with and without the probes, and the skb arrays under load.

``--streams`` connections from one namespace to another each send as fast as they can for
``--duration`` seconds (the load: this file run as ``load``, one thread per connection on each side).
Side by side (A B A B ..., ``--pairs`` pairs): a run with nothing attached, then one with the live
source attached (tracepoint plan, ``--sample``); the median of the per-pair throughput ratios is
reported. With the probes attached it also reports, per path, skbs (``packets``), wire segments
(``segs``) and ``evicted``: followed packets whose skb-array entry another packet overwrote while
they were in flight. Packets in flight are sampled from ``ss`` (receive and send queues of the
load's sockets, in skbs of the mean size seen) to show what the arrays had to hold.

    sudo .venv/bin/python bench/bulk.py --streams 32 --pairs 3 --duration 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time

from benchlib import PYTHON, VethPair, check_quiet, log, machine_info, median, write_result

from tui.model.filters import Filters
from tui.sources.live import LiveSource

PORT = 25111
CHUNK = 1 << 16


def _serve(bind: str, streams: int) -> None:
    """Accept ``streams`` connections, read each to its end; print the bytes read."""
    with socket.create_server((bind, PORT), backlog=streams, reuse_port=False) as lsock:
        print(json.dumps({"ready": True}), flush=True)
        conns = [lsock.accept()[0] for _ in range(streams)]
    total = [0] * streams

    def drain(i: int, conn: socket.socket) -> None:
        buf = bytearray(CHUNK)
        with conn:
            while n := conn.recv_into(buf):
                total[i] += n

    threads = [threading.Thread(target=drain, args=(i, c)) for i, c in enumerate(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"received": sum(total)}), flush=True)


def _send(connect: str, streams: int, duration: float) -> None:
    """``streams`` connections sending for ``duration`` seconds; print bytes and seconds."""
    socks = [socket.create_connection((connect, PORT)) for _ in range(streams)]
    data = b"b" * CHUNK
    sent = [0] * streams
    t0 = time.monotonic()
    deadline = t0 + duration

    def pump(i: int, sock: socket.socket) -> None:
        with sock:
            while time.monotonic() < deadline:
                sent[i] += sock.send(data)

    threads = [threading.Thread(target=pump, args=(i, s)) for i, s in enumerate(socks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"sent": sum(sent), "seconds": time.monotonic() - t0}), flush=True)


def _in_flight(ns: str) -> int:
    """Bytes queued in the namespace's TCP sockets on PORT (receive plus send queues), now."""
    out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-tnH", f"( sport = :{PORT} or dport = :{PORT} )"],
                         capture_output=True, text=True).stdout
    total = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit():
            total += int(parts[1]) + int(parts[2])
    return total


def run_load(veth: VethPair, streams: int, duration: float, watch: bool = False) -> dict:
    here = os.path.abspath(__file__)
    server = subprocess.Popen(["ip", "netns", "exec", veth.ns_server, PYTHON, here, "load-serve",
                               "--bind", veth.server_ip, "--streams", str(streams)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        server.stdout.readline()
        client = subprocess.Popen(["ip", "netns", "exec", veth.ns_client, PYTHON, here, "load-send",
                                   "--connect", veth.server_ip, "--streams", str(streams),
                                   "--duration", str(duration)], stdout=subprocess.PIPE, text=True)
        queued = []
        while watch and client.poll() is None:
            time.sleep(0.25)
            queued.append(_in_flight(veth.ns_server) + _in_flight(veth.ns_client))
        out, _ = client.communicate(timeout=duration + 60)
        result = json.loads(out.strip().splitlines()[-1])
        served = server.communicate(timeout=60)[0]
        result["received"] = json.loads(served.strip().splitlines()[-1])["received"]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    result["gbit_s"] = result["sent"] * 8 / result["seconds"] / 1e9
    if queued:
        result["queued_bytes_median"] = median(queued)
    return result


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1].startswith("load-"):
        p = argparse.ArgumentParser()
        p.add_argument("mode")
        p.add_argument("--bind")
        p.add_argument("--connect")
        p.add_argument("--streams", type=int)
        p.add_argument("--duration", type=float)
        a = p.parse_args()
        if a.mode == "load-serve":
            _serve(a.bind, a.streams)
        else:
            _send(a.connect, a.streams, a.duration)
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=32)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--sample", type=int, default=1)
    p.add_argument("--name", default="bulk")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root")
    doc: dict = {"machine": machine_info(), "quiet_at_start": check_quiet(), "args": vars(args)}
    runs = []
    with VethPair() as veth:
        for _ in range(args.pairs):
            bare = run_load(veth, args.streams, args.duration)
            source = LiveSource(filters=Filters.parse(port=str(PORT)), sample=args.sample)
            source.start()
            try:
                source.poll()
                traced = run_load(veth, args.streams, args.duration, watch=True)
                snap = source.poll()
            finally:
                source.close()
            counters = {path: dict(snap.path(path).counters) for path in ("send", "recv")}
            mean_skb = counters["recv"]["bytes"] / max(1, counters["recv"]["packets"])
            traced["in_flight_skbs_median"] = round(traced.pop("queued_bytes_median", 0) / max(1.0, mean_skb))
            runs.append({"bare": bare, "traced": traced, "counters": counters,
                         "ratio": traced["gbit_s"] / bare["gbit_s"]})
            log(f"bare {bare['gbit_s']:.1f} Gbit/s, traced {traced['gbit_s']:.1f} Gbit/s "
                f"(ratio {runs[-1]['ratio']:.2f}); in flight ~{traced['in_flight_skbs_median']} skbs; "
                + "; ".join(f"{p}: {c['packets']} skbs {c.get('segs', '?')} segs {c['evicted']} evicted"
                            for p, c in counters.items()))
    doc["runs"] = runs
    doc["ratio_median"] = round(median([r["ratio"] for r in runs]), 3)
    doc["evicted_fraction"] = {
        path: sum(r["counters"][path]["evicted"] for r in runs) / max(1, sum(r["counters"][path]["packets"]
                                                                           for r in runs))
        for path in ("send", "recv")
    }
    write_result(args.name, doc)
    log(f"throughput traced/bare {doc['ratio_median']} (median of {len(runs)} pairs); evicted "
        + ", ".join(f"{p} {100 * f:.3f}%" for p, f in doc["evicted_fraction"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
