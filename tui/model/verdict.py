"""The verdict line: the stage to look at, in plain words, with what it usually means and what to run.

Deterministic rules over two windows of the timeline (the current one and the one before it), tried
in this order on one path:

1. ``quiet``: no stage counted MIN_PACKETS packets in the current window: nothing to judge.
2. ``dominant``: the stage holding the largest share of the path's time (stage means; a packet
   crosses every stage once) when that share is at least DOMINANT_SHARE and its mean is above the
   stage's usual bound (``usual_ns`` in RULES): "qdisc is 97% of send time (mean ...): ...".
3. ``moved``: the stage whose p99 rose most against the window before, by at least MOVED_RATIO,
   to above its usual bound (both windows with MIN_PACKETS packets or more).
4. ``none``: "No stage stands out".

Only stages are judged, not totals (a total spans several stages). Every stage key of both probe
plans (tui.bpf.plans: tracepoint and kprobe; the synthetic source uses the tracepoint plan's) has
one row in RULES, keyed by (path, stage key): "ip" and "tcp" mean different things on each path.
:func:`overall` picks one verdict for both paths (the headless JSON's ``verdict``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tui.model.filters import Filters
from tui.model.snapshot import PATHS, RECV, SEND, Snapshot, StageStats

#: A stage with fewer packets in a window is not judged (its p99 would be its maximum).
MIN_PACKETS = 10
#: A stage dominates when its mean is at least this share of the sum of the path's stage means.
DOMINANT_SHARE = 0.5
#: A stage moved when its p99 is at least this many times the window before's.
MOVED_RATIO = 2.0
#: Longest meaning + command of a rule (see RULES).
MEANING_MAX = 84
#: What a command shows where the filter does not name an interface or a process.
DEV_PLACEHOLDER = "<dev>"
PID_PLACEHOLDER = "<pid>"


@dataclass(frozen=True, slots=True)
class StageRule:
    """What a slow stage usually means and the command to run next."""

    meaning: str
    command: str  #: ``{dev}`` and ``{pid}`` are filled from the filters, else placeholders
    usual_ns: int  #: a stage whose mean (dominant) or p99 (moved) stays below this never stands out


#: One row per (path, stage key) of every plan. The usual bounds are generous on purpose: a
#: verdict should name a stage only when a person would call it slow. A meaning and its command
#: stay within MEANING_MAX characters together, so the verdict line fits two lines of 80 columns.
RULES: dict[tuple[str, str], StageRule] = {
    (SEND, "tcp_ip"): StageRule(
        "netfilter, routing or send-buffer waits", "ss -tmi; nft list ruleset", 200_000),
    (SEND, "tcp"): StageRule(
        "send-buffer or congestion-window waits, Nagle or corking", "ss -tmi", 200_000),
    (SEND, "ip"): StageRule("netfilter rules or routing", "nft list ruleset; ip route", 100_000),
    (SEND, "qdisc"): StageRule(
        "queue build-up or shaping in the qdisc", "tc -s qdisc show dev {dev}", 100_000),
    (SEND, "device"): StageRule(
        "the driver or the NIC's transmit ring", "ethtool -S {dev}", 100_000),
    (RECV, "backlog"): StageRule(
        "softirq or RPS load: packets wait in the per-CPU backlog", "mpstat -I SCPU 1", 200_000),
    (RECV, "ip_tcp"): StageRule(
        "netfilter, routing, or a socket its reader holds locked", "nft list ruleset", 200_000),
    (RECV, "ip"): StageRule("netfilter rules or routing", "nft list ruleset", 200_000),
    (RECV, "tcp"): StageRule(
        "socket locked by its reader, or memory pressure",
        "nstat -az | grep -iE 'backlog|prune'", 200_000),
    (RECV, "sock_queue"): StageRule(
        "the application reads late (the reader's CPU or scheduling)",
        "pidstat -u -w -p {pid} 1", 1_000_000),
    (RECV, "copy"): StageRule(
        "large reads, page faults or memory pressure in the reader",
        "pidstat -r -p {pid} 1", 200_000),
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """One line of triage: which stage, why, and what to run next."""

    rule: str  #: "dominant", "moved", "none" or "quiet"
    path: str
    stage: str | None  #: stage key, None for "none"/"quiet"
    words: str  #: the sentence shown (starts with the stage's label, or "No stage stands out")
    command: str = ""  #: the command to run next, "" for "none"/"quiet"
    score_ns: float = 0.0  #: time at stake (dominant: mean; moved: p99 rise); orders paths in overall()

    def to_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "path": self.path, "stage": self.stage, "words": self.words,
                "command": self.command}


def command_for(rule: StageRule, filters: Filters | None) -> str:
    """The rule's command with the filter's interface and pid, or placeholders."""
    f = filters or Filters()
    return rule.command.format(dev=f.iface or DEV_PLACEHOLDER,
                               pid=f.pid if f.pid is not None else PID_PLACEHOLDER)


def _p99(stats: StageStats) -> float:
    ns = stats.hist.percentile(99) or 0.0
    return min(ns, stats.max_ns) if stats.max_ns else ns


def _fmt(ns: float) -> str:
    """``850ns``, ``12.1us``, ``3.40ms``, ``1.20s``: three significant digits (as the widgets)."""
    for unit, size in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= size:
            value = ns / size
            return f"{value:.{2 if value < 10 else 1 if value < 100 else 0}f}{unit}"
    return f"{ns:.0f}ns"


def verdict(
    current: Snapshot, previous: Snapshot | None, path: str, filters: Filters | None = None
) -> Verdict:
    """The verdict for ``path`` over ``current`` (a window), compared with ``previous`` (the window
    before it, or None)."""
    stats = current.paths.get(path)
    judged = [s for s in (stats.stages if stats else ()) if (path, s.spec.key) in RULES
              and s.hist.total >= MIN_PACKETS]
    if not judged:
        return Verdict("quiet", path, None,
                       f"Too few packets on {path} to judge (under {MIN_PACKETS} in every stage)")
    means = {s.spec.key: s.hist.mean() or 0.0 for s in judged}
    share_of = sum(means.values()) or 1.0
    top = max(judged, key=lambda s: means[s.spec.key])  # first in packet order on a tie
    rule = RULES[(path, top.spec.key)]
    mean = means[top.spec.key]
    if mean / share_of >= DOMINANT_SHARE and mean >= rule.usual_ns:
        words = (f"{top.spec.label} is {mean / share_of:.0%} of {path} time "
                 f"(mean {_fmt(mean)}, p99 {_fmt(_p99(top))}): {rule.meaning}")
        return Verdict("dominant", path, top.spec.key, words, command_for(rule, filters), mean)
    moved = _moved(judged, previous, path)
    if moved is not None:
        stage, old, new = moved
        rule = RULES[(path, stage.spec.key)]
        words = (f"{stage.spec.label} p99 rose {new / old:.1f}x on the window before "
                 f"({_fmt(old)} -> {_fmt(new)}): {rule.meaning}")
        return Verdict("moved", path, stage.spec.key, words, command_for(rule, filters), new - old)
    return Verdict("none", path, None,
                   f"No stage stands out on {path}: each is within its usual range")


def _moved(
    judged: list[StageStats], previous: Snapshot | None, path: str
) -> tuple[StageStats, float, float] | None:
    """The stage whose p99 rose most (ratio) to above its usual bound, with its old and new p99."""
    old_path = previous.paths.get(path) if previous is not None else None
    if old_path is None:
        return None
    best: tuple[float, StageStats, float, float] | None = None
    for stage in judged:
        old_stats = old_path.get(stage.spec.key)
        if old_stats is None or old_stats.hist.total < MIN_PACKETS:
            continue
        old, new = max(_p99(old_stats), 1.0), _p99(stage)
        ratio = new / old
        if ratio >= MOVED_RATIO and new >= RULES[(path, stage.spec.key)].usual_ns and (
                best is None or ratio > best[0]):
            best = (ratio, stage, old, new)
    return None if best is None else best[1:]


def overall(current: Snapshot, previous: Snapshot | None, filters: Filters | None = None) -> Verdict:
    """One verdict for both paths: the stage with the most time at stake (``score_ns``); else
    "none" for the first judged path; else "quiet"."""
    each = [verdict(current, previous, p, filters) for p in PATHS if p in current.paths]
    named = [v for v in each if v.stage is not None]
    if named:
        return max(named, key=lambda v: v.score_ns)  # the first path on a tie
    judged = [v for v in each if v.rule == "none"]
    if judged:
        return Verdict("none", judged[0].path, None,
                       "No stage stands out: each is within its usual range")
    return Verdict("quiet", each[0].path if each else SEND, None,
                   f"Too few packets to judge (under {MIN_PACKETS} in every stage)")
