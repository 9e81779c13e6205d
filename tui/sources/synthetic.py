"""A deterministic source for tests, screenshots and demos: same seed, same snapshots, no clock.

It draws per-stage latencies from fixed log-normal distributions with a seeded generator and
advances a virtual clock by ``interval_s`` per poll, so snapshot tests never see live data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from tui.bpf.plans import TRACEPOINT_INFO
from tui.model.histogram import SOCKET_SUB_BITS, Histogram, bucket_index
from tui.model.snapshot import (
    PEERS_SHOWN,
    RECV,
    SEND,
    PacketEvent,
    PathStats,
    PeerStats,
    Snapshot,
    SocketStats,
    SourceMeta,
    StageSpec,
    StageStats,
)
from tui.sources.base import ItemFilters, SourceContext

#: The tracepoint plan's own stages (what this machine's live source measures), so the demo and the
#: screenshots show exactly the rows a live run shows.
SYNTHETIC_PLAN = replace(TRACEPOINT_INFO, name="synthetic", merged=("synthetic data: no probes attached",))

#: Send packets of a TCP flow that leave outside their send syscall (ACK clocking, timers): one in ...
DEFERRED_EVERY = 9

#: (median ns, log-normal sigma) per stage key
_SHAPES: dict[str, tuple[float, float]] = {
    "tcp_ip": (9_000, 0.45),
    "qdisc": (600, 0.6),
    "device": (2_500, 0.5),
    "backlog": (4_000, 0.7),
    "ip_tcp": (7_000, 0.5),
    "sock_queue": (30_000, 1.1),
    "copy": (1_500, 0.4),
}

#: The demo's episode: from this tick on, this stage is this many times slower (a qdisc building a
#: queue), so the verdict line and the heatmap have something to show. (stage key, tick, factor)
DEMO_STEP: tuple[str, int, float] = ("qdisc", 12, 1_500.0)


#: Each demo process's workload: its cgroup (id, path below the cgroup2 mount) and network
#: namespace (inode, ip netns name): a systemd unit, a Docker container, a Kubernetes pod's
#: container and a pod, so the socket table's groups show each kind of short name.
_WORKLOADS: dict[str, dict[str, object]] = {
    comm: {"cgroup_id": cg_id, "cgroup": path, "netns": ns, "netns_name": ns_name}
    for comm, (cg_id, path, ns, ns_name) in {
        "nginx": (2101, "/system.slice/nginx.service", 4026531840, ""),
        "redis-server": (2202, "/system.slice/docker-3f2a9c1e7b5d4a6c8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b"
                               "5c6d7e8f9a0b1c2d.scope", 4026532301, ""),
        "postgres": (2303, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7c1e2d3f_"
                           "4a5b_6c7d_8e9f_0a1b2c3d4e5f.slice/cri-containerd-9b8a7c6d5e4f3a2b1c0d9e8f"
                           "7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f.scope", 4026532417,
                     "cni-7c1e2d3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"),
        "coredns": (2404, "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod5e6f7a8b_"
                          "9c0d_1e2f_3a4b_5c6d7e8f9a0b.slice", 4026532519,
                    "cni-5e6f7a8b-9c0d-1e2f-3a4b-5c6d7e8f9a0b"),
    }.items()
}


@dataclass
class _Flow:
    key: int
    pid: int
    comm: str
    protocol: str
    family: int
    laddr: str
    lport: int
    raddr: str
    rport: int
    weight: int  # relative packet rate
    size: int  # bytes per packet


#: The demo resolver's clients: (address, port, share of its datagrams).
_DEMO_PEERS = tuple((f"10.0.{i // 8}.{10 + i}", 30000 + 17 * i, 1.0 / (i + 1)) for i in range(14))


def _demo_peers(s: dict) -> dict:
    """A UDP socket's peers, from its totals (deterministic: shares of its counts and times)."""
    total = sum(share for *_, share in _DEMO_PEERS)
    send, recv = Histogram(tuple(s[SEND]), SOCKET_SUB_BITS), Histogram(tuple(s[RECV]), SOCKET_SUB_BITS)
    peers = []
    for i, (addr, port, share) in enumerate(_DEMO_PEERS[:PEERS_SHOWN]):
        slower = 1.0 + 0.15 * i
        part = share / total
        peers.append(PeerStats(
            addr=addr, port=port, tx_packets=int(s["tx"] * part), tx_bytes=int(s["txb"] * part),
            rx_packets=int(s["rx"] * part), rx_bytes=int(s["rxb"] * part),
            tx_mean_ns=(send.percentile(50) or 0) * slower or None,
            rx_mean_ns=(recv.percentile(50) or 0) * slower or None,
            rx_max_ns=int((recv.percentile(99) or 0) * slower),
        ))
    return {"peers": tuple(peers), "peer_count": len(_DEMO_PEERS)}


_FLOWS = (
    _Flow(0xA1, 4242, "nginx", "TCP", 4, "10.0.0.1", 443, "10.0.0.7", 51514, 8, 1448),
    _Flow(0xA2, 4242, "nginx", "TCP", 4, "10.0.0.1", 443, "10.0.0.9", 40022, 5, 900),
    _Flow(0xA3, 1337, "redis-server", "TCP", 4, "127.0.0.1", 6379, "127.0.0.1", 39020, 12, 64),
    _Flow(0xA4, 777, "postgres", "TCP", 6, "::1", 5432, "::1", 48810, 3, 512),
    _Flow(0xA5, 901, "coredns", "UDP", 4, "127.0.0.53", 53, "127.0.0.1", 60001, 2, 120),
)


class SyntheticSource(ItemFilters, SourceContext):
    """Deterministic snapshots: ``packets_per_tick`` packets per path per poll, seeded."""

    kind = "demo"

    def __init__(
        self,
        seed: int = 7,
        interval_s: float = 0.5,
        packets_per_tick: int = 400,
        events_per_tick: int = 6,
        limit: int | None = None,
        step: tuple[str, int, float] | None = DEMO_STEP,
    ) -> None:
        self.interval_s = interval_s
        #: (stage key, first tick, factor): the stage is that much slower from that tick on
        self.step = step
        self._seed = seed
        self._per_tick = packets_per_tick
        self._events_per_tick = events_per_tick
        self._limit = limit
        self._started = False
        self._reset()

    def _reset(self) -> None:
        self._rng = random.Random(self._seed)
        self._seq = 0
        self._stage_counts = {
            path: {s.key: [0] * len(Histogram.empty().counts) for s in SYNTHETIC_PLAN.specs(path)}
            for path in SYNTHETIC_PLAN.stages
        }
        self._stage_max = {path: dict.fromkeys(c, 0) for path, c in self._stage_counts.items()}
        self._sockets = {
            f.key: {"tx": 0, "txb": 0, "rx": 0, "rxb": 0, "max": 0,
                    SEND: [0] * len(Histogram.empty(SOCKET_SUB_BITS).counts),
                    RECV: [0] * len(Histogram.empty(SOCKET_SUB_BITS).counts)}
            for f in _FLOWS
        }
        self._packets = {SEND: 0, RECV: 0}
        self._deferred = self._udp = 0
        self._events_total = 0
        self._events_lost = 0

    def start(self) -> None:
        self._started = True

    def close(self) -> None:
        self._started = False

    def _draw(self, key: str, tick: int) -> int:
        median, sigma = _SHAPES[key]
        # A slow wave on the socket queue so the live view visibly moves.
        if key == "sock_queue":
            median *= 1.0 + 0.5 * ((tick % 8) / 8.0)
        if self.step is not None and key == self.step[0] and tick >= self.step[1]:
            median *= self.step[2]
        return max(1, int(self._rng.lognormvariate(0.0, sigma) * median))

    def _stages(
        self, path: str, flow: _Flow, tick: int, deferred: bool
    ) -> tuple[dict[str, int], dict[str, int]]:
        """One packet: (the histograms it lands in, the stage split its sampled event shows), as the
        tracepoint plan measures it. A deferred TCP packet or a UDP datagram lands only in the
        ``deferred`` or ``udp_l2`` total; a received UDP datagram has no socket queue/copy split
        (UDP's copy to user has no tracepoint), only its own total to the application."""
        split = {s.key: self._draw(s.key, tick) for s in SYNTHETIC_PLAN.stages[path]}
        if path == SEND:
            if flow.protocol == "UDP" or deferred:
                l2 = {"qdisc": split["qdisc"], "device": split["device"]}
                return {"udp_l2" if flow.protocol == "UDP" else "deferred": sum(l2.values())}, l2
            return {**split, "total": sum(split.values())}, split
        split["stack"] = split["backlog"] + split["ip_tcp"]
        if flow.protocol == "UDP":
            udp = {k: split[k] for k in ("backlog", "ip_tcp", "stack")}
            udp["udp_e2e"] = split["stack"] + split["sock_queue"] + split["copy"]
            return udp, {k: split[k] for k in ("backlog", "ip_tcp")}
        e2e = split["stack"] + split["sock_queue"] + split["copy"]
        return {**split, "e2e": e2e}, {k: v for k, v in split.items() if k != "stack"}

    def _one_packet(self, path: str, flow: _Flow, tick: int, deferred: bool) -> tuple[dict[str, int], int]:
        """Count one packet; returns its event's stage split and its total."""
        stages, split = self._stages(path, flow, tick, deferred)
        counts, maxes = self._stage_counts[path], self._stage_max[path]
        for key, value in stages.items():
            counts[key][bucket_index(value)] += 1
            maxes[key] = max(maxes[key], value)
        sock = self._sockets[flow.key]
        total = max(stages.values())  # the packet's widest total: send total, e2e, stack or L2 only
        sock[path][bucket_index(total, SOCKET_SUB_BITS)] += 1
        sock["max"] = max(sock["max"], total)
        if path == SEND:
            sock["tx"] += 1
            sock["txb"] += flow.size
            self._deferred += "deferred" in stages
            self._udp += "udp_l2" in stages
        else:
            sock["rx"] += 1
            sock["rxb"] += flow.size
        self._packets[path] += 1
        return split, total

    def poll(self) -> Snapshot | None:
        if self._limit is not None and self._seq >= self._limit:
            return None
        self._seq += 1
        tick = self._seq
        weights = [f.weight for f in _FLOWS]
        events: list[PacketEvent] = []
        for path in (SEND, RECV):
            flows = self._rng.choices(_FLOWS, weights=weights, k=self._per_tick)
            for n, flow in enumerate(flows):
                deferred = path == SEND and flow.protocol == "TCP" and n % DEFERRED_EVERY == 1
                split, total = self._one_packet(path, flow, tick, deferred)
                if n < self._events_per_tick // 2:
                    events.append(
                        PacketEvent(
                            time_ns=int(tick * self.interval_s * 1e9) + n * 1000,
                            path=path, pid=0 if deferred else flow.pid,
                            comm="" if deferred else flow.comm, protocol=flow.protocol,
                            laddr=flow.laddr, lport=flow.lport, raddr=flow.raddr,
                            rport=flow.rport, length=flow.size,
                            stages_ns=split, total_ns=total,
                            deferred=deferred, **_WORKLOADS[flow.comm],  # type: ignore[arg-type]
                        )
                    )
        self._events_total += len(events)
        self._events_lost += tick % 3
        return self.narrowed(self._snapshot(tick, tuple(events)))

    def _snapshot(self, tick: int, events: tuple[PacketEvent, ...]) -> Snapshot:
        paths = {}
        for path in (SEND, RECV):
            counts, maxes = self._stage_counts[path], self._stage_max[path]

            def stats(specs: tuple[StageSpec, ...]) -> tuple[StageStats, ...]:
                return tuple(
                    StageStats(s, Histogram(tuple(counts[s.key])), maxes[s.key])  # noqa: B023
                    for s in specs
                )

            paths[path] = PathStats(
                path=path,
                stages=stats(SYNTHETIC_PLAN.stages[path]),
                totals=stats(SYNTHETIC_PLAN.totals[path]),
                counters={"packets": self._packets[path],
                          **({"deferred": self._deferred, "udp": self._udp} if path == SEND else {})},
            )
        sockets = tuple(
            SocketStats(
                key=f.key, pid=f.pid, comm=f.comm, protocol=f.protocol, family=f.family,
                laddr=f.laddr, lport=f.lport, raddr=f.raddr, rport=f.rport,
                tx_packets=s["tx"], tx_bytes=s["txb"], rx_packets=s["rx"], rx_bytes=s["rxb"],
                send_hist=Histogram(tuple(s[SEND]), SOCKET_SUB_BITS),
                recv_hist=Histogram(tuple(s[RECV]), SOCKET_SUB_BITS),
                max_ns=s["max"], **_WORKLOADS[f.comm],  # type: ignore[arg-type]
                **(_demo_peers(s) if f.protocol == "UDP" else {}),
            )
            for f in _FLOWS
            for s in (self._sockets[f.key],)
        )
        return Snapshot(
            seq=tick,
            time_s=tick * self.interval_s,
            meta=SourceMeta(source="synthetic", host="demo-host", kernel="6.18.0-demo"),
            plan=SYNTHETIC_PLAN,
            paths=paths,
            sockets=sockets,
            events=events,
            events_lost=self._events_lost,
            events_total=self._events_total,
        )
