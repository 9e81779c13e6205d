"""UDP as services use it, on the real kernel: unconnected sockets, many peers, batched and segmented I/O.

A DNS resolver, QUIC or statsd server answers many peers on one unconnected socket; its clients are
unconnected too (remote 0.0.0.0:0, an ephemeral local port). Filters on ports and addresses must
match the datagrams' own headers, so ``--port`` on the service port keeps both halves of every
exchange and nothing on another port. Counts are checked against what the test programs sent and
received. Other loads may run on this machine: every figure is taken on a filtered port.
"""

from __future__ import annotations

import ctypes
import json
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from netns import VethPair
from test_probes import assert_counted, count, free_port, probes  # tests/kernel is on sys.path

from tui.model.snapshot import PEERS_SHOWN, RECV, SEND, Snapshot

pytestmark = pytest.mark.kernel

N = 200


def _udp_socket(family: int, bind: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((bind, 0))
    sock.settimeout(5)
    return sock


def exchange(client: socket.socket, server: socket.socket, count_: int, size: int = 100) -> None:
    """``count_`` request/response exchanges between two unconnected sockets (sendto/recvfrom),
    as a resolver and its client do: the server answers whoever asked."""
    target = server.getsockname()[:2]
    for _ in range(count_):
        client.sendto(b"q" * size, target)
        data, peer = server.recvfrom(65536)
        server.sendto(data, peer)
        client.recvfrom(65536)


def unconnected_rr(bind: str, count_: int) -> tuple[int, int, int]:
    """``exchange`` on two new sockets; (server port, client port, exchanges done)."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    server, client = _udp_socket(family, bind), _udp_socket(family, bind)
    with server, client:
        exchange(client, server, count_)
        return server.getsockname()[1], client.getsockname()[1], count_


class OtherTraffic:
    """Unconnected UDP exchanges on other ports, in a thread, while the test's own run."""

    def __init__(self, bind: str) -> None:
        self.bind, self.done, self.exchanges = bind, threading.Event(), 0
        self.ports: set[int] = set()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.done.is_set():
            server_port, client_port, n = unconnected_rr(self.bind, 20)
            self.ports |= {server_port, client_port}
            self.exchanges += n

    def __enter__(self) -> OtherTraffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=30)


@pytest.mark.parametrize("bind", ["127.0.0.1", "::1"])
def test_port_filter_keeps_both_halves_of_unconnected_exchanges_and_no_other_port(bind: str) -> None:
    """--port on the service port: the client's requests (to the port) and the server's replies
    (from it) are all counted, on both paths and in both sockets' rows; a concurrent flow on
    other ports never is."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    # The service port is known before the probes start (the filter is compiled in).
    with _udp_socket(family, bind) as hold:
        port = hold.getsockname()[1]
    server, client = socket.socket(family, socket.SOCK_DGRAM), _udp_socket(family, bind)
    server.bind((bind, port))
    server.settimeout(5)
    with server, client, probes(port=str(port)) as source, OtherTraffic(bind) as other:
        exchange(client, server, N)
        client_port = client.getsockname()[1]
        time.sleep(0.05)
        other.done.set()
        other.thread.join(timeout=30)
        snap = source.poll()
    assert other.exchanges > 0 and port not in other.ports
    # Every datagram of both halves, once: the requests and the replies.
    assert_counted(snap, SEND, "udp_l2", 2 * N)
    assert snap.path(SEND).counters["udp"] == 2 * N
    for key in ("backlog", "ip_tcp", "stack", "udp_e2e"):
        assert_counted(snap, RECV, key, 2 * N)
    assert count(snap, SEND, "total") == count(snap, RECV, "e2e") == 0  # no TCP
    # Both sockets, and no other: the client's row is kept though its own ports are not the port.
    rows = {s.lport: s for s in snap.sockets}
    assert set(rows) == {port, client_port}, sorted(rows)
    for row in rows.values():
        assert (row.protocol, row.family, row.tx_packets, row.rx_packets) == (
            "UDP", 6 if ":" in bind else 4, N, N)
        assert row.recv_hist.total == N
    assert rows[client_port].rport == 0  # unconnected: its socket names no peer
    # The event log has both paths' datagrams, each naming its own peer (not the unconnected
    # socket's 0.0.0.0:0); a received one carries its first sight to the end of its read.
    ends = {(port, client_port), (client_port, port)}
    for path in (SEND, RECV):
        events = [e for e in snap.events if e.path == path]
        assert events, f"no sampled {path} event"
        for e in events:
            assert e.protocol == "UDP" and (e.lport, e.rport) in ends and e.raddr == bind, e
    for e in (e for e in snap.events if e.path == RECV):
        assert set(e.stages_ns) == {"backlog", "ip_tcp"} and e.total_ns > sum(e.stages_ns.values()), e


@pytest.mark.parametrize(("which", "half"), [("lport", "server"), ("rport", "client"), ("addr", "both")])
def test_lport_rport_and_addr_match_each_datagram_s_own_ends(which: str, half: str) -> None:
    """--lport P keeps what the server's socket sends from P and receives at P (the server's half),
    --rport P what goes to P and comes from P (the client's half), --addr both."""
    server, client = _udp_socket(socket.AF_INET, "127.0.0.2"), _udp_socket(socket.AF_INET, "127.0.0.2")
    port = server.getsockname()[1]
    value = {"lport": str(port), "rport": str(port), "addr": "127.0.0.2"}[which]
    with server, client, probes(**{which: value}) as source:
        exchange(client, server, N)
        snap = source.poll()
        client_port = client.getsockname()[1]
    per_half = {"server": N, "client": N, "both": 2 * N}[half]
    assert_counted(snap, SEND, "udp_l2", per_half)
    assert_counted(snap, RECV, "udp_e2e", per_half)
    kept = {"server": {port}, "client": {client_port}, "both": {port, client_port}}[half]
    rows = {s.lport: (s.tx_packets, s.rx_packets) for s in snap.sockets if s.lport in (port, client_port)}
    assert rows == {p: (N, N) for p in kept}


#: Run inside a namespace: ``exchange`` on the namespace's loopback with the server on PORT.
_RR_IN_NS = """
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("127.0.0.1", port))
client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
client.bind(("127.0.0.1", 0))
for _ in range(count):
    client.sendto(b"q" * 100, ("127.0.0.1", port))
    data, peer = server.recvfrom(65536)
    server.sendto(data, peer)
    client.recvfrom(65536)
"""


def test_port_with_netns_keeps_the_namespace_s_datagrams_only(veth: VethPair) -> None:
    """The same port in two namespaces at once: --port P --netns A keeps A's 2N datagrams, not
    this namespace's: the header decides the port, the socket still decides the namespace."""
    with _udp_socket(socket.AF_INET, "127.0.0.1") as here:
        port = here.getsockname()[1]
        client = _udp_socket(socket.AF_INET, "127.0.0.1")
        with client, probes(port=str(port), netns=veth.ns_a) as source:
            there = _in_ns(veth, veth.ns_a, _RR_IN_NS, port, N)
            exchange(client, here, N)
            _out, err = there.communicate(timeout=60)
            assert there.returncode == 0, err
            snap = source.poll()
    assert_counted(snap, SEND, "udp_l2", 2 * N)
    assert_counted(snap, RECV, "udp_e2e", 2 * N)
    assert all(s.netns_name == veth.ns_a for s in snap.sockets) and len(snap.sockets) == 2


# ---- batched I/O: sendmmsg / recvmmsg ----


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(_Iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint)]


_LIBC = ctypes.CDLL(None, use_errno=True)


class Batch:
    """``vlen`` messages for sendmmsg/recvmmsg: one buffer and one peer address (sockaddr) each."""

    def __init__(self, vlen: int, size: int) -> None:
        self.vlen, self.size = vlen, size
        self.bufs = [ctypes.create_string_buffer(size) for _ in range(vlen)]
        self.names = [ctypes.create_string_buffer(128) for _ in range(vlen)]
        self.iovs = (_Iovec * vlen)()
        self.msgs = (_Mmsghdr * vlen)()
        for i in range(vlen):
            self.iovs[i] = _Iovec(ctypes.cast(self.bufs[i], ctypes.c_void_p), size)
            self.msgs[i].hdr.iov = ctypes.pointer(self.iovs[i])
            self.msgs[i].hdr.iovlen = 1

    def _call(self, fn: str, sock: socket.socket, flags: int) -> int:
        n = getattr(_LIBC, fn)(sock.fileno(), self.msgs, self.vlen, flags, None)
        if n < 0:
            raise OSError(ctypes.get_errno(), f"{fn} failed")
        return n

    def send_to(self, sock: socket.socket, peers: list[bytes]) -> int:
        """sendmmsg of every message, message i to sockaddr ``peers[i]``."""
        for i, peer in enumerate(peers):
            ctypes.memmove(self.names[i], peer, len(peer))
            self.msgs[i].hdr.name = ctypes.cast(self.names[i], ctypes.c_void_p)
            self.msgs[i].hdr.namelen = len(peer)
            self.iovs[i].len = self.size
        return self._call("sendmmsg", sock, 0)

    def recv_all(self, sock: socket.socket) -> list[bytes]:
        """recvmmsg until all ``vlen`` messages arrived (a blocking socket waits for them); returns
        each message's sender (sockaddr bytes)."""
        for i in range(self.vlen):
            self.msgs[i].hdr.name = ctypes.cast(self.names[i], ctypes.c_void_p)
            self.msgs[i].hdr.namelen = 128
        got = self._call("recvmmsg", sock, 0)
        assert got == self.vlen and all(self.msgs[i].len == self.size for i in range(got))
        return [self.names[i].raw[: self.msgs[i].hdr.namelen] for i in range(got)]


def _sockaddr(sock: socket.socket) -> bytes:
    """The sockaddr of a bound IPv4/IPv6 socket, as the kernel writes it."""
    host, port = sock.getsockname()[:2]
    if sock.family == socket.AF_INET:
        return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton(host) + bytes(8)
    return (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, 0)
            + socket.inet_pton(socket.AF_INET6, host) + struct.pack("=I", 0))


@pytest.mark.parametrize("bind", ["127.0.0.1", "::1"])
def test_sendmmsg_and_recvmmsg_batches_count_and_time_every_datagram(bind: str) -> None:
    """ROUNDS rounds of a BATCH-datagram sendmmsg from an unconnected client to the service port,
    one recvmmsg of the whole batch on the server, a sendmmsg of the replies, one recvmmsg on the
    client: every datagram of every batch is counted on both paths and timed to its read."""
    rounds, batch = 10, 32
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    server, client = _udp_socket(family, bind), _udp_socket(family, bind)
    port, client_port = server.getsockname()[1], client.getsockname()[1]
    server.settimeout(None)  # recvmmsg blocks until the whole batch is there
    client.settimeout(None)
    to_server = [_sockaddr(server)] * batch
    out, back = Batch(batch, 100), Batch(batch, 100)
    with server, client, probes(port=str(port)) as source:
        for _ in range(rounds):
            assert out.send_to(client, to_server) == batch
            peers = back.recv_all(server)
            assert back.send_to(server, peers) == batch
            out.recv_all(client)
        snap = source.poll()
    datagrams = 2 * rounds * batch
    assert_counted(snap, SEND, "udp_l2", datagrams)
    for key in ("stack", "udp_e2e"):
        assert_counted(snap, RECV, key, datagrams)
    assert snap.path(RECV).counters["evicted"] == 0
    rows = {s.lport: s for s in snap.sockets}
    assert set(rows) == {port, client_port}
    for row in rows.values():
        assert (row.tx_packets, row.rx_packets, row.recv_hist.total) == (
            rounds * batch, rounds * batch, rounds * batch)


# ---- UDP GSO (UDP_SEGMENT) and GRO over veth ----

SOL_UDP, UDP_SEGMENT, UDP_GRO = 17, 103, 104

#: Run inside a namespace: receive until COUNT datagrams (or read calls with UDP_GRO) or a quiet
#: second, print what was read.
_RECEIVER = """
import json, socket, sys
bind, port, gro = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
if gro:
    s.setsockopt(17, 104, 1)
s.bind((bind, port))
print(json.dumps({"ready": True}), flush=True)
s.settimeout(5)
reads = nbytes = 0
try:
    while True:
        data = s.recv(65536)
        reads += 1
        nbytes += len(data)
        s.settimeout(1)
except socket.timeout:
    pass
print(json.dumps({"reads": reads, "bytes": nbytes}), flush=True)
"""

#: Run inside a namespace: SENDS sendto calls of SEGS * SIZE bytes with UDP_SEGMENT = SIZE.
_SENDER = """
import json, socket, sys, time
target, port, sends, segs, size = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:6])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(17, 103, size)
for _ in range(sends):
    assert s.sendto(b"g" * (segs * size), (target, port)) == segs * size
    time.sleep(0.002)
print(json.dumps({"sent": sends, "port": s.getsockname()[1]}), flush=True)
"""


def _in_ns(pair: VethPair, ns: str, code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code, *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def veth() -> Iterator[VethPair]:
    with VethPair() as pair:
        yield pair


SENDS, SEGS, SEG_SIZE = 20, 8, 1000


def _segmented_sends(veth: VethPair, gro: bool) -> tuple[dict, Snapshot]:
    """SENDS sendto calls with UDP_SEGMENT from namespace B to A, each one skb of SEGS datagrams on
    the wire, under --port; (what the receiver read, the snapshot)."""
    port = free_port()
    receiver = _in_ns(veth, veth.ns_a, _RECEIVER, veth.ip_a, port, int(gro))
    try:
        assert receiver.stdout is not None and json.loads(receiver.stdout.readline())["ready"]
        with probes(port=str(port)) as source:
            sender = _in_ns(veth, veth.ns_b, _SENDER, veth.ip_a, port, SENDS, SEGS, SEG_SIZE)
            _out, err = sender.communicate(timeout=60)
            assert sender.returncode == 0, err
            got, err = receiver.communicate(timeout=60)
            assert receiver.returncode == 0, err
            snap = source.poll()
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    read = json.loads(got.strip().splitlines()[-1])
    read["port"] = port
    assert read["bytes"] == SENDS * SEGS * SEG_SIZE
    assert read["reads"] == (SENDS if gro else SENDS * SEGS)
    return read, snap


@pytest.mark.parametrize("gro", [False, True], ids=["plain-receiver", "udp-gro-receiver"])
def test_udp_segment_send_over_veth_is_one_skb_timed_once_each_way(veth: VethPair, gro: bool) -> None:
    """The veth carries each GSO skb whole; a plain receiver's socket gets SEGS datagrams of it
    (the kernel segments it before queueing), a UDP_GRO receiver the skb whole. Each path counts
    and times the skb once; the receiver's row counts its reads."""
    read, snap = _segmented_sends(veth, gro)
    send, recv = snap.path(SEND).counters, snap.path(RECV).counters
    assert (send["packets"], send["udp"], recv["packets"]) == (SENDS, SENDS, SENDS)
    assert_counted(snap, SEND, "udp_l2", SENDS)
    assert_counted(snap, RECV, "stack", SENDS)
    # a plain receiver: the skb is closed by the read of its first datagram (the queue's tail
    # when it was split), its other datagrams are not timed
    assert_counted(snap, RECV, "udp_e2e", SENDS)
    rows = {s.lport: s for s in snap.sockets}
    assert rows[read["port"]].rx_packets == read["reads"]
    assert [s.tx_packets for p, s in rows.items() if p != read["port"]] == [SENDS]  # one per call


def test_udp_segment_send_over_veth_counts_wire_segments(veth: VethPair) -> None:
    """Both units on both paths: 20 skbs, 160 wire segments (the skbs' gso_segs)."""
    _read, snap = _segmented_sends(veth, gro=True)
    send, recv = snap.path(SEND).counters, snap.path(RECV).counters
    assert (send["packets"], send["segs"]) == (SENDS, SENDS * SEGS)
    assert (recv["packets"], recv["segs"]) == (SENDS, SENDS * SEGS)


# ---- many peers ----


@pytest.mark.parametrize("bind", ["127.0.0.1", "::1"])
def test_a_server_with_50_peers_shows_each_peer_with_its_counts_and_times(bind: str) -> None:
    """One unconnected server socket, 50 unconnected clients, ROUNDS exchanges each: the server's
    row has 50 peers (the busiest PEERS_SHOWN listed), each with its datagrams both ways and a
    mean time; each client's row has the server as its one peer; nothing dropped."""
    peers_n, rounds = 50, 4
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    server = _udp_socket(family, bind)
    port = server.getsockname()[1]
    clients = [_udp_socket(family, bind) for _ in range(peers_n)]
    try:
        with probes(port=str(port)) as source:
            for i, client in enumerate(clients):
                exchange(client, server, rounds + (i == 0))  # the first client is the busiest
            snap = source.poll()
    finally:
        server.close()
        client_ports = [c.getsockname()[1] for c in clients]
        for c in clients:
            c.close()
    rows = {s.lport: s for s in snap.sockets}
    srv = rows[port]
    assert (srv.peer_count, srv.peer_drops, len(srv.peers)) == (peers_n, 0, PEERS_SHOWN)
    assert srv.peers[0].port == client_ports[0] and srv.peers[0].tx_packets == rounds + 1
    for p in srv.peers:
        assert p.addr == bind and p.port in client_ports
        assert p.tx_packets == p.rx_packets and p.rx_bytes > 0
        assert p.tx_mean_ns and p.rx_mean_ns and p.rx_max_ns >= p.rx_mean_ns
    assert sum(p.tx_packets for p in srv.peers) == rounds * PEERS_SHOWN + 1
    for i, cport in enumerate(client_ports):
        mine = rows[cport]
        assert mine.peer_count == 1 and mine.peers[0].port == port
        assert mine.peers[0].tx_packets == mine.peers[0].rx_packets == rounds + (i == 0)


def test_a_full_peer_table_refuses_new_peers_and_counts_their_datagrams(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With room for 40 rows, 50 clients of one server: each of the first 20 takes two rows (its
    own row for the server, the server's row for it); the other 30 get none, and the server's
    row counts their datagrams both ways as dropped."""
    from tui.bpf import program

    monkeypatch.setattr(program, "PEERS_MAX", 40)
    peers_n, rounds = 50, 4
    server = _udp_socket(socket.AF_INET, "127.0.0.1")
    port = server.getsockname()[1]
    clients = [_udp_socket(socket.AF_INET, "127.0.0.1") for _ in range(peers_n)]
    with server, probes(port=str(port)) as source:
        for client in clients:
            exchange(client, server, rounds)
        snap = source.poll()
        for c in clients:
            c.close()
    srv = next(s for s in snap.sockets if s.lport == port)
    assert (srv.peer_count, srv.peer_drops) == (20, 30 * rounds * 2)
    assert sum(s.peer_count for s in snap.sockets) == 40
    # the rows it has are complete: a row is taken at a peer's first datagram
    assert all(p.tx_packets == p.rx_packets == rounds for p in srv.peers)
