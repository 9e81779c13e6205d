// SPDX-License-Identifier: GPL-2.0
/*
 * netlat_kp.bpf.c: the kprobe plan, for kernels with kprobes (most distributions). It writes the
 * same maps and stage slots as the tracepoint plan and adds the L4/L3 boundaries only functions
 * give: ip_queue_xmit (send: TCP -> IP) and tcp_v4_rcv/udp_rcv (receive: IP -> TCP/UDP). It relies
 * only on tracepoints that Linux 5.x/6.1 already have (net:*, tcp:tcp_probe,
 * skb:skb_copy_datagram_iovec); the send/recv syscall ends and data-ready come from functions.
 *
 * Nothing here is auto-attached: tui.sources.live attaches each function to the symbol resolved
 * from /proc/kallsyms (renamed or suffixed copies such as __ip_queue_xmit or ip_rcv.isra.0), so the
 * file also compiles, and is unit-tested, on kernels without kprobes.
 */

#include <uapi/linux/ptrace.h> /* struct pt_regs: the register ABI, not a kernel struct layout */

/* ---- send ---- */

/* sock_sendmsg(sock, msg) / __sock_sendmsg: the socket layer (L5) of a send */
int kp_sock_sendmsg(struct pt_regs *ctx)
{
	tx_sock(PT_REGS_PARM1(ctx));
	return 0;
}

/* tcp_sendmsg(sk, msg, size) / tcp_sendmsg_locked */
int kp_tcp_sendmsg(struct pt_regs *ctx)
{
	tx_begin(PT_REGS_PARM1(ctx), 0);
	return 0;
}

/* The end of the send whose cursor this thread holds (its socket is not an argument at return). */
static __always_inline void send_call_end(struct pt_regs *ctx)
{
	struct cursor *c = cursor_get(cursor_id(), 0);
	if (c && c->sk)
		tx_end(c->sk, (int)PT_REGS_RC(ctx));
}

/* kretprobe tcp_sendmsg: end of the TCP send (sock_send_length on newer kernels) */
int kr_tcp_sendmsg(struct pt_regs *ctx)
{
	send_call_end(ctx);
	return 0;
}

/* udp_sendmsg(sk, msg, len) / udpv6_sendmsg: a UDP send from L4 */
int kp_udp_sendmsg(struct pt_regs *ctx)
{
	tx_begin(PT_REGS_PARM1(ctx), 1);
	return 0;
}

/* kretprobe udp_sendmsg: end of the UDP send (its socket row counts the call) */
int kr_udp_sendmsg(struct pt_regs *ctx)
{
	send_call_end(ctx);
	return 0;
}

/* ip_queue_xmit(sk, skb, fl) / __ip_queue_xmit / ip6_xmit(sk, skb, ...) */
int kp_ip_queue_xmit(struct pt_regs *ctx)
{
	tx_l3(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx));
	return 0;
}

int rtp_net_dev_queue(struct bpf_raw_tracepoint_args *ctx)
{
	tx_queue(ctx->args[0]);
	return 0;
}

#ifdef HOOK_QDISC_DEQUEUE
int rtp_qdisc_dequeue(struct bpf_raw_tracepoint_args *ctx)
{
	tx_dequeue(ctx->args[3], (int)ctx->args[2]);
	return 0;
}
#endif

int rtp_net_dev_start_xmit(struct bpf_raw_tracepoint_args *ctx)
{
	tx_start(ctx->args[0]);
	return 0;
}

int rtp_net_dev_xmit(struct bpf_raw_tracepoint_args *ctx)
{
	tx_done(ctx, ctx->args[0]);
	return 0;
}

/* ---- receive ---- */

int rtp_netif_rx(struct bpf_raw_tracepoint_args *ctx)
{
	rx_first_sight(ctx->args[0]);
	return 0;
}

int rtp_napi_gro_receive_entry(struct bpf_raw_tracepoint_args *ctx)
{
	rx_first_sight(ctx->args[0]);
	return 0;
}

int rtp_netif_receive_skb(struct bpf_raw_tracepoint_args *ctx)
{
	rx_l2_done(ctx->args[0]);
	return 0;
}

/* tcp_v4_rcv(skb) / tcp_v6_rcv / udp_rcv / udpv6_rcv: L4 entry */
int kp_l4_rcv(struct pt_regs *ctx)
{
	rx_l4(PT_REGS_PARM1(ctx));
	return 0;
}

int rtp_tcp_probe(struct bpf_raw_tracepoint_args *ctx)
{
	rx_tcp_sock(ctx->args[0], ctx->args[1]);
	return 0;
}

/* sock_def_readable(sk): what TCP's and UDP's sk_data_ready calls by default */
int kp_data_ready(struct pt_regs *ctx)
{
	rx_ready(PT_REGS_PARM1(ctx));
	return 0;
}

int rtp_skb_copy_datagram_iovec(struct bpf_raw_tracepoint_args *ctx)
{
	rx_copy(ctx->args[0]);
	return 0;
}

/* tcp_recvmsg / udp_recvmsg / udpv6_recvmsg: the read, its socket and flags kept per thread for
 * the return (a blocking read may sleep and move to another CPU), so every read is counted in its
 * socket's row. The flags argument's position changed in 5.19 (the noblock argument went away):
 * TCP_RECVMSG_FLAGS / UDP_RECVMSG_FLAGS come from the functions' BTF. */
struct recv_call {
	u64 sk;
	u64 flags;
};
BPF_TABLE("lru_hash", u64, struct recv_call, recv_calls, 8192);

static __always_inline void recv_call_begin(u64 sk, u64 flags)
{
	u64 id = bpf_get_current_pid_tgid();
	struct recv_call c = {.sk = sk, .flags = flags};
	recv_calls.update(&id, &c);
}

static __always_inline void recv_call_end(void *ctx, int ret)
{
	u64 id = bpf_get_current_pid_tgid();
	struct recv_call *c = recv_calls.lookup(&id);
	if (!c)
		return;
	struct recv_call v = *c;
	recv_calls.delete(&id);
	rx_end(ctx, v.sk, ret, v.flags);
}

int kp_udp_recvmsg(struct pt_regs *ctx)
{
	recv_call_begin(PT_REGS_PARM1(ctx), UDP_RECVMSG_FLAGS(ctx));
	return 0;
}

int kr_udp_recvmsg(struct pt_regs *ctx)
{
	recv_call_end(ctx, (int)PT_REGS_RC(ctx));
	return 0;
}

int kp_tcp_recvmsg(struct pt_regs *ctx)
{
	recv_call_begin(PT_REGS_PARM1(ctx), TCP_RECVMSG_FLAGS(ctx));
	return 0;
}

/* kretprobe tcp_recvmsg: end of the TCP read (sock_recv_length on newer kernels) */
int kr_tcp_recvmsg(struct pt_regs *ctx)
{
	recv_call_end(ctx, (int)PT_REGS_RC(ctx));
	return 0;
}

/* inet_sock_set_state(sk, oldstate, newstate): final counts, and the row leaves after TCP_CLOSE */
int rtp_inet_sock_set_state(struct bpf_raw_tracepoint_args *ctx)
{
	sock_state(ctx->args[0], (int)ctx->args[2]);
	return 0;
}
