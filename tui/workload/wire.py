"""What the loads share on the wire: the loopback address, the TCP set-up (listen, connect, accept),
reads and writes of whole messages, and the kernel's own segment count."""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class TcpSegments:
    """The kernel's own count for one TCP client socket (TCP_INFO): the independent witness."""

    data_segs_out: int
    data_segs_in: int
    segs_out: int
    segs_in: int


# struct tcp_info (include/uapi/linux/tcp.h): u32 segs_out @136, segs_in @140, data_segs_in @152,
# data_segs_out @156; stable uapi, present since 4.6
_TCP_INFO_LEN = 160


def tcp_segments(sock: socket.socket) -> TcpSegments:
    """Segments the kernel sent and received on ``sock`` (raises OSError on a closed socket)."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    if len(raw) < _TCP_INFO_LEN:
        raise OSError(f"TCP_INFO too short ({len(raw)} bytes): kernel older than 4.6")
    segs_out, segs_in = struct.unpack_from("=II", raw, 136)
    data_in, data_out = struct.unpack_from("=II", raw, 152)
    return TcpSegments(data_out, data_in, segs_out, segs_in)


#: how long a client waits for the server to take its connection
CONNECT_TIMEOUT_S = 5.0


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening for one connection on host:port (port 0: an ephemeral one).
    SO_REUSEADDR lets a benchmark bind its fixed port again at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1)
    except OSError:
        sock.close()
        raise
    return sock


def connect(address: tuple[str, int], timeout: float | None) -> socket.socket:
    """A TCP connection to ``address``, ready for request/response (see :func:`_ready`)."""
    return _ready(socket.create_connection(address, timeout=CONNECT_TIMEOUT_S), timeout)


def accept(listener: socket.socket, timeout: float | None) -> socket.socket:
    """The next connection on ``listener``, ready for request/response (see :func:`_ready`)."""
    conn, _ = listener.accept()
    return _ready(conn, timeout)


def _ready(sock: socket.socket, timeout: float | None) -> socket.socket:
    # TCP_NODELAY: each message leaves as its own segment, so segments and messages count alike.
    # ``timeout`` None blocks; the threaded loads wake every ``timeout`` seconds to look at their stop flag.
    sock.settimeout(timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exact(sock: socket.socket, view: memoryview, stop: threading.Event | None = None) -> bool:
    """Fill ``view`` from ``sock``; False when the peer closes first.

    On a socket with a timeout, each timeout looks at ``stop``: False once it is set, else go on
    waiting. Without ``stop`` a timeout is an error (TimeoutError), as for any blocking read.
    """
    got = 0
    while got < len(view):
        try:
            n = sock.recv_into(view[got:])
        except TimeoutError:
            if stop is None:
                raise
            if stop.is_set():
                return False
            continue
        if n == 0:
            return False
        got += n
    return True


def send_all(sock: socket.socket, data: bytes, stop: threading.Event) -> bool:
    """Send every byte; False once ``stop`` is set. Unlike ``sendall``, a timeout mid-way loses no
    count: what was sent stays sent and the rest follows."""
    view = memoryview(data)
    sent = 0
    while sent < len(view):
        try:
            sent += sock.send(view[sent:])
        except TimeoutError:
            if stop.is_set():
                return False
    return True


Pairs = list[tuple[socket.socket, socket.socket]]


def connection_pairs(n: int, host: str = LOOPBACK, port: int = 0) -> tuple[socket.socket, Pairs]:
    """A listener and ``n`` TCP connections to it as (client, server) ends, one byte sent each way
    so both ends have a row in netlat-tui's socket table. Raises the open-file limit to fit
    (2 descriptors a connection) as far as the hard limit allows; the caller closes everything."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * n + 256
    if soft < need:
        limit = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    listener = socket.create_server((host, port), backlog=min(n, 4096))
    pairs = []
    try:
        for _ in range(n):
            client = socket.create_connection(listener.getsockname())
            server, _ = listener.accept()
            pairs.append((client, server))
            client.send(b"x")
            server.recv(1)
            server.send(b"y")
            client.recv(1)
    except BaseException:
        for client, server in pairs:
            client.close()
            server.close()
        listener.close()
        raise
    return listener, pairs
