"""What the running kernel offers for tracing: BTF, kprobes, fentry, raw tracepoints, ring buffer.

Plan selection (tui.bpf.plans) and ``doctor`` read one KernelFeatures. Checks are cheap and do not
need BCC: files under tracefs and /sys, and libbpf's own feature probes (which load a trivial program
or map and need root; without root they report False and say so in ``notes``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass, field
from functools import cache

TRACEFS_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"

# enum bpf_prog_type / bpf_map_type values (include/uapi/linux/bpf.h).
_PROG_RAW_TRACEPOINT = 17
_MAP_RINGBUF = 27
_MAP_TASK_STORAGE = 29


@dataclass(frozen=True)
class KernelFeatures:
    """Tracing facilities of this kernel, as far as they matter to the probe plans."""

    btf: bool
    kprobes: bool
    fentry: bool
    raw_tracepoints: bool
    ringbuf: bool
    #: "category:event" -> exists, for every tracepoint any plan uses
    tracepoints: dict[str, bool] = field(default_factory=dict)
    tracefs: str | None = None
    kernel: str = ""
    task_storage: bool = False  #: BPF task-local storage (Linux 5.11+): cheaper per-thread state
    notes: tuple[str, ...] = ()

    def missing_tracepoints(self, names: tuple[str, ...] | list[str]) -> list[str]:
        return [n for n in names if not self.tracepoints.get(n, False)]


def find_tracefs() -> str | None:
    """The mounted tracefs directory, or None (foundation's tui.system mounts it when missing)."""
    for path in TRACEFS_CANDIDATES:
        if os.path.isdir(os.path.join(path, "events")):
            return path
    return None


def tracepoint_exists(tracefs: str | None, name: str) -> bool:
    if tracefs is None:
        return False
    category, event = name.split(":", 1)
    return os.path.isdir(os.path.join(tracefs, "events", category, event))


def kprobes_available(tracefs: str | None) -> bool:
    """CONFIG_KPROBES (and kprobe events) present: tracefs has kprobe_events."""
    return tracefs is not None and os.path.exists(os.path.join(tracefs, "kprobe_events"))


@cache
def _libbpf() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
    except OSError:
        return None
    lib.libbpf_probe_bpf_prog_type.argtypes = [ctypes.c_int, ctypes.c_void_p]
    lib.libbpf_probe_bpf_map_type.argtypes = [ctypes.c_int, ctypes.c_void_p]
    return lib


def _probe(kind: str, value: int) -> bool:
    lib = _libbpf()
    if lib is None:
        return False
    fn = lib.libbpf_probe_bpf_prog_type if kind == "prog" else lib.libbpf_probe_bpf_map_type
    return fn(value, None) == 1


def fentry_attachable() -> bool:
    """Whether an fentry program can really attach (the only reliable check; needs BCC, ~1 s).

    Some kernels (this development machine) have BTF and the trampoline code but refuse the
    attach with EPERM, so "has the symbols" is not enough.
    """
    try:
        from bcc import BPF
    except ImportError:
        return False
    try:
        b = BPF(text="KFUNC_PROBE(tcp_sendmsg) { return 0; }")
    except Exception:  # BCC raises bare Exception for load/attach failures
        return False
    b.cleanup()
    return True


def _has_trampoline() -> bool:
    try:
        with open("/proc/kallsyms") as f:
            return any(line.rstrip().endswith(" bpf_trampoline_link_prog") for line in f)
    except OSError:
        return False


def detect(tracepoints: tuple[str, ...] | None = None, deep: bool = False) -> KernelFeatures:
    """Inspect this kernel. ``deep`` also tries a real fentry attach (slow, root)."""
    if tracepoints is None:
        from tui.bpf.plans import all_tracepoints

        tracepoints = all_tracepoints()
    tracefs = find_tracefs()
    notes: list[str] = []
    if tracefs is None:
        notes.append("tracefs is not mounted: tracepoints cannot be checked")
    btf = os.path.exists(VMLINUX_BTF)
    root = os.geteuid() == 0
    raw_tp = _probe("prog", _PROG_RAW_TRACEPOINT) if root else False
    ringbuf = _probe("map", _MAP_RINGBUF) if root else False
    task_storage = _probe("map", _MAP_TASK_STORAGE) if root else False
    if not root:
        notes.append("not root: BPF program and map types could not be probed")
    fentry = btf and _has_trampoline()
    if fentry and deep:
        fentry = fentry_attachable()
        if not fentry:
            notes.append("fentry attach refused (BTF present, attach fails)")
    return KernelFeatures(
        btf=btf,
        kprobes=kprobes_available(tracefs),
        fentry=fentry,
        raw_tracepoints=raw_tp,
        ringbuf=ringbuf,
        tracepoints={name: tracepoint_exists(tracefs, name) for name in tracepoints},
        tracefs=tracefs,
        kernel=os.uname().release,
        task_storage=task_storage,
        notes=tuple(notes),
    )
