"""One frame of the dashboard: the figures to show (:class:`View`) and the header (:class:`Status`).

Pure logic, no widgets touched, no clock: :mod:`tui.view.state` keeps the latest cumulative
snapshot, the one before it (for rates) and an optional baseline (the "clear" key), and this module
turns them into immutable values the screens render.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tui.model.snapshot import PATHS, SEND, PacketEvent, PathStats, Snapshot


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
    filters: str = ""
    window_s: float = 0.0  #: seconds covered by the figures (since start or since clear)
    cleared: bool = False


@dataclass(frozen=True, slots=True)
class View:
    """One frame of the dashboard."""

    shown: Snapshot  #: figures since start or since clear, view filters applied
    current: Snapshot  #: latest cumulative snapshot
    previous: Snapshot | None  #: the cumulative snapshot before it (rates)
    path: str
    stage_key: str  #: the stage or total the histogram shows

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
    current: Snapshot,
    previous: Snapshot | None,
    baseline: Snapshot | None,
    path: str = SEND,
    stage_key: str = "",
) -> View:
    """The figures to show: ``current`` since ``baseline``."""
    shown = current.since(baseline) if baseline is not None else current
    if not stage_key or not any(s.key == stage_key for s in shown.plan.specs(path)):
        stage_key = default_stage(shown, path)
    return View(shown=shown, current=current, previous=previous, path=path, stage_key=stage_key)


def plan_text(snap: Snapshot) -> str:
    """``tracepoint``, or ``tracepoint 1/16`` when sampling."""
    return snap.plan.name + (f" 1/{snap.plan.sample}" if snap.plan.sample > 1 else "")


def build_status(
    state: str, path: str, view: View | None, baseline: Snapshot | None, filters: str
) -> Status:
    """The header's contents for the frame on screen (or just the state before the first one)."""
    if view is None:
        return Status(state=state, path=path, filters=filters)
    snap = view.current
    start = baseline.time_s if baseline is not None else 0.0
    return Status(
        state=state, path=path, source=snap.meta.source, host=snap.meta.host,
        kernel=snap.meta.kernel, plan=plan_text(snap),
        merged=tuple(snap.plan.merged), notes=tuple(snap.meta.notes),
        pkts_s={p: view.packets_rate(p) for p in PATHS if p in snap.paths},
        events_s=view.events_rate(), events_lost=view.shown.events_lost,
        missed=sum(p.counters.get("missed", 0) for p in view.shown.paths.values()),
        filters=filters, window_s=snap.time_s - start, cleared=baseline is not None,
    )


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
