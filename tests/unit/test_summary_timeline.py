"""The headless JSON's version 2 parts: the timeline of intervals and the verdict (synthetic source)."""

from __future__ import annotations

import json

from tui.cli import build_parser, filters_from_args
from tui.headless import run_headless
from tui.model.snapshot import RECV, SEND
from tui.model.summary import SCHEMA, snapshot_summary
from tui.model.timeline import Timeline
from tui.sources.synthetic import SyntheticSource

TICKS, PER_TICK = 6, 200


def fed_timeline() -> tuple[Timeline, object]:
    source = SyntheticSource(seed=4, interval_s=1.0, packets_per_tick=PER_TICK)
    timeline = Timeline(1.0)
    snaps = [source.poll() for _ in range(TICKS)]
    for snap in snaps:
        timeline.add(snap)
    return timeline, snaps


def test_schema_2_keeps_every_version_1_key_and_adds_the_timeline_and_verdict() -> None:
    timeline, snaps = fed_timeline()
    doc = json.loads(json.dumps(snapshot_summary(snaps[-1], timeline=timeline)))
    assert doc["schema"] == SCHEMA == "netlat-tui/summary/2"
    old = {"schema", "source", "host", "kernel", "filters", "notes", "duration_s", "plan", "paths",
           "sockets", "events"}
    new = {"interval_s", "timeline", "verdict", "verdicts", "groups", "socket_table", "cost"}
    assert old | new == set(doc)
    assert doc["interval_s"] == 1.0
    times = [(i["start_s"], i["end_s"]) for i in doc["timeline"]]
    assert times == [(float(t), t + 1.0) for t in range(TICKS)]
    for n, entry in enumerate(doc["timeline"]):
        delta = snaps[n].since(snaps[n - 1]) if n else snaps[0]
        for path in (SEND, RECV):
            assert set(entry["paths"][path]) == {s.key for s in snaps[0].plan.specs(path)}
            for key, stat in entry["paths"][path].items():
                hist = delta.path(path).get(key).hist
                assert stat["count"] == hist.total
                assert set(stat) == {"count", "p50_us", "p90_us", "p99_us"}
        # every packet of the tick lands in exactly one send total
        send = entry["paths"][SEND]
        assert send["total"]["count"] + send["deferred"]["count"] + send["udp_l2"]["count"] == PER_TICK
    # Totals over the timeline are the document's cumulative counts.
    assert sum(i["paths"][RECV]["e2e"]["count"] for i in doc["timeline"]) == \
        doc["paths"][RECV]["totals"]["e2e"]["count"]


def test_verdict_names_a_stage_or_says_none_stands_out() -> None:
    timeline, snaps = fed_timeline()
    doc = snapshot_summary(snaps[-1], timeline=timeline)
    assert set(doc["verdict"]) == {"rule", "path", "stage", "words", "command"}
    assert set(doc["verdicts"]) == {SEND, RECV}
    # The synthetic receive path waits about 30-45 us in the socket queue: a usual wake-up wait.
    assert doc["verdict"]["rule"] == "none" and doc["verdict"]["words"].startswith("No stage stands out")
    # Without a timeline the document still has the keys (an empty timeline, a verdict on the whole).
    plain = snapshot_summary(snaps[-1])
    assert plain["timeline"] == [] and plain["interval_s"] is None and plain["verdict"]["rule"] == "none"


def test_headless_interval_sets_the_timeline_interval(capsys) -> None:
    args = build_parser().parse_args(
        ["--synthetic", "--headless", "--json", "--duration", "0.6", "--interval", "0.2"])
    args.filters = filters_from_args(args)
    assert run_headless(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == SCHEMA and doc["interval_s"] == 0.2
    # One interval per poll (three in 0.6 s) plus the final poll, each 0.2 s of synthetic time.
    assert len(doc["timeline"]) in (3, 4, 5)
    assert all(abs(i["end_s"] - i["start_s"] - 0.2) < 1e-6 for i in doc["timeline"])
    assert doc["timeline"][-1]["end_s"] == doc["duration_s"]


def test_headless_text_ends_with_the_verdict(capsys) -> None:
    args = build_parser().parse_args(["--synthetic", "--headless", "--duration", "0.2", "--interval", "0.1"])
    args.filters = filters_from_args(args)
    assert run_headless(args) == 0
    out = capsys.readouterr().out
    assert "\nverdict: No stage stands out" in out


def test_every_socket_is_listed_unless_top_cuts_it_and_the_table_counts_are_given() -> None:
    from dataclasses import replace

    _timeline, snaps = fed_timeline()
    snap = replace(snaps[-1], sockets_seen=40, sockets_dropped=2, sockets_max=64)
    doc = snapshot_summary(snap)
    assert len(doc["sockets"]) == len(snap.sockets) > 3
    assert doc["socket_table"] == {"listed": len(snap.sockets), "rows": len(snap.sockets), "seen": 40,
                                   "dropped": 2, "max": 64}
    top = snapshot_summary(snap, top=3)
    assert [s["local"] for s in top["sockets"]] == [s["local"] for s in doc["sockets"][:3]]
    assert top["socket_table"]["listed"] == 3


def test_a_udp_socket_lists_its_peers_in_the_json() -> None:
    source = SyntheticSource(seed=3)
    source.start()
    for _ in range(3):
        snap = source.poll()
    doc = json.loads(json.dumps(snapshot_summary(snap)))
    udp = next(s for s in doc["sockets"] if s["protocol"] == "UDP")
    assert udp["peer_count"] == 14 and udp["peer_drops"] == 0 and len(udp["peers"]) == 10
    assert udp["peers"][0]["peer"] == "10.0.0.10:30000" and udp["peers"][0]["rx_mean_us"] > 0
    assert all("peers" not in s for s in doc["sockets"] if s["protocol"] == "TCP")
