"""``netlat-tui exporter`` as a process, on the synthetic source (no root): serving, the signals that
end it with status 0, and the one-line errors for a bad or busy address."""

from __future__ import annotations

import signal
import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tui.cli import build_exporter_parser, build_parser


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_serves_metrics_and_a_signal_ends_it_cleanly(start_exporter, sig: int) -> None:
    exporter = start_exporter("--synthetic", "--interval", "0.2")
    exporter.wait_for_log("source started", 30)
    names = {f.name for f in text_string_to_metric_families(exporter.scrape())}
    assert {"netlat_stage_latency_seconds", "netlat_packets", "process_cpu_seconds"} <= names
    om = exporter.scrape("application/openmetrics-text; version=1.0.0")
    assert om.rstrip().endswith("# EOF")
    assert exporter.stop(sig) == 0
    log = "".join(exporter.log)
    assert f"stopped on {signal.Signals(sig).name}" in log and "Traceback" not in log
    assert exporter.stdout == ""  # logs go to stderr only


def test_a_port_in_use_is_one_line_and_nonzero(run_cli) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("exporter", "--synthetic", "--listen", f"127.0.0.1:{port}", timeout=30)
    assert result.returncode != 0
    assert result.stderr == f"netlat-tui: cannot listen on 127.0.0.1:{port}: the port is in use\n"


@pytest.mark.parametrize(("listen", "message"), [
    ("localhost:9465", "is not an IP address"),
    ("127.0.0.1:99999", "port must be 0..65535"),
    ("9465", "expected ADDR:PORT"),
])
def test_a_bad_address_is_one_line_and_nonzero(run_cli, listen: str, message: str) -> None:
    result = run_cli("exporter", "--synthetic", "--listen", listen, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert message in lines[-1] and "Traceback" not in result.stderr


def test_an_address_not_on_this_machine_is_one_line(run_cli) -> None:
    result = run_cli("exporter", "--synthetic", "--listen", "192.0.2.1:9465", timeout=30)
    assert result.returncode != 0
    assert result.stderr == "netlat-tui: cannot listen on 192.0.2.1:9465: no such address on this machine\n"


def test_bad_filters_never_reach_the_probes(run_cli) -> None:
    result = run_cli("exporter", "--port", "70000", "--listen", "127.0.0.1:0", timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_defaults_listen_on_loopback_and_the_dashboard_takes_metrics() -> None:
    args = build_exporter_parser().parse_args([])
    assert args.listen == ("127.0.0.1", 9465) and args.metrics_by is None
    dash = build_parser().parse_args(["--metrics", "[::1]:9100", "--metrics-by", "comm"])
    assert dash.metrics == ("::1", 9100) and dash.metrics_by == ("comm",)
    both = build_exporter_parser().parse_args(["--metrics-by", "cgroup,comm", "--metrics-cgroup-limit", "5"])
    assert both.metrics_by == ("cgroup", "comm") and both.metrics_cgroup_limit == 5


def test_an_unknown_metrics_label_is_one_line(run_cli) -> None:
    result = run_cli("exporter", "--synthetic", "--metrics-by", "pid", timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("expected comm, cgroup or comm,cgroup, got 'pid'")
    assert build_parser().parse_args([]).metrics is None


def test_dashboard_endpoint_listens_and_serves_what_it_is_given() -> None:
    import urllib.request

    from tui.exporter.server import dashboard_endpoint
    from tui.sources.synthetic import SyntheticSource

    assert dashboard_endpoint(build_parser().parse_args([])) is None
    endpoint = dashboard_endpoint(build_parser().parse_args(["--metrics", "127.0.0.1:0"]))
    assert endpoint is not None
    try:
        source = SyntheticSource()
        source.start()
        endpoint.publish(source.poll())  # what a runner tap does with each snapshot
        with urllib.request.urlopen(endpoint.url, timeout=10) as response:
            assert b"netlat_stage_latency_seconds_bucket" in response.read()
    finally:
        endpoint.close()
