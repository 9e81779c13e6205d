// SPDX-License-Identifier: GPL-2.0
/*
 * netlat_common.bpf.c: maps and helpers every plan shares (prepended to the plan's own C).
 *
 * Python prepends: the OFF_* field offsets (from the running kernel's BTF), SAMPLE_EVERY,
 * AGE_LIMIT_NS, EVENTS_PER_SEC, USE_RINGBUF, the FILTER_* constants (validated by
 * tui.model.filters), the tables (PATH_*, SLOT_*, CTR_*, sizes: tui.bpf.program.table_defines),
 * then netlat.h. Nothing here depends on kernel header struct layouts.
 */

#define AF_INET_ 2
#define AF_INET6_ 10
#define PROTO_TCP 6
#define PROTO_UDP 17
#define MSG_PEEK_ 2
#define TCP_CLOSE_ 7
#define TCP_LISTEN_ 10
#define TCP_TIME_WAIT_ 6
#define TCP_NEW_SYN_RECV_ 12

/* Aggregates: per-CPU, so no atomics on the hot path; Python sums the CPUs. */
BPF_PERCPU_ARRAY(stage_hists, struct stage_hist, NR_PATHS * SLOTS_PER_PATH);
BPF_PERCPU_ARRAY(path_counters, struct counters, NR_PATHS);
/* Per-socket stats: one row per socket from its first send or read until it closes, at most
 * MAX_SOCKETS (--max-sockets). A plain hash, not an LRU: a busy server's rows must not vanish
 * silently; when the table is full a new socket gets no row and is counted as dropped. Not
 * preallocated: memory follows the sockets seen, not the limit (a row is about 2 KiB). A row is
 * marked closed at TCP_CLOSE (sock_closed) and user space deletes it once it has read it. */
BPF_F_TABLE("hash", u64, struct sock_stats, sockets, MAX_SOCKETS, BPF_F_NO_PREALLOC);
/* Never written, so all zeros: the initial value of a new socket entry (too big for the stack). */
BPF_PERCPU_ARRAY(sock_zero, struct sock_stats, 1);
/* The socket table's own counts, indexed by SOCKTAB_*: rows created, sockets refused a row. */
#define SOCKTAB_SEEN 0
#define SOCKTAB_DROPPED 1
BPF_PERCPU_ARRAY(socktab, u64, 2);
/* Sockets refused a row while the table was full, so each is counted once (bounded, LRU). */
BPF_TABLE("lru_hash", u64, u8, sock_refused, 4096);

/* Sampled per-packet events. */
#ifdef USE_RINGBUF
BPF_RINGBUF_OUTPUT(events, 128); /* 512 KiB: ~2 s of events at the rate limit */
#else
BPF_PERF_OUTPUT(events);
#endif
struct rate_window {
	u64 start;
	u64 sent;
};
BPF_PERCPU_ARRAY(rate, struct rate_window, 1);

static __always_inline void count(u32 path, u32 idx, u64 n)
{
	struct counters *c = path_counters.lookup(&path);
	if (c && idx < NR_COUNTERS)
		c->c[idx] += n;
}

static __always_inline void record(u32 path, u32 slot, u64 ns)
{
	u32 key = path * SLOTS_PER_PATH + slot;
	struct stage_hist *h = stage_hists.lookup(&key);
	u32 b;

	if (!h)
		return;
	b = netlat_bucket(ns, NETLAT_STAGE_SUB_BITS); /* < NETLAT_STAGE_BUCKETS by construction */
	h->buckets[b & (NETLAT_STAGE_STORE - 1)] += 1;
	if (ns > h->max)
		h->max = ns;
}

/* --sample N: follow 1 packet in N, decided once per packet at its first sight. Random, not a
 * counter: a counter shared by several hooks aliases with periodic traffic (on loopback each
 * packet passes the send and the receive first sight in turn, so "every 4th" never hit a send). */
static __always_inline int sampled(void)
{
#if SAMPLE_EVERY > 1
	return bpf_get_prandom_u32() % SAMPLE_EVERY == 0;
#else
	return 1;
#endif
}

/* ---- skb-keyed state (send and receive) ---- */

/* skb-keyed state lives in direct-mapped arrays (slot = hash of the skb address, the address
 * stored in the slot to confirm): an array lookup is inlined by the verifier, where a hash map
 * costs a helper call, hashing and locking. A collision overwrites the older packet (counted as
 * "evicted"); a done packet is marked by a zero start time. */
#define SKB_SLOT_BITS 14
static __always_inline u32 slot_of(u64 addr)
{
	return (u32)(((addr >> 6) * 0x9E3779B97F4A7C15ULL) >> (64 - SKB_SLOT_BITS));
}

/* ---- reading kernel objects at BTF offsets ---- */

#define READ(dst, base, off) bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)((u64)(base) + (off)))

struct skinfo {
	u16 family;   /* AF_INET_/AF_INET6_ */
	u8 protocol;  /* PROTO_TCP/PROTO_UDP, 0 = other */
	u8 state;
	u16 lport;    /* host order */
	u16 rport;    /* host order */
};

/* The head of struct sock_common holds addresses, ports, family and state within 24 bytes on
 * every kernel since 4.x; Python checks the BTF offsets fit (tui.bpf.program) so one probe read
 * fetches them all (each bpf_probe_read_kernel costs a helper call). */
#define SKC_HEAD 24
struct skc_head {
	u8 b[SKC_HEAD];
};

/* Family, protocol and ports of a socket; returns 0 for anything but TCP/UDP over IPv4/IPv6. */
static __always_inline int sk_info(u64 sk, struct skinfo *si)
{
	struct skc_head h = {};
	u16 family, proto = 0, dport;
	u8 state;

	if (!sk)
		return 0;
	if (bpf_probe_read_kernel(&h, sizeof(h), (void *)(sk + OFF_SK_COMMON)))
		return 0;
	__builtin_memcpy(&family, &h.b[OFF_SKC_FAMILY], 2);
	if (family != AF_INET_ && family != AF_INET6_)
		return 0;
	state = h.b[OFF_SKC_STATE];
	if (state == TCP_TIME_WAIT_ || state == TCP_NEW_SYN_RECV_) {
		/* mini sockets (timewait, request) end after sock_common: only TCP has them */
		proto = PROTO_TCP;
	} else {
		READ(proto, sk, OFF_SK_PROTOCOL);
	}
	if (proto != PROTO_TCP && proto != PROTO_UDP)
		return 0;
	__builtin_memcpy(&dport, &h.b[OFF_SKC_DPORT], 2);
	__builtin_memcpy(&si->lport, &h.b[OFF_SKC_NUM], 2);
	si->family = family;
	si->protocol = proto;
	si->state = state;
	si->rport = __builtin_bswap16(dport);
	return 1;
}

static __always_inline void sk_addrs(u64 sk, u16 family, u8 *laddr, u8 *raddr)
{
	if (family == AF_INET_) {
		READ(*(u32 *)laddr, sk, OFF_SK_COMMON + OFF_SKC_RCV_SADDR);
		READ(*(u32 *)raddr, sk, OFF_SK_COMMON + OFF_SKC_DADDR);
	} else {
		bpf_probe_read_kernel(laddr, 16, (void *)(sk + OFF_SK_COMMON + OFF_SKC_V6_RCV_SADDR));
		bpf_probe_read_kernel(raddr, 16, (void *)(sk + OFF_SK_COMMON + OFF_SKC_V6_DADDR));
	}
}

/* ---- workload: the socket's own cgroup v2 and network namespace ---- */

/* A socket belongs to the cgroup of the process that created it (sk->sk_cgrp_data, set at socket
 * creation; an accepted socket inherits its listener's), whoever runs when a packet moves: receive
 * work runs in softirq, in no process's context, and deferred sends leave from timers and ACKs.
 * The cgroup's id is its kernfs node id, the inode of its directory in the cgroup2 mount. Mini
 * sockets (request and timewait) end after sock_common and have no cgroup: they count as none.
 * Without sk_cgrp_data in the kernel's BTF, a socket is attributed to the cgroup of the process
 * that made its first send or receive call (process context), and --cgroup is refused. */
#if defined(OFF_SK_CGRP_DATA) && defined(OFF_SKCD_CGROUP) && defined(OFF_CGROUP_KN) && \
	defined(OFF_KERNFS_NODE_ID)
#define HAVE_SK_CGROUP 1
static __always_inline u64 sk_cgroup(u64 sk)
{
	u64 cg = 0;
	READ(cg, sk, OFF_SK_CGRP_DATA + OFF_SKCD_CGROUP);
	return cg;
}

static __always_inline u64 cgroup_id_of(u64 cg)
{
	u64 kn = 0, id = 0;
	if (!cg)
		return 0;
	READ(kn, cg, OFF_CGROUP_KN);
	if (kn)
		READ(id, kn, OFF_KERNFS_NODE_ID);
	return id;
}
#endif

/* The cgroup id of a full socket (not a mini socket), 0 when unknown. */
static __always_inline u64 sk_cgroup_id(u64 sk)
{
#ifdef HAVE_SK_CGROUP
	return cgroup_id_of(sk_cgroup(sk));
#else
	return 0;
#endif
}

/* Inode of the socket's network namespace (sock_common: mini sockets too), 0 when unknown. */
static __always_inline u32 sk_netns(u64 sk)
{
#if defined(OFF_SKC_NET) && defined(OFF_NET_NS_INUM)
	u64 net = 0;
	u32 inum = 0;
	READ(net, sk, OFF_SK_COMMON + OFF_SKC_NET);
	if (net)
		READ(inum, net, OFF_NET_NS_INUM);
	return inum;
#else
	return 0;
#endif
}

static __always_inline int mini_socket(u8 state)
{
	return state == TCP_TIME_WAIT_ || state == TCP_NEW_SYN_RECV_;
}

#ifdef FILTER_CGROUP_ID
/* The socket's cgroup is FILTER_CGROUP_ID or one of its descendants: its ancestor at the filter's
 * level (cgroup->ancestors[], the cgroup itself at its own level) is that group. */
static __always_inline int cgroup_match(u64 sk, u8 state)
{
	u64 cg, anc = 0;
	int level = -1;

	if (mini_socket(state))
		return 0;
	cg = sk_cgroup(sk);
	if (!cg)
		return 0;
	READ(level, cg, OFF_CGROUP_LEVEL);
	if (level < FILTER_CGROUP_LEVEL)
		return 0;
	READ(anc, cg, OFF_CGROUP_ANCESTORS + 8 * FILTER_CGROUP_LEVEL);
	return cgroup_id_of(anc) == FILTER_CGROUP_ID;
}
#endif

/* An skb's size as the path counters count it: ``len`` (skb->len), ``ip_len`` (the packet from its
 * IP header on: len plus what was pulled since, data - (head + network_header); a receive hook
 * past IP sees the L4 header or payload at data) and ``segs``, its wire segments: a GSO (send) or
 * GRO (receive) skb carries skb_shinfo(skb)->gso_segs of them, any other one. The fields from
 * len to data lie in one stretch of struct sk_buff (Python checks the order), so two probe reads
 * fetch everything: the stretch, then gso_segs (the shared info sits at head + end, 64-bit). */
#define SKB_SPAN (OFF_SKB_DATA + 8 - OFF_SKB_LEN)
struct skb_size {
	u32 len;
	u32 ip_len;
	u32 segs;
	u32 data_len; /* bytes in page fragments (send: a TCP send's data) */
};

static __always_inline void skb_size(u64 skb, struct skb_size *sz)
{
	u8 at[SKB_SPAN] = {};
	u32 end;
	u16 nh, segs = 0;
	u64 head, data;

	if (bpf_probe_read_kernel(at, sizeof(at), (void *)(skb + OFF_SKB_LEN))) {
		sz->len = sz->ip_len = sz->data_len = 0;
		sz->segs = 1;
		return;
	}
	__builtin_memcpy(&sz->len, &at[0], 4);
	__builtin_memcpy(&sz->data_len, &at[OFF_SKB_DATA_LEN - OFF_SKB_LEN], 4);
	__builtin_memcpy(&nh, &at[OFF_SKB_NETWORK_HEADER - OFF_SKB_LEN], 2);
	__builtin_memcpy(&end, &at[OFF_SKB_END - OFF_SKB_LEN], 4);
	__builtin_memcpy(&head, &at[OFF_SKB_HEAD - OFF_SKB_LEN], 8);
	__builtin_memcpy(&data, &at[OFF_SKB_DATA - OFF_SKB_LEN], 8);
	sz->ip_len = sz->len;
	if (head && data >= head + nh && data - (head + nh) < 256) /* IP + L4 headers at most */
		sz->ip_len += data - (head + nh);
	if (head)
		bpf_probe_read_kernel(&segs, sizeof(segs), (void *)(head + end + OFF_SHINFO_GSO_SEGS));
	sz->segs = segs ? segs : 1;
}

/* A packet on a path's counters (one map lookup for the three). */
static __always_inline void count_packet(u32 path, u64 bytes, u64 segs)
{
	struct counters *c = path_counters.lookup(&path);
	if (!c)
		return;
	c->c[CTR_PACKETS] += 1;
	c->c[CTR_BYTES] += bytes;
	c->c[CTR_SEGS] += segs;
}

/* ---- filters (constants from validated user input) ---- */

/* Byte comparisons below accumulate differences without branching: a branch per byte makes the
 * verifier explore every combination and reject the program as too complex. */
#ifdef FILTER_ADDR_FAMILY
/* Whether either address (FILTER_ADDR_LEN bytes each) is the filtered one. */
static __always_inline int either_addr(u8 *a, u8 *b)
{
	u8 want[16] = FILTER_ADDR_BYTES;
	u8 da = 0, db = 0;
#pragma unroll
	for (int i = 0; i < FILTER_ADDR_LEN; i++) {
		da |= a[i] ^ want[i];
		db |= b[i] ^ want[i];
	}
	return da == 0 || db == 0;
}

static __always_inline int addr_match(u64 sk, u16 family)
{
	u8 l[16] = {}, r[16] = {};

	if (family != FILTER_ADDR_FAMILY)
		return 0;
	sk_addrs(sk, family, l, r);
	return either_addr(l, r);
}
#endif

#if defined(FILTER_FAMILY) || defined(FILTER_PROTO) || defined(FILTER_PORT) || \
	defined(FILTER_LPORT) || defined(FILTER_RPORT) || defined(FILTER_ADDR_FAMILY) || \
	defined(FILTER_CGROUP_ID) || defined(FILTER_NETNS)
#define HAVE_SK_FILTER 1
#endif

/* The socket filters that are not about its ends: protocol, namespace, cgroup. A UDP datagram
 * whose own header decides ports and addresses (pkt_wanted) still passes these by its socket. */
static __always_inline int sk_owner_wanted(u64 sk, struct skinfo *si)
{
#ifdef FILTER_PROTO
	if (si->protocol != FILTER_PROTO)
		return 0;
#endif
#ifdef FILTER_NETNS
	if (sk_netns(sk) != FILTER_NETNS)
		return 0;
#endif
#ifdef FILTER_CGROUP_ID
	if (!cgroup_match(sk, si->state))
		return 0;
#endif
	return 1;
}

/* Socket-level filters: family, protocol, ports, address. Without any, every socket passes
 * and nothing is read (``si`` is then left as it was). */
static __always_inline int sk_wanted(u64 sk, struct skinfo *si)
{
#ifndef HAVE_SK_FILTER
	return 1;
#endif
	if (!si->family && !sk_info(sk, si))
		return 0;
#ifdef FILTER_FAMILY
	if (si->family != FILTER_FAMILY)
		return 0;
#endif
#ifdef FILTER_PORT
	if (si->lport != FILTER_PORT && si->rport != FILTER_PORT)
		return 0;
#endif
#ifdef FILTER_LPORT
	if (si->lport != FILTER_LPORT)
		return 0;
#endif
#ifdef FILTER_RPORT
	if (si->rport != FILTER_RPORT)
		return 0;
#endif
#ifdef FILTER_ADDR_FAMILY
	if (!addr_match(sk, si->family))
		return 0;
#endif
	return sk_owner_wanted(sk, si);
}

/* ---- a UDP datagram's own header: ports and addresses ---- */

#define PKT_NOT_UDP -1  /* not UDP over IPv4/IPv6 */
#define PKT_FRAGMENT -2 /* an IPv4 fragment after the first: no UDP header, no ports */
#define PKT_HEAD 44     /* an IPv6 header and the UDP ports behind it */
struct pkt_head {
	u8 b[PKT_HEAD];
};

struct pkt_hdr {
	u16 family; /* AF_INET_/AF_INET6_ */
	u16 sport;  /* host order */
	u16 dport;
	u16 pad;
	u8 saddr[16]; /* IPv4: the first 4 bytes */
	u8 daddr[16];
};

/* Parse the UDP datagram whose IP header starts at ``ip``: 1, or PKT_NOT_UDP / PKT_FRAGMENT. One
 * probe read (two with IPv4 options); IPv6 extension headers are not walked. */
static __always_inline int pkt_parse(u64 ip, struct pkt_hdr *ph)
{
	struct pkt_head h = {};
	u16 frag;
	u8 ports[4];

	if (bpf_probe_read_kernel(&h, sizeof(h), (void *)ip))
		return PKT_NOT_UDP;
	if ((h.b[0] >> 4) == 4) {
		u32 ihl = (h.b[0] & 15) * 4;
		if (h.b[9] != PROTO_UDP)
			return PKT_NOT_UDP;
		__builtin_memcpy(&frag, &h.b[6], 2);
		if (__builtin_bswap16(frag) & 0x1fff)
			return PKT_FRAGMENT;
		ph->family = AF_INET_;
		__builtin_memcpy(ph->saddr, &h.b[12], 4);
		__builtin_memcpy(ph->daddr, &h.b[16], 4);
		if (ihl == 20)
			__builtin_memcpy(ports, &h.b[20], 4);
		else if (bpf_probe_read_kernel(ports, 4, (void *)(ip + ihl)))
			return PKT_NOT_UDP;
	} else if ((h.b[0] >> 4) == 6) {
		if (h.b[6] != PROTO_UDP)
			return PKT_NOT_UDP;
		ph->family = AF_INET6_;
		__builtin_memcpy(ph->saddr, &h.b[8], 16);
		__builtin_memcpy(ph->daddr, &h.b[24], 16);
		__builtin_memcpy(ports, &h.b[40], 4);
	} else {
		return PKT_NOT_UDP;
	}
	ph->sport = ((u16)ports[0] << 8) | ports[1];
	ph->dport = ((u16)ports[2] << 8) | ports[3];
	return 1;
}

/* The IP header of an skb on the send path (set by IP before net_dev_queue). */
static __always_inline u64 skb_ip_header(u64 skb)
{
	u64 head = 0;
	u16 nh = 0;
	READ(head, skb, OFF_SKB_HEAD);
	READ(nh, skb, OFF_SKB_NETWORK_HEADER);
	return head + nh;
}

/* ---- packet filters: a UDP datagram's own ports and addresses ----
 * An unconnected UDP socket (a resolver, a QUIC or statsd server, and their clients) names no peer
 * (remote 0.0.0.0:0) and often has an ephemeral local port, so its socket cannot tell whether a
 * datagram goes to or comes from the filtered port. UDP datagrams are matched on their own IP and
 * UDP headers instead (port: source or destination; lport/rport: the local/remote end's; addr:
 * source or destination; family: the IP version). TCP sockets name both ends of every segment, so
 * TCP keeps the socket filters. The send path reads the header at net_dev_queue (skb->head +
 * network_header), the receive path at netif_receive_skb (skb->data: the link header is pulled). */
#if defined(FILTER_PORT) || defined(FILTER_LPORT) || defined(FILTER_RPORT) || \
	defined(FILTER_ADDR_FAMILY) || defined(FILTER_FAMILY)
#define HAVE_PKT_FILTER 1

/* 1/0: whether a datagram (``parsed``: what pkt_parse returned for ``ph``) passes the port,
 * address and family filters (``outgoing``: its source is the local end); PKT_NOT_UDP or
 * PKT_FRAGMENT when its header cannot say. */
static __always_inline int pkt_wanted(int parsed, struct pkt_hdr *ph, int outgoing)
{
	if (parsed != 1)
		return parsed;
	u16 lport = outgoing ? ph->sport : ph->dport;
	u16 rport = outgoing ? ph->dport : ph->sport;
#ifdef FILTER_FAMILY
	if (ph->family != FILTER_FAMILY)
		return 0;
#endif
#ifdef FILTER_PORT
	if (lport != FILTER_PORT && rport != FILTER_PORT)
		return 0;
#endif
#ifdef FILTER_LPORT
	if (lport != FILTER_LPORT)
		return 0;
#endif
#ifdef FILTER_RPORT
	if (rport != FILTER_RPORT)
		return 0;
#endif
#ifdef FILTER_ADDR_FAMILY
	if (ph->family != FILTER_ADDR_FAMILY)
		return 0;
	return either_addr(ph->saddr, ph->daddr);
#endif
	return 1;
}

#endif /* HAVE_PKT_FILTER */

/* ---- UDP peers: per socket, the far ends its datagrams go to and come from ----
 * A server socket answering many peers (a resolver, a QUIC or game server) shows them in the
 * drill-down. Keyed by socket and peer (address, port) plus the socket's own port (a socket at a
 * reused address starts afresh); a plain hash, not LRU: when its PEERS_MAX rows (tui.bpf.program)
 * are taken, a new peer's datagrams are refused a row and counted per socket in peer_drops, never
 * silently evicted. The live source deletes the rows of sockets that left the socket table. */
struct peer_addr {
	u8 addr[16];
	u16 port;  /* the peer's */
	u16 lport; /* the socket's */
	u8 family; /* AF_INET_/AF_INET6_ */
	u8 pad[3];
};
struct peer_key {
	u64 sk;
	struct peer_addr peer;
};
struct peer_stats {
	u64 tx_packets;
	u64 tx_bytes;
	u64 tx_ns;    /* sum of the sends' UDP L2 times */
	u64 rx_packets;
	u64 rx_bytes;
	u64 rx_ns;    /* sum of the timed datagrams' times to the application */
	u64 rx_timed;
	u64 rx_max;
};
BPF_HASH(peers, struct peer_key, struct peer_stats, PEERS_MAX);
BPF_TABLE("lru_hash", u64, u64, peer_drops, 4096);

/* The peer of a parsed datagram: its destination when sent (``outgoing``), else its source. */
static __always_inline void peer_of(struct pkt_hdr *ph, int outgoing, struct peer_addr *pa)
{
	pa->family = ph->family;
	pa->port = outgoing ? ph->dport : ph->sport;
	pa->lport = outgoing ? ph->sport : ph->dport;
	__builtin_memcpy(pa->addr, outgoing ? ph->daddr : ph->saddr, 16);
}

/* The row of a socket's peer, created when there is room (else the drop is counted). */
static __always_inline struct peer_stats *peer_row(u64 sk, struct peer_addr *pa, int create)
{
	struct peer_key k = {.sk = sk, .peer = *pa};
	struct peer_stats *p = peers.lookup(&k);
	if (p || !create)
		return p;
	struct peer_stats zero = {};
	peers.insert(&k, &zero);
	p = peers.lookup(&k);
	if (!p) {
		u64 one = 1, *d = peer_drops.lookup(&sk);
		if (d)
			__sync_fetch_and_add(d, 1);
		else
			peer_drops.update(&sk, &one);
	}
	return p;
}

#if defined(FILTER_PID) || defined(FILTER_COMM)
#define PROCESS_FILTER 1
#endif

/* Process filters: only meaningful in process context (send/recv syscalls). */
static __always_inline int task_wanted(u64 pid_tgid)
{
#ifdef FILTER_PID
	if ((pid_tgid >> 32) != FILTER_PID)
		return 0;
#endif
#ifdef FILTER_COMM
	char comm[16] = {};
	char want[16] = FILTER_COMM;
	char diff = 0;
	bpf_get_current_comm(&comm, sizeof(comm));
#pragma unroll
	for (int i = 0; i < FILTER_COMM_LEN; i++) /* the name and its NUL */
		diff |= comm[i] ^ want[i];
	if (diff)
		return 0;
#endif
	return 1;
}

/* Interface filter on skb->dev->name. */
static __always_inline int dev_wanted(u64 skb)
{
#ifdef FILTER_IFACE
	u64 dev = 0;
	char name[16] = {};
	char want[16] = FILTER_IFACE;
	READ(dev, skb, OFF_SKB_DEV);
	if (!dev)
		return 0;
	char diff = 0;
	bpf_probe_read_kernel(name, sizeof(name), (void *)(dev + OFF_DEV_NAME));
#pragma unroll
	for (int i = 0; i < FILTER_IFACE_LEN; i++) /* the name and its NUL */
		diff |= name[i] ^ want[i];
	if (diff)
		return 0;
#endif
	return 1;
}

/* ---- per-socket stats (updated once per send/recv syscall, in process context) ---- */

static __always_inline struct sock_stats *sock_entry(u64 sk, struct skinfo *si, u64 pid_tgid)
{
	struct sock_stats *s = sockets.lookup(&sk);
	if (!si->family && !sk_info(sk, si))
		return s;
	/* Sockets are keyed by address, and a closed socket's address soon holds a new one: an
	 * entry whose ports or protocol differ is an earlier socket's and starts afresh. A local port
	 * of 0 is this socket after TCP_CLOSE unhashed it (data can still be read). */
	if (s && (s->lport == si->lport || !si->lport) && s->rport == si->rport && s->protocol == si->protocol)
		return s;
	u32 zero = 0, idx = SOCKTAB_SEEN;
	/* Insert a copy of an all-zero value, then fill it in place: zeroing a scratch copy would
	 * need a memset of the whole struct (its histograms are KBs), which clang cannot inline. */
	struct sock_stats *blank = sock_zero.lookup(&zero);
	if (!blank)
		return 0;
	if (sockets.update(&sk, blank)) {
		/* the table is full: count this socket once (not once per call) */
		u8 one = 1;
		if (sock_refused.insert(&sk, &one) == 0) {
			idx = SOCKTAB_DROPPED;
			u64 *n = socktab.lookup(&idx);
			if (n)
				*n += 1;
		}
		return 0;
	}
	u64 *seen = socktab.lookup(&idx);
	if (seen)
		*seen += 1;
	struct sock_stats *fresh = sockets.lookup(&sk);
	if (!fresh)
		return 0;
	fresh->pid = pid_tgid >> 32;
	fresh->protocol = si->protocol;
	fresh->family = si->family == AF_INET_ ? 4 : 6;
	fresh->lport = si->lport;
	fresh->rport = si->rport;
	bpf_get_current_comm(&fresh->comm, sizeof(fresh->comm));
	sk_addrs(sk, si->family, fresh->laddr, fresh->raddr);
#ifdef HAVE_SK_CGROUP
	fresh->cgroup_id = sk_cgroup_id(sk);
#else
	fresh->cgroup_id = bpf_get_current_cgroup_id(); /* process context: the caller's cgroup */
#endif
	fresh->netns = sk_netns(sk);
	return fresh;
}

/* The row of a send or read call's socket (0: none, or filtered out), cheapest first: every call
 * of a busy socket lands here, followed or not. An existing row is confirmed with one read of the
 * socket's sock_common head (same ports: not a later socket at the same address; the row passed
 * the socket filters when it was made); otherwise the socket is read in full, filtered and given a
 * row. The pid/comm filters are for the caller (task_wanted). */
static __always_inline struct sock_stats *sock_row(u64 sk, u64 pid_tgid)
{
	struct sock_stats *s = sockets.lookup(&sk);
	struct skinfo si = {};
	/* A TCP row not yet closed is this socket's: its address cannot hold another socket before
	 * TCP_CLOSE (sock_state marks the row), so it needs no read. */
	if (s && s->protocol == PROTO_TCP && !s->closed)
		return s;
	if (s) {
		struct skc_head h = {};
		u16 lport, dport;
		if (bpf_probe_read_kernel(&h, sizeof(h), (void *)(sk + OFF_SK_COMMON)))
			return 0;
		__builtin_memcpy(&lport, &h.b[OFF_SKC_NUM], 2);
		__builtin_memcpy(&dport, &h.b[OFF_SKC_DPORT], 2);
		/* a local port of 0: this socket after TCP_CLOSE unhashed it (data can still be read) */
		if ((s->lport == lport || !lport) && s->rport == __builtin_bswap16(dport))
			return s;
	}
	if (!sk_info(sk, &si) || !sk_wanted(sk, &si))
		return 0;
	return sock_entry(sk, &si, pid_tgid);
}

/* TCP's own count of data segments (tcp_info's data_segs_in/out, wire segments): exact whichever
 * packets the probes follow, and one probe read per send or read call instead of work per packet. */
static __always_inline u64 tcp_data_segs(u64 sk, u32 off)
{
	u32 segs = 0;
	bpf_probe_read_kernel(&segs, sizeof(segs), (void *)(sk + off));
	return segs;
}

/* Counts of one send or read call on a socket: every call, whatever --sample says (sampling is
 * for the latency histograms). Bytes are what the call moved (its return value; a MSG_PEEK read
 * moves nothing). Packets: for TCP the kernel's own data segment count, stored (not added); for
 * UDP one datagram per call. */
static __always_inline void sock_count(struct sock_stats *s, u32 path, u64 sk, u8 proto, u64 bytes)
{
	if (path == PATH_SEND) {
		__sync_fetch_and_add(&s->tx_bytes, bytes);
		if (proto == PROTO_TCP)
			s->tx_packets = tcp_data_segs(sk, OFF_TCP_DATA_SEGS_OUT);
		else if (bytes)
			__sync_fetch_and_add(&s->tx_packets, 1);
	} else {
		__sync_fetch_and_add(&s->rx_bytes, bytes);
		if (proto == PROTO_TCP)
			s->rx_packets = tcp_data_segs(sk, OFF_TCP_DATA_SEGS_IN);
		else if (bytes)
			__sync_fetch_and_add(&s->rx_packets, 1);
	}
}

/* One followed call's latency (ns) into the socket's histogram of that path. */
static __always_inline void sock_time(struct sock_stats *s, u32 path, u64 ns)
{
	u32 b = netlat_bucket(ns, NETLAT_SOCK_SUB_BITS);
	if (!ns)
		return;
	/* clang proves the bucket is below NETLAT_SOCK_STORE and drops the mask; Linux 6.1's verifier
	 * cannot, and rejects the atomic add below as misaligned. Hiding b's range keeps the mask. */
	asm volatile("" : "+r"(b));
	b &= NETLAT_SOCK_STORE - 1;
	if (path == PATH_SEND)
		__sync_fetch_and_add(&s->send_hist[b], 1);
	else
		__sync_fetch_and_add(&s->recv_hist[b], 1);
	if (ns > s->max)
		s->max = ns; /* racy max between CPUs: good enough for a display figure */
}

/* inet_sock_set_state: a TCP socket changed state. Its row takes TCP's final segment counts (data
 * may leave after the last send call) and, at TCP_CLOSE, is marked closed: user space reads it once
 * more, then deletes it, so the table keeps live sockets only. */
static __always_inline void sock_state(u64 sk, int newstate)
{
	struct sock_stats *s = sockets.lookup(&sk);
	/* no port check: TCP_CLOSE has unhashed the socket (inet_num is 0) by the time it fires */
	if (!s || s->protocol != PROTO_TCP)
		return;
	s->tx_packets = tcp_data_segs(sk, OFF_TCP_DATA_SEGS_OUT);
	s->rx_packets = tcp_data_segs(sk, OFF_TCP_DATA_SEGS_IN);
	if (newstate == TCP_CLOSE_)
		s->closed = 1;
}

/* ---- sampled events: rate limited per CPU, drops counted ---- */

static __always_inline int event_allowed(u32 path, u64 now)
{
	u32 zero = 0;
	struct rate_window *w = rate.lookup(&zero);
	if (!w)
		return 0;
	if (now - w->start > 1000000000ULL) {
		w->start = now;
		w->sent = 0;
	}
	if (w->sent >= EVENTS_PER_SEC) {
		count(path, CTR_EVENTS_LIMITED, 1);
		return 0;
	}
	w->sent += 1;
	return 1;
}

/* Building an event: the path's own helper (tx_event, rx_event) fills the times, these fill the
 * rest, emit() sends it. */

/* The process an event belongs to: pid_tgid's process, the current task's name. */
static __always_inline void event_task(struct event *ev, u64 pid_tgid)
{
	ev->pid = pid_tgid >> 32;
	bpf_get_current_comm(&ev->comm, sizeof(ev->comm));
}

/* The socket an event belongs to: protocol, family, ports, addresses, cgroup and network
 * namespace (left 0 if not TCP/UDP). */
static __always_inline void event_sock(struct event *ev, u64 sk)
{
	struct skinfo si = {};
	if (sk && sk_info(sk, &si)) {
		ev->protocol = si.protocol;
		ev->family = si.family == AF_INET_ ? 4 : 6;
		ev->lport = si.lport;
		ev->rport = si.rport;
		sk_addrs(sk, si.family, ev->laddr, ev->raddr);
		if (!mini_socket(si.state))
			ev->cgroup_id = sk_cgroup_id(sk);
		ev->netns = sk_netns(sk);
	}
}

/* ``peer``: where a UDP datagram went or came from (family 0: unknown), shown instead of the
 * socket's remote end, which an unconnected socket does not have (0.0.0.0:0). */
static __always_inline void emit(void *ctx, struct event *ev, u64 sk, struct peer_addr *peer)
{
	event_sock(ev, sk);
	if (peer && peer->family) {
		ev->family = peer->family == AF_INET_ ? 4 : 6; /* a v6 socket may send to a v4 peer */
		ev->rport = peer->port;
		__builtin_memcpy(ev->raddr, peer->addr, 16);
	}
#ifdef USE_RINGBUF
	if (events.ringbuf_output(ev, sizeof(*ev), 0) != 0)
		count(ev->path, CTR_EVENTS_LOST, 1);
	else
		count(ev->path, CTR_EVENTS_SENT, 1);
#else
	if (events.perf_submit(ctx, ev, sizeof(*ev)) != 0)
		count(ev->path, CTR_EVENTS_LOST, 1);
	else
		count(ev->path, CTR_EVENTS_SENT, 1);
#endif
}
