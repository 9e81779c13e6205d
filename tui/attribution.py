"""Which workload a socket belongs to: cgroup v2 paths and network namespace names, from the host.

The probes give numbers: a cgroup id (the inode of the cgroup's directory in the cgroup2 mount)
and a network namespace inode. This module turns them into names and back: the cgroup2 mount from
/proc/mounts (``/sys/fs/cgroup`` on unified hosts, ``/sys/fs/cgroup/unified`` on hybrid ones), a
cgroup's path from its id by walking that mount (cached, bounded, walked again at most once a
second on a miss), and namespace names from the bind mounts ``ip netns`` keeps in /run/netns.
No textual or bcc import: the live source and the filter parsers use it.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

MOUNTS = "/proc/mounts"
NETNS_DIR = "/run/netns"
#: Directories walked at most when looking a cgroup id up (a busy Kubernetes node has thousands).
MAX_CGROUPS = 20_000
#: An id not seen before walks the mount again, at most this often.
REWALK_S = 1.0
#: An id still unknown after a walk (a cgroup already removed) is not looked for again this long.
FORGET_S = 30.0


class AttributionError(ValueError):
    """A cgroup or namespace that does not exist here; str() is one line."""


def cgroup2_mount(mounts: str | None = None) -> str | None:
    """Where the cgroup v2 hierarchy is mounted (the first cgroup2 line of /proc/mounts), or None."""
    if mounts is None:
        try:
            with open(MOUNTS) as f:
                mounts = f.read()
        except OSError:
            return None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return fields[1].replace("\\040", " ")
    return None


@dataclass(frozen=True, slots=True)
class Cgroup:
    """A cgroup v2 group as a filter needs it."""

    path: str  #: relative to the cgroup2 mount, with a leading "/" ("/" is the root)
    id: int  #: inode of its directory: what bpf_get_current_cgroup_id() and kernfs call its id
    level: int  #: depth below the root (root 0): its index in its descendants' ancestors[]


def _relative(text: str, mount: str) -> str:
    """``text`` as a path below ``mount``: an absolute path inside the mount, else relative to it."""
    text = text.strip()
    if text == mount or text.startswith(mount.rstrip("/") + "/"):
        text = text[len(mount.rstrip("/")):]
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise AttributionError(f"bad cgroup {text!r}: '..' is not allowed")
    return "/" + "/".join(parts)


def resolve_cgroup(text: str, mount: str | None = None) -> Cgroup:
    """The cgroup named by ``text`` (absolute, or relative to the cgroup2 mount); one-line errors."""
    mount = mount or cgroup2_mount()
    if mount is None:
        raise AttributionError("no cgroup2 mount in /proc/mounts: --cgroup needs cgroup v2")
    rel = _relative(text, mount)
    where = os.path.join(mount, rel.lstrip("/"))
    if not os.path.isfile(os.path.join(where, "cgroup.procs")):
        raise AttributionError(f"no cgroup {rel!r} under {mount}")
    level = 0 if rel == "/" else rel.count("/")
    return Cgroup(rel, os.stat(where).st_ino, level)


class CgroupNames:
    """Cgroup id -> path below the cgroup2 mount; walks the mount on a miss (cached, bounded)."""

    def __init__(self, mount: str | None = None, clock=time.monotonic) -> None:
        self.mount = mount if mount is not None else cgroup2_mount()
        self._clock = clock
        self._paths: dict[int, str] = {}
        self._walked_at: float | None = None
        self._missing: dict[int, float] = {}  #: id -> when a walk did not find it

    def path(self, cgroup_id: int) -> str:
        """The path of ``cgroup_id`` ("/system.slice/foo.service"), or "" when unknown."""
        if not cgroup_id or self.mount is None:
            return ""
        found = self._paths.get(cgroup_id)
        if found is not None:
            return found
        now = self._clock()
        missed_at = self._missing.get(cgroup_id)
        if missed_at is not None and now - missed_at < FORGET_S:
            return ""
        if self._walked_at is not None and now - self._walked_at < REWALK_S:
            return ""
        self._walked_at = now
        self._paths = self._walk()
        if cgroup_id in self._paths:
            return self._paths[cgroup_id]
        if len(self._missing) >= MAX_CGROUPS:
            self._missing.clear()
        self._missing[cgroup_id] = now
        return ""

    def _walk(self) -> dict[int, str]:
        assert self.mount is not None
        out: dict[int, str] = {}
        root = self.mount.rstrip("/") or "/"
        for top, dirs, _files in os.walk(root):
            try:
                ino = os.stat(top).st_ino
            except OSError:
                continue
            rel = top[len(root):] if root != "/" else top
            out[ino] = rel or "/"
            if len(out) >= MAX_CGROUPS:
                break
            dirs.sort()
        return out


# ---- network namespaces ----


def netns_names(netns_dir: str = NETNS_DIR) -> dict[int, str]:
    """Namespace inode -> name, for every namespace ``ip netns`` knows (bind mounts in /run/netns)."""
    out: dict[int, str] = {}
    try:
        names = sorted(os.listdir(netns_dir))
    except OSError:
        return out
    for name in names:
        try:
            ino = os.stat(os.path.join(netns_dir, name)).st_ino
        except OSError:
            continue
        out.setdefault(ino, name)
    return out


def netns_inodes() -> set[int]:
    """Every network namespace this host can see: named ones and those of running processes."""
    found = set(netns_names())
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        pids = []
    for pid in pids:
        try:
            found.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
        except OSError:
            continue
    return found


_NETNS_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,255}")


@dataclass(frozen=True, slots=True)
class Netns:
    """A network namespace as a filter needs it."""

    inode: int
    name: str = ""  #: its ``ip netns`` name, "" when it has none


def resolve_netns(text: str) -> Netns:
    """A namespace by ``ip netns`` name, inode number or path (/proc/PID/ns/net, /run/netns/NAME)."""
    text = text.strip()
    names = netns_names()
    if text.isdigit():
        inode = int(text)
        if inode not in names and inode not in netns_inodes():
            raise AttributionError(f"no network namespace with inode {inode}")
        return Netns(inode, names.get(inode, ""))
    if "/" in text:
        try:
            st = os.stat(text)
        except OSError as exc:
            raise AttributionError(f"bad netns {text!r}: {exc.strerror}") from None
        if not os.path.realpath(text).startswith(("/proc/", NETNS_DIR)) and st.st_ino not in names:
            raise AttributionError(f"bad netns {text!r}: not a namespace file (/proc/PID/ns/net, "
                                   f"{NETNS_DIR}/NAME)")
        return Netns(st.st_ino, names.get(st.st_ino, ""))
    if not _NETNS_NAME_RE.fullmatch(text):
        raise AttributionError(f"bad netns {text!r}: a name, an inode number or a path")
    for inode, name in names.items():
        if name == text:
            return Netns(inode, name)
    raise AttributionError(f"no network namespace named {text!r} (ip netns list)")
