"""Shared test policy and fixtures.

Real-kernel tests (marker ``kernel``; everything under tests/kernel gets it automatically) run only
where the machine allows BPF: root, an importable bcc, a mounted tracefs. Locally they skip with the
reason. With CI=true nothing that needs the real machine may skip: a skip of a ``kernel``, ``tmux`` or
``vm`` test, or of a whole module under tests/kernel or tests/vm, becomes a failure, and a full run
in which no kernel test ran fails as well.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tui.errors import UserError

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
#: markers whose tests need the real machine and so must never skip in CI
STRICT_MARKERS = ("kernel", "tmux", "vm")
#: test directories whose modules must never be skipped whole in CI, and the marker they imply
STRICT_DIRS = {"kernel": "kernel", "vm": "vm"}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


# ---------------------------------------------------------------------------------------------------
# markers and the CI no-skip rule


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.path)).resolve().relative_to(REPO_DIR).parts
        if len(parts) > 2 and parts[0] == "tests" and parts[1] in STRICT_DIRS:
            item.add_marker(STRICT_DIRS[parts[1]])


def _strict(item: pytest.Item) -> str | None:
    return next((m for m in STRICT_MARKERS if item.get_closest_marker(m) is not None), None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Every kernel test gets the machine check, whether or not it asks for the fixture.
    if item.get_closest_marker("kernel") is not None:
        _kernel_or_skip()
    if item.get_closest_marker("tmux") is not None and shutil.which("tmux") is None:
        _skip_or_fail("tmux is not installed (run ./setup.sh)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: pytest.TestReport = yield
    marker = _strict(item)
    if marker is not None:
        if report.when == "call" and report.outcome in ("passed", "failed"):
            item.config.stash.setdefault(_RAN_MARKERS, set()).add(marker)
        if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
            report.outcome = "failed"
            report.longrepr = f"CI=true: a {marker!r} test must not skip ({_skip_reason(report)})"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    report: pytest.CollectReport = yield
    if in_ci() and report.skipped and _in_strict_dir(collector):
        report.outcome = "failed"
        report.longrepr = f"CI=true: a module of real-machine tests must not skip ({_skip_reason(report)})"
    return report


def _in_strict_dir(collector: pytest.Collector) -> bool:
    path = getattr(collector, "path", None)
    if path is None:
        return False
    try:
        parts = Path(str(path)).resolve().relative_to(REPO_DIR).parts
    except ValueError:
        return False
    return len(parts) > 2 and parts[0] == "tests" and parts[1] in STRICT_DIRS


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


#: which strict markers had at least one test really run (passed or failed in its call phase)
_RAN_MARKERS = pytest.StashKey[set]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not in_ci():
        return
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        _say(session, "CI=true: no tests were collected")
        return
    ran = session.config.stash.get(_RAN_MARKERS, set())
    if _whole_suite(session) and "kernel" not in ran:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        _say(session, "CI=true: the whole suite ran but not one kernel test did")


def _whole_suite(session: pytest.Session) -> bool:
    """True when the run covers the whole tests/ tree (-k/-m cannot deselect the kernel tests in CI)."""
    config = session.config
    targets = {Path(a.split("::")[0]).resolve() for a in config.args} or {Path.cwd()}
    return all(t in (TESTS_DIR, REPO_DIR) for t in targets)


def _say(session: pytest.Session, message: str) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(message, red=True, bold=True)
    else:  # pragma: no cover - reporter disabled
        print(message, file=sys.stderr)


# ---------------------------------------------------------------------------------------------------
# real-machine prerequisites


def _skip_or_fail(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


_kernel_state: dict[str, object] = {}


def _kernel_or_skip() -> ModuleType:
    """bcc once root, tracefs and bcc are all there; else skip (locally) or fail (CI), with the reason."""
    if "bcc" not in _kernel_state and "error" not in _kernel_state:
        from tui import system

        try:
            system.require_root()
            system.ensure_tracefs()
            _kernel_state["bcc"] = system.import_bcc()
        except UserError as exc:
            _kernel_state["error"] = str(exc)
    if "error" in _kernel_state:
        _skip_or_fail(f"needs the real kernel: {_kernel_state['error']}")
    return _kernel_state["bcc"]  # type: ignore[return-value]


@pytest.fixture
def require_kernel() -> ModuleType:
    """The bcc module, on a machine that can load probes (root, bcc, tracefs). Skips or fails otherwise."""
    return _kernel_or_skip()


@pytest.fixture
def require_tmux() -> str:
    """Path of the tmux binary. Skips locally, fails in CI, when tmux is missing."""
    path = shutil.which("tmux")
    if path is None:
        _skip_or_fail("tmux is not installed (run ./setup.sh)")
    return str(path)


# ---------------------------------------------------------------------------------------------------
# running the command line for real


RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_cli() -> RunCli:
    """Run ``python -m tui ARGS`` in a subprocess (no stdin, bounded time); returns the CompletedProcess."""

    def run(
        *args: str, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tui", *args],
            cwd=REPO_DIR, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    return run


# ---------------------------------------------------------------------------------------------------
# the exporter as a real process


class ExporterProcess:
    """``python -m tui exporter ARGS`` listening on a free loopback port; ``url`` once it serves."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tui", "exporter", "--listen", "127.0.0.1:0", *args],
            cwd=REPO_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        self._partial = ""  # stderr read but not yet a whole line
        self.stdout = ""
        self.url = self.wait_for_log("serving ", 30).split("serving ", 1)[1].strip()
        self.port = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])

    def wait_for_log(self, text: str, timeout: float) -> str:
        """The first stderr line containing ``text`` (fails if the process ends or time runs out).

        Reads the pipe's fd directly: a buffered readline() could pull two lines at once and leave
        the second where select() cannot see it."""
        import select
        import time

        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log:
                if text in line:
                    return line
            if time.monotonic() >= deadline:
                break
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 65536).decode(errors="replace")
                if not chunk:
                    break
                self._partial += chunk
                *lines, self._partial = self._partial.split("\n")
                self.log.extend(line + "\n" for line in lines)
        self.stop()
        raise AssertionError(f"exporter never logged {text!r}; stderr: {''.join(self.log)!r}")

    def scrape(self, accept: str = "") -> str:
        import urllib.request

        request = urllib.request.Request(self.url, headers={"Accept": accept} if accept else {})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()

    def stop(self, sig: int = 15, timeout: float = 30) -> int:
        """Send ``sig`` (SIGTERM), wait for the exit status; the rest of stderr goes to ``log``."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        self.stdout += out
        self.log.extend((self._partial + err).splitlines(keepends=True))
        self._partial = ""
        return self.proc.returncode


@pytest.fixture(scope="session")
def start_exporter() -> Callable[..., ExporterProcess]:
    """Start the exporter with extra arguments; the caller stops it (``.stop()``)."""
    return ExporterProcess
