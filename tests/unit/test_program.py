"""The C's shared numbers come from the Python tables: tui.bpf.program.table_defines() and its use."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tui.bpf import plans, program
from tui.bpf.btf import BtfError, probe_offsets
from tui.model import histogram
from tui.model.snapshot import RECV, SEND

BPF_DIR = Path(program.__file__).parent
C_FILES = sorted(p.name for p in BPF_DIR.iterdir() if p.suffix in (".c", ".h"))
#: Names of the kinds the generator owns: a C file must neither define nor invent one.
_GENERATED_KIND = re.compile(r"\b(?:SLOT_(?:SEND|RECV)_\w+|CTR_\w+|PATH_[A-Z]+|NR_\w+|EV_STAGES|"
                             r"SLOTS_PER_PATH|NETLAT_(?!H\b)\w+)\b")


def generated() -> dict[str, int]:
    """NAME -> value of every #define table_defines() emits."""
    out = {}
    for line in program.table_defines().splitlines():
        m = re.fullmatch(r"#define (\w+) (\d+)(?: /\* .* \*/)?", line)
        if m:
            out[m[1]] = int(m[2])
        else:
            assert line.startswith("/*"), line
    return out


def test_the_generated_block_is_the_python_tables() -> None:
    got = generated()
    want = {"NETLAT_TABLES": 1, "NR_PATHS": 2, "PATH_SEND": plans.PATH_INDEX[SEND],
            "PATH_RECV": plans.PATH_INDEX[RECV], "SLOTS_PER_PATH": plans.SLOTS_PER_PATH}
    for path in (SEND, RECV):
        want.update({f"SLOT_{path.upper()}_{key.upper()}": slot for key, slot in plans.SLOTS[path].items()})
        want.update({f"CTR_{name.upper()}": i for name, i in plans.COUNTERS[path].items()})
    want["NR_COUNTERS"] = len(plans.COUNTER_INDEX)
    want["EV_STAGES"] = 4
    stage, sock = histogram.STAGE_SUB_BITS, histogram.SOCKET_SUB_BITS
    want.update({
        "NETLAT_MAX_LOG2": histogram.MAX_LOG2, "NETLAT_STAGE_SUB_BITS": stage, "NETLAT_SOCK_SUB_BITS": sock,
        "NETLAT_STAGE_BUCKETS": histogram.bucket_count(stage),
        "NETLAT_SOCK_BUCKETS": histogram.bucket_count(sock),
        "NETLAT_STAGE_STORE": 512, "NETLAT_SOCK_STORE": 256,
    })
    assert got == want
    # the counter rows of both paths fit struct counters, and the histogram storage its buckets
    assert max(plans.COUNTER_INDEX.values()) < got["NR_COUNTERS"]
    for kind in ("STAGE", "SOCK"):
        store = got[f"NETLAT_{kind}_STORE"]
        assert store & (store - 1) == 0 and store >= got[f"NETLAT_{kind}_BUCKETS"] > store // 2


def test_each_slot_says_what_it_times_in_each_plan() -> None:
    lines = {line.split()[1]: line for line in program.table_defines().splitlines()
             if line.startswith("#define")}
    assert "tcp:tcp_sendmsg_locked -> net:net_dev_queue" in lines["SLOT_SEND_TCP_IP"]
    assert "kprobe kprobe:tcp_sendmsg -> net:net_dev_xmit" in lines["SLOT_SEND_TOTAL"]
    assert "tracepoint tcp:tcp_sendmsg_locked -> net:net_dev_xmit" in lines["SLOT_SEND_TOTAL"]


def test_no_c_file_writes_a_generated_number_by_hand() -> None:
    names = set(generated())
    for name in C_FILES:
        text = (BPF_DIR / name).read_text()
        defined = set(re.findall(r"^\s*#\s*define\s+(\w+)", text, re.M))
        assert not defined & names, name
        assert not {d for d in defined if _GENERATED_KIND.fullmatch(d)}, name
        unknown = set(_GENERATED_KIND.findall(text)) - names
        assert not unknown, f"{name} uses names the generator does not define: {sorted(unknown)}"


def test_events_carry_their_stages_at_the_slots_python_reads() -> None:
    # struct event.stages_ns is indexed by stage slot; the live source names them by EVENT_STAGES.
    for path, names in plans.EVENT_STAGES.items():
        assert [plans.SLOTS[path][n] for n in names] == list(range(len(names)))
    written = {
        path: set(re.findall(rf"stages_ns\[SLOT_{path.upper()}_(\w+)\]",
                             (BPF_DIR / f"netlat_{path}.bpf.c").read_text()))
        for path in (SEND, RECV)
    }
    assert written == {path: {n.upper() for n in names} for path, names in plans.EVENT_STAGES.items()}
    for name in C_FILES:
        assert not re.search(r"stages_ns\[\d", (BPF_DIR / name).read_text()), name


def test_tables_that_disagree_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plans, "COUNTERS", {SEND: {"packets": 0}, RECV: {"packets": 1}})
    with pytest.raises(ValueError, match="packets"):
        program.table_defines()
    monkeypatch.undo()
    monkeypatch.setattr(plans, "EVENT_STAGES", {SEND: ("qdisc", "tcp_ip"), RECV: ()})
    with pytest.raises(ValueError, match="event stages"):
        program.table_defines()
    monkeypatch.undo()
    monkeypatch.setitem(plans.SLOTS, RECV, {**plans.RECV_SLOTS, "extra": plans.SLOTS_PER_PATH})
    with pytest.raises(ValueError, match="slots"):
        program.table_defines()


def _plans() -> list[plans.Plan]:
    kallsyms = {n: n for names in (*plans.KPROBE_FUNCTIONS.values(), *plans.KPROBE_OPTIONAL.values())
                for n in names[:1]}
    return [plans.tracepoint_plan(), plans.kprobe_plan(kallsyms), plans.fentry_plan(kallsyms)]


@pytest.fixture(scope="module")
def offsets() -> dict[str, int]:
    try:
        return probe_offsets()
    except BtfError as e:
        pytest.skip(f"no kernel BTF: {e}")


@pytest.mark.parametrize("plan", _plans(), ids=lambda p: p.info.name)
def test_build_source_puts_the_tables_before_the_c(plan: plans.Plan, offsets: dict[str, int]) -> None:
    text = program.build_source(plan, offsets=offsets)
    tables = program.table_defines()
    assert text.count(tables) == 1
    assert text.index(tables) < text.index("/* ---- netlat.h ---- */")
    order = [text.index(f"/* ---- {name} ---- */") for name in
             ("netlat.h", "netlat_common.bpf.c", "netlat_send.bpf.c", "netlat_recv.bpf.c", plan.source)]
    assert order == sorted(order)


@pytest.mark.parametrize("plan", _plans(), ids=lambda p: p.info.name)
def test_every_table_name_in_the_c_is_defined_once_preprocessed(
    plan: plans.Plan, offsets: dict[str, int], tmp_path: Path
) -> None:
    """Compile-level: the C preprocessor expands every slot/counter name of the assembled program,
    so none is left undefined (BCC would fail on it) and netlat.h's guard passes."""
    cc = next(filter(None, map(shutil.which, ("cc", "gcc", "clang"))), None)
    if cc is None:
        pytest.skip("no C compiler (setup.sh installs gcc)")
    (tmp_path / "uapi" / "linux").mkdir(parents=True)
    (tmp_path / "uapi" / "linux" / "ptrace.h").write_text("")
    src = tmp_path / "prog.c"
    src.write_text(program.build_source(plan, offsets=offsets))
    out = subprocess.run([cc, "-E", "-P", "-D__BPF_TRACING__", "-I", str(tmp_path), str(src)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    left = set(re.findall(r"\b(?:SLOT_\w+|CTR_\w+|PATH_SEND|PATH_RECV|NR_\w+|EV_STAGES|SLOTS_PER_PATH)\b",
                          out.stdout))
    assert not left
    assert f"stage_hists, struct stage_hist, 2 * {plans.SLOTS_PER_PATH}" in out.stdout


def test_fentry_programs_call_their_handler_with_the_return_value_after_the_arguments(
    offsets: dict[str, int],
) -> None:
    kallsyms = {n: n for names in (*plans.KPROBE_FUNCTIONS.values(), *plans.KPROBE_OPTIONAL.values())
                for n in names[:1]}
    plan = plans.fentry_plan(kallsyms)
    text = program.build_source(plan, offsets=offsets)
    assert text.index("/* ---- netlat_kp.bpf.c ---- */") < text.index("/* ---- netlat_fe.bpf.c ---- */")
    # tcp_sendmsg(sk, msg, size): the return value is ctx[3]
    assert "KRETFUNC_PROBE(tcp_sendmsg)\n{\n\tfx_tcp_sendmsg(ctx, (int)ctx[3]);" in text
    assert "KFUNC_PROBE(tcp_v4_rcv)\n{\n\tfe_l4_rcv(ctx);" in text
    # a function BTF does not have gets no program (its hook stays on its kprobe)
    missing = plans.fentry_plan({**kallsyms, "tcp_v4_rcv": "tcp_v4_rcv_not_in_btf"})
    assert "tcp_v4_rcv_not_in_btf" not in program.fentry_programs(missing)
