"""Fixtures for the guest tests: boot the test guest (tests/vm/vm_harness.py) and run a job in it.

Every test here is marked ``vm`` by tests/conftest.py, which also turns a skip into a failure when
CI=true. Each module boots the guest once and checks the files its job wrote.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.register_assert_rewrite("vm_figures")

from vm_harness import GuestRun, VmError, run_in_guest  # noqa: E402

#: one boot, job included; the slowest job (the probe plans) needs well under this
GUEST_TIMEOUT_S = 900.0

RunGuest = Callable[..., GuestRun]


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def run_guest(tmp_path_factory: pytest.TempPathFactory) -> RunGuest:
    """Run a shell job in the guest (``nics=True``: with its own two-NIC hub); returns the GuestRun
    (exit status, output, out_dir with its files)."""
    if os.geteuid() != 0:
        _skip_or_fail("the guest tests need root (image build with mmdebstrap)")
    if platform.machine() != "x86_64":
        _skip_or_fail(f"the guest is x86_64; this host is {platform.machine()}")

    def run(script: str, name: str, suite: str = "bookworm", timeout_s: float = GUEST_TIMEOUT_S,
            nics: bool = False) -> GuestRun:
        out = tmp_path_factory.mktemp(name)
        try:
            # The job's output goes to stderr, which pytest shows for a failed test (and live with -s).
            return run_in_guest(script, Path(out), suite=suite, timeout_s=timeout_s, stream=sys.stderr,
                                nics=nics)
        except VmError as exc:
            pytest.fail(f"guest run {name!r} failed: {exc}", pytrace=False)

    return run
