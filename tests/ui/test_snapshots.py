"""Layout snapshots (pytest-textual-snapshot) of the dashboard on the deterministic synthetic source.

The demo source runs a fixed number of ticks on a virtual clock and then ends, so every figure on
screen is the same on every run; update with ``pytest tests/ui --snapshot-update`` after a UI change.
"""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from ui_helpers import synthetic_app, until

from tui.widgets.histogram import LatencyHistogram

TICKS = 4


def settled(pilot: Pilot) -> bool:
    app = pilot.app
    if app.viewer.state != "ended":
        return False
    return not any(h._timer_pending for screen in app.screen_stack for h in screen.query(LatencyHistogram))


async def ended(pilot: Pilot) -> None:
    await until(pilot, lambda: pilot.app.viewer.state == "ended", "the demo data to end")
    await pilot.pause(0.3)  # the histogram redraws at most 4 times a second
    await until(pilot, lambda: settled(pilot), "the last redraw")


def run_then(*keys: str):
    async def run_before(pilot: Pilot) -> None:
        await ended(pilot)
        await pilot.press(*keys)
        await pilot.pause(0.3)
        await until(pilot, lambda: settled(pilot), "the redraw after the keys")

    return run_before


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_send_view(snap_compare, size: tuple[int, int]) -> None:
    assert snap_compare(synthetic_app(limit=TICKS), terminal_size=size, run_before=ended)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_receive_view(snap_compare, size: tuple[int, int]) -> None:
    assert snap_compare(synthetic_app(limit=TICKS), terminal_size=size, run_before=run_then("r"))


def test_socket_drill_down(snap_compare) -> None:
    assert snap_compare(synthetic_app(limit=TICKS), terminal_size=(120, 32), run_before=run_then("d"))


def test_udp_socket_drill_down_lists_its_busiest_peers(snap_compare) -> None:
    from tui.screens.socket_detail import SocketScreen

    async def open_udp_socket(pilot) -> None:
        await ended(pilot)
        udp = next(s for s in pilot.app.frame.view.shown.sockets if s.protocol == "UDP")
        pilot.app.push_screen(SocketScreen(udp.key))
        await pilot.pause(0.3)
        await until(pilot, lambda: settled(pilot), "the drill-down's redraw")

    assert snap_compare(synthetic_app(limit=TICKS), terminal_size=(80, 24), run_before=open_udp_socket)


def test_help(snap_compare) -> None:
    app = synthetic_app(limit=TICKS)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_then("question_mark"))


#: Ticks of 0.5 s past the demo's qdisc episode (synthetic.DEMO_STEP: qdisc 1500x slower from tick 12).
STEP_TICKS = 24


def test_a_stage_stepping_up_shows_in_verdict_and_heatmap(snap_compare) -> None:
    # At 80 columns h swaps the histogram for the heatmap (at 160 both are on screen: send_view).
    app = synthetic_app(limit=STEP_TICKS)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_then("h"))
