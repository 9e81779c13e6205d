"""The dashboard's --metrics: the runner hands every snapshot to the endpoint while the UI runs."""

from __future__ import annotations

import re
import urllib.request

from ui_helpers import FAST_S, until

from tui.app import NetlatApp
from tui.exporter.server import MetricsEndpoint
from tui.sources.synthetic import SyntheticSource


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read().decode()


async def test_the_dashboard_serves_the_snapshot_it_shows() -> None:
    endpoint = MetricsEndpoint("127.0.0.1", 0)
    endpoint.start()
    try:
        app = NetlatApp(SyntheticSource(seed=7, interval_s=0.5, limit=5), poll_every_s=FAST_S,
                        coalesce=False, taps=(endpoint.publish,))
        async with app.run_test() as pilot:
            await until(pilot, lambda: app.viewer.state == "ended", "the end of the demo data")
            text = scrape(endpoint.url)
    finally:
        endpoint.close()
    # The synthetic source sends exactly 400 packets a path per tick: 5 ticks.
    sent = re.search(r'^netlat_packets_total\{[^}]*path="send"[^}]*\} (\S+)$', text, re.M)
    assert sent is not None, text[:2000]
    assert float(sent.group(1)) == 400 * 5 == app.viewer.current.paths["send"].counters["packets"]
