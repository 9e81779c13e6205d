"""Workload short names, sockets summed per cgroup, and the same in the JSON document."""

from __future__ import annotations

import json

import pytest

from tui.model.groups import UNKNOWN, group_sockets, short_name
from tui.model.snapshot import RECV, SEND
from tui.model.summary import snapshot_summary
from tui.sources.synthetic import SyntheticSource

DOCKER_ID = "0123456789abcdef" * 4


@pytest.mark.parametrize(("path", "name"), [
    (f"/system.slice/docker-{DOCKER_ID}.scope", "docker:0123456789ab"),
    (f"/docker/{DOCKER_ID}", "docker:0123456789ab"),
    ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234abcd_5678_90ab.slice/"
     "cri-containerd-abcdefabcdef0011223344.scope", "cri:abcdefabcdef"),
    ("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234abcd_5678.slice", "pod:1234abcd"),
    (f"/kubepods/burstable/pod1234abcd-5678/{DOCKER_ID}", "ctr:0123456789ab"),
    (f"/machine.slice/libpod-{DOCKER_ID}.scope", "podman:0123456789ab"),
    ("/system.slice/nginx.service", "nginx.service"),
    ("/system.slice/nginx.service/worker", "nginx.service"),
    ("/user.slice/user-1000.slice/session-3.scope", "session-3.scope"),
    ("/pod1234abcd", "pod1234abcd"),  # not under kubepods: just a name
    ("/", "/"),
    ("", UNKNOWN),
])
def test_short_names_say_the_container_pod_or_unit(path: str, name: str) -> None:
    assert short_name(path) == name


def _snapshot():
    source = SyntheticSource(seed=5)
    source.start()
    for _ in range(3):
        snap = source.poll()
    return snap


def test_groups_sum_their_sockets_exactly() -> None:
    snap = _snapshot()
    groups = group_sockets(snap.sockets)
    assert sum(g.sockets for g in groups) == len(snap.sockets)
    assert len(groups) == len({s.cgroup for s in snap.sockets})
    for g in groups:
        mine = [s for s in snap.sockets if s.cgroup == g.key]
        assert g.packets(SEND) == sum(s.tx_packets for s in mine)
        assert g.bytes(RECV) == sum(s.rx_bytes for s in mine)
        assert g.hist(SEND).total == sum(s.send_hist.total for s in mine)
        assert g.name == short_name(g.key)
    busy = [g.packets(SEND) + g.packets(RECV) for g in groups]
    assert busy == sorted(busy, reverse=True)
    nginx = next(g for g in groups if g.name == "nginx.service")
    assert nginx.sockets == 2 and nginx.netns == ("4026531840",)


def test_the_json_names_each_sockets_group_and_namespace_and_sums_per_group() -> None:
    snap = _snapshot()
    doc = json.loads(json.dumps(snapshot_summary(snap, duration_s=2.0)))
    by_port = {s["local"]: s for s in doc["sockets"]}
    pg = by_port["[::1]:5432"]
    assert pg["workload"] == "cri:9b8a7c6d5e4f" and pg["cgroup"].startswith("/kubepods.slice/")
    assert pg["netns_name"].startswith("cni-") and pg["netns"] == 4026532417
    assert pg["cgroup_id"] == 2303
    assert {g["workload"] for g in doc["groups"]} == {"nginx.service", "docker:3f2a9c1e7b5d",
                                                       "cri:9b8a7c6d5e4f", "pod:5e6f7a8b"}
    nginx = next(g for g in doc["groups"] if g["workload"] == "nginx.service")
    assert nginx["sockets"] == 2
    assert nginx["tx_packets"] == sum(s["tx_packets"] for s in doc["sockets"] if s["comm"] == "nginx")
    assert nginx["tx_packets_s"] == round(nginx["tx_packets"] / 2.0, 3)
    assert nginx["recv"]["count"] > 0 and nginx["recv"]["p99_us"] is not None
