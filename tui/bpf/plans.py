"""Probe plans: which kernel events a plan hooks, which stages it measures, and picking one.

A plan's stages are the contract with the UI and the JSON (tui.model.snapshot.PlanInfo) and with
the BPF C: the tables below are the one source of the stage slot and counter numbers, which
tui.bpf.program generates into the C (``SLOT_SEND_*``, ``SLOT_RECV_*``, ``CTR_*``). Every plan
writes the same maps, so the live source reads any plan the same way; only the boundaries (and so
the merged layers) differ.

- ``tracepoint``: stable tracepoints, attached as raw tracepoints (cheaper than ordinary ones;
  arguments read through BTF offsets). Runs on any kernel with these tracepoints, including one
  without kprobes or fentry. It cannot split L4 from L3 (no tracepoint between tcp_sendmsg and
  dev_queue_xmit, nor between netif_receive_skb and the socket).
- ``kprobe``: the seed's L4/L3 functions (tcp_sendmsg, ip_queue_xmit, tcp_v4_rcv, tcp_recvmsg; with
  renamed/suffixed symbol fallbacks) for the L4/L3 split, plus the net:* tracepoints, which sit
  exactly at the seed's dev_queue_xmit/dev_hard_start_xmit/__netif_receive_skb boundaries and are a
  stabler ABI than those functions; needs CONFIG_KPROBES. It uses only tracepoints old kernels have.
  Where ``sock_sendmsg`` (``__sock_sendmsg`` since 6.6) can be hooked it adds the socket layer
  (L5) of a send as its own stage.
- ``fentry``: the kprobe plan's hooks as fentry/fexit programs (BPF trampolines: a fraction of a
  kprobe's cost per call, and skipped only when the same program recurses, where a kprobe is
  skipped whenever any BPF program runs on that CPU). Each function that refuses fentry (not in
  BTF, a ``.isra`` copy, an attach error) falls back to its kprobe, hook by hook; the live source
  reports which attach type each hook got. Needs BTF and trampolines (x86_64, Linux 5.5+).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tui.bpf.features import KernelFeatures
from tui.errors import UserError
from tui.model.snapshot import RECV, SEND, PlanInfo, StageSpec

# The numbers the C shares with Python. tui.bpf.program.table_defines() generates them into the C
# (PATH_*, SLOTS_PER_PATH, SLOT_SEND_<KEY>, SLOT_RECV_<KEY>, CTR_<NAME>, NR_COUNTERS, EV_STAGES);
# netlat.h and the .bpf.c files never write them by hand (tests/unit/test_program.py checks).

#: Path -> its index (key of path_counters; stage_hists key = path index * SLOTS_PER_PATH + slot).
PATH_INDEX = {SEND: 0, RECV: 1}
SLOTS_PER_PATH = 10
#: Stage slots: stage or total key -> slot in the path's row of the kernel histogram array.
SEND_SLOTS = {"tcp_ip": 0, "qdisc": 1, "device": 2, "total": 3, "deferred": 4, "udp_l2": 5,
              "tcp": 6, "ip": 7, "sock": 8, "udp": 9}
RECV_SLOTS = {"backlog": 0, "ip_tcp": 1, "sock_queue": 2, "copy": 3, "stack": 4, "e2e": 5,
              "ip": 6, "tcp": 7, "udp_e2e": 8}
SLOTS = {SEND: SEND_SLOTS, RECV: RECV_SLOTS}
#: The stages a sampled event carries (struct event.stages_ns), indexed by their stage slot: the
#: merged L4/L3 slot first (the kprobe plan's split rides along as l3_ns).
EVENT_STAGES = {
    SEND: ("tcp_ip", "qdisc", "device"),
    RECV: ("backlog", "ip_tcp", "sock_queue", "copy"),
}

#: Counters: name -> index in struct counters (one row per path).
COUNTER_INDEX = {
    "packets": 0,
    "bytes": 1,
    "deferred": 2,  # send: packets that left outside their send syscall
    "udp": 3,  # send: UDP packets (timed from net_dev_queue only)
    "stale": 4,  # entries older than the age limit, ignored
    "events_lost": 5,  # the ring/perf buffer was full
    "events_sent": 6,
    "events_limited": 7,  # over EVENTS_PER_SEC
    "evicted": 8,  # a packet in flight overwritten by another in the same slot
    "missed": 9,  # a hook could not keep its state (task storage busy); the reader adds the
    #               runs the kernel skipped (program recursion misses)
    "segs": 10,  # wire segments of the counted packets: a "packet" is an skb, and a GSO/GRO skb
    #              carries several segments (its gso_segs), as nstat and ss count them
}
_SEND_ONLY_COUNTERS = ("deferred", "udp")
#: Per path, the counters it reports.
COUNTERS: dict[str, dict[str, int]] = {
    SEND: dict(COUNTER_INDEX),
    RECV: {k: i for k, i in COUNTER_INDEX.items() if k not in _SEND_ONLY_COUNTERS},
}

#: The hooks of the send path, by BPF function name without its kind prefix (``raw_tracepoint__``,
#: ``rtp_``, ``kp_``, ``kr_``); every other program of a plan is on the receive path.
SEND_HOOKS = frozenset({"tcp_sendmsg_locked", "net_dev_queue", "qdisc_dequeue", "net_dev_start_xmit",
                        "net_dev_xmit", "sock_send_length", "tcp_sendmsg", "ip_queue_xmit", "sock_sendmsg",
                        "__ip_queue_xmit", "ip6_xmit", "__sock_sendmsg", "security_socket_sendmsg",
                        "udp_sendmsg", "udpv6_sendmsg"})
_PROGRAM_PREFIXES = ("raw_tracepoint__", "rtp_", "kp_", "kr_", "kfunc__", "kretfunc__")


def program_path(function: str) -> str:
    """The path (send or recv) a BPF program of ours belongs to, from its function name."""
    for prefix in _PROGRAM_PREFIXES:
        if function.startswith(prefix):
            function = function[len(prefix):]
            break
    function = function.removeprefix("vmlinux__")  # BCC 0.31 names fentry programs kfunc__vmlinux__<fn>
    return SEND if function in SEND_HOOKS else RECV


_TP = "tracepoint"
_KP = "kprobe"
_FE = "fentry"


def _s(key: str, label: str, layer: str, opens: str, closes: str, total: bool = False) -> StageSpec:
    return StageSpec(key, label, layer, opens, closes, total)


TRACEPOINT_INFO = PlanInfo(
    name=_TP,
    stages={
        SEND: (
            _s("tcp_ip", "TCP+IP", "L4/L3", "tcp:tcp_sendmsg_locked", "net:net_dev_queue"),
            _s("qdisc", "qdisc", "L2", "net:net_dev_queue", "net:net_dev_start_xmit"),
            _s("device", "device", "L2", "net:net_dev_start_xmit", "net:net_dev_xmit"),
        ),
        RECV: (
            _s("backlog", "backlog", "L2", "net:netif_rx", "net:netif_receive_skb"),
            _s("ip_tcp", "IP+TCP/UDP", "L3/L4", "net:netif_receive_skb", "sock:sk_data_ready"),
            _s("sock_queue", "socket queue", "L5", "sock:sk_data_ready", "skb:skb_copy_datagram_iovec"),
            _s("copy", "copy to user", "L5", "skb:skb_copy_datagram_iovec", "sock:sock_recv_length"),
        ),
    },
    totals={
        SEND: (
            _s("total", "send total", "L4-L2", "tcp:tcp_sendmsg_locked", "net:net_dev_xmit", True),
            _s("deferred", "deferred L2", "L2", "net:net_dev_queue", "net:net_dev_xmit", True),
            _s("udp_l2", "UDP L2", "L2", "net:net_dev_queue", "net:net_dev_xmit", True),
        ),
        RECV: (
            _s("stack", "stack total", "L2-L4", "net:netif_rx", "sock:sk_data_ready", True),
            _s("e2e", "to application", "L2-L5", "net:netif_rx", "sock:sock_recv_length", True),
            _s("udp_e2e", "UDP to app", "L2-L5", "net:netif_rx", "sock:sock_recv_length", True),
        ),
    },
    merged=(
        "send: the socket layer (L5: sock_sendmsg until TCP takes the data) has no tracepoint "
        "and is not timed",
        "send: TCP (L4) and IP (L3) merged: no tracepoint between tcp_sendmsg and dev_queue_xmit",
        "send: qdisc/device/total count packets sent inside the send syscall; packets leaving "
        "later (softirq, timers, ACKs) are in 'deferred L2'",
        "send: UDP has no tracepoint above IP, so UDP is timed from net_dev_queue only (UDP L2)",
        "recv: IP (L3) and TCP/UDP (L4) merged: no tracepoint between netif_receive_skb and the "
        "socket",
        "recv: UDP copies datagrams to user without a tracepoint: a UDP datagram is timed to the end "
        "of the read that took it ('UDP to app'), with no socket queue/copy split",
        "pid/comm filters: receive stages count packets the process read; deferred sends count "
        "once the process used the socket",
    ),
)

#: The socket layer of a send (kprobe and fentry plans, where sock_sendmsg can be hooked).
SOCK_STAGE = _s("sock", "socket", "L5", "kprobe:sock_sendmsg", "kprobe:tcp_sendmsg")
NO_SOCK_NOTE = "send: the socket layer (sock_sendmsg -> tcp_sendmsg) is not split from TCP"
#: A UDP send from UDP (L4) down to the device (kprobe and fentry plans, where udp_sendmsg resolved).
UDP_SEND_TOTAL = _s("udp", "UDP send", "L4-L2", "kprobe:udp_sendmsg", "net:net_dev_xmit", True)
UDP_L2_ONLY_NOTE = "send: UDP is timed from net_dev_queue only (UDP L2)"
UDP_SEND_NOTE = ("send: a UDP datagram is timed from udp_sendmsg to the device ('UDP send', in the "
                 "sender's syscall) and from net_dev_queue ('UDP L2')")

KPROBE_INFO = PlanInfo(
    name=_KP,
    stages={
        SEND: (
            _s("tcp", "TCP", "L4", "kprobe:tcp_sendmsg", "kprobe:ip_queue_xmit"),
            _s("ip", "IP", "L3", "kprobe:ip_queue_xmit", "net:net_dev_queue"),
            _s("qdisc", "qdisc", "L2", "net:net_dev_queue", "net:net_dev_start_xmit"),
            _s("device", "device", "L2", "net:net_dev_start_xmit", "net:net_dev_xmit"),
        ),
        RECV: (
            _s("backlog", "backlog", "L2", "net:netif_rx", "net:netif_receive_skb"),
            _s("ip", "IP", "L3", "net:netif_receive_skb", "kprobe:tcp_v4_rcv"),
            _s("tcp", "TCP/UDP", "L4", "kprobe:tcp_v4_rcv", "kprobe:sock_def_readable"),
            _s("sock_queue", "socket queue", "L5", "kprobe:sock_def_readable",
               "skb:skb_copy_datagram_iovec"),
            _s("copy", "copy to user", "L5", "skb:skb_copy_datagram_iovec", "kretprobe:tcp_recvmsg"),
        ),
    },
    totals={
        SEND: (
            _s("total", "send total", "L4-L2", "kprobe:tcp_sendmsg", "net:net_dev_xmit", True),
            _s("deferred", "deferred L2", "L2", "net:net_dev_queue", "net:net_dev_xmit", True),
            _s("udp_l2", "UDP L2", "L2", "net:net_dev_queue", "net:net_dev_xmit", True),
        ),
        RECV: (
            _s("stack", "stack total", "L2-L4", "net:netif_rx", "kprobe:sock_def_readable", True),
            _s("e2e", "to application", "L2-L5", "net:netif_rx", "kretprobe:tcp_recvmsg", True),
            _s("udp_e2e", "UDP to app", "L2-L5", "net:netif_rx", "kretprobe:udp_recvmsg", True),
        ),
    },
    merged=(
        NO_SOCK_NOTE,
        "send: qdisc/device/total count packets sent inside the send syscall; packets leaving "
        "later (softirq, timers, ACKs) are in 'deferred L2'",
        UDP_L2_ONLY_NOTE,
        "recv: UDP has no socket queue/copy split: a datagram is timed to the end of the "
        "udp_recvmsg that took it ('UDP to app')",
        "L3/L4 boundaries come from kprobes: not validated on the development kernel (no kprobes)",
    ),
)

# The raw tracepoints each plan attaches ("category:event"; raw attach uses the event name).
TRACEPOINT_EVENTS: tuple[str, ...] = (
    "tcp:tcp_sendmsg_locked",
    "net:net_dev_queue",
    "net:net_dev_start_xmit",
    "net:net_dev_xmit",
    "sock:sock_send_length",
    "net:netif_rx",
    "net:netif_receive_skb",
    "tcp:tcp_probe",
    "sock:sk_data_ready",
    "skb:skb_copy_datagram_iovec",
    "sock:sock_recv_length",
    "sock:inet_sock_set_state",
)
#: Optional: first sight on NIC receive (NAPI/GRO) when netif_rx is not on the path; a qdisc handing
#: a packet to the device (where a GSO skb is cut in software, netlat_send.bpf.c).
OPTIONAL_EVENTS: tuple[str, ...] = ("net:napi_gro_receive_entry", "qdisc:qdisc_dequeue")

#: kprobe plan: hook -> candidate kernel symbols, in preference order (renamed copies included;
#: compiler-suffixed copies such as ``.isra.0`` are matched by read_kallsyms).
KPROBE_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "tcp_sendmsg": ("tcp_sendmsg",),
    "ip_queue_xmit": ("__ip_queue_xmit", "ip_queue_xmit"),
    "tcp_v4_rcv": ("tcp_v4_rcv",),
    "udp_rcv": ("udp_rcv",),
    "data_ready": ("sock_def_readable",),
    "tcp_recvmsg": ("tcp_recvmsg",),
    "udp_recvmsg": ("udp_recvmsg",),
}
#: Optional hooks (IPv6 is a module on some kernels): attached when present.
KPROBE_OPTIONAL: dict[str, tuple[str, ...]] = {
    # the socket layer of a send: __sock_sendmsg since 6.6 (sock_sendmsg became a wrapper that
    # sendto() no longer calls), often inlined; then security_socket_sendmsg, the first call of
    # __sock_sendmsg and of the older sock_sendmsg alike (a function wherever LSMs are built in)
    "sock_sendmsg": ("__sock_sendmsg", "security_socket_sendmsg", "sock_sendmsg"),
    "ip6_xmit": ("ip6_xmit",),
    "udp_sendmsg": ("udp_sendmsg",),
    "udpv6_sendmsg": ("udpv6_sendmsg",),
    "tcp_v6_rcv": ("tcp_v6_rcv",),
    "udpv6_rcv": ("udpv6_rcv",),
    "udpv6_recvmsg": ("udpv6_recvmsg",),
}
#: hook -> (attach kind, BPF function in netlat_kp.bpf.c)
_KPROBE_ATTACH: dict[str, tuple[tuple[str, str], ...]] = {
    "sock_sendmsg": (("kprobe", "kp_sock_sendmsg"),),
    "tcp_sendmsg": (("kprobe", "kp_tcp_sendmsg"), ("kretprobe", "kr_tcp_sendmsg")),
    "ip_queue_xmit": (("kprobe", "kp_ip_queue_xmit"),),
    "ip6_xmit": (("kprobe", "kp_ip_queue_xmit"),),
    "udp_sendmsg": (("kprobe", "kp_udp_sendmsg"), ("kretprobe", "kr_udp_sendmsg")),
    "udpv6_sendmsg": (("kprobe", "kp_udp_sendmsg"), ("kretprobe", "kr_udp_sendmsg")),
    "tcp_v4_rcv": (("kprobe", "kp_l4_rcv"),),
    "tcp_v6_rcv": (("kprobe", "kp_l4_rcv"),),
    "udp_rcv": (("kprobe", "kp_l4_rcv"),),
    "udpv6_rcv": (("kprobe", "kp_l4_rcv"),),
    "data_ready": (("kprobe", "kp_data_ready"),),
    "tcp_recvmsg": (("kprobe", "kp_tcp_recvmsg"), ("kretprobe", "kr_tcp_recvmsg")),
    "udp_recvmsg": (("kprobe", "kp_udp_recvmsg"), ("kretprobe", "kr_udp_recvmsg")),
    "udpv6_recvmsg": (("kprobe", "kp_udp_recvmsg"), ("kretprobe", "kr_udp_recvmsg")),
}
#: fentry plan: hook -> (fentry|fexit, handler in netlat_fe.bpf.c). The BPF program of a hook is
#: generated per resolved symbol (BCC names it kfunc__<symbol> / kretfunc__<symbol>, and the
#: kernel finds the function in BTF by that name); a fexit handler also gets the return value.
FENTRY_HANDLERS: dict[str, tuple[tuple[str, str], ...]] = {
    "sock_sendmsg": (("fentry", "fe_sock_sendmsg"),),
    "tcp_sendmsg": (("fentry", "fe_tcp_sendmsg"), ("fexit", "fx_tcp_sendmsg")),
    "ip_queue_xmit": (("fentry", "fe_ip_queue_xmit"),),
    "ip6_xmit": (("fentry", "fe_ip_queue_xmit"),),
    "udp_sendmsg": (("fentry", "fe_udp_sendmsg"), ("fexit", "fx_udp_sendmsg")),
    "udpv6_sendmsg": (("fentry", "fe_udp_sendmsg"), ("fexit", "fx_udp_sendmsg")),
    "tcp_v4_rcv": (("fentry", "fe_l4_rcv"),),
    "tcp_v6_rcv": (("fentry", "fe_l4_rcv"),),
    "udp_rcv": (("fentry", "fe_l4_rcv"),),
    "udpv6_rcv": (("fentry", "fe_l4_rcv"),),
    "data_ready": (("fentry", "fe_data_ready"),),
    "tcp_recvmsg": (("fexit", "fx_tcp_recvmsg"),),
    "udp_recvmsg": (("fexit", "fx_udp_recvmsg"),),
    "udpv6_recvmsg": (("fexit", "fx_udp_recvmsg"),),
}
_FENTRY_PREFIX = {"fentry": "kfunc__", "fexit": "kretfunc__"}


def fentry_program(kind: str, symbol: str) -> str:
    """BCC 0.26's name for the fentry/fexit program of ``symbol`` (BCC derives the BTF target from
    it); newer BCC puts the module in: kfunc__vmlinux__<symbol> (tui.sources.live resolves which)."""
    return _FENTRY_PREFIX[kind] + symbol


#: Tracepoints of the kprobe plan: all present since Linux 4.16 (it must run where the newer
#: sock:* and tcp_sendmsg_locked tracepoints are missing, e.g. Debian 12's 6.1).
KPROBE_TRACEPOINTS: tuple[str, ...] = (
    "net:net_dev_queue",
    "net:net_dev_start_xmit",
    "net:net_dev_xmit",
    "net:netif_rx",
    "net:netif_receive_skb",
    "tcp:tcp_probe",
    "skb:skb_copy_datagram_iovec",
    "sock:inet_sock_set_state",
)


@dataclass(frozen=True)
class Plan:
    """A plan ready to build: what it measures (``info``), what it hooks and its C source."""

    info: PlanInfo
    source: str  #: C file under tui/bpf/
    raw_tracepoints: tuple[str, ...] = ()
    optional_raw_tracepoints: tuple[str, ...] = ()
    #: kprobe plan: logical name -> resolved kernel symbol (filled by resolve_kprobes)
    kprobes: dict[str, str] = field(default_factory=dict)
    #: explicit attachments (kind "kprobe"/"kretprobe"/"raw_tracepoint", target, BPF function);
    #: empty when the C auto-attaches (RAW_TRACEPOINT_PROBE)
    attach: tuple[tuple[str, str, str], ...] = ()
    #: fentry plan: hook -> its (fentry|fexit, symbol, program) attachments, tried first; a hook
    #: whose fentry attach fails takes its kprobe attachments from ``attach`` instead
    fentry: dict[str, tuple[tuple[str, str, str], ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def all_tracepoints() -> tuple[str, ...]:
    """Every tracepoint any plan uses (what features.detect() checks)."""
    names = TRACEPOINT_EVENTS + OPTIONAL_EVENTS + KPROBE_TRACEPOINTS
    return tuple(dict.fromkeys(names))


def tracepoint_plan() -> Plan:
    return Plan(
        info=TRACEPOINT_INFO,
        source="netlat_tp.bpf.c",
        raw_tracepoints=TRACEPOINT_EVENTS,
        optional_raw_tracepoints=OPTIONAL_EVENTS,
    )


def resolve_symbol(candidates: tuple[str, ...], kallsyms: dict[str, str]) -> str | None:
    """The first candidate present in kallsyms, also as a compiler-suffixed copy (``.isra.0``).

    ``kallsyms`` maps a base name (before the first '.') to the full symbol found.
    """
    for name in candidates:
        if name in kallsyms:
            return kallsyms[name]
    return None


def read_kallsyms(path: str = "/proc/kallsyms") -> dict[str, str]:
    """Base name -> full text symbol name; exact names win over ``.isra``/``.constprop`` copies."""
    table: dict[str, str] = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3 or parts[1] not in "tT":
                continue
            full = parts[2]
            base = full.split(".", 1)[0]
            if full.endswith(".cold"):
                continue  # the cold split of a function is not its entry point
            if base == full or base not in table:
                table[base] = full
    return table


def resolve_kprobes(kallsyms: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(hook -> symbol, missing required hooks) for the kprobe plan; optional hooks when found."""
    resolved, missing = {}, []
    for event, candidates in KPROBE_FUNCTIONS.items():
        sym = resolve_symbol(candidates, kallsyms)
        if sym is None:
            missing.append(event)
        else:
            resolved[event] = sym
    for event, candidates in KPROBE_OPTIONAL.items():
        sym = resolve_symbol(candidates, kallsyms)
        if sym is not None:
            resolved[event] = sym
    return resolved, missing


def kprobe_attachments(
    resolved: dict[str, str], tracepoints: tuple[str, ...]
) -> tuple[tuple[str, str, str], ...]:
    """Every (kind, target, function) the kprobe plan attaches."""
    out = [
        (kind, resolved[hook], fn)
        for hook, pairs in _KPROBE_ATTACH.items() if hook in resolved
        for kind, fn in pairs
    ]
    out += [("raw_tracepoint", tp.split(":", 1)[1], "rtp_" + tp.split(":", 1)[1]) for tp in tracepoints]
    return tuple(out)


def _function_info(name: str, resolved: dict[str, str]) -> PlanInfo:
    """The kprobe or fentry plan's PlanInfo: with the socket (L5) send stage where sock_sendmsg
    resolved; the fentry plan names its function events fentry:/fexit:."""
    info = KPROBE_INFO
    if "sock_sendmsg" in resolved:
        info = replace(info, stages={**info.stages, SEND: (SOCK_STAGE, *info.stages[SEND])},
                       merged=tuple(m for m in info.merged if m != NO_SOCK_NOTE))
    if "udp_sendmsg" in resolved:
        info = replace(info, totals={**info.totals, SEND: (*info.totals[SEND], UDP_SEND_TOTAL)},
                       merged=tuple(UDP_SEND_NOTE if m == UDP_L2_ONLY_NOTE else m for m in info.merged))
    if name == _FE:
        def ev(text: str) -> str:
            return text.replace("kretprobe:", "fexit:").replace("kprobe:", "fentry:")

        def specs(groups: dict) -> dict:
            return {path: tuple(replace(s, opens=ev(s.opens), closes=ev(s.closes)) for s in group)
                    for path, group in groups.items()}

        merged = (*info.merged, "functions hooked with fentry/fexit; one that refuses fentry falls "
                  "back to its kprobe (doctor and the help screen list each hook's attach type)")
        info = replace(info, name=_FE, stages=specs(info.stages), totals=specs(info.totals), merged=merged)
    return info


def kprobe_plan(kallsyms: dict[str, str] | None = None, optional_tracepoints: tuple[str, ...] = (),
                name: str = _KP) -> Plan:
    """The kprobe plan (``name="fentry"``: the same hooks, fentry first, kprobe as each one's fallback)."""
    resolved, missing = resolve_kprobes(read_kallsyms() if kallsyms is None else kallsyms)
    if missing:
        raise UserError(f"{name} plan: kernel functions not found: {', '.join(missing)}")
    tps = KPROBE_TRACEPOINTS + tuple(optional_tracepoints)
    fentry = {}
    if name == _FE:
        fentry = {hook: tuple((kind, sym, fentry_program(kind, sym)) for kind, _fn in FENTRY_HANDLERS[hook])
                  for hook, sym in resolved.items() if "." not in sym}  # a .isra copy is not in BTF
    return Plan(
        info=_function_info(name, resolved),
        source="netlat_kp.bpf.c",
        raw_tracepoints=KPROBE_TRACEPOINTS,
        optional_raw_tracepoints=tuple(optional_tracepoints),
        kprobes=resolved,
        attach=kprobe_attachments(resolved, tps),
        fentry=fentry,
    )


def fentry_plan(kallsyms: dict[str, str] | None = None, optional_tracepoints: tuple[str, ...] = ()) -> Plan:
    return kprobe_plan(kallsyms, optional_tracepoints, name=_FE)


def attached_plan(plan: Plan, hooks: tuple[tuple[str, str, str], ...], requested: str,
                  refused: dict[str, str]) -> Plan:
    """The plan as it was really attached: ``hooks`` are (hook, symbol, attach type) from attach().

    The fentry plan falls back per hook to kprobes; when no hook took fentry at all (a kernel whose
    BTF and trampolines say yes but that refuses every attach), what runs is the kprobe plan, and
    saying "fentry" would be a lie: under ``--probes auto`` it is named kprobe, under an explicit
    ``--probes fentry`` it is refused (UserError, one line)."""
    if not plan.fentry or any(kind in ("fentry", "fexit") for _hook, _sym, kind in hooks):
        return replace(plan, info=replace(plan.info, hooks=hooks))
    why = next(iter(refused.values()), "no hook attached")
    if requested == _FE:
        raise UserError(f"--probes fentry: no function attaches with fentry here ({why}); "
                        "try --probes kprobe")
    info = replace(_function_info(_KP, plan.kprobes), sample=plan.info.sample, hooks=hooks)
    return replace(plan, info=info, fentry={})


def _why_not_tracepoint(features: KernelFeatures) -> str | None:
    if not features.btf:
        return "the kernel has no BTF (/sys/kernel/btf/vmlinux), needed for struct offsets"
    if not features.raw_tracepoints:
        return "the kernel refuses raw tracepoint programs (need root and Linux 4.17+)"
    missing = features.missing_tracepoints(TRACEPOINT_EVENTS)
    if missing:
        return f"tracepoints missing: {', '.join(missing)}"
    return None


def _why_not_kprobe(features: KernelFeatures) -> str | None:
    if not features.kprobes:
        return "this kernel has no kprobes (CONFIG_KPROBES unset: no kprobe_events in tracefs)"
    if not features.btf:
        return "the kernel has no BTF (/sys/kernel/btf/vmlinux), needed for struct offsets"
    if not features.raw_tracepoints:
        return "the kernel refuses raw tracepoint programs (need root and Linux 4.17+)"
    missing = features.missing_tracepoints(KPROBE_TRACEPOINTS)
    if missing:
        return f"tracepoints missing: {', '.join(missing)}"
    return None


def _why_not_fentry(features: KernelFeatures) -> str | None:
    if not features.fentry:
        return "fentry does not attach on this kernel (needs BTF and BPF trampolines, x86_64 5.5+)"
    # each hook falls back to its kprobe: the rest of the kprobe plan's needs apply
    return _why_not_kprobe(features)


def choose_plan(requested: str, features: KernelFeatures, sample: int = 1) -> Plan:
    """The plan to run for ``--probes requested``; UserError (one line) when it cannot run here.

    ``auto`` prefers fentry, then kprobe: both split TCP (L4) from IP (L3) and time the socket
    layer (L5) of a send, which is what the tool is for, and fentry costs a fraction of a kprobe
    per call and is not skipped under another program. Elsewhere (kernels without kprobes, like
    the CI machines) it takes the tracepoint plan, which merges L4/L3 but needs only stable
    tracepoints; ``--probes tracepoint`` picks that one on purpose.
    """
    if requested not in ("auto", _TP, _KP, _FE):
        raise UserError(f"--probes {requested!r}: expected auto, fentry, kprobe or tracepoint")
    if requested == _TP:
        why = _why_not_tracepoint(features)
        if why is not None:
            raise UserError(f"--probes tracepoint cannot run here: {why}")
        return _with_sample(tracepoint_plan(), sample)
    optional = _present(OPTIONAL_EVENTS, features)
    why_fe = _why_not_fentry(features)
    if requested == _FE:
        if why_fe is not None:
            raise UserError(f"--probes fentry cannot run here: {why_fe}")
        return _with_sample(fentry_plan(optional_tracepoints=optional), sample)
    why_kp = _why_not_kprobe(features)
    if requested == "auto" and why_fe is None:
        plan = fentry_plan(optional_tracepoints=optional)
    elif why_kp is None:
        plan = kprobe_plan(optional_tracepoints=optional)
    elif requested == _KP:
        raise UserError(f"--probes kprobe cannot run here: {why_kp}")
    else:
        why_tp = _why_not_tracepoint(features)
        if why_tp is not None:
            raise UserError(f"no probe plan can run here: {why_tp}; kprobe: {why_kp}")
        plan = tracepoint_plan()
    return _with_sample(plan, sample)


def _present(names: tuple[str, ...], features: KernelFeatures) -> tuple[str, ...]:
    return tuple(n for n in names if features.tracepoints.get(n))


def _with_sample(plan: Plan, sample: int) -> Plan:
    return replace(plan, info=replace(plan.info, sample=sample))
