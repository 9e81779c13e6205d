#!/usr/bin/env python3
"""Overhead: request/response throughput with a tracer attached / with nothing attached.

For each topology (loopback; veth between two namespaces this script creates and deletes) and each
pair i: a baseline run, then a run with the tracer attached, back to back (A B A B ...). The ratio of
each pair is taken on its own and the median of the pairs is reported, with the ns each transaction
gained (1/tps_traced - 1/tps_base). The load (client and server) is pinned to --load-cpu, the
tracer's user space to --tool-cpu: BPF runs on the load's CPU, in the load's time.

    sudo .venv/bin/python bench/overhead.py                       # everything, 5 pairs, 3 s runs
    sudo .venv/bin/python bench/overhead.py --only netlat --topology loopback --pairs 7
"""

from __future__ import annotations

import argparse
import os

from benchlib import (
    VethPair,
    check_quiet,
    log,
    machine_info,
    median,
    pick_conditions,
    rr,
    tracers,
    wait_quiet,
    write_result,
)


def _pair(cond: str, args: argparse.Namespace, veth: VethPair | None) -> tuple[dict, dict] | None:
    """One untraced run and one traced run; a tracer that fails to start is retried once, then the
    pair is skipped (the shared tree's engine may be mid-edit) rather than losing the whole run."""
    for attempt in (1, 2):
        base = rr(args.duration, args.load_cpu, veth=veth)
        try:
            with tracers(args.tool_cpu, args.sample)[cond]:
                traced = rr(args.duration, args.load_cpu, veth=veth)
            return base, traced
        except SystemExit as exc:
            log(f"{cond}: attempt {attempt} failed: {exc}")
    return None


def measure(topology: str, conditions: list[str], args: argparse.Namespace, veth: VethPair | None) -> dict:
    runs: dict[str, list[dict]] = {c: [] for c in conditions}
    for pair in range(args.pairs):
        # rotate the order so slow drift of the machine does not favour one condition
        order = conditions[pair % len(conditions):] + conditions[: pair % len(conditions)]
        for cond in order:
            busy = wait_quiet(args.busy_limit) if args.busy_limit < 1 else None
            pair_runs = _pair(cond, args, veth)
            if pair_runs is None:
                continue
            base, traced = pair_runs
            ratio = traced["tps"] / base["tps"]
            added_ns = 1e9 / traced["tps"] - 1e9 / base["tps"]
            runs[cond].append({"base_tps": base["tps"], "tps": traced["tps"], "ratio": round(ratio, 4),
                               "added_ns_per_tx": round(added_ns), "busy_before": busy})
            log(f"{topology:8} pair {pair + 1}/{args.pairs} {cond:16} base {base['tps']:8.0f} "
                f"traced {traced['tps']:8.0f} ratio {ratio:.3f}")
    summary = {}
    for cond, rows in runs.items():
        if not rows:
            continue
        summary[cond] = {
            "ratio_median": round(median([r["ratio"] for r in rows]), 3),
            "ratio_min": min(r["ratio"] for r in rows),
            "ratio_max": max(r["ratio"] for r in rows),
            "base_tps_median": round(median([r["base_tps"] for r in rows])),
            "tps_median": round(median([r["tps"] for r in rows])),
            "added_ns_per_tx_median": round(median([r["added_ns_per_tx"] for r in rows])),
            "pairs": rows,
        }
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    p.add_argument("--load-cpu", type=int, default=1)
    p.add_argument("--tool-cpu", type=int, default=0)
    p.add_argument("--sample", type=int, default=16, help="N for the netlat --sample N condition")
    p.add_argument("--topology", default="loopback,veth")
    p.add_argument("--only", help="comma-separated conditions (default: all of them): netlat, netlat_nocost, "
                   "netlat_sampleN, seed_bpftrace (if installed), empty_hooks (the plan's hooks with empty "
                   "bodies: the floor), counters_floor (the same hooks doing only the exact counting)")
    p.add_argument("--busy-limit", type=float, default=0.12,
                   help="before each pair wait until under this share of all CPUs is busy (1: never wait)")
    p.add_argument("--name", default="overhead", help="result file bench/results/NAME.json")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (BPF and namespaces)")
    conditions = pick_conditions(args.only, args.tool_cpu, args.sample)
    quiet = check_quiet()
    doc = {"machine": machine_info(), "quiet_at_start": quiet, "args": vars(args), "results": {}}
    for topology in args.topology.split(","):
        if topology == "loopback":
            doc["results"][topology] = measure(topology, conditions, args, None)
        elif topology == "veth":
            with VethPair() as veth:
                doc["results"][topology] = measure(topology, conditions, args, veth)
        else:
            raise SystemExit(f"bench: unknown topology {topology!r}")
    doc["quiet_at_end"] = check_quiet()
    write_result(args.name, doc)
    print(f"{'topology':9} {'condition':18} {'ratio':>6} {'range':>13} {'base tx/s':>10} {'tx/s':>8} "
          f"{'+ns/tx':>7}")
    for topology, conds in doc["results"].items():
        for cond, s in conds.items():
            print(f"{topology:9} {cond:18} {s['ratio_median']:6.3f} "
                  f"{s['ratio_min']:6.3f}-{s['ratio_max']:.3f} {s['base_tps_median']:10} "
                  f"{s['tps_median']:8} {s['added_ns_per_tx_median']:7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
