// SPDX-License-Identifier: GPL-2.0
/*
 * netlat_recv.bpf.c: following packets through the receive path, shared by every plan. The plan
 * file attaches these helpers to its hooks (raw tracepoints or kprobes).
 *
 * First sight (netif_rx on loopback/veth, napi_gro_receive_entry on NICs) opens an skb-keyed
 * entry; netif_receive_skb stamps L2 done and remembers the skb per CPU (the rest of the stack runs
 * in the same softirq on that CPU). tcp_probe names the socket of the skb (also when it comes from
 * the socket backlog at release_sock); sk_data_ready on that socket closes the stack part. UDP has
 * no tcp_probe: sk_data_ready of a UDP socket right after netif_receive_skb on the same CPU is that
 * skb's. The reader's skb_copy_datagram_iovec closes the socket-queue wait; its sock_recv_length
 * closes the copy and end-to-end. Send and receive keep separate maps: on loopback and veth the
 * received skb IS the sent skb (same address). Lifetimes: see netlat_send.bpf.c.
 */

struct rx_entry {
	u64 skb;
	u64 t0; /* first sight; 0 = free or done */
	u64 t1; /* netif_receive_skb */
	u64 t2; /* sk_data_ready */
	u64 t_l4; /* kprobe plan: tcp_v4_rcv / udp_rcv */
	u64 sk;
	u32 len;
	u32 udp; /* queued on a UDP socket: closed by udp_read, never by a copy */
};
/* Received packets can wait long in socket queues (a bulk reader holds hundreds of skbs), so the
 * receive array is set-associative: RX_WAYS entries per set, twice the send array's entries. A new packet
 * takes a free, done or aged way of its set, else overwrites the oldest (counted as evicted):
 * direct-mapped, 1,000 packets in flight overwrote about 2% of them. */
#define RX_WAYS 4
#define RX_SET_BITS 13 /* 8192 sets of 4: 32768 entries, 2 MiB */
struct rx_set {
	struct rx_entry way[RX_WAYS];
};
BPF_ARRAY(rx_slots, struct rx_set, 1 << RX_SET_BITS);

static __always_inline struct rx_set *rx_set_of(u64 skb)
{
	u32 i = (u32)(((skb >> 6) * 0x9E3779B97F4A7C15ULL) >> (64 - RX_SET_BITS));
	return rx_slots.lookup(&i);
}

/* The live entry of this skb, or 0. */
static __always_inline struct rx_entry *rx_find(u64 skb)
{
	struct rx_set *set = rx_set_of(skb);
	if (!set)
		return 0;
#pragma unroll
	for (int w = 0; w < RX_WAYS; w++) {
		if (set->way[w].skb == skb && set->way[w].t0)
			return &set->way[w];
	}
	return 0;
}

/* The way a new packet at ``now`` takes: its own old entry (a recycled address), a free, done or
 * aged one, else the oldest, whose packet is then lost (evicted). */
static __always_inline struct rx_entry *rx_claim(struct rx_set *set, u64 skb, u64 now)
{
	u32 pick = 0;
	u64 oldest = ~0ULL;
#pragma unroll
	for (u32 w = 0; w < RX_WAYS; w++) {
		struct rx_entry *e = &set->way[w];
		if (e->skb == skb || !e->t0 || now - e->t0 >= AGE_LIMIT_NS)
			return e;
		if (e->t0 < oldest) {
			oldest = e->t0;
			pick = w;
		}
	}
	count(PATH_RECV, CTR_EVICTED, 1);
	return &set->way[pick & (RX_WAYS - 1)];
}

/* The skb the softirq on this CPU is delivering, from netif_receive_skb to sk_data_ready: every
 * packet, followed or not, since sk_data_ready counts each on the path. */
struct rx_cur {
	u64 skb;
	u64 sk; /* set by tcp_probe; 0 for UDP */
	u32 len; /* the packet from its IP header on (skb_size) */
	u16 segs;
	u8 followed; /* it has an rx entry (--sample chose it) */
	u8 paged; /* bytes in page fragments: payload (headers are pulled into the linear part) */
	u64 l4; /* rx_l4's argument, read back as a number */
	u64 t_named; /* RX_BACKLOG: when tcp_probe named it (its data-ready follows in the same call) */
#ifdef HAVE_PKT_FILTER
	s64 pkt; /* pkt_wanted() of the skb's headers, read at netif_receive_skb */
#endif
};
/* Two per CPU: the softirq's delivery (RX_SOFTIRQ), and the socket backlog a process works
 * through at release_sock (RX_BACKLOG), which a softirq on the same CPU may interrupt between a
 * packet's tcp_probe and its sk_data_ready: one slot lost that packet. */
#define RX_SOFTIRQ 0
#define RX_BACKLOG 1
BPF_PERCPU_ARRAY(rx_current, struct rx_cur, 2);
/* A backlog slot older than this is not the packet a data-ready is for: a packet that gets none (a
 * pure ACK, a duplicate, one held out of order) leaves its slot named, and a later socket at the
 * same address took it once over the NICs (a 3 s "IP+TCP" sample in 2000 on 7.3). tcp_probe and
 * sk_data_ready are one call chain apart (tcp_rcv_established -> tcp_data_ready): microseconds,
 * milliseconds on a preempted vCPU. A packet missed this way is read unstamped, counted in missed. */
#define RX_BACKLOG_MAX_NS 50000000ULL

/* The reader between its first copy and the end of recvmsg (same thread, same CPU). */
struct rx_read {
	u64 pid_tgid;
	u64 t_copy;
	u64 t0;
	u64 t1;
	u64 t2;
	u64 t_l4;
	u64 sk;
};
BPF_PERCPU_ARRAY(rx_reading, struct rx_read, 1);

static __always_inline void rx_first_sight(u64 skb)
{
	if (!sampled() || !dev_wanted(skb)) {
		/* not followed; an old entry at this recycled address must not pair with it */
		struct rx_entry *old = rx_find(skb);
		if (old)
			old->t0 = 0;
		return;
	}
	struct rx_set *set = rx_set_of(skb);
	if (!set)
		return;
	u64 now = bpf_ktime_get_ns();
	struct rx_entry e = {.skb = skb, .t0 = now};
	*rx_claim(set, skb, now) = e;
}

static __always_inline void rx_l2_done(u64 skb)
{
	struct rx_entry *e = rx_find(skb);
	u32 zero = 0;
	struct rx_cur *cur = rx_current.lookup(&zero);
	struct skb_size sz;

	if (!cur)
		return;
	/* every packet takes the slot, so a UDP sk_data_ready after it cannot take an older packet
	 * (say one waiting in a socket backlog) for its own */
	cur->skb = skb;
	cur->sk = 0;
	cur->followed = e != 0;
#ifdef FILTER_IFACE
	if (!e && !dev_wanted(skb)) { /* a followed one passed at first sight */
		cur->skb = 0;
		return;
	}
#endif
	/* here skb->data is the IP header; a GRO skb has its merged length and segments */
	skb_size(skb, &sz);
	cur->len = sz.len;
	cur->segs = sz.segs;
	cur->paged = sz.data_len > 0;
	if (e)
		e->t1 = bpf_ktime_get_ns();
#ifdef HAVE_PKT_FILTER
	/* a UDP datagram's socket is not known yet, and its headers are read while the skb is
	 * certainly alive (a GSO skb is segmented, and freed, before its datagrams reach the socket) */
	u64 data = 0;
	struct pkt_hdr ph = {};
	READ(data, skb, OFF_SKB_DATA);
	cur->pkt = pkt_wanted(pkt_parse(data, &ph), &ph, 0);
#endif
}

/* The filters for a UDP datagram reaching socket sk at sk_data_ready (a TCP segment was decided
 * at tcp_probe): by its own headers under a port/address filter, else (or when its headers were
 * not UDP's) by its socket. */
static __always_inline int rx_udp_wanted(struct rx_cur *cur, u64 sk, struct skinfo *si)
{
#ifdef HAVE_PKT_FILTER
	if (cur->pkt != PKT_NOT_UDP)
		return cur->pkt == 1 && sk_owner_wanted(sk, si);
#endif
	return sk_wanted(sk, si);
}

/* The slot's packet, which the filters selected for socket sk, on the receive path's counters,
 * followed or not (--sample thins the latency figures only). Under a pid/comm filter (softirq: no
 * process here) a socket counts once a wanted process made a call on it, as deferred sends do
 * (the socket table). */
static __always_inline void rx_count(struct rx_cur *cur, u64 sk)
{
#ifdef PROCESS_FILTER
	if (!sockets.lookup(&sk))
		return;
#endif
	count_packet(PATH_RECV, cur->len, cur->segs);
}

/* kprobe plan: L4 entry (tcp_v4_rcv / udp_rcv) in the same softirq. */
static __always_inline void rx_l4(u64 skb)
{
	u32 zero = 0;
	struct rx_cur *cur = rx_current.lookup(&zero);
	if (!cur)
		return;
	/* By the skb, not rx_current: list receive (GRO's batches) runs netif_receive_skb for the
	 * whole batch before the first reaches L4. Hash a copy read back from the map, not the
	 * argument: under fentry the argument is a typed kernel pointer, and the verifier refuses
	 * shifts and multiplies on pointers (the volatile load keeps clang from reusing it). */
	cur->l4 = skb;
	u64 addr = *(volatile u64 *)&cur->l4;
	struct rx_entry *e = rx_find(addr);
	if (e)
		e->t_l4 = bpf_ktime_get_ns();
}

/* A TCP segment's sequence space, end_seq - seq: its payload plus one for a SYN and one for a FIN
 * (tcp_v4_fill_cb/tcp_v6_fill_cb, done before tcp_probe and before a packet goes to the socket
 * backlog); *data says whether it carries payload, the test tcp_info's data_segs_in counts by. One
 * read of the skb's control block. */
#define TCB_SPAN (OFF_TCB_FLAGS + 1 - OFF_TCB_SEQ)
#define TCPHDR_FIN_ 0x01
#define TCPHDR_SYN_ 0x02
static __always_inline u32 tcp_seq_space(u64 skb, int *data)
{
	u8 cb[TCB_SPAN] = {};
	u32 seq, end_seq;
	u8 flags;

	*data = 0;
	if (bpf_probe_read_kernel(cb, sizeof(cb), (void *)(skb + OFF_SKB_CB + OFF_TCB_SEQ)))
		return 0;
	__builtin_memcpy(&seq, &cb[0], 4);
	__builtin_memcpy(&end_seq, &cb[OFF_TCB_END_SEQ - OFF_TCB_SEQ], 4);
	flags = cb[OFF_TCB_FLAGS - OFF_TCB_SEQ];
	*data = end_seq - seq > (u32)(flags & TCPHDR_FIN_) + (u32)((flags & TCPHDR_SYN_) >> 1);
	return end_seq - seq;
}

/* Whether the slot's TCP segment skb carries payload. Paged bytes are payload: most data
 * segments (loopback and veth pass the sender's page fragments; NIC drivers put payload in pages)
 * need no read of the control block. */
static __always_inline int rx_tcp_data(struct rx_cur *cur, u64 skb)
{
	int data;
	if (cur->paged)
		return 1;
	tcp_seq_space(skb, &data);
	return data;
}

/* tcp_probe(sk, skb): TCP (tcp_rcv_established) has this skb's socket. A segment with data is
 * counted on the receive path here, as tcp_info's data_segs_in counts it: a segment TCP holds out
 * of order or drops as a duplicate never reaches sk_data_ready by itself (reordering across CPUs on
 * loopback, loss on a network), and a kprobe on data-ready can be skipped (kprobe re-entry) where
 * this raw tracepoint is not. The socket is named for the data-ready that follows.
 *
 * Which per-CPU slot: a socket its owner holds (sk_lock.owned) is being fed from its backlog in
 * process context, with softirqs enabled (__release_sock), so a receive softirq can run between
 * this tcp_probe and its data-ready (an ACK this very packet makes TCP send over loopback is
 * received at local_bh_enable) and take the softirq's slot: such a packet, when followed, takes
 * RX_BACKLOG even when it is still the softirq slot's skb (it went to the backlog from the last
 * softirq here).
 * Its size is read again: the backlog may have merged later packets into it (tcp_add_backlog). */
static __always_inline void rx_tcp_sock(u64 sk, u64 skb)
{
	u32 idx = RX_SOFTIRQ;
	struct rx_cur *cur = rx_current.lookup(&idx);
	int owned = 0;

	if (!cur)
		return;
	/* only a followed packet needs its own slot until data-ready (the count is made here) */
	if (cur->skb == skb && cur->followed)
		READ(owned, sk, OFF_SK_LOCK_OWNED);
	struct rx_entry *e = 0;
	int data = -1; /* carries payload: not known yet */
	if (cur->skb != skb || owned) {
		/* from the socket backlog (its IP header is behind skb->data now), or a packet of a
		 * list receive whose netif_receive_skb was not the last on this CPU. A pure ACK gets
		 * no data-ready and no count: it must not take the slot from one that will (a
		 * half-closed receiver's data-ready in softirq took a pure ACK named here for its own). */
		struct skb_size sz;
		if (!tcp_seq_space(skb, &data))
			return;
		if (cur->skb == skb)
			cur->skb = 0;
		idx = RX_BACKLOG;
		cur = rx_current.lookup(&idx);
		if (!cur)
			return;
		e = rx_find(skb);
		cur->skb = skb;
		cur->t_named = bpf_ktime_get_ns();
		cur->followed = e != 0;
		skb_size(skb, &sz);
		cur->len = sz.ip_len;
		cur->segs = sz.segs;
		cur->paged = sz.data_len > 0;
#ifdef HAVE_PKT_FILTER
		cur->pkt = PKT_NOT_UDP;
#endif
#ifdef FILTER_IFACE
		if (!cur->followed && !dev_wanted(skb))
			cur->skb = 0;
#endif
	} else if (cur->followed) { /* netif_receive_skb found its entry: no lookup for the others */
		e = rx_find(skb);
	}
	if (!cur->skb)
		return; /* not on a wanted interface */
	struct skinfo si = {};
	if (!sk_wanted(sk, &si)) {
		cur->skb = 0;
		if (e)
			e->t0 = 0;
		return;
	}
	cur->sk = sk;
	/* named in the entry too: read without its data-ready stamp, it lost that run (rx_copy) */
	if (e)
		e->sk = sk;
	if (data < 0)
		data = rx_tcp_data(cur, skb);
	if (data)
		rx_count(cur, sk);
}

/* The L2..L4 stages of a packet that reached its socket. Under a pid/comm filter they are
 * recorded when the reader copies the packet (process context, where the filter can decide);
 * otherwise at sk_data_ready. */
static __always_inline void rx_record_stack(struct rx_entry *e)
{
	record(PATH_RECV, SLOT_RECV_BACKLOG, e->t1 - e->t0);
	record(PATH_RECV, SLOT_RECV_IP_TCP, e->t2 - e->t1);
	if (e->t_l4) {
		record(PATH_RECV, SLOT_RECV_IP, e->t_l4 - e->t1);
		record(PATH_RECV, SLOT_RECV_TCP, e->t2 - e->t_l4);
	}
	record(PATH_RECV, SLOT_RECV_STACK, e->t2 - e->t0);
}

#ifdef UDP_E2E
/* UDP copies linear datagrams to user without a tracepoint (copy_linear_skb), so a followed
 * datagram is closed by the first read of its socket that finds it taken off the socket's queues:
 * __skb_unlink() sets skb->next to NULL, and freeing the skb leaves it so (SLUB keeps its free
 * pointer in the middle of the object; init_on_free zeroes it). A MSG_PEEK read unlinks nothing.
 * A socket's queue is first in, first out, so its followed datagrams wait in a ring in the order
 * they were queued (sk_data_ready), and a read looks at the oldest few (UDP_WINDOW: two CPUs
 * queueing at once may call sk_data_ready in the other order) for the newest one unlinked.
 * recvmmsg ends each datagram of a batch with its own sock_recv_length, so a batch of up to
 * UDP_PENDING is timed whole; a deeper queue overwrites the oldest (counted as evicted), so a slow
 * reader's queue is sampled, never mispaired. The ring is updated from softirq and the reader
 * without a lock: two updates racing can lose one datagram's time, never pair it with another. */
#define UDP_PENDING 64
#define UDP_WINDOW 4
struct udp_pending {
	u64 skb[UDP_PENDING];    /* the followed packet (its rx entry) */
	u64 queued[UDP_PENDING]; /* the skb queued on the socket: itself, or its first datagram */
	struct peer_addr peer[UDP_PENDING]; /* where it came from (family 0: unknown) */
	u32 head; /* oldest waiting */
	u32 tail; /* next write */
};
BPF_TABLE("lru_hash", u64, struct udp_pending, udp_waiting, 4096);
/* Never written: the initial value of a socket's ring (too big to zero on the stack). */
BPF_PERCPU_ARRAY(udp_waiting_zero, struct udp_pending, 1);

/* The skb a followed UDP packet was queued as, at sk_data_ready: the packet itself, linked in
 * the socket's queue; unless the kernel split it (a GSO skb reaching a socket without UDP_GRO:
 * udp_rcv_segment queues new skbs, one per datagram, and frees the packet, unlinked): then the
 * queue's tail, its first datagram. */
static __always_inline u64 udp_queued_skb(u64 sk, u64 skb)
{
	u64 next = 0, tail = 0;
	READ(next, skb, OFF_SKB_NEXT);
	if (next)
		return skb;
	READ(tail, sk, OFF_SK_RECEIVE_QUEUE + OFF_SKB_HEAD_PREV);
	if (!tail || tail == sk + OFF_SK_RECEIVE_QUEUE)
		return skb; /* empty: a reader took it already */
	return tail;
}

static __always_inline void udp_queued(u64 sk, u64 skb, u32 len)
{
	u64 queued = udp_queued_skb(sk, skb);
	/* the peer, from the queued skb's header (live: the packet itself may be freed) */
	struct pkt_hdr ph = {};
	struct peer_addr pa = {};
	if (pkt_parse(skb_ip_header(queued), &ph) == 1) {
		peer_of(&ph, 0, &pa);
		struct peer_stats *row = peer_row(sk, &pa, 1);
		if (row) {
			__sync_fetch_and_add(&row->rx_packets, 1);
			__sync_fetch_and_add(&row->rx_bytes, len);
		}
	}
	struct udp_pending *p = udp_waiting.lookup(&sk);
	if (!p) {
		u32 zero = 0;
		struct udp_pending *blank = udp_waiting_zero.lookup(&zero);
		if (!blank)
			return;
		udp_waiting.update(&sk, blank);
		p = udp_waiting.lookup(&sk);
		if (!p)
			return;
	}
	u32 tail = p->tail;
	if (tail - p->head >= UDP_PENDING) { /* full: the oldest is overwritten */
		u64 old = p->skb[tail & (UDP_PENDING - 1)];
		if (old && rx_find(old))
			count(PATH_RECV, CTR_EVICTED, 1);
		p->head = tail - UDP_PENDING + 1;
	}
	p->skb[tail & (UDP_PENDING - 1)] = skb;
	p->queued[tail & (UDP_PENDING - 1)] = queued;
	p->peer[tail & (UDP_PENDING - 1)] = pa;
	p->tail = tail + 1;
}

static __always_inline void udp_forget(u64 skb)
{
	struct rx_entry *e = rx_find(skb);
	if (e)
		e->t0 = 0;
}

/* The sampled event of a UDP datagram a read closed: first sight to the end of the read, with its
 * L2 and L3/L4 stages (no socket queue/copy split for UDP) and the peer it came from. */
static __always_inline void udp_event(void *ctx, struct rx_entry *v, u64 sk, u64 now, int ret, u64 id,
				      struct peer_addr *pa)
{
	struct event ev = {.time_ns = now, .path = PATH_RECV, .len = ret > 0 ? ret : 0};
	ev.stages_ns[SLOT_RECV_BACKLOG] = v->t1 - v->t0;
	ev.stages_ns[SLOT_RECV_IP_TCP] = v->t2 - v->t1;
	if (v->t_l4 > v->t1)
		ev.l3_ns = v->t_l4 - v->t1;
	ev.total_ns = now - v->t0;
	event_task(&ev, id);
	emit(ctx, &ev, sk, pa);
}

/* A read of UDP socket sk ended: close the followed datagram it took off the queue. Returns
 * its time to the application (0 when none closed) for rx_end's socket accounting. */
static __always_inline u64 udp_read(void *ctx, u64 sk, u64 id, int ret)
{
	struct udp_pending *p = udp_waiting.lookup(&sk);
	if (!p)
		return 0;
	u32 head = p->head, tail = p->tail;
	u64 skb = 0;
	struct peer_addr pa = {};
#pragma unroll
	for (u32 i = 0; i < UDP_WINDOW; i++) {
		u32 k = (head + i) & (UDP_PENDING - 1);
		u64 s = p->skb[k];
		if (head + i == tail)
			break;
		if (!s)
			continue;
		struct rx_entry *e = rx_find(s);
		if (!e || e->sk != sk || !e->t2) {
			p->skb[k] = 0; /* closed by a copy (non-linear datagram), or its slot reused */
			continue;
		}
		u64 next = 1;
		READ(next, p->queued[k], OFF_SKB_NEXT);
		if (!next) {
			/* the newest one taken off the queue is this read's (a read also drops the
			 * bad-checksum datagrams it meets); an older one's read was missed */
			if (skb)
				udp_forget(skb);
			p->skb[k] = 0;
			skb = s;
			pa = p->peer[k];
		}
	}
	/* the ring's start moves past the datagrams closed or forgotten */
#pragma unroll
	for (u32 i = 0; i < UDP_WINDOW; i++) {
		if (head == tail || p->skb[head & (UDP_PENDING - 1)])
			break;
		head += 1;
	}
	p->head = head;
	if (!skb)
		return 0;
	struct rx_entry *e = rx_find(skb);
	if (!e)
		return 0;
	struct rx_entry v = *e;
	e->t0 = 0; /* done */
	if (!task_wanted(id))
		return 0;
	u64 now = bpf_ktime_get_ns();
	if (now - v.t0 > AGE_LIMIT_NS) {
		count(PATH_RECV, CTR_STALE, 1);
		return 0;
	}
#ifdef PROCESS_FILTER
	rx_record_stack(&v); /* under a pid/comm filter the stack stages wait for the reader */
#endif
	u64 e2e = now - v.t0;
	record(PATH_RECV, SLOT_RECV_UDP_E2E, e2e);
	struct peer_stats *row = pa.family ? peer_row(sk, &pa, 0) : 0;
	if (row) {
		__sync_fetch_and_add(&row->rx_ns, e2e);
		__sync_fetch_and_add(&row->rx_timed, 1);
		if (e2e > row->rx_max)
			row->rx_max = e2e; /* racy between CPUs: a display figure */
	}
	if (event_allowed(PATH_RECV, now))
		udp_event(ctx, &v, sk, now, ret, id, &pa);
	return e2e;
}
#endif

/* sk_data_ready of TCP socket sk for the softirq slot's packet, which no tcp_probe named: TCP
 * takes data outside tcp_rcv_established once the socket left ESTABLISHED (a receiver that
 * half-closed its side, in FIN_WAIT: tcp_rcv_state_process). Counted and named here as tcp_probe
 * would, when it carries data and a softirq delivers it (the socket not owned: the slot is then
 * this packet's; one from the backlog of such a socket is not counted). A listener's data-ready
 * (a new connection to accept) is not a packet's. Returns whether the packet is sk's. */
static __always_inline int rx_tcp_unnamed(struct rx_cur *cur, u64 sk, struct skinfo *si)
{
	int owned = 1;
	READ(owned, sk, OFF_SK_LOCK_OWNED);
	if (owned || si->state == TCP_LISTEN_ || !rx_tcp_data(cur, cur->skb) || !sk_wanted(sk, si))
		return 0;
	cur->sk = sk;
	rx_count(cur, sk);
	return 1;
}

static __always_inline void rx_ready(u64 sk)
{
	u32 idx = RX_SOFTIRQ;
	struct rx_cur *cur = rx_current.lookup(&idx);
	struct skinfo si = {};

	if (!cur)
		return;
	if (!cur->skb || cur->sk != sk) {
		/* not the softirq's TCP packet: one tcp_probe named from the socket's backlog, or a
		 * UDP datagram (no tcp_probe names its socket) */
		idx = RX_BACKLOG;
		struct rx_cur *back = rx_current.lookup(&idx);
		if (back && back->skb && back->sk == sk &&
		    bpf_ktime_get_ns() - back->t_named < RX_BACKLOG_MAX_NS)
			cur = back;
		else if (!cur->skb || cur->sk || !sk_info(sk, &si))
			return;
		else if (si.protocol == PROTO_TCP && !rx_tcp_unnamed(cur, sk, &si))
			return;
	}
	u64 skb = cur->skb;
	cur->skb = 0;
	struct rx_entry *e = cur->followed ? rx_find(skb) : 0;
	if (!cur->sk) {
		/* a UDP datagram: the filters decide and it is counted here (a TCP segment was at
		 * tcp_probe) */
		if (!rx_udp_wanted(cur, sk, &si)) {
			if (e)
				e->t0 = 0;
			return;
		}
		rx_count(cur, sk);
	}
	if (!e)
		return;
	u64 now = bpf_ktime_get_ns();
	if (now - e->t0 > AGE_LIMIT_NS || !e->t1) {
		count(PATH_RECV, CTR_STALE, 1);
		e->t0 = 0;
		return;
	}
	e->t2 = now;
	e->sk = sk;
	e->len = cur->len;
#ifdef RX_L4_HOOK
	/* a TCP packet that reached its socket without its L4 stamp: that hook's run was skipped
	 * (a kprobe under a softirq, as at data-ready; rx_unstamped), its IP/TCP split is lost */
	if (cur->sk && !e->t_l4)
		count(PATH_RECV, CTR_MISSED, 1);
#endif
#ifndef PROCESS_FILTER
	rx_record_stack(e);
#endif
	if (cur->sk) {
		/* TCP may have merged this skb into the one before it in the receive queue
		 * (tcp_try_coalesce) and frees it next: its bytes are read as part of that skb, so it
		 * is done here, not left to age in the array. A queued skb is linked (next not NULL). */
		u64 next = 0;
		READ(next, skb, OFF_SKB_NEXT);
		if (!next)
			e->t0 = 0;
	}
#ifdef UDP_E2E
	if (!cur->sk) { /* no tcp_probe named a socket: a UDP datagram (sk_info said so) */
		e->udp = 1;
		udp_queued(sk, skb, e->len);
	}
#endif
}

/* A followed TCP packet whose socket TCP named (tcp_probe) is read without its data-ready stamp:
 * that stamp was lost, and with it the packet's stack, socket queue and end-to-end samples. Seen
 * on Debian 12's 6.1: the kprobe on sock_def_readable skipped when the NIC's receive softirq ran
 * on interrupt exit over one of our process-context kprobe handlers (kprobe re-entry, in no BPF
 * counter); and over veth, before a backlog packet always took its own slot (rx_tcp_sock), this
 * CPU's rx_current taken between tcp_probe and data-ready by a receive softirq nested in the
 * socket's backlog processing (a transmit to the peer from process context runs it at
 * local_bh_enable). A kprobe is also skipped while a map
 * syscall holds bpf_prog_active on the CPU (counted by the kernel only from 6.7). Counted in
 * missed, as the kernel's own skips are (a packet TCP held out of order, queued by the data-ready
 * of the one that filled the gap, counts too: it was not timed either). The socket check keeps
 * out another socket's skb at a reused address; an unfollowed packet has no entry. */
static __always_inline void rx_unstamped(struct rx_entry *e, u64 skb)
{
	u64 owner = 0;
	if (!e->t1 || !e->sk)
		return;
	READ(owner, skb, OFF_SKB_SK);
	if (owner != e->sk || !task_wanted(bpf_get_current_pid_tgid()))
		return;
	count(PATH_RECV, CTR_MISSED, 1);
	e->t0 = 0;
}

/* skb_copy_datagram_iovec(skb): the reader copies this skb to user space. */
static __always_inline void rx_copy(u64 skb)
{
	struct rx_entry *e = rx_find(skb);
	if (!e)
		return;
	if (!e->t2) {
		rx_unstamped(e, skb);
		return;
	}
#ifdef UDP_E2E
	if (e->udp)
		return; /* a non-linear UDP datagram (large, or built from page frags): udp_read times it */
#endif
	/* Only a copy from the socket the data was queued on closes the wait. A freed skb (e.g.
	 * coalesced into an earlier one) can leave its entry behind, and its address can come back
	 * as an skb that never passed first sight: a unix socket's, whose reads use this tracepoint
	 * too. Its skb->sk is not e->sk, so it cannot pair with the stale entry. */
	u64 owner = 0;
	READ(owner, skb, OFF_SKB_SK);
	if (owner != e->sk) {
		count(PATH_RECV, CTR_STALE, 1);
		e->t0 = 0;
		return;
	}
	u64 id = bpf_get_current_pid_tgid();
	if (!task_wanted(id)) {
		e->t0 = 0;
		return;
	}
	u64 now = bpf_ktime_get_ns();
#ifdef PROCESS_FILTER
	rx_record_stack(e);
#endif
	record(PATH_RECV, SLOT_RECV_SOCK_QUEUE, now - e->t2);
	u32 zero = 0;
	struct rx_read *r = rx_reading.lookup(&zero);
	if (r && (r->pid_tgid != id || r->sk != e->sk || now - r->t_copy > AGE_LIMIT_NS)) {
		/* first copy of this recvmsg: later skbs of the same call keep the first moment */
		r->pid_tgid = id;
		r->t_copy = now;
		r->t0 = e->t0;
		r->t1 = e->t1;
		r->t2 = e->t2;
		r->t_l4 = e->t_l4;
		r->sk = e->sk;
	}
	e->t0 = 0; /* done: the rest of this skb (a partial read) is not timed again */
}

/* The sampled event of a followed read that ended (rx_end): the stages of its first packet, the
 * copy, the bytes read and the reader. */
static __always_inline void rx_event(void *ctx, struct rx_read *v, u64 sk, u64 now, int ret, u64 id)
{
	struct event ev = {.time_ns = now, .path = PATH_RECV, .len = ret > 0 ? ret : 0};
	ev.stages_ns[SLOT_RECV_BACKLOG] = v->t1 - v->t0;
	ev.stages_ns[SLOT_RECV_IP_TCP] = v->t2 - v->t1;
	ev.stages_ns[SLOT_RECV_SOCK_QUEUE] = v->t_copy - v->t2;
	ev.stages_ns[SLOT_RECV_COPY] = now - v->t_copy;
	if (v->t_l4 > v->t1)
		ev.l3_ns = v->t_l4 - v->t1; /* kprobe plan: the IP part of stages_ns[SLOT_RECV_IP_TCP] */
	ev.total_ns = now - v->t0;
	event_task(&ev, id);
	emit(ctx, &ev, sk, 0);
}

/* The row a UDP read of socket sk counts in (rx_end): sock_row's; but under a port/address
 * filter a read counts when it took a datagram that passed them (udp_read closed one, e2e > 0),
 * or when the socket itself passes them (then every datagram it receives does: a socket bound to
 * the port receives only datagrams to it). So an unconnected client's row counts the replies from
 * the port; the datagrams of a GSO skb after its first are not followed, and count only in a row
 * whose socket passes. */
static __always_inline struct sock_stats *rx_udp_row(u64 sk, u64 id, u64 e2e)
{
#ifdef HAVE_PKT_FILTER
	struct skinfo si = {};
	if (sk_info(sk, &si) && si.protocol == PROTO_UDP) {
		if (e2e && sk_owner_wanted(sk, &si))
			return sock_entry(sk, &si, id);
		return sk_wanted(sk, &si) ? sock_row(sk, id) : 0;
	}
#endif
	return sock_row(sk, id);
}

/* sock_recv_length: end of recvmsg. Every read of a TCP or UDP socket is counted in its row,
 * followed or not (sock_count); a followed read also ends its packet's stages. */
static __always_inline void rx_end(void *ctx, u64 sk, int ret, u64 flags)
{
	u32 zero = 0;
	struct rx_read *r = rx_reading.lookup(&zero);
	u64 id = bpf_get_current_pid_tgid();
	u64 bytes = ret > 0 && !(flags & MSG_PEEK_) ? ret : 0; /* a peek moves nothing */
	struct sock_stats *s;

	if (!r || r->pid_tgid != id) {
		/* Not a TCP read we followed. A UDP read gives its socket the time of the datagram it
		 * closed, if any; a socket whose row says TCP (sock_row: no read needed) has no ring
		 * to look up. */
		u64 e2e = 0;
		struct sock_stats *tcp = sockets.lookup(&sk);
		if (tcp && (tcp->protocol != PROTO_TCP || tcp->closed))
			tcp = 0;
#ifdef UDP_E2E
		if (!tcp && ret >= 0 && !(flags & MSG_PEEK_))
			e2e = udp_read(ctx, sk, id, ret);
#endif
		if ((!bytes && !e2e) || !task_wanted(id))
			return;
		s = tcp ? tcp : rx_udp_row(sk, id, e2e);
		if (s) {
			sock_count(s, PATH_RECV, sk, s->protocol, bytes);
			sock_time(s, PATH_RECV, e2e);
		}
		return;
	}
	struct rx_read v = *r;
	r->pid_tgid = 0;
	if (v.sk != sk)
		return;
	u64 now = bpf_ktime_get_ns();
	u64 copy = now - v.t_copy;
	u64 e2e = now - v.t0;
	record(PATH_RECV, SLOT_RECV_COPY, copy);
	record(PATH_RECV, SLOT_RECV_E2E, e2e);
	s = sock_row(sk, id);
	if (s) {
		sock_count(s, PATH_RECV, sk, s->protocol, bytes);
		sock_time(s, PATH_RECV, e2e);
	}

	if (event_allowed(PATH_RECV, now))
		rx_event(ctx, &v, sk, now, ret, id);
}
