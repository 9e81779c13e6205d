#!/usr/bin/env python3
"""A second floor: the tracepoint plan's hooks doing only the exact counting DESIGN asks for.

Run by bench/overhead.py and bench/probe_cost.py as the "counters_floor" condition. DESIGN.md
promises exact path and socket counters whatever --sample says; this is the least any engine can
do for them on these hooks, written to be cheaper than a real one (no filters, no sampling
decision, no timing, no slot hand-over): the send path counts at net_dev_queue (the skb's socket,
size and segments), the receive path at tcp_probe (a segment with data, its size), and each send or
read call adds its bytes to its socket's row (a hash lookup, an add, TCP's own segment count).
Every other hook keeps an empty body. So "--sample N minus this" is what the latency sampling
costs, and "this minus empty_hooks" is the price of the counters alone. Attaches, then waits for
SIGINT.
"""

from __future__ import annotations

from empty_hooks import hold_plan_hooks  # bench/ is on sys.path: this script's directory

from tui.bpf.btf import c_defines

COUNTING = """
#define READ(dst, base, off) bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)((u64)(base) + (off)))
struct path_count { u64 packets, bytes, segs; };
BPF_PERCPU_ARRAY(paths, struct path_count, 2);
struct row { u64 bytes; u64 packets; };
BPF_HASH(rows, u64, struct row, 65536);

static __always_inline void count_skb(u32 path, u64 skb)
{
    u32 len = 0, end = 0;
    u64 head = 0;
    u16 segs = 0;
    READ(len, skb, OFF_SKB_LEN);
    READ(head, skb, OFF_SKB_HEAD);
    READ(end, skb, OFF_SKB_END);
    bpf_probe_read_kernel(&segs, sizeof(segs), (void *)(head + end + OFF_SHINFO_GSO_SEGS));
    struct path_count *c = paths.lookup(&path);
    if (!c)
        return;
    c->packets += 1;
    c->bytes += len;
    c->segs += segs ? segs : 1;
}

static __always_inline void count_call(u64 sk, int ret, u32 off)
{
    struct row *r = rows.lookup(&sk);
    if (!r) {
        struct row fresh = {};
        rows.update(&sk, &fresh);
        return;
    }
    if (ret > 0)
        __sync_fetch_and_add(&r->bytes, ret);
    u32 segs = 0;
    READ(segs, sk, off);
    r->packets = segs;
}
"""

#: The hooks that count, and their bodies (u64 ctx->args[] as in netlat_tp.bpf.c); the rest stay empty.
BODIES = {
    "net_dev_queue": """
    u64 skb = ctx->args[0], sk = 0;
    READ(sk, skb, OFF_SKB_SK);
    if (sk)
        count_skb(0, skb);""",
    "tcp_probe": """
    u64 skb = ctx->args[1];
    u32 seq[2] = {};
    bpf_probe_read_kernel(seq, sizeof(seq), (void *)(skb + OFF_SKB_CB + OFF_TCB_SEQ));
    if (seq[1] - seq[0] > 1)
        count_skb(1, skb);""",
    "sock_send_length": "    count_call(ctx->args[0], (int)ctx->args[1], OFF_TCP_DATA_SEGS_OUT);",
    "sock_recv_length": "    count_call(ctx->args[0], (int)ctx->args[1], OFF_TCP_DATA_SEGS_IN);",
}

hold_plan_hooks(BODIES, prelude=c_defines() + COUNTING)
