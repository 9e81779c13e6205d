"""The verdict rules, one by one, on windows built by hand (exact latencies, both probe plans)."""

from __future__ import annotations

import pytest

from tui.bpf.plans import KPROBE_INFO, TRACEPOINT_INFO
from tui.model.filters import Filters
from tui.model.histogram import Histogram
from tui.model.snapshot import PATHS, RECV, SEND, PathStats, PlanInfo, Snapshot, SourceMeta, StageStats
from tui.model.verdict import (
    DEV_PLACEHOLDER,
    MIN_PACKETS,
    PID_PLACEHOLDER,
    RULES,
    command_for,
    overall,
    verdict,
)

US = 1000
FAST = [1 * US] * 100  # a stage well within its usual range


def window(values: dict[tuple[str, str], list[int]], plan: PlanInfo = TRACEPOINT_INFO) -> Snapshot:
    """A window whose stages hold exactly ``values`` (ns); stages not named hold FAST."""
    paths = {}
    for path in PATHS:
        def stats(specs: tuple) -> tuple[StageStats, ...]:
            out = []
            for spec in specs:
                vals = values.get((path, spec.key), [] if spec.total else FAST)  # noqa: B023
                out.append(StageStats(spec, Histogram.from_values(vals), max(vals, default=0)))
            return tuple(out)

        paths[path] = PathStats(path, stats(plan.stages[path]), stats(plan.totals[path]))
    return Snapshot(seq=1, time_s=10.0, meta=SourceMeta("synthetic", "h", "k"), plan=plan, paths=paths)


def plan_with(path: str, key: str) -> PlanInfo:
    return next(p for p in (TRACEPOINT_INFO, KPROBE_INFO) if any(s.key == key for s in p.stages[path]))


def test_every_stage_of_both_plans_has_exactly_one_rule() -> None:
    stages = {(path, s.key) for plan in (TRACEPOINT_INFO, KPROBE_INFO) for path in PATHS
              for s in plan.stages[path]}
    assert set(RULES) == stages


@pytest.mark.parametrize(("path", "key"), sorted(RULES))
def test_a_slow_stage_dominates_its_path_with_its_meaning_and_command(path: str, key: str) -> None:
    rule = RULES[(path, key)]
    slow = [rule.usual_ns * 3] * 50
    v = verdict(window({(path, key): slow}, plan_with(path, key)), None, path)
    assert (v.rule, v.path, v.stage) == ("dominant", path, key)
    assert rule.meaning in v.words and f" of {path} time (mean " in v.words
    assert v.command == command_for(rule, None) and v.command
    assert v.score_ns == pytest.approx(rule.usual_ns * 3, rel=0.07)  # a bucket midpoint


def test_commands_name_the_filtered_interface_and_pid_or_a_placeholder() -> None:
    qdisc, queue = RULES[(SEND, "qdisc")], RULES[(RECV, "sock_queue")]
    assert command_for(qdisc, None) == f"tc -s qdisc show dev {DEV_PLACEHOLDER}"
    assert command_for(qdisc, Filters.parse(iface="veth0")) == "tc -s qdisc show dev veth0"
    assert command_for(RULES[(SEND, "device")], Filters.parse(iface="eth1")) == "ethtool -S eth1"
    assert command_for(queue, None) == f"pidstat -u -w -p {PID_PLACEHOLDER} 1"
    assert command_for(queue, Filters.parse(pid="42")) == "pidstat -u -w -p 42 1"
    v = verdict(window({(SEND, "qdisc"): [12_000 * US] * 20}), None, SEND, Filters.parse(iface="nlv0"))
    assert v.command == "tc -s qdisc show dev nlv0"
    assert v.words == ("qdisc is 100% of send time (mean 12.1ms, p99 12.0ms): "
                       "queue build-up or shaping in the qdisc")


def test_dominant_needs_half_the_path_time() -> None:
    # qdisc is slow, but TCP/IP and the device take as much: none has half the path's time
    both = window({(SEND, "qdisc"): [500 * US] * 50, (SEND, "tcp_ip"): [450 * US] * 50,
                   (SEND, "device"): [100 * US] * 50})
    v = verdict(both, None, SEND)
    assert (v.rule, v.stage) == ("none", None) and v.words.startswith("No stage stands out")


def test_dominant_needs_a_stage_above_its_usual_bound() -> None:
    # 500 us in the socket queue is 99% of the receive path, but a usual wake-up wait (< 1 ms)
    v = verdict(window({(RECV, "sock_queue"): [500 * US] * 50}), None, RECV)
    assert v.rule == "none"


def moved_case(before: list[int] | None = None) -> tuple[Snapshot, Snapshot]:
    """qdisc p99 jumps to 12 ms on 3 packets in 200: its mean share stays under half the path."""
    now = window({(SEND, "qdisc"): [1 * US] * 197 + [12_000 * US] * 3,
                  (SEND, "tcp_ip"): [190 * US] * 200})
    then = window({(SEND, "qdisc"): before if before is not None else [1 * US] * 200,
                   (SEND, "tcp_ip"): [190 * US] * 200})
    return now, then


def test_moved_names_the_stage_whose_p99_rose_most() -> None:
    now, then = moved_case()
    v = verdict(now, then, SEND)
    assert (v.rule, v.stage) == ("moved", "qdisc")
    assert v.words.startswith("qdisc p99 rose ") and "x on the window before (" in v.words
    assert v.command == f"tc -s qdisc show dev {DEV_PLACEHOLDER}"
    assert verdict(now, None, SEND).rule == "none"  # nothing to compare with


def test_moved_picks_the_largest_rise() -> None:
    now = window({(SEND, "qdisc"): [1 * US] * 197 + [2_000 * US] * 3,
                  (SEND, "device"): [1 * US] * 197 + [900 * US] * 3,
                  (SEND, "tcp_ip"): [190 * US] * 200})
    then = window({(SEND, "qdisc"): [1_000 * US] * 200, (SEND, "device"): [1 * US] * 200,
                   (SEND, "tcp_ip"): [190 * US] * 200})
    assert verdict(now, then, SEND).stage == "device"  # 900x beats 2x


def test_moved_needs_enough_packets_before_and_a_real_rise() -> None:
    now, then = moved_case(before=[1 * US] * (MIN_PACKETS - 1))
    assert verdict(now, then, SEND).rule == "none"
    now, then = moved_case(before=[7_000 * US] * 200)  # 12 ms against 7 ms: under 2x
    assert verdict(now, then, SEND).rule == "none"


def test_quiet_when_too_few_packets() -> None:
    few = window({(RECV, k): [5_000 * US] * (MIN_PACKETS - 1)
                  for k in ("backlog", "ip_tcp", "sock_queue", "copy")})
    v = verdict(few, None, RECV)
    assert (v.rule, v.stage, v.command) == ("quiet", None, "")
    assert overall(few, None).rule == "none"  # the send path is judged (and fine)


def test_overall_takes_the_path_with_the_most_time_at_stake() -> None:
    sleepy = window({(RECV, "sock_queue"): [30_000 * US] * 50, (SEND, "qdisc"): [12_000 * US] * 50})
    v = overall(sleepy, None)
    assert (v.path, v.stage) == (RECV, "sock_queue") and v.to_dict()["stage"] == "sock_queue"
    assert overall(window({}), None).words.startswith("No stage stands out")
    empty = window({(p, s.key): [] for p in PATHS for s in TRACEPOINT_INFO.stages[p]})
    assert overall(empty, None).rule == "quiet"
