"""Pick and build the Source the command line asked for (synthetic, replay or live, maybe recorded).

The live source is imported lazily so that replay and synthetic runs never import bcc.
"""

from __future__ import annotations

import argparse

from tui.sources.base import Source
from tui.sources.replay import RecordingSource, ReplaySource
from tui.sources.synthetic import SyntheticSource


def make_source(args: argparse.Namespace) -> Source:
    """The source for ``args``, wrapped in a recorder when ``--record`` asks for one."""
    source: Source
    if getattr(args, "synthetic", False):
        source = SyntheticSource(interval_s=args.interval)
    elif getattr(args, "replay", None):
        source = ReplaySource.open(args.replay, speed=args.speed)
    else:
        from tui.sources.live import LiveSource

        source = LiveSource(
            probes=args.probes, filters=args.filters, sample=args.sample, interval_s=args.interval,
            max_sockets=args.max_sockets,
            cost=getattr(args, "cost", True),
        )
    if not source.live and args.filters:
        source.set_filters(args.filters)  # recorded or demo data: narrow what they itemise
    if getattr(args, "record", None):
        source = RecordingSource(source, args.record)
    return source
