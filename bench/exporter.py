#!/usr/bin/env python3
"""What ``netlat-tui exporter`` costs: its CPU and memory idle and under load, and the cost of a scrape.

Conditions (each --runs times, medians): the exporter with every packet followed, on a quiet machine
(``idle``) and while the built-in request/response load runs paced at --rate transactions/s (two
data packets each; 25k tx/s = 50k packets/s); then the exporter with --sample 16 under the same load.
The exporter is pinned to --tool-cpu, the load to --load-cpu (as in resources.py). During each
window /metrics is scraped every --scrape-every seconds (1 s: fifteen times Prometheus' default
rate, a worst case), and the exporter's CPU (user+sys from /proc/PID/stat) is taken over the window,
scrapes included. Scrape cost: the wall time of one GET (text format and OpenMetrics) and the body
size, measured in bursts of --burst back-to-back scrapes after each window, for the default bucket
edges and for --buckets-per-octave 8 with --metrics-by comm.

    sudo .venv/bin/python bench/exporter.py
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time
import urllib.request

from benchlib import (
    PYTHON,
    Tracer,
    check_quiet,
    cpu_ticks,
    log,
    machine_info,
    median,
    rr,
    rss_kb,
    wait_quiet,
    write_result,
)

TICK = os.sysconf("SC_CLK_TCK")
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exporter(port: int, cpu: int, *extra: str) -> Tracer:
    # python -m tui from the checkout (Tracer's cwd): this tree's code, whatever the venv points at
    cmd = [PYTHON, "-m", "tui", "exporter", "--listen", f"127.0.0.1:{port}", *extra]
    return Tracer("exporter", [cmd], cpu)


def scrape(port: int, accept: str = "") -> tuple[float, int]:
    """(seconds, body bytes) of one GET /metrics."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Accept": accept} if accept else {})
    t0 = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return time.perf_counter() - t0, len(body)


def wait_serving(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if scrape(port)[1] > 1000:  # netlat_* families are there: the first snapshot is published
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("bench: the exporter never served its figures")


def burst(port: int, count: int) -> dict:
    text = [scrape(port) for _ in range(count)]
    om = [scrape(port, OPENMETRICS) for _ in range(count)]
    return {
        "scrape_ms": round(1000 * median([t for t, _ in text]), 2),
        "scrape_ms_max": round(1000 * max(t for t, _ in text), 2),
        "openmetrics_ms": round(1000 * median([t for t, _ in om]), 2),
        "bytes": text[-1][1],
        "series": None,
    }


def measure(args: argparse.Namespace, load: bool, *extra: str) -> dict:
    port = free_port()
    with exporter(port, args.tool_cpu, *extra) as tracer:
        pid = tracer.procs[0].pid
        wait_serving(port)
        stop = threading.Event()
        times: list[float] = []

        def scraper() -> None:
            while not stop.wait(args.scrape_every):
                times.append(scrape(port)[0])

        thread = threading.Thread(target=scraper, daemon=True)
        t0, ticks0 = time.monotonic(), cpu_ticks(pid)
        thread.start()
        packets_per_s = 0.0
        if load:
            result = rr(args.window, args.load_cpu, rate=args.rate)
            packets_per_s = (result["data_segs_out"] + result["data_segs_in"]) / result["duration_s"]
        else:
            time.sleep(args.window)
        stop.set()
        thread.join()
        t1, ticks1 = time.monotonic(), cpu_ticks(pid)
        rss, hwm = rss_kb(pid)
        scrapes = burst(port, args.burst)
        series = sum(1 for line in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read()
                     .decode().splitlines() if line and not line.startswith("#"))
        scrapes["series"] = series
    return {
        "cpu_pct": round(100.0 * (ticks1 - ticks0) / TICK / (t1 - t0), 2),
        "rss_mb": round(rss / 1024, 1),
        "peak_rss_mb": round(hwm / 1024, 1),
        "packets_per_s": round(packets_per_s),
        "scrapes_in_window": len(times),
        "window_scrape_ms": round(1000 * median(times), 2),
        **scrapes,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=25000, help="transactions/s under load (x2 = packets/s)")
    p.add_argument("--window", type=float, default=10.0, help="seconds measured per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--scrape-every", type=float, default=1.0, help="seconds between scrapes in a window")
    p.add_argument("--burst", type=int, default=50, help="back-to-back scrapes timed after a window")
    p.add_argument("--load-cpu", type=int, default=1)
    p.add_argument("--tool-cpu", type=int, default=0)
    p.add_argument("--name", default="exporter")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root")
    conditions = {
        "idle": (False, ()),
        "load": (True, ()),
        "load_sample16": (True, ("--sample", "16")),
        "load_fine_comm": (True, ("--buckets-per-octave", "8", "--metrics-by", "comm")),
    }
    doc = {"machine": machine_info(), "quiet_at_start": check_quiet(), "args": vars(args), "results": {}}
    keys = ("cpu_pct", "rss_mb", "peak_rss_mb", "packets_per_s", "window_scrape_ms", "scrape_ms",
            "scrape_ms_max", "openmetrics_ms", "bytes", "series")
    for name, (load, extra) in conditions.items():
        runs = []
        for i in range(args.runs):
            wait_quiet()
            runs.append(measure(args, load, *extra))
            log(f"{name} run {i + 1}: {runs[-1]}")
        doc["results"][name] = {key: median([r[key] for r in runs]) for key in keys} | {
            "cpu_pct_max": max(r["cpu_pct"] for r in runs), "runs": runs}
    doc["quiet_at_end"] = check_quiet()
    write_result(args.name, doc)
    print(f"{'condition':16} {'cpu %':>6} {'max':>6} {'rss MB':>7} {'pkts/s':>8} {'scrape ms':>10} "
          f"{'OM ms':>6} {'bytes':>7} {'series':>6}")
    for name, r in doc["results"].items():
        print(f"{name:16} {r['cpu_pct']:6.2f} {r['cpu_pct_max']:6.2f} {r['rss_mb']:7.1f} "
              f"{r['packets_per_s']:8.0f} {r['scrape_ms']:10.2f} {r['openmetrics_ms']:6.2f} "
              f"{r['bytes']:7.0f} {r['series']:6.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
