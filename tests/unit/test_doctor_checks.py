"""doctor's checks return what they found (lines, JSON facts, a value for the next check), on
stand-ins for the machine; the report and its JSON are made of those return values alone."""

from __future__ import annotations

import pytest
from pytest import MonkeyPatch

from tui import system
from tui.doctor import checks
from tui.doctor.report import FAIL, OK, SKIP, WARN, Check, Finding, Report, found
from tui.errors import UserError

NEAREST = system.HeadersStatus("nearest", "/usr/src/h", "6.1",
                               "headers are 6.1, not 6.18: struct offsets come from BTF")
EXACT = system.HeadersStatus("exact", "/usr/src/h", "6.18", "kernel headers for 6.18: /usr/src/h")


def refuse(reason: str, fix: str):  # type: ignore[no-untyped-def]
    def refused(*_args: object) -> None:
        raise UserError(reason, fix=fix)

    return refused


def test_privileges_refused_shows_the_fix_of_the_refusal(monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setattr(system, "require_root", refuse("live probes need root: or caps", "use sudo: now"))
    line = Check("privileges", FAIL, "not root and no CAP_BPF+CAP_PERFMON", "use sudo: now", required=True)
    assert checks.check_privileges() == Finding(False, (line,), {"features": {"privileges": False}})


def test_tracefs_that_cannot_be_mounted_gives_reason_and_fix_apart(monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setattr(system, "ensure_tracefs", refuse("tracefs is not mounted at /t", "mount it: at /t"))
    got = checks.check_tracefs(root=True)
    assert got.value is None
    assert got.checks == (Check("tracefs", FAIL, "tracefs is not mounted at /t", "mount it: at /t",
                                required=True),)
    assert got.facts == {"features": {"tracefs": None}}


def test_tracefs_without_root_is_unknown_unless_it_is_visible(monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setattr(system, "ensure_tracefs", lambda: pytest.fail("mounting needs root"))
    monkeypatch.setattr(system, "tracefs_ready", lambda: False)
    hidden = checks.check_tracefs(root=False)
    assert (hidden.value, hidden.checks[0].status, hidden.checks[0].required) == (None, SKIP, True)
    monkeypatch.setattr(system, "tracefs_ready", lambda: True)
    assert checks.check_tracefs(root=False).value == system.TRACEFS


def test_without_btf_the_btf_line_blocks_and_nearest_headers_only_warn(monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setattr(system, "btf_available", lambda: False)
    monkeypatch.setattr(system, "headers_status", lambda: NEAREST)
    got = checks.check_btf_and_headers()
    assert got.value is NEAREST
    btf, headers = got.checks
    assert (btf.status, btf.fix, btf.required) == (FAIL, system.BTF_FIX, True)
    assert btf.detail == system.btf_rule(NEAREST, False).message
    assert (headers.status, headers.detail, headers.fix) == (WARN, f"nearest: {NEAREST.message}", "")
    assert got.facts == {
        "features": {"btf": False},
        "headers": {"kind": "nearest", "path": "/usr/src/h", "version": "6.1", "message": NEAREST.message},
    }


def test_btf_and_exact_headers_are_both_ok(monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setattr(system, "btf_available", lambda: True)
    monkeypatch.setattr(system, "headers_status", lambda: EXACT)
    assert checks.check_btf_and_headers().checks == (
        Check("BTF", OK, system.BTF_VMLINUX),
        Check("kernel headers", OK, "exact: 6.18 (/usr/src/h)"),
    )


def test_missing_headers_block_with_their_own_fix(monkeypatch: MonkeyPatch) -> None:
    missing = system.HeadersStatus("missing", "", "", f"no kernel headers for 6.18 (x): {system.SETUP_FIX}",
                                   fix=system.SETUP_FIX)
    monkeypatch.setattr(system, "btf_available", lambda: True)
    monkeypatch.setattr(system, "headers_status", lambda: missing)
    headers = checks.check_btf_and_headers().checks[1]
    assert headers == Check("kernel headers", FAIL, "no kernel headers for 6.18 (x)", system.SETUP_FIX,
                            required=True)


def test_bcc_that_does_not_import_is_no_module_and_says_the_setup_fix(monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setattr(system, "import_bcc", refuse("bcc cannot load libbcc (libbcc.so.0: no such file)",
                                                     system.SETUP_FIX))
    got = checks.check_bcc(root=True)
    assert got.value is None
    assert got.checks == (Check("bcc", FAIL, "cannot be imported", system.SETUP_FIX, required=True),)
    assert got.facts == {"bcc": {"importable": False, "version": None, "test_compile": False}}


def test_bcc_without_root_imports_but_is_not_compiled(monkeypatch: MonkeyPatch) -> None:
    fake = type("FakeBcc", (), {"__version__": "0.0-test", "__file__": "/fake/bcc/__init__.py"})
    monkeypatch.setattr(system, "import_bcc", lambda: fake)
    monkeypatch.setattr(checks, "compiles", lambda bcc: pytest.fail("compiled without root"))
    got = checks.check_bcc(root=False)
    assert got.value is None  # nothing after it may count on a compile
    assert got.checks == (Check("bcc", SKIP, "0.0-test imports; the test compile needs root"),)
    assert got.facts == {"bcc": {"importable": True, "version": "0.0-test", "path": "/fake/bcc",
                                 "test_compile": None}}


def test_bcc_that_compiles_is_the_value_and_is_timed(monkeypatch: MonkeyPatch) -> None:
    fake = type("FakeBcc", (), {"__version__": "0.0-test", "__file__": "/fake/bcc/__init__.py"})
    monkeypatch.setattr(system, "import_bcc", lambda: fake)
    monkeypatch.setattr(checks, "compiles", lambda bcc: (True, ""))
    got = checks.check_bcc(root=True)
    assert got.value is fake
    assert got.facts["bcc"]["test_compile"] is True
    assert got.facts["bcc"]["test_compile_s"] >= 0


def test_no_plan_without_root_or_features() -> None:
    got = checks.check_plan(None, root=True, tracepoints={}, can_start=True)
    assert got.facts == {"plan": {"auto": None}}
    assert [(c.name, c.status, c.required) for c in got.checks] == [("probe plan", SKIP, True)]


def test_the_report_is_made_of_the_findings_in_order() -> None:
    first = found(True, Check("privileges", OK, "root"), features={"privileges": True})
    second = found("/t", Check("tracefs", OK, "/t"), Check("sub", OK, "x", sub=True),
                   features={"tracefs": "/t"}, plan={"auto": "tracepoint"})
    third = found(None, Check("plan attach", OK, "ran"), plan={"runs": True})
    report = Report.of([first, second, third])
    assert [c.name for c in report.checks] == ["privileges", "tracefs", "sub", "plan attach"]
    assert list(report.features.items()) == [("privileges", True), ("tracefs", "/t")]
    assert report.plan == {"auto": "tracepoint", "runs": True}
    doc = report.as_json()
    assert (doc["ok"], doc["reason"], doc["fix"]) == (True, None, None)
    assert doc["checks"][2] == {"name": "sub", "status": "ok", "detail": "x", "fix": "", "required": False,
                                "sub": True}


def test_workloads_say_where_cgroups_are_and_what_a_kernel_without_socket_cgroups_gets(
    monkeypatch: MonkeyPatch,
) -> None:
    from tui import attribution
    from tui.bpf import btf

    monkeypatch.setattr(attribution, "cgroup2_mount", lambda: "/sys/fs/cgroup/unified")
    monkeypatch.setattr(btf, "workload_offsets", lambda: dict.fromkeys(btf.WORKLOAD_FIELDS, 8))
    got = checks.check_workloads()
    assert [(c.name, c.status) for c in got.checks] == [("cgroup2 mount", OK), ("socket workload", OK)]
    assert got.facts == {"features": {"workloads": {"cgroup2_mount": "/sys/fs/cgroup/unified", "notes": []}}}

    monkeypatch.setattr(attribution, "cgroup2_mount", lambda: None)
    monkeypatch.setattr(btf, "workload_offsets", lambda: {"sock_common.skc_net": 48, "net.ns.inum": 176})
    mount, sockets = checks.check_workloads().checks
    assert mount.status == "no" and "--cgroup cannot resolve" in mount.detail
    assert sockets.status == WARN and "first sent or read on it" in sockets.detail
