"""``netlat-tui doctor`` on the real machine, checked against what the kernel itself shows.

Each answer doctor gives is compared with an independent look (tracefs directories, the headers'
own version stamp, an fentry attach on a different function), so the test holds on any kernel:
on the development machine it says no kprobes, no fentry, tracepoints yes, plan tracepoint and
nearest headers; in the stock-kernel VM it says kprobes yes and exact headers.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tui import system
from tui.bpf import plans

pytestmark = pytest.mark.kernel

REPO_DIR = Path(__file__).resolve().parents[2]
RELEASE = platform.release()


def doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", "doctor", *args], cwd=REPO_DIR, env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180, check=False,
    )


@pytest.fixture(scope="module")
def report(require_kernel_module: ModuleType) -> dict[str, Any]:
    proc = doctor("--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def require_kernel_module() -> ModuleType:
    """Module-scoped twin of conftest's require_kernel (the marker has already checked the machine)."""
    return system.import_bcc()


def fentry_attaches(bcc: ModuleType) -> bool:
    """Independent of doctor's own attempt: another function, our own program."""
    try:
        b = bcc.BPF(text=b"KFUNC_PROBE(tcp_recvmsg) { return 0; }")
    except Exception:  # BCC raises plain Exception when the load or attach is refused
        return False
    b.cleanup()
    return True


def build_release() -> str:
    uts = Path("/lib/modules", RELEASE, "build", "include", "generated", "utsrelease.h")
    match = re.search(r'UTS_RELEASE\s+"([^"]+)"', uts.read_text())
    assert match, f"no UTS_RELEASE in {uts}"
    return match.group(1)


def test_doctor_says_the_live_dashboard_can_run(report: dict[str, Any]) -> None:
    assert report["ok"] is True
    assert report["reason"] is None
    assert report["kernel"] == RELEASE
    assert report["features"]["privileges"] is True
    assert report["features"]["bpf_syscall"] is True
    assert report["bcc"]["importable"] is True
    assert report["bcc"]["test_compile"] is True


def test_kprobes_answer_matches_tracefs(report: dict[str, Any]) -> None:
    tracefs = system.ensure_tracefs()
    assert report["features"]["tracefs"] == tracefs
    assert report["features"]["kprobes"] is os.path.exists(os.path.join(tracefs, "kprobe_events"))


def test_fentry_answer_matches_a_real_attach(
    report: dict[str, Any], require_kernel_module: ModuleType
) -> None:
    assert report["features"]["fentry"] is fentry_attaches(require_kernel_module)


def test_every_tracepoint_the_plans_use_is_reported_truthfully(report: dict[str, Any]) -> None:
    tracefs = system.ensure_tracefs()
    assert set(report["tracepoints"]) == set(plans.all_tracepoints())
    for name, present in report["tracepoints"].items():
        category, event = name.split(":")
        assert present is os.path.isdir(os.path.join(tracefs, "events", category, event)), name
    assert report["features"]["tracepoints"] is all(report["tracepoints"].values())


def test_auto_plan_is_tracepoint_where_its_tracepoints_exist(report: dict[str, Any]) -> None:
    tracefs = system.ensure_tracefs()
    have_all = all(
        os.path.isdir(os.path.join(tracefs, "events", *name.split(":"))) for name in plans.TRACEPOINT_EVENTS
    )
    assert have_all, "this test expects a kernel with the tracepoint plan's events"
    assert report["plan"]["auto"] == "tracepoint"
    assert report["plan"]["runs"] is True  # doctor really started the plan (compile, load, attach)
    assert report["plan"]["start_s"] > 0
    assert report["plan"]["stages"]["send"][:3] == ["tcp_ip", "qdisc", "device"]
    assert "sock_queue" in report["plan"]["stages"]["recv"]


def test_headers_kind_matches_the_headers_own_version(report: dict[str, Any]) -> None:
    version = build_release()
    assert report["headers"]["version"] == version
    assert report["headers"]["kind"] == ("exact" if version == RELEASE else "nearest")
    if report["headers"]["kind"] == "nearest":
        assert report["headers"]["message"].endswith("struct offsets come from BTF")


def test_struct_offsets_compare_btf_with_the_headers(report: dict[str, Any]) -> None:
    btf, headers = report["offsets"]["btf"], report["offsets"]["headers"]
    assert btf and headers and set(btf) == set(headers)
    assert report["offsets"]["mismatched"] == [f for f in btf if btf[f] != headers[f]]
    if report["headers"]["kind"] == "exact":
        assert report["offsets"]["mismatched"] == []  # the kernel's own headers must agree with its BTF
    if RELEASE.startswith("6.18.") and report["headers"]["version"].startswith("6.1."):
        # The development machine: DESIGN.md's measured example of why offsets come from BTF.
        assert (btf["sock.sk_protocol"], headers["sock.sk_protocol"]) == (532, 516)


def test_human_report_is_ascii_under_no_color_and_fits_80_columns(report: dict[str, Any]) -> None:
    proc = doctor(env={"NO_COLOR": "1"})
    assert proc.returncode == 0
    rows = proc.stdout.splitlines()
    assert proc.stdout.isascii()
    assert all(len(row) <= 80 for row in rows)
    kprobes = next(row for row in rows if row.split()[1:2] == ["kprobes"])
    assert kprobes.split()[0] == ("ok" if report["features"]["kprobes"] else "no")
    assert rows[-1].startswith(f"the live dashboard can run here (probe plan: {report['plan']['auto']})")


def test_human_report_uses_check_marks_on_a_utf8_terminal() -> None:
    proc = doctor(env={"PYTHONIOENCODING": "utf-8", "NO_COLOR": ""})
    assert proc.returncode == 0
    assert "✓" in proc.stdout
    assert "\x1b[" not in proc.stdout  # not a terminal: no colour codes


def test_preflight_here_passes_and_warns_only_about_nearest_headers() -> None:
    notes = system.preflight()
    if system.headers_status().kind == "nearest":
        assert notes == [f"headers are {build_release()}, not {RELEASE}: struct offsets come from BTF"]
    else:
        assert notes == []


def test_setup_sh_second_run_changes_nothing() -> None:
    """The venv running this suite was made by setup.sh: running it again must only check."""
    if not Path(sys.prefix, ".netlat-tui-setup").exists():
        pytest.skip(f"{sys.prefix} was not made by setup.sh")
    proc = subprocess.run(
        [str(REPO_DIR / "setup.sh")], env={**os.environ, "NETLAT_VENV": sys.prefix},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"setup: everything already in place \(\d+\.\d s\)\n", proc.stdout), proc.stdout
