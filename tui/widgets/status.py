"""Header/status lines: where the figures come from, the plan and its merged layers, rates, state."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.view.frame import Status
from tui.widgets.units import fmt_count


def status_text(s: Status) -> Text:
    """Two or more short lines (80 columns): identity and state, rates and filters, then warnings."""
    text = Text()
    text.append(" netlat-tui ", style="bold reverse")
    text.append(f" {s.path.upper()} ", style="bold cyan" if s.path == "send" else "bold magenta")
    state_style = "green" if s.state in ("live", "replay", "demo") else "bold yellow"
    if s.state.startswith("error"):
        state_style = "bold red"
    text.append(f" {s.state} ", style=state_style)
    if s.source:
        text.append(f" {s.source} · {s.host} · {s.kernel} · plan {s.plan}", style="dim")
    text.append("\n ")
    for path, rate in (s.pkts_s or {}).items():
        text.append(f"{path} ")
        text.append(f"{fmt_count(rate)}/s ", style="bold")
    text.append(f"· events {fmt_count(s.events_s)}/s lost {fmt_count(s.events_lost)} ")
    text.append(f"· filter {s.filters or 'none'} ")
    text.append(f"· {'since clear' if s.cleared else 'since start'} {fmt_seconds(s.window_s)}")
    if s.missed:
        text.append(f"\n ⚠ the kernel skipped {fmt_count(s.missed)} probe runs (a probe was already running "
                    "on that CPU): up to as many packets are missing from the counts", style="bold yellow")
    for line in (*s.merged, *s.notes):
        text.append(f"\n ⚠ {line}", style="yellow")
    return text


def fmt_seconds(seconds: float) -> str:
    """``0.5s``, ``42s``, ``12m05s``."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 600:
        return f"{seconds:.0f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


class StatusBar(Static):
    """The header of the dashboard."""

    DEFAULT_CSS = """
    StatusBar { height: auto; background: $boost; }
    """

    def update_status(self, status: Status) -> None:
        self.update(status_text(status))
