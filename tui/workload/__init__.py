"""Bounded traffic to look at and to measure: TCP request/response, TCP bulk, UDP request/response.

- ``loopback``: ``LoopbackWorkload`` runs in daemon threads of the calling process (for
  ``--workload loopback`` and the kernel tests: known counts on known ephemeral ports).
- ``rr``: the benchmarks' pinned load (``python -m tui.workload rr``): a client and a forked
  server, both pinned, counting their own transactions.
- ``wire``: what both share on the wire; ``cli``: the command line.

Pure Python on purpose (no bcc, no textual): it must run wherever the model runs, and netperf is
not packaged in Debian main.
"""

from tui.workload.loopback import KINDS, THREAD_PREFIX, LoopbackWorkload, WorkloadCounts, WorkloadError
from tui.workload.rr import RRResult, run_rr, run_rr_client, serve_rr
from tui.workload.wire import LOOPBACK, TcpSegments, tcp_segments

__all__ = [
    "KINDS", "LOOPBACK", "THREAD_PREFIX", "LoopbackWorkload", "RRResult", "TcpSegments", "WorkloadCounts",
    "WorkloadError", "run_rr", "run_rr_client", "serve_rr", "tcp_segments",
]
