"""The benchmarks' pinned request/response load (``python -m tui.workload rr``): a client and a forked
echo server, both pinned, each counting its own transactions, with the kernel's segment count as
the independent witness."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from tui.workload.wire import LOOPBACK, TcpSegments, accept, connect, listen, recv_exact, tcp_segments


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


def pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def serve_rr(listener: socket.socket, size: int, deadline: float) -> int:
    """Echo fixed-size messages on one accepted connection until the peer closes; returns the count."""
    listener.settimeout(max(0.1, deadline - time.monotonic()))
    conn = accept(listener, None)
    buf = memoryview(bytearray(size))
    served = 0
    with conn:
        while recv_exact(conn, buf):
            conn.sendall(buf)
            served += 1
    return served


def run_rr_client(
    addr: tuple[str, int], size: int, duration: float, rate: float | None
) -> tuple[int, float, TcpSegments]:
    """Request/response transactions for ``duration`` seconds: (count, seconds measured, segments)."""
    sock = connect(addr, None)
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
            if not recv_exact(sock, reply):
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
    listener = listen(LOOPBACK, port)
    port = listener.getsockname()[1]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the server; reports its own count through the pipe
        code = 1
        try:
            os.close(read_fd)
            pin(server_cpu)
            served = serve_rr(listener, size, time.monotonic() + duration + 10)
            os.write(write_fd, str(served).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    listener.close()
    try:
        pin(cpu)
        count, elapsed, segs = run_rr_client((LOOPBACK, port), size, duration, rate)
    finally:
        with os.fdopen(read_fd, "rb") as pipe:
            served_text = pipe.read().decode() or "-1"
        os.waitpid(pid, 0)
    return RRResult(count, int(served_text), round(elapsed, 4), round(count / elapsed, 1), size, cpu,
                    server_cpu, port, segs.data_segs_out, segs.data_segs_in)
