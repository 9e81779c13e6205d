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


def _workload(cgroup_id: int, netns: int) -> tuple[int, str, int, str]:
    return cgroup_id, "/system.slice/iperf.service", netns, "blue"


def test_a_row_decodes_to_its_fields_and_exact_counters() -> None:
    reader = _reader({0xFFFF8880_12345678: _row(7, {40: 5, 41: 2})})
    [(key, head, raw)] = list(reader.rows())
    s = reader.stats(key, raw, _workload)
    assert (s.key, s.pid, s.comm, s.protocol, s.family) == (socket_ident(key, 5201, 40000, 6), 4242, "iperf3",
                                                            "TCP", 4)
    assert (s.local, s.remote) == ("10.0.0.1:5201", "10.0.0.2:40000")
    assert (s.tx_packets, s.tx_bytes, s.rx_packets, s.rx_bytes, s.max_ns) == (7, 700, 3, 30, 77_000)
    assert (s.cgroup_id, s.cgroup, s.netns, s.netns_name) == (9, "/system.slice/iperf.service", 4026531840,
                                                               "blue")
    assert s.send_hist.sparse() == {40: 5, 41: 2} and s.send_hist.total == 7
    assert not s.recv_hist and s.recv_hist.total == 0  # bucket _BUCKETS is storage only
    assert not reader.closed(head)
    # The names decoded once serve the row's later ticks: the same SocketStats fields.
    names = reader.names(key, raw)
    assert reader.stats(key, raw, _workload, names) == s


def test_identity_bytes_change_with_the_socket_not_with_its_counters() -> None:
    a, b, c = _row(1, {}), _row(900, {40: 1}), _row(1, {}, port=5202)
    reader = _reader({1: a})
    ident = reader.identity(next(iter(reader.rows()))[2])
    assert _reader({1: b}).identity(next(iter(_reader({1: b}).rows()))[2]) == ident
    assert _reader({1: c}).identity(next(iter(_reader({1: c}).rows()))[2]) != ident


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
