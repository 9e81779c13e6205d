"""The kprobe plan on a kernel without kprobes: it must compile and pass the verifier, and refuse to run.

Attaching needs CONFIG_KPROBES (tests/vm runs it on a stock Debian kernel). Here every program of
the plan is compiled by BCC and loaded, so the kernel's verifier checks it, without attaching.
"""

from __future__ import annotations

import pytest

from tui.bpf import features, plans
from tui.bpf.program import build_source
from tui.errors import UserError
from tui.model.filters import Filters

pytestmark = pytest.mark.kernel


@pytest.mark.parametrize("task_storage", [True, False])
def test_kprobe_plan_programs_pass_the_verifier(require_kernel, task_storage: bool) -> None:
    bcc = require_kernel
    plan = plans.kprobe_plan(optional_tracepoints=("net:napi_gro_receive_entry",))
    every_kind = Filters.parse(port="443", comm="nginx", cgroup="/", netns="/proc/self/ns/net")
    text = build_source(plan, every_kind, sample=4,
                        task_storage=task_storage)
    b = bcc.BPF(text=text.encode())
    try:
        loaded = set()
        for kind, _target, fn in plan.attach:
            prog_type = bcc.BPF.RAW_TRACEPOINT if kind == "raw_tracepoint" else bcc.BPF.KPROBE
            b.load_func(fn.encode(), prog_type)
            loaded.add(fn)
    finally:
        b.cleanup()
    assert loaded >= {"kp_tcp_sendmsg", "kr_tcp_sendmsg", "kp_ip_queue_xmit", "kp_l4_rcv",
                      "kp_data_ready", "kr_tcp_recvmsg", "rtp_net_dev_queue", "rtp_tcp_probe",
                      "kp_udp_recvmsg", "kr_udp_recvmsg", "kp_sock_sendmsg"}


def test_fentry_plan_compiles_and_its_kprobe_fallbacks_pass_the_verifier(require_kernel) -> None:
    """The fentry plan's C (handlers and the programs generated per symbol) compiles without BCC
    attaching its kfunc programs (this kernel refuses fentry: tests/vm attaches them); every kprobe
    a hook would fall back to loads."""
    from tui.sources.live import _bpf_class, _compiled_name

    bcc = require_kernel
    plan = plans.fentry_plan(optional_tracepoints=("net:napi_gro_receive_entry",))
    assert plan.fentry, "no function of the plan resolved for fentry"
    b = _bpf_class(plan)(text=build_source(plan, Filters.parse(port="443"), task_storage=True).encode())
    try:
        for items in plan.fentry.values():
            for _kind, _symbol, program in items:
                assert bcc.lib.bpf_function_start(b.module, _compiled_name(b, program).encode())
        for kind, _target, fn in plan.attach:
            b.load_func(fn.encode(), bcc.BPF.RAW_TRACEPOINT if kind == "raw_tracepoint" else bcc.BPF.KPROBE)
    finally:
        b.cleanup()


def test_kprobe_plan_refused_without_kprobes_with_one_line(require_kernel) -> None:
    feats = features.detect()
    if feats.kprobes:  # a kernel with kprobes must get the plan, with every symbol resolved
        plan = plans.choose_plan("kprobe", feats)
        assert plan.info.name == "kprobe" and set(plans.KPROBE_FUNCTIONS) <= set(plan.kprobes)
        return
    with pytest.raises(UserError) as err:
        plans.choose_plan("kprobe", feats)
    assert str(err.value) == (
        "--probes kprobe cannot run here: this kernel has no kprobes "
        "(CONFIG_KPROBES unset: no kprobe_events in tracefs)"
    )
