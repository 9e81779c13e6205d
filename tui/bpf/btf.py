"""Struct field offsets of the running kernel, read from its BTF (/sys/kernel/btf/vmlinux).

The probes read a handful of kernel struct fields (skb->sk, sk->sk_protocol, ...). Their offsets
must come from the running kernel, not from whatever headers BCC compiles against: on the
development machine the 6.1 headers put ``sock.sk_protocol`` at 516 while the 6.18 kernel has it at
532. libbpf (already a dependency of libbcc) parses BTF; we reach it through ctypes because BCC's
Python API has no BTF query. Anonymous struct/union members are walked recursively, which is how
most of ``sk_buff`` and ``sock_common`` is laid out.

:func:`header_offsets` gives the same fields as the installed headers see them (compiled by BCC,
never loaded), so ``doctor`` can show where headers and kernel disagree.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Iterable
from functools import cache

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"

# BTF kinds (include/uapi/linux/btf.h).
_KIND_INT, _KIND_PTR, _KIND_ARRAY, _KIND_STRUCT, _KIND_UNION = 1, 2, 3, 4, 5
_KIND_TYPEDEF, _KIND_VOLATILE, _KIND_CONST, _KIND_RESTRICT = 8, 9, 10, 11
_KIND_FUNC, _KIND_FUNC_PROTO = 12, 13
_KIND_TYPE_TAG = 18
_MODIFIERS = {_KIND_TYPEDEF, _KIND_VOLATILE, _KIND_CONST, _KIND_RESTRICT, _KIND_TYPE_TAG}

#: Every field the probes read, as "struct.member[.member...]" -> C constant name.
PROBE_FIELDS: dict[str, str] = {
    "sk_buff.next": "OFF_SKB_NEXT",
    "sk_buff.data": "OFF_SKB_DATA",
    "sk_buff.network_header": "OFF_SKB_NETWORK_HEADER",
    "sk_buff.dev": "OFF_SKB_DEV",
    "sk_buff.sk": "OFF_SKB_SK",
    "sk_buff.len": "OFF_SKB_LEN",
    "sk_buff.data_len": "OFF_SKB_DATA_LEN",
    "sk_buff.head": "OFF_SKB_HEAD",
    "sk_buff.end": "OFF_SKB_END",
    "skb_shared_info.gso_segs": "OFF_SHINFO_GSO_SEGS",
    "net_device.ifindex": "OFF_DEV_IFINDEX",
    "net_device.name": "OFF_DEV_NAME",
    "socket.sk": "OFF_SOCKET_SK",
    "sock.sk_protocol": "OFF_SK_PROTOCOL",
    "sock.sk_receive_queue": "OFF_SK_RECEIVE_QUEUE",
    "sk_buff_head.prev": "OFF_SKB_HEAD_PREV",
    "sock.sk_type": "OFF_SK_TYPE",
    "sock_common.skc_daddr": "OFF_SKC_DADDR",
    "sock_common.skc_rcv_saddr": "OFF_SKC_RCV_SADDR",
    "sock_common.skc_dport": "OFF_SKC_DPORT",
    "sock_common.skc_num": "OFF_SKC_NUM",
    "sock_common.skc_family": "OFF_SKC_FAMILY",
    "sock_common.skc_state": "OFF_SKC_STATE",
    "sock_common.skc_v6_daddr": "OFF_SKC_V6_DADDR",
    "sock_common.skc_v6_rcv_saddr": "OFF_SKC_V6_RCV_SADDR",
    "sock.__sk_common": "OFF_SK_COMMON",
    "tcp_sock.data_segs_in": "OFF_TCP_DATA_SEGS_IN",
    "tcp_sock.data_segs_out": "OFF_TCP_DATA_SEGS_OUT",
    "sock.sk_lock.owned": "OFF_SK_LOCK_OWNED",
    "sk_buff.cb": "OFF_SKB_CB",
    "tcp_skb_cb.seq": "OFF_TCB_SEQ",
    "tcp_skb_cb.end_seq": "OFF_TCB_END_SEQ",
    "tcp_skb_cb.tcp_flags": "OFF_TCB_FLAGS",
}

#: Fields that attribute a socket to its workload: its own cgroup v2 (``sk_cgrp_data``, a
#: ``struct cgroup *`` since 5.15), that cgroup's id (its kernfs node id: the directory's inode),
#: level and ancestors (descendant filters), and its network namespace's inode. A kernel without
#: one of them still runs the probes; :func:`workload_offsets` leaves it out and the C says
#: what it attributes instead (netlat_common.bpf.c).
WORKLOAD_FIELDS: dict[str, str] = {
    "sock.sk_cgrp_data": "OFF_SK_CGRP_DATA",
    "sock_cgroup_data.cgroup": "OFF_SKCD_CGROUP",
    "cgroup.kn": "OFF_CGROUP_KN",
    "cgroup.level": "OFF_CGROUP_LEVEL",
    "cgroup.ancestors": "OFF_CGROUP_ANCESTORS",
    "kernfs_node.id": "OFF_KERNFS_NODE_ID",
    "sock_common.skc_net": "OFF_SKC_NET",
    "net.ns.inum": "OFF_NET_NS_INUM",
}


class BtfError(RuntimeError):
    """BTF is missing or lacks a field the probes need; str() is one line."""


class _BtfType(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32), ("size_type", ctypes.c_uint32)]


class _BtfParam(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("type", ctypes.c_uint32)]


class _BtfMember(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("type", ctypes.c_uint32), ("offset", ctypes.c_uint32)]


@cache
def _libbpf() -> ctypes.CDLL:
    path = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        lib = ctypes.CDLL(path, use_errno=True)
    except OSError as exc:
        raise BtfError(f"cannot load libbpf ({exc}); install libbpf1") from None
    lib.btf__load_vmlinux_btf.restype = ctypes.c_void_p
    lib.btf__load_vmlinux_btf.argtypes = []
    lib.btf__find_by_name_kind.restype = ctypes.c_int32
    lib.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
    lib.btf__type_by_id.restype = ctypes.POINTER(_BtfType)
    lib.btf__type_by_id.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.btf__name_by_offset.restype = ctypes.c_char_p
    lib.btf__name_by_offset.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.btf__free.restype = None
    lib.btf__free.argtypes = [ctypes.c_void_p]
    return lib


class KernelBtf:
    """The running kernel's BTF, opened through libbpf; use as a context manager."""

    def __init__(self) -> None:
        if not os.path.exists(VMLINUX_BTF):
            raise BtfError(f"{VMLINUX_BTF} is missing: this kernel was built without BTF")
        self._lib = _libbpf()
        handle = self._lib.btf__load_vmlinux_btf()
        if not handle or handle > 2**64 - 4096:  # libbpf returns NULL or an ERR_PTR
            raise BtfError(f"libbpf cannot parse {VMLINUX_BTF}")
        self._btf = handle

    def close(self) -> None:
        if self._btf:
            self._lib.btf__free(self._btf)
            self._btf = None

    def __enter__(self) -> KernelBtf:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _type(self, type_id: int) -> _BtfType:
        return self._lib.btf__type_by_id(self._btf, type_id).contents

    def _name(self, name_off: int) -> str:
        raw = self._lib.btf__name_by_offset(self._btf, name_off)
        return raw.decode() if raw else ""

    def _resolve(self, type_id: int) -> int:
        """Skip typedefs and qualifiers to the underlying type id."""
        while type_id and (self._type(type_id).info >> 24) & 0x1F in _MODIFIERS:
            type_id = self._type(type_id).size_type
        return type_id

    def _members(self, type_id: int) -> Iterable[tuple[str, int, int, bool]]:
        """(name, type id, bit offset, is bitfield) of each member of a struct/union."""
        t = self._type(type_id)
        kind, vlen, kflag = (t.info >> 24) & 0x1F, t.info & 0xFFFF, t.info >> 31
        if kind not in (_KIND_STRUCT, _KIND_UNION):
            return
        # The members follow the btf_type header directly in libbpf's in-memory copy of the BTF.
        base = ctypes.addressof(t) + ctypes.sizeof(_BtfType)
        members = (_BtfMember * vlen).from_address(base)
        for m in members:
            if kflag:
                bit_off, bitfield = m.offset & 0xFFFFFF, (m.offset >> 24) != 0
            else:
                bit_off, bitfield = m.offset, False
            yield self._name(m.name_off), m.type, bit_off, bitfield

    def _find_member(self, type_id: int, name: str) -> tuple[int, int, bool] | None:
        """(bit offset, member type id, bitfield) of ``name``, searching anonymous members too."""
        for m_name, m_type, bit_off, bitfield in self._members(type_id):
            if m_name == name:
                return bit_off, m_type, bitfield
            if not m_name:  # anonymous struct/union: its members belong to the parent
                found = self._find_member(self._resolve(m_type), name)
                if found is not None:
                    return bit_off + found[0], found[1], found[2]
        return None

    def struct_id(self, struct: str) -> int:
        type_id = self._lib.btf__find_by_name_kind(self._btf, struct.encode(), _KIND_STRUCT)
        if type_id <= 0:
            raise BtfError(f"struct {struct} is not in the kernel BTF")
        return type_id

    def param_names(self, function: str) -> list[str] | None:
        """Names of ``function``'s arguments in order, None when BTF does not have the function."""
        func_id = self._lib.btf__find_by_name_kind(self._btf, function.encode(), _KIND_FUNC)
        if func_id <= 0:
            return None
        proto = self._type(self._type(func_id).size_type)
        if (proto.info >> 24) & 0x1F != _KIND_FUNC_PROTO:
            return None
        # struct btf_param {name_off, type} entries follow the btf_type header, like members.
        base = ctypes.addressof(proto) + ctypes.sizeof(_BtfType)
        params = (_BtfParam * (proto.info & 0xFFFF)).from_address(base)
        return [self._name(p.name_off) for p in params]

    def param_index(self, function: str, param: str) -> int | None:
        """0-based position of ``param`` among ``function``'s arguments, None when BTF does not say."""
        names = self.param_names(function)
        return names.index(param) if names and param in names else None

    def offset(self, field_path: str) -> int:
        """Byte offset of ``struct.member[.member...]`` from the start of the struct."""
        struct, *names = field_path.split(".")
        if not names:
            raise ValueError(f"expected struct.member, got {field_path!r}")
        type_id, total_bits = self.struct_id(struct), 0
        for name in names:
            found = self._find_member(self._resolve(type_id), name)
            if found is None:
                raise BtfError(f"{field_path}: no member {name!r} in the kernel BTF")
            bit_off, type_id, bitfield = found
            if bitfield or bit_off % 8:
                raise BtfError(f"{field_path} is a bitfield; the probes cannot read it directly")
            total_bits += bit_off
        return total_bits // 8


@cache
def probe_offsets() -> dict[str, int]:
    """Offsets of every field in :data:`PROBE_FIELDS` in the running kernel (bytes)."""
    with KernelBtf() as btf:
        return {field: btf.offset(field) for field in PROBE_FIELDS}


@cache
def workload_offsets() -> dict[str, int]:
    """Offsets of the :data:`WORKLOAD_FIELDS` this kernel has (none without BTF)."""
    out: dict[str, int] = {}
    try:
        with KernelBtf() as btf:
            for field in WORKLOAD_FIELDS:
                with contextlib.suppress(BtfError):
                    out[field] = btf.offset(field)
    except BtfError:
        return {}
    return out


def c_defines(offsets: dict[str, int] | None = None) -> str:
    """``#define OFF_... n`` lines for the BPF C, from the running kernel's BTF."""
    offsets = probe_offsets() if offsets is None else offsets
    return "".join(f"#define {PROBE_FIELDS[f]} {offsets[f]}\n" for f in PROBE_FIELDS)


def workload_defines(offsets: dict[str, int] | None = None) -> str:
    """``#define OFF_... n`` for the workload fields present (an absent one stays undefined)."""
    offsets = workload_offsets() if offsets is None else offsets
    return "".join(f"#define {c} {offsets[f]}\n" for f, c in WORKLOAD_FIELDS.items() if f in offsets)


_HEADER_PROGRAM = """\
#include <linux/skbuff.h>
#include <linux/netdevice.h>
#include <linux/net.h>
#include <net/sock.h>
#include <linux/tcp.h>
#include <net/tcp.h>
"""


def header_offsets(fields: Iterable[str] | None = None) -> dict[str, int]:
    """The same offsets as the installed kernel headers see them (BCC compile, nothing loaded).

    Each field becomes a tiny function ``return offsetof(...)``; clang folds it into ``r0 = imm``,
    which we read back from the compiled bytecode. Raises BtfError when BCC cannot compile.
    """
    from bcc import BPF  # imported late: BTF offsets must work without BCC

    wanted = list(PROBE_FIELDS if fields is None else fields)
    funcs = []
    for n, field in enumerate(wanted):
        struct, *names = field.split(".")
        funcs.append(f"int off_{n}(void *ctx) {{ return offsetof(struct {struct}, {'.'.join(names)}); }}\n")
    try:
        b = BPF(text=_HEADER_PROGRAM + "".join(funcs))
    except Exception as exc:  # BCC raises plain Exception on compile errors
        raise BtfError(f"the installed kernel headers do not compile with BCC: {exc}") from None
    try:
        result = {}
        for n, field in enumerate(wanted):
            code = b.dump_func(f"off_{n}")
            result[field] = _first_imm(code)
        return result
    finally:
        b.cleanup()


def _first_imm(code: bytes) -> int:
    """Immediate of the first ``r0 = imm`` (BPF_ALU64|BPF_MOV|BPF_K) instruction."""
    for i in range(0, len(code), 8):
        opcode, regs = code[i], code[i + 1]
        if opcode in (0xB7, 0xB4) and regs & 0x0F == 0:
            return int.from_bytes(code[i + 4 : i + 8], "little", signed=True)
    raise BtfError("unexpected bytecode while reading header offsets")


def compare_offsets() -> list[tuple[str, int, int | None]]:
    """(field, kernel BTF offset, header offset or None) for fields whose offsets differ."""
    kernel = probe_offsets()
    try:
        headers = header_offsets()
    except BtfError:
        return [(f, off, None) for f, off in kernel.items()]
    return [(f, kernel[f], headers.get(f)) for f in kernel if headers.get(f) != kernel[f]]
