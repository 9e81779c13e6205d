"""Prometheus exporter: netlat-tui's snapshots as metrics (``netlat-tui exporter``, ``--metrics``).

Modules: ``buckets`` (in-kernel histogram -> cumulative ``le`` buckets, pure), ``collector`` (a
prometheus_client custom collector over the newest snapshot), ``server`` (the HTTP endpoint),
``run`` (the long-running headless loop). None of them imports textual or bcc at import time.
"""

#: Where the exporter listens unless told otherwise: loopback only; any other address is asked for.
DEFAULT_LISTEN = ("127.0.0.1", 9465)
