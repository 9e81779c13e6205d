"""The installed ``netlat-tui`` in a real terminal (tmux), read back with capture-pane.

Live runs (marked ``kernel``) load the real probes with the built-in loopback workload, check that
the histogram fills and that switching path changes it, then exit by q or SIGHUP and check that
every BPF program the process held is gone. A demo run checks SIGTERM restores the terminal.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BINARY = REPO / ".venv" / "bin" / "netlat-tui"
SIZE = (120, 36)

pytestmark = pytest.mark.tmux


class Tmux:
    """One private tmux server (its own socket) running one command in a fixed-size window."""

    def __init__(self, tmux: str, socket: Path, command: str) -> None:
        self.tmux = tmux
        self.socket = str(socket)  # a socket of our own: never touches the user's tmux server
        self.run("new-session", "-d", "-s", "t", "-x", str(SIZE[0]), "-y", str(SIZE[1]), command)

    def run(self, *args: str) -> str:
        # COLUMNS/LINES inherited from pytest would pin the app to 80x24 whatever the pane size
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        out = subprocess.run([self.tmux, "-S", self.socket, *args], capture_output=True, text=True,
                             timeout=30, check=True, env=env)
        return out.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "t", *keys)

    def pane_pid(self) -> int:
        return int(self.run("display-message", "-p", "-t", "t", "#{pane_pid}").strip())

    def wait_for(self, ready: Callable[[str], bool], what: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if ready(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{text}")
            time.sleep(0.25)

    def kill(self) -> None:
        subprocess.run([self.tmux, "-S", self.socket, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def tmux_session(require_tmux: str, tmp_path: Path) -> Iterator[Callable[[str], Tmux]]:
    sessions: list[Tmux] = []

    def start(args: str) -> Tmux:
        # the shell prints the exit status and keeps the pane open so the test can read it
        socket = tmp_path / f"tmux-{len(sessions)}.sock"
        session = Tmux(require_tmux, socket, f"{BINARY} {args}; echo EXIT=$?; sleep 600")
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.kill()


def netlat_pid(pane_pid: int) -> int:
    """The netlat-tui process under the pane's shell."""
    for _ in range(100):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pane_pid and b"netlat-tui" in cmdline:
                return int(entry.name)
        time.sleep(0.1)
    raise AssertionError("netlat-tui process not found")


def bpf_prog_ids(pid: int) -> set[int]:
    """Ids of the BPF programs a process holds open (from /proc/PID/fdinfo)."""
    ids = set()
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            match = re.search(r"^prog_id:\s+(\d+)", info.read_text(), re.M)
        except OSError:
            continue
        if match:
            ids.add(int(match.group(1)))
    return ids


def loaded(prog_ids: set[int]) -> set[int]:
    """Which of these program ids the kernel still has."""
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    lib.bpf_prog_get_fd_by_id.argtypes = [ctypes.c_uint32]
    left = set()
    for prog_id in prog_ids:
        fd = lib.bpf_prog_get_fd_by_id(prog_id)
        if fd >= 0:
            os.close(fd)
            left.add(prog_id)
        else:
            assert ctypes.get_errno() == errno.ENOENT
    return left


def wait_gone(pid: int, timeout: float = 60) -> None:
    """Wait for a process to end (bounded; its shutdown detaches the probes)."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        status = Path(f"/proc/{pid}/status").read_text() if Path(f"/proc/{pid}").exists() else ""
        if "State:\tZ" in status:
            return  # exited, not yet reaped by its parent
        if time.monotonic() > deadline:
            raise AssertionError(f"netlat-tui (pid {pid}) still running {timeout:.0f}s after told to exit")
        time.sleep(0.2)


def caption(screen: str, path: str) -> re.Match[str] | None:
    """The histogram caption, e.g. ``send · send total  n=6.0k`` and below it ``p50 3.46us ...``
    (other panels may share those screen lines)."""
    return re.search(rf"{path} · ([^\n]*?)\s+n=([\d.]+k?M?)[^\n]*\n\s*p50\s+([\d.]+[nmu]?s)", screen)


def running_for(screen: str) -> float:
    """Seconds the header says the figures cover (``last 10s (2.5s so far)``, ``last 10s`` once
    full, ``since start 2.5s``), 0 before the first."""
    for pattern in (r"\((\d+(?:\.\d)?)s so far\)", r"since start (\d+(?:\.\d)?)s", r"last (\d+)s(?! \()"):
        match = re.search(pattern, screen)
        if match:
            return float(match.group(1))
    return 0.0


def filled(screen: str, path: str) -> bool:
    match = caption(screen, path)
    return match is not None and match.group(2) not in ("0",)


@pytest.mark.kernel
@pytest.mark.parametrize("exit_by", ["q", "SIGHUP", "hangup"])
def test_live_dashboard_fills_switches_path_and_leaves_no_probe(
    require_kernel, tmux_session, exit_by: str
) -> None:
    session = tmux_session("--workload loopback --interval 0.5")
    pid = netlat_pid(session.pane_pid())
    send = session.wait_for(lambda s: filled(s, "send"), "the send histogram to fill")
    assert "plan tracepoint" in send or "plan kprobe" in send
    assert "TCP+IP" in send or "TCP" in send  # the send path's layer bars
    held = bpf_prog_ids(pid)
    assert len(held) >= 5, f"expected the probes to be loaded, found programs {held}"

    session.keys("r")
    recv = session.wait_for(lambda s: filled(s, "recv"), "the receive histogram")
    assert " RECV " in recv and "socket queue" in recv
    assert caption(recv, "recv").group(1) != caption(send, "send").group(1)

    if exit_by == "q":
        session.keys("q")
    elif exit_by == "SIGHUP":
        os.kill(pid, 1)
    else:
        session.kill()  # the terminal vanishes, as when an ssh connection drops
        wait_gone(pid)
    if exit_by != "hangup":
        code = 0 if exit_by == "q" else 128 + 1
        session.wait_for(lambda s: f"EXIT={code}" in s, f"exit status {code}")
        assert session.run("display-message", "-p", "-t", "t", "#{alternate_on}").strip() == "0"
        wait_gone(pid)
    deadline = time.monotonic() + 10
    while (left := loaded(held)) and time.monotonic() < deadline:
        time.sleep(0.1)  # the kernel frees programs after an RCU grace period
    assert not left, f"BPF programs still loaded after exit: {sorted(left)}"


def test_sigterm_restores_the_terminal(tmux_session) -> None:
    session = tmux_session("--synthetic --interval 0.2")
    pid = netlat_pid(session.pane_pid())
    session.wait_for(lambda s: filled(s, "send"), "the demo histogram")
    assert session.run("display-message", "-p", "-t", "t", "#{alternate_on}").strip() == "1"
    os.kill(pid, 15)
    screen = session.wait_for(lambda s: "EXIT=" in s, "the exit")
    assert "EXIT=143" in screen
    assert "Traceback" not in screen
    assert session.run("display-message", "-p", "-t", "t", "#{alternate_on}").strip() == "0"


def test_demo_exits_when_its_terminal_vanishes(tmux_session) -> None:
    session = tmux_session("--synthetic --interval 0.2")
    pid = netlat_pid(session.pane_pid())
    session.wait_for(lambda s: filled(s, "send"), "the demo histogram")
    session.kill()
    wait_gone(pid)


@pytest.mark.kernel
def test_live_recording_replays_without_root(require_kernel, tmux_session, tmp_path: Path) -> None:
    from tui.sources.replay import load_recording

    recording = tmp_path / "live.jsonl"
    session = tmux_session(f"--workload loopback --interval 0.5 --record {recording}")
    session.wait_for(lambda s: filled(s, "send"), "the send histogram to fill")
    session.keys("r")
    session.wait_for(lambda s: filled(s, "recv"), "data on the receive path")
    session.wait_for(lambda s: running_for(s) >= 2.0, "a few snapshots")
    session.keys("q")
    session.wait_for(lambda s: "EXIT=0" in s, "a clean exit")
    interval, snapshots = load_recording(recording)  # strict validation of real engine output
    assert interval == 0.5 and len(snapshots) >= 2
    last = snapshots[-1]
    assert last.meta.source == "live" and last.plan.name in ("tracepoint", "kprobe")
    for path in ("send", "recv"):
        totals = [s.paths[path].totals[0].hist.total for s in snapshots]
        assert totals == sorted(totals) and totals[-1] > 0  # cumulative and growing
    # the replay needs no root: an unprivileged user reads a copy outside root's private tmp dir
    shared = Path(tempfile.mkdtemp(prefix="netlat-replay-"))
    try:
        shared.chmod(0o755)
        copy = shared / "live.jsonl"
        shutil.copyfile(recording, copy)
        copy.chmod(0o644)
        count = replayed_count_as_nobody(copy)
    finally:
        shutil.rmtree(shared)
    assert count == len(snapshots)


def replayed_count_as_nobody(recording: Path) -> int:
    replay = subprocess.run(
        [sys.executable, "-c", (
            "import sys; from tui.sources.replay import ReplaySource; "
            f"s = ReplaySource.open({str(recording)!r}); s.start(); n = 0\n"
            "while s.poll() is not None: n += 1\n"
            "print(n)"
        )],
        capture_output=True, text=True, timeout=60, check=True, user=65534, group=65534,
        extra_groups=[],
    )
    return int(replay.stdout)
