"""argparse value types shared by netlat-tui's command lines: numbers parsed and range checked.

argparse turns the ArgumentTypeError raised here into one usage line and exit status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)
Bound = int | float


def parse_number(
    text: str,
    convert: Callable[[str], N],
    *,
    expect: str,
    what: str = "",
    above: Bound | None = None,
    at_least: Bound | None = None,
    at_most: Bound | None = None,
) -> N:
    """``convert(text)`` within the bounds given; ArgumentTypeError naming ``what`` otherwise."""
    prefix = f"{what}: " if what else ""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{prefix}expected {expect}, got {text!r}") from None
    bounds = []
    if at_least is not None and at_most is not None:
        bounds.append(f"{at_least}..{at_most}")
    else:
        if above is not None:
            bounds.append(f"above {above}")
        if at_least is not None:
            bounds.append(f"at least {at_least}")
        if at_most is not None:
            bounds.append(f"at most {at_most}")
    if (
        (above is not None and not value > above)
        or (at_least is not None and value < at_least)
        or (at_most is not None and value > at_most)
    ):
        subject = f"{what} must" if what else "must"
        raise argparse.ArgumentTypeError(f"{subject} be {' and '.join(bounds)}, got {text}")
    return value


def number(convert: Callable[[str], N], *, expect: str, what: str = "", above: Bound | None = None,
           at_least: Bound | None = None, at_most: Bound | None = None) -> Callable[[str], N]:
    """An argparse ``type=`` for :func:`parse_number` with fixed bounds."""

    def parse(text: str) -> N:
        return parse_number(text, convert, expect=expect, what=what, above=above,
                            at_least=at_least, at_most=at_most)

    return parse
