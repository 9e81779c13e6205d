"""User-facing failures: one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys


class UserError(Exception):
    """Something the user can fix; ``str()`` is the whole message, ``exit_code`` the status.

    ``reason`` says what is wrong and ``fix`` (optional) what to do about it; the message is
    ``"reason: fix"``. Code that shows the two apart (doctor) reads the fields, never the message.
    """

    def __init__(self, reason: str, exit_code: int = 2, *, fix: str = "") -> None:
        super().__init__(f"{reason}: {fix}" if fix else reason)
        self.reason = reason
        self.fix = fix
        self.exit_code = exit_code


def fail(message: str, exit_code: int = 2) -> int:
    """Print ``netlat-tui: message`` on stderr and return the exit code to use."""
    print(f"netlat-tui: {message}", file=sys.stderr)
    return exit_code


def one_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's text (its type name when it has none)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__
