"""Guest traffic with exact counts: a TCP request/response server and client, and UDP filler datagrams.

Run as separate processes so each side can live in its own network namespace
(``ip netns exec NS python3 traffic.py ...``). The server prints "ready" once it listens; the client
prints one JSON line with what it did. Bounded: a fixed number of exchanges, socket timeouts.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time

TIMEOUT_S = 30.0
# struct tcp_info (linux/tcp.h): offsets of the fields read here, stable since Linux 4.6.
_TCP_INFO = {"total_retrans": (100, "I"), "bytes_acked": (120, "Q"), "bytes_received": (128, "Q"),
             "segs_out": (136, "I"), "segs_in": (140, "I"), "data_segs_in": (152, "I"),
             "data_segs_out": (156, "I")}
BULK_CHUNK = 65536


def tcp_counts(sock: socket.socket) -> dict[str, int]:
    """The kernel's own counts for this socket (TCP_INFO): data segments sent and received, bytes
    acknowledged by the peer and received from it, retransmissions."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    return {name: struct.unpack_from(fmt, raw, off)[0] for name, (off, fmt) in _TCP_INFO.items()}


def _recv_exact(sock: socket.socket, size: int) -> None:
    view = memoryview(bytearray(size))
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise ConnectionError(f"peer closed after {got} of {size} bytes")
        got += n


def _accept_one(host: str, port: int) -> socket.socket:
    """Listen, say "ready" (the parent waits for it), accept one connection (with a timeout)."""
    with socket.create_server((host, port)) as listener:
        listener.settimeout(TIMEOUT_S)
        print("ready", flush=True)
        conn, _ = listener.accept()
    conn.settimeout(TIMEOUT_S)
    return conn


def serve(host: str, port: int, exchanges: int, request: int, response: int) -> int:
    """Accept one connection and answer ``exchanges`` requests of ``request`` bytes."""
    with _accept_one(host, port) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reply = b"r" * response
        for _ in range(exchanges):
            _recv_exact(conn, request)
            conn.sendall(reply)
        # Wait for the client's close so every segment of ours is acknowledged before we exit.
        conn.recv(1)
        print(json.dumps({"role": "server", **tcp_counts(conn)}), flush=True)
    return 0


def client(host: str, port: int, exchanges: int, request: int, response: int,
           pause_s: float, filler: int, filler_port: int) -> int:
    """``exchanges`` request/response rounds; before each, optionally one UDP filler datagram."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if filler else None
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = b"q" * request
        for _ in range(exchanges):
            if udp is not None:
                # Ahead of the request on the same device: behind a tbf it empties the token bucket.
                udp.sendto(b"f" * filler, (host, filler_port))
            conn.sendall(payload)
            _recv_exact(conn, response)
            if pause_s:
                time.sleep(pause_s)
        counts = tcp_counts(conn)
    if udp is not None:
        udp.close()
    print(json.dumps({"role": "client", "exchanges": exchanges, **counts,
                      "seconds": round(time.monotonic() - started, 3)}), flush=True)
    return 0


def sink(host: str, port: int, size: int) -> int:
    """Bulk receiver: read ``size`` bytes from one connection, take TCP_INFO (everything received,
    no FIN yet), then answer one byte so the sender knows every byte was acknowledged."""
    with _accept_one(host, port) as conn:
        _recv_exact(conn, size)
        counts = tcp_counts(conn)
        conn.sendall(b"k")
        conn.recv(1)  # the sender's close
        host_, port_ = conn.getsockname()
        print(json.dumps({"role": "sink", "local": f"{host_}:{port_}", **counts}), flush=True)
    return 0


def bulk(host: str, port: int, size: int) -> int:
    """Bulk sender: ``size`` bytes in BULK_CHUNK writes, then wait for the receiver's byte (which
    acknowledges all of them) and take TCP_INFO."""
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as conn:
        chunk = b"b" * BULK_CHUNK
        left = size
        while left:
            left -= conn.send(chunk[:min(left, BULK_CHUNK)])
        _recv_exact(conn, 1)
        counts = tcp_counts(conn)
        host_, port_ = conn.getsockname()
        local = f"{host_}:{port_}"
    print(json.dumps({"role": "bulk", "bytes": size, "local": local, **counts,
                      "seconds": round(time.monotonic() - started, 3)}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=("serve", "client", "sink", "bulk"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--exchanges", type=int, default=100)
    parser.add_argument("--request", type=int, default=100)
    parser.add_argument("--response", type=int, default=300)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between exchanges")
    parser.add_argument("--filler", type=int, default=0, help="UDP filler bytes before each request")
    parser.add_argument("--filler-port", type=int, default=9)
    parser.add_argument("--bytes", type=int, default=1 << 20, help="sink/bulk: bytes to transfer")
    a = parser.parse_args(argv)
    if a.role == "sink":
        return sink(a.host, a.port, a.bytes)
    if a.role == "bulk":
        return bulk(a.host, a.port, a.bytes)
    if a.role == "serve":
        return serve(a.host, a.port, a.exchanges, a.request, a.response)
    return client(a.host, a.port, a.exchanges, a.request, a.response, a.pause, a.filler, a.filler_port)


if __name__ == "__main__":
    sys.exit(main())
