#!/usr/bin/env python3
"""Startup: from launching a process to the first live snapshot with data (compile and attach included).

Two measurements, each repeated --runs times (medians and maxima reported), with the dashboard's
loopback mix running so there is traffic to see:
- source: bench/first_data.py, a fresh interpreter that imports the live source, starts it
  (BCC compile + attach) and polls until a snapshot holds a packet;
- cli: `netlat-tui --headless --duration D --json` wall time minus D (what a script waits for).

    sudo .venv/bin/python bench/startup.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time

from benchlib import NETLAT, PYTHON, REPO, check_quiet, log, machine_info, median, wait_quiet, write_result

from tui.workload import LoopbackWorkload


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--cli-duration", type=float, default=1.0)
    p.add_argument("--name", default="startup")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root")
    doc = {"machine": machine_info(), "quiet_at_start": check_quiet(), "args": vars(args)}
    source_runs, cli_runs = [], []
    with LoopbackWorkload("mixed"):
        for i in range(args.runs):
            wait_quiet(0.2)  # the loopback mix itself keeps a few % busy
            launched = time.time()
            out = subprocess.run([PYTHON, str(REPO / "bench" / "first_data.py"), repr(launched)],
                                 check=True, capture_output=True, text=True, cwd=REPO)
            source_runs.append(json.loads(out.stdout))
            log(f"run {i + 1}: source {source_runs[-1]}")
            t0 = time.monotonic()
            out = subprocess.run([NETLAT, "--headless", "--duration", str(args.cli_duration), "--json"],
                                 check=True, capture_output=True, text=True, cwd=REPO)
            wall = time.monotonic() - t0
            json.loads(out.stdout)  # a whole document came out
            cli_runs.append(round(wall - args.cli_duration, 3))
            log(f"run {i + 1}: cli overhead beyond --duration {cli_runs[-1]} s")
    doc["source"] = {
        key: {"median": round(median([r[key] for r in source_runs]), 3),
              "max": max(r[key] for r in source_runs)}
        for key in ("import_s", "start_s", "first_data_s")
    }
    doc["source"]["runs"] = source_runs
    doc["cli_beyond_duration_s"] = {"median": median(cli_runs), "max": max(cli_runs), "runs": cli_runs}
    doc["quiet_at_end"] = check_quiet()
    write_result(args.name, doc)
    s = doc["source"]
    print(f"launch -> imports {s['import_s']['median']} s, -> compiled+attached {s['start_s']['median']} s, "
          f"-> first data {s['first_data_s']['median']} s (max {s['first_data_s']['max']} s)")
    print(f"netlat-tui --headless: {doc['cli_beyond_duration_s']['median']} s beyond --duration "
          f"(max {doc['cli_beyond_duration_s']['max']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
