"""Packet filters: parsed and validated here, before any value can reach BPF C source.

Every field is either None (no filter) or a value already checked: integers parsed and range
checked, names matched against a strict pattern, addresses parsed by :mod:`ipaddress`. The probe
engine turns a Filters into C constants; the UI's filter dialog uses the same parsers, so the
command line and the dialog reject the same input with the same one-line message.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tui.model.snapshot import PacketEvent, Snapshot, SocketStats

#: A task comm is at most 15 bytes (TASK_COMM_LEN - 1); keep to characters that are safe in C.
_COMM_RE = re.compile(r"[A-Za-z0-9_.:+@/-]{1,15}")
#: An interface name is at most 15 bytes (IFNAMSIZ - 1).
_IFACE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,15}")


class FilterError(ValueError):
    """A filter value is invalid; str() is a one-line message naming the field."""


def parse_pid(text: str) -> int:
    return _parse_int("pid", text, 1, 4_194_304)


def parse_port(text: str, name: str = "port") -> int:
    return _parse_int(name, text, 1, 65_535)


def _parse_int(name: str, text: str, low: int, high: int) -> int:
    text = str(text).strip()
    if not re.fullmatch(r"\d+", text):
        raise FilterError(f"bad {name} {text!r}: expected a whole number {low}-{high}")
    value = int(text)
    if not low <= value <= high:
        raise FilterError(f"bad {name} {value}: must be {low}-{high}")
    return value


def parse_comm(text: str) -> str:
    text = str(text).strip()
    if not _COMM_RE.fullmatch(text):
        raise FilterError(
            f"bad comm {text!r}: 1-15 characters of letters, digits and _ . : + @ / -"
        )
    return text


def parse_iface(text: str) -> str:
    text = str(text).strip()
    if not _IFACE_RE.fullmatch(text):
        raise FilterError(f"bad interface {text!r}: 1-15 characters of letters, digits and _ . : -")
    return text


def parse_addr(text: str) -> str:
    text = str(text).strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise FilterError(f"bad address {text!r}: expected an IPv4 or IPv6 address") from None


def parse_family(text: str) -> int:
    value = str(text).strip().lower().removeprefix("ipv")
    if value not in ("4", "6"):
        raise FilterError(f"bad family {text!r}: expected 4 or 6")
    return int(value)


def parse_protocol(text: str) -> str:
    value = str(text).strip().lower()
    if value not in ("tcp", "udp"):
        raise FilterError(f"bad protocol {text!r}: expected tcp or udp")
    return value


@dataclass(frozen=True, slots=True)
class CgroupFilter:
    """A cgroup v2 group and its descendants; ``str()`` is its path (what the dialog shows)."""

    path: str  #: below the cgroup2 mount, "/" = root
    id: int  #: inode of its directory (compiled into the probes)
    level: int  #: depth below the root (compiled into the probes)

    def __str__(self) -> str:
        return self.path

    def covers(self, path: str) -> bool:
        """Whether a socket in cgroup ``path`` is this group or one of its descendants."""
        return self.path == "/" or path == self.path or path.startswith(self.path + "/")


@dataclass(frozen=True, slots=True)
class NetnsFilter:
    """A network namespace; ``str()`` is its name, or its inode when it has none."""

    inode: int
    name: str = ""

    def __str__(self) -> str:
        return self.name or str(self.inode)


def parse_cgroup(text: str) -> CgroupFilter:
    """A cgroup by path: absolute, or relative to the cgroup2 mount; it must exist here."""
    from tui.attribution import AttributionError, resolve_cgroup

    try:
        group = resolve_cgroup(str(text))
    except AttributionError as exc:
        raise FilterError(str(exc)) from None
    return CgroupFilter(group.path, group.id, group.level)


def parse_netns(text: str) -> NetnsFilter:
    """A network namespace by ``ip netns`` name, inode or path; it must exist here."""
    from tui.attribution import AttributionError, resolve_netns

    try:
        ns = resolve_netns(str(text))
    except AttributionError as exc:
        raise FilterError(str(exc)) from None
    return NetnsFilter(ns.inode, ns.name)


@dataclass(frozen=True, slots=True)
class Filters:
    """Validated filters; None means "any". Build with :meth:`parse`, not by hand."""

    pid: int | None = None
    comm: str | None = None
    port: int | None = None  #: local or remote (in the probes, a UDP datagram's own; README)
    lport: int | None = None
    rport: int | None = None
    addr: str | None = None  #: local or remote address (as port)
    family: int | None = None
    protocol: str | None = None
    iface: str | None = None
    cgroup: CgroupFilter | None = None  #: the socket's cgroup is this group or below it
    netns: NetnsFilter | None = None  #: the socket's network namespace

    _PARSERS = {
        "pid": parse_pid,
        "comm": parse_comm,
        "port": parse_port,
        "lport": lambda t: parse_port(t, "lport"),
        "rport": lambda t: parse_port(t, "rport"),
        "addr": parse_addr,
        "family": parse_family,
        "protocol": parse_protocol,
        "iface": parse_iface,
        "cgroup": parse_cgroup,
        "netns": parse_netns,
    }

    @classmethod
    def parse(cls, **raw: str | int | None) -> Filters:
        """Validate raw strings (None or "" = no filter); raises FilterError on the first bad one."""
        values: dict[str, object] = {}
        for name, text in raw.items():
            if name not in cls._PARSERS:
                raise FilterError(f"unknown filter {name!r}")
            if text is None or str(text).strip() == "":
                continue
            values[name] = cls._PARSERS[name](str(text))
        if values.get("addr") and values.get("family"):
            addr_family = ipaddress.ip_address(values["addr"]).version
            if addr_family != values["family"]:
                raise FilterError(f"address {values['addr']} is not IPv{values['family']}")
        return cls(**values)  # type: ignore[arg-type]

    def with_(self, **raw: str | int | None) -> Filters:
        """A copy with some fields re-parsed from raw text (the filter dialog's edit)."""
        merged = {f.name: getattr(self, f.name) for f in fields(self)}
        merged.update(raw)
        return replace(Filters.parse(**merged))

    def active(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def describe(self) -> str:
        """``pid=42 port=8080``, or "" when nothing is filtered."""
        return " ".join(f"{k}={v}" for k, v in self.active().items())

    def __bool__(self) -> bool:
        return bool(self.active())

    def matches(self, item: SocketStats | PacketEvent) -> bool:
        """Whether a socket or sampled packet passes every filter that can apply to it (the
        interface is not part of a socket or event, so ``iface`` never excludes one). The probes
        match a UDP datagram by its own header, so an unconnected UDP socket's remote end here is
        any of its listed peers (recorded and demo data; the busiest only)."""
        peers = getattr(item, "peers", ())
        rports = (item.rport, *(p.port for p in peers))
        raddrs = (item.raddr, *(p.addr for p in peers))
        checks = (
            self.pid is None or item.pid == self.pid,
            self.comm is None or item.comm == self.comm,
            self.port is None or self.port == item.lport or self.port in rports,
            self.lport is None or item.lport == self.lport,
            self.rport is None or self.rport in rports,
            self.addr is None or self.addr == item.laddr or self.addr in raddrs,
            self.family is None or (6 if ":" in item.laddr else 4) == self.family,
            self.protocol is None or item.protocol.lower() == self.protocol,
            self.cgroup is None or self.cgroup.covers(item.cgroup),
            self.netns is None or item.netns == self.netns.inode,
        )
        return all(checks)

    def narrow(self, snapshot: Snapshot) -> Snapshot:
        """Keep only the sockets and sampled events that match (recorded or demo data, whose path
        histograms were aggregated before any filter and cannot be narrowed)."""
        if not self:
            return snapshot
        return replace(
            snapshot,
            sockets=tuple(s for s in snapshot.sockets if self.matches(s)),
            events=tuple(e for e in snapshot.events if self.matches(e)),
        )
