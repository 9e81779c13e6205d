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
from tui.sources.base import Source
from tui.sources.factory import make_source
from tui.sources.runner import SourceRunner, Tick

log = logging.getLogger("netlat-tui.exporter")
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_exporter(args: argparse.Namespace) -> int:
    """Serve metrics until a signal (0), the source ends (0) or fails (one-line error, status 1)."""
    _log_to_stderr()
    args.replay, args.speed = None, 1.0  # make_source's other inputs: the exporter measures live
    endpoint = MetricsEndpoint.from_args(args, args.listen)
    endpoint.start()
    log.info("serving %s", endpoint.url)
    stop, sink = _Stop(), _LogSink()
    try:
        with _stop_on_signals(stop), _bpf_stats(args.bpf_stats):
            source = make_source(args)  # refilters happen in place: the runner keeps this object
            runner = SourceRunner(source, taps=(lambda snap: endpoint.publish(snap, program_costs(source)),),
                                  timeline=False)  # Prometheus keeps the history
            runner.run(sink, stop.event)  # closes the source (detaches the probes) when it returns
            log.info("source closed (probes detached)")
    finally:
        endpoint.close()
    if sink.failure:
        raise UserError(sink.failure, exit_code=1)
    if stop.reason:
        log.info("stopped on %s", stop.reason)
    return 0


class _LogSink:
    """The runner's reports as log lines; remembers a failure for the exit status."""

    def __init__(self) -> None:
        self.failure = ""
        self._t0 = time.monotonic()
        self._first = True

    def starting(self, description: str) -> None:
        log.info("%s", description)

    def started(self, filters: object) -> None:
        pass

    def tick(self, tick: Tick) -> None:
        snapshot = tick.snapshot
        if self._first:
            self._first = False
            log.info("%s source started in %.1f s, plan %s%s", snapshot.meta.source,
                     time.monotonic() - self._t0, snapshot.plan.name,
                     f", filters {snapshot.meta.filters}" if snapshot.meta.filters else "")

    def ended(self) -> None:
        log.info("the source ended")

    def failed(self, reason: str) -> None:
        self.failure = reason


class _Stop:
    """Set by a signal handler: the runner ends at its next wait."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""


def program_costs(source: Source) -> Mapping[tuple[str, str], tuple[int, int]]:
    """(program, path) -> (runs, run ns) of a live source's programs, when the kernel counts them."""
    read = getattr(source, "prog_stats", None)  # a recording wrapper passes it through
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
