"""tui.system against fake /proc status texts, fake header trees and stand-ins for mount and import."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest import MonkeyPatch

from tui import system
from tui.errors import UserError

STATUS = """\
Name:\tpython3
Uid:\t1000\t1000\t1000\t1000
CapInh:\t0000000000000000
CapPrm:\t{mask:016x}
CapEff:\t{mask:016x}
CapBnd:\t000001ffffffffff
"""


def bits(*caps: int) -> int:
    return sum(1 << c for c in caps)


# ---------------------------------------------------------------------------------------------------
# capabilities


def test_parse_cap_eff_reads_the_effective_mask_not_the_bounding_one() -> None:
    assert system.parse_cap_eff(STATUS.format(mask=0x3_0000_0000)) == 0x3_0000_0000


def test_parse_cap_eff_is_zero_without_the_line() -> None:
    assert system.parse_cap_eff("Name:\tx\nCapBnd:\t000001ffffffffff\n") == 0


@pytest.mark.parametrize(
    ("mask", "allowed"),
    [
        (0, False),
        (bits(system.CAP_BPF), False),
        (bits(system.CAP_PERFMON), False),
        (bits(system.CAP_BPF, system.CAP_PERFMON), True),
        (bits(system.CAP_SYS_ADMIN), True),
        (bits(system.CAP_SYS_ADMIN + 1, system.CAP_BPF), False),  # CAP_SYS_BOOT is no help
        (0x000001FFFEFFFFFF, True),  # this machine's root: everything but CAP_SYS_RESOURCE
    ],
)
def test_bpf_privileges_need_sys_admin_or_bpf_plus_perfmon(mask: int, allowed: bool) -> None:
    assert system.has_bpf_privileges(mask) is allowed


def test_require_root_refuses_an_ordinary_user_in_one_line(monkeypatch: MonkeyPatch,
                                                          tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(STATUS.format(mask=0))
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    with pytest.raises(UserError) as err:
        system.require_root(str(status))
    message = str(err.value)
    assert "\n" not in message
    assert "root" in message and "sudo" in message


def test_require_root_accepts_bpf_and_perfmon_without_uid_0(monkeypatch: MonkeyPatch,
                                                            tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(STATUS.format(mask=bits(system.CAP_BPF, system.CAP_PERFMON)))
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    system.require_root(str(status))  # no exception


# ---------------------------------------------------------------------------------------------------
# kernel headers


def make_headers(root: Path, name: str, uts: str | None) -> Path:
    tree = root / "usr" / "src" / name
    (tree / "include" / "generated").mkdir(parents=True)
    if uts is not None:
        (tree / "include" / "generated" / "utsrelease.h").write_text(f'#define UTS_RELEASE "{uts}"\n')
    return tree


def link_build(modules: Path, release: str, tree: Path) -> None:
    (modules / release).mkdir(parents=True, exist_ok=True)
    (modules / release / "build").symlink_to(tree)


def test_headers_of_the_running_release_are_exact(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    tree = make_headers(tmp_path, "linux-headers-6.1.0-9-amd64", "6.1.0-9-amd64")
    link_build(modules, "6.1.0-9-amd64", tree)
    status = system.headers_status("6.1.0-9-amd64", str(modules), str(tmp_path / "no-kheaders"))
    assert (status.kind, status.version, status.path) == ("exact", "6.1.0-9-amd64", str(tree))


def test_another_releases_headers_are_nearest_and_say_btf(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    tree = make_headers(tmp_path, "linux-headers-6.1.0-56-cloud-amd64", "6.1.0-56-cloud-amd64")
    link_build(modules, "6.18.44-fc-v595", tree)
    status = system.headers_status("6.18.44-fc-v595", str(modules), str(tmp_path / "no-kheaders"))
    assert status.kind == "nearest"
    assert status.version == "6.1.0-56-cloud-amd64"
    assert status.message == (
        "headers are 6.1.0-56-cloud-amd64, not 6.18.44-fc-v595: struct offsets come from BTF"
    )


def test_headers_without_a_version_stamp_take_it_from_the_directory_name(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    tree = make_headers(tmp_path, "linux-headers-5.15.0-91-generic", None)
    link_build(modules, "6.8.0-1-generic", tree)
    status = system.headers_status("6.8.0-1-generic", str(modules), str(tmp_path / "no-kheaders"))
    assert (status.kind, status.version) == ("nearest", "5.15.0-91-generic")


def test_no_build_directory_means_missing_with_the_fix(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    (modules / "6.18.1").mkdir(parents=True)
    status = system.headers_status("6.18.1", str(modules), str(tmp_path / "no-kheaders"))
    assert status.kind == "missing"
    assert status.path == ""
    assert "setup.sh" in status.message and "linux-headers-$(uname -r)" in status.message


def test_a_dangling_build_link_is_missing(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    link_build(modules, "6.18.1", tmp_path / "removed-package")
    assert system.headers_status("6.18.1", str(modules), str(tmp_path / "none")).kind == "missing"


def test_kernel_built_in_headers_count_as_exact(tmp_path: Path) -> None:
    kheaders = tmp_path / "kheaders.tar.xz"
    kheaders.write_bytes(b"\xfd7zXZ")
    status = system.headers_status("6.18.1", str(tmp_path / "modules"), str(kheaders))
    assert (status.kind, status.path, status.version) == ("exact", str(kheaders), "6.18.1")


# ---------------------------------------------------------------------------------------------------
# tracefs


def test_ensure_tracefs_leaves_a_mounted_tracefs_alone(monkeypatch: MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "tracing" / "events").mkdir(parents=True)
    mounts: list[tuple[str, str]] = []
    monkeypatch.setattr(system, "_mount", lambda fs, target: mounts.append((fs, target)))
    tracing = str(tmp_path / "tracing")
    assert system.ensure_tracefs(tracing, str(tmp_path / "debug")) == tracing
    assert mounts == []


def test_ensure_tracefs_mounts_an_empty_tracefs_and_debugfs(monkeypatch: MonkeyPatch,
                                                            tmp_path: Path) -> None:
    tracing, debug = tmp_path / "tracing", tmp_path / "debug"
    tracing.mkdir()
    debug.mkdir()
    mounts: list[tuple[str, str]] = []

    def fake_mount(fs: str, target: str) -> None:
        mounts.append((fs, target))
        if fs == "tracefs":
            (Path(target) / "events").mkdir()

    monkeypatch.setattr(system, "_mount", fake_mount)
    assert system.ensure_tracefs(str(tracing), str(debug)) == str(tracing)
    assert mounts == [("tracefs", str(tracing)), ("debugfs", str(debug))]


def test_ensure_tracefs_that_cannot_mount_says_how_in_one_line(monkeypatch: MonkeyPatch,
                                                                tmp_path: Path) -> None:
    (tmp_path / "tracing").mkdir()
    monkeypatch.setattr(system, "_mount", lambda fs, target: None)
    with pytest.raises(UserError) as err:
        system.ensure_tracefs(str(tmp_path / "tracing"), str(tmp_path / "debug"))
    message = str(err.value)
    assert "\n" not in message
    assert f"mount -t tracefs nodev {tmp_path / 'tracing'}" in message


# ---------------------------------------------------------------------------------------------------
# bcc


@pytest.fixture(autouse=True)
def _keep_real_bcc_modules() -> Iterator[None]:
    """Fake bcc packages land in sys.modules: put back exactly what was there (real bcc or nothing)."""
    saved = {k: v for k, v in sys.modules.items() if k == "bcc" or k.startswith("bcc.")}
    yield
    for name in [k for k in sys.modules if k == "bcc" or k.startswith("bcc.")]:
        del sys.modules[name]
    sys.modules.update(saved)


def _no_bcc_on_path(monkeypatch: MonkeyPatch) -> None:
    real_import = importlib.import_module

    def fake_import(name: str, package: str | None = None):  # type: ignore[no-untyped-def]
        if name == "bcc":
            raise ModuleNotFoundError("No module named 'bcc'", name="bcc")
        return real_import(name, package)

    monkeypatch.setattr(system.importlib, "import_module", fake_import)
    for name in [k for k in sys.modules if k == "bcc" or k.startswith("bcc.")]:
        monkeypatch.delitem(sys.modules, name)


def test_import_bcc_without_bcc_anywhere_gives_the_fix(monkeypatch: MonkeyPatch, tmp_path: Path) -> None:
    _no_bcc_on_path(monkeypatch)
    monkeypatch.setattr(system, "SYSTEM_BCC_DIRS", (str(tmp_path),))
    with pytest.raises(UserError) as err:
        system.import_bcc()
    message = str(err.value)
    assert "\n" not in message
    assert "bcc is not installed" in message and "python3-bpfcc" in message and "setup.sh" in message


def test_import_bcc_falls_back_to_the_system_copy_only(monkeypatch: MonkeyPatch, tmp_path: Path) -> None:
    _no_bcc_on_path(monkeypatch)
    fake = tmp_path / "dist-packages" / "bcc"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("from .table import MARK\n")
    (fake / "table.py").write_text("MARK = 'system bcc'\n")
    (tmp_path / "dist-packages" / "unrelated.py").write_text("")
    dirs = (str(tmp_path / "nowhere"), str(tmp_path / "dist-packages"))
    monkeypatch.setattr(system, "SYSTEM_BCC_DIRS", dirs)
    module = system.import_bcc()
    assert module.MARK == "system bcc"  # its submodules load from the same place
    assert str(tmp_path / "dist-packages") not in sys.path  # nothing else of dist-packages exposed


def test_import_bcc_that_breaks_while_loading_is_one_line(monkeypatch: MonkeyPatch, tmp_path: Path) -> None:
    _no_bcc_on_path(monkeypatch)
    fake = tmp_path / "bcc"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise OSError('libbcc.so.0: cannot open shared object file')\n")
    monkeypatch.setattr(system, "SYSTEM_BCC_DIRS", (str(tmp_path),))
    with pytest.raises(UserError) as err:
        system.import_bcc()
    assert "libbcc.so.0" in str(err.value) and "\n" not in str(err.value)
    # the colon in the loader's message is why the fix is a field: splitting the message cut it wrong
    assert err.value.fix == system.SETUP_FIX
    assert "libbcc.so.0: cannot open" in err.value.reason


# ---------------------------------------------------------------------------------------------------
# preflight


def _machine(monkeypatch: MonkeyPatch, kind: str, btf: bool) -> None:
    monkeypatch.setattr(system, "require_root", lambda: None)
    monkeypatch.setattr(system, "ensure_tracefs", lambda: "/sys/kernel/tracing")
    monkeypatch.setattr(system, "import_bcc", lambda: object())
    messages = {"exact": "kernel headers for 6.18", "missing": "no kernel headers for 6.18 (x): fix",
                "nearest": "headers are 6.1, not 6.18: struct offsets come from BTF"}
    status = system.HeadersStatus(kind, "/x" if kind != "missing" else "", "6.1", messages[kind])
    monkeypatch.setattr(system, "headers_status", lambda: status)
    monkeypatch.setattr(system, "btf_available", lambda: btf)


def test_preflight_with_nearest_headers_and_btf_warns_once(monkeypatch: MonkeyPatch) -> None:
    _machine(monkeypatch, "nearest", btf=True)
    assert system.preflight() == ["headers are 6.1, not 6.18: struct offsets come from BTF"]


def test_preflight_with_exact_headers_and_btf_is_silent(monkeypatch: MonkeyPatch) -> None:
    _machine(monkeypatch, "exact", btf=True)
    assert system.preflight() == []


def test_preflight_without_headers_stops(monkeypatch: MonkeyPatch) -> None:
    _machine(monkeypatch, "missing", btf=True)
    with pytest.raises(UserError, match="no kernel headers"):
        system.preflight()


def test_preflight_with_nearest_headers_but_no_btf_stops(monkeypatch: MonkeyPatch) -> None:
    _machine(monkeypatch, "nearest", btf=False)
    with pytest.raises(UserError, match="no BTF"):
        system.preflight()


def test_preflight_stops_at_the_first_missing_prerequisite(monkeypatch: MonkeyPatch) -> None:
    _machine(monkeypatch, "exact", btf=True)

    def not_root() -> None:
        raise UserError("live probes need root")

    monkeypatch.setattr(system, "require_root", not_root)
    monkeypatch.setattr(system, "import_bcc", lambda: pytest.fail("bcc imported before the root check"))
    with pytest.raises(UserError, match="need root"):
        system.preflight()


# ---------------------------------------------------------------------------------------------------
# every refusal carries its fix as a field (doctor shows reason and fix apart without parsing)


def test_refusals_carry_their_fix(monkeypatch: MonkeyPatch, tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(STATUS.format(mask=0))
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    with pytest.raises(UserError) as root:
        system.require_root(str(status))
    assert root.value.reason == "live probes need root (or CAP_BPF and CAP_PERFMON)"
    assert root.value.fix == "run with sudo, or try --synthetic / --replay FILE without root"

    (tmp_path / "tracing").mkdir()
    monkeypatch.setattr(system, "_mount", lambda fs, target: None)
    with pytest.raises(UserError) as tracefs:
        system.ensure_tracefs(str(tmp_path / "tracing"), str(tmp_path / "debug"))
    assert tracefs.value.reason == f"tracefs is not mounted at {tmp_path / 'tracing'} and mounting it failed"
    assert tracefs.value.fix.startswith(f"run 'mount -t tracefs nodev {tmp_path / 'tracing'}'")


def test_missing_headers_keep_the_fix_in_the_message_and_apart(tmp_path: Path) -> None:
    (tmp_path / "modules" / "6.18.1").mkdir(parents=True)
    status = system.headers_status("6.18.1", str(tmp_path / "modules"), str(tmp_path / "no-kheaders"))
    assert status.fix == system.SETUP_FIX
    build = tmp_path / "modules" / "6.18.1" / "build"
    assert status.reason == f"no kernel headers for 6.18.1 ({build} is absent)"
    assert status.message == f"{status.reason}: {status.fix}"


# ---------------------------------------------------------------------------------------------------
# the BTF rule (one statement for preflight, doctor and the live source)


@pytest.mark.parametrize("kind", ["exact", "nearest"])
def test_without_btf_no_headers_make_up_for_it(kind: str) -> None:
    rule = system.btf_rule(system.HeadersStatus(kind, "/x", "6.1", "headers"), btf=False)
    assert not rule.ok
    assert rule.message == "kernel has no BTF (/sys/kernel/btf/vmlinux): struct offsets cannot be read"
    assert rule.fix == system.BTF_FIX


def test_with_btf_headers_of_another_kernel_are_safe_and_warned_of() -> None:
    message = "headers are 6.1, not 6.18: struct offsets come from BTF"
    nearest = system.HeadersStatus("nearest", "/x", "6.1", message)
    assert system.btf_rule(nearest, btf=True) == system.OffsetsRule(True, nearest.message, warning=True)
    exact = system.HeadersStatus("exact", "/x", "6.18", "kernel headers for 6.18")
    assert system.btf_rule(exact, btf=True) == system.OffsetsRule(
        True, "struct offsets come from the running kernel's BTF"
    )


def test_preflight_with_exact_headers_but_no_btf_stops_with_the_fix(monkeypatch: MonkeyPatch) -> None:
    # the probes read offsets from BTF only: exact headers cannot stand in for it
    _machine(monkeypatch, "exact", btf=False)
    with pytest.raises(UserError, match="no BTF") as err:
        system.preflight()
    assert err.value.fix == system.BTF_FIX
