"""Recording snapshots to a JSON-lines file and playing such a file back (no root, no probes).

The format lives in :mod:`tui.model.serialize`. A replay reads and validates the whole file up front
so a truncated or corrupt recording fails before the dashboard opens, with the line number.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import IO

from tui.errors import UserError
from tui.model.filters import Filters
from tui.model.serialize import (
    SerializeError,
    check_header,
    header,
    snapshot_from_dict,
    snapshot_to_dict,
)
from tui.model.snapshot import Snapshot
from tui.sources.base import ItemFilters, Source, SourceContext, SourceError


def load_recording(path: str | Path) -> tuple[float, list[Snapshot]]:
    """Recorded interval and snapshots of a file; UserError "FILE line N: problem" on any defect."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read recording {path}: {exc.strerror or exc}") from None
    snapshots: list[Snapshot] = []
    interval = 0.0
    with handle:
        line_no = 0
        try:
            for line_no, line in enumerate(handle, start=1):
                if not line.endswith("\n"):
                    # The recorder ends every line; a missing newline means the file was cut short.
                    raise SerializeError("truncated line (recording cut short?)")
                obj = json.loads(line)
                if line_no == 1:
                    interval = check_header(obj)
                else:
                    snapshots.append(snapshot_from_dict(obj))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} line {line_no}: not valid JSON ({exc.msg})") from None
        except SerializeError as exc:
            raise UserError(f"{path} line {line_no}: {exc}") from None
        except UnicodeDecodeError:
            raise UserError(f"{path} line {line_no + 1}: not UTF-8 text") from None
    if line_no == 0:
        raise UserError(f"{path}: empty file, not a netlat-tui recording")
    if not snapshots:
        raise UserError(f"{path}: the recording holds no snapshots")
    return interval, snapshots


#: Snapshots a seek gives back to rebuild the timeline: its default ten minutes at one a second.
SEEK_HISTORY = 601


class ReplaySource(ItemFilters, SourceContext):
    """Plays recorded snapshots back at ``speed`` times the recorded pace, then ends."""

    kind = "replay"

    def __init__(self, recorded_interval_s: float, snapshots: list[Snapshot], speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError("speed must be above 0")
        self._recorded_interval = recorded_interval_s
        self._snapshots = snapshots
        self._speed = speed
        self._next = 0

    @classmethod
    def open(cls, path: str | Path, speed: float = 1.0) -> ReplaySource:
        interval, snapshots = load_recording(path)
        return cls(interval, snapshots, speed)

    @property
    def interval_s(self) -> float:
        """Wait before the next poll: the recorded gap to the next snapshot, scaled by the speed."""
        snaps, i = self._snapshots, self._next
        gap = self._recorded_interval
        if 0 < i < len(snaps):
            gap = snaps[i].time_s - snaps[i - 1].time_s
            if not gap > 0:  # a restart inside the recording: time went back
                gap = self._recorded_interval
        return gap / self._speed

    def start(self) -> None:
        self._next = 0

    def poll(self) -> Snapshot | None:
        if self._next >= len(self._snapshots):
            return None
        snap = self._snapshots[self._next]
        self._next += 1
        return self.narrowed(snap)

    def close(self) -> None:
        self._next = len(self._snapshots)

    def seek(self, snapshots: int, history: int = SEEK_HISTORY) -> list[Snapshot]:
        """Move the playback by ``snapshots`` (negative: back) from the last one given. Returns the
        recorded snapshots up to and including the new position (at most ``history`` of them, to
        rebuild the timeline from), the last of which is now the current one; [] if nothing moved."""
        shown = self._next - 1
        target = min(max(shown + snapshots, 0), len(self._snapshots) - 1)
        if target == shown:
            return []
        self._next = target + 1
        return [self.narrowed(s) for s in self._snapshots[max(0, target + 1 - history): target + 1]]


#: Sampled events kept per recorded snapshot (the newest): a busy host samples hundreds a second,
#: and they would be nine tenths of the file; every counter and histogram is recorded in full.
RECORDED_EVENTS_MAX = 100


class RecordingSource(SourceContext):
    """Wraps any source and appends every snapshot it gives to a JSON-lines file."""

    def __init__(self, inner: Source, path: str | Path, max_events: int = RECORDED_EVENTS_MAX) -> None:
        self.inner = inner
        self.path = Path(path)
        self.max_events = max_events
        self._out: IO[str] | None = None

    @property
    def interval_s(self) -> float:
        return self.inner.interval_s

    @property
    def live(self) -> bool:
        return self.inner.live

    @property
    def kind(self) -> str:
        return self.inner.kind

    def set_filters(self, filters: Filters) -> None:
        """The wrapped source's filters change; the recording goes on (its snapshots say which)."""
        self.inner.set_filters(filters)

    def __getattr__(self, name: str) -> object:
        # Optional capabilities of the wrapped source (e.g. prog_stats) stay reachable.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def start(self) -> None:
        try:
            self._out = self.path.open("w", encoding="utf-8")
        except OSError as exc:
            raise SourceError(f"cannot write recording {self.path}: {exc.strerror or exc}") from None
        self._write({**header(self.inner.interval_s), "events_max": self.max_events})
        self.inner.start()

    def poll(self) -> Snapshot | None:
        snap = self.inner.poll()
        if snap is not None and self._out is not None:
            kept = snap if len(snap.events) <= self.max_events else replace(
                snap, events=snap.events[-self.max_events:]
            )
            self._write(snapshot_to_dict(kept))
        return snap

    def _write(self, obj: dict[str, object]) -> None:
        assert self._out is not None
        self._out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._out.flush()  # a crash or SIGKILL still leaves every complete line readable

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            if self._out is not None:
                self._out.close()
                self._out = None
