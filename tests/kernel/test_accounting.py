"""Every byte, packet and socket accounted for under real traffic (issue 9, host part).

The witness is not our code: the kernel's own ``tcp_info`` of the same sockets (getsockopt
TCP_INFO, read by the traffic processes just before they close), and for UDP the datagrams the test
sent and read. Traffic: a multi-GB bulk transfer over a veth pair between two namespaces the test
creates, IPv4 and IPv6, with every packet followed and with ``--sample 16``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from netns import VethPair, run_bulk  # tests/kernel is on sys.path (rootdir-less test dir)

from tui.model.filters import Filters
from tui.model.snapshot import Snapshot, SocketStats
from tui.sources.live import LiveSource
from tui.workload.wire import connection_pairs

pytestmark = pytest.mark.kernel

BULK_BYTES = 2 << 30  # 2 GiB: a few seconds over veth


@contextmanager
def probes(sample: int = 1, max_sockets: int | None = None, **filters: str) -> Iterator[LiveSource]:
    kw = {} if max_sockets is None else {"max_sockets": max_sockets}
    source = LiveSource(filters=Filters.parse(**filters), sample=sample, **kw)
    source.start()
    try:
        yield source
    finally:
        source.close()


def near(got: int, want: int, rel: float = 0.01) -> bool:
    return abs(got - want) <= rel * want


def row(snap: Snapshot, lport: int, rport: int) -> SocketStats:
    rows = [s for s in snap.sockets if (s.lport, s.rport) == (lport, rport)]
    assert len(rows) == 1, f"socket {lport}->{rport}: {len(rows)} rows of {snap.sockets}"
    return rows[0]


@pytest.mark.parametrize(("family", "sample"), [(4, 1), (6, 1), (4, 16)])
def test_bulk_transfer_bytes_and_segments_equal_the_kernels_tcp_info(family: int, sample: int) -> None:
    port = 20000 + os.getpid() % 20000
    with VethPair() as pair, probes(sample=sample, port=str(port)) as source:
        server, client = run_bulk(pair, family, BULK_BYTES, port=port)
        snap = source.poll()
    assert server["received"] == client["sent"] == BULK_BYTES
    rx = row(snap, port, server["remote_port"])
    tx = row(snap, client["local_port"], port)
    s_info, c_info = server["tcp_info"], client["tcp_info"]
    figures = json.dumps({"rx": [rx.rx_bytes, rx.rx_packets], "tx": [tx.tx_bytes, tx.tx_packets],
                          "server": s_info, "client": c_info})
    assert near(rx.rx_bytes, s_info["bytes_received"]), figures
    assert near(tx.tx_bytes, c_info["bytes_acked"]), figures
    assert near(rx.rx_packets, s_info["data_segs_in"]), figures
    assert near(tx.tx_packets, c_info["data_segs_out"]), figures
    assert rx.rx_bytes == BULK_BYTES and tx.tx_bytes == BULK_BYTES  # what the applications moved
    if sample == 1:
        # The send path counts skbs, and their wire segments as TCP counts them (both ends' segs_out:
        # the data and the receiver's ACKs), as nstat and ss would show.
        send = snap.path("send").counters
        assert near(send["segs"], c_info["segs_out"] + s_info["segs_out"]), json.dumps(send)
        assert send["packets"] < send["segs"] / 4  # GSO: an skb carries many segments


@pytest.mark.parametrize("sample", [1, 16])
def test_udp_datagrams_sent_and_read_are_each_counted(sample: int) -> None:
    pair = VethPair("unused")  # only its popen(): runs in this namespace, over loopback
    with probes(sample=sample, protocol="udp", addr="127.0.0.1") as source:
        proc = pair.popen(None, "udp", "--bind", "127.0.0.1", "--count", "6400", "--size", "200")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        snap = source.poll()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["sent"] == result["received"] == 6400
    tx = row(snap, result["tx_port"], result["rx_port"])
    rx = [s for s in snap.sockets if s.lport == result["rx_port"]]
    assert (tx.tx_packets, tx.tx_bytes) == (6400, 6400 * 200)
    assert [(s.rx_packets, s.rx_bytes) for s in rx] == [(6400, 6400 * 200)]


@contextmanager
def connections(n: int, port: int) -> Iterator[list]:
    """``n`` loopback connections to ``port`` (tui.workload.wire.connection_pairs), closed after."""
    listener, pairs = connection_pairs(n, port=port)
    try:
        yield pairs
    finally:
        for client, server in pairs:
            client.close()
            server.close()
        listener.close()


def test_a_closed_socket_leaves_the_table_after_its_last_counts_were_read() -> None:
    port = 20000 + os.getpid() % 20000
    with probes(port=str(port)) as source:
        listener, pairs = connection_pairs(20, port=port)
        before = source.poll()
        for client, server in pairs:
            client.send(b"last")
            server.recv(4)
            client.close()
            server.close()
        listener.close()
        closing = source.poll()
        after = source.poll()
    ours = [s for s in before.sockets if port in (s.lport, s.rport)]
    assert len(ours) == 40
    final = [s for s in closing.sockets if port in (s.lport, s.rport)]
    assert len(final) == 40 and sum(s.tx_bytes for s in final) == 20 * (1 + 1 + 4)  # the last sends are in
    assert not [s for s in after.sockets if port in (s.lport, s.rport)]


def test_a_full_socket_table_counts_the_rows_it_dropped() -> None:
    port = 20000 + os.getpid() % 20000
    with probes(max_sockets=64, port=str(port)) as source, connections(50, port):
        snap = source.poll()
    assert len(snap.sockets) <= 64
    assert snap.sockets_dropped == 100 - len(snap.sockets)
    assert snap.sockets_seen == len(snap.sockets)


def test_thousands_of_connections_each_keep_their_row_with_their_messages() -> None:
    # bench/socket_table.py takes this to 10,000 connections (20,000 rows) and times the poll
    port = 20000 + (os.getpid() + 1) % 20000
    with probes(port=str(port)) as source, connections(3000, port) as pairs:
        for client, server in pairs:  # a second message each way: rows move, none is added
            client.send(b"xx")
            server.recv(2)
        snap = source.poll()
    ours = [s for s in snap.sockets if port in (s.lport, s.rport)]
    assert len(ours) == 6000 and snap.sockets_dropped == 0
    clients = [s for s in ours if s.rport == port]
    assert sorted({(s.tx_bytes, s.rx_bytes, s.tx_packets, s.rx_packets) for s in clients}) == [(3, 1, 2, 1)]


def test_an_idle_udp_socket_leaves_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    from tui.sources import live

    monkeypatch.setattr(live, "UDP_IDLE_S", 0.0)  # UDP has no close hook: idle rows go
    with probes(protocol="udp", addr="127.0.0.1") as source:
        proc = VethPair("unused").popen(None, "udp", "--bind", "127.0.0.1", "--count", "64")
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        ports = json.loads(out.strip().splitlines()[-1])
        first, second = source.poll(), source.poll()

    def ours(snap: Snapshot) -> list[SocketStats]:
        return [s for s in snap.sockets if s.lport in (ports["tx_port"], ports["rx_port"])]

    assert len(ours(first)) == 2  # read once with their counts, then deleted (idle at once here)
    assert ours(second) == []
