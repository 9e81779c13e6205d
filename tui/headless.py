"""Headless mode: run the probes for a while, then print one summary (JSON for scripts, or text).

``netlat-tui --headless --duration S --json`` is the engine's contract for scripts and tests; the
document is tui.model.summary's (schema in its docstring); every snapshot polled (one per
``--interval S``) goes into a Timeline, so the document carries the run's ``timeline`` and a
``verdict``. ``--ebpf`` prints the generated C and exits. ``--workload loopback`` drives a built-in
loopback load while measuring. No textual import.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from typing import Any

from tui.errors import UserError
from tui.model.snapshot import Snapshot
from tui.model.summary import snapshot_summary
from tui.model.timeline import KEEP_S, Timeline
from tui.sources.base import Source, SourceError
from tui.sources.factory import make_source


def print_ebpf(args: argparse.Namespace) -> int:
    """The C the live source would compile, with this command line's filters and sample."""
    from tui.sources.live import LiveSource

    _plan, text, _notes = LiveSource(
        probes=args.probes, filters=args.filters, sample=args.sample, max_sockets=args.max_sockets
    ).prepare()
    sys.stdout.write(text)
    return 0


def _run(
    source: Source, duration_s: float, interval_s: float, workload: Any, timeline: Timeline | None = None
) -> Snapshot | None:
    """Poll until the duration is over (or the source ends); the last snapshot is cumulative.
    Every snapshot polled is also added to ``timeline``."""
    last: Snapshot | None = None
    deadline = time.monotonic() + duration_s
    if workload is not None:
        workload.start()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(interval_s, left))
            snap = source.poll()
            if snap is None:
                break
            last = snap
            if timeline is not None:
                timeline.add(snap)
    except KeyboardInterrupt:
        pass  # print what was measured so far
    finally:
        if workload is not None:
            workload.stop()
    final = source.poll()
    if final is not None and timeline is not None:
        timeline.add(final)
    return final if final is not None else last


def run_headless(args: argparse.Namespace) -> int:
    """Entry point for ``--headless`` and ``--ebpf``; returns the exit status."""
    try:
        if getattr(args, "ebpf", False):
            return print_ebpf(args)
        source = make_source(args)
        workload = None
        if getattr(args, "workload", "none") == "loopback":
            from tui.workload import LoopbackWorkload

            workload = LoopbackWorkload("mixed")
        interval = min(args.interval, args.duration)
        # The whole run's intervals (a few more than the polls, for the final one), at least the
        # dashboard's ten minutes.
        timeline = Timeline(interval, keep_s=max(KEEP_S, args.duration + 2 * interval))
        try:
            source.start()
            snap = _run(source, args.duration, interval, workload, timeline)
        finally:
            source.close()
    except SourceError as exc:
        raise UserError(str(exc)) from None
    if snap is None:
        raise UserError("the source gave no data")
    doc = snapshot_summary(snap, timeline=timeline, filters=getattr(args, "filters", None),
                           top=getattr(args, "top", None))
    if workload is not None:
        doc["workload"] = {"kind": "loopback", **_counts(workload)}
    if args.json:
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_text(doc))
    return 0


def _counts(workload: Any) -> dict[str, int]:
    return asdict(workload.counts())


def _fmt(us: float | None) -> str:
    return "-" if us is None else f"{us:.1f}"


def format_text(doc: dict[str, Any]) -> str:
    """A compact human summary of the JSON document."""
    lines = [
        f"netlat-tui {doc['source']} on {doc['host']} ({doc['kernel']}), plan {doc['plan']['name']}, "
        f"{doc['duration_s']:.1f}s" + (f", filters: {doc['filters']}" if doc["filters"] else ""),
    ]
    lines += [f"  note: {n}" for n in doc.get("notes", [])]
    for path, data in doc["paths"].items():
        counters = " ".join(f"{k}={v}" for k, v in data["counters"].items())
        lines.append(f"{path}: {counters}")
        head = ('stage', 'count', 'p50us', 'p90us', 'p99us', 'p99.9us', 'maxus')
        lines.append("  " + "".join(f"{h:<14}" if i == 0 else f"{h:>9}" for i, h in enumerate(head)))
        for group in ("stages", "totals"):
            for key, st in data[group].items():
                lines.append(
                    f"  {key:<14}{st['count']:>9}{_fmt(st['p50_us']):>9}{_fmt(st['p90_us']):>9}"
                    f"{_fmt(st['p99_us']):>9}{_fmt(st['p999_us']):>9}{_fmt(st['max_us']):>10}"
                )
    if doc["sockets"]:
        lines.append("top sockets:")
        for s in doc["sockets"][:10]:
            lines.append(
                f"  {s['comm']:<15} {s['pid']:>7} {s['protocol']} {s['local']} -> {s['remote']} "
                f"tx {s['tx_packets']} rx {s['rx_packets']}"
            )
    lines.append(f"events: delivered {doc['events']['delivered']}, lost {doc['events']['lost']}")
    if doc.get("verdict"):
        lines.append(f"verdict: {doc['verdict']['words']}")
        if doc["verdict"]["command"]:
            lines.append(f"  next: {doc['verdict']['command']}")
    return "\n".join(lines) + "\n"
