"""``LoopbackWorkload``: TCP request/response, TCP bulk and UDP request/response over 127.0.0.1, in
daemon threads of the calling process (``--workload loopback`` and the kernel tests: known counts on
known ephemeral ports)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from tui.errors import UserError
from tui.workload.wire import (
    LOOPBACK,
    TcpSegments,
    accept,
    connect,
    listen,
    recv_exact,
    send_all,
    tcp_segments,
)

KINDS = ("mixed", "rr", "bulk", "udp")
THREAD_PREFIX = "netlat-workload"
#: how often a blocked socket call wakes to look at the stop flag (stop() also shuts sockets down)
POLL_S = 0.1
#: a UDP reply not back by then is counted lost and the client goes on
UDP_REPLY_TIMEOUT_S = 0.5


class WorkloadError(UserError):
    """The workload cannot start; the message is one line (a UserError: the CLI prints it, no traceback)."""


@dataclass(frozen=True)
class WorkloadCounts:
    """What each side did, counted by the side that did it (client and server count independently)."""

    tcp_rr: int = 0
    tcp_rr_served: int = 0
    tcp_bulk_sent: int = 0
    tcp_bulk_received: int = 0
    udp_rr: int = 0
    udp_rr_served: int = 0
    udp_lost: int = 0


class _Counters:
    """Mutable counters; every field has exactly one writer thread, so the GIL is enough."""

    def __init__(self) -> None:
        for name in WorkloadCounts.__dataclass_fields__:
            setattr(self, name, 0)

    def freeze(self) -> WorkloadCounts:
        return WorkloadCounts(**{n: getattr(self, n) for n in WorkloadCounts.__dataclass_fields__})


class _Pacer:
    """Spaces operations at ``rate`` per second (None: as fast as possible); waits on the stop flag."""

    def __init__(self, rate: float | None, stop: threading.Event) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._stop = stop
        self._next = time.monotonic()

    def wait(self) -> bool:
        """Sleep until the next slot; False once stop is set."""
        if self._interval:
            delay = self._next - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return False
            # never bank more than one slot after a stall: a burst would break "modest rate"
            self._next = max(self._next + self._interval, time.monotonic() - self._interval)
        return not self._stop.is_set()


class LoopbackWorkload:
    """TCP request/response, TCP bulk and UDP request/response over 127.0.0.1, in daemon threads.

    ``kind`` picks the flows ("mixed" = all three). Rates are per second (None: unpaced, one CPU's
    worth). ``limit`` caps each flow at that many transactions (bulk: writes), for exact counts.
    ``ports`` maps flow name ("tcp_rr", "tcp_bulk", "udp_rr") to the server's ephemeral port.
    """

    def __init__(
        self,
        kind: str = "mixed",
        *,
        rr_rate: float | None = 500.0,
        bulk_rate: float | None = 512 * 1024,
        udp_rate: float | None = 200.0,
        size: int = 64,
        bulk_chunk: int = 8192,
        limit: int | None = None,
    ) -> None:
        if kind not in KINDS:
            raise WorkloadError(f"unknown workload kind {kind!r} (choose from {', '.join(KINDS)})")
        if not 1 <= size <= 65507:
            raise WorkloadError(f"message size must be 1..65507 bytes, got {size}")
        if not 1 <= bulk_chunk <= 1 << 20:
            raise WorkloadError(f"bulk chunk must be 1..1048576 bytes, got {bulk_chunk}")
        if limit is not None and limit < 0:
            raise WorkloadError(f"limit must be 0 or more, got {limit}")
        self.kind = kind
        self.size = size
        self.bulk_chunk = bulk_chunk
        self.limit = limit
        self._rates = {
            "tcp_rr": rr_rate,
            "tcp_bulk": bulk_rate / bulk_chunk if bulk_rate else None,
            "udp_rr": udp_rate,
        }
        self._flows = ["tcp_rr", "tcp_bulk", "udp_rr"] if kind == "mixed" else [
            {"rr": "tcp_rr", "bulk": "tcp_bulk", "udp": "udp_rr"}[kind]
        ]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = {flow: threading.Event() for flow in self._flows}
        self._c = _Counters()
        self._clients: dict[str, socket.socket] = {}
        self._final_segments: dict[str, TcpSegments] = {}
        self.ports: dict[str, int] = {}
        self.errors: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the servers, connect the clients and start the threads (ports are known on return)."""
        if self._threads:
            raise WorkloadError("workload already started")
        try:
            for flow in self._flows:
                getattr(self, f"_start_{flow}")()
        except OSError as exc:
            self.stop()
            raise WorkloadError(f"cannot open loopback sockets: {exc.strerror or exc}") from None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every thread and close every socket; idempotent. Raises WorkloadError if one hangs."""
        self._stop.set()
        if not self._final_segments:
            self._final_segments = self.segments()
        with self._lock:
            socks = list(self._sockets)
        for sock in socks:  # wakes threads blocked in accept/recv at once
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for sock in socks:
            sock.close()
        hung = [t.name for t in self._threads if t.is_alive()]
        if hung:
            raise WorkloadError(f"workload threads did not stop: {', '.join(hung)}")

    def wait(self, timeout: float | None = None) -> bool:
        """With ``limit``: block until every flow has done its share; True if they all have."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for event in self._done.values():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not event.wait(left):
                return False
        return True

    def segments(self) -> dict[str, TcpSegments]:
        """Per TCP flow, the kernel's segment counts on the client socket (frozen at stop())."""
        if self._final_segments:
            return dict(self._final_segments)
        out = {}
        for flow, sock in self._clients.items():
            with contextlib.suppress(OSError):
                out[flow] = tcp_segments(sock)
        return out

    def counts(self) -> WorkloadCounts:
        """Counts so far (exact once the flows are done or stopped)."""
        return self._c.freeze()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- plumbing ----------------------------------------------------------------------------------

    def _track(self, sock: socket.socket) -> socket.socket:
        """Keep ``sock`` for stop() to shut down and close."""
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _socket(self, kind: int) -> socket.socket:
        sock = self._track(socket.socket(socket.AF_INET, kind))
        sock.settimeout(POLL_S)
        return sock

    def _spawn(self, name: str, target: Callable[..., None], *args: object) -> None:
        def guarded() -> None:
            try:
                target(*args)
            except OSError as exc:
                if not self._stop.is_set():  # shutdown during stop() is expected, anything else is not
                    self.errors.append(f"{name}: {exc}")
        thread = threading.Thread(target=guarded, name=f"{THREAD_PREFIX}-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _tcp_pair(self, flow: str) -> tuple[socket.socket, socket.socket]:
        """A listening socket on an ephemeral loopback port and a client connected to it."""
        listener = self._track(listen(LOOPBACK, 0))
        listener.settimeout(POLL_S)
        self.ports[flow] = listener.getsockname()[1]
        client = self._track(connect((LOOPBACK, self.ports[flow]), POLL_S))
        self._clients[flow] = client
        server = self._track(accept(listener, POLL_S))
        return client, server

    def _under_limit(self, done: int) -> bool:
        return self.limit is None or done < self.limit

    # -- flows -------------------------------------------------------------------------------------

    def _start_tcp_rr(self) -> None:
        client, server = self._tcp_pair("tcp_rr")
        self._spawn("tcp-rr-server", self._tcp_echo, server)
        self._spawn("tcp-rr-client", self._tcp_rr_client, client)

    def _tcp_echo(self, sock: socket.socket) -> None:
        buf = memoryview(bytearray(self.size))
        while recv_exact(sock, buf, self._stop):
            # counted before replying: once the client has its reply, both counts agree
            self._c.tcp_rr_served += 1
            if not send_all(sock, buf, self._stop):
                return

    def _tcp_rr_client(self, sock: socket.socket) -> None:
        pacer = _Pacer(self._rates["tcp_rr"], self._stop)
        request = bytes(range(256)) * (self.size // 256 + 1)
        request = request[: self.size]
        reply = memoryview(bytearray(self.size))
        while self._under_limit(self._c.tcp_rr) and pacer.wait():
            if not send_all(sock, request, self._stop) or not recv_exact(sock, reply, self._stop):
                return
            self._c.tcp_rr += 1
        self._done["tcp_rr"].set()

    def _start_tcp_bulk(self) -> None:
        client, server = self._tcp_pair("tcp_bulk")
        self._spawn("tcp-bulk-sink", self._tcp_sink, server)
        self._spawn("tcp-bulk-source", self._tcp_bulk_source, client)

    def _tcp_sink(self, sock: socket.socket) -> None:
        buf = bytearray(1 << 16)
        while True:
            try:
                n = sock.recv_into(buf)
            except TimeoutError:
                if self._stop.is_set():
                    return
                continue
            if n == 0:
                return
            self._c.tcp_bulk_received += n

    def _tcp_bulk_source(self, sock: socket.socket) -> None:
        pacer = _Pacer(self._rates["tcp_bulk"], self._stop)
        chunk = b"\x5a" * self.bulk_chunk
        writes = 0
        while self._under_limit(writes) and pacer.wait():
            if not send_all(sock, chunk, self._stop):
                return
            writes += 1
            self._c.tcp_bulk_sent += len(chunk)
        self._done["tcp_bulk"].set()

    def _start_udp_rr(self) -> None:
        server = self._socket(socket.SOCK_DGRAM)
        server.bind((LOOPBACK, 0))
        self.ports["udp_rr"] = server.getsockname()[1]
        client = self._socket(socket.SOCK_DGRAM)
        client.bind((LOOPBACK, 0))
        client.connect((LOOPBACK, self.ports["udp_rr"]))
        self._spawn("udp-rr-server", self._udp_echo, server)
        self._spawn("udp-rr-client", self._udp_rr_client, client)

    def _udp_echo(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            if self._stop.is_set():
                return
            self._c.udp_rr_served += 1  # before replying, as in _tcp_echo
            sock.sendto(data, peer)

    def _udp_rr_client(self, sock: socket.socket) -> None:
        pacer = _Pacer(self._rates["udp_rr"], self._stop)
        request = b"\xa5" * self.size
        while self._under_limit(self._c.udp_rr + self._c.udp_lost) and pacer.wait():
            sock.send(request)
            if self._await_udp_reply(sock):
                self._c.udp_rr += 1
            elif self._stop.is_set():
                return
            else:
                self._c.udp_lost += 1
        self._done["udp_rr"].set()

    def _await_udp_reply(self, sock: socket.socket) -> bool:
        deadline = time.monotonic() + UDP_REPLY_TIMEOUT_S
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                return bool(sock.recv(65535))
            except TimeoutError:
                continue
        return False
