"""The record/replay format: lossless round trip and strict, field-naming validation."""

from __future__ import annotations

import copy
import json

import pytest

from tui.model.serialize import (
    FORMAT,
    VERSION,
    SerializeError,
    check_header,
    header,
    snapshot_from_dict,
    snapshot_to_dict,
)
from tui.sources.synthetic import SyntheticSource


@pytest.fixture(scope="module")
def raw() -> dict:
    source = SyntheticSource(seed=3)
    source.start()
    for _ in range(3):
        snap = source.poll()
    return json.loads(json.dumps(snapshot_to_dict(snap)))


def test_round_trip_through_json_is_lossless() -> None:
    source = SyntheticSource(seed=11)
    source.start()
    for _ in range(4):
        snap = source.poll()
        again = snapshot_from_dict(json.loads(json.dumps(snapshot_to_dict(snap))))
        assert again == snap
        queue = again.paths["recv"].get("sock_queue")
        assert queue.hist.total == snap.paths["recv"].get("sock_queue").hist.total > 0


def test_round_trip_keeps_percentiles_and_events(raw: dict) -> None:
    snap = snapshot_from_dict(raw)
    assert snap.seq == 3
    assert snap.events and all(e.stages_ns for e in snap.events)
    send = snap.paths["send"]
    assert send.counters["packets"] == 3 * 400
    # every packet sent lands in exactly one of the three send totals
    assert sum(send.get(k).hist.total for k in ("total", "deferred", "udp_l2")) == 3 * 400


def _buckets(d: dict) -> dict:
    return d["paths"]["send"]["stages"][0]["hist"]["buckets"]


def _broken(raw: dict, mutate) -> dict:
    bad = copy.deepcopy(raw)
    mutate(bad)
    return bad


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("seq"), "snapshot.seq: missing"),
        (lambda d: d.__setitem__("seq", True), "snapshot.seq: expected int, got bool"),
        (lambda d: d.__setitem__("events_lost", -1), "snapshot.events_lost: negative"),
        (lambda d: d.__setitem__("time_s", "soon"), "snapshot.time_s: expected float"),
        (lambda d: d["paths"].pop("recv"), "paths: missing recv"),
        (lambda d: d["paths"]["send"]["stages"][0].__setitem__("key", "bogus"), "is not a stage of the plan"),
        (lambda d: _buckets(d).__setitem__("9999", 1), "bad bucket index"),
        (lambda d: _buckets(d).__setitem__("3", -2), "expected a count"),
        (lambda d: d["sockets"][0].__setitem__("lport", "443"), "sockets[0].lport: expected int"),
        (lambda d: d["events"][0].__setitem__("path", "sideways"), "events[0].path"),
        (lambda d: d["sockets"][0].__setitem__("cgroup_id", -1), "sockets[0].cgroup_id: negative"),
        (lambda d: d["events"][0].__setitem__("netns_name", 7), "events[0].netns_name: expected str"),
        (lambda d: d["plan"].__setitem__("sample", 0), "plan.sample"),
        (lambda d: d["meta"].__setitem__("notes", [1]), "meta.notes"),
    ],
)
def test_bad_fields_are_named(raw: dict, mutate, message: str) -> None:
    with pytest.raises(SerializeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        snapshot_from_dict(_broken(raw, mutate))


def test_header_round_trip_and_rejections() -> None:
    assert check_header(header(0.5)) == 0.5
    with pytest.raises(SerializeError, match="not a netlat-tui recording"):
        check_header({"format": "something-else"})
    with pytest.raises(SerializeError, match="version 99"):
        check_header({"format": FORMAT, "version": 99, "interval_s": 1})
    with pytest.raises(SerializeError, match="interval_s"):
        check_header({"format": FORMAT, "version": VERSION, "interval_s": 0})


def test_a_recording_without_workloads_loads_with_none_known(raw: dict) -> None:
    """Recordings made before sockets carried their cgroup and namespace still replay."""
    old = copy.deepcopy(raw)
    for item in (*old["sockets"], *old["events"]):
        for key in ("cgroup_id", "cgroup", "netns", "netns_name"):
            item.pop(key)
    snap = snapshot_from_dict(old)
    assert snap.sockets and all((s.cgroup, s.cgroup_id, s.netns, s.netns_name) == ("", 0, 0, "")
                                for s in snap.sockets)
    assert snapshot_from_dict(raw).sockets[0].cgroup.startswith("/")
