"""Shared plumbing for the benchmark scripts: pinned loads, tracer processes, namespaces, statistics.

Every script measures ratios side by side in one run (A B A B ...) and reports medians, because
this 2-CPU machine's absolute throughput wanders between runs. The load is pinned to one CPU and
the tracer's user space to the other, so BPF cost shows up in the load's throughput and the
tracer's own polling does not.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python")
NETLAT = str(REPO / ".venv" / "bin" / "netlat-tui")
SEED_SEND = str(REPO / "bench" / "seed" / "lat-send-tp.bt")
SEED_RECV = str(REPO / "bench" / "seed" / "lat-rcv-tp.bt")

#: fds that mean "a program is attached" (perf_event: ordinary tracepoints; bpf_link: raw tp/links)
ATTACH_FDS = ("anon_inode:[perf_event]", "anon_inode:bpf_link", "anon_inode:bpf-link",
              "anon_inode:bpf-raw-tracepoint")
PROG_FD = "anon_inode:bpf-prog"
#: SCHED_FIFO priority of the load (root only); 0 leaves it an ordinary task
LOAD_RT_PRIO = int(os.environ.get("BENCH_LOAD_RT_PRIO", "10"))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- machine ----------------------------------------------------------------------------------------


def machine_info() -> dict[str, object]:
    """What the results were measured on (goes at the top of every result file)."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    mem_kb = 0
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "kernel": platform.release(),
        "cpu": model,
        "cpus": os.cpu_count(),
        "mem_gb": round(mem_kb / 1e6, 1),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        # the engine may be measured with uncommitted edits in the shared tree: say which
        "engine_dirty": _git("status", "--short", "--", *ENGINE_PATHS).splitlines(),
    }


ENGINE_PATHS = ("tui/bpf", "tui/sources/live.py", "tui/headless.py")


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO)
    return out.stdout.strip()


def other_bpf_holders() -> list[str]:
    """'comm(pid)' of every process holding BPF programs (another tracer taxes every run alike)."""
    holders = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) != os.getpid() and PROG_FD in _fd_links(int(pid)):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as f:
                holders.append(f"{f.read().strip()}({pid})")
    return holders


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + vals[4]  # idle + iowait
    return sum(vals) - idle, sum(vals)


def busy_fraction(window_s: float = 1.0) -> float:
    """Share of all CPUs busy over the window (instant, unlike the load average)."""
    b0, t0 = _cpu_times()
    time.sleep(window_s)
    b1, t1 = _cpu_times()
    return (b1 - b0) / max(1, t1 - t0)


#: how long to wait for an idle machine before measuring anyway (the result file records how busy)
PATIENCE_S = float(os.environ.get("BENCH_PATIENCE_S", "60"))


def wait_quiet(limit: float = 0.12, patience_s: float = PATIENCE_S) -> float:
    """Between measurements: wait (up to patience_s) until the machine is idle; returns the busy share."""
    deadline = time.monotonic() + patience_s
    busy = busy_fraction()
    while busy > limit and time.monotonic() < deadline:
        log(f"machine busy ({busy:.0%} of all CPUs); waiting")
        busy = busy_fraction(3.0)
    return round(busy, 3)


def check_quiet(limit: float = 0.6) -> bool:
    """Warn when something else is using the machine (other runs make ratios noisy)."""
    quiet = True
    load1 = os.getloadavg()[0]
    if load1 > limit:
        top = subprocess.run(["top", "-bn1"], capture_output=True, text=True).stdout.splitlines()[6:12]
        log(f"warning: load average {load1:.2f} > {limit}: results may be disturbed\n" + "\n".join(top))
        quiet = False
    holders = other_bpf_holders()
    if holders:
        log(f"warning: other processes hold BPF programs: {', '.join(holders)}")
        quiet = False
    return quiet


def pin_to(cpu: int | None):
    """preexec_fn pinning a child to one CPU."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


# -- network namespaces -----------------------------------------------------------------------------


@dataclass
class VethPair:
    """Two namespaces joined by a veth pair; created on enter, deleted on exit (also after errors)."""

    tag: str = field(default_factory=lambda: f"nlb{os.getpid() % 100000}")
    server_ip: str = "10.213.0.1"
    client_ip: str = "10.213.0.2"

    @property
    def ns_server(self) -> str:
        return f"{self.tag}s"

    @property
    def ns_client(self) -> str:
        return f"{self.tag}c"

    def __enter__(self) -> VethPair:
        try:
            for cmd in (
                ["ip", "netns", "add", self.ns_server],
                ["ip", "netns", "add", self.ns_client],
                ["ip", "link", "add", f"{self.tag}a", "netns", self.ns_server, "type", "veth",
                 "peer", "name", f"{self.tag}b", "netns", self.ns_client],
                ["ip", "-n", self.ns_server, "addr", "add", f"{self.server_ip}/24", "dev", f"{self.tag}a"],
                ["ip", "-n", self.ns_client, "addr", "add", f"{self.client_ip}/24", "dev", f"{self.tag}b"],
                ["ip", "-n", self.ns_server, "link", "set", f"{self.tag}a", "up"],
                ["ip", "-n", self.ns_client, "link", "set", f"{self.tag}b", "up"],
                ["ip", "-n", self.ns_server, "link", "set", "lo", "up"],
                ["ip", "-n", self.ns_client, "link", "set", "lo", "up"],
            ):
                subprocess.run(cmd, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            self.__exit__(None, None, None)
            raise SystemExit(f"bench: cannot create namespaces: {' '.join(exc.cmd)}: {exc.stderr.strip()}") \
                from None
        return self

    def __exit__(self, *exc: object) -> None:
        for ns in (self.ns_server, self.ns_client):  # deleting a namespace deletes its veth end
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# -- the load ---------------------------------------------------------------------------------------

_port_seq = iter(range(25201, 26000))


def rr(duration: float, cpu: int, size: int = 1, rate: float | None = None,
       veth: VethPair | None = None, port: int = 0) -> dict:
    """One pinned 1-byte TCP request/response run (tui.workload); returns its JSON result."""
    extra = ["--rate", str(rate)] if rate else []
    # real-time (SCHED_FIFO): a request/response load is bound by wake-up latency, and on a shared
    # machine a woken ordinary task waits for whatever runs on its CPU (niceness does not help)
    nice = ["chrt", "-f", str(LOAD_RT_PRIO)] if LOAD_RT_PRIO else []
    if veth is None:
        cmd = [*nice, PYTHON, "-m", "tui.workload", "rr", "--duration", str(duration), "--cpu", str(cpu),
               "--size", str(size), "--port", str(port), "--json", *extra]
        return json.loads(_run(cmd))
    port = next(_port_seq)
    server = subprocess.Popen(
        [*nice, "ip", "netns", "exec", veth.ns_server, PYTHON, "-m", "tui.workload", "serve", "--bind",
         veth.server_ip, "--port", str(port), "--cpu", str(cpu), "--size", str(size), "--duration", "60"],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    try:
        server.stdout.readline()  # {"listening": ...}
        cmd = [*nice, "ip", "netns", "exec", veth.ns_client, PYTHON, "-m", "tui.workload", "rr", "--connect",
               f"{veth.server_ip}:{port}", "--duration", str(duration), "--cpu", str(cpu),
               "--size", str(size), "--json", *extra]
        result = json.loads(_run(cmd))
        result["served"] = json.loads(server.stdout.readline())["served"]
        return result
    finally:
        server.wait(timeout=30)


# -- tracer processes -------------------------------------------------------------------------------


def _run(cmd: list[str]) -> str:
    """Run a helper; on failure exit with its stderr rather than a bare CalledProcessError."""
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    return out.stdout


def _fd_links(pid: int) -> list[str]:
    links = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return links


def attach_count(pid: int) -> int:
    return sum(1 for link in _fd_links(pid) if link in ATTACH_FDS)


class Tracer:
    """A tracer process (netlat-tui headless, bpftrace ...) pinned to a CPU, started and stopped cleanly.

    ``start()`` returns once its probes are attached: attach fds have appeared and stopped changing.
    """

    def __init__(self, name: str, cmds: list[list[str]], cpu: int | None, settle_s: float = 0.5,
                 timeout_s: float = 60.0) -> None:
        self.name = name
        self.cmds = cmds
        self.cpu = cpu
        self.settle_s = settle_s
        self.timeout_s = timeout_s
        self.procs: list[subprocess.Popen] = []
        self.outputs: list[Path] = []
        self.started_at = 0.0
        self.attached_at = 0.0

    def start(self) -> Tracer:
        self.started_at = time.monotonic()
        for i, cmd in enumerate(self.cmds):
            out = Path(tempfile.mkstemp(prefix=f"bench-{self.name}-{i}-", suffix=".out")[1])
            self.outputs.append(out)
            with open(out, "w") as f:
                self.procs.append(subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO,
                                                   preexec_fn=pin_to(self.cpu)))
        for proc in self.procs:
            self._wait_attached(proc)
        self.attached_at = time.monotonic()
        return self

    def _wait_attached(self, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + self.timeout_s
        last, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"bench: {self.name} exited early ({proc.returncode}):\n"
                                 + self.output_text()[-2000:])
            n = attach_count(proc.pid)
            now = time.monotonic()
            if n != last:
                last, stable_since = n, now
            elif n > 0 and now - stable_since >= self.settle_s:
                return
            time.sleep(0.05)
        raise SystemExit(f"bench: {self.name} did not attach within {self.timeout_s:.0f}s")

    def stop(self) -> list[int]:
        codes = []
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=20))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes

    def output_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.outputs if p.exists())

    def cleanup(self) -> None:
        for p in self.outputs:
            p.unlink(missing_ok=True)

    def __enter__(self) -> Tracer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            self.cleanup()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()


def netlat_cmd(*extra: str, duration: float = 3600) -> list[str]:
    return [NETLAT, "--headless", "--duration", str(duration), *extra]


def seed_cmds() -> list[list[str]]:
    """The seed's two scripts (ported to tracepoints), both running, as a user of the seed would."""
    bpftrace = shutil.which("bpftrace")
    if not bpftrace:
        raise SystemExit("bench: bpftrace is not installed (apt-get install bpftrace)")
    return [[bpftrace, SEED_SEND], [bpftrace, SEED_RECV]]


def tracers(cpu: int, sample: int) -> dict[str, Tracer]:
    """The conditions every overhead run compares with 'nothing attached'."""
    return {
        "netlat": Tracer("netlat", [netlat_cmd()], cpu),
        # the default measures its own cost (BPF_ENABLE_STATS on while it runs); this one does not
        "netlat_nocost": Tracer("netlat_nocost", [netlat_cmd("--no-cost")], cpu),
        f"netlat_sample{sample}": Tracer(
            f"netlat_sample{sample}", [netlat_cmd("--sample", str(sample))], cpu
        ),
        "empty_hooks": Tracer("empty_hooks", [[PYTHON, str(REPO / "bench" / "empty_hooks.py")]], cpu),
        "counters_floor": Tracer(
            "counters_floor", [[PYTHON, str(REPO / "bench" / "counters_floor.py")]], cpu
        ),
    } | ({"seed_bpftrace": Tracer("seed_bpftrace", seed_cmds(), cpu)} if shutil.which("bpftrace") else {})


def pick_conditions(only: str | None, cpu: int, sample: int) -> list[str]:
    """The conditions a run measures: --only's (checked), else every one this machine has, both
    floors (empty_hooks, counters_floor) included, so each report carries its own floors."""
    known = list(tracers(cpu, sample))
    if not only:
        return [name for name in known if name != "netlat_nocost"]
    names = only.split(",")
    for name in names:
        if name not in known:
            raise SystemExit(f"bench: unknown condition {name!r} (known here: {', '.join(known)})")
    return names


# -- BPF program statistics (BPF_ENABLE_STATS) --------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_PIDFD_OPEN, _SYS_PIDFD_GETFD, _SYS_BPF = 434, 438, 321  # x86_64
_BPF_OBJ_GET_INFO_BY_FD = 15


class _ProgInfo(ctypes.Structure):
    """The head of struct bpf_prog_info (include/uapi/linux/bpf.h), up to the name."""

    _fields_ = [
        ("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32), ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64), ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64), ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32), ("map_ids", ctypes.c_uint64), ("name", ctypes.c_char * 16),
    ]


class _InfoAttr(ctypes.Structure):
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32), ("info", ctypes.c_uint64)]


def _prog_name(pid: int, fd: int) -> str:
    """Program name through a duplicate of the tracer's fd (pidfd_getfd); '' if not allowed."""
    pidfd = _libc.syscall(_SYS_PIDFD_OPEN, pid, 0)
    if pidfd < 0:
        return ""
    try:
        local = _libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
        if local < 0:
            return ""
        try:
            info = _ProgInfo()
            attr = _InfoAttr(local, ctypes.sizeof(info), ctypes.addressof(info))
            if _libc.syscall(_SYS_BPF, _BPF_OBJ_GET_INFO_BY_FD, ctypes.byref(attr), ctypes.sizeof(attr)) < 0:
                return ""
            return info.name.decode(errors="replace")
        finally:
            os.close(local)
    finally:
        os.close(pidfd)


def prog_stats(pid: int) -> dict[int, dict]:
    """prog id -> {name, run_time_ns, run_cnt} for every BPF program the process holds."""
    stats: dict[int, dict] = {}
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            if os.readlink(f"{fd_dir}/{fd}") != PROG_FD:
                continue
            fields = {}
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    fields[key.strip()] = value.strip()
            pid_ = int(fields["prog_id"])
            stats[pid_] = {
                "name": _prog_name(pid, int(fd)),
                "run_time_ns": int(fields.get("run_time_ns", 0)),
                "run_cnt": int(fields.get("run_cnt", 0)),
            }
    return stats


@contextlib.contextmanager
def bpf_stats_enabled() -> Iterator[None]:
    """kernel.bpf_stats_enabled=1 for the block, then the previous value back."""
    path = Path("/proc/sys/kernel/bpf_stats_enabled")
    old = path.read_text().strip()
    path.write_text("1")
    try:
        yield
    finally:
        path.write_text(old)


# -- process accounting -----------------------------------------------------------------------------


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB."""
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                vals[line.split(":")[0]] = int(line.split()[1])
    return vals.get("VmRSS", 0), vals.get("VmHWM", 0)


def write_result(name: str, doc: dict) -> Path:
    """bench/results/<name>.json (the raw figures RESULTS.md quotes)."""
    out = REPO / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    log(f"wrote {out.relative_to(REPO)}")
    return out
