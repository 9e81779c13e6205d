"""The live source: compile and attach the chosen probe plan with BCC, turn its maps into Snapshots.

``start`` runs the pre-flight checks, picks the plan from the kernel's features, compiles the
generated C (tui.bpf.program) and attaches it. ``poll`` reads the in-kernel aggregates (a handful
of per-CPU array lookups plus the bounded socket map) and drains the sampled-event ring buffer;
it never streams per-packet data. ``close`` detaches everything (BCC's cleanup) and is idempotent.
No textual import here: the worker thread drives this.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes as ct
import errno
import functools
import ipaddress
import os
import struct
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from tui.attribution import CgroupNames, netns_names
from tui.bpf import plans
from tui.bpf.compile_output import captured_stderr, error_line
from tui.bpf.plans import COUNTERS, PATH_INDEX, SLOTS, SLOTS_PER_PATH, Plan, program_path
from tui.bpf.program import DEFAULT_MAX_SOCKETS
from tui.bpf.stats import enable_stats, program_counts
from tui.errors import UserError, one_line
from tui.model.filters import Filters
from tui.model.histogram import SOCKET_SUB_BITS, STAGE_SUB_BITS, Histogram, bucket_count
from tui.model.snapshot import (
    PEERS_SHOWN,
    RECV,
    SEND,
    Cost,
    PacketEvent,
    PathStats,
    PeerStats,
    Snapshot,
    SocketStats,
    SourceMeta,
    StageStats,
    socket_stats,
)
from tui.sources.base import SourceContext, SourceError
from tui.system import btf_rule, preflight

#: Seconds a UDP socket's row may stay unchanged before it leaves the table (UDP has no close hook).
UDP_IDLE_S = 60.0
#: Sampled events kept between two polls (the ring buffer itself is bounded too).
MAX_EVENTS_PER_POLL = 500
_PROTO_NAMES = {6: "TCP", 17: "UDP"}


def _split_l3(stages: dict[str, int], path: str, l3_ns: int) -> dict[str, int]:
    """kprobe plan: split the merged L4/L3 time of an event into its TCP and IP parts."""
    merged = "tcp_ip" if path == SEND else "ip_tcp"
    if not l3_ns or merged not in stages or l3_ns > stages[merged]:
        return stages
    out = dict(stages)
    both = out.pop(merged)
    if path == SEND:
        out["tcp"], out["ip"] = both - l3_ns, l3_ns
    else:
        out["ip"], out["tcp"] = l3_ns, both - l3_ns
    return out


def _addr(raw: Any, family: int) -> str:
    return _addr_text(bytes(raw)[:4] if family == 4 else bytes(raw)[:16])


@functools.lru_cache(maxsize=8192)
def _addr_text(packed: bytes) -> str:
    """Text of a packed address; cached: a busy host has many sockets but few peer addresses, and
    ipaddress's formatting was a third of the socket table's read time."""
    try:
        return str(ipaddress.ip_address(packed))
    except ValueError:
        return "?"


def table_items(table: Any) -> Iterable[tuple[int, Any]]:
    """Every (key, value) of a BCC hash table with an integer key: one BPF_MAP_LOOKUP_BATCH call where
    the kernel has it (5.6+), else BCC's key-by-key walk (two syscalls an entry: 6x slower at 3000
    sockets). The batch gives plain ints as keys, the walk ctypes integers: both become ints."""
    try:
        return [(int(k), v) for k, v in table.items_lookup_batch()]
    except Exception:  # BCC raises a bare Exception when the kernel refuses the batch
        return [(int(k.value), v) for k, v in table.items()]


def socket_ident(key: int, lport: int, rport: int, protocol: int) -> int:
    """A socket row's key: the kernel's key (the struct sock address) with the ports and protocol,
    since an address is reused by later sockets."""
    return hash((key, lport, rport, protocol)) & (2**63 - 1)


def peer_rows(table: Any) -> list[tuple[Any, Any]]:
    """Every (key, value) of the peer table: one batch call where the kernel has it."""
    try:
        return list(table.items_lookup_batch())
    except Exception:  # BCC raises a bare Exception when the kernel refuses the batch
        return list(table.items())


def _struct_of(fields: Iterable[tuple[int, str, Any]]) -> struct.Struct:
    """A Struct reading the (offset, name, ctypes type) fields, in offset order, from a row's start."""
    fmt, pos = "<", 0  # standard sizes (ctypes' own codes are native: "L" is 8 bytes here)
    for offset, _name, kind in fields:
        fmt += "x" * (offset - pos) + {1: "B", 2: "H", 4: "I", 8: "Q"}[ct.sizeof(kind)]
        pos = offset + ct.sizeof(kind)
    return struct.Struct(fmt)


class BatchReader:
    """Every row of the kernel's socket table as raw bytes, read with BPF_MAP_LOOKUP_BATCH into
    buffers kept between polls (BCC's items_lookup_batch allocates buffers for the map's maximum
    and builds a ctypes object per entry: 80 ms for 20,000 sockets), or key by key into the same
    buffers where the kernel has no batch lookup (before 5.6). Rows are decoded with struct
    unpacks straight from the buffer (ctypes attribute access is several times slower), at the
    offsets of the map's own ctypes struct: row ``i`` is ``keys[i]`` and ``view[i * size:]``."""

    def __init__(self, table: Any) -> None:
        self.table = table
        leaf = table.Leaf
        self.size = ct.sizeof(leaf)
        self.keys = (ct.c_uint64 * table.max_entries)()
        self.values = (ct.c_char * (self.size * table.max_entries))()
        self.view = memoryview(self.values).cast("B")
        self.batch = True
        #: the bytes of struct sock_stats (netlat.h) before the addresses: whatever changes when a
        #: row moves (counters, max, pid, ports, closed); the addresses, name and histograms follow
        self.head = leaf.laddr.offset
        self.closed_at = leaf.closed.offset
        scalars = sorted((getattr(leaf, name).offset, name, kind) for name, kind in leaf._fields_
                         if issubclass(kind, ct._SimpleCData))
        self.scalars = _struct_of(scalars)
        self.index = {name: i for i, (_o, name, _k) in enumerate(scalars)}
        #: what a moved row needs decoded: its counters and max
        self.counters = _struct_of([next(x for x in scalars if x[1] == name)
                                    for name in ("tx_packets", "tx_bytes", "rx_packets", "rx_bytes", "max")])
        self.hist_bytes = 4 * bucket_count(SOCKET_SUB_BITS)  # the storage is longer (netlat.h)
        self.at = {name: getattr(leaf, name).offset for name in ("laddr", "raddr", "comm", "send_hist",
                                                                  "recv_hist")}
        self.ident_from, self.ident_to = leaf.pid.offset, leaf.send_hist.offset
        self.send_at, self.recv_at = leaf.send_hist.offset, leaf.recv_hist.offset

    def read(self) -> int:
        """Read every row into the buffers; returns how many there are."""
        if self.batch:
            try:
                return self._lookup_batch()
            except OSError:
                self.batch = False
        total = 0
        for key, value in self.table.items():
            if total == len(self.keys):
                break
            self.keys[total] = int(key.value)
            ct.memmove(ct.addressof(self.values) + total * self.size, ct.addressof(value), self.size)
            total += 1
        return total

    def closed(self, head: bytes) -> bool:
        """Whether a row's head says its socket closed (TCP_CLOSE)."""
        return head[self.closed_at:self.closed_at + 4] != b"\0\0\0\0"

    def identity(self, at: int) -> bytes:
        """The bytes of the row at ``at`` that name its socket (pid, protocol, ports, addresses, comm,
        cgroup, namespace: from pid up to the histograms); equal bytes decode to the same fields."""
        return self.view[at + self.ident_from:at + self.ident_to].tobytes()

    def stats(self, at: int, names: tuple[tuple[Any, ...], tuple[int, int]],
              workload: tuple[int, str, int, str], old: SocketStats | None = None) -> SocketStats:
        """The row at ``at`` as the model's SocketStats, given its :meth:`names` (decoded once per
        socket: the comm and addresses were most of a moved row's cost) and its workload fields
        (cgroup id, cgroup, netns, netns name). The histograms stay raw bytes, decoded only if
        something reads them (the screen shows 200 rows of 20,000); one equal to ``old``'s (often a
        socket moves one way only) is ``old``'s object."""
        view, n = self.view, self.hist_bytes
        tx, txb, rx, rxb, top = self.counters.unpack_from(view, at)
        prefix = names[0]
        at_send, at_recv = at + self.send_at, at + self.recv_at
        send, recv = view[at_send:at_send + n].tobytes(), view[at_recv:at_recv + n].tobytes()
        if old is not None and old.send_hist.raw == send:
            send_hist = old.send_hist
        else:
            send_hist = Histogram.from_raw(send, SOCKET_SUB_BITS)
        if old is not None and old.recv_hist.raw == recv:
            recv_hist = old.recv_hist
        else:
            recv_hist = Histogram.from_raw(recv, SOCKET_SUB_BITS)
        return socket_stats(*prefix, tx, txb, rx, rxb, send_hist, recv_hist, top, *workload, (), 0, 0)

    def names(self, key: int, at: int) -> tuple[tuple[Any, ...], tuple[int, int]]:
        """The identity fields of the row at ``at`` in SocketStats order (key to rport) and its
        (cgroup id, netns)."""
        view, f = self.view, self.scalars.unpack_from(self.view, at)
        i, comm, laddr, raddr = self.index, *(at + self.at[k] for k in ("comm", "laddr", "raddr"))
        family, lport, rport, protocol = f[i["family"]], f[i["lport"]], f[i["rport"]], f[i["protocol"]]
        # An address is reused by later sockets (the kernel side restarts the entry when the ports
        # change), so the key includes the ports: a new socket is a new row.
        prefix = (socket_ident(key, lport, rport, protocol), f[i["pid"]],
                  view[comm:comm + 16].tobytes().split(b"\0", 1)[0].decode(errors="replace"),
                  _PROTO_NAMES.get(protocol, "?"), family,
                  _addr(view[laddr:laddr + 16], family), lport,
                  _addr(view[raddr:raddr + 16], family), rport)
        return prefix, (f[i["cgroup_id"]], f[i["netns"]])

    def _lookup_batch(self) -> int:
        from bcc.libbcc import lib

        fd, cap = self.table.map_fd, self.table.max_entries
        token = count = ct.c_uint32(0)
        total = 0
        while total < cap:
            count.value = cap - total
            res = lib.bpf_lookup_batch(fd, ct.byref(token) if total else None, ct.byref(token),
                                       ct.byref(self.keys, 8 * total),
                                       ct.byref(self.values, self.size * total), ct.byref(count))
            err = ct.get_errno()
            total += count.value
            if res != 0:
                if err == errno.ENOENT:
                    break  # the whole map was read
                raise OSError(err, os.strerror(err))
            if count.value == 0:
                break
        return total


class LiveSource(SourceContext):
    """Real measurements from BPF probes on this kernel."""

    live = True
    kind = "live"

    def __init__(
        self,
        probes: str = "auto",
        filters: Filters | None = None,
        sample: int = 1,
        interval_s: float = 1.0,
        max_sockets: int = DEFAULT_MAX_SOCKETS,
        cost: bool = True,
    ) -> None:
        self.probes = probes
        self.max_sockets = int(max_sockets)
        #: measure our programs' run time (BPF_ENABLE_STATS: the kernel then times every run of
        #: every BPF program on the machine, some 20-40 ns each, while netlat-tui holds it on)
        self.cost = cost
        self._stats_fd: int | None = None
        self._cpu0 = 0.0
        self.filters = filters or Filters()
        self.sample = int(sample)
        self.interval_s = interval_s
        self.plan: Plan | None = None
        self.notes: tuple[str, ...] = ()
        self._bpf: Any = None
        self._t0 = 0.0
        self._seq = 0
        self._events: collections.deque[PacketEvent] = collections.deque(maxlen=MAX_EVENTS_PER_POLL)
        self._events_delivered = 0
        #: by kernel key: [head bytes, identity bytes, decoded names (BatchReader.names), SocketStats]
        #: of its row at the last read
        self._socket_rows: dict[int, list[Any]] = {}
        self._sockets_reader: BatchReader | None = None
        self._idle_since: dict[tuple[int, bytes], float] = {}  # UDP rows: unchanged since
        self._orphan_peers: set[bytes] = set()
        self._uses_ringbuf = True
        self._cgroups = CgroupNames()
        self._netns_names: dict[int, str] = {}

    # ---- building ----

    def prepare(self, task_storage: bool | None = None) -> tuple[Plan, str, list[str]]:
        """Checks, plan choice and the generated C, without loading anything (``--ebpf`` uses it).

        ``task_storage`` overrides feature detection (the start() fallback turns it off)."""
        from tui.bpf import features as kfeatures
        from tui.bpf.btf import workload_offsets
        from tui.bpf.program import build_source, workload_notes

        notes: list[str] = list(preflight())
        feats = kfeatures.detect()
        plan = plans.choose_plan(self.probes, feats, sample=self.sample)
        self._uses_ringbuf = feats.ringbuf
        optional = tuple(t for t in plan.optional_raw_tracepoints if feats.tracepoints.get(t))
        use_task_storage = feats.task_storage if task_storage is None else task_storage
        try:
            text = build_source(plan, self.filters, self.sample, ringbuf=feats.ringbuf,
                                optional_hooks=optional, task_storage=use_task_storage,
                                max_sockets=self.max_sockets)
        except Exception as exc:  # BtfError, OSError from libbpf
            raise SourceError(f"cannot read struct offsets from the kernel BTF: {exc}") from None
        offsets = btf_rule()
        if offsets.message not in notes:  # preflight warned of it already
            notes.append(offsets.message)
        notes += workload_notes(workload_offsets())
        if self.sample > 1:
            notes.append(f"--sample {self.sample}: 1 send call and 1 received packet in {self.sample} "
                         "are followed: latency covers those; path and socket counters count every "
                         "packet and call")
        if not feats.ringbuf:
            notes.append("no BPF ring buffer on this kernel: sampled events use the perf buffer")
        return plan, text, notes

    def start(self) -> None:
        if self._bpf is not None:
            return
        try:
            self._load(None)
        except SourceError:
            # Some kernels have task storage but refuse it in this program type (older than the
            # helper's tracing support): the hash-map fallback works everywhere.
            self._load(False)
            self.notes = (*self.notes, "per-thread state in a hash map (task storage refused)")
        if self.cost and self._stats_fd is None:
            try:
                self._stats_fd = enable_stats()
            except (OSError, AttributeError) as exc:  # AttributeError: a libbpf without the call
                self.notes = (*self.notes, f"probe cost not measured: BPF_ENABLE_STATS refused ({exc})")
        self._t0 = time.monotonic()
        self._cpu0 = time.process_time()

    def _load(self, task_storage: bool | None) -> None:
        plan, text, notes = self.prepare(task_storage)

        with captured_stderr() as chatter:
            try:
                bpf = _bpf_class(plan)(text=text.encode())
            except Exception as exc:  # BCC raises plain Exception on compile, load or attach errors
                why = error_line(chatter(), exc)
                raise SourceError(f"cannot load the {plan.info.name} probes: {why}") from None
        self._bpf = bpf
        self.plan = plan
        self.notes = tuple(notes)
        with captured_stderr() as chatter:
            refused: dict[str, str] = {}
            try:
                hooks = attach(bpf, plan, refused)
            except Exception as exc:  # BCC raises plain Exception when a load or attach fails
                self.close()
                why = error_line(chatter(), exc)
                raise SourceError(f"cannot attach the {plan.info.name} probes: {why}") from None
        try:
            self.plan = plans.attached_plan(plan, hooks, self.probes, refused)
        except UserError as exc:
            self.close()
            raise SourceError(one_line(exc)) from None
        if refused and not self.plan.fentry:
            self.notes = (*self.notes, f"fentry refused by every hook (e.g. {next(iter(refused.values()))}): "
                          "the kprobe plan runs")
        elif refused:
            self.notes = (*self.notes, f"fentry refused, kprobe instead: {', '.join(sorted(refused))} "
                          f"(e.g. {next(iter(refused.values()))})")
        try:
            if self._uses_ringbuf:
                bpf[b"events"].open_ring_buffer(self._on_event)
            else:
                bpf[b"events"].open_perf_buffer(self._on_perf_event, page_cnt=64)
        except Exception as exc:
            self.close()
            raise SourceError(f"cannot open the event buffer: {one_line(exc)}") from None

    def set_filters(self, filters: Filters) -> None:
        """Recompile and re-attach with new filters; counts start from zero again.

        Filters are compile-time constants of the C (``#define``): with no filter the checks are
        not in the program at all, so the common case pays nothing per packet, where a config map
        would cost a lookup in every hook. A change is rare and the rebuild takes a second or two.
        """
        was_running = self._bpf is not None
        self.close()
        self.filters = filters
        self._seq = 0
        self._events.clear()
        self._events_delivered = 0
        self._socket_rows = {}
        self._sockets_reader = None
        if was_running:
            self.start()

    def close(self) -> None:
        fd, self._stats_fd = self._stats_fd, None
        if fd is not None:
            os.close(fd)  # the kernel stops timing runs once no one holds stats on
        bpf, self._bpf = self._bpf, None
        if bpf is not None:
            with contextlib.suppress(Exception):
                bpf.cleanup()  # detaches every program and closes every map

    # ---- reading ----

    def _on_event(self, _ctx: Any, data: Any, _size: int) -> None:
        self._decode(self._bpf[b"events"].event(data))

    def _on_perf_event(self, _cpu: int, data: Any, _size: int) -> None:
        self._decode(self._bpf[b"events"].event(data))

    def _decode(self, ev: Any) -> None:
        path = SEND if ev.path == PATH_INDEX[SEND] else RECV
        keys = plans.EVENT_STAGES[path]  # struct event.stages_ns, by stage slot
        stages = {k: int(ev.stages_ns[i]) for i, k in enumerate(keys) if ev.stages_ns[i]}
        stages = _split_l3(stages, path, int(ev.l3_ns))
        if self.plan is not None:  # only the stages this plan declares
            declared = {s.key for s in self.plan.info.stages.get(path, ())}
            stages = {k: v for k, v in stages.items() if k in declared}
        family = int(ev.family)
        self._events_delivered += 1
        self._events.append(
            PacketEvent(
                time_ns=int(ev.time_ns), path=path, pid=int(ev.pid),
                comm=bytes(ev.comm).split(b"\0", 1)[0].decode(errors="replace"),
                protocol=_PROTO_NAMES.get(int(ev.protocol), "?"),
                laddr=_addr(ev.laddr, family), lport=int(ev.lport),
                raddr=_addr(ev.raddr, family), rport=int(ev.rport),
                length=int(ev.len), stages_ns=stages, total_ns=int(ev.total_ns),
                deferred=bool(ev.deferred), **self._workload(int(ev.cgroup_id), int(ev.netns)),
            )
        )

    def _workload(self, cgroup_id: int, netns: int) -> dict[str, Any]:
        """The cgroup and network namespace fields of a socket or event, names resolved here."""
        return {"cgroup_id": cgroup_id, "cgroup": self._cgroups.path(cgroup_id), "netns": netns,
                "netns_name": self._netns_names.get(netns, "")}

    def poll(self) -> Snapshot | None:
        bpf, plan = self._bpf, self.plan
        if bpf is None or plan is None:
            raise SourceError("live source polled before start()")
        self._netns_names = netns_names()  # a handful of stat() calls: namespaces come and go
        if self._uses_ringbuf:
            bpf.ring_buffer_consume()
        else:
            bpf.perf_buffer_poll(timeout=0)
        hists = self._read_hists()
        counters = self._read_counters()
        programs = program_counts(bpf)
        for path, missed in self._misses(programs).items():
            counters[path]["missed"] = counters[path].get("missed", 0) + missed
        paths = {}
        for path in plan.info.stages:
            def stats(specs: tuple, path: str = path) -> tuple[StageStats, ...]:
                return tuple(StageStats(s, *hists[path][s.key]) for s in specs)

            paths[path] = PathStats(
                path=path,
                stages=stats(plan.info.stages[path]),
                totals=stats(plan.info.totals.get(path, ())),
                counters=counters[path],
            )
        events = tuple(self._events)
        self._events.clear()
        lost = sum(counters[p].get("events_lost", 0) for p in counters)
        sockets = self._with_peers(self._read_sockets())
        seen, dropped = self._read_socktab()
        self._seq += 1
        return Snapshot(
            seq=self._seq,
            time_s=time.monotonic() - self._t0,
            meta=SourceMeta(
                source="live", host=os.uname().nodename, kernel=os.uname().release,
                filters=self.filters.describe(), notes=self.notes,
            ),
            plan=plan.info,
            paths=paths,
            sockets=sockets,
            sockets_seen=seen,
            sockets_dropped=dropped,
            sockets_max=self.max_sockets,
            events=events,
            events_lost=lost,
            events_total=self._events_delivered,
            cost=self._cost(programs),
        )

    def _read_hists(self) -> dict[str, dict[str, tuple[Histogram, int]]]:
        table = self._bpf[b"stage_hists"]
        out: dict[str, dict[str, tuple[Histogram, int]]] = {}
        for path, slots in SLOTS.items():
            out[path] = {}
            for key, slot in slots.items():
                per_cpu = table[table.Key(PATH_INDEX[path] * SLOTS_PER_PATH + slot)]
                counts = [0] * bucket_count(STAGE_SUB_BITS)  # storage is longer (netlat.h)
                top = 0
                for cpu in per_cpu:
                    for i, c in enumerate(cpu.buckets[: len(counts)]):
                        if c:
                            counts[i] += c
                    top = max(top, cpu.max)
                out[path][key] = (Histogram(tuple(counts), STAGE_SUB_BITS), top)
        return out

    def _read_counters(self) -> dict[str, dict[str, int]]:
        table = self._bpf[b"path_counters"]
        out: dict[str, dict[str, int]] = {}
        for path, names in COUNTERS.items():
            per_cpu = table[table.Key(PATH_INDEX[path])]
            out[path] = {name: sum(cpu.c[i] for cpu in per_cpu) for name, i in names.items()}
        return out

    @staticmethod
    def _misses(programs: dict[str, tuple[int, int, int]]) -> dict[str, int]:
        """Per path, the runs of its programs that the kernel skipped."""
        out: dict[str, int] = {}
        for function, (_runs, _ns, missed) in programs.items():
            path = program_path(function)
            out[path] = out.get(path, 0) + missed
        return out

    def _read_socktab(self) -> tuple[int, int]:
        """(rows created, sockets refused a row because the table was full), cumulative."""
        table = self._bpf[b"socktab"]
        return (sum(table[table.Key(0)]), sum(table[table.Key(1)]))

    def _cost(self, programs: dict[str, tuple[int, int, int]]) -> Cost:
        """Our programs' run time (counted only while stats are on: while we hold them, or someone
        set kernel.bpf_stats_enabled), our own CPU time and resident memory."""
        try:
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            rss = 0
        return Cost(
            wall_s=time.monotonic() - self._t0, cpu_s=time.process_time() - self._cpu0, rss_bytes=rss,
            bpf_ns=sum(ns for _runs, ns, _missed in programs.values()),
            bpf_runs=sum(runs for runs, _ns, _missed in programs.values()),
            bpf_measured=self._stats_fd is not None,
        )

    def _read_sockets(self) -> tuple[SocketStats, ...]:
        # A row whose head (its counters, max, pid, ports and closed flag: the bytes before laddr)
        # did not change since the last tick keeps last tick's SocketStats. A moved row whose
        # identity bytes did not change keeps its decoded names (comm, addresses, ident), so with
        # every one of 20,000 rows moving a tick decodes only counters and copies two histograms.
        # Each row's state is one list updated in place (not a tuple a tick: garbage collector
        # work) and one dict lookup a row.
        rows: dict[int, list[Any]] = {}  # kernel key -> [head bytes, identity bytes, names, stats]
        previous = self._socket_rows
        table = self._bpf[b"sockets"]
        if self._sockets_reader is None:
            self._sockets_reader = BatchReader(table)
        reader, closed, now = self._sockets_reader, [], time.monotonic()
        named: dict[tuple[int, int], tuple[int, str, int, str]] = {}  # most rows share a few groups

        def workload(cgroup_id: int, netns: int) -> tuple[int, str, int, str]:
            names = named.get((cgroup_id, netns))
            if names is None:
                w = self._workload(cgroup_id, netns)
                names = named[(cgroup_id, netns)] = (cgroup_id, w["cgroup"], netns, w["netns_name"])
            return names

        idle_since, self._idle_since = self._idle_since, {}
        # Hot with 20,000 rows: BatchReader.identity() and closed() inlined (a call costs 2-3% each)
        view, size, head_size, stats_of = reader.view, reader.size, reader.head, reader.stats
        ident_from, ident_to = reader.ident_from, reader.ident_to
        closed_from, closed_to = reader.closed_at, reader.closed_at + 4
        keys = reader.keys[:reader.read()]
        for key, at in zip(keys, range(0, len(keys) * size, size), strict=True):
            head = view[at:at + head_size].tobytes()
            row = rows[key] = previous.get(key)
            cached = row is not None and row[0] == head
            if not cached:
                ident = view[at + ident_from:at + ident_to].tobytes()
                if row is None:
                    row = rows[key] = [head, ident, reader.names(key, at), None]
                elif row[1] != ident:
                    row[0], row[1], row[2] = head, ident, reader.names(key, at)
                else:
                    row[0] = head
                names = row[2]
                row[3] = stats_of(at, names, named.get(names[1]) or workload(*names[1]), row[3])
            if head[closed_from:closed_to] != b"\0\0\0\0":
                closed.append(key)  # its last counts are in this snapshot; the row goes after it
            elif row[3].protocol == "UDP":
                # No hook tells when a UDP socket closes: a row idle for UDP_IDLE_S goes (a live
                # socket that sends again gets a new row; windows are sums of intervals, so they
                # lose nothing)
                since = idle_since.get((key, head), now) if cached else now
                self._idle_since[(key, head)] = since
                if now - since >= UDP_IDLE_S:
                    closed.append(key)
        for key in closed:
            with contextlib.suppress(KeyError):
                del table[table.Key(key)]
        self._socket_rows = rows
        return tuple(row[3] for row in rows.values())

    def _with_peers(self, sockets: tuple[SocketStats, ...]) -> tuple[SocketStats, ...]:
        """UDP sockets with their busiest peers from the kernel's peer table. Rows of a socket that
        has no row in the socket table at two reads in a row (closed, evicted, or filtered out) are
        deleted: the table is bounded and a full one refuses new peers (counted as drops)."""
        udp = {s.key: s for s in sockets if s.protocol == "UDP"}
        table = self._bpf[b"peers"]
        peers: dict[int, list[PeerStats]] = {}
        raw_of: dict[int, int] = {}
        orphans: set[bytes] = set()
        for k, v in peer_rows(table):
            pa = k.peer
            family = 4 if int(pa.family) == 2 else 6
            port = int(pa.port)
            ident = next((i for rport in (0, port) if (i := socket_ident(int(k.sk), int(pa.lport), rport, 17))
                          in udp), None)
            if ident is None:
                raw = bytes(k)
                orphans.add(raw)
                if raw in self._orphan_peers:
                    with contextlib.suppress(Exception):
                        del table[k]
                continue
            raw_of[ident] = int(k.sk)
            tx, rx, timed = int(v.tx_packets), int(v.rx_packets), int(v.rx_timed)
            peers.setdefault(ident, []).append(PeerStats(
                addr=_addr(pa.addr, family), port=port,
                tx_packets=tx, tx_bytes=int(v.tx_bytes), rx_packets=rx, rx_bytes=int(v.rx_bytes),
                tx_mean_ns=int(v.tx_ns) / tx if tx else None,
                rx_mean_ns=int(v.rx_ns) / timed if timed else None, rx_max_ns=int(v.rx_max),
            ))
        self._orphan_peers = orphans
        if not peers:
            return sockets
        drops_table = self._bpf[b"peer_drops"]
        drops = {int(k.value): int(v.value) for k, v in drops_table.items()} if raw_of else {}
        out = []
        for sock in sockets:
            mine = peers.get(sock.key)
            if mine:
                mine.sort(key=lambda p: -p.packets)
                sock = replace(sock, peers=tuple(mine[:PEERS_SHOWN]), peer_count=len(mine),
                               peer_drops=drops.get(raw_of[sock.key], 0))
            out.append(sock)
        return tuple(out)

    def prog_stats(self) -> dict[str, tuple[int, int]]:
        """Per-program (run_cnt, run_time_ns) while kernel.bpf_stats_enabled=1 (benchmarks)."""
        from tui.bpf.stats import program_stats

        if self._bpf is None:
            return {}
        return program_stats(self._bpf)


def _bpf_class(plan: Plan) -> Any:
    """BCC's BPF class; for the fentry plan one that leaves its kfunc__/kretfunc__ programs alone.

    BCC attaches every program named kfunc__* or kretfunc__* while it loads the module, and one
    refusal fails the whole load; attach() tries them hook by hook instead, with each hook's kprobe
    as the fallback (the fentry plan's C has no other auto-attached program)."""
    from bcc import BPF

    if not plan.fentry:
        return BPF

    class ManualFentryBPF(BPF):
        def _trace_autoload(self) -> None:
            pass

    return ManualFentryBPF


def _compiled_name(bpf: Any, program: str) -> str:
    """The name BCC gave a fentry/fexit program: ``kfunc__<symbol>`` (BCC 0.26), or with the module
    since BCC learnt module targets (``kfunc__vmlinux__<symbol>``, 0.31 in Debian 13)."""
    from bcc import lib

    prefix, symbol = program.split("__", 1)
    for name in (f"{prefix}__vmlinux__{symbol}", program):
        if lib.bpf_function_start(bpf.module, name.encode()):
            return name
    return program  # BCC's attach then says it does not know it: the hook takes its kprobe


def _attach_fentry(bpf: Any, items: tuple[tuple[str, str, str], ...]) -> str | None:
    """Attach one hook's fentry/fexit programs, all or none (a half-attached hook is detached);
    None when attached, else why not (BCC's message)."""
    done: list[tuple[str, str]] = []
    try:
        for kind, _symbol, named in items:
            program = _compiled_name(bpf, named)
            if kind == "fentry":
                bpf.attach_kfunc(fn_name=program.encode())
            else:
                bpf.attach_kretfunc(fn_name=program.encode())
            done.append((kind, program))
    except Exception as exc:  # BCC: plain Exception (no BTF entry, verifier, attach refused)
        for kind, program in done:
            with contextlib.suppress(Exception):
                (bpf.detach_kfunc if kind == "fentry" else bpf.detach_kretfunc)(fn_name=program.encode())
        return one_line(exc)
    return None


def attach(bpf: Any, plan: Plan, refused: dict[str, str] | None = None) -> tuple[tuple[str, str, str], ...]:
    """Explicit attachments of plans whose C does not auto-attach (kprobe and fentry plans); the
    fentry plan tries fentry per hook and falls back to the hook's kprobes where it is refused
    (``refused`` gets hook -> why). Returns what was attached: (hook, symbol or tracepoint, type)."""
    refused = {} if refused is None else refused
    hooks: list[tuple[str, str, str]] = []
    by_symbol = {sym: hook for hook, sym in plan.kprobes.items()}
    on_fentry = set()
    for hook, items in plan.fentry.items():
        why = _attach_fentry(bpf, items)
        if why is None:
            on_fentry.add(plan.kprobes[hook])
            hooks += [(hook, symbol, kind) for kind, symbol, _program in items]
        else:
            refused[hook] = why
    for kind, target, fn in plan.attach:
        if kind in ("kprobe", "kretprobe"):
            if target in on_fentry:
                continue
            hooks.append((by_symbol.get(target, target), target, kind))
        else:
            hooks.append((target, target, kind))
        if kind == "kprobe":
            bpf.attach_kprobe(event=target.encode(), fn_name=fn.encode())
        elif kind == "kretprobe":
            bpf.attach_kretprobe(event=target.encode(), fn_name=fn.encode())
        elif kind == "raw_tracepoint":
            bpf.attach_raw_tracepoint(tp=target.encode(), fn_name=fn.encode())
        else:  # pragma: no cover - plans.py only makes the kinds above
            raise ValueError(f"unknown attach kind {kind!r}")
    if not plan.attach:  # tracepoint plan: BCC attached its raw tracepoints while loading
        hooks += [(tp.split(":", 1)[1], tp, "raw_tracepoint") for tp in plan.raw_tracepoints]
    return tuple(hooks)


__all__ = ["LiveSource", "SourceError", "UserError"]
