"""The live source's socket-table decoding and the raw histograms it hands on, without a kernel."""

from __future__ import annotations

import ctypes as ct
import random
from array import array
from types import SimpleNamespace

from tui.model.histogram import SOCKET_SUB_BITS, Histogram, bucket_count
from tui.model.timeline import pack, raw_delta, unpack
from tui.sources.live import BatchReader, socket_ident

_STORE = 256  # NETLAT_SOCK_STORE: the kernel's arrays are longer than the buckets used
_BUCKETS = bucket_count(SOCKET_SUB_BITS)


class _SockStats(ct.Structure):
    """struct sock_stats of tui/bpf/netlat.h, as BCC builds it."""

    _fields_ = [("tx_packets", ct.c_uint64), ("tx_bytes", ct.c_uint64), ("rx_packets", ct.c_uint64),
                ("rx_bytes", ct.c_uint64), ("max", ct.c_uint64), ("pid", ct.c_uint32),
                ("protocol", ct.c_uint8), ("family", ct.c_uint8), ("lport", ct.c_uint16),
                ("rport", ct.c_uint16), ("pad", ct.c_uint16), ("closed", ct.c_uint32),
                ("laddr", ct.c_uint8 * 16), ("raddr", ct.c_uint8 * 16), ("comm", ct.c_char * 16),
                ("cgroup_id", ct.c_uint64), ("netns", ct.c_uint32), ("pad3", ct.c_uint32),
                ("send_hist", ct.c_uint32 * _STORE), ("recv_hist", ct.c_uint32 * _STORE)]


def _table(rows: dict[int, _SockStats]) -> SimpleNamespace:
    """The parts of a BCC table the reader uses; key by key (no batch call without a kernel)."""
    items = lambda: [(ct.c_uint64(k), v) for k, v in rows.items()]  # noqa: E731
    return SimpleNamespace(Leaf=_SockStats, max_entries=8, items=items)


def _row(tx: int, send: dict[int, int], port: int = 5201) -> _SockStats:
    row = _SockStats(tx_packets=tx, tx_bytes=100 * tx, rx_packets=3, rx_bytes=30, max=77_000, pid=4242,
                     protocol=6, family=4, lport=port, rport=40000, cgroup_id=9, netns=4026531840)
    row.laddr[:4] = [10, 0, 0, 1]
    row.raddr[:4] = [10, 0, 0, 2]
    row.comm = b"iperf3"
    for index, count in send.items():
        row.send_hist[index] = count
    row.recv_hist[_BUCKETS] = 99  # storage past the buckets is never read
    return row


def _reader(rows: dict[int, _SockStats]) -> BatchReader:
    reader = BatchReader(_table(rows))
    reader.batch = False
    return reader


_WORKLOAD = (9, "/system.slice/iperf.service", 4026531840, "blue")


def test_a_row_decodes_to_its_fields_and_exact_counters() -> None:
    reader = _reader({0xFFFF8880_12345678: _row(7, {40: 5, 41: 2}), 5: _row(1, {}, port=5202)})
    assert reader.read() == 2
    key, at = reader.keys[0], 0
    s = reader.stats(at, reader.names(key, at), _WORKLOAD)
    assert (s.key, s.pid, s.comm, s.protocol, s.family) == (socket_ident(key, 5201, 40000, 6), 4242, "iperf3",
                                                            "TCP", 4)
    assert (s.local, s.remote) == ("10.0.0.1:5201", "10.0.0.2:40000")
    assert (s.tx_packets, s.tx_bytes, s.rx_packets, s.rx_bytes, s.max_ns) == (7, 700, 3, 30, 77_000)
    assert (s.cgroup_id, s.cgroup, s.netns, s.netns_name) == (9, "/system.slice/iperf.service", 4026531840,
                                                               "blue")
    assert s.send_hist.sparse() == {40: 5, 41: 2} and s.send_hist.total == 7
    assert not s.recv_hist and s.recv_hist.total == 0  # bucket _BUCKETS is storage only
    assert not reader.closed(reader.view[:reader.head].tobytes())
    other = reader.stats(reader.size, reader.names(reader.keys[1], reader.size), _WORKLOAD)
    assert (other.key, other.lport, other.tx_packets) == (socket_ident(5, 5202, 40000, 6), 5202, 1)
    # a histogram equal to last tick's is last tick's object; a changed one is new, and exact
    row = _row(8, {40: 5, 41: 2})
    row.recv_hist[12] = 1
    moved = _reader({0xFFFF8880_12345678: row})
    moved.read()
    again = moved.stats(0, moved.names(moved.keys[0], 0), _WORKLOAD, s)
    assert again.send_hist is s.send_hist and again.recv_hist is not s.recv_hist
    assert again.recv_hist.sparse() == {12: 1} and again.tx_packets == 8


def test_identity_bytes_change_with_the_socket_not_with_its_counters() -> None:
    reader = _reader({1: _row(1, {}), 2: _row(900, {40: 1}), 3: _row(1, {}, port=5202)})
    reader.read()
    one, two, three = (reader.identity(i * reader.size) for i in range(3))
    assert one == two != three
    closing = _row(1, {})
    closing.closed = 1
    reader = _reader({1: closing})
    reader.read()
    assert reader.closed(reader.view[:reader.head].tobytes())


def test_raw_histograms_equal_their_decoded_twins() -> None:
    counts = [0] * _BUCKETS
    counts[3], counts[60] = 4, 1
    raw = Histogram.from_raw(array("I", counts).tobytes(), SOCKET_SUB_BITS)
    plain = Histogram(tuple(counts), SOCKET_SUB_BITS)
    assert raw == plain and hash(raw) == hash(plain) and raw.counts == tuple(counts)
    assert raw.percentile(50) == plain.percentile(50) and raw.total == 5 and bool(raw)
    assert not Histogram.from_raw(bytes(4 * _BUCKETS), SOCKET_SUB_BITS)
    summed = Histogram.from_pairs(array("Q", [3, 4, 60, 1, 3, 2]), SOCKET_SUB_BITS)
    assert summed.sparse() == {3: 6, 60: 1}
    assert Histogram.from_pairs((lambda n: array("Q", [7, n]), 3), SOCKET_SUB_BITS).sparse() == {7: 3}


def _delta(new: list[int], old: list[int]) -> tuple[tuple[int, int], ...]:
    return unpack(raw_delta(array("I", new).tobytes(), array("I", old).tobytes()))


def test_raw_delta_is_the_packed_difference() -> None:
    rng = random.Random(7)
    for _ in range(300):
        old = [rng.choice((0, 0, 0, rng.randrange(2**32))) for _ in range(_BUCKETS)]
        new = list(old)
        for i in rng.sample(range(_BUCKETS), rng.randrange(4)):
            new[i] = rng.choice((min(old[i] + rng.randrange(1, 9), 2**32 - 1), rng.randrange(2**32)))
        want = pack(Histogram(tuple(new), SOCKET_SUB_BITS).minus(Histogram(tuple(old), SOCKET_SUB_BITS)))
        assert raw_delta(array("I", new).tobytes(), array("I", old).tobytes()) == want
    # one bucket up by 3 and the last one by 1; then a count that went down gives the new counts
    old = [0] * _BUCKETS
    new = list(old)
    new[10], new[-1] = 3, 1
    assert _delta(new, old) == ((10, 3), (_BUCKETS - 1, 1))
    assert _delta(old, new) == ()  # every count went down or stayed: the new (empty) counts
    lower = list(new)
    lower[10], lower[20] = 1, 5
    assert _delta(lower, new) == ((10, 1), (20, 5), (_BUCKETS - 1, 1))


class _Table(dict):
    """A BCC hash table as _read_sockets uses it: items(), Key() and del."""

    Leaf = _SockStats
    max_entries = 8

    def items(self):  # type: ignore[override]
        return [(ct.c_uint64(k), v) for k, v in super().items()]

    Key = staticmethod(lambda k: k)


def test_the_live_read_keeps_unmoved_rows_decodes_moved_ones_and_drops_closed_ones() -> None:
    from tui.sources.live import LiveSource

    table = _Table({1: _row(5, {40: 5}), 2: _row(9, {41: 9}, port=5202)})
    source = LiveSource()
    source._bpf = {b"sockets": table}
    source._sockets_reader = reader = BatchReader(table)
    reader.batch = False
    first = {s.lport: s for s in source._read_sockets()}
    assert {p: (s.tx_packets, s.tx_bytes, s.send_hist.sparse()) for p, s in first.items()} == {
        5201: (5, 500, {40: 5}), 5202: (9, 900, {41: 9})}
    # the first socket sends 2 more, the second does not move, then closes
    table[1] = _row(7, {40: 6, 44: 1})
    second = {s.lport: s for s in source._read_sockets()}
    assert second[5202] is first[5202]
    assert (second[5201].tx_packets, second[5201].tx_bytes, second[5201].send_hist.sparse()) == (
        7, 700, {40: 6, 44: 1})
    assert second[5201].comm is first[5201].comm  # its names decoded once
    table[2].closed = 1
    third = {s.lport: s for s in source._read_sockets()}
    assert third[5202].tx_packets == 9 and 2 not in table  # read once more, then deleted
    assert set(s.lport for s in source._read_sockets()) == {5201}
