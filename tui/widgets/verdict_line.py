"""The verdict line: the stage to look at in plain words and the command to run next (two lines at 80
columns at most), from :func:`tui.model.verdict.verdict`."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.model.verdict import Verdict

#: (mark, style) per verdict rule
MARKS = {
    "dominant": ("▶", "bold yellow"),
    "moved": ("▲", "bold yellow"),
    "none": ("✓", "green"),
    "quiet": ("·", "dim"),
}


def verdict_text(verdict: Verdict | None, window: str = "") -> Text:
    """``▶ words  → command``, with ``[window]`` in front when given (e.g. ``10s``)."""
    text = Text()
    if verdict is None:
        text.append("· waiting for data", style="dim")
        return text
    mark, style = MARKS.get(verdict.rule, ("·", ""))
    text.append(f"{mark} ", style=style)
    if window:
        text.append(f"[{window}] ", style="dim")
    text.append(verdict.words, style="bold" if verdict.stage else "")
    if verdict.command:
        text.append("  → ", style="dim")
        text.append(verdict.command, style="cyan")
    return text


class VerdictLine(Static):
    """One or two lines under the charts; the app calls :meth:`update_verdict` per frame."""

    DEFAULT_CSS = """
    VerdictLine { height: auto; max-height: 2; padding: 0 1; }
    """

    def update_verdict(self, verdict: Verdict | None, window: str = "") -> None:
        """Show ``verdict`` (None: no data yet) for the window named ``window`` (e.g. ``10s``)."""
        self.update(verdict_text(verdict, window))
