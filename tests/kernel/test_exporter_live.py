"""``netlat-tui exporter`` on the real kernel, scraped directly and by a real Prometheus server.

One exporter per module (one compile): live probes filtered on a port of ours, a known number of
TCP request/response exchanges on that port, then
- its ``/metrics`` holds exactly those packets in every stage, bucket for bucket the same as the
  snapshot it recorded (``--record``: the tool's own view of the same figures);
- Debian's ``prometheus`` (run directly: loopback, 1 s scrapes, storage in a temporary directory)
  scrapes it, and ``histogram_quantile`` over the scraped buckets agrees with the tool's own
  percentile within the exported bucket's width; the shipped Grafana dashboard's queries and the
  shipped scrape configuration are valid against it;
- with ``--metrics-by comm`` and ``--bpf-stats``, per process name and per BPF program figures;
- SIGTERM ends it with status 0 and leaves none of its BPF programs or maps behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from netns import run_pair  # tests/kernel is on sys.path (rootdir-less test dir)
from prometheus_client.parser import text_string_to_metric_families
from test_probes import _libbpf, _still_loaded, free_port

from tui.exporter.buckets import cumulative_buckets, edges_ns
from tui.exporter.collector import COUNTERS
from tui.model.serialize import snapshot_from_dict
from tui.model.snapshot import RECV, SEND, Snapshot
from tui.model.summary import hist_stat

pytestmark = pytest.mark.kernel

REPO_DIR = Path(__file__).resolve().parents[2]
N = 300  # request/response exchanges
#: (path, stage or total) the checks look at, with the packets each must hold: one request and one
#: response per exchange; the client's FIN also reaches the server's socket but is never read
EXPECTED = {
    (SEND, "tcp_ip"): 2 * N, (SEND, "qdisc"): 2 * N, (SEND, "device"): 2 * N, (SEND, "total"): 2 * N,
    (RECV, "backlog"): 2 * N + 1, (RECV, "ip_tcp"): 2 * N + 1, (RECV, "stack"): 2 * N + 1,
    (RECV, "sock_queue"): 2 * N, (RECV, "copy"): 2 * N, (RECV, "e2e"): 2 * N,
}


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30, every: float = 0.3) -> Any:
    """``check()``'s first truthy result within ``timeout`` seconds; fails naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


class Run:
    """The exporter under test, the port it filters on and the snapshots it recorded."""

    def __init__(self, exporter: Any, port: int, record: Path) -> None:
        self.exporter, self.port, self.record = exporter, port, record

    def recorded(self) -> Snapshot:
        """The newest snapshot the exporter recorded (a complete line: the file grows meanwhile)."""
        lines = [ln for ln in self.record.read_text().splitlines(keepends=True) if ln.endswith("\n")]
        assert len(lines) >= 2, "no snapshot recorded yet"
        return snapshot_from_dict(json.loads(lines[-1]))

    def settled(self) -> Snapshot:
        """The recorded snapshot once two in a row hold the expected counts and the same histograms."""
        def check() -> Snapshot | None:
            first = self.recorded()
            time.sleep(0.6)
            second = self.recorded()
            same = all(first.path(p).get(k).hist == second.path(p).get(k).hist for p, k in EXPECTED)
            full = all(counted(second, p, k, n) for (p, k), n in EXPECTED.items())
            return second if same and full else None

        return wait_for("the recorded counts to settle at the exchanges", check)


def counted(snap: Snapshot, path: str, key: str, expected: int) -> bool:
    """``expected`` packets, less at most the probe runs the kernel skipped (``missed``, normally 0)."""
    got = snap.path(path).get(key).hist.total
    return expected - snap.path(path).counters.get("missed", 0) <= got <= expected


@pytest.fixture(scope="module")
def run(start_exporter, tmp_path_factory) -> Iterator[Run]:
    port = free_port()
    record = tmp_path_factory.mktemp("exporter") / "record.jsonl"
    exporter = start_exporter("--port", str(port), "--interval", "0.5", "--record", str(record),
                              "--bpf-stats", "--metrics-by", "comm")
    try:
        exporter.wait_for_log("source started", 60)
        run_pair(None, None, "127.0.0.1", N, 64, port=port)
        yield Run(exporter, port, record)
    finally:
        exporter.stop()


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def series(family: Any, suffix: str, **labels: str) -> dict[str, float]:
    """``le`` (or "") -> value of one family's samples named ``family.name + suffix`` with ``labels``."""
    return {s.labels.get("le", ""): s.value for s in family.samples
            if s.name == family.name + suffix and all(s.labels.get(k) == v for k, v in labels.items())}


def family_of(snap: Snapshot, path: str, key: str) -> str:
    stats = snap.path(path).get(key)
    assert stats is not None
    return "netlat_path_latency_seconds" if stats.spec.total else "netlat_stage_latency_seconds"


def test_scraped_metrics_hold_exactly_the_exchanges(run: Run) -> None:
    snap = run.settled()
    fams = families(run.exporter.scrape())
    for (path, key), expected in EXPECTED.items():
        name = family_of(snap, path, key)
        stats = snap.path(path).get(key)
        labels = {"path": path, "stage": key, "plan": snap.plan.name}
        count = series(fams[name], "_count", **labels)[""]
        assert expected - snap.path(path).counters.get("missed", 0) <= count <= expected, (path, key)
        # Bucket for bucket what the tool's own snapshot holds (same counts: the traffic is over).
        want = {le: float(c) for le, c in cumulative_buckets(stats.hist, edges_ns())}
        got = {float(le): v for le, v in series(fams[name], "_bucket", **labels).items()}
        assert got == want, (path, key)
    for counter in ("packets", "bytes", "stale", "evicted", "missed", "events_lost"):
        name = COUNTERS[counter][0]
        for path in (SEND, RECV):
            assert series(fams[name], "_total", path=path)[""] == snap.path(path).counters[counter]
    assert snap.path(SEND).counters["packets"] >= 2 * N
    info = series(fams["netlat_info"], "", plan=snap.plan.name, kernel=os.uname().release,
                  filters=f"port={run.port}")
    assert info == {"": 1.0}
    # Per process name: both ends are this test's python processes, N messages each way.
    comm_sent = {s.labels["comm"]: s.value for s in fams["netlat_comm_packets"].samples
                 if s.labels["path"] == SEND}
    assert list(comm_sent.values()) == [2 * N], comm_sent
    # The probes' own cost (--bpf-stats) and the exporter's.
    runs = [s.value for s in fams["netlat_bpf_program_runs"].samples]
    assert len(runs) >= 11 and sum(runs) >= 4 * N
    assert sum(s.value for s in fams["netlat_bpf_program_run_seconds"].samples) > 0
    assert series(fams["process_cpu_seconds"], "_total")[""] > 0
    assert series(fams["process_resident_memory_bytes"], "")[""] > 10e6


# ---- a real Prometheus server ----


class Prometheus:
    """Debian's prometheus binary on loopback, scraping the exporter every second."""

    def __init__(self, binary: str, target: str, workdir: Path) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: netlat\n    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        wait_for("prometheus to be ready", self.ready, timeout=60)

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"prometheus exited {self.proc.returncode}: {self.proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                doc = json.load(r)
        except urllib.error.HTTPError as exc:
            doc = json.load(exc)
        assert doc["status"] == "success", (promql, doc)
        return doc["data"]["result"]

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        assert len(result) <= 1, (promql, result)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def prometheus(run: Run, tmp_path_factory) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:  # conftest turns this skip into a failure under CI=true
        pytest.skip("the prometheus binary is not installed (./setup.sh --test-deps installs it)")
    server = Prometheus(binary, f"127.0.0.1:{run.exporter.port}", tmp_path_factory.mktemp("prometheus"))
    try:
        yield server
    finally:
        server.stop()


QUANTILES = (0.5, 0.9, 0.99)
STAT_KEY = {0.5: "p50_us", 0.9: "p90_us", 0.99: "p99_us"}


def test_prometheus_quantiles_agree_with_the_tool_within_the_bucket_width(
    run: Run, prometheus: Prometheus
) -> None:
    snap = run.settled()
    checked = [(SEND, "total"), (SEND, "tcp_ip"), (RECV, "e2e"), (RECV, "ip_tcp"), (RECV, "sock_queue")]

    def selector(path: str, key: str) -> str:
        return f'{family_of(snap, path, key)}_bucket{{job="netlat", path="{path}", stage="{key}"}}'

    def scraped_all() -> bool:
        # Prometheus has scraped the settled figures: its counts are the recorded ones.
        return all(prometheus.value(f'sum(max_over_time({selector(p, k)[:-1]}, le="+Inf"}}[1m]))')
                   == snap.path(p).get(k).hist.total for p, k in checked)

    wait_for("Prometheus to scrape the settled counts", scraped_all, timeout=30)
    edges = edges_ns()
    for path, key in checked:
        stats = snap.path(path).get(key)
        tool = hist_stat(stats.hist, stats.max_ns)
        for q in QUANTILES:
            ours_s = tool[STAT_KEY[q]] / 1e6
            theirs = prometheus.value(f"histogram_quantile({q}, {selector(path, key)})")
            assert theirs is not None and math.isfinite(theirs), (path, key, q)
            # The exported bucket that holds the tool's value: both answers lie in it.
            ours_ns = ours_s * 1e9
            low = max([0, *(e for e in edges if e <= ours_ns)])
            high = min(e for e in edges if e > ours_ns)
            width_s = (high - low) / 1e9
            assert abs(theirs - ours_s) <= width_s, (path, key, q, theirs, ours_s, width_s)


def test_the_shipped_scrape_config_is_valid() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package has it)")
    result = subprocess.run([promtool, "check", "config", str(REPO_DIR / "deploy/prometheus/netlat-tui.yml")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((REPO_DIR / "deploy/grafana/netlat-tui.json").read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"]
            for target in panel.get("targets", [])]


def test_the_shipped_grafana_queries_run_and_show_the_exporter(run: Run, prometheus: Prometheus) -> None:
    values = {"$instance": ".+", "$path": "send", "$total": "total", "$__rate_interval": "1m"}
    run.settled()
    wait_for("a few scrapes", lambda: (prometheus.value('count_over_time(up{job="netlat"}[1m])') or 0) >= 5)
    empty = []
    for title, expr in dashboard_queries():
        for var, value in values.items():
            expr = expr.replace(var, value)
        if not prometheus.query(expr):
            empty.append((title, expr))
    assert empty == []


# ---- the end ----


def _bpf_ids(pid: int) -> tuple[list[int], list[int]]:
    """(program ids, map ids) a process holds open, from /proc/PID/fdinfo."""
    progs, maps = [], []
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == "prog_id":
                progs.append(int(value))
            elif key == "map_id":
                maps.append(int(value))
    return sorted(set(progs)), sorted(set(maps))


def test_sigterm_detaches_every_probe_and_exits_zero(run: Run) -> None:
    progs, maps = _bpf_ids(run.exporter.proc.pid)
    assert len(progs) >= 11 and len(maps) >= 5, (progs, maps)
    assert run.exporter.stop() == 0
    log = "".join(run.exporter.log)
    assert "stopped on SIGTERM" in log and "probes detached" in log and "Traceback" not in log
    lib = _libbpf()
    left = wait_for("the programs and maps to be freed",
                    lambda: not (_still_loaded(lib.bpf_prog_get_fd_by_id, progs)
                                 or _still_loaded(lib.bpf_map_get_fd_by_id, maps)), timeout=10, every=0.1)
    assert left
