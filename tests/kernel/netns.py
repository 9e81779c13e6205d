"""Network namespaces with a veth pair, and a small request/response traffic script for probe tests.

``VethPair`` creates two namespaces joined by a veth pair and deletes them on exit (and checks they
are gone). Run as a script, this file is the traffic: ``server`` echoes a known number of messages on
one TCP connection, ``client`` sends them (optionally each behind a UDP filler datagram, so a tbf
qdisc makes the request wait a predictable time), both optionally collecting SO_TIMESTAMPING
software timestamps as an independent witness. Each prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import time
from typing import Any

# linux/net_tstamp.h, asm-generic/socket.h, linux/errqueue.h
SO_TIMESTAMPING = 37
SOF_TX_SOFTWARE, SOF_RX_SOFTWARE, SOF_SOFTWARE = 1 << 1, 1 << 3, 1 << 4
SOF_OPT_ID, SOF_TX_SCHED, SOF_OPT_TSONLY = 1 << 7, 1 << 8, 1 << 11
SCM_TSTAMP_SND, SCM_TSTAMP_SCHED = 0, 1
IP_RECVERR = 11
IPV6_RECVERR = 25


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


class VethPair:
    """Namespaces ``<tag>a`` and ``<tag>b`` joined by veth ``<tag>va``/``<tag>vb``, 10.231.N.1/2 and
    fd00:231:7::1/2 (no duplicate address detection, so IPv6 works at once)."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or f"nlp{os.getpid() % 100000}"
        self.ns_a, self.ns_b = f"{self.tag}a", f"{self.tag}b"
        self.dev_a, self.dev_b = f"{self.tag}va", f"{self.tag}vb"
        self.ip_a, self.ip_b = "10.231.7.1", "10.231.7.2"
        self.ip6_a, self.ip6_b = "fd00:231:7::1", "fd00:231:7::2"

    def __enter__(self) -> VethPair:
        try:
            _ip("netns", "add", self.ns_a)
            _ip("netns", "add", self.ns_b)
            _ip("link", "add", self.dev_a, "netns", self.ns_a, "type", "veth",
                "peer", "name", self.dev_b, "netns", self.ns_b)
            for ns, dev, addr, addr6 in ((self.ns_a, self.dev_a, self.ip_a, self.ip6_a),
                                         (self.ns_b, self.dev_b, self.ip_b, self.ip6_b)):
                _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
                _ip("-n", ns, "addr", "add", f"{addr6}/64", "dev", dev, "nodad")
                _ip("-n", ns, "link", "set", dev, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for ns in (self.ns_a, self.ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)

    def __exit__(self, *exc: object) -> None:
        self.close()
        names = _ip("netns", "list")
        assert self.ns_a not in names and self.ns_b not in names, "namespaces left behind"

    def tc(self, ns: str, *args: str) -> None:
        subprocess.run(["tc", "-n", ns, *args], check=True, capture_output=True, text=True)

    def popen(self, ns: str | None, *args: str) -> subprocess.Popen[str]:
        """This file as a script (server/client), inside namespace ``ns`` (None: this namespace)."""
        cmd = [sys.executable, os.path.abspath(__file__), *args]
        if ns is not None:
            cmd = ["ip", "netns", "exec", ns, *cmd]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _serve_and_run(
    helper: VethPair, server_ns: str | None, server_args: tuple[str, ...], client_ns: str | None,
    client_args: tuple[str, ...], timeout: float = 120,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start a server, wait for its port, run the client (``client_args`` then ``--port``) to
    completion; (server, client) results, the server's with its ``port``."""
    server = helper.popen(server_ns, *server_args)
    try:
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        client = helper.popen(client_ns, *client_args, "--port", str(ready["port"]))
        out, err = client.communicate(timeout=timeout)
        assert client.returncode == 0, err
        s_out, s_err = server.communicate(timeout=60)
        assert server.returncode == 0, s_err
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    result = json.loads(s_out.strip().splitlines()[-1])
    result["port"] = ready["port"]
    return result, json.loads(out.strip().splitlines()[-1])


def run_pair(
    server_ns: str | None, client_ns: str | None, bind: str, count: int, size: int,
    extra_client: tuple[str, ...] = (), extra_server: tuple[str, ...] = (), pair: VethPair | None = None,
    port: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Request/response exchanges: start a server, run the client to completion; (server, client)."""
    sizes = ("--count", str(count), "--size", str(size))
    return _serve_and_run(
        pair or VethPair("unused"),
        server_ns, ("server", "--bind", bind, "--port", str(port), *sizes, *extra_server),
        client_ns, ("client", "--connect", bind, *sizes, *extra_client),
    )


def run_bulk(pair: VethPair, family: int, nbytes: int, chunk: int = 1 << 16, port: int = 0
             ) -> tuple[dict, dict]:
    """A bulk TCP transfer of ``nbytes`` from namespace a to b over the veth; (server, client)."""
    bind = pair.ip_b if family == 4 else pair.ip6_b
    return _serve_and_run(
        pair, pair.ns_b, ("bulk-server", "--bind", bind, "--chunk", str(chunk), "--port", str(port)),
        pair.ns_a, ("bulk-client", "--connect", bind, "--bytes", str(nbytes), "--chunk", str(chunk)),
        timeout=300,
    )


# ---- the traffic (script mode) ----


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _recv_exact(sock: socket.socket, size: int, stamps: list[float] | None) -> None:
    """Read exactly ``size`` bytes; with ``stamps``, append (user time - rx software stamp) in ns."""
    got = 0
    while got < size:
        if stamps is None:
            data = sock.recv(size - got)
            if not data:
                raise ConnectionError("peer closed")
            got += len(data)
            continue
        data, anc, _flags, _addr = sock.recvmsg(size - got, 1024)
        now = time.clock_gettime_ns(time.CLOCK_REALTIME)
        if not data:
            raise ConnectionError("peer closed")
        got += len(data)
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(payload) >= 16:
                sec, nsec = struct.unpack_from("qq", payload, 0)
                if sec:
                    stamps.append(now - (sec * 1_000_000_000 + nsec))


def _accept_one(args: argparse.Namespace) -> socket.socket:
    """Listen on --bind/--port, print the port and pid (run_pair waits for that line), accept one."""
    with socket.socket(_family(args.bind), socket.SOCK_STREAM) as lsock:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((args.bind, args.port))
        lsock.listen(1)
        print(json.dumps({"port": lsock.getsockname()[1], "pid": os.getpid()}), flush=True)
        lsock.settimeout(60)
        conn, _ = lsock.accept()
        conn.settimeout(None)
        return conn


def serve(args: argparse.Namespace) -> dict[str, Any]:
    conn = _accept_one(args)
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stamps: list[float] | None = None
        if args.tstamp:
            conn.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, SOF_RX_SOFTWARE | SOF_SOFTWARE)
            stamps = []
        reply = b"r" * args.size
        for _ in range(args.count):
            _recv_exact(conn, args.size, stamps)
            conn.sendall(reply)
        conn.recv(1)  # wait for the client's close so the last exchange is complete
    return {"served": args.count, "pid": os.getpid(), "rx_user_minus_stamp_ns": stamps or []}


def _tx_stamps(sock: socket.socket, family: int) -> dict[int, dict[int, int]]:
    """Drain the error queue: {OPT_ID key: {SCM_TSTAMP_*: realtime ns}}."""
    out: dict[int, dict[int, int]] = {}
    err_level = (socket.IPPROTO_IP, IP_RECVERR) if family == socket.AF_INET else (socket.IPPROTO_IPV6,
                                                                                   IPV6_RECVERR)
    while True:
        try:
            _data, anc, _flags, _addr = sock.recvmsg(1, 1024, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return out
        stamp, info, key = None, None, None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING:
                sec, nsec = struct.unpack_from("qq", payload, 0)
                stamp = sec * 1_000_000_000 + nsec
            elif (level, kind) == err_level:
                _errno, _origin, _type, _code, _pad, info, key = struct.unpack_from("IBBBBII", payload, 0)
        if stamp is not None and info is not None and key is not None:
            out.setdefault(key, {})[info] = stamp


def client(args: argparse.Namespace) -> dict[str, Any]:
    family = _family(args.connect)
    filler = None
    if args.filler_size:
        # unconnected: the peer's ICMP port-unreachable must not turn into send() errors
        filler = socket.socket(family, socket.SOCK_DGRAM)
    with socket.create_connection((args.connect, args.port), timeout=60) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)  # blocking: MSG_DONTWAIT on the error queue must not wait
        if args.tstamp:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING,
                            SOF_TX_SCHED | SOF_TX_SOFTWARE | SOF_SOFTWARE | SOF_OPT_ID | SOF_OPT_TSONLY)
        request = b"q" * args.size
        stamps: dict[int, dict[int, int]] = {}
        for _ in range(args.count):
            if filler is not None:
                filler.sendto(b"f" * args.filler_size, (args.connect, args.filler_port))
            sock.sendall(request)
            _recv_exact(sock, args.size, None)
            if args.gap:
                time.sleep(args.gap)
            if args.tstamp:
                stamps.update(_tx_stamps(sock, family))
        if args.tstamp:
            time.sleep(0.05)
            stamps.update(_tx_stamps(sock, family))
        local_port = sock.getsockname()[1]
    if filler is not None:
        filler.close()
    sched_to_sw = sorted(
        s[SCM_TSTAMP_SND] - s[SCM_TSTAMP_SCHED]
        for s in stamps.values() if SCM_TSTAMP_SND in s and SCM_TSTAMP_SCHED in s
    )
    return {"exchanges": args.count, "pid": os.getpid(), "local_port": local_port,
            "sched_to_sw_ns": sched_to_sw}


# struct tcp_info (include/uapi/linux/tcp.h): the kernel's own counts of a socket, the witness
TCP_INFO_FIELDS = {"bytes_acked": (120, "Q"), "bytes_received": (128, "Q"), "segs_out": (136, "I"),
                   "segs_in": (140, "I"), "data_segs_in": (152, "I"), "data_segs_out": (156, "I")}


def tcp_info(sock: socket.socket) -> dict[str, int]:
    """The counters of getsockopt(TCP_INFO) this file's tests compare with."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return {name: struct.unpack_from(kind, raw, off)[0] for name, (off, kind) in TCP_INFO_FIELDS.items()}


def _ends(sock: socket.socket) -> dict[str, Any]:
    local, remote = sock.getsockname(), sock.getpeername()
    return {"local_port": local[1], "remote_port": remote[1]}


def bulk_serve(args: argparse.Namespace) -> dict[str, Any]:
    """Read one connection to its end; the bytes read and the socket's tcp_info before closing."""
    conn = _accept_one(args)
    with conn:
        buf = bytearray(args.chunk)
        got = reads = 0
        while n := conn.recv_into(buf):
            got += n
            reads += 1
        info, ends = tcp_info(conn), _ends(conn)
        conn.sendall(b"k")  # the client waits for this before its own tcp_info
        return {"received": got, "reads": reads, "tcp_info": info, **ends}


def bulk_client(args: argparse.Namespace) -> dict[str, Any]:
    """Send ``--bytes`` in ``--chunk`` writes, half-close, wait for the server's last byte."""
    with socket.create_connection((args.connect, args.port), timeout=60) as sock:
        sock.settimeout(None)
        data = memoryview(b"b" * args.chunk)
        left = args.bytes
        while left:
            left -= sock.send(data[: min(left, args.chunk)])
        ends = _ends(sock)
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b"k"
        return {"sent": args.bytes, "tcp_info": tcp_info(sock), **ends}


def udp_pair(args: argparse.Namespace) -> dict[str, Any]:
    """``--count`` datagrams from one connected UDP socket to another, all read; both ports."""
    family = _family(args.bind)
    rx = socket.socket(family, socket.SOCK_DGRAM)
    tx = socket.socket(family, socket.SOCK_DGRAM)
    with rx, tx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        rx.bind((args.bind, 0))
        tx.connect(rx.getsockname()[:2])
        rx.settimeout(5)
        payload = b"u" * args.size
        received = 0
        for _ in range(args.count // 64):  # in bursts the receive buffer holds: nothing is dropped
            for _ in range(64):
                tx.send(payload)
            for _ in range(64):
                rx.recv(65536)
                received += 1
        return {"sent": args.count // 64 * 64, "received": received,
                "tx_port": tx.getsockname()[1], "rx_port": rx.getsockname()[1]}


def figures(args: argparse.Namespace) -> dict[str, Any]:
    """Per-stage medians (us) of ``count`` request/response exchanges, for the engine's report."""
    from tui.model.filters import Filters
    from tui.model.summary import snapshot_summary
    from tui.sources.live import LiveSource

    with socket.socket() as probe_port:
        probe_port.bind(("127.0.0.1", 0))
        port = probe_port.getsockname()[1]
    source = LiveSource(filters=Filters.parse(port=str(port)), sample=args.sample)
    source.start()
    try:
        if args.where == "veth":
            with VethPair() as pair:
                run_pair(pair.ns_a, pair.ns_b, pair.ip_a, args.count, args.size, pair=pair, port=port)
        else:
            run_pair(None, None, "127.0.0.1", args.count, args.size, port=port)
        snap = source.poll()
    finally:
        source.close()
    doc = snapshot_summary(snap)
    return {
        "where": args.where, "exchanges": args.count, "size": args.size,
        **{
            path: {key: {"count": st["count"], "p50_us": st["p50_us"], "p99_us": st["p99_us"]}
                   for group in ("stages", "totals") for key, st in data[group].items() if st["count"]}
            for path, data in doc["paths"].items()
        },
    }


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("figures", help="per-stage medians over loopback or veth (needs root)")
    f.add_argument("--where", choices=("loopback", "veth"), default="loopback")
    f.add_argument("--count", type=int, default=5000)
    f.add_argument("--size", type=int, default=64)
    f.add_argument("--sample", type=int, default=1)
    s = sub.add_parser("server")
    s.add_argument("--bind", required=True)
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--tstamp", action="store_true")
    c = sub.add_parser("client")
    c.add_argument("--connect", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--size", type=int, default=64)
    c.add_argument("--gap", type=float, default=0.0)
    c.add_argument("--filler-size", type=int, default=0)
    c.add_argument("--filler-port", type=int, default=9)
    c.add_argument("--tstamp", action="store_true")
    bs = sub.add_parser("bulk-server")
    bs.add_argument("--bind", required=True)
    bs.add_argument("--port", type=int, default=0)
    bs.add_argument("--chunk", type=int, default=1 << 16)
    bc = sub.add_parser("bulk-client")
    bc.add_argument("--connect", required=True)
    bc.add_argument("--port", type=int, required=True)
    bc.add_argument("--bytes", type=int, required=True)
    bc.add_argument("--chunk", type=int, default=1 << 16)
    u = sub.add_parser("udp")
    u.add_argument("--bind", required=True)
    u.add_argument("--count", type=int, required=True)
    u.add_argument("--size", type=int, default=200)
    args = p.parse_args()
    run = {"server": serve, "client": client, "figures": figures, "bulk-server": bulk_serve,
           "bulk-client": bulk_client, "udp": udp_pair}[args.cmd]
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
