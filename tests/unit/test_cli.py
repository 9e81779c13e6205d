"""The real command line in a subprocess: bad input gets one line on stderr and a non-zero exit.

Nothing here needs root. The "no privileges" cases drop to user nobody when the suite runs as root,
so they check what an ordinary user sees.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_DIR = Path(__file__).resolve().parents[2]
RunCli = Callable[..., subprocess.CompletedProcess[str]]  # the run_cli fixture (tests/conftest.py)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """stderr's only line, after checking there is no traceback in either stream."""
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {proc.stderr!r}"
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--port", "70000"], "netlat-tui: bad port 70000: must be 1-65535"),
        (["--port", "http"], "netlat-tui: bad port 'http': expected a whole number 1-65535"),
        (["--lport", "0"], "netlat-tui: bad lport 0: must be 1-65535"),
        (["--pid", "-1"], "netlat-tui: bad pid '-1': expected a whole number 1-4194304"),
        (["--comm", "a-very-long-process-name"], "netlat-tui: bad comm 'a-very-long-process-name'"),
        (["--comm", 'x");bpf_trace_printk("'], "netlat-tui: bad comm"),
        (["--iface", "eth0;reboot"], "netlat-tui: bad interface 'eth0;reboot'"),
        (["--addr", "10.0.0.256"], "netlat-tui: bad address '10.0.0.256': expected an IPv4 or IPv6 address"),
        (["--family", "5"], "netlat-tui: bad family '5': expected 4 or 6"),
        (["--protocol", "icmp"], "netlat-tui: bad protocol 'icmp': expected tcp or udp"),
        (["--addr", "::1", "--family", "4"], "netlat-tui: address ::1 is not IPv4"),
        # validated before any source is chosen, so even demo mode refuses it
        (["--synthetic", "--port", "0"], "netlat-tui: bad port 0: must be 1-65535"),
        (["--headless", "--json", "--rport", "99999"], "netlat-tui: bad rport 99999: must be 1-65535"),
    ],
)
def test_bad_filter_is_one_line_and_exit_2(run_cli: RunCli, args: list[str], expected: str) -> None:
    proc = run_cli(*args, timeout=60)
    assert proc.returncode == 2
    assert one_error_line(proc).startswith(expected)
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--sample", "0"], "--sample"),
        (["--max-sockets", "8"], "--max-sockets must be 16..1048576, got 8"),
        (["--top", "0"], "--top"),
        (["--interval", "fast"], "--interval"),
        (["--probes", "uprobe"], "--probes"),
        (["--workload", "internet"], "--workload"),
        (["--no-such-option"], "--no-such-option"),
        (["doctor", "--verbose"], "--verbose"),
    ],
)
def test_bad_option_exits_2_with_argparse_error_naming_it(
    run_cli: RunCli, args: list[str], names: str
) -> None:
    proc = run_cli(*args, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(("netlat-tui: error:", "netlat-tui doctor: error:"))
    assert names in last


def test_help_shows_the_examples_and_doctor(run_cli: RunCli) -> None:
    proc = run_cli("--help", timeout=60)
    assert proc.returncode == 0
    assert "examples:" in proc.stdout
    assert "netlat-tui doctor" in proc.stdout


# ---------------------------------------------------------------------------------------------------
# without privileges


def as_nobody(cmd: list[str]) -> list[str]:
    """Run ``cmd`` as an ordinary user: drop to nobody when we are root, else as we are.

    nobody keeps one capability, CAP_DAC_READ_SEARCH, so that it can read a checkout under a private
    directory such as /root; it grants no BPF or tracing rights (checked by has_bpf_privileges).
    """
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop root for this test"
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
            "--inh-caps=-all,+dac_read_search", "--ambient-caps=+dac_read_search", *cmd]


def run_unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp", "NO_COLOR": "1"}
    return subprocess.run(
        as_nobody([sys.executable, "-m", "tui", *args]), cwd=REPO_DIR, env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("--workload", "loopback"),  # the README's dashboard command, minus sudo
        ("--headless", "--duration", "1", "--json"),
    ],
    ids=["dashboard", "headless"],
)
def test_live_run_without_root_is_one_line_with_the_fix(args: tuple[str, ...]) -> None:
    proc = run_unprivileged(*args)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert line.startswith("netlat-tui: ")
    assert "root" in line and "sudo" in line


def test_doctor_without_root_fails_and_says_why() -> None:
    proc = run_unprivileged("doctor")
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert line.startswith("netlat-tui: doctor: live probes cannot run: privileges:")
    assert "sudo" in line
    assert "privileges" in proc.stdout and "cannot run here" in proc.stdout
    assert all(len(row) <= 80 for row in proc.stdout.splitlines())
    assert proc.stdout.isascii()  # NO_COLOR: plain ASCII marks


def test_doctor_json_without_root_says_unknown_rather_than_no() -> None:
    proc = run_unprivileged("doctor", "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False
    assert doc["reason"].startswith("privileges:")
    assert doc["features"]["privileges"] is False
    # what cannot be known without root is null, not a guess
    assert doc["features"]["fentry"] is None
    assert doc["features"]["raw_tracepoints"] is None
    assert doc["plan"]["auto"] is None


# ---------------------------------------------------------------------------------------------------
# doctor's verdict and layout (in process, on made-up findings)


def made_up_report(*checks: Any) -> Any:
    from tui.doctor import Report

    report = Report(kernel="6.18.44-test", machine="x86_64")
    report.checks.extend(checks)
    report.plan = {"auto": "tracepoint"}
    return report


def test_doctor_absent_optional_features_do_not_block(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tui import doctor

    report = made_up_report(
        doctor.Check("privileges", doctor.OK, "root"),
        doctor.Check("kprobes", doctor.NO, "not in this kernel"),
        doctor.Check("fentry", doctor.NO, "attach refused"),
        doctor.Check("kernel headers", doctor.WARN, "nearest: headers are 6.1", required=True),
        doctor.Check("probe plan", doctor.OK, "auto picks 'tracepoint'", required=True),
    )
    monkeypatch.setattr(doctor, "collect", lambda: report)
    assert doctor.run_doctor(argparse.Namespace(json=False)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[-1] == "the live dashboard can run here (probe plan: tracepoint)"


def test_doctor_blocked_exits_1_with_the_first_blocker_and_its_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tui import doctor

    report = made_up_report(
        doctor.Check("privileges", doctor.OK, "root"),
        doctor.Check("kernel headers", doctor.FAIL, "no kernel headers for 6.18.44-test", "run ./setup.sh",
                     required=True),
        doctor.Check("bcc", doctor.FAIL, "test compile failed", "install headers", required=True),
        doctor.Check("kprobes", doctor.NO, "not in this kernel"),
    )
    monkeypatch.setattr(doctor, "collect", lambda: report)
    assert doctor.run_doctor(argparse.Namespace(json=True)) == 1
    out, err = capsys.readouterr()
    assert err == ("netlat-tui: doctor: live probes cannot run: kernel headers: no kernel headers for "
                   "6.18.44-test; fix: run ./setup.sh\n")
    doc = json.loads(out)
    assert (doc["ok"], doc["reason"], doc["fix"]) == (
        False, "kernel headers: no kernel headers for 6.18.44-test", "run ./setup.sh"
    )
    assert [c["status"] for c in doc["checks"]] == ["ok", "fail", "fail", "no"]


def test_doctor_report_wraps_long_lines_at_80_columns() -> None:
    from tui import doctor

    long = "a reason with many words " * 12
    report = made_up_report(
        doctor.Check("tracepoints", doctor.FAIL, long, "a fix that is also rather long " * 3, required=True),
        doctor.Check("tcp:tcp_probe", doctor.OK, "(tracepoint, kprobe)", sub=True),
    )
    for unicode in (True, False):
        text = doctor.render(report, unicode=unicode, colour=False)
        rows = text.splitlines()
        assert all(len(row) <= 80 for row in rows), text
        assert rows[2].startswith(" " * (doctor.NAME_WIDTH + 5))  # continuation lines line up
        assert "(fix: a fix that is also rather long" in " ".join(rows)
        assert text.isascii() is (not unicode)
    assert doctor.render(report, unicode=False).splitlines()[1].startswith(" XX tracepoints")


# ---------------------------------------------------------------------------------------------------
# the CI rules of tests/conftest.py (what .ci/run relies on), on a throwaway tests/ tree


def ci_pytest(
    tmp_path: Path, files: dict[str, str], *args: str, ci: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run pytest over a tree holding the real tests/conftest.py plus ``files``."""
    (tmp_path / "tests").mkdir()
    shutil.copy(REPO_DIR / "tests" / "conftest.py", tmp_path / "tests" / "conftest.py")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\nmarkers = ["kernel: k", "tmux: t", "vm: v"]\n'
    )
    for name, text in files.items():
        path = tmp_path / "tests" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": "true"} if ci else {})
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        check=False,
    )


KERNEL_SKIPS = {
    "kernel/test_k.py": "import pytest\n\ndef test_skips():\n    pytest.skip('no veth here')\n",
    "unit/test_u.py": "def test_fine():\n    assert True\n",
}


def test_ci_turns_a_kernel_test_skip_into_a_failure(tmp_path: Path) -> None:
    proc = ci_pytest(tmp_path, KERNEL_SKIPS)
    assert proc.returncode == 1
    if os.geteuid() == 0:
        assert "CI=true: a 'kernel' test must not skip (Skipped: no veth here)" in proc.stdout
        assert "1 failed, 1 passed" in proc.stdout
    else:  # the machine check comes first and fails (an error in setup rather than a skip) in CI
        assert "CI=true: needs the real kernel: live probes need root" in proc.stdout
        assert "1 passed, 1 error" in proc.stdout


def test_without_ci_the_same_skip_is_only_a_skip(tmp_path: Path) -> None:
    proc = ci_pytest(tmp_path, KERNEL_SKIPS, ci=False)
    assert proc.returncode == 0
    assert "1 passed, 1 skipped" in proc.stdout


def test_ci_turns_a_tmux_marked_skip_anywhere_into_a_failure(tmp_path: Path) -> None:
    files = {"ui/test_t.py": "import pytest\n\n@pytest.mark.tmux\ndef test_t():\n    pytest.skip('gone')\n"}
    proc = ci_pytest(tmp_path, files, "tests/ui")
    assert proc.returncode == 1
    assert "a 'tmux' test must not skip" in proc.stdout


def test_ci_fails_a_skipped_kernel_module(tmp_path: Path) -> None:
    files = {"kernel/test_m.py": "import pytest\npytest.skip('no bcc', allow_module_level=True)\n"}
    proc = ci_pytest(tmp_path, files, "tests/kernel")
    assert proc.returncode != 0
    assert "a module of real-machine tests must not skip" in proc.stdout


def test_ci_fails_a_whole_run_without_one_kernel_test(tmp_path: Path) -> None:
    proc = ci_pytest(tmp_path, {"unit/test_u.py": KERNEL_SKIPS["unit/test_u.py"]})
    assert proc.returncode == 1
    assert "CI=true: the whole suite ran but not one kernel test did" in proc.stdout


def test_ci_fails_a_run_that_collects_nothing(tmp_path: Path) -> None:
    proc = ci_pytest(tmp_path, {"unit/test_u.py": KERNEL_SKIPS["unit/test_u.py"]}, "-k", "nothing_matches")
    assert proc.returncode == 1
    assert "CI=true: no tests were collected" in proc.stdout


def test_ci_accepts_an_expected_failure_in_a_strict_test(tmp_path: Path) -> None:
    files = {"vm/test_x.py": "import pytest\n\n@pytest.mark.xfail(strict=True)\ndef test_x():\n"
                             "    assert False\n\ndef test_k():\n    assert True\n"}
    proc = ci_pytest(tmp_path, files, "tests/vm")
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 1 xfailed" in proc.stdout
