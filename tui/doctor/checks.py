"""doctor's checks, in the order a user would fix them. Each returns a Finding (its lines, its facts
for the JSON, the value later checks build on) and never raises for what it finds; ``collect`` makes
the report of what they return.

Every answer comes from trying the real thing where that is cheap enough (a BPF map create, a BCC
compile and program load, an fentry attach, the plan itself), not from version numbers.
"""

from __future__ import annotations

import ctypes
import os
import platform
import time
from collections.abc import Mapping
from typing import Any

from tui import system
from tui.bpf.compile_output import captured_stderr, error_line
from tui.doctor.report import FAIL, INFO, NO, OK, SKIP, WARN, Check, Finding, Report, found
from tui.errors import UserError, one_line

BPF_FIX = "run as root; check kernel.unprivileged_bpf_disabled and that CONFIG_BPF_SYSCALL=y"
REINSTALL_FIX = "reinstall netlat-tui"
OTHER_PLAN_FIX = "run `netlat-tui --probes tracepoint` or `--probes kprobe` to try the other plan"
NEEDS_TRACEFS = "cannot tell without tracefs (needs root)"


def collect() -> Report:
    """Run every check; the report is made of what they return."""
    root = check_privileges()
    syscall = check_bpf_syscall()
    tracefs = check_tracefs(root.value)
    headers = check_btf_and_headers()  # before bcc: without headers its compile fails, and this says why
    bcc = check_bcc(root.value)
    have_bcc = bcc.value is not None
    features = check_features(root.value, tracefs.value, have_bcc)
    offsets = check_offsets(have_bcc and headers.value.kind != "missing")
    workloads = check_workloads()
    plan = check_plan(features.value, root.value, features.facts.get("tracepoints", {}), can_start=have_bcc)
    return Report.of([root, syscall, tracefs, headers, bcc, features, offsets, workloads, plan])


def check_workloads() -> Finding[None]:
    """What sockets can be attributed to: their own cgroup and namespace (BTF), the cgroup2 mount."""
    from tui.attribution import cgroup2_mount
    from tui.bpf.btf import workload_offsets
    from tui.bpf.program import workload_notes

    mount = cgroup2_mount()
    notes = workload_notes(workload_offsets())
    lines = [Check("cgroup2 mount", OK, mount) if mount else
             Check("cgroup2 mount", NO, "none in /proc/mounts: cgroups show as ids, --cgroup cannot resolve")]
    lines.append(Check("socket workload", WARN, "; ".join(notes)) if notes else
                 Check("socket workload", OK, "each socket's own cgroup and network namespace (BTF)"))
    return found(None, *lines, features={"workloads": {"cgroup2_mount": mount, "notes": notes}})


def check_privileges() -> Finding[bool]:
    """Whether this process may load and attach tracing programs (the value)."""
    try:
        system.require_root()
    except UserError as exc:
        return found(False, Check("privileges", FAIL, "not root and no CAP_BPF+CAP_PERFMON", exc.fix,
                                  required=True), features={"privileges": False})
    caps = "root" if os.geteuid() == 0 else "CAP_BPF and CAP_PERFMON"
    return found(True, Check("privileges", OK, caps), features={"privileges": True})


# bpf(2) syscall numbers; BPF_MAP_CREATE = 0, BPF_MAP_TYPE_ARRAY = 2.
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}


def bpf_map_create_works() -> tuple[bool, str]:
    """Create (and close) a one-slot BPF array map with the raw syscall: the smallest real BPF use."""
    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        return False, f"unknown bpf syscall number on {platform.machine()}"
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 30)(2, 4, 4, 1)  # map_type, key_size, value_size, max_entries
    fd = libc.syscall(nr, 0, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        err = ctypes.get_errno()
        return False, f"bpf(BPF_MAP_CREATE) failed: {os.strerror(err)}"
    os.close(fd)
    return True, "bpf(BPF_MAP_CREATE) works"


def check_bpf_syscall() -> Finding[bool]:
    ok, detail = bpf_map_create_works()
    return found(ok, Check("bpf syscall", OK if ok else FAIL, detail, "" if ok else BPF_FIX, required=True),
                 features={"bpf_syscall": ok})


def check_tracefs(root: bool) -> Finding[str | None]:
    """The tracefs path (None: not mounted, or not visible without root)."""
    if root:
        try:
            path = system.ensure_tracefs()
        except UserError as exc:
            return found(None, Check("tracefs", FAIL, exc.reason, exc.fix, required=True),
                         features={"tracefs": None})
        return found(path, Check("tracefs", OK, path), features={"tracefs": path})
    if system.tracefs_ready():
        path = system.TRACEFS
        return found(path, Check("tracefs", OK, path), features={"tracefs": path})
    return found(None, Check("tracefs", SKIP, "not accessible: checking or mounting it needs root",
                             "run as root", required=True), features={"tracefs": None})


def check_btf_and_headers() -> Finding[system.HeadersStatus]:
    """BTF (by the BTF rule: the probes need it) and the headers BCC compiles with (the value)."""
    btf = system.btf_available()
    h = system.headers_status()
    offsets = system.btf_rule(h, btf)
    btf_line = (Check("BTF", OK, system.BTF_VMLINUX) if offsets.ok else
                Check("BTF", FAIL, offsets.message, offsets.fix, required=True))
    if h.kind == "exact":
        headers_line = Check("kernel headers", OK, f"exact: {h.version} ({h.path})")
    elif h.kind == "nearest":  # of another kernel: they only warn, the offsets come from BTF
        headers_line = Check("kernel headers", WARN, f"nearest: {h.message}", required=True)
    else:
        headers_line = Check("kernel headers", FAIL, h.reason, h.fix, required=True)
    return found(h, btf_line, headers_line, features={"btf": btf},
                 headers={"kind": h.kind, "path": h.path, "version": h.version, "message": h.message})


_TEST_PROGRAM = """
#include <net/sock.h>
#include <linux/skbuff.h>
int netlat_doctor(void *ctx) { return sizeof(struct sock) > 0 && sizeof(struct sk_buff) > 0; }
"""


def check_bcc(root: bool) -> Finding[Any]:
    """bcc importable, and a real compile through the kernel headers plus a program load; the value
    is the bcc module once both worked (None otherwise)."""
    try:
        bcc = system.import_bcc()
    except UserError as exc:
        return found(None, Check("bcc", FAIL, "cannot be imported", exc.fix, required=True),
                     bcc={"importable": False, "version": None, "test_compile": False})
    version = getattr(bcc, "__version__", "?")
    facts = {"importable": True, "version": version, "path": os.path.dirname(bcc.__file__)}
    if not root:
        return found(None, Check("bcc", SKIP, f"{version} imports; the test compile needs root"),
                     bcc={**facts, "test_compile": None})
    started = time.monotonic()
    ok, detail = compiles(bcc)
    seconds = round(time.monotonic() - started, 2)
    facts.update(test_compile=ok, test_compile_s=seconds)
    if not ok:
        return found(None, Check("bcc", FAIL, f"{version}; test compile failed: {detail}", system.SETUP_FIX,
                                  required=True), bcc=facts)
    return found(bcc, Check("bcc", OK, f"{version}; test compile and load ok ({seconds:.1f} s)"), bcc=facts)


def compiles(bcc: Any) -> tuple[bool, str]:
    """Compile and load a program that includes the kernel headers; (ok, why not)."""
    with captured_stderr() as err:
        try:
            b = bcc.BPF(text=_TEST_PROGRAM)
            try:
                b.load_func("netlat_doctor", bcc.BPF.TRACEPOINT)
            finally:
                b.cleanup()
        except Exception as exc:  # BCC raises plain Exception for compile and load errors
            return False, error_line(err(), exc)
    return True, ""


def check_features(root: bool, tracefs: str | None, have_bcc: bool) -> Finding[Any]:
    """Kernel tracing features (the value: tui.bpf.features.KernelFeatures, None when unknown)."""
    try:
        from tui.bpf import features as kfeatures
    except ImportError as exc:  # the engine is not installed / broken
        return found(None, Check("kernel features", FAIL, f"tui.bpf.features: {exc}", REINSTALL_FIX,
                                 required=True))
    # deep: a real fentry attach, because BTF plus trampolines is not proof (EPERM here).
    with captured_stderr():
        feats = kfeatures.detect(deep=have_bcc)
    # Without tracefs, root or bcc some answers are unknown: say so (null in JSON), never guess.
    known_tp = tracefs is not None
    features = {
        "kprobes": feats.kprobes if known_tp else None,
        "fentry": feats.fentry if have_bcc or not feats.btf else None,
        "raw_tracepoints": feats.raw_tracepoints if root else None,
        "ringbuf": feats.ringbuf if root else None,
    }
    lines = []
    if not known_tp:
        lines.append(Check("kprobes", SKIP, NEEDS_TRACEFS))
    else:
        lines.append(Check("kprobes", OK, "available") if feats.kprobes else
                     Check("kprobes", NO, "not in this kernel (no kprobe_events in tracefs)"))
    if features["fentry"] is None:
        lines.append(Check("fentry", SKIP, "not tried: a real attach needs root and bcc"))
    elif feats.fentry:
        lines.append(Check("fentry", OK, "attach works"))
    else:
        lines.append(Check("fentry", NO, "attach refused (BTF is there, the attach fails)" if feats.btf
                           else "needs BTF"))
    for name, ok, yes, no in (
        ("raw tracepoints", feats.raw_tracepoints, "programs load", "raw tracepoint programs refused"),
        ("ring buffer", feats.ringbuf, "BPF_MAP_TYPE_RINGBUF", "none (perf buffer instead)"),
    ):
        lines.append(Check(name, OK if ok else NO, yes if ok else no) if root else
                     Check(name, SKIP, "not probed: needs root"))
    features["tracepoints"], tracepoint_lines = _tracepoints(feats.tracepoints if known_tp else None)
    notes = [Check("note", WARN, note) for note in feats.notes
             if not note.startswith(("fentry", "tracefs", "not root"))]  # already said above
    return found(feats, *lines, *tracepoint_lines, *notes, features=features,
                 tracepoints=dict(feats.tracepoints) if known_tp else {})


def _tracepoints(present: Mapping[str, bool] | None) -> tuple[bool | None, list[Check]]:
    """Whether every tracepoint the plans use is there (None: unknown), and a line for each."""
    if present is None:
        return None, [Check("tracepoints", SKIP, NEEDS_TRACEFS)]
    there = [n for n, ok in present.items() if ok]
    missing = [n for n, ok in present.items() if not ok]
    lines = [Check("tracepoints", OK if not missing else (WARN if there else FAIL),
                   f"{len(there)} of {len(present)} the plans use are present")]
    users = _tracepoint_users()
    for name, ok in present.items():
        used_by = ", ".join(users.get(name, ())) or "-"
        lines.append(Check(name, OK if ok else NO, f"({used_by})", sub=True))
    return bool(there) and not missing, lines


def _tracepoint_users() -> dict[str, tuple[str, ...]]:
    """tracepoint -> the plans that use it ("tracepoint", "tracepoint (optional)", "kprobe")."""
    from tui.bpf import plans

    groups = {
        "tracepoint": getattr(plans, "TRACEPOINT_EVENTS", ()),
        "tracepoint, optional": getattr(plans, "OPTIONAL_EVENTS", ()),
        "kprobe": getattr(plans, "KPROBE_TRACEPOINTS", ()),
    }
    users: dict[str, tuple[str, ...]] = {}
    for plan, names in groups.items():
        for name in names:
            users[name] = (*users.get(name, ()), plan)
    return users


def check_offsets(can_compile: bool) -> Finding[None]:
    """The struct offsets the probes use, from BTF, against what the installed headers say."""
    try:
        from tui.bpf import btf
    except ImportError as exc:
        return found(None, Check("struct offsets", FAIL, f"tui.bpf.btf: {exc}", REINSTALL_FIX, required=True))
    try:
        kernel = btf.probe_offsets()
    except Exception as exc:  # BtfError, or libbpf missing (OSError)
        return found(None, Check("struct offsets", FAIL, f"cannot read them from BTF: {one_line(exc)}",
                                 "a kernel with BTF, and libbpf (installed with python3-bpfcc)",
                                 required=True), offsets={"btf": None})
    facts: dict[str, Any] = {"btf": kernel, "headers": None, "mismatched": []}
    if not can_compile:
        skipped = f"{len(kernel)} fields from BTF; headers not compared (no bcc)"
        return found(None, Check("struct offsets", SKIP, skipped), offsets=facts)
    with captured_stderr():
        try:
            headers = btf.header_offsets()
        except Exception as exc:
            unread = f"{len(kernel)} fields from BTF; headers: {exc}"
            return found(None, Check("struct offsets", WARN, unread), offsets=facts)
    differ = [f for f in kernel if headers.get(f) != kernel[f]]
    facts.update(headers=headers, mismatched=differ)
    if not differ:
        return found(None, Check("struct offsets", OK, f"{len(kernel)} fields: BTF and headers agree"),
                     offsets=facts)
    example = differ[0]
    return found(None, Check(
        "struct offsets", OK,
        f"{len(kernel)} fields from BTF; the headers differ on {len(differ)} (e.g. {example}: "
        f"kernel {kernel[example]}, headers {headers.get(example)}), so the probes use BTF",
    ), offsets=facts)


def check_plan(feats: Any, root: bool, tracepoints: Mapping[str, bool], can_start: bool) -> Finding[None]:
    """The plan ``auto`` picks from ``feats``, given the tracepoints known to be there; started for
    a moment when bcc compiles (``can_start``)."""
    if feats is None or not root:
        return found(None, Check("probe plan", SKIP, "cannot be chosen: kernel features unknown without root",
                                 required=True), plan={"auto": None})
    from tui.bpf import plans

    try:
        plan = plans.choose_plan("auto", feats)
    except UserError as exc:
        return found(None, Check("probe plan", FAIL, str(exc), "see the failed checks above", required=True),
                     plan={"auto": None, "reason": str(exc)})
    info = plan.info
    stages = {path: [s.key for s in info.specs(path)] for path in info.stages}
    facts = {"auto": info.name, "stages": stages, "merged": list(info.merged),
             "events": list(plan.raw_tracepoints) + sorted(plan.kprobes.values())}
    missing_required = [t for t in plan.raw_tracepoints if not tracepoints.get(t, False)]
    detail = f"auto picks '{info.name}': send {', '.join(stages.get('send', []))}; " \
             f"recv {', '.join(stages.get('recv', []))}"
    head = Check("probe plan", FAIL if missing_required else OK, detail, required=True)
    runs = check_plan_runs(info.name) if not missing_required and can_start else found(None)
    notes = [Check("plan note", INFO, line) for line in info.merged]
    return found(None, head, *runs.checks, *notes, plan={**facts, **runs.facts.get("plan", {})})


def check_plan_runs(name: str) -> Finding[bool]:
    """Start the live source for real (compile, verifier, attach) and stop it again at once.

    Only this proves the plan runs here: a kernel can offer every hook and still refuse a program
    (verifier limits, lockdown), which no feature probe shows.
    """
    from tui.sources.base import SourceError
    from tui.sources.live import LiveSource

    source = LiveSource(probes="auto")
    started = time.monotonic()
    try:
        with captured_stderr():
            source.start()
    except (SourceError, UserError) as exc:
        return found(False, Check("plan attach", FAIL, f"'{name}' does not load here: {exc}", OTHER_PLAN_FIX,
                                  required=True), plan={"runs": False, "error": str(exc)})
    finally:
        source.close()
    seconds = round(time.monotonic() - started, 2)
    hooks = source.plan.info.hooks if source.plan is not None else ()
    return found(True, Check("plan attach", OK, f"'{name}' compiled, loaded and attached in {seconds:.1f} s "
                             "(and detached again)"), *hook_lines(hooks),
                 plan={"runs": True, "start_s": seconds,
                       "hooks": [{"hook": h, "symbol": sym, "attach": kind} for h, sym, kind in hooks]})


def hook_lines(hooks: tuple[tuple[str, str, str], ...]) -> list[Check]:
    """One line per hooked kernel function: the symbol resolved and how it attached (fentry, or
    the kprobe it fell back to); tracepoints, listed above, are left out."""
    kinds: dict[tuple[str, str], list[str]] = {}
    for hook, symbol, kind in hooks:
        if kind != "raw_tracepoint":
            kinds.setdefault((hook, symbol), []).append(kind)
    return [Check(hook, OK, f"{symbol}: {'+'.join(k)}", sub=True) for (hook, symbol), k in kinds.items()]
