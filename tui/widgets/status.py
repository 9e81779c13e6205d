"""Header/status lines: where the figures come from, the plan and its merged layers, rates, state."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.view.frame import Status
from tui.widgets.units import fmt_count


def status_text(s: Status) -> Text:
    """Two to four lines, each cut at the screen's edge rather than wrapped: identity and state,
    rates, filter and window, then warnings (skipped probe runs; the plan's notes on one line)."""
    text = Text(no_wrap=True, overflow="ellipsis")
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
    text.append(f"· {window_text(s)}")
    if s.cost is not None:
        text.append(f"\n {cost_text(s.cost)}", style="dim")
    if s.missed:
        text.append(f"\n ⚠ kernel skipped {fmt_count(s.missed)} probe runs: up to "
                    f"{fmt_count(s.missed)} packets uncounted (a probe already ran on that CPU)",
                    style="bold yellow")
    if s.sockets_dropped:
        text.append(f"\n ⚠ socket table full ({fmt_count(s.sockets_max)} rows): "
                    f"{fmt_count(s.sockets_dropped)} sockets not listed (--max-sockets)", style="bold yellow")
    notes = (*s.merged, *s.notes)
    if notes:
        # One line whatever the width (it never wraps mid-sentence): the full text is in help (?).
        text.append(f"\n ⚠ {len(notes)} note{'s' if len(notes) > 1 else ''} (? shows them): ", style="yellow")
        text.append("; ".join(notes), style="dim yellow")
    return text


def cost_text(cost: dict[str, float | None]) -> str:
    """``cost: BPF 480 ns/pkt 2.1% CPU · netlat-tui 0.8% CPU 92 MB`` (under 60 columns)."""
    ns, share = cost.get("bpf_ns_per_packet"), cost.get("bpf_cpu_percent")
    if share is None:
        bpf = "BPF not measured"
    else:
        bpf = f"BPF {fmt_count(ns) + ' ns/pkt ' if ns is not None else ''}{share:.1f}% CPU"
    cpu = cost.get("cpu_percent")
    own = f"{cpu:.1f}% CPU " if cpu is not None else ""
    return f"cost: {bpf} · netlat-tui {own}{cost.get('rss_mb') or 0:.0f} MB"


def window_text(s: Status) -> str:
    """``last 10s``, ``last 10s (4.0s so far)``, ``since start 42s`` or ``since clear 3.0s``."""
    if s.window is None:
        return f"{'since clear' if s.cleared else 'since start'} {fmt_seconds(s.window_s)}"
    text = f"last {s.window:g}s"
    if s.window_s < s.window * 0.9:
        text += f" ({fmt_seconds(s.window_s)} so far)"
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
    StatusBar { height: auto; background: $boost; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def update_status(self, status: Status) -> None:
        self.update(status_text(status))
