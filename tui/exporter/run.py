"""``netlat-tui exporter``: the headless, long-running loop that keeps /metrics current.

Friendly to systemd: logs go to stderr (the journal adds the time), nothing is printed on stdout,
SIGTERM, SIGINT and SIGHUP end it with status 0 after the source is closed (every probe detached).
The listen address is bound before the probes compile, so a port in use is a one-line error at once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from tui.errors import UserError
from tui.exporter.server import MetricsEndpoint
from tui.sources.base import Source, SourceError
from tui.sources.factory import make_source, unwrap

log = logging.getLogger("netlat-tui.exporter")
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_exporter(args: argparse.Namespace) -> int:
    """Serve metrics until a signal (0), the source ends (0) or fails (one-line error, non-zero)."""
    _log_to_stderr()
    args.replay, args.speed = None, 1.0  # make_source's other inputs: the exporter measures live
    endpoint = MetricsEndpoint.from_args(args, args.listen)
    endpoint.start()
    log.info("serving %s", endpoint.url)
    stop = _Stop()
    try:
        with _stop_on_signals(stop), _bpf_stats(args.bpf_stats):
            source = make_source(args)
            try:
                _serve(source, endpoint, stop, args.interval)
            finally:
                source.close()
                log.info("source closed (probes detached)")
    except SourceError as exc:
        raise UserError(str(exc), exit_code=1) from None
    finally:
        endpoint.close()
    return 0


def _serve(source: Source, endpoint: MetricsEndpoint, stop: _Stop, interval_s: float) -> None:
    t0 = time.monotonic()
    source.start()
    first = True
    while not stop.event.is_set():
        snapshot = source.poll()
        if snapshot is None:
            log.info("the source ended")
            return
        endpoint.publish(snapshot, program_costs(source))
        if first:
            log.info("%s source started in %.1f s, plan %s%s", snapshot.meta.source,
                     time.monotonic() - t0, snapshot.plan.name,
                     f", filters {snapshot.meta.filters}" if snapshot.meta.filters else "")
            first = False
        stop.event.wait(interval_s)
    log.info("stopping on %s", stop.reason)


class _Stop:
    """Set by a signal handler: the loop ends at its next wait."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""


def program_costs(source: Source) -> Mapping[tuple[str, str], tuple[int, int]]:
    """(program, path) -> (runs, run ns) of a live source's programs, when the kernel counts them."""
    read = getattr(unwrap(source), "prog_stats", None)
    if read is None:
        return {}
    from tui.bpf.plans import program_path

    stats = read()
    if not any(runs for runs, _ns in stats.values()):
        return {}  # BPF_ENABLE_STATS is off: no figures rather than zeros that look measured
    return {(name, program_path(name)): figures for name, figures in stats.items()}


@contextlib.contextmanager
def _stop_on_signals(stop: _Stop) -> Iterator[None]:
    def handler(signum: int, _frame: Any) -> None:
        stop.reason = signal.Signals(signum).name
        stop.event.set()

    previous = {sig: signal.signal(sig, handler) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _bpf_stats(wanted: bool) -> Iterator[None]:
    """Hold BPF_ENABLE_STATS open while running, when asked (the kernel then times every run)."""
    if not wanted:
        yield
        return
    from tui.bpf.stats import enable_stats

    try:
        fd = enable_stats()
    except OSError as exc:
        raise UserError(f"--bpf-stats: the kernel refused BPF_ENABLE_STATS ({exc})") from None
    try:
        yield
    finally:
        os.close(fd)


def _log_to_stderr() -> None:
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("netlat-tui exporter: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
