#!/usr/bin/env python3
"""Per-probe cost: each BPF program's run time per run, and what a packet pays in total.

Turns on kernel.bpf_stats_enabled for the run (BPF_ENABLE_STATS: the kernel times every program
run; the previous setting is put back), attaches each tracer, drives the pinned 1-byte TCP
request/response load, and reads run_time_ns/run_cnt of every program the tracer holds from
/proc/PID/fdinfo. "ns per packet" is the summed run time over the data packets of the load (two per
transaction: request and reply, each seen on its send and its receive path). Hook dispatch is not
in run_time_ns; bench/overhead.py's "+ns/tx" includes it.

    sudo .venv/bin/python bench/probe_cost.py
    sudo .venv/bin/python bench/probe_cost.py --only netlat --duration 5
"""

from __future__ import annotations

import argparse
import os

from benchlib import (
    bpf_stats_enabled,
    check_quiet,
    log,
    machine_info,
    pick_conditions,
    prog_stats,
    rr,
    tracers,
    wait_quiet,
    write_result,
)


def measure(name: str, args: argparse.Namespace) -> dict:
    tracer = tracers(args.tool_cpu, args.sample)[name]
    with tracer:
        before = {p.pid: prog_stats(p.pid) for p in tracer.procs}
        load = rr(args.duration, args.load_cpu)
        after = {p.pid: prog_stats(p.pid) for p in tracer.procs}
    packets = load["data_segs_out"] + load["data_segs_in"]
    progs = []
    for pid, stats in after.items():
        for prog_id, s in stats.items():
            b = before[pid].get(prog_id, {"run_time_ns": 0, "run_cnt": 0})
            runs = s["run_cnt"] - b["run_cnt"]
            ns = s["run_time_ns"] - b["run_time_ns"]
            progs.append({"name": s["name"] or f"prog{prog_id}", "runs": runs, "ns_total": ns,
                          "ns_per_run": round(ns / runs) if runs else None,
                          "runs_per_packet": round(runs / packets, 3)})
    progs.sort(key=lambda p: -p["ns_total"])
    total_ns = sum(p["ns_total"] for p in progs)
    return {
        "transactions": load["transactions"],
        "tps": load["tps"],
        "data_packets": packets,
        "bpf_ns_per_packet": round(total_ns / packets) if packets else None,
        "bpf_runs_per_packet": round(sum(p["runs"] for p in progs) / packets, 2) if packets else None,
        "programs": progs,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--load-cpu", type=int, default=1)
    p.add_argument("--tool-cpu", type=int, default=0)
    p.add_argument("--sample", type=int, default=16)
    p.add_argument("--only", help="comma-separated conditions, as bench/overhead.py's (default: all of them)")
    p.add_argument("--name", default="probe_cost")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root")
    names = pick_conditions(args.only, args.tool_cpu, args.sample)
    doc = {"machine": machine_info(), "quiet_at_start": check_quiet(), "args": vars(args), "results": {}}
    with bpf_stats_enabled():
        for name in names:
            log(f"measuring {name} (machine busy {wait_quiet():.0%})")
            doc["results"][name] = measure(name, args)
    write_result(args.name, doc)
    for name, r in doc["results"].items():
        print(f"\n{name}: {r['bpf_ns_per_packet']} ns of BPF per data packet "
              f"({r['bpf_runs_per_packet']} program runs per packet, {r['tps']:.0f} tx/s)")
        print(f"  {'program':18} {'runs/pkt':>8} {'ns/run':>7} {'ns/pkt':>7}")
        for prog in r["programs"]:
            per_pkt = prog["ns_total"] / r["data_packets"] if r["data_packets"] else 0
            print(f"  {prog['name']:18} {prog['runs_per_packet']:8} {prog['ns_per_run'] or 0:7} "
                  f"{per_pkt:7.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
