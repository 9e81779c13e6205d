/* SPDX-License-Identifier: GPL-2.0 */
/*
 * netlat.h: what the BPF programs and Python share. Structs reach Python through BCC's generated
 * ctypes types. The numbers (paths, stage slots SLOT_SEND_* / SLOT_RECV_*, counters CTR_*, array
 * and histogram sizes) are not written here: tui.bpf.program.table_defines() generates them from
 * the Python tables (tui/bpf/plans.py, tui/model/histogram.py) in front of this file.
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

#ifndef NETLAT_TABLES
#error "netlat.h needs the generated tables first (tui.bpf.program.table_defines)"
#endif

/* Histogram storage (NETLAT_*_STORE) is the bucket count (NETLAT_*_BUCKETS) rounded up to a power
 * of two, so an index is bounded by a mask, which every verifier tracks; an "if (b >= N)" bound is
 * lost by older verifiers (Linux 6.1) when clang checks one register copy and indexes with another.
 * Only the first *_BUCKETS are ever used. The stage histogram array's key is
 * path * SLOTS_PER_PATH + slot. */

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
	u32 closed; /* TCP_CLOSE seen: user space deletes the row after reading it */
	u8 laddr[16];
	u8 raddr[16];
	char comm[16];
	u64 cgroup_id; /* the socket's own cgroup v2: its id, the inode of its directory; 0 = unknown */
	u32 netns;     /* inode of the socket's network namespace; 0 = unknown */
	u32 pad3;
	u32 send_hist[NETLAT_SOCK_STORE];
	u32 recv_hist[NETLAT_SOCK_STORE];
};

struct event {
	u64 time_ns;
	u64 stages_ns[EV_STAGES]; /* indexed by stage slot (plans.EVENT_STAGES); 0 = not seen */
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
	u64 cgroup_id; /* the socket's own cgroup v2 (see struct sock_stats); 0 = unknown */
	u32 netns;
	u32 pad;
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
