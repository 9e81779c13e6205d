"""The loads' one set of socket helpers: whole messages in, whole messages out, stop honoured,
a closed peer told apart from a full read."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest

from tui.workload.wire import LOOPBACK, accept, connect, listen, recv_exact, send_all

Pair = tuple[socket.socket, socket.socket]


@pytest.fixture
def pair() -> Iterator[Pair]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_recv_exact_gathers_a_message_sent_in_pieces(pair: Pair) -> None:
    a, b = pair
    a.sendall(b"he")
    threading.Timer(0.05, a.sendall, args=(b"llo",)).start()
    view = memoryview(bytearray(5))
    assert recv_exact(b, view) is True
    assert bytes(view) == b"hello"


def test_recv_exact_is_false_when_the_peer_closes_mid_message(pair: Pair) -> None:
    a, b = pair
    a.sendall(b"hel")
    a.shutdown(socket.SHUT_WR)
    assert recv_exact(b, memoryview(bytearray(5))) is False


def test_recv_exact_waits_through_timeouts_until_stop(pair: Pair) -> None:
    _, b = pair
    b.settimeout(0.01)
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    assert recv_exact(b, memoryview(bytearray(1)), stop) is False
    assert stop.is_set()  # it went on waiting through the timeouts before stop


def test_recv_exact_without_stop_lets_a_timeout_through(pair: Pair) -> None:
    _, b = pair
    b.settimeout(0.01)
    with pytest.raises(TimeoutError):
        recv_exact(b, memoryview(bytearray(1)))


def test_send_all_sends_every_byte_and_gives_up_once_stopped(pair: Pair) -> None:
    a, b = pair
    stop = threading.Event()
    assert send_all(a, b"x" * 1000, stop) is True
    assert recv_exact(b, memoryview(bytearray(1000))) is True
    a.settimeout(0.01)
    stop.set()
    assert send_all(a, b"y" * (1 << 24), stop) is False  # nobody reads: the buffer fills, then stop wins


def test_listen_connect_accept_make_a_nodelay_pair_with_the_timeouts_asked() -> None:
    with listen(LOOPBACK, 0) as listener:
        port = listener.getsockname()[1]
        assert port > 0
        with connect((LOOPBACK, port), None) as client, accept(listener, 0.1) as server:
            for sock in (client, server):
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert (client.gettimeout(), server.gettimeout()) == (None, 0.1)
            client.sendall(b"ping")
            view = memoryview(bytearray(4))
            assert recv_exact(server, view) and bytes(view) == b"ping"
        # SO_REUSEADDR: a fixed port can be listened on again while the old connection lingers
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0


def test_listen_on_a_port_in_use_raises_and_leaks_no_socket() -> None:
    with listen(LOOPBACK, 0) as first:
        fds = set(os.listdir("/proc/self/fd"))
        with pytest.raises(OSError):
            listen(LOOPBACK, first.getsockname()[1])
        assert set(os.listdir("/proc/self/fd")) == fds
