// SPDX-License-Identifier: GPL-2.0
/*
 * netlat_send.bpf.c: following packets through the send path, shared by every plan. The plan file
 * attaches these helpers to its hooks (raw tracepoints or kprobes).
 *
 * A per-thread cursor (task storage) marks "TCP has the data" at the start of the send syscall for
 * (thread, sk). A packet reaching net_dev_queue on that thread with skb->sk == cursor.sk left
 * inside the syscall; its L4/L3 time is dev_queue - cursor.t. The skb seen from net_dev_queue on is
 * TCP's transmit CLONE (tcp_transmit_skb clones the write-queue skb; the clone keeps skb->sk), and
 * from there the packet is keyed by that clone's address. After the device took the packet the
 * cursor moves to that moment, so a second segment of the same send measures its own stack time.
 * Packets of a socket that reach net_dev_queue outside its send syscall (ACK clocking, timers,
 * retransmits, pure ACKs from recvmsg) are "deferred": counted and timed apart, never in the
 * in-syscall stages or the send total.
 *
 * Lifetimes (send and receive): every map is bounded (fixed arrays, LRU hashes, task storage that
 * dies with its thread) and entries older than AGE_LIMIT_NS are ignored, so a lost packet never
 * pairs with a later one. At completion (net_dev_xmit, first copy) an skb entry is marked done (its
 * start time zeroed) rather than deleted, and a packet we do not follow clears a live entry at its
 * address (tx_forget, rx_first_sight): skb addresses come back quickly from the slab allocator.
 */

#define TX_IN_SYSCALL 1
#define TX_UDP 2
#define TX_UDP_L4 4 /* a UDP datagram followed from udp_sendmsg (kprobe/fentry plans) */

struct cursor {
	u64 t;          /* start of the current in-syscall stretch */
	u64 sk;         /* socket of the send syscall in progress, 0 = none */
	u64 first_total; /* send total of the syscall's first packet (per-socket histogram) */
	u64 segs;
	u64 t_l3;       /* kprobe plan: ip_queue_xmit of the packet being built */
	u64 skip;       /* --sample: this send is not followed (its packets are not "deferred") */
	u64 t_sock;     /* kprobe/fentry plans: sock_sendmsg of the send in progress, 0 = none */
	u64 sock_sk;    /* its socket's sk */
	u64 l5;         /* socket layer time of this send (sock_sendmsg -> tcp_sendmsg), 0 = unknown */
	u64 udp;        /* kprobe/fentry plans: the send in progress is udp_sendmsg's */
};
#ifdef HAVE_TASK_STORAGE
/* Task-local storage: the cheapest per-thread state (no hash lookup), Linux 5.11+. */
BPF_TASK_STORAGE(tx_cursor, struct cursor);

static __always_inline struct cursor *cursor_get(u64 id, int create)
{
	return tx_cursor.task_storage_get(bpf_get_current_task_btf(), 0,
					  create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}
#else
BPF_TABLE("lru_hash", u64, struct cursor, tx_cursor, 8192);

static __always_inline struct cursor *cursor_get(u64 id, int create)
{
	struct cursor *c = tx_cursor.lookup(&id);
	if (c || !create)
		return c;
	struct cursor fresh = {};
	tx_cursor.update(&id, &fresh);
	return tx_cursor.lookup(&id);
}
#endif

/* The thread id cursor_get() and task_wanted() need: none with task storage and no process filter
 * (the task is the key), one helper call less per send. */
#if defined(HAVE_TASK_STORAGE) && !defined(PROCESS_FILTER)
#define cursor_id() 0
#else
#define cursor_id() bpf_get_current_pid_tgid()
#endif

struct tx_entry {
	u64 skb;
	u64 t_queue;   /* net_dev_queue; 0 = free or done */
	u64 t_start;   /* net_dev_start_xmit */
	u64 t_begin;   /* cursor time (in syscall) */
	u64 t_l3;      /* kprobe plan: ip_queue_xmit */
	u64 sk;
	u64 pid_tgid;
	u32 len;
	u16 flags;
	u16 segs;      /* wire segments (gso_segs): a GSO skb may be cut in software (tx_gso) */
	struct peer_addr peer; /* UDP: where the datagram goes (family 0: unknown) */
};
BPF_ARRAY(tx_slots, struct tx_entry, 1 << SKB_SLOT_BITS);

static __always_inline struct tx_entry *tx_slot(u64 skb)
{
	u32 i = slot_of(skb);
	return tx_slots.lookup(&i);
}

static __always_inline struct tx_entry *tx_find(u64 skb)
{
	struct tx_entry *e = tx_slot(skb);
	if (!e || e->skb != skb || !e->t_queue)
		return 0;
	return e;
}

/* Software GSO. A followed GSO skb that the device cannot take whole (no TSO/USO: virtio-net on a
 * qemu hub, tunnels without offload) is cut into segments on its way to the device
 * (validate_xmit_skb -> skb_gso_segment), right after net_dev_queue (noqueue, a qdisc bypassed while
 * empty) or after a qdisc dequeued it, on the same CPU; the GSO skb is freed and
 * net_dev_start_xmit/net_dev_xmit see only the segments, under new addresses, one after the other.
 * So each CPU keeps the followed GSO skbs it is about to hand to a device, in order (gso_arm); a
 * segment no entry knows belongs to the oldest of them that is still in flight and of the
 * segment's socket (segments keep skb->sk). Its first segment's start is the packet's device start,
 * its last segment's net_dev_xmit closes it (gso_segs of them). A GSO skb the device takes whole
 * leaves the list at its own net_dev_start_xmit. Armed at net_dev_queue and at qdisc_dequeue: a
 * dequeue empties this CPU's list first (what net_dev_queue armed went into the qdisc), and one
 * closed meanwhile elsewhere is dropped when met. */
#define TX_GSO_RING 8
struct tx_gso {
	u64 skb[TX_GSO_RING];
	u64 sk[TX_GSO_RING];
	u32 head;  /* oldest */
	u32 tail;  /* next write */
	u32 seen;  /* the oldest one's segments that reached net_dev_start_xmit */
	u32 pad;
	u64 seg;   /* the segment that started last */
};
BPF_PERCPU_ARRAY(tx_gso_ring, struct tx_gso, 1);

static __always_inline void gso_arm(u64 skb, u64 sk)
{
	u32 zero = 0;
	struct tx_gso *g = tx_gso_ring.lookup(&zero);
	if (!g)
		return;
	u32 tail = g->tail;
	if (tail - g->head >= TX_GSO_RING) { /* full: the oldest was sent elsewhere or lost */
		g->head = tail - TX_GSO_RING + 1;
		g->seen = 0;
	}
	g->skb[tail & (TX_GSO_RING - 1)] = skb;
	g->sk[tail & (TX_GSO_RING - 1)] = sk;
	g->tail = tail + 1;
}

/* The oldest armed GSO skb still in flight, dropping those that are not (closed elsewhere, or
 * their address taken by another packet); 0 when none. */
static __always_inline struct tx_entry *gso_oldest(struct tx_gso *g)
{
#pragma unroll
	for (int i = 0; i < TX_GSO_RING; i++) {
		u32 head = g->head;
		if (head == g->tail)
			return 0;
		u32 k = head & (TX_GSO_RING - 1);
		struct tx_entry *e = tx_find(g->skb[k]);
		if (e && e->sk == g->sk[k])
			return e;
		g->head = head + 1;
		g->seen = 0;
	}
	return 0;
}

/* net_dev_start_xmit of an armed GSO skb itself: the device takes it whole. */
static __always_inline void gso_not_cut(u64 skb)
{
	u32 zero = 0;
	struct tx_gso *g = tx_gso_ring.lookup(&zero);
	if (!g || g->head == g->tail)
		return;
#pragma unroll
	for (int i = 0; i < TX_GSO_RING; i++) {
		u32 head = g->head;
		if (head == g->tail)
			return;
		g->head = head + 1; /* older ones before it were not cut here either */
		g->seen = 0;
		if (g->skb[head & (TX_GSO_RING - 1)] == skb)
			return;
	}
}

/* net_dev_start_xmit of an skb no entry knows: a segment of the oldest armed GSO skb? */
static __always_inline void gso_segment_start(u64 skb)
{
	u32 zero = 0;
	struct tx_gso *g = tx_gso_ring.lookup(&zero);
	if (!g || g->head == g->tail)
		return; /* nothing armed: the common case costs one per-CPU lookup */
	struct tx_entry *e = gso_oldest(g);
	u64 sk = 0;
	if (!e)
		return;
	READ(sk, skb, OFF_SKB_SK);
	if (sk != e->sk)
		return;
	if (!g->seen)
		e->t_start = bpf_ktime_get_ns();
	g->seen += 1;
	g->seg = skb;
}

static __always_inline void tx_close(void *ctx, struct tx_entry *e);

/* net_dev_xmit of an skb no entry knows: the last segment of the oldest armed GSO skb closes it. */
static __always_inline void gso_segment_done(void *ctx, u64 skb)
{
	u32 zero = 0;
	struct tx_gso *g = tx_gso_ring.lookup(&zero);
	if (!g || g->head == g->tail || g->seg != skb)
		return;
	struct tx_entry *e = gso_oldest(g);
	if (!e || g->seen < e->segs)
		return;
	g->head += 1;
	g->seen = 0;
	g->seg = 0;
	tx_close(ctx, e);
}

/* kprobe/fentry plans: sock_sendmsg(sock, msg) / __sock_sendmsg, the socket layer (L5) starts a
 * send. Only a moment per thread: whether the send is TCP, wanted and sampled is decided in
 * tx_begin and tx_queue, which record the stage with the send's first packet. */
static __always_inline void tx_sock(u64 sock)
{
	u64 id = bpf_get_current_pid_tgid();
	struct cursor *c = cursor_get(id, 0);
	u64 sk = 0;

	if (!c) {
		if (!task_wanted(id))
			return;
		c = cursor_get(id, 1);
		if (!c)
			return;
	}
	READ(sk, sock, OFF_SOCKET_SK);
	c->sock_sk = sk;
	c->t_sock = bpf_ktime_get_ns();
}

/* Start of a send syscall's TCP work for (thread, sk), or with ``udp`` (kprobe/fentry plans:
 * udp_sendmsg / udpv6_sendmsg) a UDP datagram's, whose packets are told apart at net_dev_queue
 * (TX_UDP_L4). */
static __always_inline void tx_begin(u64 sk, int udp)
{
	u64 id = cursor_id();
	struct cursor *c = cursor_get(id, 0);

	/* later loop iterations of the same send (tcp_sendmsg_locked): keep the first moment. A
	 * sock_sendmsg since the last call (t_sock) means a new send: the previous one's end was
	 * missed (a skipped fexit/kretprobe run, counted in "missed") and left its socket behind. */
	if (c && c->sk == sk && !c->t_sock)
		return;
	if (!task_wanted(id))
		return;
	if (!c)
		c = cursor_get(id, 1);
	if (!c) {
		/* task storage refuses to create while another program on this CPU holds it (a
		 * preempted one): this send's packets will look deferred, say so */
		count(PATH_SEND, CTR_MISSED, 1);
		return;
	}
	c->sk = sk;
	c->first_total = 0;
	c->segs = 0;
	c->t_l3 = 0;
	/* --sample: decided once per send syscall; an unfollowed send still marks its socket so
	 * that its packets are not mistaken for deferred ones, and costs no clock read */
	c->skip = !sampled();
	c->l5 = 0;
	c->udp = udp;
	if (!c->skip) {
		c->t = bpf_ktime_get_ns();
		if (c->t_sock && c->sock_sk == sk && c->t - c->t_sock < AGE_LIMIT_NS)
			c->l5 = c->t - c->t_sock;
	}
	c->t_sock = 0;
}

#ifdef HAVE_PKT_FILTER
/* A UDP send under a port/address filter: the datagram's headers decide (HAVE_PKT_FILTER). UDP
 * is sent in the sender's own syscall on its CPU (udp_sendmsg -> dev_queue_xmit), so the decision
 * is kept per CPU for that thread and socket: for the send's end (tx_end's socket accounting) and
 * for the datagram's later IP fragments, which carry no ports. */
struct udp_tx_mark {
	u64 pid_tgid;
	u64 sk;
	u64 wanted;
};
BPF_PERCPU_ARRAY(udp_tx_marks, struct udp_tx_mark, 1);
#endif

/* The filters for a packet at net_dev_queue: UDP by its headers (under a port/address filter;
 * ``parsed``: what pkt_parse returned for ``ph``), anything else by its socket. */
static __always_inline int tx_wanted(u64 sk, struct skinfo *si, int parsed, struct pkt_hdr *ph)
{
#ifdef HAVE_PKT_FILTER
	if (si->protocol == PROTO_UDP) {
		u64 id = bpf_get_current_pid_tgid();
		u32 zero = 0;
		struct udp_tx_mark *m = udp_tx_marks.lookup(&zero);
		int w = pkt_wanted(parsed, ph, 1);
		if (w == PKT_FRAGMENT)
			w = m && m->pid_tgid == id && m->sk == sk && m->wanted;
		else if (w == PKT_NOT_UDP)
			w = sk_wanted(sk, si);
		w = w && sk_owner_wanted(sk, si);
		if (m) {
			m->pid_tgid = id;
			m->sk = sk;
			m->wanted = w;
		}
		return w;
	}
#endif
	return sk_wanted(sk, si);
}

/* The row a send call on socket sk counts in (tx_end): sock_row's; but under a port/address
 * filter a UDP send counts when its datagram passed them at net_dev_queue (the mark tx_wanted
 * left), whatever the socket's own ports say. */
static __always_inline struct sock_stats *tx_end_row(u64 sk, u64 id)
{
#ifdef HAVE_PKT_FILTER
	struct skinfo si = {};
	if (sk_info(sk, &si) && si.protocol == PROTO_UDP) {
		u32 zero = 0;
		struct udp_tx_mark *m = udp_tx_marks.lookup(&zero);
		int wanted = 0;
		if (m && m->pid_tgid == id && m->sk == sk) {
			m->sk = 0; /* consumed: one send, one datagram */
			wanted = m->wanted;
		}
		/* a socket that passes the filters itself sends only datagrams that do */
		if (!wanted && !sk_wanted(sk, &si))
			return 0;
		return sock_entry(sk, &si, id);
	}
#endif
	return sock_row(sk, id);
}

/* A packet we do not follow may reuse the address of one we did and never completed: make sure
 * the old entry cannot pair with it. */
static __always_inline void tx_forget(u64 skb)
{
	struct tx_entry *old = tx_find(skb);
	if (old)
		old->t_queue = 0;
}

/* The process filters for a packet at net_dev_queue: a packet of the send in progress passed them
 * at its start (tx_begin); UDP is sent in the sender's own context; any other packet of a socket
 * leaves outside its process (ACK clocking, timers): vouched for by the socket's owner, known once
 * the process made a send or receive call on it (the socket table). */
static __always_inline int tx_task_wanted(u64 sk, struct skinfo *si, int mine, u64 id)
{
#ifdef PROCESS_FILTER
	if (mine)
		return 1;
	if (si->protocol == PROTO_UDP)
		return task_wanted(id);
	return sockets.lookup(&sk) != 0;
#else
	return 1;
#endif
}

/* net_dev_queue: first sight of the packet below L3. Every packet the filters select is counted on
 * the path here, followed or not (--sample thins the latency figures only); a followed one is
 * classified in-syscall / deferred / UDP and keyed by its address. */
static __always_inline void tx_queue(u64 skb)
{
	u64 sk = 0;
	struct skinfo si = {};

	READ(sk, skb, OFF_SKB_SK);
	if (!sk) {
		tx_forget(skb);
		return;
	}
	u64 id = bpf_get_current_pid_tgid();
	struct cursor *c = cursor_get(id, 0);
	int mine = c && c->sk == sk;
	/* A packet of the TCP send in progress (tcp_sendmsg_locked named its socket): read nothing
	 * from the socket unless a socket filter needs it. A UDP send's datagram (kprobe/fentry
	 * plans: c->udp) needs its socket's protocol and its header. */
	if (!(mine && !c->udp) && !sk_info(sk, &si)) {
		tx_forget(skb);
		return;
	}
	/* a UDP datagram's own header: its ends for the filters and its peer (read here, where the
	 * skb is certainly alive: after net_dev_xmit a NIC's completion may free it) */
	struct pkt_hdr ph = {};
	int parsed = si.protocol == PROTO_UDP ? pkt_parse(skb_ip_header(skb), &ph) : PKT_NOT_UDP;
	if (!tx_wanted(sk, &si, parsed, &ph) || !dev_wanted(skb) || !tx_task_wanted(sk, &si, mine, id)) {
		tx_forget(skb);
		return;
	}
	struct skb_size sz;
	skb_size(skb, &sz);
	count_packet(PATH_SEND, sz.len, sz.segs);
	/* sampling: in-syscall packets follow their send's decision, others decide here */
	if (mine ? c->skip : !sampled()) {
		tx_forget(skb);
		return;
	}
	u64 now = bpf_ktime_get_ns();
	int in_syscall = mine && now - c->t < AGE_LIMIT_NS;
	int udp_l4 = in_syscall && c->udp; /* a datagram of the udp_sendmsg in progress */
	/* The send's own data sits in page fragments (tcp_sendmsg copies only into frags), so
	 * data_len > 0. A linear skb leaving in the window is TCP's own control packet, such as the
	 * ACK sent when release_sock() processes the socket backlog: not this send's data. */
	in_syscall = in_syscall && !c->udp && sz.data_len > 0;

	struct tx_entry e = {.skb = skb, .t_queue = now, .sk = sk, .pid_tgid = id, .len = sz.len,
			     .segs = sz.segs};

	if (in_syscall) {
		e.flags = TX_IN_SYSCALL;
		e.t_begin = c->t;
		if (!c->segs && c->l5) /* the send's first packet carries its socket layer time */
			record(PATH_SEND, SLOT_SEND_SOCK, c->l5);
		c->segs += 1;
		record(PATH_SEND, SLOT_SEND_TCP_IP, now - c->t);
		if (c->t_l3 > c->t) { /* kprobe plan: split at ip_queue_xmit, filters applied here */
			record(PATH_SEND, SLOT_SEND_TCP, c->t_l3 - c->t);
			record(PATH_SEND, SLOT_SEND_IP, now - c->t_l3);
			e.t_l3 = c->t_l3;
			c->t_l3 = 0; /* used: tx_close may move the cursor again */
		}
#ifdef TX_L3_HOOK
		else {
			/* its ip_queue_xmit run was skipped (a kprobe under a NIC's softirq, as on
			 * receive): timed in total, not in the TCP/IP split */
			count(PATH_SEND, CTR_MISSED, 1);
		}
#endif
	} else if (si.protocol == PROTO_UDP) {
		e.flags = TX_UDP;
		if (udp_l4) {
			e.flags |= TX_UDP_L4;
			e.t_begin = c->t;
		}
		if (parsed == 1)
			peer_of(&ph, 1, &e.peer);
	}
	struct tx_entry *slot = tx_slot(skb);
	if (!slot)
		return;
	/* A live entry here is a packet in flight overwritten: another address in the same slot, or
	 * this very address, freed and reused after it passed net_dev_queue but never net_dev_xmit
	 * (seen behind a tbf qdisc, about one packet in 2000): either way its record is lost. */
	if (slot->t_queue && now - slot->t_queue < AGE_LIMIT_NS)
		count(PATH_SEND, CTR_EVICTED, 1);
	*slot = e;
	/* without a qdisc that queues it (noqueue, or one bypassed while empty) the packet goes on
	 * to the device, and is cut there if it must be, on this CPU now */
	if (sz.segs > 1)
		gso_arm(skb, sk);
}

#ifdef HOOK_QDISC_DEQUEUE
/* qdisc_dequeue(qdisc, txq, packets, skb): a qdisc hands these ``packets`` skbs (a list from skb
 * on: a bulk dequeue under BQL) to the device, on this CPU, now: each is cut there if it must be,
 * in that order. What this CPU armed at net_dev_queue went into a qdisc instead (or was sent
 * already): each is armed again at its own dequeue, here or on another CPU; but a packet whose
 * segments are partly sent stays first (the qdisc hands its other segments out again first). */
static __always_inline void tx_dequeue(u64 skb, int packets)
{
	u32 zero = 0;
	struct tx_gso *g = tx_gso_ring.lookup(&zero);
	if (!g)
		return;
	if (g->seen && g->head != g->tail)
		g->tail = g->head + 1; /* cut and partly sent: the driver handed the rest back (requeue) */
	else {
		g->head = g->tail;
		g->seen = 0;
	}
#pragma unroll
	for (int i = 0; i < TX_GSO_RING; i++) {
		if (!skb || i >= packets)
			return;
		struct tx_entry *e = tx_find(skb);
		if (e && e->segs > 1)
			gso_arm(skb, e->sk);
		u64 next = 0;
		READ(next, skb, OFF_SKB_NEXT);
		skb = next;
	}
}
#endif

/* kprobe plan: ip_queue_xmit(sk, skb) splits L4 from L3 for in-syscall TCP packets. */
static __always_inline void tx_l3(u64 sk, u64 skb)
{
	u64 id = bpf_get_current_pid_tgid();
	struct cursor *c = cursor_get(id, 0);
	if (!c || c->sk != sk)
		return;
	/* per thread: the skb is keyed only from net_dev_queue on, where the stages are recorded
	 * (after the filters and the sampling decision) */
	c->t_l3 = bpf_ktime_get_ns();
}

static __always_inline void tx_start(u64 skb)
{
	struct tx_entry *e = tx_find(skb);
	if (!e) {
		gso_segment_start(skb);
		return;
	}
	if (!e->t_start)
		e->t_start = bpf_ktime_get_ns();
	if (e->segs > 1)
		gso_not_cut(skb);
}

/* The sampled event of a packet the device took (tx_done): its stages, total and sender. */
static __always_inline void tx_event(void *ctx, struct tx_entry *v, u64 now, u64 qdisc, u64 device,
				     u64 total, int deferred)
{
	struct event ev = {.time_ns = now, .path = PATH_SEND, .len = v->len, .deferred = deferred};
	ev.stages_ns[SLOT_SEND_TCP_IP] = (v->flags & TX_IN_SYSCALL) ? v->t_queue - v->t_begin : 0;
	ev.stages_ns[SLOT_SEND_QDISC] = qdisc;
	ev.stages_ns[SLOT_SEND_DEVICE] = device;
	if ((v->flags & TX_IN_SYSCALL) && v->t_l3 > v->t_begin)
		ev.l3_ns = v->t_queue - v->t_l3; /* kprobe plan: the IP part of stages_ns[SLOT_SEND_TCP_IP] */
	ev.total_ns = total;
	if (!deferred) /* a deferred packet leaves outside its sender's context */
		event_task(&ev, v->pid_tgid);
	emit(ctx, &ev, v->sk, &v->peer); /* family 0 unless a UDP datagram (tx_queue) */
}

/* A UDP datagram the device took: its socket's row for the peer it went to. */
static __always_inline void tx_peer(struct tx_entry *v, u64 total)
{
	if (!v->peer.family) /* a later IP fragment, or not UDP over IP */
		return;
	struct peer_stats *p = peer_row(v->sk, &v->peer, 1);
	if (!p)
		return;
	__sync_fetch_and_add(&p->tx_packets, 1);
	__sync_fetch_and_add(&p->tx_bytes, v->len);
	__sync_fetch_and_add(&p->tx_ns, total);
}

/* The device took the packet of entry e (net_dev_xmit; a software-cut packet's last segment):
 * close qdisc, device and total. */
static __always_inline void tx_close(void *ctx, struct tx_entry *e)
{
	u64 now = bpf_ktime_get_ns();
	struct tx_entry v = *e;
	e->t_queue = 0; /* done */

	if (now - v.t_queue > AGE_LIMIT_NS) {
		count(PATH_SEND, CTR_STALE, 1);
		return;
	}
	u64 qdisc = v.t_start ? v.t_start - v.t_queue : 0;
	u64 device = v.t_start ? now - v.t_start : 0;
	u64 total = now - v.t_queue;
	int deferred = 0;

	if (v.flags & TX_IN_SYSCALL) {
		total = now - v.t_begin;
		if (v.t_start) {
			record(PATH_SEND, SLOT_SEND_QDISC, qdisc);
			record(PATH_SEND, SLOT_SEND_DEVICE, device);
		}
		record(PATH_SEND, SLOT_SEND_TOTAL, total);
		u64 id = bpf_get_current_pid_tgid();
		if (id == v.pid_tgid) {
			struct cursor *c = cursor_get(id, 0);
			if (c && c->sk == v.sk) {
				if (c->segs == 1)
					c->first_total = total;
				/* the next segment's stack time starts here; not while one is between
				 * ip_queue_xmit and net_dev_queue (this close ran in a softirq on top of
				 * its sender: a software-cut packet's last segment) */
				if (c->t_l3 <= c->t)
					c->t = now;
			}
		}
	} else if (v.flags & TX_UDP) {
		record(PATH_SEND, SLOT_SEND_UDP_L2, total);
		if (v.flags & TX_UDP_L4) /* from udp_sendmsg: the sender's own syscall down to the device */
			record(PATH_SEND, SLOT_SEND_UDP, now - v.t_begin);
		count(PATH_SEND, CTR_UDP, 1);
		tx_peer(&v, total);
	} else {
		record(PATH_SEND, SLOT_SEND_DEFERRED, total);
		count(PATH_SEND, CTR_DEFERRED, 1);
		deferred = 1;
	}

	if (event_allowed(PATH_SEND, now))
		tx_event(ctx, &v, now, qdisc, device, total, deferred);
}

/* net_dev_xmit(skb) */
static __always_inline void tx_done(void *ctx, u64 skb)
{
	struct tx_entry *e = tx_find(skb);
	if (e)
		tx_close(ctx, e);
	else
		gso_segment_done(ctx, skb);
}

/* sock_send_length: end of a send syscall (any socket family; cheap exit for others). Every call
 * on a TCP or UDP socket is counted in its row, followed or not (sock_count); the histogram takes
 * the first packet's send total of a followed TCP send. */
static __always_inline void tx_end(u64 sk, int ret)
{
	u64 id = bpf_get_current_pid_tgid();
	struct cursor *c = cursor_get(id, 0);
	u64 first_total = 0;

	if (c && c->sk == sk) {
		if (!c->skip)
			first_total = c->first_total;
		c->sk = 0;
	}
	if (ret <= 0 && !first_total)
		return;
	if (!task_wanted(id))
		return;
	struct sock_stats *s = tx_end_row(sk, id);
	if (!s)
		return;
	sock_count(s, PATH_SEND, sk, s->protocol, ret > 0 ? ret : 0);
	sock_time(s, PATH_SEND, first_total);
}
