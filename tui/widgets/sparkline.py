"""Unicode sparklines (▁▂▃▄▅▆▇█) of a per-interval series, one character per interval (pure text).

The layer bars put one after each stage's figures: its p99 over the last minutes, from
:meth:`tui.model.timeline.Timeline.trend`. A series is scaled from zero to its own largest value, so a
steady stage reads as a flat line and a jump stands out; an interval without packets is a blank.
"""

from __future__ import annotations

from collections.abc import Sequence

#: The eight levels, lowest first.
BLOCKS = "▁▂▃▄▅▆▇█"


def spark(values: Sequence[float | None], width: int, top: float | None = None) -> str:
    """The newest ``width`` values as text, right-aligned (blank-padded on the left).

    Each value is scaled against ``top`` (default: the largest value shown) to one of BLOCKS; a
    positive value never draws below the lowest block, None draws a blank.
    """
    if width <= 0:
        return ""
    shown = list(values[-width:])
    peak = top if top is not None else max((v for v in shown if v is not None), default=0.0)
    out = []
    for value in shown:
        if value is None:
            out.append(" ")
        elif peak <= 0:
            out.append(BLOCKS[0])
        else:
            level = round((len(BLOCKS) - 1) * min(max(value, 0.0), peak) / peak)
            out.append(BLOCKS[level])
    return " " * (width - len(shown)) + "".join(out)
