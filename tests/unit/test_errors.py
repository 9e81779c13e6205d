"""UserError carries its fix as a field: the message reads "reason: fix", and nobody parses it back."""

from __future__ import annotations

import pytest

from tui.errors import UserError, fail


def test_a_fix_ends_the_message_and_stays_apart() -> None:
    err = UserError("tracefs is not mounted: at all", fix="mount it: like this")
    assert str(err) == "tracefs is not mounted: at all: mount it: like this"
    # colons inside either part are why the fields exist: splitting the message would cut wrong
    assert (err.reason, err.fix) == ("tracefs is not mounted: at all", "mount it: like this")
    assert err.exit_code == 2


def test_without_a_fix_the_message_is_the_reason() -> None:
    err = UserError("the source gave no data", 1)
    assert (str(err), err.reason, err.fix, err.exit_code) == (
        "the source gave no data", "the source gave no data", "", 1
    )


def test_fail_prints_one_line_and_returns_the_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert fail(str(UserError("no", fix="yes")), 3) == 3
    assert capsys.readouterr().err == "netlat-tui: no: yes\n"
