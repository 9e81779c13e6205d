#!/usr/bin/env python3
"""What one BPF helper call or read costs on this machine: the floor under any probe body.

One raw tracepoint program per operation, attached to net_dev_start_xmit (every data packet of the
pinned 1-byte TCP request/response load passes it once), each doing the operation 4 times; ns per
operation = (ns per run - the empty program's) / 4, from BPF_ENABLE_STATS. The operations are the
ones the probes are made of: the clock, the thread id, a random number, task storage, map lookups
(per-CPU array, hash, LRU hash) and probe reads of 8, 96 and 184 bytes.

    sudo .venv/bin/python bench/helper_cost.py
    sudo .venv/bin/python bench/helper_cost.py ktime read96 --duration 3
"""

from __future__ import annotations

import argparse
import ctypes
import os

from benchlib import bpf_stats_enabled, log, machine_info, rr, wait_quiet, write_result

from tui.system import import_bcc

OPS = {
    "empty": "",
    "ktime": "x += bpf_ktime_get_ns();",
    "pid_tgid": "x += bpf_get_current_pid_tgid();",
    "prandom": "x += bpf_get_prandom_u32();",
    "task_storage": "struct cur *c = ts.task_storage_get(bpf_get_current_task_btf(), 0, "
                    "BPF_LOCAL_STORAGE_GET_F_CREATE); if (c) x += c->a;",
    "percpu_array": "u32 k = 0; u64 *v = pc.lookup(&k); if (v) x += *v;",
    "hash": "u64 k = 1; u64 *v = hs.lookup(&k); if (v) x += *v;",
    "lru_hash": "u64 k = 1; u64 *v = lru.lookup(&k); if (v) x += *v;",
    "read8": "u64 v = 0; bpf_probe_read_kernel(&v, 8, (void *)ctx->args[0]); x += v;",
    "read96": "u8 b[96]; bpf_probe_read_kernel(b, 96, (void *)(ctx->args[0] + 8)); x += b[3];",
    "read184": "u8 b[184]; bpf_probe_read_kernel(b, 184, (void *)(ctx->args[0] + 8)); x += b[3];",
}
MAPS = """
struct cur { u64 a; u64 b; };
BPF_TASK_STORAGE(ts, struct cur);
BPF_PERCPU_ARRAY(pc, u64, 1);
BPF_HASH(hs, u64, u64, 1024);
BPF_TABLE("lru_hash", u64, u64, lru, 1024);
BPF_ARRAY(sink, u64, 1);
"""


def program(name: str) -> str:
    body = OPS[name]
    # a block each: the operations may declare variables; the sink keeps clang from dropping them
    return MAPS + f"""
int op_{name}(struct bpf_raw_tracepoint_args *ctx) {{
    u64 x = 0;
    {{ {body} }} {{ {body} }} {{ {body} }} {{ {body} }}
    u32 z = 0;
    u64 *s = sink.lookup(&z);
    if (s)
        *s += x;
    return 0;
}}"""


def run_stats(fd: int) -> tuple[int, int]:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        info = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    return int(info["run_time_ns"]), int(info["run_cnt"])


def measure(bcc: object, name: str, args: argparse.Namespace) -> float:
    bpf = bcc.BPF(text=program(name))
    try:
        for table in ("hs", "lru"):
            bpf[table][ctypes.c_ulonglong(1)] = ctypes.c_ulonglong(5)
        fn = bpf.load_func(f"op_{name}", bcc.BPF.RAW_TRACEPOINT)
        bpf.attach_raw_tracepoint(tp="net_dev_start_xmit", fn_name=f"op_{name}")
        t0, n0 = run_stats(fn.fd)
        rr(args.duration, args.load_cpu)
        t1, n1 = run_stats(fn.fd)
        return (t1 - t0) / max(1, n1 - n0)
    finally:
        bpf.cleanup()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ops", nargs="*", help=f"some of: {', '.join(OPS)} (default: all)")
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--load-cpu", type=int, default=1)
    p.add_argument("--name", default="helper_cost")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root")
    names = ["empty", *[n for n in (args.ops or OPS) if n != "empty"]]
    bcc = import_bcc()
    per_run = {}
    with bpf_stats_enabled():
        for name in names:
            log(f"measuring {name} (machine busy {wait_quiet():.0%})")
            per_run[name] = measure(bcc, name, args)
    per_op = {n: round((per_run[n] - per_run["empty"]) / 4, 1) for n in names if n != "empty"}
    write_result(args.name, {"machine": machine_info(), "args": vars(args),
                             "ns_per_run": {n: round(v, 1) for n, v in per_run.items()}, "ns_per_op": per_op})
    print(f"empty program: {per_run['empty']:.1f} ns per run")
    for name, ns in per_op.items():
        print(f"  {name:14} {ns:6.1f} ns per call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
