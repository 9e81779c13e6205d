"""Sampled packet log: one line per followed packet with its per-stage split (bounded)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widgets import RichLog

from tui.model.groups import short_name
from tui.model.snapshot import SEND, PacketEvent, endpoint
from tui.widgets.units import fmt_ns

#: Lines kept; older ones scroll away so memory stays flat however long it runs.
MAX_LINES = 500
#: Lines written per refresh: a busy host samples hundreds of packets a second, more than anyone
#: reads, and rendering each line is most of the dashboard's CPU; the rest are counted in one line.
MAX_PER_REFRESH = 25


def event_line(event: PacketEvent) -> Text:
    """``send TCP  4242 nginx  10.0.0.1:443 → 10.0.0.7:51514  1448B  12.3us = tcp_ip 9.10us + ...
    · nginx.service`` (the socket's workload last)."""
    arrow = "→" if event.path == SEND else "←"
    text = Text(no_wrap=True)
    text.append(f"{event.path:<4} ", style="bold cyan" if event.path == SEND else "bold magenta")
    text.append(f"{event.protocol:<3} {event.pid:>7} {event.comm[:15]:<15} ")
    text.append(f"{endpoint(event.laddr, event.lport)} {arrow} {endpoint(event.raddr, event.rport)} ")
    text.append(f"{event.length}B ", style="dim")
    text.append(fmt_ns(event.total_ns), style="bold")
    split = " + ".join(f"{key} {fmt_ns(ns)}" for key, ns in event.stages_ns.items())
    if split:
        text.append(f" = {split}")
    if event.deferred:
        text.append(" [deferred]", style="yellow")
    if event.cgroup:  # the socket's own group: also for deferred packets, which have no process
        text.append(f" · {short_name(event.cgroup)}", style="dim")
    return text


class EventLog(RichLog):
    """Newest sampled packets at the bottom."""

    DEFAULT_CSS = """
    EventLog { height: 1fr; min-height: 3; overflow-x: hidden; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, max_lines=MAX_LINES, wrap=False, markup=False)

    def update_snapshot(self, events: Iterable[PacketEvent]) -> None:
        events = list(events)
        skipped = len(events) - MAX_PER_REFRESH
        if skipped > 0:
            self.write(Text(f"… {skipped} more sampled packets this refresh (newest shown)", style="dim"))
            events = events[-MAX_PER_REFRESH:]
        for event in events:
            line = event_line(event)
            # Render each line at its full width (RichLog would otherwise cut it to the width the
            # log had when written); the widget clips it to whatever width it has now.
            self.write(line, width=max(line.cell_len, self.min_width))
