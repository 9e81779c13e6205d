"""What the machine must offer before live probes can run: privileges, BCC, tracefs, kernel headers.

Every check fails with a :class:`~tui.errors.UserError` whose message is one line: what is wrong
(``reason``) and the fix (``fix``). Nothing here imports bcc at module level, so the pure parts are
testable anywhere.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from tui.errors import UserError, one_line

# Capability bit numbers from linux/capability.h.
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

TRACEFS = "/sys/kernel/tracing"
DEBUGFS = "/sys/kernel/debug"
BTF_VMLINUX = "/sys/kernel/btf/vmlinux"
MODULES_DIR = "/lib/modules"
#: BCC extracts these (CONFIG_IKHEADERS) when /lib/modules/<release>/build is absent.
KHEADERS = "/sys/kernel/kheaders.tar.xz"
#: Where Debian and Ubuntu put BCC's pure-Python bindings (package python3-bpfcc).
SYSTEM_BCC_DIRS = ("/usr/lib/python3/dist-packages", "/usr/local/lib/python3/dist-packages")

SETUP_FIX = "run ./setup.sh as root (or: apt install python3-bpfcc linux-headers-$(uname -r))"
#: the probes take struct offsets from BTF only (see btf_rule)
BTF_FIX = "a kernel built with CONFIG_DEBUG_INFO_BTF=y"


# ---------------------------------------------------------------------------------------------------
# privileges


def parse_cap_eff(status_text: str) -> int:
    """The effective capability mask from the text of /proc/<pid>/status (0 when absent)."""
    match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)\s*$", status_text, re.MULTILINE)
    return int(match.group(1), 16) if match else 0


def has_bpf_privileges(cap_eff: int) -> bool:
    """True with CAP_SYS_ADMIN, or with both CAP_BPF and CAP_PERFMON (enough for tracing programs)."""

    def has(bit: int) -> bool:
        return bool(cap_eff >> bit & 1)

    return has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON))


def require_root(status_path: str = "/proc/self/status") -> None:
    """Raise UserError unless this process may load and attach tracing BPF programs."""
    if os.geteuid() == 0:
        return
    try:
        cap_eff = parse_cap_eff(Path(status_path).read_text())
    except OSError:
        cap_eff = 0
    if not has_bpf_privileges(cap_eff):
        raise UserError(
            "live probes need root (or CAP_BPF and CAP_PERFMON)",
            fix="run with sudo, or try --synthetic / --replay FILE without root",
        )


# ---------------------------------------------------------------------------------------------------
# BCC


def import_bcc() -> ModuleType:
    """The ``bcc`` module, or UserError with the fix.

    A virtual environment does not see Debian's dist-packages. setup.sh links only ``bcc`` into the
    venv; when that link is missing we load the system copy of that one package by path rather than
    putting all of dist-packages on sys.path (which would shadow the venv's pinned libraries).
    """
    try:
        return importlib.import_module("bcc")
    except ImportError as exc:
        if exc.name not in (None, "bcc"):  # bcc itself is there but something it needs is not
            raise UserError(f"bcc cannot be imported ({exc})", fix=SETUP_FIX) from None
        first_error: Exception = exc
    except OSError as exc:  # libbcc.so missing or broken
        raise UserError(f"bcc cannot load libbcc ({one_line(exc)})", fix=SETUP_FIX) from None
    module = _import_system_bcc()
    if module is None:
        raise UserError(f"bcc is not installed ({first_error})", fix=SETUP_FIX)
    return module


def _import_system_bcc() -> ModuleType | None:
    for base in SYSTEM_BCC_DIRS:
        init = Path(base, "bcc", "__init__.py")
        if not init.is_file():
            continue
        spec = importlib.util.spec_from_file_location(
            "bcc", init, submodule_search_locations=[str(init.parent)]
        )
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules["bcc"] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # any failure here means "bcc unusable": say it in one line
            sys.modules.pop("bcc", None)
            reason = one_line(exc)
            raise UserError(f"bcc from {init.parent} failed to load ({reason})", fix=SETUP_FIX) from None
        return module
    return None


# ---------------------------------------------------------------------------------------------------
# tracefs / debugfs


def tracefs_ready(path: str = TRACEFS) -> bool:
    """True when ``path`` is a mounted tracefs (it lists the trace events)."""
    return os.path.isdir(os.path.join(path, "events"))


def ensure_tracefs(path: str = TRACEFS, debugfs: str = DEBUGFS) -> str:
    """Mount tracefs (and, best effort, debugfs) when missing; return the tracefs path.

    Call it BEFORE importing bcc: BCC picks its tracing directory once, at import.
    """
    if not tracefs_ready(path):
        _mount("tracefs", path)
        if not tracefs_ready(path):
            raise UserError(
                f"tracefs is not mounted at {path} and mounting it failed",
                fix=f"run 'mount -t tracefs nodev {path}' as root (kernel needs CONFIG_TRACING)",
            )
    # BCC looks for <debugfs>/tracing first and reads the kprobe blacklist from debugfs. Missing
    # debugfs is not fatal (BCC falls back to /sys/kernel/tracing), so failure here is ignored.
    if os.path.isdir(debugfs) and not os.path.ismount(debugfs) and not _listdir(debugfs):
        _mount("debugfs", debugfs)
    return path


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:  # not ours to read (not root): treat as "leave it alone"
        return ["?"]


def _mount(fstype: str, target: str) -> None:
    # A failed mount is reported by the caller's re-check, with the fix.
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            ["mount", "-t", fstype, "nodev", target],
            check=False, capture_output=True, timeout=10, stdin=subprocess.DEVNULL,
        )


# ---------------------------------------------------------------------------------------------------
# kernel headers


@dataclass(frozen=True, slots=True)
class HeadersStatus:
    """Which kernel headers BCC will compile against."""

    kind: str  #: "exact" (this kernel's), "nearest" (another version made visible) or "missing"
    path: str  #: the headers directory BCC uses ("" when missing)
    version: str  #: the headers' release, e.g. "6.1.0-56-cloud-amd64" ("" when unknown or missing)
    message: str  #: one line for humans
    fix: str = ""  #: what to do about it, when something is to be done (also the end of ``message``)

    @property
    def reason(self) -> str:
        """``message`` without the fix it ends with."""
        return self.message.removesuffix(f": {self.fix}") if self.fix else self.message


def headers_version(build_dir: str | Path) -> str:
    """The kernel release a headers tree was built for ("" when it does not say)."""
    build = Path(build_dir)
    uts = build / "include" / "generated" / "utsrelease.h"
    try:
        match = re.search(r'UTS_RELEASE\s+"([^"]+)"', uts.read_text())
        if match:
            return match.group(1)
    except OSError:
        pass
    # Packaged header trees are often named after their release (linux-headers-<release>).
    name = build.resolve().name
    return name.removeprefix("linux-headers-") if name.startswith("linux-headers-") else ""


def headers_status(
    release: str | None = None, modules_dir: str = MODULES_DIR, kheaders: str = KHEADERS
) -> HeadersStatus:
    """Where BCC will find kernel headers for ``release`` (default: the running kernel)."""
    release = release or platform.release()
    build = Path(modules_dir, release, "build")
    if (build / "include").is_dir():
        version = headers_version(build)
        path = str(build.resolve())
        if version in ("", release):
            # No version stamp at all: trust the location, it is the standard one for this release.
            return HeadersStatus("exact", path, version or release, f"kernel headers for {release}: {path}")
        return HeadersStatus(
            "nearest", path, version,
            f"headers are {version}, not {release}: struct offsets come from BTF",
        )
    if os.path.isfile(kheaders):
        return HeadersStatus(
            "exact", kheaders, release, f"kernel headers for {release} from the kernel itself ({kheaders})"
        )
    reason = f"no kernel headers for {release} ({build} is absent)"
    return HeadersStatus("missing", "", "", f"{reason}: {SETUP_FIX}", fix=SETUP_FIX)


# ---------------------------------------------------------------------------------------------------
# all of it


def btf_available(path: str = BTF_VMLINUX) -> bool:
    return os.path.isfile(path)


@dataclass(frozen=True, slots=True)
class OffsetsRule:
    """Where the probes' struct offsets come from on this machine, or why there are none."""

    ok: bool  #: False: live probes cannot run here
    message: str  #: one line saying where the offsets come from (or why they cannot be read)
    fix: str = ""  #: what to do when not ok
    warning: bool = False  #: worth a warning before live probes start (headers of another kernel)


def btf_rule(headers: HeadersStatus | None = None, btf: bool | None = None) -> OffsetsRule:
    """The BTF rule, stated once for preflight, doctor and the live source (default: this machine).

    The probes read every kernel struct field at the offset the running kernel's BTF gives
    (tui.bpf.program takes them from tui.bpf.btf), never at the offset in the headers BCC compiles
    with. So without BTF live probes cannot run, whatever the headers: nothing would read offsets
    from exact headers either. With BTF, headers of another kernel are safe, and worth a warning.
    """
    headers = headers_status() if headers is None else headers
    btf = btf_available() if btf is None else btf
    if not btf:
        return OffsetsRule(False, f"kernel has no BTF ({BTF_VMLINUX}): struct offsets cannot be read",
                           fix=BTF_FIX)
    if headers.kind == "nearest":
        return OffsetsRule(True, headers.message, warning=True)  # "...: struct offsets come from BTF"
    return OffsetsRule(True, "struct offsets come from the running kernel's BTF")


def preflight() -> list[str]:
    """Check everything the live source needs; return warnings to show, raise UserError to stop."""
    require_root()
    ensure_tracefs()
    import_bcc()
    headers = headers_status()
    if headers.kind == "missing":
        raise UserError(headers.reason, fix=headers.fix)
    offsets = btf_rule(headers, btf_available())
    if not offsets.ok:
        raise UserError(offsets.message, fix=offsets.fix)
    return [offsets.message] if offsets.warning else []
