"""One frame of the dashboard: the figures to show (:class:`View`) and the header (:class:`Status`).

Pure logic, no widgets touched, no clock: :mod:`tui.view.state` keeps the latest cumulative
snapshot, the one before it (for rates) and an optional baseline (the "clear" key), and this module
turns them into immutable values the screens render.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tui.model.filters import Filters
from tui.model.snapshot import PATHS, SEND, PacketEvent, PathStats, Snapshot
from tui.model.timeline import Timeline
from tui.model.verdict import Verdict, verdict


@dataclass(frozen=True, slots=True)
class Status:
    """Everything the header shows (no clock inside)."""

    state: str  #: "loading probes…", "live", "replay", "demo", "paused", "ended", "error: ..."
    path: str
    source: str = ""
    host: str = ""
    kernel: str = ""
    plan: str = ""
    merged: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    pkts_s: dict[str, float] | None = None
    events_s: float = 0.0
    events_lost: int = 0
    #: probe runs the kernel skipped or hooks that lost their state: packets possibly uncounted
    missed: int = 0
    #: sockets refused a row in the socket table (it was full), since start
    sockets_dropped: int = 0
    sockets_max: int = 0  #: the socket table's rows (--max-sockets), 0 unknown
    filters: str = ""
    window_s: float = 0.0  #: seconds the figures really cover
    cleared: bool = False
    #: the window chosen: seconds of a rolling window, None for since start / since clear
    window: float | None = None
    #: what measuring costs over the last tick (tui.model.snapshot.Cost.figures), live source only
    cost: dict[str, float | None] | None = None
    #: what the probes attached, one "hook: symbol (attach type)" each (help screen)
    hooks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class View:
    """One frame of the dashboard."""

    shown: Snapshot  #: figures over the chosen window (or since start / clear)
    current: Snapshot  #: latest cumulative snapshot
    previous: Snapshot | None  #: the cumulative snapshot before it (rates)
    path: str
    stage_key: str  #: the stage or total the histogram shows
    timeline: Timeline | None = None  #: the intervals so far (heatmap, sparklines)
    window: float | None = None  #: the chosen window in seconds (None: since start or clear)
    verdict: Verdict | None = None  #: the verdict line for this path (or the other when it names one)

    @property
    def dt(self) -> float:
        return self.current.time_s - self.previous.time_s if self.previous is not None else 0.0

    def packets_rate(self, path: str) -> float:
        """Packets per second measured on ``path`` between the last two snapshots (0 when unknown)."""
        if self.previous is None or self.dt <= 0 or path not in self.previous.paths:
            return 0.0
        now, old = path_packets(self.current.paths[path]), path_packets(self.previous.paths[path])
        return (now - old) / self.dt if now >= old else 0.0

    def events_rate(self) -> float:
        if self.previous is None or self.dt <= 0:
            return 0.0
        return max(self.current.events_total - self.previous.events_total, 0) / self.dt


def path_packets(stats: PathStats) -> int:
    """Packets measured on a path: its "packets" counter, else the count of its first total."""
    if "packets" in stats.counters:
        return stats.counters["packets"]
    first = stats.totals[0] if stats.totals else (stats.stages[0] if stats.stages else None)
    return first.hist.total if first is not None else 0


def default_stage(snapshot: Snapshot, path: str) -> str:
    """The histogram's default: the path's first total, else its first stage."""
    specs = snapshot.plan.totals.get(path) or snapshot.plan.stages.get(path) or ()
    return specs[0].key if specs else ""


def next_stage(snapshot: Snapshot, path: str, key: str) -> str:
    """The stage after ``key`` in the path's totals-then-stages order (wraps around)."""
    keys = [s.key for s in (*snapshot.plan.totals.get(path, ()), *snapshot.plan.stages.get(path, ()))]
    if not keys:
        return ""
    return keys[(keys.index(key) + 1) % len(keys)] if key in keys else keys[0]


def build_view(
    shown: Snapshot,
    current: Snapshot,
    previous: Snapshot | None,
    path: str = SEND,
    stage_key: str = "",
    timeline: Timeline | None = None,
    window: float | None = None,
    filters: Filters | None = None,
) -> View:
    """The figures to show: ``shown`` (a window of the timeline), ``current`` and ``previous`` for
    rates, and the verdict of the window against the one before it."""
    if not stage_key or not any(s.key == stage_key for s in shown.plan.specs(path)):
        stage_key = default_stage(shown, path)
    return View(shown=shown, current=current, previous=previous, path=path, stage_key=stage_key,
                timeline=timeline, window=window,
                verdict=path_verdict(timeline, window, path, filters) if timeline else None)


def path_verdict(timeline: Timeline, window: float | None, path: str, filters: Filters | None) -> Verdict:
    """The verdict of ``path`` over the window; the other path's when this one has nothing to name
    and the other does (so "where is the latency" is answered whichever path is on screen)."""
    current = timeline.window(window, sockets=False)
    if current is None:
        return Verdict("quiet", path, None, "waiting for data")
    before = timeline.window_before(window, sockets=False) if window is not None else None
    mine = verdict(current, before, path, filters)
    if mine.stage is not None:
        return mine
    others = [verdict(current, before, p, filters) for p in PATHS if p != path and p in current.paths]
    named = [v for v in others if v.stage is not None]
    return named[0] if named else mine


def path_notes(notes: Sequence[str], path: str) -> tuple[str, ...]:
    """The notes that concern ``path``: its own ("send: ...") and those of no path."""
    other = tuple(f"{p}: " for p in PATHS if p != path)
    return tuple(n for n in notes if not n.startswith(other))


def plan_text(snap: Snapshot) -> str:
    """``tracepoint``, or ``tracepoint 1/16`` when sampling."""
    return snap.plan.name + (f" 1/{snap.plan.sample}" if snap.plan.sample > 1 else "")


def build_status(state: str, path: str, view: View | None, filters: str) -> Status:
    """The header's contents for the frame on screen (or just the state before the first one)."""
    if view is None:
        return Status(state=state, path=path, filters=filters)
    snap = view.current
    timeline = view.timeline
    return Status(
        state=state, path=path, source=snap.meta.source, host=snap.meta.host,
        kernel=snap.meta.kernel, plan=plan_text(snap),
        merged=path_notes(snap.plan.merged, path), notes=tuple(snap.meta.notes),
        pkts_s={p: view.packets_rate(p) for p in PATHS if p in snap.paths},
        events_s=view.events_rate(), events_lost=view.shown.events_lost,
        missed=sum(p.counters.get("missed", 0) for p in view.shown.paths.values()),
        sockets_dropped=snap.sockets_dropped, sockets_max=snap.sockets_max,
        filters=filters,
        window_s=timeline.span(view.window) if timeline is not None else snap.time_s,
        cleared=timeline is not None and timeline.cleared, window=view.window,
        cost=tick_cost(view), hooks=hook_texts(snap.plan.hooks),
    )


def tick_cost(view: View) -> dict[str, float | None] | None:
    """The cost figures between the two newest snapshots (the whole run before a second one)."""
    now, before = view.current, view.previous
    if now.cost is None:
        return None
    if before is None or before.cost is None:
        return now.cost.figures(now.packets_seen())
    return now.cost.since(before.cost).figures(now.packets_seen() - before.packets_seen())


def hook_texts(hooks: tuple[tuple[str, str, str], ...]) -> tuple[str, ...]:
    """``tcp_sendmsg: tcp_sendmsg (fentry+fexit)``, one per hooked function or tracepoint."""
    kinds: dict[tuple[str, str], list[str]] = {}
    for hook, symbol, kind in hooks:
        kinds.setdefault((hook, symbol), []).append(kind)
    return tuple(f"{hook}: {symbol} ({'+'.join(k)})" for (hook, symbol), k in kinds.items())


@dataclass(frozen=True, slots=True)
class Frame:
    """What every screen renders at one moment; the app publishes it in one reactive."""

    status: Status
    view: View | None = None  #: None until the first snapshot
    #: sampled packets that arrived since the previous frame (the event log appends them)
    new_events: Sequence[PacketEvent] = ()
    #: sampled packets since start or clear, newest last (the socket drill-down's bars)
    recent_events: Sequence[PacketEvent] = ()
    loading: bool = False  #: the source is still starting
