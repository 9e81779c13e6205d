"""BTF offsets read through libbpf against the running kernel's real /sys/kernel/btf/vmlinux."""

from __future__ import annotations

import os
import struct

import pytest

from tui.bpf import btf

needs_btf = pytest.mark.skipif(not os.path.exists(btf.VMLINUX_BTF), reason="kernel without BTF")


@needs_btf
def test_offsets_of_this_kernel_match_the_design_figures() -> None:
    offsets = btf.probe_offsets()
    # Measured on the 6.18 development kernel (DESIGN.md); the headers there say 516 for sk_protocol.
    if os.uname().release.startswith("6.18."):
        assert offsets["sk_buff.dev"] == 16
        assert offsets["sk_buff.sk"] == 24
        assert offsets["sk_buff.len"] == 112
        assert offsets["sk_buff.head"] == 192
        assert offsets["socket.sk"] == 24
        assert offsets["sock.sk_protocol"] == 532
    # Layout facts that hold on every 64-bit kernel since 4.x: sock_common starts struct sock,
    # the IPv4 destination address is its first word, the local port follows the remote one.
    assert offsets["sock.__sk_common"] == 0
    assert offsets["sock_common.skc_daddr"] == 0
    assert offsets["sock_common.skc_rcv_saddr"] == 4
    assert offsets["sock_common.skc_num"] == offsets["sock_common.skc_dport"] + 2


@needs_btf
def test_offsets_agree_with_an_independent_btf_parse() -> None:
    """Re-derive a few offsets by parsing the raw BTF file in Python (no libbpf involved)."""
    with open(btf.VMLINUX_BTF, "rb") as f:
        data = f.read()
    ours = _raw_offsets(data, {"sk_buff": ["sk", "len", "head"], "sock": ["sk_protocol"]})
    assert set(ours) == {"sk_buff.sk", "sk_buff.len", "sk_buff.head", "sock.sk_protocol"}
    offsets = btf.probe_offsets()
    for key, value in ours.items():
        assert offsets[key] == value, key


def _raw_offsets(data: bytes, wanted: dict[str, list[str]]) -> dict[str, int]:
    """Minimal BTF reader: type section walk, direct (non-anonymous) members only."""
    magic, _ver, _flags, hdr_len, type_off, type_len, str_off, _str_len = struct.unpack_from(
        "<HBBIIIII", data, 0
    )
    assert magic == 0xEB9F
    types_at, strs_at = hdr_len + type_off, hdr_len + str_off

    def name(off: int) -> str:
        end = data.index(b"\0", strs_at + off)
        return data[strs_at + off : end].decode()

    found: dict[str, int] = {}
    pos = types_at
    extra = {1: 4, 3: 12, 13: 0, 14: 4, 17: 4, 19: 0}  # bytes after the 12-byte header, by kind
    while pos < types_at + type_len:
        name_off, info, _size = struct.unpack_from("<III", data, pos)
        kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
        pos += 12
        if kind in (4, 5):  # struct/union: vlen members of 12 bytes
            sname = name(name_off)
            for i in range(vlen):
                m_name, _m_type, m_off = struct.unpack_from("<III", data, pos + 12 * i)
                bits = m_off & 0xFFFFFF if kflag else m_off
                if kind == 4 and sname in wanted and name(m_name) in wanted[sname]:
                    found.setdefault(f"{sname}.{name(m_name)}", bits // 8)
            pos += 12 * vlen
        elif kind == 6:  # enum: vlen * 8
            pos += 8 * vlen
        elif kind == 19:  # enum64: vlen * 12
            pos += 12 * vlen
        elif kind == 13:  # func_proto: vlen * 8
            pos += 8 * vlen
        elif kind == 15:  # datasec: vlen * 12
            pos += 12 * vlen
        else:
            pos += extra.get(kind, 0)
    return found


@needs_btf
def test_unknown_member_is_a_one_line_btf_error() -> None:
    with btf.KernelBtf() as kernel, pytest.raises(btf.BtfError, match="no member 'nonexistent'"):
        kernel.offset("sk_buff.nonexistent")


@needs_btf
def test_c_defines_carry_every_field() -> None:
    text = btf.c_defines()
    for const in btf.PROBE_FIELDS.values():
        assert f"#define {const} " in text


@needs_btf
def test_prog_info_mirror_matches_the_kernel_layout() -> None:
    # tui/bpf/stats.py mirrors struct bpf_prog_info by hand for ctypes; a wrong offset would read
    # run time or the skipped-run count from the wrong field.
    from tui.bpf.stats import _ProgInfo

    with btf.KernelBtf() as kernel:
        for name in ("id", "nr_map_ids", "map_ids", "netns_dev", "btf_id", "prog_tags", "run_time_ns",
                     "run_cnt", "recursion_misses"):
            assert getattr(_ProgInfo, name).offset == kernel.offset(f"bpf_prog_info.{name}"), name
