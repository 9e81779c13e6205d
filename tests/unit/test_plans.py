"""Plan selection from (fake) kernel features, and kprobe symbol resolution."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tui.bpf import plans
from tui.bpf.features import KernelFeatures
from tui.errors import UserError
from tui.model.snapshot import RECV, SEND


def features(**overrides: object) -> KernelFeatures:
    base: dict[str, object] = dict(
        btf=True, kprobes=False, fentry=False, raw_tracepoints=True, ringbuf=True,
        tracepoints=dict.fromkeys(plans.all_tracepoints(), True),
    )
    base.update(overrides)
    return KernelFeatures(**base)  # type: ignore[arg-type]


KALLSYMS = {name: name for names in plans.KPROBE_FUNCTIONS.values() for name in names[:1]}


def test_auto_picks_tracepoints_on_a_kernel_like_this_one() -> None:
    plan = plans.choose_plan("auto", features())
    assert plan.info.name == "tracepoint"
    assert "net:net_dev_queue" in plan.raw_tracepoints


def test_sample_is_carried_into_the_plan_info() -> None:
    assert plans.choose_plan("tracepoint", features(), sample=16).info.sample == 16


def test_kprobe_refused_without_kprobes_with_one_line_reason() -> None:
    with pytest.raises(UserError) as err:
        plans.choose_plan("kprobe", features())
    assert "no kprobes" in str(err.value)
    assert "\n" not in str(err.value)


def test_fentry_without_fentry_or_kprobes_and_unknown_plans_are_refused() -> None:
    with pytest.raises(UserError, match="fentry does not attach"):
        plans.choose_plan("fentry", features())
    with pytest.raises(UserError, match="no kprobes"):  # each hook's fallback must exist
        plans.choose_plan("fentry", features(fentry=True))
    with pytest.raises(UserError, match="expected auto"):
        plans.choose_plan("bogus", features())


def test_tracepoint_refused_when_a_tracepoint_is_missing() -> None:
    tps = dict.fromkeys(plans.all_tracepoints(), True)
    tps["tcp:tcp_probe"] = False
    with pytest.raises(UserError, match="tcp:tcp_probe"):
        plans.choose_plan("tracepoint", features(tracepoints=tps))


def test_auto_picks_kprobes_on_a_debian_12_like_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """6.1 has kprobes but not tcp_sendmsg_locked nor the sock:* tracepoints (seen in the VM)."""
    monkeypatch.setattr(plans, "read_kallsyms", lambda path="/proc/kallsyms": KALLSYMS)
    tps = dict.fromkeys(plans.all_tracepoints(), True)
    newer = ("tcp:tcp_sendmsg_locked", "sock:sock_send_length", "sock:sk_data_ready", "sock:sock_recv_length")
    for name in newer:
        tps[name] = False
    plan = plans.choose_plan("auto", features(kprobes=True, tracepoints=tps))
    assert plan.info.name == "kprobe"
    assert plan.kprobes["ip_queue_xmit"] == "__ip_queue_xmit"
    assert ("kretprobe", "tcp_recvmsg", "kr_tcp_recvmsg") in plan.attach
    assert ("raw_tracepoint", "tcp_probe", "rtp_tcp_probe") in plan.attach
    assert ("raw_tracepoint", "napi_gro_receive_entry", "rtp_napi_gro_receive_entry") in plan.attach
    assert not set(newer) & set(plan.raw_tracepoints)
    assert "sock:inet_sock_set_state" in plan.raw_tracepoints  # Linux 4.16+: the socket table's close


def test_auto_with_nothing_usable_names_both_reasons() -> None:
    with pytest.raises(UserError, match=r"no probe plan can run here: .*BTF.*kprobe"):
        plans.choose_plan("auto", features(btf=False))


def test_kallsyms_resolution_takes_renamed_and_suffixed_symbols(tmp_path: Path) -> None:
    ksyms = tmp_path / "kallsyms"
    ksyms.write_text(
        "ffffffff81000000 T ip_queue_xmit\n"
        "ffffffff81000008 T __ip_queue_xmit\n"
        "ffffffff81000010 t udp_rcv.cold\n"
        "ffffffff81000020 t udp_rcv.isra.0\n"
        "ffffffff81000030 T tcp_sendmsg\n"
        "ffffffff81000040 T tcp_sendmsg.constprop.0\n"
        "ffffffff81000050 d tcp_v4_rcv\n"
    )
    table = plans.read_kallsyms(str(ksyms))
    resolved, missing = plans.resolve_kprobes(table)
    assert resolved["ip_queue_xmit"] == "__ip_queue_xmit"  # the renamed worker is preferred
    assert resolved["udp_rcv"] == "udp_rcv.isra.0"
    assert resolved["tcp_sendmsg"] == "tcp_sendmsg"
    assert "tcp_v4_rcv" in missing  # a data symbol is not a function
    with pytest.raises(UserError, match="tcp_v4_rcv"):
        plans.kprobe_plan(table)


def test_stage_slots_cover_every_declared_stage() -> None:
    for plan in (plans.TRACEPOINT_INFO, plans.KPROBE_INFO):
        for path in (SEND, RECV):
            keys = [s.key for s in plan.specs(path)]
            assert len(keys) == len(set(keys))
            assert set(keys) <= set(plans.SLOTS[path])
    for slots in plans.SLOTS.values():
        assert len(set(slots.values())) == len(slots) and max(slots.values()) < plans.SLOTS_PER_PATH


@pytest.mark.parametrize(
    "module",
    ["tui.bpf.plans", "tui.bpf.features", "tui.bpf.btf", "tui.bpf.program", "tui.bpf.stats",
     "tui.sources.live", "tui.headless"],
)
def test_engine_modules_import_neither_textual_nor_bcc(module: str) -> None:
    """The engine runs in a worker thread and headless: no textual; bcc only once probes load."""
    import subprocess
    import sys

    code = (
        f"import sys, {module}; "
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('bcc', 'textual'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_auto_prefers_fentry_then_kprobes_where_the_kernel_has_them_and_every_tracepoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only the function plans split TCP (L4) from IP (L3); fentry costs less per call than a kprobe.
    monkeypatch.setattr(plans, "read_kallsyms", lambda path="/proc/kallsyms": KALLSYMS)
    tps = dict.fromkeys(plans.all_tracepoints(), True)
    assert plans.choose_plan("auto", features(kprobes=True, tracepoints=tps)).info.name == "kprobe"
    assert plans.choose_plan("auto", features(kprobes=True, fentry=True)).info.name == "fentry"
    assert plans.choose_plan("kprobe", features(kprobes=True, fentry=True)).info.name == "kprobe"
    assert plans.choose_plan("tracepoint", features(kprobes=True, tracepoints=tps)).info.name == "tracepoint"


def test_fentry_plan_tries_fentry_per_function_and_keeps_every_kprobe_as_fallback() -> None:
    table = {**KALLSYMS, "udp_rcv": "udp_rcv.isra.0", "security_socket_sendmsg": "security_socket_sendmsg"}
    plan = plans.fentry_plan(table)
    assert plan.info.name == "fentry"
    # both entry and exit of tcp_sendmsg, BCC's names (the BTF target is found by name)
    assert plan.fentry["tcp_sendmsg"] == (("fentry", "tcp_sendmsg", "kfunc__tcp_sendmsg"),
                                          ("fexit", "tcp_sendmsg", "kretfunc__tcp_sendmsg"))
    assert plan.fentry["udp_recvmsg"] == (("fexit", "udp_recvmsg", "kretfunc__udp_recvmsg"),)
    assert "udp_rcv" not in plan.fentry  # a .isra copy is not in BTF: kprobe only
    assert ("kprobe", "udp_rcv.isra.0", "kp_l4_rcv") in plan.attach
    assert ("kprobe", "tcp_sendmsg", "kp_tcp_sendmsg") in plan.attach  # the fallback stays
    assert plan.kprobes["sock_sendmsg"] == "security_socket_sendmsg"
    send = [s.key for s in plan.info.stages[SEND]]
    assert send == ["sock", "tcp", "ip", "qdisc", "device"]
    assert plan.info.stages[SEND][0].opens == "fentry:sock_sendmsg"
    assert plans.NO_SOCK_NOTE not in plan.info.merged


def test_a_fentry_plan_whose_every_hook_fell_back_is_named_kprobe_or_refused_when_asked_for() -> None:
    plan = plans.fentry_plan(KALLSYMS)
    kprobes = tuple((by, sym, kind) for kind, sym, by in plan.attach)
    refused = {hook: "attach refused: Permission denied" for hook in plan.fentry}
    # auto: what runs is the kprobe plan, with its own event names
    ran = plans.attached_plan(plan, kprobes, "auto", refused)
    assert ran.info.name == "kprobe" and not ran.fentry
    assert ran.info.hooks == kprobes
    assert ran.info.stages[SEND][0].opens.startswith("kprobe:")
    with pytest.raises(UserError, match="--probes fentry: no function attaches with fentry here "
                       r"\(attach refused: Permission denied\)"):
        plans.attached_plan(plan, kprobes, "fentry", refused)
    # one hook on fentry: still the fentry plan, which says per hook what it got
    mixed = (("tcp_sendmsg", "tcp_sendmsg", "fentry"), *kprobes)
    assert plans.attached_plan(plan, mixed, "auto", refused).info.name == "fentry"
    # the kprobe plan is taken as attached
    kp = plans.kprobe_plan(KALLSYMS)
    assert plans.attached_plan(kp, kprobes, "kprobe", {}).info.name == "kprobe"


def test_without_a_socket_layer_hook_the_plan_says_so() -> None:
    plan = plans.kprobe_plan(KALLSYMS)
    assert "sock" not in [s.key for s in plan.info.stages[SEND]]
    assert plans.NO_SOCK_NOTE in plan.info.merged


def _bpf_functions(source: str) -> set[str]:
    """BPF program names in a plan's C file as BCC names them (RAW_TRACEPOINT_PROBE(x): raw_tracepoint__x)."""
    text = (Path(plans.__file__).parent / source).read_text()
    raw = {f"raw_tracepoint__{m}" for m in re.findall(r"^RAW_TRACEPOINT_PROBE\((\w+)\)", text, re.M)}
    return raw | set(re.findall(r"^int (\w+)\(", text, re.M))


@pytest.mark.parametrize("source", ["netlat_tp.bpf.c", "netlat_kp.bpf.c"])
def test_each_program_belongs_to_the_path_of_its_hook(source: str) -> None:
    # Skipped runs (recursion misses) are reported per path by the program's name: a new hook
    # must land on the path whose packets it can lose.
    functions = _bpf_functions(source)
    assert len(functions) >= 10, functions
    send = {f for f in functions if plans.program_path(f) == SEND}
    # inet_sock_set_state loses no packet (a skipped run leaves a closed socket's row one more
    # tick): its misses are reported with the receive path's
    recv_words = ("rx", "recv", "netif", "napi", "tcp_probe", "data_ready", "copy_datagram", "l4_rcv",
                  "sock_set_state")
    for f in functions:
        assert (f in send) != any(w in f for w in recv_words), f
    assert {"raw_tracepoint__net_dev_xmit", "raw_tracepoint__tcp_sendmsg_locked"} <= send or \
        {"kp_tcp_sendmsg", "kr_tcp_sendmsg", "kp_ip_queue_xmit", "rtp_net_dev_queue"} <= send


def test_program_paths_know_every_bcc_naming_of_fentry_programs() -> None:
    assert plans.program_path("kretfunc__vmlinux__tcp_sendmsg") == SEND  # BCC 0.31
    assert plans.program_path("kretfunc__tcp_sendmsg") == SEND  # BCC 0.26
    assert plans.program_path("kfunc__vmlinux____ip_queue_xmit") == SEND
    assert plans.program_path("kfunc__vmlinux__security_socket_sendmsg") == SEND
    assert plans.program_path("kfunc__vmlinux__sock_def_readable") == RECV
    assert plans.program_path("kp_sock_sendmsg") == SEND
