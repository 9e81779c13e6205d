"""Command line: parse and validate arguments, then hand over to the dashboard, headless or doctor.

Every user-facing failure surfaces here as one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tui import __version__
from tui.argtypes import listen_address, metrics_labels, number
from tui.bpf.program import DEFAULT_MAX_SOCKETS, MAX_SOCKETS, MIN_SOCKETS
from tui.errors import UserError, fail
from tui.exporter import DEFAULT_LISTEN
from tui.exporter.buckets import PER_OCTAVE_CHOICES
from tui.model.filters import FilterError, Filters
from tui.sources.runner import tune_gc

EXAMPLES = """\
examples:
  sudo netlat-tui                          live dashboard of all TCP/UDP traffic
  sudo netlat-tui --workload loopback      ... with a built-in loopback load to look at
  sudo netlat-tui --port 443 --comm nginx  only nginx's port-443 sockets
  sudo netlat-tui --cgroup system.slice/nginx.service   one service (its group and below)
  sudo netlat-tui --netns blue             one network namespace (ip netns name, inode or path)
  sudo netlat-tui --sample 16              follow 1 packet in 16 (busy hosts)
  sudo netlat-tui --headless --duration 5 --json   one JSON summary for scripts
  sudo netlat-tui --record run.jsonl       record snapshots while watching
  netlat-tui --replay run.jsonl            replay a recording (no root needed)
  netlat-tui --synthetic                   demo data, no probes
  sudo netlat-tui doctor                   what this kernel offers and what would run
  sudo netlat-tui exporter                 Prometheus metrics on 127.0.0.1:9465 (exporter --help)
"""

PROBE_CHOICES = ("auto", "tracepoint", "kprobe", "fentry")
WORKLOADS = ("none", "loopback")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="netlat-tui",
        description="Live per-layer latency of the Linux TCP/IP stack (send and receive), "
        "measured with BCC eBPF probes.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"netlat-tui {__version__}")
    src = p.add_argument_group("source")
    _add_probe_options(src)
    src.add_argument("--replay", metavar="FILE", help="play back a recording (no root needed)")
    src.add_argument("--speed", type=_positive_float, default=1.0, metavar="X",
                     help="replay speed factor (default 1)")
    src.add_argument("--synthetic", action="store_true", help="deterministic demo data, no probes")
    src.add_argument("--record", metavar="FILE", help="write every snapshot to FILE (JSON lines)")
    src.add_argument("--workload", choices=WORKLOADS, default="none",
                     help="drive a built-in traffic load while running (default none)")
    src.add_argument("--ebpf", action="store_true", help="print the generated BPF C and exit")
    src.add_argument("--no-cost", dest="cost", action="store_false",
                     help="do not measure the probes' own run time (shown in the header and the JSON; "
                          "measuring has the kernel time every BPF program run, 20-40 ns each)")
    _add_filter_options(p)
    hl = p.add_argument_group("headless")
    hl.add_argument("--headless", action="store_true", help="no UI: run, then print a summary")
    hl.add_argument("--duration", type=_positive_float, default=5.0, metavar="S",
                    help="headless run time in seconds (default 5)")
    hl.add_argument("--json", action="store_true", help="headless: print the JSON document")
    hl.add_argument("--top", type=_positive_int, default=None, metavar="N",
                    help="headless: list the N busiest sockets (default: every socket)")
    met = p.add_argument_group("Prometheus metrics while the dashboard runs (see: netlat-tui exporter)")
    met.add_argument("--metrics", type=listen_address, metavar="ADDR:PORT",
                     help="also serve /metrics on ADDR:PORT (e.g. 127.0.0.1:9465)")
    _add_metrics_options(met)
    return p


def _add_probe_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--probes", choices=PROBE_CHOICES, default="auto",
                       help="probe plan (default: the best this kernel supports)")
    group.add_argument("--sample", type=_positive_int, default=1, metavar="N",
                       help="follow 1 packet in N for latency (default 1: every packet); "
                            "socket counters still count every send and read")
    group.add_argument("--interval", type=_positive_float, default=1.0, metavar="S",
                       help="seconds between refreshes, and the length of one timeline interval "
                            "(heatmap column, JSON timeline entry; default 1)")
    group.add_argument("--max-sockets", type=_max_sockets, default=DEFAULT_MAX_SOCKETS, metavar="N",
                       help=f"socket table rows (default {DEFAULT_MAX_SOCKETS}); sockets beyond are "
                            "counted as dropped")


def _add_filter_options(p: argparse.ArgumentParser) -> None:
    flt = p.add_argument_group("filters (validated, compiled into the probes)")
    flt.add_argument("--pid", help="process id")
    flt.add_argument("--comm", help="process name (up to 15 characters)")
    flt.add_argument("--port", help="local or remote port (UDP: of each datagram, so an unconnected "
                     "socket's datagrams to or from it count)")
    flt.add_argument("--lport", help="local port (UDP: of each datagram)")
    flt.add_argument("--rport", help="remote port (UDP: of each datagram)")
    flt.add_argument("--addr", help="local or remote IP address (UDP: of each datagram)")
    flt.add_argument("--family", help="4 or 6")
    flt.add_argument("--protocol", help="tcp or udp")
    flt.add_argument("--iface", help="network interface name")
    flt.add_argument("--cgroup", metavar="PATH",
                     help="cgroup v2 group and its descendants: absolute, or relative to the cgroup2 "
                          "mount (the socket's own group: the one of the process that created it)")
    flt.add_argument("--netns", metavar="NAME|INODE|PATH",
                     help="network namespace: ip netns name, inode, or /proc/PID/ns/net")


def _add_metrics_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--metrics-by", type=metrics_labels, metavar="comm[,cgroup]",
                       help="also label traffic and latency by process name (comm) and/or by the "
                            "sockets' own cgroup (cgroup and workload labels), never by pid or socket")
    group.add_argument("--metrics-comm-limit", type=_positive_int, default=20, metavar="N",
                       help="with --metrics-by comm: at most N process names get a label, the rest "
                            "count as '_other' (default 20)")
    group.add_argument("--metrics-cgroup-limit", type=_positive_int, default=20, metavar="N",
                       help="with --metrics-by cgroup: at most N cgroups get a label, the rest count "
                            "as '_other' (default 20)")
    group.add_argument("--buckets-per-octave", type=int, choices=PER_OCTAVE_CHOICES, default=1,
                       metavar="N", help="latency bucket edges per power of two: 1 (default), 2, 4 or "
                       "8; every edge is one of the kernel's own (exact counts)")


EXPORTER_EXAMPLES = """\
examples:
  sudo netlat-tui exporter                             serve http://127.0.0.1:9465/metrics
  sudo netlat-tui exporter --listen 0.0.0.0:9465       ... on every interface (ask for it)
  sudo netlat-tui exporter --port 443 --sample 16      only port 443, 1 packet in 16 followed
  sudo netlat-tui exporter --metrics-by comm           also per process name (capped)
  netlat-tui exporter --synthetic                      demo data, no probes, no root
"""


def build_exporter_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="netlat-tui exporter",
        description="Serve netlat-tui's figures as Prometheus metrics, headless and long-running "
        "(logs on stderr; SIGTERM, SIGINT or SIGHUP detach the probes and exit 0).",
        epilog=EXPORTER_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--listen", type=listen_address, default=DEFAULT_LISTEN, metavar="ADDR:PORT",
                   help="address to serve /metrics on (default 127.0.0.1:9465; port 0: any free one)")
    src = p.add_argument_group("source")
    _add_probe_options(src)
    src.add_argument("--synthetic", action="store_true", help="deterministic demo data, no probes")
    src.add_argument("--record", metavar="FILE",
                     help="also write every snapshot to FILE (JSON lines; it grows: for debugging)")
    src.add_argument("--bpf-stats", action="store_true",
                     help="have the kernel time each BPF program run (BPF_ENABLE_STATS, a few tens of "
                          "ns per run) and export it")
    _add_filter_options(p)
    _add_metrics_options(p.add_argument_group("metrics"))
    p.set_defaults(cost=False)  # --bpf-stats decides whether the kernel times our programs
    return p


def build_doctor_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="netlat-tui doctor",
        description="Check what this kernel and machine offer and which probe plan would run.",
    )
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    return p


_positive_int = number(int, expect="a whole number", at_least=1)
_positive_float = number(float, expect="a number", above=0)
_max_sockets = number(int, expect="a whole number", what="--max-sockets", at_least=MIN_SOCKETS,
                      at_most=MAX_SOCKETS)


def filters_from_args(args: argparse.Namespace) -> Filters:
    """Validated Filters from the filter options; raises UserError with a one-line message."""
    try:
        return Filters.parse(
            pid=args.pid, comm=args.comm, port=args.port, lport=args.lport, rport=args.rport,
            addr=args.addr, family=args.family, protocol=args.protocol, iface=args.iface,
            cgroup=args.cgroup, netns=args.netns,
        )
    except FilterError as exc:
        raise UserError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tune_gc()  # every mode runs a SourceRunner, whose ticks are allocation-heavy
    try:
        if argv[:1] == ["doctor"]:
            from tui.doctor import run_doctor

            return run_doctor(build_doctor_parser().parse_args(argv[1:]))
        if argv[:1] == ["exporter"]:
            args = build_exporter_parser().parse_args(argv[1:])
            args.filters = filters_from_args(args)
            from tui.exporter.run import run_exporter

            return run_exporter(args)
        args = build_parser().parse_args(argv)
        args.filters = filters_from_args(args)
        if args.headless or args.ebpf:
            from tui.headless import run_headless

            return run_headless(args)
        from tui.app import run_app

        return run_app(args)
    except UserError as exc:
        return fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): say nothing more, as cat does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
