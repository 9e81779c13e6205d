#!/usr/bin/env python3
"""Markdown tables from bench/results/*.json (pasted into bench/RESULTS.md after a run).

    .venv/bin/python bench/report.py > /tmp/tables.md
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def overhead(doc: dict) -> list[str]:
    m = doc["machine"]
    rows = [f"Overhead ({m['date_utc']} UTC, {doc['args']['pairs']} pairs x {doc['args']['duration']} s, "
            "medians of per-pair ratios)", "",
            "| path | tracer | tx/s traced / untraced | range | untraced tx/s | traced tx/s | + ns per tx |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for topo, conds in doc["results"].items():
        for cond, s in conds.items():
            rows.append(f"| {topo} | {cond} | **{s['ratio_median']:.3f}** | {s['ratio_min']:.3f}-"
                        f"{s['ratio_max']:.3f} | {s['base_tps_median']} | {s['tps_median']} | "
                        f"{s['added_ns_per_tx_median']} |")
    return rows


def probe_cost(doc: dict) -> list[str]:
    rows = [f"Per-probe cost (BPF_ENABLE_STATS, {doc['machine']['date_utc']} UTC)", ""]
    for name, r in doc["results"].items():
        rows += [f"{name}: **{r['bpf_ns_per_packet']} ns of BPF per data packet**, "
                 f"{r['bpf_runs_per_packet']} program runs per packet ({r['tps']:.0f} tx/s)", "",
                 "| program | runs per packet | ns per run | ns per packet |", "| --- | --- | --- | --- |"]
        for p in r["programs"]:
            per_pkt = p["ns_total"] / r["data_packets"] if r["data_packets"] else 0
            rows.append(f"| {p['name']} | {p['runs_per_packet']} | {p['ns_per_run']} | {per_pkt:.0f} |")
        rows.append("")
    return rows


def resources(doc: dict) -> list[str]:
    rows = [f"Own CPU and memory ({doc['machine']['date_utc']} UTC, {doc['args']['window']} s windows, "
            f"{doc['args']['runs']} runs, medians)", "",
            "| mode | data packets/s traced | CPU % of one core (max) | RSS MB | peak RSS MB |",
            "| --- | --- | --- | --- | --- |"]
    for name, r in doc["results"].items():
        rows.append(f"| {name} | {r['packets_per_s']:.0f} | **{r['cpu_pct']:.2f}** "
                    f"({r['cpu_pct_max']:.2f}) | {r['rss_mb']:.0f} | {r['peak_rss_mb']:.0f} |")
    return rows


def startup(doc: dict) -> list[str]:
    s = doc["source"]
    c = doc["cli_beyond_duration_s"]
    return [f"Startup ({doc['machine']['date_utc']} UTC, {doc['args']['runs']} runs)", "",
            "| from launch to | median s | max s |", "| --- | --- | --- |",
            f"| imports done | {s['import_s']['median']} | {s['import_s']['max']} |",
            f"| compiled + attached | {s['start_s']['median']} | {s['start_s']['max']} |",
            f"| first snapshot with data | **{s['first_data_s']['median']}** | {s['first_data_s']['max']} |",
            f"| `--headless` exit, beyond `--duration` | {c['median']} | {c['max']} |"]


def ceiling(doc: dict) -> list[str]:
    rows = [f"Throughput ceiling ({doc['machine']['date_utc']} UTC, {doc['args']['duration']} s per rate, "
            f"sample {doc['args']['sample']})", "",
            "| target tx/s | data packets/s | data packets (TCP_INFO) | send total | send deferred | "
            "recv stack | recv e2e | events delivered | events lost |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in doc["results"]:
        rows.append(f"| {r['rate_target']} | {r['packets_per_s']} | {r['data_packets']} | "
                    f"{r['send_total']} | {r['send_deferred']} | {r['recv_stack']} | {r['recv_e2e']} | "
                    f"{r['events_delivered']} | {r['events_lost']} |")
    return rows


def main() -> int:
    for name, render in (("overhead", overhead), ("probe_cost", probe_cost), ("resources", resources),
                         ("startup", startup), ("ceiling", ceiling)):
        doc = _load(name)
        if doc:
            print("\n".join(render(doc)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
