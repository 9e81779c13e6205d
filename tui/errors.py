"""User-facing failures: one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys


class UserError(Exception):
    """Something the user can fix; ``str()`` is the whole message, ``exit_code`` the status."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def fail(message: str, exit_code: int = 2) -> int:
    """Print ``netlat-tui: message`` on stderr and return the exit code to use."""
    print(f"netlat-tui: {message}", file=sys.stderr)
    return exit_code
