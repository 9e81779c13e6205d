"""Figure checks on what a probe plan measured in the guest (the files tests/vm/guest/plan_checks.py writes).

Shared by the guest test modules so the kprobe and the tracepoint plan face the same checks: exact
packet counts on the filtered port, stage sums against totals, the filter excluding other traffic,
per-socket addresses, and a tbf delay that must land in the qdisc stage and nowhere else.
Also renders the stage-by-stage comparison of two plans.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from tui.model.histogram import bucket_bounds

#: Stage means are bucket midpoints (log-linear buckets, 8 per power of two): a sum of stage means
#: may differ from the total's mean by a few percent without anything being wrong.
SUM_TOLERANCE = 0.15
#: A delayed packet is one slower than this fraction of the expected tbf wait (low enough that a
#: bucket straddling half the wait still counts; far above the stages' own times, even under TCG).
DELAYED_FRACTION = 0.3
#: Skipped probe runs beyond this in one scenario mean a broken counter, not a busy vCPU.
MAX_MISSED = 100

Doc = dict[str, Any]


def summary(result: Doc, scenario: str) -> Doc:
    return result["scenarios"][scenario]["summary"]


def truth(result: Doc, scenario: str) -> Doc:
    return result["scenarios"][scenario]["truth"]


def specs(doc: Doc, path: str) -> list[Doc]:
    return doc["plan"]["stages"][path]


def stage_keys(doc: Doc, path: str) -> list[str]:
    return [s["key"] for s in specs(doc, path) if not s["total"]]


def stat(doc: Doc, path: str, key: str) -> Doc:
    p = doc["paths"][path]
    return p["stages"][key] if key in p["stages"] else p["totals"][key]


def missed(doc: Doc, path: str, ceiling: int = MAX_MISSED) -> int:
    """Runs of the path's programs the kernel skipped, or hooks that lost their state (the engine's
    "missed" counter): each may be one packet missing from a count, on any port.

    The trixie-backports kernel preempts fully (preempt=full, lazy) and the guest has one vCPU: a
    task preempted inside one of our programs makes the next task that hits the same hook skip it
    (the kernel's recursion check is per program and per CPU). Seen: 0-4 per 400 packets on send,
    0-20 on receive, more when the host is busy. Over the NICs the kprobe plan's runs skipped by
    kprobe re-entry are counted too (hundreds of 2000 on a loaded host): there the ceiling is what
    the witness kprobes saw skipped, plus MAX_MISSED (missed_ceiling).
    """
    n = doc["paths"][path]["counters"].get("missed", 0)
    assert n <= ceiling, f"{path}: {n} probe runs skipped, more than {ceiling}: the counter is wrong"
    return n


def chain(doc: Doc, path: str, total_key: str) -> list[str]:
    """The stages that tile a total: from its opening event to its closing one, end to end."""
    by_open = {s["opens"]: s for s in specs(doc, path) if not s["total"]}
    total = next(s for s in specs(doc, path) if s["key"] == total_key)
    keys, at = [], total["opens"]
    while at != total["closes"]:
        nxt = by_open.get(at)
        assert nxt is not None, f"{path} {total_key}: no stage opens at {at} ({stage_keys(doc, path)})"
        keys.append(nxt["key"])
        at = nxt["closes"]
        assert len(keys) <= 8, f"{path} {total_key}: stage chain does not close"
    return keys


def count_at_least(st: Doc, threshold_us: float) -> int:
    """Samples whose bucket lies wholly at or above ``threshold_us``."""
    sub_bits = st["sub_bits"]
    floor_ns = threshold_us * 1000
    return sum(c for i, c in st["buckets"].items() if bucket_bounds(int(i), sub_bits)[0] >= floor_ns)


def median_at_least(st: Doc, threshold_us: float) -> float | None:
    """Median (us, bucket midpoint) of the samples at or above ``threshold_us``."""
    sub_bits = st["sub_bits"]
    rows = sorted((bucket_bounds(int(i), sub_bits), c) for i, c in st["buckets"].items())
    rows = [(b, c) for b, c in rows if b[0] >= threshold_us * 1000]
    half, seen = sum(c for _, c in rows) / 2, 0
    for (low, high), c in rows:
        seen += c
        if seen >= half:
            return (low + high) / 2 / 1000
    return None


def failure_reason(stderr: str) -> str:
    """The line that says why a guest step failed (BCC prints the verifier log before it), plus the tail."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    said = [line for line in lines if line.startswith(("netlat-tui:", "plan_checks:", "tui.", "Exception"))]
    words = ("invalid", "unbounded", "Permission denied")
    verifier = [line for line in lines if any(w in line for w in words)]
    return " | ".join(dict.fromkeys(said[-2:] + verifier[-2:])) or "\n".join(lines[-15:])


# --------------------------------------------------------------------------------------------------
# the checks (each raises AssertionError with the figures when it fails)


def sent_in_syscall_ok(got: int, t: Doc, skipped: int) -> bool:
    """Each request and response is one data segment sent inside its send(); the kernel's own count
    (TCP_INFO) confirms it. A retransmission (rare, TCG can stall a vCPU past the loss-probe timer)
    may land inside a later send syscall, so each one allows one more; each probe run the kernel
    reports skipped (``missed``) allows one less."""
    packets = 2 * t["exchanges"]
    assert t["data_segs_out"] == packets + t["retrans"], f"TCP_INFO disagrees with the traffic: {t}"
    return packets - skipped <= got <= packets + t["retrans"]


def each_counted(got: int, expected: int, skipped: int) -> bool:
    """``expected`` exactly, less at most the probe runs the kernel reported skipped."""
    return expected - skipped <= got <= expected


def socket_counted(s: Doc, key: str, t: Doc, skipped: int) -> bool:
    """A TCP socket row's packets: one per exchange each way. Sent packets are the kernel's own
    data_segs_out, which counts a retransmitted segment again (a TCG vCPU stall can fire the loss
    probe; behind the tbf one was seen): each retransmission of the scenario allows one more."""
    extra = t.get("retrans", 0) if key == "tx_packets" and s["protocol"] == "TCP" else 0
    return t["exchanges"] - skipped <= s[key] <= t["exchanges"] + extra


def check_loopback_counts(result: Doc) -> None:
    """Every request and every response is one packet, counted once in every stage."""
    doc, t = summary(result, "loopback"), truth(result, "loopback")
    _check_send_counts(doc, t, "")
    _check_recv_counts(doc, t, "")


def _check_send_counts(doc: Doc, t: Doc, label: str, ceiling: int = MAX_MISSED) -> None:
    """Request/response: every send stage and the send total count each message's packet once."""
    packets = 2 * t["exchanges"]
    tx_missed = missed(doc, "send", ceiling)
    for key in ("total", *stage_keys(doc, "send")):
        got = stat(doc, "send", key)["count"]
        assert sent_in_syscall_ok(got, t, tx_missed), \
            f"{label}send {key}: {got} packets, expected {packets} " \
            f"({t['retrans']} retrans, {tx_missed} missed)"


def _check_recv_counts(doc: Doc, t: Doc, label: str, ceiling: int = MAX_MISSED) -> None:
    """Request/response: every receive stage counts each message's packet once."""
    packets = 2 * t["exchanges"]
    rx_missed = missed(doc, "recv", ceiling)
    # Each read returns one whole message: the L5 stages and e2e count each message once.
    for key in ("e2e", *[k for k in stage_keys(doc, "recv") if k in ("sock_queue", "copy")]):
        got = stat(doc, "recv", key)["count"]
        assert each_counted(got, packets, rx_missed), \
            f"{label}recv {key}: {got}, expected {packets} ({rx_missed} missed)"
    # The stack stages also see the connection's last packet (FIN), nothing else on this port.
    for key in ("stack", *chain(doc, "recv", "stack")):
        got = stat(doc, "recv", key)["count"]
        assert packets - rx_missed <= got <= packets + 2, \
            f"{label}recv {key}: {got}, expected {packets} (+2) ({rx_missed} missed)"


def check_loopback_sockets(result: Doc) -> None:
    """The filter keeps exactly the two sockets of the filtered port, each with its own exchanges."""
    doc, t = summary(result, "loopback"), truth(result, "loopback")
    port, other = str(t["port"]), str(t["other_port"])
    ports = [(s["local"].rsplit(":", 1)[1], s["remote"].rsplit(":", 1)[1]) for s in doc["sockets"]]
    assert not [p for p in ports if other in p], f"the filter let port {other} through: {ports}"
    busy = [s for s in doc["sockets"] if s["tx_packets"] or s["rx_packets"]]
    assert len(busy) == 2, busy
    for s in busy:
        assert port in (s["local"].rsplit(":", 1)[1], s["remote"].rsplit(":", 1)[1]), s
        assert s["local"].startswith("127.0.0.1:") and s["remote"].startswith("127.0.0.1:"), s
        assert socket_counted(s, "tx_packets", t, missed(doc, "send")), (s, missed(doc, "send"), t)
        assert each_counted(s["rx_packets"], t["exchanges"], missed(doc, "recv")), (s, missed(doc, "recv"))


def check_udp(result: Doc) -> None:
    """Every UDP datagram (requests and responses) timed once to the read that took it; peeks are
    not reads; nothing lands in TCP's stages or goes stale."""
    doc, t = summary(result, "udp"), truth(result, "udp")
    datagrams, rx_missed = 2 * t["exchanges"], missed(doc, "recv")
    got = stat(doc, "recv", "udp_e2e")["count"]
    assert each_counted(got, datagrams, rx_missed), \
        f"udp_e2e: {got}, expected {datagrams} ({rx_missed} missed)"
    assert stat(doc, "recv", "e2e")["count"] == 0, "UDP datagrams in TCP's end to end"
    assert doc["paths"]["recv"]["counters"]["stale"] == 0
    udp = [s for s in doc["sockets"] if s["protocol"] == "UDP" and (s["tx_packets"] or s["rx_packets"])]
    assert len(udp) == 2, udp
    tx_missed = missed(doc, "send")
    for s in udp:
        assert each_counted(s["rx_packets"], t["exchanges"], rx_missed), f"peeks counted as reads? {s}"
        # every send call counts, the connected client's send() and the server's sendto() alike
        assert each_counted(s["tx_packets"], t["exchanges"], tx_missed), f"UDP sends: {s}"
    if "udp" in [x["key"] for x in specs(doc, "send")]:
        # function plans: each datagram timed from udp_sendmsg down to the device, once, and that
        # takes at least its net_dev_queue -> device part (UDP L2; means of bucket midpoints)
        sent = stat(doc, "send", "udp")
        assert each_counted(sent["count"], datagrams, tx_missed), \
            f"UDP send: {sent['count']}, expected {datagrams} ({tx_missed} missed)"
        l2 = stat(doc, "send", "udp_l2")
        assert each_counted(l2["count"], datagrams, tx_missed), l2
        assert sent["mean_us"] >= (1 - SUM_TOLERANCE) * l2["mean_us"], (sent, l2)


ALL_TOTALS = (("send", "total"), ("recv", "stack"), ("recv", "e2e"))


def check_stage_sums(result: Doc, scenario: str, totals: tuple[tuple[str, str], ...] = ALL_TOTALS) -> None:
    """The stages between a total's two events add up to the total (means; bucket rounding allowed)."""
    doc = summary(result, scenario)
    for path, total_key in totals:
        keys = chain(doc, path, total_key)
        total = stat(doc, path, total_key)["mean_us"]
        parts = sum(stat(doc, path, k)["mean_us"] or 0.0 for k in keys)
        assert total, f"{scenario}: {path} {total_key} is empty"
        assert abs(parts - total) <= SUM_TOLERANCE * total, \
            f"{scenario} {path}: {' + '.join(keys)} = {parts:.1f} us, {total_key} = {total:.1f} us"


def check_veth_counts(result: Doc) -> None:
    """Over the veth pair: every request and response counted; the sockets carry the namespace addresses."""
    for scenario in ("veth", "tbf"):
        doc, t = summary(result, scenario), truth(result, scenario)
        packets = 2 * t["exchanges"]
        tx_missed, rx_missed = missed(doc, "send"), missed(doc, "recv")
        for key in ("total", *stage_keys(doc, "send")):
            got = stat(doc, "send", key)["count"]
            assert sent_in_syscall_ok(got, t, tx_missed), f"{scenario} send {key}: {got} packets, " \
                f"expected {packets} ({t['retrans']} retrans, {tx_missed} missed)"
        got = stat(doc, "recv", "e2e")["count"]
        assert each_counted(got, packets, rx_missed), \
            f"{scenario} recv e2e: {got} reads, expected {packets} ({rx_missed} missed)"
        busy = [s for s in doc["sockets"] if s["tx_packets"] or s["rx_packets"]]
        assert len(busy) == 2, f"{scenario}: {busy}"
        for s in busy:
            addrs = (s["local"], s["remote"])
            assert all(a.startswith("10.231.0.") for a in addrs), f"{scenario}: {s}"
            for key, path in (("tx_packets", "send"), ("rx_packets", "recv")):
                assert socket_counted(s, key, t, missed(doc, path)), \
                    f"{scenario}: {s} ({missed(doc, path)} {path} runs missed)"


def check_tbf_delay(result: Doc, scenario: str = "tbf", plain_scenario: str = "veth") -> None:
    """Each request waits behind its filler in the tbf: that wait is in qdisc, and only there."""
    expected = truth(result, scenario)["expected_wait_us"]
    slow = DELAYED_FRACTION * expected
    tbf, plain = summary(result, scenario), summary(result, plain_scenario)
    qdisc = stat(tbf, "send", "qdisc")
    requests = truth(result, scenario)["exchanges"]
    # Only the client's requests cross the tbf (the responses leave the other namespace's veth).
    # One in twenty either way: a request may slip through undelayed (seen once on the host, cause
    # not pinned down), and under TCG the host can stall a vCPU for milliseconds between two hooks.
    delayed = count_at_least(qdisc, slow)
    assert abs(delayed - requests) <= requests // 20, \
        f"{delayed} qdisc samples >= {slow} us, expected {requests}: {qdisc['buckets']}"
    waited = median_at_least(qdisc, slow)
    assert 0.8 * expected <= waited <= 1.5 * expected, f"median wait {waited} us, expected {expected} us"
    # Under TCG a vCPU stall can hold a packet that long without any tbf (seen: 1 in 2000 over the
    # NICs with two vCPUs; 1 in 120 over the veth pair once, one vCPU on a host loaded by three
    # other guests): one per 500 packets and at least one, far from the 60 a misplaced wait makes.
    unqueued = stat(plain, "send", "qdisc")
    stray = count_at_least(unqueued, slow)
    assert stray <= max(1, unqueued["count"] // 500), f"{stray} slow qdisc samples without tbf"
    # Any other stage: had it taken the wait, every request (60 more samples) would sit near the
    # expected wait there. Under TCG a reader's wake-up alone can take milliseconds (socket queue:
    # 17 to 41 more such samples seen with tbf than without), so the reader's own stages (socket
    # queue, and e2e which holds it) are left to the host test, where wake-ups take microseconds
    # (tests/kernel/test_probes.py, tbf test); for the rest allow half the requests.
    near = 0.8 * expected
    for path in ("send", "recv"):
        for key in stage_keys(tbf, path):
            if (path, key) in (("send", "qdisc"), ("recv", "sock_queue"), ("recv", "e2e")):
                continue
            with_tbf = count_at_least(stat(tbf, path, key), near)
            without = count_at_least(stat(plain, path, key), near)
            allowed = without + requests // 2
            assert with_tbf <= allowed, f"{path} {key} took the tbf wait: {with_tbf} slow ({without} without)"


def check_socket_layer(result: Doc) -> None:
    """Function plans time the socket layer of a send (sock_sendmsg -> tcp_sendmsg) as its own L5
    stage: one sample per send (each send here is one packet), a small part of the send's time."""
    doc, t = summary(result, "loopback"), truth(result, "loopback")
    send = specs(doc, "send")
    sock = [s for s in send if s["key"] == "sock"]
    assert sock and sock[0]["layer"] == "L5", f"no L5 send stage: {[s['key'] for s in send]}"
    got = stat(doc, "send", "sock")
    assert sent_in_syscall_ok(got["count"], t, missed(doc, "send")), f"send sock: {got['count']}"
    assert 0 < got["mean_us"] < stat(doc, "send", "total")["mean_us"], got


def check_fentry_hooks(result: Doc, fallback_allowed: tuple[str, ...]) -> None:
    """The fentry plan hooked its functions with fentry/fexit; only the named hooks may have fallen
    back to a kprobe."""
    hooks = result["hooks"]
    kinds = {kind for _hook, _sym, kind in hooks}
    assert "fentry" in kinds, hooks
    fell_back = sorted({hook for hook, _sym, kind in hooks if kind in ("kprobe", "kretprobe")})
    assert set(fell_back) <= set(fallback_allowed), f"fell back to kprobes: {fell_back}"


def cost_table(results: dict[str, Doc]) -> str:
    """Markdown: per program, ns per run and runs per exchange of each plan (BPF_ENABLE_STATS over
    the same 1-byte request/response exchanges on loopback)."""
    names = sorted({n for r in results.values() for n in r.get("cost", {}).get("programs", {})},
                   key=lambda n: n.split("__")[-1].removeprefix("kp_").removeprefix("kr_"))
    lines = ["| program | " + " | ".join(f"{p} ns/run | {p} runs/exchange" for p in results) + " |",
             "|---|" + "---|---|" * len(results)]
    for name in names:
        row = [name]
        for r in results.values():
            prog = r.get("cost", {}).get("programs", {}).get(name)
            n = r.get("cost", {}).get("exchanges") or 1
            row += [str(prog["ns_per_run"]), f"{prog['runs'] / n:.2f}"] if prog else ["", ""]
        lines.append("| " + " | ".join(row) + " |")
    totals = ["**per exchange**"]
    for r in results.values():
        progs, n = r.get("cost", {}).get("programs", {}), r.get("cost", {}).get("exchanges") or 1
        totals += [f"{sum(p['ns'] for p in progs.values()) / n:.0f} ns",
                   f"{sum(p['runs'] for p in progs.values()) / n:.1f}"]
    lines.append("| " + " | ".join(totals) + " |")
    return "\n".join(lines)


def check_clean_exit(result: Doc) -> None:
    """close() leaves no kprobe and no BPF program behind."""
    assert result["kprobes_after_close"] == [], result["kprobes_after_close"]
    if result.get("bpf_progs_before") is not None:
        assert result["bpf_progs_after_close"] == result["bpf_progs_before"]


# --------------------------------------------------------------------------------------------------
# over the guest's own two virtio-net NICs (scenarios nic, nic_bulk, nic_tbf: tests/vm/guest/nics.py)

#: the NICs' addresses (inside their two namespaces only)
NIC_NET = "10.232.0."
#: request/response scenarios over the NICs
NIC_EXCHANGES = ("nic", "nic_tbf")

#: Engine faults the NIC scenarios show (strict xfails: the day one is fixed, its test fails and
#: asks for the mark to go). Each test module adds what it measured on its kernel.
KPROBE_NIC_LOSS = (
    "kprobe plan, NIC receive: a receive softirq run on interrupt or RPS-IPI exit on top of one of "
    "our process-context kprobe handlers makes the kernel skip our kprobes on tcp_v4_rcv and "
    "sock_def_readable (kprobe re-entry: counted in the kprobe's nmissed, which our witness kprobe "
    "on sock_def_readable shares, not in the program's recursion_misses), so the message is lost "
    "from every receive stage (the engine counts it in 'missed' when it is read)."
)


def nic_scenario(result: Doc, scenario: str) -> Doc:
    """A NIC scenario's record; fails with the guest's words when the NICs or the scenario failed."""
    setup = result.get("nic_setup")
    assert setup is not None, "the guest ran without its NICs (run_in_guest(nics=True))"
    assert "error" not in setup, setup["error"]
    found = result["scenarios"].get(scenario)
    assert found is not None, f"no {scenario} scenario in the guest's result"
    assert "error" not in found, found["error"]
    return found


def evidence(result: Doc, scenario: str) -> Doc:
    """The kernel's own counters around a NIC scenario (plan_checks.Evidence)."""
    return nic_scenario(result, scenario)["evidence"]


def runs(ev: Doc, hook: str) -> int:
    """Runs of our program on a tracepoint: ``rtp_<hook>`` in the kprobe plan, ``<hook>`` in the other."""
    return sum(n for name, n in ev["runs"].items() if name in (hook, f"rtp_{hook}"))


def missed_ceiling(ev: Doc) -> int:
    """How many skipped runs a NIC scenario's "missed" may report: MAX_MISSED, plus what the kernel
    skipped under our witness kprobes (the kprobe plan's runs lost to kprobe re-entry), plus the
    runs of our programs the kernel itself says it skipped in the scenario (recursion_misses, read
    by the harness: on the one-vCPU preempt=full 7.3 a task preempted inside the send-end program,
    12-124 per 2000 exchanges as the host's load goes)."""
    return (MAX_MISSED + sum(w.get("misses", 0) for w in ev["witness"].values())
            + sum(ev.get("misses", {}).values()))


def _check_nic_sockets(doc: Doc, t: Doc, scenario: str, key: str, path: str, ceiling: int) -> None:
    busy = [s for s in doc["sockets"] if s["tx_packets"] or s["rx_packets"]]
    assert len(busy) == 2, f"{scenario}: {busy}"
    skipped = missed(doc, path, ceiling)
    for s in busy:
        assert s["local"].startswith(NIC_NET) and s["remote"].startswith(NIC_NET), f"{scenario}: {s}"
        assert socket_counted(s, key, t, skipped), \
            f"{scenario}: {s} ({skipped} {path} runs missed, {t.get('retrans')} retrans)"


def check_nic_counts(result: Doc, path: str) -> None:
    """Over the NICs, every request and response counted once in every stage of ``path`` and by its
    socket, less only what ``missed`` reports; the sockets carry the NICs' addresses. Send: qdisc,
    TX ring, TX completion; receive: interrupt, NAPI poll, GRO, the RPS backlog."""
    check_counts, key = {"send": (_check_send_counts, "tx_packets"),
                         "recv": (_check_recv_counts, "rx_packets")}[path]
    for scenario in NIC_EXCHANGES:
        nic_scenario(result, scenario)
        doc, t = summary(result, scenario), truth(result, scenario)
        ceiling = missed_ceiling(evidence(result, scenario))
        check_counts(doc, t, f"{scenario} ", ceiling)
        _check_nic_sockets(doc, t, scenario, key, path, ceiling)


def check_nic_first_sight(result: Doc) -> None:
    """A NIC's packets never pass netif_rx: first sight is napi_gro_receive_entry, and received
    packets are timed from there (the backlog stage has samples)."""
    ev, doc, t = evidence(result, "nic"), summary(result, "nic"), truth(result, "nic")
    packets = 2 * t["exchanges"]
    # netif_rx may fire for a stray loopback packet elsewhere in the guest (seen: once in 2000)
    assert runs(ev, "netif_rx") <= packets // 100, f"netif_rx ran {runs(ev, 'netif_rx')} times"
    seen = runs(ev, "napi_gro_receive_entry")
    assert seen >= packets, f"napi_gro_receive_entry ran {seen} times for {packets} packets"
    assert stat(doc, "recv", "backlog")["count"] > 0, "no received packet timed from its first sight"


def check_nic_rps(result: Doc) -> None:
    """With two or more CPUs the NICs interrupt CPU 0 and RPS hands every received packet to
    another CPU: the backlog stage is cross-CPU queueing. With one CPU nothing claims otherwise."""
    setup, ev, t = result["nic_setup"], evidence(result, "nic"), truth(result, "nic")
    processed = [c["processed"] for c in ev["softnet"]]
    moved = sum(c["rps"] for c in ev["softnet"])
    masks = [nic["rps_cpus"] for nic in setup["nics"].values()]
    if setup["cpus"] < 2:
        assert moved == 0 and set(masks) <= {"0", "00"}, (masks, ev["softnet"])
        return
    assert all(int(m, 16) & ~1 and not int(m, 16) & 1 for m in masks), f"RPS masks {masks}"
    # CPU 0 may process a stray loopback packet from elsewhere in the guest (seen: one)
    packets = 2 * t["exchanges"]
    assert processed[0] <= packets // 100 and sum(processed[1:]) >= packets, f"softnet processed {processed}"
    assert moved > 0, f"no packet came through RPS: {ev['softnet']}"


def _bulk_sockets(result: Doc) -> tuple[Doc | None, Doc | None]:
    """The engine's records of the bulk sender's and receiver's sockets (None when missing)."""
    doc, t = summary(result, "nic_bulk"), truth(result, "nic_bulk")
    pairs = {(s["local"], s["remote"]): s for s in doc["sockets"]}
    ends = (t["sender"]["local"], t["receiver"]["local"])
    return pairs.get(ends), pairs.get(ends[::-1])


def check_nic_bulk_bytes(result: Doc) -> None:
    """The bulk transfer's sockets against the kernel's TCP_INFO of the same sockets, to the byte:
    the sender's bytes sent and bytes_acked, the receiver's bytes read and bytes_received (and the
    one-byte answer the other way)."""
    nic_scenario(result, "nic_bulk")
    t = truth(result, "nic_bulk")
    sender, receiver = t["sender"], t["receiver"]
    snd, rcv = _bulk_sockets(result)
    assert snd and rcv, f"sockets {sender['local']} <-> {receiver['local']} not in " \
        f"{[(s['local'], s['remote']) for s in summary(result, 'nic_bulk')['sockets']]}"
    # The kernel counts the active opener's SYN in its bytes_acked: one byte of sequence space.
    assert snd["tx_bytes"] == sender["bytes_acked"] - 1 == t["bytes"], (snd, sender)
    assert rcv["rx_bytes"] == receiver["bytes_received"] == t["bytes"], (rcv, receiver)
    assert rcv["tx_bytes"] == 1 and snd["rx_bytes"] == sender["bytes_received"] == 1, (snd, rcv)


def check_nic_bulk_recv_path_bytes(result: Doc) -> None:
    """The receive path's byte counter holds at least the payload the receiver got (it counts
    each received skb's length with its IP and TCP headers, so a little more; a retransmitted
    duplicate too), and its segment counter the data segments tcp_info counts."""
    nic_scenario(result, "nic_bulk")
    doc, t = summary(result, "nic_bulk"), truth(result, "nic_bulk")
    counters = doc["paths"]["recv"]["counters"]
    got, payload = counters["bytes"], t["receiver"]["bytes_received"]
    assert got >= payload, f"receive path counted {got} bytes in {counters['packets']} packets; " \
        f"the receiver got {payload} (tcpi_bytes_received, {t['receiver'].get('data_segs_in')} segments)"
    # TCP segments are counted where TCP takes them (tcp_probe; data-ready after a half-close),
    # as tcp_info's data_segs_in counts them: the receiver's, and the one-byte answer the sender
    # reads after its half-close, exactly
    data_segs_in = t["receiver"]["data_segs_in"] + t["sender"]["data_segs_in"]
    assert counters["segs"] == data_segs_in, f"receive path counted {counters['segs']} segments; " \
        f"tcp_info: {t['receiver']['data_segs_in']} + {t['sender']['data_segs_in']} data segments in"


def check_nic_bulk_send_segments(result: Doc) -> None:
    """Every TCP segment that left a NIC during the bulk transfer is on the send path: the path's
    wire-segment counter (a GSO skb counts its gso_segs at net_dev_queue) against the namespaces'
    own OutSegs (/proc/net/snmp; only this transfer's connection lives there), exactly: the path
    counters count every packet at one hook, whatever is followed. Linux leaves retransmitted
    segments out of OutSegs (RetransSegs counts them); they cross net_dev_queue again."""
    ev, doc = evidence(result, "nic_bulk"), summary(result, "nic_bulk")
    out_segs = sum(v["OutSegs"] + v["RetransSegs"] for v in ev["snmp"].values())
    counters = doc["paths"]["send"]["counters"]
    got, tx_missed = counters["segs"], missed(doc, "send")
    assert out_segs - tx_missed <= got <= out_segs, \
        f"send path counted {got} segments in {counters['packets']} packets; the NICs sent " \
        f"{out_segs} TCP segments (snmp OutSegs + RetransSegs; {tx_missed} missed)"


def check_nic_bulk_send_times_close(result: Doc) -> None:
    """Every bulk packet followed in its send syscall to net_dev_queue is timed to the device: the
    send total has as many samples as the stage that ends at net_dev_queue, less ``missed``."""
    doc = summary(result, "nic_bulk")
    at_queue = next(s["opens"] for s in specs(doc, "send") if s["key"] == "qdisc")  # net_dev_queue
    queued_key = next(s["key"] for s in specs(doc, "send") if not s["total"] and s["closes"] == at_queue)
    queued, closed = stat(doc, "send", queued_key)["count"], stat(doc, "send", "total")["count"]
    counters, tx_missed = doc["paths"]["send"]["counters"], missed(doc, "send")
    # a packet whose stage-opening run was skipped (the kprobe plan's ip_queue_xmit under a NIC
    # softirq) is timed in total but not in that stage, and counted in missed. Up to 2% may stay
    # open, uncounted: a software-cut packet whose segments go out from a bulk dequeue past the
    # 8 skbs the engine walks (7.3, tracepoint plan, once: 100 of 101).
    unclosed = max(2, queued // 50)
    assert queued - tx_missed - unclosed <= closed <= queued + tx_missed, \
        f"{queued} packets reached net_dev_queue in their send ({queued_key}), {closed} timed to the " \
        f"device (total); {counters.get('evicted')} evicted, {tx_missed} missed"


def received_short(result: Doc, scenarios: tuple[str, ...] = NIC_EXCHANGES) -> int:
    """What the plan did not follow to its read in these NIC scenarios, before any allowance:
    messages short of the exchanges' (e2e), for nic_bulk bytes short of tcpi_bytes_received (the
    receiver's, and the sender's one-byte answer: seen lost on 7.3 with the L5 kprobe added)."""
    short = 0
    for scenario in scenarios:
        nic_scenario(result, scenario)
        doc, t = summary(result, scenario), truth(result, scenario)
        if scenario == "nic_bulk":  # the bulk one way, the one-byte answer the other
            snd, rcv = _bulk_sockets(result)
            short += t["receiver"]["bytes_received"] - (rcv["rx_bytes"] if rcv else 0)
            short += t["sender"]["bytes_received"] - (snd["rx_bytes"] if snd else 0)
        else:
            short += 2 * t["exchanges"] - stat(doc, "recv", "e2e")["count"]
    return short


def expect_kprobe_loss(request: pytest.FixtureRequest, result: Doc, reason: str,
                       scenarios: tuple[str, ...] = NIC_EXCHANGES) -> None:
    """Make the running test a strict xfail when it checks the kprobe plan and that plan lost
    received data in these scenarios (KPROBE_NIC_LOSS; check_kprobe_loss_is_skipped_kprobes holds
    the loss to the kprobe runs the kernel skipped). The check fails then; the day the engine
    reports those runs in ``missed`` or stops losing them, it passes and the strict xfail fails,
    asking to be removed. A run without a loss (6.1 has few) faces the check as it is."""
    if result["probes"] == "kprobe" and received_short(result, scenarios) > 0:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


def check_kprobe_loss_is_skipped_kprobes(result: Doc) -> None:
    """Each received message the kprobe plan did not see to its read is a run of the plan's kprobe
    on sock_def_readable that the kernel skipped: at most the misses of our witness kprobe on the
    same function (two kprobes on one address share the kernel's aggregate kprobe, whose every
    miss counts for both), plus what ``missed`` reports."""
    for scenario in NIC_EXCHANGES:
        ev, doc, t = evidence(result, scenario), summary(result, scenario), truth(result, scenario)
        lost = 2 * t["exchanges"] - stat(doc, "recv", "e2e")["count"]
        skipped = ev["witness"]["sock_def_readable"]["misses"]
        reported = missed(doc, "recv", missed_ceiling(ev))
        assert 0 <= lost <= skipped + reported, \
            f"{scenario}: {lost} reads not timed, the kernel skipped {skipped} kprobe runs " \
            f"({reported} missed): {ev['witness']}"


def nic_figures(result: Doc) -> str:
    """One markdown block with a plan's NIC figures: counts, misses, witnesses, bytes, the tbf wait."""
    lines = []
    for scenario in ("nic", "nic_bulk", "nic_tbf"):
        found = result["scenarios"].get(scenario, {})
        if "summary" not in found:
            lines.append(f"- {scenario}: {found.get('error', 'not run')}")
            continue
        doc, ev = found["summary"], found["evidence"]
        counts = {p: {k: v["count"] for group in ("stages", "totals")
                      for k, v in doc["paths"][p][group].items() if v["count"]} for p in ("send", "recv")}
        keep = ("packets", "missed", "evicted", "stale", "deferred")
        counters = {p: {k: v for k, v in doc["paths"][p]["counters"].items() if k in keep}
                    for p in ("send", "recv")}
        lines.append(f"- {scenario}: send {counts['send']} {counters['send']}; recv {counts['recv']} "
                     f"{counters['recv']}; program skips {ev['misses'] or 0}; "
                     f"witness kprobes {ev['witness']}; "
                     f"softnet processed/rps {[(c['processed'], c['rps']) for c in ev['softnet']]}; "
                     f"snmp {ev['snmp']}")
        if scenario == "nic_bulk":
            t = found["truth"]
            socks = [(s["local"], s["tx_bytes"], s["rx_bytes"], s["tx_packets"], s["rx_packets"])
                     for s in doc["sockets"] if s["tx_bytes"] or s["rx_bytes"]]
            lines.append(f"  - sockets (local, tx_bytes, rx_bytes, tx_packets, rx_packets) {socks}; "
                         f"tcp_info sender {t['sender']}; receiver {t['receiver']}")
        if scenario == "nic_tbf":
            qdisc = stat(doc, "send", "qdisc")
            slow = DELAYED_FRACTION * found["truth"]["expected_wait_us"]
            lines.append(f"  - tbf: {count_at_least(qdisc, slow)} qdisc samples >= {slow:.0f} us, "
                         f"median {median_at_least(qdisc, slow)} us, "
                         f"expected {found['truth']['expected_wait_us']} us")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# the comparison for the lead's note


def comparison_table(results: dict[str, Doc], scenario: str) -> str:
    """Markdown: per path, each plan's stages (count, p50, p90, mean in us) side by side."""
    lines = [f"### {scenario}", ""]
    for path in ("send", "recv"):
        lines += [f"{path}:", "", "| plan | stage | events | count | p50 us | p90 us | mean us |",
                  "|---|---|---|---|---|---|---|"]
        for plan, result in results.items():
            doc = summary(result, scenario)
            for s in specs(doc, path):
                st = stat(doc, path, s["key"])
                if not st["count"] and s["total"]:
                    continue
                name = f"**{s['key']}**" if s["total"] else s["key"]
                lines.append(f"| {plan} | {name} | {s['opens']} -> {s['closes']} | {st['count']} | "
                             f"{st['p50_us']} | {st['p90_us']} | {st['mean_us']} |")
        lines.append("")
    return "\n".join(lines)


def _name(check: Any) -> str:
    if isinstance(check, functools.partial):
        return f"{check.func.__name__} {next(iter(check.keywords.values()))}"
    return check.__name__


def main(argv: list[str]) -> int:
    """``python tests/vm/vm_figures.py plan-X.json...``: the loopback/UDP/veth/tbf figure checks on
    plan files measured by hand (e.g. on a suite the tests do not boot); one line per check."""
    import json
    from pathlib import Path

    failed = 0
    for path in argv:
        result = json.loads(Path(path).read_text())
        checks = [check_loopback_counts, check_loopback_sockets, check_udp, check_veth_counts,
                  check_tbf_delay, check_clean_exit]
        checks += [functools.partial(check_stage_sums, scenario=s) for s in ("loopback", "veth", "tbf")]
        if any(s["key"] == "sock" for s in specs(summary(result, "loopback"), "send")):
            checks.append(check_socket_layer)
        if result["probes"] == "fentry":
            checks.append(functools.partial(check_fentry_hooks, fallback_allowed=("ip6_xmit",)))
        for check in checks:
            try:
                check(result)
                print(f"{path}: ok   {_name(check)}")
            except AssertionError as exc:
                failed += 1
                print(f"{path}: FAIL {_name(check)}: {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
