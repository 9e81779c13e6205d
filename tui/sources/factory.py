"""Pick and build the Source the command line asked for (synthetic, replay or live, maybe recorded).

The live source is imported lazily so that replay and synthetic runs never import bcc.
"""

from __future__ import annotations

import argparse

from tui.model.filters import Filters
from tui.sources.base import Source
from tui.sources.replay import RecordingSource, ReplaySource
from tui.sources.synthetic import SyntheticSource


def make_source(args: argparse.Namespace, filters: Filters | None = None, record: bool = True) -> Source:
    """The source for ``args``; ``filters`` overrides ``args.filters`` and ``record=False`` skips the
    recording wrapper (both used when a live source is rebuilt for new filters)."""
    filters = args.filters if filters is None else filters
    source: Source
    if getattr(args, "synthetic", False):
        source = SyntheticSource(interval_s=args.interval)
    elif getattr(args, "replay", None):
        source = ReplaySource.open(args.replay, speed=args.speed)
    else:
        from tui.sources.live import LiveSource

        source = LiveSource(
            probes=args.probes, filters=filters, sample=args.sample, interval_s=args.interval
        )
    if record and getattr(args, "record", None):
        source = RecordingSource(source, args.record)
    return source


def unwrap(source: Source) -> Source:
    """The innermost source behind any recording wrapper."""
    while isinstance(source, RecordingSource):
        source = source.inner
    return source


def is_live(source: Source) -> bool:
    """Whether the source measures the kernel now (filters then go into the probes)."""
    return not isinstance(unwrap(source), SyntheticSource | ReplaySource)


def pauses_with_view(source: Source) -> bool:
    """Whether pausing the view should stop polling (playback and demo data pause; live keeps counting)."""
    return isinstance(unwrap(source), SyntheticSource | ReplaySource)

