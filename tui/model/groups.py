"""Workloads: a cgroup path's short name (container, pod or unit) and sockets summed per cgroup.

The short name is what the path shows, most specific first: a container (Docker
``docker-<id>.scope`` or ``/docker/<id>``, containerd/CRI-O ``cri-containerd-<id>.scope`` /
``crio-<id>.scope``, 12 hex digits of the id), a Kubernetes pod (``kubepods…pod<uid>…``), a
systemd unit (``*.service``, the deepest one), else the last component.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from tui.model.histogram import SOCKET_SUB_BITS, Histogram
from tui.model.snapshot import RECV, SEND, SocketStats

_CONTAINER_RES = (
    (re.compile(r"^docker-([0-9a-f]{12,})\.scope$"), "docker"),
    (re.compile(r"^cri-containerd-([0-9a-f]{12,})\.scope$"), "cri"),
    (re.compile(r"^crio-([0-9a-f]{12,})\.scope$"), "crio"),
    (re.compile(r"^libpod-([0-9a-f]{12,})\.scope$"), "podman"),
)
_BARE_ID_RE = re.compile(r"^[0-9a-f]{64}$")  # cgroupfs driver: /docker/<id>, /kubepods/.../<id>
_POD_RE = re.compile(r"pod([0-9a-f]{8})[0-9a-f_-]*(?:\.slice)?$")
#: What a socket with no known cgroup is grouped as.
UNKNOWN = "?"


def short_name(path: str) -> str:
    """``docker:0123456789ab``, ``pod:1234abcd``, ``nginx.service``, the last component, or "/"."""
    if not path:
        return UNKNOWN
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "/"
    for part in reversed(parts):
        for pattern, kind in _CONTAINER_RES:
            m = pattern.match(part)
            if m:
                return f"{kind}:{m.group(1)[:12]}"
    if _BARE_ID_RE.match(parts[-1]):
        kind = "ctr" if any(p.startswith("kubepods") for p in parts) else parts[0]
        return f"{kind}:{parts[-1][:12]}"
    for part in reversed(parts):
        m = _POD_RE.search(part)
        if m and any(p.startswith("kubepods") for p in parts):
            return f"pod:{m.group(1)}"
    for part in reversed(parts):
        if part.endswith(".service"):
            return part
    return parts[-1]


def group_key(sock: SocketStats) -> str:
    """The cgroup a socket is summed under: its path, its id when the path is unknown, else "?"."""
    if sock.cgroup:
        return sock.cgroup
    return f"cgroup id {sock.cgroup_id}" if sock.cgroup_id else UNKNOWN


@dataclass(frozen=True, slots=True)
class GroupStats:
    """The sockets of one cgroup; their counters and per-path histograms summed on demand."""

    key: str  #: the cgroup path (or :func:`group_key`'s stand-in)
    name: str  #: :func:`short_name` of the path
    members: tuple[SocketStats, ...]

    @property
    def sockets(self) -> int:
        return len(self.members)

    def packets(self, path: str) -> int:
        return sum(s.tx_packets if path == SEND else s.rx_packets for s in self.members)

    def bytes(self, path: str) -> int:
        return sum(s.tx_bytes if path == SEND else s.rx_bytes for s in self.members)

    def hist(self, path: str) -> Histogram:
        """The members' histograms of ``path`` summed (column sums: a group may hold thousands)."""
        counts = [sum(column) for column in zip(*(s.hist(path).counts for s in self.members), strict=True)]
        return Histogram(tuple(counts), SOCKET_SUB_BITS) if counts else Histogram.empty(SOCKET_SUB_BITS)

    @property
    def max_ns(self) -> int:
        return max((s.max_ns for s in self.members), default=0)

    @property
    def netns(self) -> tuple[str, ...]:
        """The namespaces of its sockets (names, or inodes), sorted."""
        return tuple(sorted({netns_label(s) for s in self.members} - {""}))


def netns_label(sock: SocketStats) -> str:
    """A socket's namespace as shown: its ``ip netns`` name, else its inode, else ""."""
    return sock.netns_name or (str(sock.netns) if sock.netns else "")


def group_sockets(sockets: Iterable[SocketStats]) -> list[GroupStats]:
    """One GroupStats per cgroup of ``sockets``, busiest (packets on both paths) first."""
    members: dict[str, list[SocketStats]] = {}
    for sock in sockets:
        members.setdefault(group_key(sock), []).append(sock)
    groups = [GroupStats(key, short_name(socks[0].cgroup) if socks[0].cgroup else key, tuple(socks))
              for key, socks in members.items()]
    groups.sort(key=lambda g: (g.packets(SEND) + g.packets(RECV), g.key), reverse=True)
    return groups
