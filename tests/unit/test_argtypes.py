"""The argparse types every netlat-tui command line shares (the workload CLI has none of its own)."""

from __future__ import annotations

import argparse
import os

import pytest

from tui.argtypes import cpu, ipv4, ipv4_port, whole


def test_whole_numbers_are_range_checked_by_name() -> None:
    port = whole("port", 1, 65535)
    assert port("443") == 443
    with pytest.raises(argparse.ArgumentTypeError, match=r"^port must be 1\.\.65535, got 0$"):
        port("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^port: expected a whole number, got 'x'$"):
        port("x")


def test_a_cpu_must_exist_on_this_machine() -> None:
    last = (os.cpu_count() or 1) - 1
    assert cpu(str(last)) == last
    with pytest.raises(argparse.ArgumentTypeError, match=f"CPU {last + 1} is not available here"):
        cpu(str(last + 1))
    with pytest.raises(argparse.ArgumentTypeError, match=r"CPU must be 0\.\.4095"):
        cpu("-1")


def test_ipv4_and_ipv4_port() -> None:
    assert ipv4("10.0.0.1") == "10.0.0.1"
    assert ipv4_port("10.9.0.1:5001") == ("10.9.0.1", 5001)
    for bad in ("localhost:80", "10.9.0.1", "::1:80"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected IPv4:PORT"):
            ipv4_port(bad)
    with pytest.raises(argparse.ArgumentTypeError, match=r"port must be 1\.\.65535"):
        ipv4_port("10.9.0.1:0")
    with pytest.raises(argparse.ArgumentTypeError, match="expected an IPv4 address"):
        ipv4("foo")
