"""Workloads on screen: the g key's one row per cgroup, the socket's group in the table, the
drill-down (the filter dialog's cgroup and netns fields: test_bindings.py)."""

from __future__ import annotations

import pytest
from test_bindings import has_data  # tests/ui is on sys.path (rootdir-less test dir)
from textual.widgets import Static
from ui_helpers import synthetic_app, until

from tui.model.groups import group_sockets
from tui.model.snapshot import SEND
from tui.screens.socket_detail import SocketScreen
from tui.widgets.groups import GroupTable
from tui.widgets.sockets import SocketTable


def column(table: SocketTable, name: str) -> list:
    return [table.get_cell_at((i, table.get_column_index(name))).value for i in range(table.row_count)]


async def test_g_shows_one_row_per_cgroup_with_summed_figures_and_back() -> None:
    app = synthetic_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        sockets = app.dashboard.query_one("#sockets", SocketTable)
        assert set(column(sockets, "group")) == {"nginx.service", "docker:3f2a9c1e7b5d",
                                                 "cri:9b8a7c6d5e4f", "pod:5e6f7a8b"}
        await pilot.press("g")
        groups = app.dashboard.query_one(GroupTable)
        assert app.dashboard.grouped and groups.display and not sockets.display
        await pilot.press("space")  # hold one frame to compare against
        await pilot.pause(0.1)
        view = app.viewer.view
        expected = {g.key: g for g in group_sockets(view.shown.sockets)}
        assert {str(k.value) for k in groups.rows} == set(expected)
        nginx = expected["/system.slice/nginx.service"]
        assert nginx.sockets == 2
        row = groups.get_row("/system.slice/nginx.service")
        by_column = dict(zip([c for c, _, _ in groups.columns_spec], row, strict=True))
        assert by_column["sockets"].value == 2 and by_column["name"].value == "nginx.service"
        assert by_column["p99"].value == pytest.approx(nginx.hist(SEND).percentile(99), rel=0.01)
        rates = column(groups, "pkts_s")
        assert rates == sorted(rates, reverse=True) and rates[0] > 0
        await pilot.press("o")
        assert groups.sort_column == "p99"
        await pilot.press("space", "g")
        assert not app.dashboard.grouped and sockets.display and not groups.display


async def test_the_cursor_stays_on_its_group_and_groups_have_no_drill_down() -> None:
    app = synthetic_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        await pilot.press("g")
        groups = app.dashboard.query_one(GroupTable)
        groups.focus()
        await until(pilot, lambda: groups.row_count == 4, "the groups")
        await pilot.press("down", "down")
        chosen = groups.selected_key()
        seq = app.viewer.view.shown.seq
        await until(pilot, lambda: app.viewer.view.shown.seq >= seq + 3, "more refreshes")
        assert groups.selected_key() == chosen
        await pilot.press("d")
        assert not isinstance(app.screen, SocketScreen)


async def test_drill_down_names_the_sockets_cgroup_and_namespace() -> None:
    app = synthetic_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: has_data(app), "first snapshots")
        key = int(app.dashboard.query_one("#sockets", SocketTable).selected_key())
        sock = next(s for s in app.viewer.view.shown.sockets if s.key == key)
        await pilot.press("d")
        path = app.screen.query_one("#sock-cgroup", Static)
        await until(pilot, lambda: sock.cgroup in str(path.render()), "the cgroup path")
        summary = app.screen.query_one("#sock-summary", Static)
        assert f"netns {sock.netns_name or sock.netns}" in str(summary.render())


def test_a_sampled_packet_line_ends_with_its_sockets_workload_even_when_deferred() -> None:
    from tui.model.snapshot import PacketEvent
    from tui.widgets.event_log import event_line

    event = PacketEvent(time_ns=1, path=SEND, pid=0, comm="", protocol="TCP", laddr="10.0.0.1", lport=443,
                        raddr="10.0.0.7", rport=5151, length=64, stages_ns={}, total_ns=3000,
                        deferred=True, cgroup="/system.slice/nginx.service")
    assert event_line(event).plain.endswith("[deferred] · nginx.service")
