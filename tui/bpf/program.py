"""Generate the BPF C for a plan: constants (BTF offsets, filters, limits), the shared tables,
netlat.h, then the C files.

User input reaches the C only here, and only as numbers: filters arrive validated
(tui.model.filters) and are emitted as integers or byte arrays, never as text pasted into source.
The numbers C and Python share (paths, stage slots, counters, histogram sizes) are generated
from their Python tables by table_defines(), never written twice.
"""

from __future__ import annotations

import functools
import ipaddress
from importlib.resources import files

from tui.bpf import plans
from tui.bpf.btf import (
    BtfError,
    KernelBtf,
    c_defines,
    probe_offsets,
    workload_defines,
    workload_offsets,
)
from tui.bpf.plans import Plan
from tui.model import histogram
from tui.model.filters import Filters

#: Ignore entries older than this (a lost packet must not pair with a later one); generous
#: enough for a shaped qdisc holding packets for a while.
AGE_LIMIT_NS = 5_000_000_000
#: Rows of the socket table (--max-sockets): the default holds a busy server (both ends of 16k
#: local connections); rows are allocated as sockets appear (about 2 KiB each), not up front.
DEFAULT_MAX_SOCKETS = 32768
MIN_SOCKETS, MAX_SOCKETS = 16, 1 << 20
#: Sampled events per second and CPU (the UI shows a handful); more are counted as rate-limited.
EVENTS_PER_SEC = 500

#: Rows of the UDP peer table (socket, peer) for all sockets; a full table refuses new peers and
#: counts their datagrams per socket (netlat_common.bpf.c, peers).
PEERS_MAX = 16384

#: Bytes of struct sock_common the probes read in one go (netlat_common.bpf.c SKC_HEAD).
SKC_HEAD = 24
#: Most bytes of struct sk_buff, from len to data, the probes read in one go (netlat_common.bpf.c
#: skb_size); 96 on this 6.18.
SKB_SPAN_MAX = 160
#: Every plan's C, in this order, before the plan's own file: structs and the bucket function,
#: maps and helpers, the send path, the receive path.
_COMMON_FILES = ("netlat.h", "netlat_common.bpf.c", "netlat_send.bpf.c", "netlat_recv.bpf.c")
_FAMILY_AF = {4: 2, 6: 10}
_PROTO = {"tcp": 6, "udp": 17}


def read_c(name: str) -> str:
    """A C file shipped in the tui.bpf package (works installed, not only from a checkout)."""
    return files("tui.bpf").joinpath(name).read_text()


def _bytes(data: bytes, size: int) -> str:
    padded = data[:size].ljust(size, b"\0")
    return "{" + ", ".join(str(b) for b in padded) + "}"


def _next_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def _slot_comment(path: str, key: str) -> str:
    """What a slot times, per plan that has it: ``label: opens -> closes``."""
    spans: dict[str, list[str]] = {}
    for info in (plans.TRACEPOINT_INFO, plans.KPROBE_INFO):
        for spec in info.specs(path):
            if spec.key == key:
                spans.setdefault(f"{spec.opens} -> {spec.closes}", []).append(info.name)
                label = spec.label
    if not spans:
        return ""
    if len(spans) == 1:
        return f"{label}: {next(iter(spans))}"
    return f"{label}: " + "; ".join(f"{'/'.join(names)} {span}" for span, names in spans.items())


def _counter_indexes() -> dict[str, int]:
    """Counter name -> index, one index per name across the paths (ValueError if they disagree)."""
    merged: dict[str, int] = {}
    for names in plans.COUNTERS.values():
        for name, index in names.items():
            if merged.setdefault(name, index) != index:
                raise ValueError(f"counter {name!r} has two indexes")
    if len(set(merged.values())) != len(merged):
        raise ValueError("two counters share an index")
    return merged


def table_defines() -> str:
    """The ``#define`` block of every number the C shares with Python, generated from the Python
    tables (tui.bpf.plans, tui.model.histogram); netlat.h refuses to compile without it."""
    slots_per_path = plans.SLOTS_PER_PATH
    out = [
        "/* generated from tui/bpf/plans.py and tui/model/histogram.py by tui.bpf.program */",
        "#define NETLAT_TABLES 1",
        f"#define NR_PATHS {len(plans.PATH_INDEX)}",
    ]
    out += [f"#define PATH_{path.upper()} {index}" for path, index in plans.PATH_INDEX.items()]
    out.append(f"#define SLOTS_PER_PATH {slots_per_path}")
    for path, slots in plans.SLOTS.items():
        if max(slots.values()) >= slots_per_path or len(set(slots.values())) != len(slots):
            raise ValueError(f"{path} stage slots must be distinct and below {slots_per_path}")
        for key, slot in slots.items():
            note = _slot_comment(path, key)
            line = f"#define SLOT_{path.upper()}_{key.upper()} {slot}"
            out.append(f"{line} /* {note} */" if note else line)
    counters = _counter_indexes()
    out += [f"#define CTR_{name.upper()} {index}" for name, index in counters.items()]
    out.append(f"#define NR_COUNTERS {max(counters.values()) + 1}")
    for path, names in plans.EVENT_STAGES.items():
        if [plans.SLOTS[path][n] for n in names] != list(range(len(names))):
            raise ValueError(f"{path} event stages must be the slots 0..{len(names) - 1} in order")
    out.append(f"#define EV_STAGES {max(len(names) for names in plans.EVENT_STAGES.values())}")
    out.append(f"#define NETLAT_MAX_LOG2 {histogram.MAX_LOG2}")
    for kind, sub_bits in (("STAGE", histogram.STAGE_SUB_BITS), ("SOCK", histogram.SOCKET_SUB_BITS)):
        buckets = histogram.bucket_count(sub_bits)
        out += [f"#define NETLAT_{kind}_SUB_BITS {sub_bits}", f"#define NETLAT_{kind}_BUCKETS {buckets}",
                f"#define NETLAT_{kind}_STORE {_next_pow2(buckets)}"]
    return "".join(line + "\n" for line in out)


def filter_defines(filters: Filters) -> str:
    """#define lines for the active filters; every value is a number or a byte list."""
    out: list[str] = []
    if filters.pid is not None:
        out.append(f"#define FILTER_PID {int(filters.pid)}")
    if filters.comm is not None:
        out.append(f"#define FILTER_COMM {_bytes(filters.comm.encode(), 16)}")
        out.append(f"#define FILTER_COMM_LEN {min(len(filters.comm.encode()) + 1, 16)}")
    for name in ("port", "lport", "rport"):
        value = getattr(filters, name)
        if value is not None:
            out.append(f"#define FILTER_{name.upper()} {int(value)}")
    if filters.addr is not None:
        addr = ipaddress.ip_address(filters.addr)
        out.append(f"#define FILTER_ADDR_FAMILY {_FAMILY_AF[addr.version]}")
        out.append(f"#define FILTER_ADDR_BYTES {_bytes(addr.packed, 16)}")
        out.append(f"#define FILTER_ADDR_LEN {len(addr.packed)}")
    if filters.family is not None:
        out.append(f"#define FILTER_FAMILY {_FAMILY_AF[int(filters.family)]}")
    if filters.protocol is not None:
        out.append(f"#define FILTER_PROTO {_PROTO[filters.protocol]}")
    if filters.iface is not None:
        out.append(f"#define FILTER_IFACE {_bytes(filters.iface.encode(), 16)}")
        out.append(f"#define FILTER_IFACE_LEN {min(len(filters.iface.encode()) + 1, 16)}")
    if filters.netns is not None:
        out.append(f"#define FILTER_NETNS {int(filters.netns.inode)}")
    if filters.cgroup is not None:
        out.append(f"#define FILTER_CGROUP_ID {int(filters.cgroup.id)}")
        out.append(f"#define FILTER_CGROUP_LEVEL {int(filters.cgroup.level)}")
    return "".join(line + "\n" for line in out)


#: What --cgroup and --netns need from the kernel's BTF (tui.bpf.btf.WORKLOAD_FIELDS).
_CGROUP_FILTER_FIELDS = ("sock.sk_cgrp_data", "sock_cgroup_data.cgroup", "cgroup.kn", "cgroup.level",
                         "cgroup.ancestors", "kernfs_node.id")
_NETNS_FILTER_FIELDS = ("sock_common.skc_net", "net.ns.inum")
#: What reading a socket's cgroup id needs (HAVE_SK_CGROUP in netlat_common.bpf.c).
_SK_CGROUP_FIELDS = ("sock.sk_cgrp_data", "sock_cgroup_data.cgroup", "cgroup.kn", "kernfs_node.id")


def workload_notes(workload: dict[str, int]) -> list[str]:
    """What is attributed how when the kernel lacks a field of the socket's cgroup or namespace."""
    notes = []
    if any(f not in workload for f in _SK_CGROUP_FIELDS):
        notes.append("no socket cgroup in this kernel's BTF (sock.sk_cgrp_data): a socket is "
                     "attributed to the cgroup of the process that first sent or read on it; "
                     "sampled packets name no cgroup; --cgroup is refused")
    if any(f not in workload for f in _NETNS_FILTER_FIELDS):
        notes.append("no socket network namespace in this kernel's BTF: netns not attributed")
    return notes


def check_workload_filters(filters: Filters, workload: dict[str, int]) -> None:
    """BtfError (one line) when a cgroup or netns filter needs a field this kernel lacks."""
    for name, wanted, fields in (("--cgroup", filters.cgroup, _CGROUP_FILTER_FIELDS),
                                 ("--netns", filters.netns, _NETNS_FILTER_FIELDS)):
        missing = [f for f in fields if f not in workload]
        if wanted is not None and missing:
            raise BtfError(f"{name} needs {', '.join(missing)} in the kernel BTF, which this kernel lacks")


@functools.cache
def function_params(function: str) -> tuple[str, ...] | None:
    """A kernel function's argument names from BTF (None when BTF does not have it); cached like
    the probe offsets (parsing the kernel's BTF costs 10-20 ms and a filter change rebuilds)."""
    try:
        with KernelBtf() as btf:
            names = btf.param_names(function)
    except BtfError:
        return None
    return None if names is None else tuple(names)


def fentry_programs(plan: Plan) -> str:
    """The fentry plan's programs, one per resolved function: a call of its handler in
    netlat_fe.bpf.c. BCC's own macros name them (kfunc__<symbol> in 0.26, kfunc__vmlinux__<symbol>
    since module support; BCC finds the BTF target from that name). A fexit program finds the
    return value after the function's arguments (their number from BTF); a function BTF does not
    describe gets no program, so its hook takes the kprobe."""
    out = ["/* generated by tui.bpf.program.fentry_programs */"]
    for hook, items in plan.fentry.items():
        handlers = dict(plans.FENTRY_HANDLERS[hook])
        for kind, symbol, _program in items:
            params = function_params(symbol)
            if params is None:
                continue
            call = "ctx" if kind == "fentry" else f"ctx, (int)ctx[{len(params)}]"
            macro = "KFUNC_PROBE" if kind == "fentry" else "KRETFUNC_PROBE"
            out.append(f"{macro}({symbol})\n{{\n\t{handlers[kind]}({call});\n\treturn 0;\n}}")
    return "\n".join(out) + "\n"


@functools.cache
def recvmsg_flags(function: str) -> str:
    """C expression for the flags argument of ``function`` (tcp_recvmsg, udp_recvmsg) in a kprobe:
    its register follows the function's BTF (the argument moved in 5.19); ``0`` (no MSG_PEEK seen)
    when BTF cannot say. Cached like the probe offsets: parsing the kernel's BTF costs 10-20 ms,
    and a filter change rebuilds the program."""
    try:
        with KernelBtf() as btf:
            index = btf.param_index(function, "flags")
    except BtfError:
        index = None
    return f"PT_REGS_PARM{index + 1}(ctx)" if index is not None and index < 5 else "0"


def build_source(
    plan: Plan,
    filters: Filters | None = None,
    sample: int = 1,
    ringbuf: bool = True,
    offsets: dict[str, int] | None = None,
    optional_hooks: tuple[str, ...] = (),
    task_storage: bool = False,
    workload: dict[str, int] | None = None,
    max_sockets: int = DEFAULT_MAX_SOCKETS,
) -> str:
    """The complete C text BCC compiles for ``plan`` (what ``--ebpf`` prints)."""
    if not isinstance(sample, int) or sample < 1:
        raise ValueError(f"bad sample {sample!r}")
    if not isinstance(max_sockets, int) or not MIN_SOCKETS <= max_sockets <= MAX_SOCKETS:
        raise ValueError(f"bad max_sockets {max_sockets!r}")
    offs = probe_offsets() if offsets is None else offsets
    workload = workload_offsets() if workload is None else workload
    check_workload_filters(filters or Filters(), workload)
    head_fields = ("skc_daddr", "skc_rcv_saddr", "skc_dport", "skc_num", "skc_family", "skc_state")
    if any(offs[f"sock_common.{f}"] + 2 > SKC_HEAD for f in head_fields):
        raise BtfError("unexpected struct sock_common layout: the probes read its first 24 bytes")
    if offs["sk_buff.head"] - offs["sk_buff.end"] not in (4, 8):  # 8: end 8-aligned, padding
        raise BtfError("unexpected struct sk_buff layout: the probes read end and head in one go")
    span = [offs[f"sk_buff.{f}"] for f in ("len", "data_len", "network_header", "end", "head", "data")]
    if span != sorted(span) or span[-1] + 8 - span[0] > SKB_SPAN_MAX:
        raise BtfError("unexpected struct sk_buff layout: the probes read len to data in one go")
    tcb = [offs[f"tcp_skb_cb.{f}"] for f in ("seq", "end_seq", "tcp_flags")]
    if tcb != sorted(tcb) or tcb[-1] + 1 - tcb[0] > 16 or tcb[-1] >= 48:
        raise BtfError("unexpected struct tcp_skb_cb layout: the probes read seq to tcp_flags in one go")
    head = [
        f"/* netlat-tui: plan {plan.info.name}; generated, do not edit */",
        c_defines(offs).rstrip("\n"),
        workload_defines(workload).rstrip("\n"),
        f"#define SAMPLE_EVERY {sample}",
        f"#define AGE_LIMIT_NS {AGE_LIMIT_NS}ULL",
        f"#define EVENTS_PER_SEC {EVENTS_PER_SEC}",
        f"#define MAX_SOCKETS {max_sockets}",
        f"#define PEERS_MAX {PEERS_MAX}",
    ]
    if ringbuf:
        head.append("#define USE_RINGBUF 1")
    if task_storage:
        head.append("#define HAVE_TASK_STORAGE 1")
    if "net:napi_gro_receive_entry" in optional_hooks:
        head.append("#define HOOK_NAPI_GRO 1")
    if "qdisc:qdisc_dequeue" in optional_hooks:
        head.append("#define HOOK_QDISC_DEQUEUE 1")
    if any(s.key == "udp_e2e" for s in plan.info.totals.get("recv", ())):
        head.append("#define UDP_E2E 1")
    if any(s.key == "ip" for s in plan.info.stages.get("recv", ())):  # tcp_v4_rcv & co. hooked
        head.append("#define RX_L4_HOOK 1")
    if any(s.key == "ip" for s in plan.info.stages.get("send", ())):  # ip_queue_xmit & co. hooked
        head.append("#define TX_L3_HOOK 1")
    if plan.source == "netlat_kp.bpf.c":
        head.append(f"#define UDP_RECVMSG_FLAGS(ctx) {recvmsg_flags('udp_recvmsg')}")
        head.append(f"#define TCP_RECVMSG_FLAGS(ctx) {recvmsg_flags('tcp_recvmsg')}")
    if plan.fentry:  # fexit: the arguments by position (flags moved in 5.19; 0 when BTF cannot say)
        for function in ("udp_recvmsg", "tcp_recvmsg"):
            params = function_params(function) or ()
            flags = f"ctx[{params.index('flags')}]" if "flags" in params else "0"
            head.append(f"#define {function.upper()}_FLAGS_ARG(ctx) {flags}")
    for event, symbol in plan.kprobes.items():
        head.append(f"/* kprobe {event} -> {symbol} */")
    text = "\n".join(head) + "\n" + filter_defines(filters or Filters()) + table_defines()
    for name in (*_COMMON_FILES, plan.source, *(("netlat_fe.bpf.c",) if plan.fentry else ())):
        text += f"\n/* ---- {name} ---- */\n" + read_c(name)
    if plan.fentry:
        text += "\n" + fentry_programs(plan)
    return text
