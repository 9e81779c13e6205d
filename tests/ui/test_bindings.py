"""Every key of the dashboard, driven with Textual's Pilot on deterministic sources."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Input, Static
from ui_helpers import FAST_S, FailingSource, FakeLiveSource, synthetic_app, until

from tui.app import NetlatApp
from tui.model.filters import Filters
from tui.model.summary import SCHEMA
from tui.screens.filter_dialog import FilterDialog
from tui.screens.help import HelpScreen
from tui.screens.socket_detail import SocketScreen
from tui.sources.replay import RecordingSource, ReplaySource
from tui.sources.synthetic import SYNTHETIC_PLAN, SyntheticSource
from tui.widgets.event_log import MAX_PER_REFRESH, EventLog
from tui.widgets.histogram import LatencyHistogram
from tui.widgets.layer_bars import LayerBars
from tui.widgets.sockets import SocketTable


def bar_labels(app: NetlatApp) -> list[str]:
    return [row.label for row in app.dashboard.query_one(LayerBars)._rows]


def table_column(app: NetlatApp, column: str) -> list:
    table = app.dashboard.query_one(SocketTable)
    return [table.get_cell_at((i, table.get_column_index(column))).value for i in range(table.row_count)]


def has_data(app: NetlatApp) -> bool:
    return app.viewer.view is not None and app.viewer.view.shown.seq >= 2


async def test_path_keys_switch_every_widget() -> None:
    app = synthetic_app()
    async with app.run_test() as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        send_labels = [s.label for s in SYNTHETIC_PLAN.specs("send")]
        recv_labels = [s.label for s in SYNTHETIC_PLAN.specs("recv")]
        assert bar_labels(app) == send_labels
        assert app.dashboard.query_one(LatencyHistogram)._title == "send · send total"
        send_p99 = table_column(app, "p99")

        await pilot.press("r")
        assert app.path == "recv"
        assert bar_labels(app) == recv_labels
        assert app.dashboard.query_one(LatencyHistogram)._title == "recv · stack total"
        # receive latency in the synthetic data is several times the send latency
        assert table_column(app, "p99") != send_p99

        await pilot.press("tab")
        assert app.path == "send"
        assert bar_labels(app) == send_labels
        await pilot.press("tab")
        assert app.path == "recv"
        await pilot.press("s")
        assert app.path == "send"


async def test_stage_key_cycles_the_histogram_through_the_plan() -> None:
    app = synthetic_app()
    async with app.run_test() as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        seen = [app.viewer.stage_key]
        for _ in range(len(SYNTHETIC_PLAN.specs("send"))):
            await pilot.press("v")
            seen.append(app.viewer.stage_key)
        assert seen == ["total", "deferred", "udp_l2", "tcp_ip", "qdisc", "device", "total"]
        hist = app.dashboard.query_one(LatencyHistogram)
        await pilot.press("v", "v", "v")
        assert hist._title == "send · TCP+IP"
        assert hist._hist == app.viewer.view.shown.paths["send"].get("tcp_ip").hist


async def test_pause_freezes_the_view_while_a_live_source_keeps_counting() -> None:
    source = FakeLiveSource()
    app = NetlatApp(source)
    async with app.run_test() as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        await pilot.press("space")
        assert app.paused and app.viewer.state == "paused"
        frozen = app.viewer.view.shown.seq
        bars = list(app.dashboard.query_one(LayerBars)._rows)
        await until(pilot, lambda: app.viewer.current.seq >= frozen + 3, "more snapshots while paused")
        assert app.viewer.view.shown.seq == frozen
        assert app.dashboard.query_one(LayerBars)._rows == bars
        await pilot.press("space")
        assert not app.paused
        await until(pilot, lambda: app.viewer.view.shown.seq > frozen + 3, "view to follow again")


async def test_pause_stops_demo_playback() -> None:
    app = synthetic_app()
    async with app.run_test() as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        await pilot.press("p")
        await pilot.pause(0.1)  # let a poll already under way land
        polled = app.viewer.current.seq
        await pilot.pause(0.3)  # many poll intervals
        assert app.viewer.current.seq == polled
        await pilot.press("p")
        await until(pilot, lambda: app.viewer.current.seq > polled, "playback to resume")


async def test_clear_counts_from_the_moment_of_the_key() -> None:
    app = synthetic_app()
    async with app.run_test() as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        status = app.dashboard.query_one("#status", Static)
        assert "last 10s" in str(status.render())
        await pilot.press("t", "t")  # 60 s, then since start/clear: exact counts whatever the pace
        assert app.viewer.window is None and "since start" in str(status.render())
        await pilot.press("space")  # hold the data still to compare exact counts
        await pilot.press("c")
        base = app.viewer.current
        assert app.viewer.view.shown.paths["send"].get("total").hist.total == 0
        await pilot.press("space")
        await until(pilot, lambda: app.viewer.current.seq >= base.seq + 2, "snapshots after clear")
        await pilot.press("space")
        shown, current = app.viewer.view.shown.paths["send"], app.viewer.view.current.paths["send"]
        ticks = app.viewer.view.current.seq - base.seq
        # the synthetic source sends exactly 400 packets a tick
        assert shown.counters["packets"] == 400 * ticks
        assert current.counters["packets"] == 400 * app.viewer.view.current.seq
        in_syscall = shown.get("total").hist.total
        assert in_syscall == current.get("total").hist.total - base.paths["send"].get("total").hist.total > 0
        assert "since clear" in str(status.render())
        # Back to a rolling window: it starts at the clear too, and says how much it covers so far.
        await pilot.press("t", "t")  # 1 s, then 10 s
        assert app.viewer.window == 10.0
        covered = min(ticks, 20)  # 10 s of 0.5 s ticks at most
        assert app.viewer.view.shown.paths["send"].counters["packets"] == 400 * covered


async def test_filter_dialog_rejects_bad_input_then_filters_the_view() -> None:
    app = synthetic_app()
    async with app.run_test() as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        await pilot.press("f")
        assert isinstance(app.screen, FilterDialog)
        pid = app.screen.query_one("#f-pid", Input)
        assert app.screen.focused is pid
        await pilot.press("tab")  # moves between fields; it does not flip the path here
        assert app.screen.focused is app.screen.query_one("#f-port", Input) and app.path == "send"
        pid.value = "12ab"
        await pilot.press("enter")
        assert isinstance(app.screen, FilterDialog), "bad input must keep the dialog open"
        assert "bad pid '12ab'" in str(app.screen.query_one("#error", Static).render())
        assert app.viewer.filters == Filters()

        pid.value = "99999999"
        await pilot.press("enter")
        assert "must be 1-4194304" in str(app.screen.query_one("#error", Static).render())

        pid.value = "4242"
        app.screen.query_one("#f-comm", Input).value = "nginx; rm"
        await pilot.press("enter")
        assert "bad comm" in str(app.screen.query_one("#error", Static).render())
        app.screen.query_one("#f-comm", Input).value = ""
        # a group or namespace must exist here: the same one-line errors as --cgroup and --netns
        for field, value, message in (("netns", "no-such-ns", "no network namespace named 'no-such-ns'"),
                                      ("cgroup", "no-such.slice/x", "cgroup")):
            app.screen.query_one(f"#f-{field}", Input).value = value
            await pilot.press("enter")
            assert message in str(app.screen.query_one("#error", Static).render())
            app.screen.query_one(f"#f-{field}", Input).value = ""
        await pilot.press("enter")
        assert not isinstance(app.screen, FilterDialog)
        assert app.viewer.filters == Filters(pid=4242)
        await until(pilot, lambda: app.viewer.view.shown.seq > 3, "a refresh")
        assert set(table_column(app, "pid")) == {4242}
        assert all(e.pid == 4242 for e in app.viewer.recent_events)
        assert "pid=4242 (sockets+events only)" in str(app.dashboard.query_one("#status", Static).render())


async def test_filter_dialog_escape_changes_nothing() -> None:
    app = synthetic_app()
    async with app.run_test() as pilot:
        await pilot.press("f")
        app.screen.query_one("#f-port", Input).value = "443"
        await pilot.press("escape")
        assert not isinstance(app.screen, FilterDialog)
        assert app.viewer.filters == Filters()


async def test_live_filter_change_goes_to_the_source() -> None:
    source = FakeLiveSource()
    app = NetlatApp(source)
    async with app.run_test() as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        await pilot.press("f")
        app.screen.query_one("#f-port", Input).value = "6379"
        await pilot.press("enter")
        await until(pilot, lambda: source.filters_seen, "the worker to pass the filters on")
        assert source.filters_seen == [Filters(port=6379)]
        # live filters act in the probes, so the view itself is not narrowed
        await until(pilot, lambda: app.viewer.view is not None and app.viewer.view.shown.sockets, "a refresh")
        assert len(app.viewer.view.shown.sockets) == 5


async def test_sort_key_reorders_the_socket_table() -> None:
    app = synthetic_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        await pilot.press("space")
        table = app.dashboard.query_one(SocketTable)
        assert table.sort_column == "pkts_s"
        rates = table_column(app, "pkts_s")
        assert rates == sorted(rates, reverse=True)
        await pilot.press("o")
        assert table.sort_column == "p99"
        p99 = table_column(app, "p99")
        assert p99 == sorted(p99, reverse=True)
        for _ in range(4):  # p50, max, bytes/s, pid
            await pilot.press("o")
        assert table.sort_column == "pid"
        pids = table_column(app, "pid")
        assert pids == sorted(pids) and pids != sorted(pids, reverse=True)


async def test_cursor_stays_on_its_socket_across_refreshes() -> None:
    app = synthetic_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        table = app.dashboard.query_one(SocketTable)
        table.focus()
        await pilot.press("down", "down")
        chosen = table.selected_key()
        seq = app.viewer.view.shown.seq
        await until(pilot, lambda: app.viewer.view.shown.seq >= seq + 3, "more refreshes")
        assert table.selected_key() == chosen


async def test_drill_down_shows_the_selected_socket() -> None:
    app = synthetic_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        table = app.dashboard.query_one(SocketTable)
        key = int(table.selected_key())
        await pilot.press("d")
        assert isinstance(app.screen, SocketScreen) and app.screen.socket_key == key
        sock = next(s for s in app.viewer.view.shown.sockets if s.key == key)
        await until(pilot, lambda: sock.comm in str(app.screen.query_one("#sock-summary", Static).render()),
                    "the socket summary")
        bars = app.screen.query_one(LayerBars)
        await until(pilot, lambda: bars._rows, "socket layer bars")
        assert [r.label for r in bars._rows] == [s.label for s in SYNTHETIC_PLAN.stages["send"]] + ["total"]
        await pilot.press("escape")
        assert not isinstance(app.screen, SocketScreen)


async def test_export_writes_the_summary_schema(tmp_path: Path) -> None:
    app = synthetic_app(tmp_path)
    async with app.run_test() as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        await pilot.press("space", "e")
        exported = sorted(tmp_path.glob("netlat-snapshot-*.json"))
        assert len(exported) == 1
        doc = json.loads(exported[0].read_text())
        assert doc["schema"] == SCHEMA
        assert set(doc["paths"]) == {"send", "recv"}
        assert doc["paths"]["send"]["counters"]["packets"] == 400 * app.viewer.view.shown.seq
        in_syscall = app.viewer.view.shown.paths["send"].get("total").hist.total
        assert doc["paths"]["send"]["totals"]["total"]["count"] == in_syscall
        assert doc["plan"]["name"] == "synthetic"
        await pilot.press("e")
        assert len(list(tmp_path.glob("netlat-snapshot-*.json"))) == 2, "a second export must not overwrite"


async def test_screenshot_key_saves_an_svg(tmp_path: Path) -> None:
    app = synthetic_app(tmp_path)
    async with app.run_test() as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        await pilot.press("w")
        svgs = list(tmp_path.glob("*.svg"))
        assert len(svgs) == 1
        assert svgs[0].read_text().lstrip().startswith("<svg")


async def test_help_lists_every_key_and_closes() -> None:
    app = synthetic_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        console = Console(width=100, record=True, file=io.StringIO())
        console.print(app.screen.keys_table)
        text = console.export_text()
        words = ("switch path", "send", "receive", "pause", "clear", "filter", "sort", "socket", "export")
        for word in (*words, "screenshot", "help", "quit"):
            assert word in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_command_palette_offers_the_actions() -> None:
    app = synthetic_app()
    async with app.run_test() as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "pause (space)" in titles and "filter (f)" in titles and "export (e)" in titles
        await pilot.press("ctrl+p")
        assert app.screen.__class__.__name__ == "CommandPalette"


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
async def test_quit_keys_close_the_source(key: str) -> None:
    source = FakeLiveSource()
    app = NetlatApp(source)
    async with app.run_test() as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        await pilot.press(key)
        await until(pilot, lambda: app.runner.closed.is_set(), "the worker to close the source")
    assert source.closed >= 1
    assert app.return_code == 0


async def test_failed_start_shows_one_line_state() -> None:
    app = NetlatApp(FailingSource())
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.viewer.state.startswith("error"), "the failure")
        status = str(app.dashboard.query_one("#status", Static).render())
        assert "error: cannot attach tracepoint net:net_dev_queue: permission denied" in status


async def test_demo_with_a_limit_ends_cleanly() -> None:
    app = synthetic_app(limit=3)
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.viewer.state == "ended", "the end of the data")
        assert app.viewer.view.shown.seq == 3


async def test_resizes_never_crash() -> None:
    app = synthetic_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        for size in ((40, 12), (20, 8), (200, 60), (80, 24), (120, 30)):
            await pilot.resize_terminal(*size)
            await pilot.pause(0.05)
        await pilot.press("r")
        await until(pilot, lambda: app.viewer.view.shown.seq > 5, "more refreshes after resizing")
        assert app.screen is app.dashboard


async def test_no_color_runs(monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = synthetic_app()
    assert app.no_color
    async with app.run_test() as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        await pilot.press("r")
        assert bar_labels(app)[0] == "backlog"


async def test_replay_shows_recorded_data_pauses_and_ends(tmp_path: Path) -> None:
    recording = tmp_path / "run.jsonl"
    recorder = RecordingSource(SyntheticSource(seed=7, interval_s=0.5), recording)
    recorder.start()
    recorded = [recorder.poll() for _ in range(12)]
    recorder.close()
    app = NetlatApp(ReplaySource.open(recording), poll_every_s=FAST_S, coalesce=False)
    async with app.run_test() as pilot:
        await until(pilot, lambda: has_data(app), "replayed snapshots")
        assert app.viewer.state == "replay"
        await pilot.press("space")
        await pilot.pause(0.1)
        held = app.viewer.current.seq
        await pilot.pause(0.3)
        assert app.viewer.current.seq == held, "pause must hold the playback"
        await pilot.press("space")
        await until(pilot, lambda: app.viewer.state == "ended", "the end of the recording")
        assert app.viewer.current == recorded[-1]
        e2e = recorded[-1].paths["recv"].get("e2e").hist
        assert app.viewer.view.shown.paths["recv"].get("e2e").hist == e2e


async def test_event_log_lists_a_bounded_number_of_lines_per_refresh() -> None:
    source = SyntheticSource(seed=7, interval_s=0.5, events_per_tick=100, limit=1)
    app = NetlatApp(source, poll_every_s=FAST_S, coalesce=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.viewer.state == "ended", "the single tick")
        log = app.dashboard.query_one(EventLog)
        await until(pilot, lambda: len(log.lines) > 0, "the log to render")
        assert len(app.viewer.current.events) == 100
        assert len(log.lines) == MAX_PER_REFRESH + 1
        assert "75 more sampled packets" in log.lines[0].text
        assert len(app.viewer.recent_events) == 100  # the drill-down still sees every sampled packet


async def test_a_stage_stepping_up_is_named_by_the_verdict_and_seen_in_the_heatmap() -> None:
    from tui.sources.synthetic import DEMO_STEP
    from tui.widgets.heatmap import LatencyHeatmap
    from tui.widgets.verdict_line import VerdictLine

    stage, first_tick, _factor = DEMO_STEP
    app = synthetic_app(limit=first_tick + 10)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.viewer.state == "ended", "the end of the demo data")
        view = app.viewer.view
        assert view.verdict.rule == "dominant" and view.verdict.stage == stage
        assert "tc -s qdisc show dev <dev>" in str(app.dashboard.query_one(VerdictLine).render())
        # The qdisc's p99 per interval jumps at the step: every interval after it is over 100x any
        # interval before it (the sparkline's data).
        trend = view.timeline.trend("send", stage)
        before, after = trend[: first_tick - 1], trend[first_tick:]
        assert before and after and min(after) > 100 * max(before)
        await pilot.press("v", "v", "v", "v")  # total -> deferred -> udp_l2 -> tcp_ip -> qdisc
        assert app.viewer.stage_key == stage
        await pilot.pause(0.1)
        grid = app.dashboard.query_one(LatencyHeatmap).grid
        assert grid is not None and grid.width >= first_tick
        # The newest column's packets sit in rows far above those of the oldest column.
        def top_row(column: int) -> int:
            return min(r for r in range(grid.height) if grid.counts[r][column])
        assert top_row(grid.width - 1) < top_row(0)
        # The window key moves every figure to the last second; clear empties the heatmap.
        await pilot.press("t")
        assert app.viewer.window == 60.0
        await pilot.press("c")
        assert app.viewer.view.timeline.intervals() == ()


async def test_replay_steps_back_and_forward_while_paused(tmp_path: Path) -> None:
    recording = tmp_path / "run.jsonl"
    recorder = RecordingSource(SyntheticSource(seed=7, interval_s=0.5), recording)
    recorder.start()
    for _ in range(30):
        recorder.poll()
    recorder.close()
    app = NetlatApp(ReplaySource.open(recording), poll_every_s=FAST_S, coalesce=False)
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.viewer.state == "ended", "the end of the recording")
        assert app.viewer.current.seq == 30
        await pilot.press("space", "comma")
        await until(pilot, lambda: app.viewer.current.seq == 29, "one snapshot back")
        assert app.viewer.view.current.seq == 29, "a step shows its snapshot while paused"
        # the timeline was rebuilt up to there: the 10 s window is the 20 intervals before it
        assert app.viewer.view.shown.paths["send"].counters["packets"] == 400 * 20
        await pilot.press("less_than_sign")
        await until(pilot, lambda: app.viewer.view.current.seq == 19, "ten snapshots back")
        await pilot.press("greater_than_sign", "full_stop")
        await until(pilot, lambda: app.viewer.view.current.seq == 30, "eleven snapshots forward")
