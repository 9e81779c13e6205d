"""Cgroup and network namespace names and filters, on fake mounts and this host's own namespaces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tui import attribution
from tui.attribution import AttributionError, CgroupNames, cgroup2_mount, netns_names, resolve_cgroup
from tui.bpf.btf import BtfError
from tui.bpf.program import check_workload_filters
from tui.model.filters import CgroupFilter, FilterError, Filters, NetnsFilter

HYBRID = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
UNIFIED = "proc /proc proc rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec 0 0\n"


def test_the_cgroup2_mount_is_found_on_hybrid_and_unified_hosts() -> None:
    assert cgroup2_mount(HYBRID) == "/sys/fs/cgroup/unified"
    assert cgroup2_mount(UNIFIED) == "/sys/fs/cgroup"
    assert cgroup2_mount("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n") is None


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    """A fake cgroup2 mount: the root, system.slice/nginx.service and a deeper group."""
    for sub in ("", "system.slice", "system.slice/nginx.service", "system.slice/nginx.service/w"):
        (tmp_path / sub).mkdir(exist_ok=True)
        (tmp_path / sub / "cgroup.procs").write_text("")
    return tmp_path


@pytest.mark.parametrize("text", ["system.slice/nginx.service", "/system.slice/nginx.service",
                                  "system.slice//nginx.service/", "./system.slice/nginx.service"])
def test_a_cgroup_resolves_relative_to_the_mount(mount: Path, text: str) -> None:
    group = resolve_cgroup(text, str(mount))
    assert group.path == "/system.slice/nginx.service"
    assert group.id == os.stat(mount / "system.slice/nginx.service").st_ino
    assert group.level == 2


def test_an_absolute_path_inside_the_mount_and_the_root(mount: Path) -> None:
    assert resolve_cgroup(str(mount / "system.slice"), str(mount)).path == "/system.slice"
    root = resolve_cgroup("/", str(mount))
    assert (root.path, root.level, root.id) == ("/", 0, os.stat(mount).st_ino)


@pytest.mark.parametrize(("text", "message"), [
    ("nope.slice", "no cgroup '/nope.slice' under"),
    ("system.slice/../..", "'..' is not allowed"),
])
def test_unknown_or_escaping_cgroups_are_one_line_errors(mount: Path, text: str, message: str) -> None:
    with pytest.raises(AttributionError) as err:
        resolve_cgroup(text, str(mount))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cgroup_names_walk_once_and_forget_ids_that_are_gone(mount: Path) -> None:
    clock = [100.0]
    names = CgroupNames(str(mount), clock=lambda: clock[0])
    deep = os.stat(mount / "system.slice/nginx.service/w").st_ino
    assert names.path(deep) == "/system.slice/nginx.service/w"
    assert names.path(os.stat(mount).st_ino) == "/"
    assert names.path(0) == ""
    walks = []
    names._walk = lambda: walks.append(1) or {}  # type: ignore[method-assign]
    clock[0] += attribution.REWALK_S
    assert names.path(12345678) == ""  # unknown: one walk
    clock[0] += attribution.REWALK_S
    assert names.path(12345678) == ""  # still gone: not walked again before FORGET_S
    assert len(walks) == 1


def test_netns_names_are_the_inodes_of_the_bind_mounts(tmp_path: Path) -> None:
    (tmp_path / "blue").write_text("")
    assert netns_names(str(tmp_path)) == {os.stat(tmp_path / "blue").st_ino: "blue"}
    assert netns_names(str(tmp_path / "missing")) == {}


def test_netns_of_this_process_by_path_and_inode() -> None:
    inode = os.stat("/proc/self/ns/net").st_ino
    assert Filters.parse(netns="/proc/self/ns/net").netns.inode == inode
    assert Filters.parse(netns=str(inode)).netns.inode == inode


@pytest.mark.parametrize(("raw", "message"), [
    ({"netns": "no-such-ns-here"}, "no network namespace named 'no-such-ns-here'"),
    ({"netns": "7"}, "no network namespace with inode 7"),
    ({"netns": "a b"}, "bad netns"),
    ({"netns": "/nonexistent/ns"}, "bad netns"),
    ({"cgroup": "no-such-group-here/x"}, "no cgroup"),
])
def test_unknown_namespaces_and_groups_are_one_line_filter_errors(raw: dict[str, str], message: str) -> None:
    if "cgroup" in raw and cgroup2_mount() is None:
        message = "no cgroup2 mount"
    with pytest.raises(FilterError) as err:
        Filters.parse(**raw)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cgroup_and_netns_describe_themselves_by_path_and_name() -> None:
    f = Filters(cgroup=CgroupFilter("/a/b", 4242, 2), netns=NetnsFilter(4026531840, "blue"))
    assert f.describe() == "cgroup=/a/b netns=blue"
    assert str(NetnsFilter(4026531840)) == "4026531840"


def test_a_kernel_without_the_socket_cgroup_refuses_the_cgroup_filter() -> None:
    f = Filters(cgroup=CgroupFilter("/a", 7, 1))
    with pytest.raises(BtfError, match=r"--cgroup needs sock\.sk_cgrp_data"):
        check_workload_filters(f, {"sock_common.skc_net": 48, "net.ns.inum": 176})
    check_workload_filters(Filters(netns=NetnsFilter(1)), {"sock_common.skc_net": 48, "net.ns.inum": 176})


def test_recorded_sockets_match_a_group_and_its_descendants_only() -> None:
    from tui.model.snapshot import SocketStats

    def sock(cgroup: str, netns: int = 1) -> SocketStats:
        return SocketStats(key=1, pid=1, comm="x", protocol="TCP", family=4, laddr="10.0.0.1", lport=1,
                           raddr="10.0.0.2", rport=2, cgroup=cgroup, netns=netns)

    f = Filters(cgroup=CgroupFilter("/system.slice", 1, 1))
    assert f.matches(sock("/system.slice")) and f.matches(sock("/system.slice/a.service"))
    assert not f.matches(sock("/system.slice2")) and not f.matches(sock("/user.slice"))
    assert Filters(cgroup=CgroupFilter("/", 1, 0)).matches(sock("/user.slice"))
    assert not Filters(netns=NetnsFilter(5)).matches(sock("/", netns=6))
