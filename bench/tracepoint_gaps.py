#!/usr/bin/env python3
"""Does every send-path event reach a raw tracepoint program? The kernel's own counters say.

Not a cost benchmark: a check of what any tracer on these hooks can see. A bulk TCP transfer
(16 MiB) leaves one namespace over a veth with TSO off behind a shaping tbf (1 Gbit/s, the case
where netlat-tui's send segments once fell short of TCP's OutSegs in tests/kernel). A minimal BPF
program, independent of netlat-tui's engine, counts the veth's skbs and wire segments at
net_dev_queue, qdisc_enqueue, qdisc_dequeue and net_dev_start_xmit; beside it the kernel's own
counts of the same traffic: TCP's OutSegs + RetransSegs (the namespace's /proc/net/snmp), the tbf
qdisc's "Sent ... pkt" (tc -s) and the veth's tx packets. Each run prints one line; a run where
the program saw fewer segments at net_dev_queue than TCP sent is marked GAP, with the program's
recursion misses (runs the kernel says it skipped). ``--netlat`` also attaches netlat-tui's live
source and prints its send path's segments.

    sudo .venv/bin/python bench/tracepoint_gaps.py --runs 30 --hogs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "kernel"))  # the namespaces and bulk load of the tests

from netns import VethPair, run_bulk  # noqa: E402
from test_path_counters import snmp  # noqa: E402
from test_software_gso import QDISCS, tso_off  # noqa: E402

from tui.bpf.btf import KernelBtf, c_defines  # noqa: E402
from tui.bpf.stats import program_misses  # noqa: E402
from tui.system import import_bcc  # noqa: E402

COUNTERS = ("queue", "queue_segs", "enqueue_segs", "dequeue_segs", "start")

PROGRAM = """
#define READ(dst, base, off) bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)((u64)(base) + (off)))
struct counts { u64 queue, queue_segs, enqueue_segs, dequeue_segs, start; };
BPF_PERCPU_ARRAY(counts, struct counts, 1);

static __always_inline int on_dev(u64 skb)
{
    char want[] = WANTED_DEV, name[sizeof(want)] = {};
    u64 dev = 0;
    READ(dev, skb, OFF_SKB_DEV);
    bpf_probe_read_kernel(name, sizeof(name), (void *)(dev + OFF_DEV_NAME));
    for (int i = 0; i < sizeof(want); i++)
        if (name[i] != want[i])
            return 0;
    return 1;
}

static __always_inline u64 segs_of(u64 skb)
{
    u64 head = 0;
    u32 end = 0;
    u16 segs = 0;
    READ(head, skb, OFF_SKB_HEAD);
    READ(end, skb, OFF_SKB_END);
    bpf_probe_read_kernel(&segs, sizeof(segs), (void *)(head + end + OFF_SHINFO_GSO_SEGS));
    return segs ? segs : 1;
}

RAW_TRACEPOINT_PROBE(net_dev_queue)
{
    u64 skb = ctx->args[0];
    int zero = 0;
    struct counts *c = counts.lookup(&zero);
    if (c && on_dev(skb)) {
        c->queue += 1;
        c->queue_segs += segs_of(skb);
    }
    return 0;
}

RAW_TRACEPOINT_PROBE(qdisc_enqueue)
{
    u64 skb = ctx->args[2];
    int zero = 0;
    struct counts *c = counts.lookup(&zero);
    if (c && on_dev(skb))
        c->enqueue_segs += segs_of(skb);
    return 0;
}

RAW_TRACEPOINT_PROBE(qdisc_dequeue)
{
    u64 skb = ctx->args[3];
    int packets = (int)ctx->args[2], zero = 0;
    struct counts *c = counts.lookup(&zero);
    if (!c || !skb || !on_dev(skb))
        return 0;
    for (int i = 0; i < 32 && skb && i < packets; i++) {
        u64 next = 0;
        c->dequeue_segs += segs_of(skb);
        READ(next, skb, OFF_SKB_NEXT);
        skb = next;
    }
    return 0;
}

RAW_TRACEPOINT_PROBE(net_dev_start_xmit)
{
    int zero = 0;
    struct counts *c = counts.lookup(&zero);
    if (c && on_dev(ctx->args[0]))
        c->start += 1;
    return 0;
}
"""


def _json(cmd: list[str]) -> list | dict:
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def kernel_counts(ns: str, dev: str) -> dict[str, int]:
    link = _json(["ip", "-n", ns, "-j", "-s", "link", "show", dev])[0]
    qdisc = _json(["tc", "-n", ns, "-s", "-j", "qdisc", "show", "dev", dev])[0]
    tcp = snmp(ns)
    return {"tcp_out_segs": tcp["Tcp.OutSegs"] + tcp["Tcp.RetransSegs"], "tbf_sent_pkts": qdisc["packets"],
            "veth_tx_packets": link["stats64"]["tx"]["packets"]}


def one_run(bcc: object, dev_name_off: int, with_netlat: bool) -> dict:
    with VethPair() as pair:
        tso_off(pair)  # the veth and tbf of tests/kernel/test_software_gso.py's shaping case
        pair.tc(pair.ns_a, "qdisc", "add", "dev", pair.dev_a, "root", *QDISCS["tbf_shaping"])
        defines = c_defines() + f"#define OFF_DEV_NAME {dev_name_off}\n"
        text = defines + PROGRAM.replace("WANTED_DEV", json.dumps(pair.dev_a))
        probe = bcc.BPF(text=text)  # type: ignore[attr-defined]
        source = None
        if with_netlat:
            from tui.model.filters import Filters
            from tui.sources.live import LiveSource
            source = LiveSource(filters=Filters.parse(netns=pair.ns_a), cost=False)
            source.start()
        try:
            before = kernel_counts(pair.ns_a, pair.dev_a)
            server, client = run_bulk(pair, 4, 16 << 20)
            netlat_segs = source.poll().path("send").counters["segs"] if source else None
            after = kernel_counts(pair.ns_a, pair.dev_a)
            table = probe["counts"]
            seen = {name: sum(getattr(v, name) for v in table[table.Key(0)]) for name in COUNTERS}
            misses = sum(program_misses(probe).values())
        finally:
            if source:
                source.close()
            probe.cleanup()
    kernel = {k: after[k] - before[k] for k in after}
    return {"received_all": server["received"] == client["sent"] == 16 << 20, "kernel": kernel,
            "program": seen, "recursion_misses": misses, "netlat_send_segs": netlat_segs}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--hogs", type=int, default=2, help="busy-looping processes beside the load (0: none)")
    p.add_argument("--netlat", action="store_true", help="attach netlat-tui's live source as well")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (BPF and namespaces)")
    from tui.system import ensure_tracefs
    ensure_tracefs()
    bcc = import_bcc()
    with KernelBtf() as btf:
        dev_name_off = btf.offset("net_device.name")
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    gaps = 0
    try:
        for _ in range(args.runs):
            r = one_run(bcc, dev_name_off, args.netlat)
            # the program also sees a handful of non-TCP frames (ARP, ND) that TCP does not send
            short = r["kernel"]["tcp_out_segs"] - r["program"]["queue_segs"]
            gaps += short > 0
            print("GAP" if short > 0 else "ok ", json.dumps(r), flush=True)
    finally:
        for hog in hogs:
            hog.kill()
    print(f"{gaps} of {args.runs} runs: the program saw fewer segments at net_dev_queue than TCP sent")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
