"""``python -m tui.workload rr|serve|mixed``: the loads from a command line (tests, benchmarks)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict

from tui.argtypes import cpu, ipv4, ipv4_port, number, whole
from tui.workload.loopback import LoopbackWorkload, WorkloadError
from tui.workload.rr import RRResult, pin, run_rr, run_rr_client, serve_rr
from tui.workload.wire import LOOPBACK, listen

_seconds = number(float, expect="seconds", above=0, at_most=3600)
_rate = number(float, expect="transactions per second", what="rate", above=0, at_most=10_000_000)
_size = whole("size", 1, 65536)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tui.workload",
        description="Bounded traffic loads for netlat-tui's tests and benchmarks.",
        epilog="examples:\n"
        "  python -m tui.workload rr --duration 5 --cpu 1 --json     pinned 1-byte TCP_RR on loopback\n"
        "  python -m tui.workload rr --duration 5 --rate 20000        paced at 20k transactions/s\n"
        "  ip netns exec A python -m tui.workload serve --bind 10.9.0.1 --port 5001 --cpu 1\n"
        "  ip netns exec B python -m tui.workload rr --connect 10.9.0.1:5001 --cpu 1 --duration 5\n"
        "  python -m tui.workload mixed --duration 10                 the dashboard's loopback mix\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    rr = sub.add_parser("rr", help="pinned TCP request/response; prints transactions and transactions/s")
    rr.add_argument("--duration", type=_seconds, default=5.0, metavar="S")
    rr.add_argument("--cpu", type=cpu, metavar="N", help="pin the client (and server) to this CPU")
    rr.add_argument("--server-cpu", type=cpu, metavar="N", help="pin the server here (default --cpu)")
    rr.add_argument("--size", type=_size, default=1, metavar="B")
    rr.add_argument("--port", type=whole("port", 0, 65535), default=0, metavar="P",
                    help="server port on 127.0.0.1 (default: ephemeral)")
    rr.add_argument("--rate", type=_rate, metavar="TPS", help="pace the client (default: as fast as it can)")
    rr.add_argument("--connect", type=ipv4_port, metavar="IP:PORT",
                    help="use a running `serve` instead of forking one (e.g. across namespaces)")
    rr.add_argument("--json", action="store_true")
    srv = sub.add_parser("serve", help="echo server for `rr --connect` (one connection; JSON lines)")
    srv.add_argument("--bind", type=ipv4, default=LOOPBACK, metavar="IP")
    srv.add_argument("--port", type=whole("port", 1, 65535), required=True, metavar="P")
    srv.add_argument("--cpu", type=cpu, metavar="N")
    srv.add_argument("--size", type=_size, default=1, metavar="B")
    srv.add_argument("--duration", type=_seconds, default=600.0, metavar="S",
                     help="give up waiting for a client after this long")
    mix = sub.add_parser("mixed", help="the dashboard's loopback mix for a while; prints its counts")
    mix.add_argument("--duration", type=_seconds, default=5.0, metavar="S")
    mix.add_argument("--json", action="store_true")
    return p


def _print_rr(result: RRResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(result)))
    else:
        print(f"transactions {result.transactions}  tps {result.tps:.0f}  "
              f"served {result.served}  duration {result.duration_s:.2f}s")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "rr":
            server_cpu = args.server_cpu if args.server_cpu is not None else args.cpu
            if args.connect:
                pin(args.cpu)
                count, elapsed, segs = run_rr_client(args.connect, args.size, args.duration, args.rate)
                result = RRResult(count, -1, round(elapsed, 4), round(count / elapsed, 1), args.size,
                                  args.cpu, None, args.connect[1], segs.data_segs_out, segs.data_segs_in)
            else:
                result = run_rr(args.duration, args.size, args.cpu, server_cpu, args.port, args.rate)
            _print_rr(result, args.json)
        elif args.command == "serve":
            listener = listen(args.bind, args.port)
            pin(args.cpu)
            with listener:
                # one JSON line when ready (scripts wait for it), one with the count at the end
                print(json.dumps({"listening": f"{args.bind}:{args.port}"}), flush=True)
                print(json.dumps({"served": serve_rr(listener, args.size, time.monotonic() + args.duration)}))
        else:
            with LoopbackWorkload("mixed") as load:
                time.sleep(args.duration)
            counts = load.counts()
            print(json.dumps(asdict(counts)) if args.json else
                  "  ".join(f"{k} {v}" for k, v in asdict(counts).items()))
    except (OSError, WorkloadError) as exc:
        print(f"tui.workload: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
