// SPDX-License-Identifier: GPL-2.0
/*
 * netlat_tp.bpf.c: the tracepoint plan. Stable tracepoints attached as RAW tracepoints: cheaper
 * than ordinary ones (no argument marshalling), arguments are the TP_PROTO pointers, and struct
 * fields are read at BTF offsets. Argument order follows include/trace/events/{net,tcp,sock,skb}.h.
 */

/* tcp_sendmsg_locked(sk, msg, skb, size_goal): skb is the write-queue TAIL before a new skb is
 * allocated, often NULL or an older skb, so it only marks "TCP got the data" for (thread, sk). */
RAW_TRACEPOINT_PROBE(tcp_sendmsg_locked)
{
	tx_begin(ctx->args[0], 0);
	return 0;
}

/* net_dev_queue(skb) */
RAW_TRACEPOINT_PROBE(net_dev_queue)
{
	tx_queue(ctx->args[0]);
	return 0;
}

#ifdef HOOK_QDISC_DEQUEUE
/* qdisc_dequeue(qdisc, txq, packets, skb) */
RAW_TRACEPOINT_PROBE(qdisc_dequeue)
{
	tx_dequeue(ctx->args[3], (int)ctx->args[2]);
	return 0;
}
#endif

/* net_dev_start_xmit(skb, dev) */
RAW_TRACEPOINT_PROBE(net_dev_start_xmit)
{
	tx_start(ctx->args[0]);
	return 0;
}

/* net_dev_xmit(skb, rc, dev, skb_len) */
RAW_TRACEPOINT_PROBE(net_dev_xmit)
{
	tx_done(ctx, ctx->args[0]);
	return 0;
}

/* sock_send_length(sk, ret, flags) */
RAW_TRACEPOINT_PROBE(sock_send_length)
{
	tx_end(ctx->args[0], (int)ctx->args[1]);
	return 0;
}

/* netif_rx(skb): loopback and veth deliver here (first sight on receive) */
RAW_TRACEPOINT_PROBE(netif_rx)
{
	rx_first_sight(ctx->args[0]);
	return 0;
}

#ifdef HOOK_NAPI_GRO
/* napi_gro_receive_entry(skb): first sight on NICs */
RAW_TRACEPOINT_PROBE(napi_gro_receive_entry)
{
	rx_first_sight(ctx->args[0]);
	return 0;
}
#endif

/* netif_receive_skb(skb) */
RAW_TRACEPOINT_PROBE(netif_receive_skb)
{
	rx_l2_done(ctx->args[0]);
	return 0;
}

/* tcp_probe(sk, skb) */
RAW_TRACEPOINT_PROBE(tcp_probe)
{
	rx_tcp_sock(ctx->args[0], ctx->args[1]);
	return 0;
}

/* sk_data_ready(sk) */
RAW_TRACEPOINT_PROBE(sk_data_ready)
{
	rx_ready(ctx->args[0]);
	return 0;
}

/* skb_copy_datagram_iovec(skb, len) */
RAW_TRACEPOINT_PROBE(skb_copy_datagram_iovec)
{
	rx_copy(ctx->args[0]);
	return 0;
}

/* sock_recv_length(sk, ret, flags) */
RAW_TRACEPOINT_PROBE(sock_recv_length)
{
	rx_end(ctx, ctx->args[0], (int)ctx->args[1], ctx->args[2]);
	return 0;
}

/* inet_sock_set_state(sk, oldstate, newstate): a TCP socket's row takes its final counts and
 * leaves the table after TCP_CLOSE */
RAW_TRACEPOINT_PROBE(inet_sock_set_state)
{
	sock_state(ctx->args[0], (int)ctx->args[2]);
	return 0;
}
