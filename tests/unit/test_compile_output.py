"""The one helper that keeps BCC/clang chatter (written to fd 2 directly) off the screen, and picks
the line worth showing when a compile or load fails."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tui.bpf.compile_output import captured_stderr, error_line, first_error
from tui.errors import one_line

CLANG = """\
In file included from <built-in>:2:
/virtual/include/bcc/helpers.h:44:10: warning: something harmless
main.c:12:3: error: use of undeclared identifier 'skb'
1 error generated.
"""
VERIFIER = """\
bpf: Failed to load program: Permission denied
0: (bf) r6 = r1
1: (79) r1 = *(u64 *)(r6 +0)
R1 invalid mem access 'scalar'
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""


def test_what_is_written_to_fd_2_is_captured_then_fd_2_put_back(capfd: pytest.CaptureFixture[str]) -> None:
    before = os.fstat(2).st_ino
    with captured_stderr() as chatter:
        os.write(2, b"libbcc writes here\n")
        subprocess.run([sys.executable, "-c", "import os; os.write(2, b'a child too\\n')"], check=True)
        os.write(2, b"bad byte \xff\n")
        text = chatter()  # the reader works inside the block (the file goes with it)
    assert text == "libbcc writes here\na child too\nbad byte \ufffd\n"
    assert os.fstat(2).st_ino == before
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"  # nothing of the block reached the real stderr


def test_fd_2_is_put_back_when_the_block_raises() -> None:
    before = os.fstat(2).st_ino
    with pytest.raises(RuntimeError), captured_stderr():
        raise RuntimeError("compile failed")
    assert os.fstat(2).st_ino == before


def test_the_first_clang_error_is_the_line_shown() -> None:
    assert first_error(CLANG) == "main.c:12:3: error: use of undeclared identifier 'skb'"


def test_a_verifier_refusal_shows_the_line_before_its_summary() -> None:
    assert first_error(VERIFIER) == "verifier: R1 invalid mem access 'scalar'"


def test_without_an_error_line_the_exception_speaks_in_one_line() -> None:
    exc = Exception("Failed to load BPF program b'netlat_doctor': Permission denied\nmore detail")
    assert first_error("warning: nothing fatal\n") == ""
    assert error_line("warning: nothing fatal\n", exc) == (
        "Failed to load BPF program b'netlat_doctor': Permission denied"
    )
    assert error_line(CLANG, exc).endswith("error: use of undeclared identifier 'skb'")
    assert one_line(OSError()) == "OSError"
