"""Filter dialog: pid, port, comm, protocol, address, cgroup, netns; validated with the same parsers
as the CLI (an unknown group or namespace is the same one-line error)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tui.model.filters import FilterError, Filters

#: (filter field, label, placeholder)
FIELDS = (
    ("pid", "pid", "e.g. 4242"),
    ("port", "port", "local or remote, e.g. 443"),
    ("comm", "comm", "process name, e.g. nginx"),
    ("protocol", "protocol", "tcp or udp"),
    ("addr", "address", "local or remote IP"),
    ("cgroup", "cgroup", "group and below, e.g. system.slice/nginx.service"),
    ("netns", "netns", "ip netns name, inode or /proc/PID/ns/net"),
)


class FilterDialog(ModalScreen[Filters | None]):
    """Returns the new validated Filters, or None when cancelled. Bad input keeps it open."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    DEFAULT_CSS = """
    FilterDialog { align: center middle; }
    FilterDialog > Vertical {
        width: 64; max-width: 100%; height: auto; max-height: 100%; border: round $accent;
        background: $panel; padding: 0 1; overflow-y: auto;
    }
    FilterDialog Grid {
        grid-size: 2; grid-columns: 10 1fr; grid-rows: 1; grid-gutter: 1 0; height: auto;
        margin: 1 0;
    }
    FilterDialog Input { border: none; height: 1; padding: 0 1; }
    FilterDialog Input:focus { border: none; background-tint: $foreground 15%; }
    FilterDialog #error { color: $error; height: auto; }
    FilterDialog Horizontal { height: 3; align-horizontal: right; }
    """

    def __init__(self, current: Filters, note: str = "") -> None:
        super().__init__()
        self._current = current
        self._note = note

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("[b]Filters[/b] (empty = any)")
            if self._note:
                yield Static(self._note, classes="note")
            with Grid():
                for name, label, placeholder in FIELDS:
                    value = getattr(self._current, name)
                    yield Label(label)
                    yield Input(
                        "" if value is None else str(value), placeholder=placeholder,
                        id=f"f-{name}",
                    )
            yield Static("", id="error")
            with Horizontal():
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Clear all", id="clear")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = False  # steady screenshots and no redraw churn over ssh

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "apply":
            self.apply()
        elif event.button.id == "clear":
            for field in self.query(Input):
                field.value = ""
            self.apply()
        else:
            self.dismiss(None)

    def apply(self) -> None:
        """Validate every field; show the first problem, or close with the new Filters."""
        raw = {name: self.query_one(f"#f-{name}", Input).value for name, _, _ in FIELDS}
        # keep filters this dialog does not edit (e.g. --iface from the command line)
        keep = {k: v for k, v in self._current.active().items() if k not in raw}
        try:
            filters = Filters.parse(**raw, **{k: str(v) for k, v in keep.items()})
        except FilterError as exc:
            self.query_one("#error", Static).update(str(exc))
            return
        self.dismiss(filters)

    def action_cancel(self) -> None:
        self.dismiss(None)
