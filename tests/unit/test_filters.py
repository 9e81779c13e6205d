"""Filters: every user value is validated, and reaches the BPF C only as numbers."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from tui.bpf.program import filter_defines
from tui.model.filters import CgroupFilter, FilterError, Filters, NetnsFilter


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"pid": "0"}, "bad pid 0"),
        ({"pid": "12a"}, "bad pid '12a'"),
        ({"port": "65536"}, "bad port 65536"),
        ({"port": "-1"}, "bad port '-1'"),
        ({"comm": 'x"); bpf_override_return(0);//'}, "bad comm"),
        ({"comm": "a" * 16}, "bad comm"),
        ({"iface": "eth0;rm"}, "bad interface"),
        ({"addr": "10.0.0.256"}, "bad address"),
        ({"family": "5"}, "bad family"),
        ({"protocol": "sctp"}, "bad protocol"),
        ({"addr": "::1", "family": "4"}, "is not IPv4"),
        ({"nope": "1"}, "unknown filter"),
    ],
)
def test_bad_values_are_rejected_with_one_line(raw: dict[str, str], message: str) -> None:
    with pytest.raises(FilterError) as err:
        Filters.parse(**raw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_defines_are_numbers_and_byte_lists_only() -> None:
    f = Filters.parse(pid="42", comm="nginx", port="443", lport="80", rport="8080",
                      addr="2001:db8::1", protocol="udp", iface="eth0")
    # groups and namespaces are resolved on the host first (tests/unit/test_attribution.py)
    f = replace(f, cgroup=CgroupFilter("/a/b", 4242, 2), netns=NetnsFilter(4026531840, "blue"))
    text = filter_defines(f)
    for line in text.splitlines():
        assert re.fullmatch(r"#define FILTER_[A-Z_]+ (\d+|\{[\d, ]+\})", line), line
    assert "#define FILTER_PID 42\n" in text
    assert "#define FILTER_PORT 443\n" in text
    assert "#define FILTER_PROTO 17\n" in text
    assert "#define FILTER_ADDR_FAMILY 10\n" in text
    assert "#define FILTER_ADDR_BYTES {32, 1, 13, 184, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}\n" in text
    assert "#define FILTER_ADDR_LEN 16\n" in text
    assert "#define FILTER_COMM {110, 103, 105, 110, 120, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}\n" in text
    assert "#define FILTER_COMM_LEN 6\n" in text  # "nginx" and its NUL
    assert "#define FILTER_CGROUP_ID 4242\n" in text
    assert "#define FILTER_CGROUP_LEVEL 2\n" in text
    assert "#define FILTER_NETNS 4026531840\n" in text
    assert "#define FILTER_IFACE_LEN 5\n" in text


def test_ipv4_address_is_four_bytes_in_network_order() -> None:
    text = filter_defines(Filters.parse(addr="127.0.0.1", family="4"))
    assert "#define FILTER_ADDR_BYTES {127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}\n" in text
    assert "#define FILTER_ADDR_LEN 4\n" in text
    assert "#define FILTER_FAMILY 2\n" in text


def test_no_filters_no_defines() -> None:
    assert filter_defines(Filters()) == ""


def test_an_unconnected_udp_socket_matches_port_and_addr_filters_through_its_peers() -> None:
    from tui.model.snapshot import PeerStats, SocketStats

    client = SocketStats(key=1, pid=1, comm="dig", protocol="UDP", family=4, laddr="0.0.0.0", lport=40000,
                         raddr="0.0.0.0", rport=0, peers=(PeerStats(addr="10.0.0.53", port=53),))
    assert Filters.parse(port="53").matches(client)
    assert Filters.parse(rport="53").matches(client)
    assert Filters.parse(addr="10.0.0.53").matches(client)
    assert not Filters.parse(port="54").matches(client)
    assert not Filters.parse(lport="53").matches(client)
    assert not Filters.parse(addr="10.0.0.54").matches(client)
