#!/usr/bin/env python3
"""Throughput ceiling: up to which packet rate do the histograms count every packet?

For each rate, the live source (filtered on the load's port) is started in this process, pinned to
--tool-cpu; the pinned request/response load runs at that rate on --load-cpu; the snapshot taken
after the load minus the one taken before it is compared with the load's own count of data packets
(the client socket's TCP_INFO: data segments out + in = every request and every reply, each of which
crosses the send path on one socket and the receive path on the other). Sampled events delivered
and dropped are reported per rate too. "max" runs the load unpaced (one CPU's worth).

    sudo .venv/bin/python bench/ceiling.py
    sudo .venv/bin/python bench/ceiling.py --rates 10000,40000,max --sample 1
"""

from __future__ import annotations

import argparse
import os
import time

from benchlib import check_quiet, log, machine_info, rr, wait_quiet, write_result

from tui.model.filters import Filters
from tui.sources.live import LiveSource


def _count(snap, path: str, key: str) -> int:
    stats = snap.paths[path].get(key)
    return stats.hist.total if stats else 0


def measure(rate: float | None, port: int, args: argparse.Namespace) -> dict:
    source = LiveSource(filters=Filters.parse(port=str(port)), sample=args.sample, interval_s=1.0)
    source.start()
    try:
        before = source.poll()
        load = rr(args.duration, args.load_cpu, rate=rate, port=port)
        time.sleep(0.5)  # the last reply's copy to user and the ring buffer drain
        after = source.poll()
    finally:
        source.close()
    d = after.since(before)
    expected = load["data_segs_out"] + load["data_segs_in"]
    send_total = _count(d, "send", "total")
    deferred = _count(d, "send", "deferred")
    stack = _count(d, "recv", "stack")
    e2e = _count(d, "recv", "e2e")
    return {
        "rate_target": rate or "max",
        "tps": load["tps"],
        "data_packets": expected,
        "packets_per_s": round(expected / load["duration_s"]),
        "send_total": send_total,
        "send_deferred": deferred,
        "recv_stack": stack,
        "recv_e2e": e2e,
        "send_counters": dict(d.paths["send"].counters),
        "recv_counters": dict(d.paths["recv"].counters),
        "missed_send": expected // args.sample - send_total if args.sample == 1 else None,
        "missed_recv": expected // args.sample - e2e if args.sample == 1 else None,
        "events_delivered": d.events_total,
        "events_lost": d.events_lost,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", default="5000,10000,20000,30000,max", help="transactions/s (x2 = packets/s)")
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--sample", type=int, default=1)
    p.add_argument("--load-cpu", type=int, default=1)
    p.add_argument("--tool-cpu", type=int, default=0)
    p.add_argument("--name", default="ceiling")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root")
    os.sched_setaffinity(0, {args.tool_cpu})
    doc = {"machine": machine_info(), "quiet_at_start": check_quiet(), "args": vars(args), "results": []}
    for i, text in enumerate(args.rates.split(",")):
        rate = None if text == "max" else float(text)
        wait_quiet()
        row = measure(rate, 26101 + i, args)
        doc["results"].append(row)
        log(f"rate {text}: {row}")
    doc["quiet_at_end"] = check_quiet()
    write_result(args.name, doc)
    print(f"{'target tx/s':>11} {'pkts/s':>8} {'packets':>8} {'send tot':>8} {'deferred':>8} {'recv e2e':>8} "
          f"{'ev deliv':>8} {'ev lost':>8}")
    for r in doc["results"]:
        print(f"{r['rate_target']!s:>11} {r['packets_per_s']:8} {r['data_packets']:8} {r['send_total']:8} "
              f"{r['send_deferred']:8} {r['recv_e2e']:8} {r['events_delivered']:8} {r['events_lost']:8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
