"""What the kernel counts per BPF program of ours: run time (BPF_ENABLE_STATS) and skipped runs.

The probes' own run time falls inside the stages they measure, so we want to know it. With
``kernel.bpf_stats_enabled=1`` (or a BPF_ENABLE_STATS fd held open) the kernel counts, per program,
``run_cnt`` and ``run_time_ns``; ``bpf_obj_get_info_by_fd`` reads them. BCC has no call for this,
so libbpf is reached through ctypes.

``recursion_misses`` (Linux 5.12+) counts the runs the kernel skipped because a program was already
running on that CPU: a kprobe or tracepoint hit from an interrupt inside another of our programs,
or, on a preemptible kernel, a task preempted inside one. Each skipped run can be a packet missing
from the counts, so the live source reports them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from functools import cache
from typing import Any

_u32, _u64 = ctypes.c_uint32, ctypes.c_uint64


class _ProgInfo(ctypes.Structure):
    """struct bpf_prog_info (include/uapi/linux/bpf.h) up to recursion_misses; the kernel fills what
    it has (an older kernel leaves the later fields zero)."""

    _fields_ = [
        ("type", _u32), ("id", _u32), ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", _u32), ("xlated_prog_len", _u32),
        ("jited_prog_insns", _u64), ("xlated_prog_insns", _u64), ("load_time", _u64),
        ("created_by_uid", _u32), ("nr_map_ids", _u32), ("map_ids", _u64),
        ("name", ctypes.c_char * 16), ("ifindex", _u32), ("gpl_compatible", _u32),
        ("netns_dev", _u64), ("netns_ino", _u64),
        ("nr_jited_ksyms", _u32), ("nr_jited_func_lens", _u32),
        ("jited_ksyms", _u64), ("jited_func_lens", _u64),
        ("btf_id", _u32), ("func_info_rec_size", _u32), ("func_info", _u64),
        ("nr_func_info", _u32), ("nr_line_info", _u32), ("line_info", _u64),
        ("jited_line_info", _u64), ("nr_jited_line_info", _u32), ("line_info_rec_size", _u32),
        ("jited_line_info_rec_size", _u32), ("nr_prog_tags", _u32), ("prog_tags", _u64),
        ("run_time_ns", _u64), ("run_cnt", _u64), ("recursion_misses", _u64),
    ]


@cache
def _libbpf() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
    lib.bpf_obj_get_info_by_fd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_u32)]
    lib.bpf_enable_stats.argtypes = [ctypes.c_int]
    return lib


def _info(fd: int) -> _ProgInfo:
    info = _ProgInfo()
    size = _u32(ctypes.sizeof(info))
    if _libbpf().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)) != 0:
        raise OSError(ctypes.get_errno(), "bpf_obj_get_info_by_fd failed")
    return info


def prog_info(fd: int) -> tuple[int, int, int]:
    """(program id, run_cnt, run_time_ns) of a loaded program fd."""
    info = _info(fd)
    return int(info.id), int(info.run_cnt), int(info.run_time_ns)


def prog_map_ids(fd: int) -> list[int]:
    """Kernel ids of the maps a loaded program uses."""
    count = int(_info(fd).nr_map_ids)
    ids = (_u32 * max(count, 1))()
    info = _ProgInfo(nr_map_ids=count, map_ids=ctypes.addressof(ids))
    size = _u32(ctypes.sizeof(info))
    if _libbpf().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)) != 0:
        raise OSError(ctypes.get_errno(), "bpf_obj_get_info_by_fd failed")
    return list(ids[:count])


def enable_stats() -> int:
    """Turn run-time stats on while the returned fd stays open (BPF_STATS_RUN_TIME = 0)."""
    fd = _libbpf().bpf_enable_stats(0)
    if fd < 0:
        raise OSError(-fd, "BPF_ENABLE_STATS failed")
    return fd


def _programs(bpf: Any) -> Iterator[tuple[str, int]]:
    """(BPF function name, program fd) of every loaded program of a BCC ``BPF`` object."""
    for name, fn in bpf.funcs.items():
        yield (name.decode() if isinstance(name, bytes) else name), fn.fd


def program_stats(bpf: Any) -> dict[str, tuple[int, int]]:
    """name -> (run_cnt, run_time_ns) for every loaded program of a BCC ``BPF`` object."""
    out = {}
    for name, fd in _programs(bpf):
        _id, cnt, ns = prog_info(fd)
        out[name.removeprefix("raw_tracepoint__")] = (cnt, ns)
    return out


def program_counts(bpf: Any) -> dict[str, tuple[int, int, int]]:
    """BPF function name -> (run_cnt, run_time_ns, recursion misses): one syscall per program."""
    out = {}
    for name, fd in _programs(bpf):
        info = _info(fd)
        out[name] = (int(info.run_cnt), int(info.run_time_ns), int(info.recursion_misses))
    return out


def program_misses(bpf: Any) -> dict[str, int]:
    """BPF function name -> runs the kernel skipped (recursion misses), for every loaded program."""
    return {name: int(_info(fd).recursion_misses) for name, fd in _programs(bpf)}


def program_ids(bpf: Any) -> list[int]:
    """Kernel ids of a BPF object's programs (to prove later that they are gone)."""
    return [prog_info(fn.fd)[0] for fn in bpf.funcs.values()]


def map_ids(bpf: Any) -> list[int]:
    """Kernel ids of every map a BPF object's programs use."""
    return sorted({m for fn in bpf.funcs.values() for m in prog_map_ids(fn.fd)})
