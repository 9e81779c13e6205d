"""The HTTP endpoint: prometheus_client's own WSGI server over a registry holding our collector.

prometheus_client answers ``/metrics`` (any path) in the Prometheus text format, or in OpenMetrics
when the scraper's Accept header asks for it, in a daemon thread. The registry also holds its
ProcessCollector: netlat-tui's own CPU seconds and resident memory (``process_*``).
"""

from __future__ import annotations

import argparse
import errno
import os
from collections.abc import Mapping, Sequence

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from tui.errors import UserError
from tui.exporter import DEFAULT_LISTEN
from tui.exporter.buckets import edges_ns
from tui.exporter.collector import SnapshotCollector
from tui.model.snapshot import Snapshot


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class MetricsEndpoint:
    """Serves the newest published snapshot as Prometheus metrics on ``host:port``.

    ``start()`` binds (a one-line UserError when it cannot), ``publish(snapshot)`` may be called
    from any one thread for each new snapshot, ``close()`` stops serving (idempotent)."""

    def __init__(self, host: str = DEFAULT_LISTEN[0], port: int = DEFAULT_LISTEN[1], *,
                 edges: Sequence[int] | None = None, comm_limit: int = 0, cgroup_limit: int = 0) -> None:
        self.host, self.port = host, port
        self.collector = SnapshotCollector(edges, comm_limit, cgroup_limit)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)
        self._server = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, listen: tuple[str, int]) -> MetricsEndpoint:
        """The endpoint the command line asks for (``--metrics-by``, ``--buckets-per-octave``)."""
        by = getattr(args, "metrics_by", None) or ()
        return cls(*listen, edges=edges_ns(getattr(args, "buckets_per_octave", 1)),
                   comm_limit=args.metrics_comm_limit if "comm" in by else 0,
                   cgroup_limit=args.metrics_cgroup_limit if "cgroup" in by else 0)

    @property
    def address(self) -> str:
        """``host:port`` being served (the real port once started, also when 0 was asked for)."""
        return format_address(self.host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def start(self) -> None:
        if self._server is not None:
            return
        try:
            server, _thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        except OSError as exc:
            why = {errno.EADDRINUSE: "the port is in use", errno.EACCES: "permission denied",
                   errno.EADDRNOTAVAIL: "no such address on this machine"}.get(
                       exc.errno or 0, exc.strerror or os.strerror(exc.errno or 0) or str(exc))
            raise UserError(f"cannot listen on {self.address}: {why}") from None
        self._server = server
        self.port = server.server_address[1]

    def publish(self, snapshot: Snapshot,
                programs: Mapping[tuple[str, str], tuple[int, int]] | None = None) -> None:
        self.collector.publish(snapshot, programs)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> MetricsEndpoint:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dashboard_endpoint(args: argparse.Namespace) -> MetricsEndpoint | None:
    """The endpoint the dashboard's ``--metrics ADDR:PORT`` asks for, already listening (a one-line
    UserError when it cannot bind: call it before the screen opens), or None without the option.
    The app passes its ``publish`` to the source runner as a tap and closes it on the way out."""
    if getattr(args, "metrics", None) is None:
        return None
    endpoint = MetricsEndpoint.from_args(args, args.metrics)
    endpoint.start()
    return endpoint
