"""Bounded loopback traffic to look at and to measure: TCP request/response, TCP bulk, UDP request/response.

``LoopbackWorkload`` runs in daemon threads of the calling process (for ``--workload loopback``
and the kernel tests: known counts on known ephemeral ports). ``python -m tui.workload rr`` is the
benchmarks' pinned load: a client and a forked server, both pinned, counting their own transactions.
Pure Python on purpose (no bcc, no textual): it must run wherever the model runs, and netperf is
not packaged in Debian main.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Self

from tui.argtypes import number, parse_number
from tui.errors import UserError

LOOPBACK = "127.0.0.1"
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

    def _socket(self, kind: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, kind)
        sock.settimeout(POLL_S)
        with self._lock:
            self._sockets.append(sock)
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
        listener = self._socket(socket.SOCK_STREAM)
        listener.bind((LOOPBACK, 0))
        listener.listen(1)
        self.ports[flow] = listener.getsockname()[1]
        client = self._socket(socket.SOCK_STREAM)
        client.settimeout(5.0)
        client.connect((LOOPBACK, self.ports[flow]))
        client.settimeout(POLL_S)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._clients[flow] = client
        server, _ = listener.accept()
        server.settimeout(POLL_S)
        server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._sockets.append(server)
        return client, server

    def _recv_exact(self, sock: socket.socket, view: memoryview) -> bool:
        """Fill ``view``; False on stop or on the peer closing."""
        got = 0
        while got < len(view):
            try:
                n = sock.recv_into(view[got:])
            except TimeoutError:
                if self._stop.is_set():
                    return False
                continue
            if n == 0:
                return False
            got += n
        return True

    def _send_all(self, sock: socket.socket, data: bytes) -> bool:
        """Send every byte (a timeout mid-way keeps the count exact, unlike sendall); False on stop."""
        view = memoryview(data)
        sent = 0
        while sent < len(view):
            try:
                sent += sock.send(view[sent:])
            except TimeoutError:
                if self._stop.is_set():
                    return False
        return True

    def _under_limit(self, done: int) -> bool:
        return self.limit is None or done < self.limit

    # -- flows -------------------------------------------------------------------------------------

    def _start_tcp_rr(self) -> None:
        client, server = self._tcp_pair("tcp_rr")
        self._spawn("tcp-rr-server", self._tcp_echo, server)
        self._spawn("tcp-rr-client", self._tcp_rr_client, client)

    def _tcp_echo(self, sock: socket.socket) -> None:
        buf = memoryview(bytearray(self.size))
        while self._recv_exact(sock, buf):
            # counted before replying: once the client has its reply, both counts agree
            self._c.tcp_rr_served += 1
            if not self._send_all(sock, buf):
                return

    def _tcp_rr_client(self, sock: socket.socket) -> None:
        pacer = _Pacer(self._rates["tcp_rr"], self._stop)
        request = bytes(range(256)) * (self.size // 256 + 1)
        request = request[: self.size]
        reply = memoryview(bytearray(self.size))
        while self._under_limit(self._c.tcp_rr) and pacer.wait():
            if not self._send_all(sock, request) or not self._recv_exact(sock, reply):
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
            if not self._send_all(sock, chunk):
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


# -- pinned request/response load for the benchmarks (python -m tui.workload rr) ----------------------


@dataclass(frozen=True)
class RRResult:
    """One pinned request/response run, as printed by the CLI (``--json``)."""

    transactions: int
    served: int
    duration_s: float
    tps: float
    size: int
    cpu: int | None
    server_cpu: int | None
    port: int
    #: the kernel's count of data segments on the client socket (TCP_INFO), the independent witness
    data_segs_out: int = -1
    data_segs_in: int = -1


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _recv_exact_blocking(sock: socket.socket, view: memoryview) -> bool:
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            return False
        got += n
    return True


def serve_rr(listener: socket.socket, size: int, deadline: float) -> int:
    """Echo fixed-size messages on one accepted connection until the peer closes; returns the count."""
    listener.settimeout(max(0.1, deadline - time.monotonic()))
    conn, _ = listener.accept()
    conn.settimeout(None)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = memoryview(bytearray(size))
    served = 0
    with conn:
        while _recv_exact_blocking(conn, buf):
            conn.sendall(buf)
            served += 1
    return served


def run_rr_client(
    addr: tuple[str, int], size: int, duration: float, rate: float | None
) -> tuple[int, float, TcpSegments]:
    """Request/response transactions for ``duration`` seconds: (count, seconds measured, segments)."""
    sock = socket.create_connection(addr, timeout=5.0)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = b"x" * size
    reply = memoryview(bytearray(size))
    send, clock = sock.sendall, time.perf_counter
    count = 0
    interval = 1.0 / rate if rate else 0.0
    with sock:
        start = clock()
        end = start + duration
        now = start
        # the hot loop stays small: its own cost dilutes the ratio the benchmarks measure
        while now < end:
            send(request)
            if not _recv_exact_blocking(sock, reply):
                raise ConnectionError("server closed the connection")
            count += 1
            now = clock()
            if interval:
                due = start + count * interval
                if due > now:
                    time.sleep(due - now)
                    now = clock()
        elapsed = now - start
        segments = tcp_segments(sock)
    return count, elapsed, segments


def run_rr(
    duration: float, size: int = 1, cpu: int | None = None, server_cpu: int | None = None,
    port: int = 0, rate: float | None = None,
) -> RRResult:
    """Fork a pinned echo server on 127.0.0.1, drive it from this (pinned) process, count both sides."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LOOPBACK, port))
    listener.listen(1)
    port = listener.getsockname()[1]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the server; reports its own count through the pipe
        code = 1
        try:
            os.close(read_fd)
            _pin(server_cpu)
            served = serve_rr(listener, size, time.monotonic() + duration + 10)
            os.write(write_fd, str(served).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    listener.close()
    try:
        _pin(cpu)
        count, elapsed, segs = run_rr_client((LOOPBACK, port), size, duration, rate)
    finally:
        with os.fdopen(read_fd, "rb") as pipe:
            served_text = pipe.read().decode() or "-1"
        os.waitpid(pid, 0)
    return RRResult(count, int(served_text), round(elapsed, 4), round(count / elapsed, 1), size, cpu,
                    server_cpu, port, segs.data_segs_out, segs.data_segs_in)


# -- CLI --------------------------------------------------------------------------------------------


def _cpu(text: str) -> int:
    value = _int_in(text, 0, 4095, "CPU")
    # not sched_getaffinity: a caller pinned elsewhere may still place its children on any CPU
    if value >= (os.cpu_count() or 1):
        raise argparse.ArgumentTypeError(f"CPU {value} is not available here")
    return value


def _int_in(text: str, low: int, high: int, what: str) -> int:
    return parse_number(text, int, expect="a whole number", what=what, at_least=low, at_most=high)


_seconds = number(float, expect="seconds", above=0, at_most=3600)
_rate = number(float, expect="transactions per second", what="rate", above=0, at_most=10_000_000)


def _ipv4(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an IPv4 address, got {text!r}") from None


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected IPv4:PORT, got {text!r}") from None
    if not sep:
        raise argparse.ArgumentTypeError(f"expected IPv4:PORT, got {text!r}")
    return host, _int_in(port, 1, 65535, "port")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tui.workload",
        description="Bounded traffic loads for netlat-tui's tests and benchmarks.",
        epilog="examples:\n"
        "  python -m tui.workload rr --duration 5 --cpu 1 --json     pinned 1-byte TCP_RR on loopback\n"
        "  python -m tui.workload rr --duration 5 --rate 20000        paced at 20k transactions/s\n"
        "  ip netns exec A python -m tui.workload serve --bind 10.9.0.1 --port 5001 --cpu 1\n"
        "  ip netns exec B python -m tui.workload rr --connect 10.9.0.1:5001 --cpu 1 --duration 5\n"
        "  python -m tui.workload mixed --duration 10                 the dashboard's loopback mix\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    rr = sub.add_parser("rr", help="pinned TCP request/response; prints transactions and transactions/s")
    rr.add_argument("--duration", type=_seconds, default=5.0, metavar="S")
    rr.add_argument("--cpu", type=_cpu, metavar="N", help="pin the client (and server) to this CPU")
    rr.add_argument("--server-cpu", type=_cpu, metavar="N", help="pin the server here (default --cpu)")
    rr.add_argument("--size", type=lambda t: _int_in(t, 1, 65536, "size"), default=1, metavar="B")
    rr.add_argument("--port", type=lambda t: _int_in(t, 0, 65535, "port"), default=0, metavar="P",
                    help="server port on 127.0.0.1 (default: ephemeral)")
    rr.add_argument("--rate", type=_rate, metavar="TPS", help="pace the client (default: as fast as it can)")
    rr.add_argument("--connect", type=_host_port, metavar="IP:PORT",
                    help="use a running `serve` instead of forking one (e.g. across namespaces)")
    rr.add_argument("--json", action="store_true")
    srv = sub.add_parser("serve", help="echo server for `rr --connect` (one connection; JSON lines)")
    srv.add_argument("--bind", type=_ipv4, default=LOOPBACK, metavar="IP")
    srv.add_argument("--port", type=lambda t: _int_in(t, 1, 65535, "port"), required=True, metavar="P")
    srv.add_argument("--cpu", type=_cpu, metavar="N")
    srv.add_argument("--size", type=lambda t: _int_in(t, 1, 65536, "size"), default=1, metavar="B")
    srv.add_argument("--duration", type=_seconds, default=600.0, metavar="S",
                     help="give up waiting for a client after this long")
    mix = sub.add_parser("mixed", help="the dashboard's loopback mix for a while; prints its counts")
    mix.add_argument("--duration", type=_seconds, default=5.0, metavar="S")
    mix.add_argument("--json", action="store_true")
    return p


def _print_rr(result: RRResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(result)))
    else:
        print(f"transactions {result.transactions}  tps {result.tps:.0f}  "
              f"served {result.served}  duration {result.duration_s:.2f}s")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "rr":
            server_cpu = args.server_cpu if args.server_cpu is not None else args.cpu
            if args.connect:
                _pin(args.cpu)
                count, elapsed, segs = run_rr_client(args.connect, args.size, args.duration, args.rate)
                result = RRResult(count, -1, round(elapsed, 4), round(count / elapsed, 1), args.size,
                                  args.cpu, None, args.connect[1], segs.data_segs_out, segs.data_segs_in)
            else:
                result = run_rr(args.duration, args.size, args.cpu, server_cpu, args.port, args.rate)
            _print_rr(result, args.json)
        elif args.command == "serve":
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((args.bind, args.port))
            listener.listen(1)
            _pin(args.cpu)
            with listener:
                # one JSON line when ready (scripts wait for it), one with the count at the end
                print(json.dumps({"listening": f"{args.bind}:{args.port}"}), flush=True)
                print(json.dumps({"served": serve_rr(listener, args.size, time.monotonic() + args.duration)}))
        else:
            with LoopbackWorkload("mixed") as load:
                time.sleep(args.duration)
            counts = load.counts()
            print(json.dumps(asdict(counts)) if args.json else
                  "  ".join(f"{k} {v}" for k, v in asdict(counts).items()))
    except (OSError, WorkloadError) as exc:
        print(f"tui.workload: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
