"""Run a command as root inside a Debian guest (stock cloud kernel: kprobes, fentry, exact headers).

The guest image is built on first use by ``image/build.sh`` and cached under
``tests/vm/cache/<suite>-<key>``, where the key hashes the ``image/`` directory, so a change to the
build rebuilds it. Two Debian suites: ``bookworm`` (kernel 6.1, what most users run) and ``trixie``
(kernel 6.12, which also has every tracepoint the tracepoint plan needs). qemu boots it
with TCG software emulation (this host's KVM cannot boot a stock kernel) under ``nice``:

    NVMe namespace 1  the cached root disk (MBR, root=PARTUUID=), snapshot mode (writes are dropped)
    NVMe namespace 2  a fresh ext4 image with the project's tree, the job script and an empty out/
                      (the guest's init finds it by its job.sh: NVMe names are not stable on 7.x)
    ttyS0             kernel console -> console.log
    ttyS1             the job's stdout and stderr -> streamed, and kept in the result
    ttyS2             "NETLAT_VM_EXIT=<status>" written by the guest's init after the job

After the guest powers off, ``out/`` is copied back from namespace 2 with debugfs (no mount needed).

Command line (for people; the tests call :func:`run_in_guest`):

    python3 tests/vm/vm_harness.py [--suite trixie] --build-only
    python3 tests/vm/vm_harness.py [--suite S] [--timeout S] [--out DIR] -- 'uname -r; python3 -m tui doctor'
    python3 tests/vm/vm_harness.py --nics -- 'sh tests/vm/guest/plans_job.sh plan-kprobe'
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
IMAGE_SOURCES = HERE / "image"
CACHE_DIR = HERE / "cache"

# Host commands the harness runs, and the Debian package of each (for the apt-get line).
HOST_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "mmdebstrap": "mmdebstrap",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "nice": "coreutils",
}

# Left out of the tree copied into the guest: environments, caches, VCS data, this cache.
TREE_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", "*.egg-info",
    "build", "cache", "screenshots", "*.jsonl",
)

SUITES = ("bookworm", "trixie", "trixie-backports")
DEFAULT_SUITE = "bookworm"
#: virtual CPUs per suite. The 7.x backports kernel hits an int3 Oops in early boot (live code
#: patching racing across vCPUs under multi-threaded TCG), so it boots with one.
SUITE_CPUS = {"bookworm": 2, "trixie": 2, "trixie-backports": 1}

#: the guest's own network (``nics=True``): two virtio-net NICs on one qemu hub, nothing else on
#: the hub (no host network). The guest finds each by its MAC (tests/vm/guest/nics.py).
NIC_MACS = ("52:54:00:00:00:01", "52:54:00:00:00:02")

#: the root partition's id: MBR disk signature set by image/build.sh, partition 1
ROOT_PARTUUID = "6e6c6174-01"

EXIT_RE = re.compile(r"NETLAT_VM_EXIT=(\d+)")
BOOT_S = 120.0  # from qemu's start until the kernel runs our init
INIT_MARK = b"Run /sbin/netlat-vm-init"  # the kernel's console line as it starts init
MONITOR = "monitor.sock"  # qemu's monitor, a unix socket in the run's work directory


class VmError(RuntimeError):
    """The guest could not be built, booted or did not report an exit status."""


class VmTimeout(VmError):
    """The guest ran past its time limit and was killed."""


@dataclass(frozen=True)
class GuestImage:
    """A built guest: kernel to boot, root disk image, the kernel's release string."""

    kernel: Path
    rootfs: Path
    release: str


@dataclass(frozen=True)
class GuestRun:
    """What one guest run gave back."""

    exit_status: int
    output: str  # the job's stdout and stderr, as streamed
    out_dir: Path  # files the job wrote to $NETLAT_VM_OUT
    console_log: Path  # the guest kernel's console
    seconds: float  # wall time of the boot-run-poweroff cycle


def _log(stream: TextIO | None, text: str) -> None:
    if stream is not None:
        stream.write(text + "\n")
        stream.flush()


def ensure_host_tools(stream: TextIO | None = sys.stderr) -> None:
    """Install the host packages the harness needs (root, apt-get) or say which are missing."""
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise VmError(f"missing host packages; run: {' '.join(cmd)}")
    _log(stream, f"vm: installing host packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=False, env=env, stdout=subprocess.DEVNULL)
    done = subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", *cmd[1:]], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise VmError(f"apt-get could not install {' '.join(missing)}: {done.stderr.strip()[-300:]}")


def image_key(suite: str = DEFAULT_SUITE) -> str:
    """Suite plus a hash of every file under image/ (names and contents): the built guest's cache key."""
    digest = hashlib.sha256()
    for path in sorted(p for p in IMAGE_SOURCES.rglob("*") if p.is_file()):
        digest.update(path.relative_to(IMAGE_SOURCES).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return f"{suite}-{digest.hexdigest()[:16]}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock file, so two test runs never build the same image at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_image(suite: str = DEFAULT_SUITE, stream: TextIO | None = sys.stderr) -> GuestImage:
    """The cached guest image of ``suite``, built first if this version of image/ has none yet."""
    if suite not in SUITES:
        raise VmError(f"unknown guest suite {suite!r}; expected one of {', '.join(SUITES)}")
    ensure_host_tools(stream)
    key = image_key(suite)
    target = CACHE_DIR / key
    with _locked(CACHE_DIR / ".lock"):
        if not (target / "ready").exists():
            if os.geteuid() != 0:
                raise VmError("building the guest image needs root (mmdebstrap, chroot)")
            _prune_other_images(suite, keep=key)
            partial = CACHE_DIR / f"{key}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            _log(stream, f"vm: building guest image {key} (about a minute)")
            started = time.monotonic()
            build = subprocess.run(
                ["nice", "-n", "10", "bash", str(IMAGE_SOURCES / "build.sh"), suite, str(partial)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            if build.returncode != 0:
                shutil.rmtree(partial, ignore_errors=True)
                raise VmError(f"guest image build failed:\n{build.stdout[-3000:]}")
            (partial / "ready").write_text(f"{time.monotonic() - started:.1f}\n")
            partial.rename(target)
            _log(stream, f"vm: guest image built in {time.monotonic() - started:.0f} s")
    return GuestImage(
        kernel=target / "vmlinuz",
        rootfs=target / "root.img",
        release=(target / "release").read_text().strip(),
    )


def _prune_other_images(suite: str, keep: str) -> None:
    """Remove this suite's images of older image/ versions (about 800 MB each)."""
    if not CACHE_DIR.is_dir():
        return
    for entry in CACHE_DIR.iterdir():
        if entry.is_dir() and entry.name.startswith(f"{suite}-") and entry.name != keep:
            shutil.rmtree(entry, ignore_errors=True)


def make_job_disk(workdir: Path, script: str, tree: Path, nics: bool = False) -> Path:
    """An ext4 image holding tree/ (the project), job.sh and an empty out/ for the job's files.

    With ``nics`` the job sees ``NETLAT_VM_NICS`` = the NICs' MACs, space separated."""
    stage = workdir / "stage"
    shutil.copytree(tree, stage / "tree", ignore=TREE_IGNORE, symlinks=True)
    (stage / "out").mkdir()
    nic_env = f"export NETLAT_VM_NICS='{' '.join(NIC_MACS)}'\n" if nics else ""
    (stage / "job.sh").write_text(
        "#!/bin/sh\n"
        "export PYTHONPATH=/job/tree PYTHONDONTWRITEBYTECODE=1 NETLAT_VM_OUT=/job/out\n"
        f"{nic_env}"
        "cd /job/tree || exit 126\n"
        f"{script}\n"
    )
    disk = workdir / "job.ext4"
    # Room for the tree plus what the job writes to out/ (sparse: unused space costs nothing).
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "netlat-job", "-d", str(stage), str(disk), "512M"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return disk


def nic_args(nics: bool) -> list[str]:
    """No network device, or two virtio-net NICs joined by qemu hub 0 and nothing else."""
    if not nics:
        return ["-nic", "none"]
    args = []
    for i, mac in enumerate(NIC_MACS):
        args += ["-netdev", f"hubport,id=p{i},hubid=0", "-device", f"virtio-net-pci,netdev=p{i},mac={mac}"]
    return args


def qemu_command(image: GuestImage, job_disk: Path, workdir: Path, memory_mb: int, cpus: int,
                 nics: bool = False) -> list[str]:
    """The qemu command line: TCG, one NVMe controller with two namespaces, three UARTs; no network
    device, or with ``nics`` the guest's own two-NIC hub (:func:`nic_args`)."""
    cmdline = (
        f"console=ttyS0,115200 root=PARTUUID={ROOT_PARTUUID} rootfstype=ext4 rootwait rw "
        "init=/sbin/netlat-vm-init "
        "panic=-1 mitigations=off "
        # a guest that hangs is sent an NMI before it is killed (hang_report): it panics and prints
        # every task and every CPU's backtrace to the console, so a silent hang says where it was
        "unknown_nmi_panic panic_print=0x41"
    )
    return [
        "nice", "-n", "10",
        "qemu-system-x86_64",
        "-accel", "tcg,thread=multi", "-cpu", "qemu64",
        "-m", str(memory_mb), "-smp", str(cpus),
        "-display", "none", "-monitor", f"unix:{workdir / MONITOR},server=on,wait=off",
        *nic_args(nics), "-no-reboot",
        "-kernel", str(image.kernel), "-append", cmdline,
        "-device", "nvme,id=nvme0,serial=netlat0",
        "-drive", f"file={image.rootfs},if=none,id=rootdisk,format=raw,snapshot=on",
        "-device", "nvme-ns,drive=rootdisk,bus=nvme0,nsid=1",
        "-drive", f"file={job_disk},if=none,id=jobdisk,format=raw",
        "-device", "nvme-ns,drive=jobdisk,bus=nvme0,nsid=2",
        "-serial", f"file:{workdir / 'console.log'}",
        "-serial", "stdio",
        "-serial", f"file:{workdir / 'status.txt'}",
    ]


def run_in_guest(
    script: str,
    out_dir: Path,
    *,
    suite: str = DEFAULT_SUITE,
    tree: Path = REPO_ROOT,
    timeout_s: float = 900.0,
    stream: TextIO | None = sys.stdout,
    memory_mb: int = 2048,
    cpus: int | None = None,
    nics: bool = False,
) -> GuestRun:
    """Boot the guest, run ``script`` (sh) as root in /job/tree with the project on PYTHONPATH.

    Streams the job's output to ``stream``, copies the job's $NETLAT_VM_OUT files into
    ``out_dir/out``, returns its exit status. Raises VmTimeout past ``timeout_s`` (the guest is
    killed) and VmError when the guest ends without reporting a status. ``nics`` gives the guest
    two virtio-net NICs on a qemu hub of their own (off by default: no network device at all).
    """
    image = ensure_image(suite, stream if stream is not None else sys.stderr)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="netlat-vm-") as tmp:
        workdir = Path(tmp)
        job_disk = make_job_disk(workdir, script, tree, nics)
        cmd = qemu_command(image, job_disk, workdir, memory_mb, cpus or SUITE_CPUS[suite], nics)
        started = time.monotonic()
        lines: list[str] = []
        proc, reader = _boot(cmd, lines, stream)
        if not _reached_init(proc, workdir):
            # Seen under TCG with two vCPUs: both stuck in early boot on a jump label being patched
            # (int3), before any of our code ran. The guest never started its job: boot it again,
            # once, and keep the stuck boot's NMI report beside the run.
            report = hang_report(proc, workdir)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=5)
            if (workdir / "console.log").exists():
                shutil.move(workdir / "console.log", out_dir / "console-stuck-boot.log")
            print(f"vm: the guest did not reach init in {BOOT_S:.0f} s; booting it again{report[:300]}",
                  file=sys.stderr)
            lines.clear()
            proc, reader = _boot(cmd, lines, stream)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            dump = hang_report(proc, workdir)
            raise VmTimeout(f"guest still running after {timeout_s:.0f} s; killed. Last output:\n"
                            + "".join(lines[-30:]) + dump) from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=5)
            qemu_err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            seconds = time.monotonic() - started
            console = out_dir / "console.log"
            if (workdir / "console.log").exists():
                shutil.copyfile(workdir / "console.log", console)
            (out_dir / "job-output.log").write_text("".join(lines))
        status_text = (workdir / "status.txt").read_text(errors="replace") if (
            workdir / "status.txt").exists() else ""
        found = EXIT_RE.search(status_text)
        if found is None:
            tail = console.read_text(errors="replace")[-2000:] if console.exists() else ""
            raise VmError(f"guest ended without an exit status (qemu exit {proc.returncode}).\n"
                          f"qemu: {qemu_err.strip()[-500:]}\nconsole tail:\n{tail}")
        _copy_out(job_disk, out_dir)
    return GuestRun(exit_status=int(found.group(1)), output="".join(lines), out_dir=out_dir / "out",
                    console_log=console, seconds=seconds)


def _boot(cmd: list[str], lines: list[str],
          stream: TextIO | None) -> tuple[subprocess.Popen, threading.Thread]:
    """Start qemu; a thread copies the job's output into ``lines`` (and ``stream``)."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines, stream), daemon=True)
    reader.start()
    return proc, reader


def _reached_init(proc: subprocess.Popen, workdir: Path) -> bool:
    """Whether the guest kernel started our init within BOOT_S (about 2 s under TCG); True also
    when qemu already ended (the caller reports that)."""
    console = workdir / "console.log"
    deadline = time.monotonic() + BOOT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if console.exists() and INIT_MARK in console.read_bytes():
            return True
        time.sleep(0.5)
    return proc.poll() is not None or (console.exists() and INIT_MARK in console.read_bytes())


def hang_report(proc: subprocess.Popen, workdir: Path, wait_s: float = 20.0) -> str:
    """Where a hung guest is: an NMI through qemu's monitor makes it panic (unknown_nmi_panic) and
    print every task and CPU backtrace (panic_print) to its console; returns that console tail."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mon:
            mon.settimeout(5)
            mon.connect(str(workdir / MONITOR))
            mon.sendall(b"nmi\n")
            proc.wait(timeout=wait_s)  # panic=-1 with -no-reboot: qemu exits once the guest panicked
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"\n(no NMI report from the guest: {exc})"
    console = workdir / "console.log"
    tail = console.read_text(errors="replace").splitlines()[-150:] if console.exists() else []
    return ("\nguest console after an NMI (its tail; every task and CPU backtrace are in the run's "
            "console.log):\n" + "\n".join(tail))


def _pump(pipe, lines: list[str], stream: TextIO | None) -> None:
    """Copy the guest's job output line by line to the list and the stream (UART line ends dropped)."""
    for raw in iter(pipe.readline, b""):
        line = raw.decode(errors="replace").replace("\r", "")
        lines.append(line)
        if stream is not None:
            stream.write(line)
            stream.flush()


def _copy_out(job_disk: Path, out_dir: Path) -> None:
    """Copy /out from the (unmounted) job image into out_dir/out with debugfs."""
    dest = out_dir / "out"
    shutil.rmtree(dest, ignore_errors=True)
    done = subprocess.run(["debugfs", "-R", f"rdump /out {out_dir}", str(job_disk)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0 or not dest.is_dir():
        raise VmError(f"could not copy out/ from the job disk: {done.stdout.strip()[-500:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a shell command as root in the netlat-tui test guest.")
    parser.add_argument("--suite", choices=SUITES, default=DEFAULT_SUITE, help="Debian release of the guest")
    parser.add_argument("--build-only", action="store_true", help="build or find the cached image, then exit")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before the guest is killed")
    parser.add_argument("--out", type=Path, default=None, help="where the job's out/ files go")
    parser.add_argument("--nics", action="store_true",
                        help="two virtio-net NICs on a qemu hub of the guest's own (no host network)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="shell command run in /job/tree")
    args = parser.parse_args(argv)
    try:
        image = ensure_image(args.suite)
        if args.build_only:
            print(f"{image.rootfs} ({image.release})")
            return 0
        command = " ".join(args.command[1:] if args.command[:1] == ["--"] else args.command)
        if not command:
            parser.error("give a command to run in the guest")
        out = args.out or Path(tempfile.mkdtemp(prefix="netlat-vm-out-"))
        run = run_in_guest(command, out, suite=args.suite, timeout_s=args.timeout, nics=args.nics)
    except VmError as exc:
        print(f"vm: {exc}", file=sys.stderr)
        return 2
    print(f"vm: exit status {run.exit_status} after {run.seconds:.0f} s; files in {run.out_dir}",
          file=sys.stderr)
    return run.exit_status


if __name__ == "__main__":
    raise SystemExit(main())
