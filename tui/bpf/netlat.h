/* SPDX-License-Identifier: GPL-2.0 */
/*
 * netlat.h: what the BPF programs and Python share. Structs reach Python through BCC's generated
 * ctypes types; stage slots and counters are mirrored by hand in tui/bpf/plans.py (SLOTS, COUNTERS);
 * tests/unit/test_histogram.py compiles netlat_bucket() with cc and checks it against
 * tui.model.histogram.bucket_index().
 *
 * No kernel struct layout is used here: fields are read at OFF_* offsets that Python takes from the
 * running kernel's BTF and passes in as #defines.
 */
#ifndef NETLAT_H
#define NETLAT_H

#ifndef __BPF_TRACING__
/* Plain C build (unit test): the kernel's fixed-width names. */
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;
#endif

#define NETLAT_MAX_LOG2 39
#define NETLAT_STAGE_SUB_BITS 3
#define NETLAT_SOCK_SUB_BITS 2
/* bucket_count(sub_bits) = (MAX_LOG2 - sub_bits + 2) << sub_bits */
#define NETLAT_STAGE_BUCKETS ((NETLAT_MAX_LOG2 - NETLAT_STAGE_SUB_BITS + 2) << NETLAT_STAGE_SUB_BITS)
#define NETLAT_SOCK_BUCKETS ((NETLAT_MAX_LOG2 - NETLAT_SOCK_SUB_BITS + 2) << NETLAT_SOCK_SUB_BITS)
/* Storage is rounded up to a power of two so an index is bounded by a mask, which every
 * verifier tracks; an "if (b >= N)" bound is lost by older verifiers (Linux 6.1) when clang
 * checks one register copy and indexes with another. Only the first *_BUCKETS are ever used. */
#define NETLAT_STAGE_STORE 512
#define NETLAT_SOCK_STORE 256

/* Paths and stage slots: key of the stage histogram array is path * SLOTS_PER_PATH + slot. */
#define PATH_SEND 0
#define PATH_RECV 1
#define SLOTS_PER_PATH 9

#define S_TCP_IP 0   /* send: tcp_sendmsg_locked -> net_dev_queue (in syscall) */
#define S_QDISC 1    /* send: net_dev_queue -> net_dev_start_xmit */
#define S_DEVICE 2   /* send: net_dev_start_xmit -> net_dev_xmit */
#define S_TOTAL 3    /* send total, in-syscall packets */
#define S_DEFERRED 4 /* send: net_dev_queue -> net_dev_xmit, packets sent outside the send syscall */
#define S_UDP_L2 5   /* send: net_dev_queue -> net_dev_xmit, UDP (no earlier boundary) */
#define S_TCP 6      /* kprobe plan: tcp_sendmsg -> ip_queue_xmit */
#define S_IP 7       /* kprobe plan: ip_queue_xmit -> dev_queue_xmit */

#define R_BACKLOG 0    /* recv: netif_rx -> netif_receive_skb */
#define R_IP_TCP 1     /* recv: netif_receive_skb -> sk_data_ready */
#define R_SOCK_QUEUE 2 /* recv: sk_data_ready -> skb_copy_datagram_iovec */
#define R_COPY 3       /* recv: skb_copy_datagram_iovec -> sock_recv_length */
#define R_STACK 4      /* recv total: first sight -> sk_data_ready */
#define R_E2E 5        /* recv total: first sight -> sock_recv_length */
#define R_IP 6         /* kprobe plan: __netif_receive_skb -> tcp_v4_rcv */
#define R_TCP 7        /* kprobe plan: tcp_v4_rcv -> sk_data_ready */
#define R_UDP_E2E 8    /* tracepoint plan: UDP, first sight -> sock_recv_length of the read that took it */

/* Per-path counters (index into struct counters.c), names in tui/bpf/plans.py COUNTERS. */
#define C_PACKETS 0
#define C_BYTES 1
#define C_DEFERRED 2  /* send */
#define C_UDP 3       /* send */
#define C_STALE 4     /* entries older than the age limit, ignored */
#define C_EVENTS_LOST 5
#define C_EVENTS_SENT 6
#define C_EVENTS_LIMITED 7
#define C_EVICTED 8   /* a packet in flight overwritten by another in the same slot */
#define C_MISSED 9    /* a hook could not keep its state (task storage busy); the reader adds
                       * the runs the kernel skipped (program recursion misses) */
#define NR_COUNTERS 10

struct stage_hist {
	u64 buckets[NETLAT_STAGE_STORE];
	u64 max;
};

struct counters {
	u64 c[NR_COUNTERS];
};

struct sock_stats {
	u64 tx_packets;
	u64 tx_bytes;
	u64 rx_packets;
	u64 rx_bytes;
	u64 max;
	u32 pid;
	u8 protocol; /* IPPROTO_TCP / IPPROTO_UDP */
	u8 family;   /* 4 or 6 */
	u16 lport;
	u16 rport;
	u16 pad;
	u32 pad2;
	u8 laddr[16];
	u8 raddr[16];
	char comm[16];
	u32 send_hist[NETLAT_SOCK_STORE];
	u32 recv_hist[NETLAT_SOCK_STORE];
};

#define EV_STAGES 4
struct event {
	u64 time_ns;
	u64 stages_ns[EV_STAGES]; /* in the order of the path's stage slots 0..3; 0 = not seen */
	u64 l3_ns;                /* kprobe plan: the L3 part of the merged L4/L3 slot, 0 = unknown */
	u64 total_ns;
	u32 pid;
	u32 len;
	u8 path;
	u8 protocol;
	u8 family;
	u8 deferred;
	u16 lport;
	u16 rport;
	u8 laddr[16];
	u8 raddr[16];
	char comm[16];
};

/* Bucket of a latency in ns: the C twin of tui.model.histogram.bucket_index(). */
static inline u32 netlat_msb(u64 v)
{
	u32 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

static inline u32 netlat_bucket(u64 v, u32 sub_bits)
{
	u32 msb;
	if (v < (1ULL << sub_bits))
		return (u32)v;
	msb = netlat_msb(v);
	if (msb > NETLAT_MAX_LOG2)
		return ((NETLAT_MAX_LOG2 - sub_bits + 2) << sub_bits) - 1;
	return ((msb - sub_bits + 1) << sub_bits) + (u32)((v >> (msb - sub_bits)) & ((1U << sub_bits) - 1));
}

#endif /* NETLAT_H */
