"""Workload attribution on the real kernel: cgroups and network namespaces the tests create.

Servers and clients of tests/kernel/netns.py run inside cgroups made here under the cgroup2 mount
(found in /proc/mounts: /sys/fs/cgroup/unified on this hybrid host) and, for namespaces, on both
ends of a veth pair. Each socket must name its own group and namespace, and each filter must keep
exactly its group's packets on both paths, descendants included. Several probe sets with different
filters are attached at once and watch the same traffic.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
from netns import VethPair, run_pair  # tests/kernel is on sys.path (rootdir-less test dir)
from test_probes import assert_counted, count, free_port

from tui.attribution import cgroup2_mount
from tui.model.filters import Filters
from tui.model.snapshot import RECV, SEND, Snapshot
from tui.sources.live import LiveSource

pytestmark = pytest.mark.kernel

N = 150
NETNS_SCRIPT = os.path.join(os.path.dirname(__file__), "netns.py")


@dataclass
class Tree:
    """``/<tag>`` with ``a``, ``a/inner`` and ``b`` below it, under the cgroup2 mount."""

    mount: str
    tag: str

    def rel(self, sub: str = "") -> str:
        return f"/{self.tag}" + (f"/{sub}" if sub else "")

    def dir(self, sub: str = "") -> str:
        return os.path.join(self.mount, self.rel(sub).lstrip("/"))

    def id(self, sub: str = "") -> int:
        return os.stat(self.dir(sub)).st_ino


@pytest.fixture
def tree() -> Iterator[Tree]:
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 mount")
    t = Tree(mount, f"nlt{os.getpid() % 100000}")
    for sub in ("", "a", "a/inner", "b"):
        os.mkdir(t.dir(sub))
    try:
        yield t
    finally:
        for sub in ("a/inner", "a", "b", ""):
            deadline = time.monotonic() + 10
            while os.path.isdir(t.dir(sub)):
                try:
                    os.rmdir(t.dir(sub))
                except OSError:  # a process of ours still exiting
                    assert time.monotonic() < deadline, f"cgroup {t.rel(sub)} left behind"
                    time.sleep(0.05)


class InCgroups:
    """Runs netns.py's server and client (``run_pair``) each in its cgroup, joined before exec so
    every socket is made there; namespaces through ``ip netns exec`` as VethPair.popen does."""

    def __init__(self, server_cgroup: str, client_cgroup: str) -> None:
        self.dirs = {"server": server_cgroup, "client": client_cgroup}

    def popen(self, ns: str | None, *args: str) -> subprocess.Popen[str]:
        cmd = [sys.executable, NETNS_SCRIPT, *args]
        if ns is not None:
            cmd = [shutil.which("ip") or "ip", "netns", "exec", ns, *cmd]
        return in_cgroup(self.dirs[args[0]], cmd)


def in_cgroup(cgroup_dir: str, cmd: list[str]) -> subprocess.Popen[str]:
    """``cmd`` started inside ``cgroup_dir`` (joined between fork and exec)."""
    procs = os.path.join(cgroup_dir, "cgroup.procs")

    def join() -> None:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=join)


def exchange(server_cg: str, client_cg: str, bind: str, n: int, port: int,
             server_ns: str | None = None, client_ns: str | None = None) -> None:
    """``n`` TCP request/response exchanges, server and client each in its cgroup (and namespace)."""
    run_pair(server_ns, client_ns, bind, n, 64, pair=InCgroups(server_cg, client_cg),  # type: ignore[arg-type]
             port=port)


def attached(stack: ExitStack, **filters: str) -> LiveSource:
    source = LiveSource(filters=Filters.parse(**filters))
    source.start()
    stack.callback(source.close)
    return source


def figures(snap: Snapshot) -> dict[str, int]:
    return {"send total": count(snap, SEND, "total"), "recv e2e": count(snap, RECV, "e2e"),
            "recv stack": count(snap, RECV, "stack")}


def test_each_socket_and_sampled_packet_names_its_cgroup_and_namespace(tree: Tree) -> None:
    port = free_port()
    with VethPair() as pair, ExitStack() as stack:
        source = attached(stack, port=str(port))
        exchange(tree.dir("a/inner"), tree.dir("b"), pair.ip_a, N, port,
                 server_ns=pair.ns_a, client_ns=pair.ns_b)
        snap = source.poll()
        ns_a = os.stat(f"/run/netns/{pair.ns_a}").st_ino
        ns_b = os.stat(f"/run/netns/{pair.ns_b}").st_ino
    ours = {("server" if s.lport == port else "client"): s
            for s in snap.sockets if port in (s.lport, s.rport)}
    assert set(ours) == {"server", "client"}
    server, client = ours["server"], ours["client"]
    assert (server.cgroup, server.cgroup_id) == (tree.rel("a/inner"), tree.id("a/inner"))
    assert (server.netns, server.netns_name) == (ns_a, pair.ns_a)
    assert (client.cgroup, client.cgroup_id) == (tree.rel("b"), tree.id("b"))
    assert (client.netns, client.netns_name) == (ns_b, pair.ns_b)
    assert (server.tx_packets, server.rx_packets) == (client.tx_packets, client.rx_packets) == (N, N)
    # sampled packets carry their socket's group, also those received in softirq
    events = [e for e in snap.events if port in (e.lport, e.rport) and not e.deferred]
    assert len(events) >= N
    for e in events:
        mine = server if e.lport == port else client
        assert (e.cgroup, e.netns, e.netns_name) == (mine.cgroup, mine.netns, mine.netns_name), e


def test_cgroup_filters_keep_exactly_their_groups_packets_with_descendants(tree: Tree) -> None:
    """Server in a/inner and client in b on one connection; a second connection all in b."""
    m = N // 3
    with ExitStack() as stack:
        sources = {sub: attached(stack, cgroup=tree.dir(sub) if sub == "a" else tree.rel(sub))
                   for sub in ("", "a", "a/inner", "b")}
        exchange(tree.dir("a/inner"), tree.dir("b"), "127.0.0.1", N, free_port())
        exchange(tree.dir("b"), tree.dir("b"), "127.0.0.1", m, free_port())
        snaps = {sub: source.poll() for sub, source in sources.items()}
    expected = {
        "": 2 * N + 2 * m,  # the whole tree: both ends of both connections
        "a": N,  # only a/inner's server: its responses sent, its requests read
        "a/inner": N,
        "b": N + 2 * m,  # the first connection's client, both ends of the second
    }
    servers = {"": 2, "a": 1, "a/inner": 1, "b": 1}
    for sub, snap in snaps.items():
        got = figures(snap)
        print(f"--cgroup {tree.rel(sub)}: {got}, expected {expected[sub]} each")
        for key in ("total", "tcp_ip", "qdisc", "device"):
            assert_counted(snap, SEND, key, expected[sub])
        for key in ("sock_queue", "copy", "e2e"):
            assert_counted(snap, RECV, key, expected[sub])
        # Up to the socket: recorded in the receive softirq, which on loopback runs in the
        # SENDER's task (b's client for a's server): only the socket's own group can get these
        # right. A server also gets its client's FIN (queued, never read).
        assert_counted(snap, RECV, "stack", expected[sub] + servers[sub])
        assert snap.sockets
        assert all(s.cgroup == tree.rel(sub) or s.cgroup.startswith(tree.rel(sub) + "/")
                   for s in snap.sockets), [s.cgroup for s in snap.sockets]
    assert {s.cgroup for s in snaps["a"].sockets} == {tree.rel("a/inner")}
    assert snaps[""].meta.filters == f"cgroup={tree.rel()}"


def test_netns_filters_by_name_inode_and_path_keep_exactly_their_namespace(tree: Tree) -> None:
    port, host_port = free_port(), free_port()
    m = N // 3
    with VethPair() as pair, ExitStack() as stack:
        ns_b = os.stat(f"/run/netns/{pair.ns_b}").st_ino
        by_name = attached(stack, netns=pair.ns_a)
        by_inode = attached(stack, netns=str(ns_b))
        # the host namespace has other traffic: narrowed to this test's port
        by_path = attached(stack, netns="/proc/self/ns/net", port=str(host_port))
        exchange(tree.dir("a"), tree.dir("b"), pair.ip_a, N, port, server_ns=pair.ns_a, client_ns=pair.ns_b)
        exchange(tree.dir("a"), tree.dir("b"), "127.0.0.1", m, host_port)
        snaps = {"name": by_name.poll(), "inode": by_inode.poll(), "path": by_path.poll()}
    host = os.stat("/proc/self/ns/net").st_ino
    expected = {"name": (N, pair.ns_a), "inode": (N, pair.ns_b), "path": (2 * m, "")}
    for how, (n, name) in expected.items():
        snap = snaps[how]
        print(f"--netns by {how}: {figures(snap)}, expected {n} each")
        assert_counted(snap, SEND, "total", n)
        assert_counted(snap, RECV, "e2e", n)
        assert snap.sockets and all(s.netns_name == name for s in snap.sockets)
    assert all(s.netns == host for s in snaps["path"].sockets)
    assert all(s.netns == ns_b for s in snaps["inode"].sockets)


UDP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
for _ in range(int(sys.argv[1])):
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
"""
UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[2])):
    s.sendto(b"u" * 64, ("127.0.0.1", int(sys.argv[1])))
    s.recvfrom(2048)
"""


def test_cgroup_filters_keep_exactly_their_groups_udp_datagrams(tree: Tree) -> None:
    """UDP request/response, server in a/inner, client in b: each side's datagrams, both paths."""
    with ExitStack() as stack:
        sources = {sub: attached(stack, cgroup=tree.rel(sub)) for sub in ("", "a", "b")}
        server = in_cgroup(tree.dir("a/inner"), [sys.executable, "-c", UDP_SERVER, str(N)])
        try:
            assert server.stdout is not None
            port = server.stdout.readline().strip()
            client = in_cgroup(tree.dir("b"), [sys.executable, "-c", UDP_CLIENT, port, str(N)])
            assert client.wait(timeout=60) == 0, client.stderr.read() if client.stderr else ""
            assert server.wait(timeout=60) == 0
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
        snaps = {sub: source.poll() for sub, source in sources.items()}
    for sub, n in (("", 2 * N), ("a", N), ("b", N)):
        snap = snaps[sub]
        print(f"--cgroup {tree.rel(sub)} (UDP): udp_l2 {count(snap, SEND, 'udp_l2')}, "
              f"udp_e2e {count(snap, RECV, 'udp_e2e')}, expected {n} each")
        assert_counted(snap, SEND, "udp_l2", n)
        assert_counted(snap, RECV, "udp_e2e", n)
        assert count(snap, SEND, "total") == 0
        ours = [s for s in snap.sockets if s.protocol == "UDP"]
        assert sum(s.tx_packets for s in ours) == sum(s.rx_packets for s in ours) == n


def test_exporter_labels_each_workload_with_its_own_sockets_traffic(tree: Tree) -> None:
    """--metrics-by cgroup: the server's group and the client's each get their own series, with
    exactly the packets their sockets sent and read (the test's own exchanges)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from tui.exporter.collector import SnapshotCollector

    port = free_port()
    collector = SnapshotCollector(cgroup_limit=10)
    with ExitStack() as stack:
        source = attached(stack, port=str(port))
        exchange(tree.dir("a/inner"), tree.dir("b"), "127.0.0.1", N, port)
        collector.publish(source.poll())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    got = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        if family.name == "netlat_cgroup_packets":
            got.update({(s.labels["path"], s.labels["cgroup"], s.labels["workload"]): s.value
                        for s in family.samples})
    inner, b = tree.rel("a/inner"), tree.rel("b")
    assert got == {("send", inner, "inner"): N, ("recv", inner, "inner"): N,
                   ("send", b, "b"): N, ("recv", b, "b"): N}, got
