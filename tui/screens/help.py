"""Help: every key the dashboard answers to, generated from the app's bindings."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

ABOUT = (
    "Latency of the Linux TCP/IP stack per layer, measured in the kernel. Histograms are log2 "
    "buckets; p50/p90/p99 are nearest-rank percentiles of bucket midpoints. Figures cover the "
    "window chosen with t (last 1 s, 10 s, 60 s, or since start / the last clear). The heatmap "
    "has one column per interval; a lone slow packet still shows. The verdict line names the stage "
    "that dominates the path, or whose p99 rose most against the window before, and what to run "
    "next. Sampled events are 1 packet in N (--sample); counters are never sampled. A socket's group "
    "is its own cgroup (the one of the process that created it), also for packets received in "
    "softirq, where no process runs."
)


def bindings_table(bindings: list[Binding]) -> Table:
    """Key, name and what it does; ctrl+c is folded into quit's line."""
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for b in bindings:
        if b.description and b.key != "ctrl+c":
            table.add_row(b.key_display or b.key, b.description, b.tooltip)
    table.add_row("ctrl+p", "palette", "every action by name")
    return table


class HelpScreen(ModalScreen[None]):
    """Keys and what the figures mean; any of escape, q or ? closes it."""

    BINDINGS = [
        Binding("escape,question_mark,f1", "dismiss", "close help"),
        Binding("q", "dismiss", "close help", show=False),
    ]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; padding: 0 1; background: $panel;
    }
    HelpScreen .about { margin-top: 1; color: $text-muted; }
    """

    def __init__(self, bindings: list[Binding], notes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.keys_table = bindings_table(bindings)
        #: the plan's and the source's notes in full (the header has room for one line of them)
        self.notes = notes

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("[b]netlat-tui keys[/b]")
            yield Static(self.keys_table)
            yield Static(ABOUT, classes="about")
            if self.notes:
                yield Static(Text("\n".join(f"• {n}" for n in self.notes)), classes="about")
