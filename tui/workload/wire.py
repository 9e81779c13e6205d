"""What the loads share on the wire: the loopback address and the kernel's own segment count."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class TcpSegments:
    """The kernel's own count for one TCP client socket (TCP_INFO): the independent witness."""

    data_segs_out: int
    data_segs_in: int
    segs_out: int
    segs_in: int


# struct tcp_info (include/uapi/linux/tcp.h): u32 segs_out @136, segs_in @140, data_segs_in @152,
# data_segs_out @156; stable uapi, present since 4.6
_TCP_INFO_LEN = 160


def tcp_segments(sock: socket.socket) -> TcpSegments:
    """Segments the kernel sent and received on ``sock`` (raises OSError on a closed socket)."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    if len(raw) < _TCP_INFO_LEN:
        raise OSError(f"TCP_INFO too short ({len(raw)} bytes): kernel older than 4.6")
    segs_out, segs_in = struct.unpack_from("=II", raw, 136)
    data_in, data_out = struct.unpack_from("=II", raw, 152)
    return TcpSegments(data_out, data_in, segs_out, segs_in)
