"""``netlat-tui doctor``: what this machine and kernel offer, and whether the live dashboard can run.

Every answer comes from trying the real thing where that is cheap enough (a BPF map create, a BCC
compile and program load, an fentry attach, the plan choice itself), not from version numbers.
Exit status 0 when live probes can run; otherwise 1 and one line on stderr with the reason and fix.

``--json`` prints one object (null wherever something could not be checked, e.g. without root)::

    ok          bool: the live dashboard can run
    reason, fix str|null: the first blocking check ("name: detail") and what to do about it
    kernel, machine
    features    {privileges, bpf_syscall, tracefs (path|null), btf, kprobes, fentry,
                 raw_tracepoints, ringbuf, tracepoints (all present)}
    tracepoints {"category:event": present} for every tracepoint any plan uses
    bcc         {importable, version, path, test_compile, test_compile_s}
    headers     {kind: exact|nearest|missing, path, version, message}
    offsets     {btf: {field: bytes}, headers: {field: bytes}|null, mismatched: [field]}
    plan        {auto: plan name|null, stages: {path: [stage keys]}, merged: [line], events: [...],
                 runs: the plan really started (compile, load, attach) and stopped, start_s | error}
    checks      [{name, status: ok|warn|no|fail|skip|info, detail, fix, required, sub}]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import sys
import textwrap
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tui import system
from tui.bpf.compile_output import captured_stderr, error_line
from tui.errors import UserError, fail, one_line

OK, WARN, NO, FAIL, SKIP, INFO = "ok", "warn", "no", "fail", "skip", "info"
#: status -> (unicode mark, ascii mark, ANSI colour)
MARKS = {
    OK: ("✓", "ok", "32"),
    WARN: ("!", "!!", "33"),
    NO: ("✗", "no", "33"),  # an optional feature this kernel lacks: not an error
    FAIL: ("✗", "XX", "31"),
    SKIP: ("-", "--", "2"),
    INFO: ("i", "i", "36"),
}
NAME_WIDTH = 16
WIDTH = 80


@dataclass
class Check:
    """One line of the report."""

    name: str
    #: ok | warn | no (optional feature absent) | fail | skip (could not be checked) | info
    status: str
    detail: str
    fix: str = ""
    required: bool = False  #: the live dashboard cannot run when this one fails
    sub: bool = False  #: a detail line under the check before it (e.g. one tracepoint)


@dataclass
class Report:
    """Everything doctor found; ``as_json()`` is the ``--json`` document."""

    kernel: str = field(default_factory=platform.release)
    machine: str = field(default_factory=platform.machine)
    checks: list[Check] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)
    tracepoints: dict[str, bool] = field(default_factory=dict)
    bcc: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    offsets: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def blocker(self) -> Check | None:
        return next((c for c in self.checks if c.required and c.status in (FAIL, SKIP)), None)

    def as_json(self) -> dict[str, Any]:
        blocker = self.blocker()
        return {
            "ok": blocker is None,
            "reason": None if blocker is None else f"{blocker.name}: {blocker.detail}",
            "fix": None if blocker is None else blocker.fix or None,
            "kernel": self.kernel,
            "machine": self.machine,
            "features": self.features,
            "tracepoints": self.tracepoints,
            "bcc": self.bcc,
            "headers": self.headers,
            "offsets": self.offsets,
            "plan": self.plan,
            "checks": [asdict(c) for c in self.checks],
        }


# ---------------------------------------------------------------------------------------------------
# the checks, in the order a user would fix them


def collect() -> Report:
    """Run every check. Never raises for what it finds; each finding is a Check."""
    r = Report()
    root = _check_privileges(r)
    _check_bpf_syscall(r)
    tracefs = _check_tracefs(r, root)
    r.features["btf"] = system.btf_available()
    headers = system.headers_status()
    offsets = system.btf_rule(headers, r.features["btf"])
    r.add(Check("BTF", OK, system.BTF_VMLINUX) if offsets.ok else
          Check("BTF", FAIL, offsets.message, offsets.fix, required=True))
    _check_headers(r, headers)  # before bcc: without headers its compile fails, and this says why
    bcc = _check_bcc(r, root)
    features = _check_features(r, root, tracefs, bcc is not None)
    _check_offsets(r, bcc is not None and headers.kind != "missing")
    _check_plan(r, features, root)
    return r


def _check_privileges(r: Report) -> bool:
    try:
        system.require_root()
    except UserError as exc:
        r.features["privileges"] = False
        r.add(Check("privileges", FAIL, "not root and no CAP_BPF+CAP_PERFMON", exc.fix, required=True))
        return False
    caps = "root" if os.geteuid() == 0 else "CAP_BPF and CAP_PERFMON"
    r.features["privileges"] = True
    r.add(Check("privileges", OK, caps))
    return True


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


def _check_bpf_syscall(r: Report) -> None:
    ok, detail = bpf_map_create_works()
    r.features["bpf_syscall"] = ok
    fix = "run as root; check kernel.unprivileged_bpf_disabled and that CONFIG_BPF_SYSCALL=y"
    r.add(Check("bpf syscall", OK if ok else FAIL, detail, "" if ok else fix, required=True))


def _check_tracefs(r: Report, root: bool) -> str | None:
    try:
        path = system.ensure_tracefs() if root else None
    except UserError as exc:
        r.add(Check("tracefs", FAIL, exc.reason, exc.fix, required=True))
        path = None
    if path is None and not root and system.tracefs_ready():
        path = system.TRACEFS
    r.features["tracefs"] = path
    if path is not None:
        r.add(Check("tracefs", OK, path))
    elif not root:
        r.add(Check("tracefs", SKIP, "not accessible: checking or mounting it needs root", "run as root",
                    required=True))
    return path


def _check_bcc(r: Report, root: bool) -> Any:
    """bcc importable, and a real compile through the kernel headers plus a program load."""
    try:
        bcc = system.import_bcc()
    except UserError as exc:
        r.bcc = {"importable": False, "version": None, "test_compile": False}
        r.add(Check("bcc", FAIL, "cannot be imported", exc.fix, required=True))
        return None
    version = getattr(bcc, "__version__", "?")
    r.bcc = {"importable": True, "version": version, "path": os.path.dirname(bcc.__file__)}
    if not root:
        r.bcc["test_compile"] = None
        r.add(Check("bcc", SKIP, f"{version} imports; the test compile needs root"))
        return None
    started = time.monotonic()
    ok, detail = _test_compile(bcc)
    r.bcc["test_compile"] = ok
    r.bcc["test_compile_s"] = round(time.monotonic() - started, 2)
    if ok:
        r.add(Check("bcc", OK, f"{version}; test compile and load ok ({r.bcc['test_compile_s']:.1f} s)"))
    else:
        r.add(Check("bcc", FAIL, f"{version}; test compile failed: {detail}", system.SETUP_FIX,
                    required=True))
    return bcc if ok else None


_TEST_PROGRAM = """
#include <net/sock.h>
#include <linux/skbuff.h>
int netlat_doctor(void *ctx) { return sizeof(struct sock) > 0 && sizeof(struct sk_buff) > 0; }
"""


def _test_compile(bcc: Any) -> tuple[bool, str]:
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


def _check_features(r: Report, root: bool, tracefs: str | None, have_bcc: bool) -> Any:
    try:
        from tui.bpf import features as kfeatures
    except ImportError as exc:  # the engine is not installed / broken
        r.add(Check("kernel features", FAIL, f"tui.bpf.features: {exc}", "reinstall netlat-tui",
                    required=True))
        return None
    # deep: a real fentry attach, because BTF plus trampolines is not proof (EPERM here).
    with captured_stderr():
        feats = kfeatures.detect(deep=have_bcc)
    # Without tracefs, root or bcc some answers are unknown: say so (null in JSON), never guess.
    known_tp = tracefs is not None
    r.features.update(
        kprobes=feats.kprobes if known_tp else None,
        fentry=feats.fentry if have_bcc or not feats.btf else None,
        raw_tracepoints=feats.raw_tracepoints if root else None,
        ringbuf=feats.ringbuf if root else None,
    )
    r.tracepoints = dict(feats.tracepoints) if known_tp else {}
    need_tracefs = "cannot tell without tracefs (needs root)"
    if not known_tp:
        r.add(Check("kprobes", SKIP, need_tracefs))
    else:
        r.add(Check("kprobes", OK if feats.kprobes else NO,
                    "available" if feats.kprobes else "not in this kernel (no kprobe_events in tracefs)"))
    if r.features["fentry"] is None:
        r.add(Check("fentry", SKIP, "not tried: a real attach needs root and bcc"))
    elif feats.fentry:
        r.add(Check("fentry", OK, "attach works"))
    else:
        r.add(Check("fentry", NO, "attach refused (BTF is there, the attach fails)" if feats.btf
                    else "needs BTF"))
    for name, ok, yes, no in (
        ("raw tracepoints", feats.raw_tracepoints, "programs load", "raw tracepoint programs refused"),
        ("ring buffer", feats.ringbuf, "BPF_MAP_TYPE_RINGBUF", "none (perf buffer instead)"),
    ):
        if not root:
            r.add(Check(name, SKIP, "not probed: needs root"))
        else:
            r.add(Check(name, OK if ok else NO, yes if ok else no))
    _check_tracepoints(r, feats, known_tp)
    for note in feats.notes:
        if not note.startswith(("fentry", "tracefs", "not root")):  # already said above
            r.add(Check("note", WARN, note))
    return feats


def _check_tracepoints(r: Report, feats: Any, known: bool) -> None:
    if not known:
        r.features["tracepoints"] = None
        r.add(Check("tracepoints", SKIP, "cannot tell without tracefs (needs root)"))
        return
    present = [n for n, ok in feats.tracepoints.items() if ok]
    missing = [n for n, ok in feats.tracepoints.items() if not ok]
    r.features["tracepoints"] = bool(present) and not missing
    r.add(Check("tracepoints", OK if not missing else (WARN if present else FAIL),
                f"{len(present)} of {len(feats.tracepoints)} the plans use are present"))
    users = _tracepoint_users()
    for name, ok in feats.tracepoints.items():
        used_by = ", ".join(users.get(name, ())) or "-"
        r.add(Check(name, OK if ok else NO, f"({used_by})", sub=True))


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


def _check_headers(r: Report, h: system.HeadersStatus) -> None:
    """The headers BCC compiles with; of another kernel they only warn (offsets come from BTF)."""
    r.headers = {"kind": h.kind, "path": h.path, "version": h.version, "message": h.message}
    if h.kind == "exact":
        r.add(Check("kernel headers", OK, f"exact: {h.version} ({h.path})"))
    elif h.kind == "nearest":
        r.add(Check("kernel headers", WARN, f"nearest: {h.message}", required=True))
    else:
        r.add(Check("kernel headers", FAIL, h.reason, h.fix, required=True))


def _check_offsets(r: Report, can_compile: bool) -> None:
    """The struct offsets the probes use, from BTF, against what the installed headers say."""
    try:
        from tui.bpf import btf
    except ImportError as exc:
        r.add(Check("struct offsets", FAIL, f"tui.bpf.btf: {exc}", "reinstall netlat-tui", required=True))
        return
    try:
        kernel = btf.probe_offsets()
    except Exception as exc:  # BtfError, or libbpf missing (OSError)
        r.offsets = {"btf": None}
        r.add(Check("struct offsets", FAIL, f"cannot read them from BTF: {one_line(exc)}",
                    "a kernel with BTF, and libbpf (installed with python3-bpfcc)", required=True))
        return
    r.offsets = {"btf": kernel, "headers": None, "mismatched": []}
    if not can_compile:
        r.add(Check("struct offsets", SKIP, f"{len(kernel)} fields from BTF; headers not compared (no bcc)"))
        return
    with captured_stderr():
        try:
            headers = btf.header_offsets()
        except Exception as exc:
            r.add(Check("struct offsets", WARN, f"{len(kernel)} fields from BTF; headers: {exc}"))
            return
    differ = [f for f in kernel if headers.get(f) != kernel[f]]
    r.offsets["headers"] = headers
    r.offsets["mismatched"] = differ
    if not differ:
        r.add(Check("struct offsets", OK, f"{len(kernel)} fields: BTF and headers agree"))
        return
    example = differ[0]
    r.add(Check(
        "struct offsets", OK,
        f"{len(kernel)} fields from BTF; the headers differ on {len(differ)} (e.g. {example}: "
        f"kernel {kernel[example]}, headers {headers.get(example)}), so the probes use BTF",
    ))


def _check_plan(r: Report, feats: Any, root: bool) -> None:
    if feats is None or not root:
        r.plan = {"auto": None}
        r.add(Check("probe plan", SKIP, "cannot be chosen: kernel features unknown without root",
                    required=True))
        return
    from tui.bpf import plans

    try:
        plan = plans.choose_plan("auto", feats)
    except UserError as exc:
        r.plan = {"auto": None, "reason": str(exc)}
        r.add(Check("probe plan", FAIL, str(exc), "see the failed checks above", required=True))
        return
    info = plan.info
    stages = {path: [s.key for s in info.specs(path)] for path in info.stages}
    r.plan = {"auto": info.name, "stages": stages, "merged": list(info.merged),
              "events": list(plan.raw_tracepoints) + sorted(plan.kprobes.values())}
    missing_required = [t for t in plan.raw_tracepoints if not r.tracepoints.get(t, False)]
    detail = f"auto picks '{info.name}': send {', '.join(stages.get('send', []))}; " \
             f"recv {', '.join(stages.get('recv', []))}"
    r.add(Check("probe plan", FAIL if missing_required else OK, detail, required=True))
    if not missing_required and r.bcc.get("test_compile"):
        _check_plan_runs(r, info.name)
    for line in info.merged:
        r.add(Check("plan note", INFO, line))


def _check_plan_runs(r: Report, name: str) -> None:
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
        r.plan.update(runs=False, error=str(exc))
        r.add(Check("plan attach", FAIL, f"'{name}' does not load here: {exc}",
                    "run `netlat-tui --probes tracepoint` or `--probes kprobe` to try the other plan",
                    required=True))
        return
    finally:
        source.close()
    r.plan.update(runs=True, start_s=round(time.monotonic() - started, 2))
    r.add(Check("plan attach", OK, f"'{name}' compiled, loaded and attached in {r.plan['start_s']:.1f} s "
                "(and detached again)"))


# ---------------------------------------------------------------------------------------------------
# output


def use_unicode(stream: Any = None) -> bool:
    stream = sys.stdout if stream is None else stream
    if os.environ.get("NO_COLOR"):
        return False
    return "utf" in (getattr(stream, "encoding", "") or "").lower()


def use_colour(stream: Any = None) -> bool:
    stream = sys.stdout if stream is None else stream
    return (not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
            and hasattr(stream, "isatty") and stream.isatty())


def render(report: Report, unicode: bool = True, colour: bool = False, width: int = WIDTH) -> str:
    """The human report: one check per line, wrapped to ``width`` columns."""
    lines = [f"netlat-tui doctor: Linux {report.kernel} ({report.machine})"]
    indent = " " * (NAME_WIDTH + 5)
    for c in report.checks:
        uni, asc, code = MARKS[c.status]
        mark = (uni if unicode else asc).ljust(2)
        if colour:
            mark = f"\x1b[{code}m{mark}\x1b[0m"
        if c.sub:  # e.g. "      ✓ tcp:tcp_probe (tracepoint, kprobe)"
            lines.append(f"{'':6}{mark} {c.name} {c.detail}"[: width + len(mark) - 2])
            continue
        head = f" {mark} {c.name:<{NAME_WIDTH}} "
        text = c.detail + (f" (fix: {c.fix})" if c.fix and c.status in (FAIL, SKIP) else "")
        wrapped = textwrap.wrap(text, width - len(indent)) or [""]
        lines.append(head + wrapped[0])
        lines.extend(indent + more for more in wrapped[1:])
    blocker = report.blocker()
    if blocker is None:
        verdict = f"the live dashboard can run here (probe plan: {report.plan.get('auto')})"
    else:
        verdict = f"the live dashboard cannot run here: {blocker.name}: {blocker.detail}"
    lines.extend(["", *textwrap.wrap(verdict, width)])
    return "\n".join(lines)


def run_doctor(args: argparse.Namespace) -> int:
    report = collect()
    text = json.dumps(report.as_json(), indent=2) if getattr(args, "json", False) else \
        render(report, use_unicode(), use_colour())
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `doctor | head`: the reader left; not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    blocker = report.blocker()
    if blocker is None:
        return 0
    reason = f"doctor: live probes cannot run: {blocker.name}: {blocker.detail}"
    return fail(reason + (f"; fix: {blocker.fix}" if blocker.fix else ""), 1)
