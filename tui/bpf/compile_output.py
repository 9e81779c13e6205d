"""What BCC, clang and the verifier print while a program compiles and loads.

They write to file descriptor 2 directly (not ``sys.stderr``): pages of warnings over the dashboard
or over doctor's report. :func:`captured_stderr` moves fd 2 to a temporary file while BCC works and
hands back a reader; :func:`error_line` picks from it the one line worth showing when BCC failed.
No bcc import here.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import tempfile
from collections.abc import Callable, Iterator

from tui.errors import one_line


@contextlib.contextmanager
def captured_stderr() -> Iterator[Callable[[], str]]:
    """Capture fd 2 for the block; the value is a function that returns what was written so far
    (call it inside the block: the temporary file closes with it)."""
    sys.stderr.flush()  # what Python buffered before the block still goes to the terminal
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)

        def read() -> str:
            tmp.seek(0)
            return tmp.read().decode(errors="replace")  # clang may quote bytes of any encoding

        try:
            yield read
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def first_error(text: str) -> str:
    """The useful line of BCC/clang/verifier chatter: a compile error, or the verifier's verdict
    (the line before its "processed N insns" summary); "" when there is neither."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in lines:
        if "error:" in line:  # clang: "main.c:12:3: error: ..."
            return line
    for before, line in itertools.pairwise(lines):
        if line.startswith("processed ") and " insns" in line:
            return f"verifier: {before}"
    return ""


def error_line(chatter: str, exc: BaseException) -> str:
    """Why BCC failed, in one line: from what it printed, else from the exception it raised."""
    return first_error(chatter) or one_line(exc)
