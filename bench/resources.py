#!/usr/bin/env python3
"""netlat-tui's own CPU (user+sys, % of one core) and memory while it traces ~50k packets/s.

The load is the pinned request/response load paced at --rate transactions/s (two data packets
each: 25k tx/s = 50k packets/s, every one crossing the send and the receive path). The tool is
pinned to the other CPU; its CPU is read from /proc/PID/stat over the load window only (after
attach: the BCC compile at start is startup, measured by bench/startup.py). Memory: VmRSS at the
end of the window and VmHWM (the peak, which includes the compile).

Conditions: headless with every packet, headless with --sample N, and the dashboard itself running
in a detached tmux session of 160x48 (needs tmux).

    sudo .venv/bin/python bench/resources.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time

from benchlib import (
    NETLAT,
    REPO,
    Tracer,
    check_quiet,
    cpu_ticks,
    log,
    machine_info,
    median,
    netlat_cmd,
    rr,
    rss_kb,
    wait_quiet,
    write_result,
)

TICK = os.sysconf("SC_CLK_TCK")


class Dashboard(Tracer):
    """The Textual dashboard in a detached tmux session, pinned like the other tracers."""

    session = f"nlbench{os.getpid()}"

    def __init__(self, cpu: int) -> None:
        super().__init__("dashboard", [], cpu)
        self.pid = 0
        # a private server socket: the shared default one belongs to whoever made it first
        self.tmux = ["tmux", "-S", os.path.join(tempfile.mkdtemp(prefix="nlbench-tmux-"), "sock")]

    def start(self) -> Dashboard:
        cmd = f"exec taskset -c {self.cpu} {NETLAT}"
        subprocess.run([*self.tmux, "new-session", "-d", "-s", self.session, "-x", "160", "-y", "48", cmd],
                       check=True, cwd=REPO)
        out = subprocess.run([*self.tmux, "list-panes", "-t", self.session, "-F", "#{pane_pid}"],
                             check=True, capture_output=True, text=True)
        self.pid = int(out.stdout.split()[0])

        class _P:  # what Tracer._wait_attached needs of a process
            pid = self.pid

            @staticmethod
            def poll() -> int | None:
                return None if os.path.exists(f"/proc/{self.pid}") else 1

        self._wait_attached(_P)  # type: ignore[arg-type]
        return self

    def stop(self) -> list[int]:
        subprocess.run([*self.tmux, "send-keys", "-t", self.session, "q"], capture_output=True)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{self.pid}") and time.monotonic() < deadline:
            time.sleep(0.1)
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)
        shutil.rmtree(os.path.dirname(self.tmux[2]), ignore_errors=True)
        return [0]


def measure(tracer: Tracer, args: argparse.Namespace) -> dict:
    with tracer:
        pid = tracer.pid if isinstance(tracer, Dashboard) else tracer.procs[0].pid
        t0, ticks0 = time.monotonic(), cpu_ticks(pid)
        load = rr(args.window, args.load_cpu, rate=args.rate)
        t1, ticks1 = time.monotonic(), cpu_ticks(pid)
        rss, hwm = rss_kb(pid)
    packets = load["data_segs_out"] + load["data_segs_in"]
    return {
        "cpu_pct": round(100.0 * (ticks1 - ticks0) / TICK / (t1 - t0), 2),
        "rss_mb": round(rss / 1024, 1),
        "peak_rss_mb": round(hwm / 1024, 1),
        "packets_per_s": round(packets / load["duration_s"]),
        "tps": load["tps"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=25000, help="transactions/s (x2 = data packets/s)")
    p.add_argument("--window", type=float, default=10.0, help="seconds measured per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--sample", type=int, default=16)
    p.add_argument("--load-cpu", type=int, default=1)
    p.add_argument("--tool-cpu", type=int, default=0)
    p.add_argument("--no-dashboard", action="store_true")
    p.add_argument("--name", default="resources")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root")
    makers = {
        "headless": lambda: Tracer("headless", [netlat_cmd()], args.tool_cpu),
        f"headless_sample{args.sample}": lambda: Tracer(
            "headless_sample", [netlat_cmd("--sample", str(args.sample))], args.tool_cpu),
    }
    if not args.no_dashboard and shutil.which("tmux"):
        makers["dashboard"] = lambda: Dashboard(args.tool_cpu)
    doc = {"machine": machine_info(), "quiet_at_start": check_quiet(), "args": vars(args), "results": {}}
    for name, make in makers.items():
        runs = []
        for i in range(args.runs):
            wait_quiet()
            runs.append(measure(make(), args))
            log(f"{name} run {i + 1}: {runs[-1]}")
        keys = ("cpu_pct", "rss_mb", "peak_rss_mb", "packets_per_s")
        doc["results"][name] = {key: median([r[key] for r in runs]) for key in keys} | {
            "cpu_pct_max": max(r["cpu_pct"] for r in runs), "runs": runs}
    doc["quiet_at_end"] = check_quiet()
    write_result(args.name, doc)
    print(f"{'condition':20} {'cpu %':>6} {'max':>6} {'rss MB':>7} {'peak MB':>8} {'pkts/s':>8}")
    for name, r in doc["results"].items():
        print(f"{name:20} {r['cpu_pct']:6.2f} {r['cpu_pct_max']:6.2f} {r['rss_mb']:7.1f} "
              f"{r['peak_rss_mb']:8.1f} {r['packets_per_s']:8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
