"""A deterministic source for tests, screenshots and demos: same seed, same snapshots, no clock.

It draws per-stage latencies from fixed log-normal distributions with a seeded generator and
advances a virtual clock by ``interval_s`` per poll, so snapshot tests never see live data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tui.model.histogram import SOCKET_SUB_BITS, Histogram, bucket_index
from tui.model.snapshot import (
    RECV,
    SEND,
    PacketEvent,
    PathStats,
    PlanInfo,
    Snapshot,
    SocketStats,
    SourceMeta,
    StageSpec,
    StageStats,
)
from tui.sources.base import SourceContext

SYNTHETIC_PLAN = PlanInfo(
    name="synthetic",
    stages={
        SEND: (
            StageSpec("tcp_ip", "TCP+IP", "L4/L3", "tcp:tcp_sendmsg_locked", "net:net_dev_queue"),
            StageSpec("qdisc", "qdisc", "L2", "net:net_dev_queue", "net:net_dev_start_xmit"),
            StageSpec("device", "device", "L2", "net:net_dev_start_xmit", "net:net_dev_xmit"),
        ),
        RECV: (
            StageSpec("backlog", "backlog", "L2", "net:netif_rx", "net:netif_receive_skb"),
            StageSpec("ip_tcp", "IP+TCP", "L3/L4", "net:netif_receive_skb", "sock:sk_data_ready"),
            StageSpec(
                "sock_queue", "socket queue", "L5", "sock:sk_data_ready",
                "skb:skb_copy_datagram_iovec",
            ),
            StageSpec(
                "copy", "copy to user", "L5", "skb:skb_copy_datagram_iovec",
                "sock:sock_recv_length",
            ),
        ),
    },
    totals={
        SEND: (
            StageSpec(
                "total", "send total", "L4-L2", "tcp:tcp_sendmsg_locked", "net:net_dev_xmit",
                total=True,
            ),
        ),
        RECV: (
            StageSpec(
                "stack", "stack total", "L2-L4", "net:netif_rx", "sock:sk_data_ready", total=True
            ),
            StageSpec(
                "e2e", "to application", "L2-L5", "net:netif_rx", "sock:sock_recv_length",
                total=True,
            ),
        ),
    },
    merged=("synthetic data: no probes attached",),
)

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


_FLOWS = (
    _Flow(0xA1, 4242, "nginx", "TCP", 4, "10.0.0.1", 443, "10.0.0.7", 51514, 8, 1448),
    _Flow(0xA2, 4242, "nginx", "TCP", 4, "10.0.0.1", 443, "10.0.0.9", 40022, 5, 900),
    _Flow(0xA3, 1337, "redis-server", "TCP", 4, "127.0.0.1", 6379, "127.0.0.1", 39020, 12, 64),
    _Flow(0xA4, 777, "postgres", "TCP", 6, "::1", 5432, "::1", 48810, 3, 512),
    _Flow(0xA5, 901, "coredns", "UDP", 4, "127.0.0.53", 53, "127.0.0.1", 60001, 2, 120),
)


class SyntheticSource(SourceContext):
    """Deterministic snapshots: ``packets_per_tick`` packets per path per poll, seeded."""

    def __init__(
        self,
        seed: int = 7,
        interval_s: float = 0.5,
        packets_per_tick: int = 400,
        events_per_tick: int = 6,
        limit: int | None = None,
    ) -> None:
        self.interval_s = interval_s
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
        return max(1, int(self._rng.lognormvariate(0.0, sigma) * median))

    def _one_packet(self, path: str, flow: _Flow, tick: int) -> dict[str, int]:
        stages = {s.key: self._draw(s.key, tick) for s in SYNTHETIC_PLAN.stages[path]}
        if path == SEND:
            stages["total"] = sum(stages.values())
        else:
            stages["stack"] = stages["backlog"] + stages["ip_tcp"]
            stages["e2e"] = sum(v for k, v in stages.items() if k != "stack")
        counts, maxes = self._stage_counts[path], self._stage_max[path]
        for key, value in stages.items():
            counts[key][bucket_index(value)] += 1
            maxes[key] = max(maxes[key], value)
        sock = self._sockets[flow.key]
        total = stages["total"] if path == SEND else stages["e2e"]
        sock[path][bucket_index(total, SOCKET_SUB_BITS)] += 1
        sock["max"] = max(sock["max"], total)
        if path == SEND:
            sock["tx"] += 1
            sock["txb"] += flow.size
        else:
            sock["rx"] += 1
            sock["rxb"] += flow.size
        self._packets[path] += 1
        return stages

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
                stages = self._one_packet(path, flow, tick)
                if n < self._events_per_tick // 2:
                    total_key = "total" if path == SEND else "e2e"
                    events.append(
                        PacketEvent(
                            time_ns=int(tick * self.interval_s * 1e9) + n * 1000,
                            path=path, pid=flow.pid, comm=flow.comm, protocol=flow.protocol,
                            laddr=flow.laddr, lport=flow.lport, raddr=flow.raddr,
                            rport=flow.rport, length=flow.size,
                            stages_ns={
                                s.key: stages[s.key] for s in SYNTHETIC_PLAN.stages[path]
                            },
                            total_ns=stages[total_key],
                            deferred=path == SEND and n == 1,
                        )
                    )
        self._events_total += len(events)
        self._events_lost += tick % 3
        return self._snapshot(tick, tuple(events))

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
                          **({"deferred": self._packets[path] // 9} if path == SEND else {})},
            )
        sockets = tuple(
            SocketStats(
                key=f.key, pid=f.pid, comm=f.comm, protocol=f.protocol, family=f.family,
                laddr=f.laddr, lport=f.lport, raddr=f.raddr, rport=f.rport,
                tx_packets=s["tx"], tx_bytes=s["txb"], rx_packets=s["rx"], rx_bytes=s["rxb"],
                send_hist=Histogram(tuple(s[SEND]), SOCKET_SUB_BITS),
                recv_hist=Histogram(tuple(s[RECV]), SOCKET_SUB_BITS),
                max_ns=s["max"],
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
