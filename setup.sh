#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# netlat-tui set-up for Debian 12 / Ubuntu, run as root. Idempotent: a second run only checks.
#
#   sudo ./setup.sh                   packages, kernel headers, tracefs, .venv with netlat-tui in it
#   sudo ./setup.sh --run [ARGS...]   ... then run netlat-tui ARGS (e.g. --workload loopback)
#   sudo ./setup.sh --test [ARGS...]  ... plus the test-only packages, then pytest ARGS over tests/
#   sudo ./setup.sh --test-deps       set up including the test-only packages, run nothing
#
# Environment: NETLAT_VENV (default ./.venv) puts the virtual environment elsewhere;
# NETLAT_KERNEL_RELEASE and NETLAT_MODULES_DIR (default `uname -r`, /lib/modules) exist so the
# header-linking logic can be exercised without touching the real kernel's directory.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${NETLAT_VENV:-$REPO/.venv}"
RELEASE="${NETLAT_KERNEL_RELEASE:-$(uname -r)}"
MODULES_DIR="${NETLAT_MODULES_DIR:-/lib/modules}"
SYSTEM_PYTHON=/usr/bin/python3

# What the tool needs at run time, and what the test suite needs on top (netns/veth/tc come from
# iproute2, the end-to-end UI test drives tmux, the VM tests boot a Debian guest under qemu, the
# histogram test compiles the BPF side's bucket code with a C compiler, the exporter's end-to-end test
# runs a real Prometheus server, the software-GSO test turns a veth's TSO off with ethtool).
RUNTIME_PACKAGES=(python3-bpfcc bpfcc-tools python3-venv iproute2 tmux procps)
TEST_PACKAGES=(qemu-system-x86 mmdebstrap e2fsprogs gcc libc6-dev prometheus ethtool)

INVOCATION="$0${*:+ $*}"
MODE=setup
WANT_TEST_PACKAGES=0
ARGS=()
case "${1:-}" in
    --run) MODE=run; shift; ARGS=("$@") ;;
    --test) MODE=test; WANT_TEST_PACKAGES=1; shift; ARGS=("$@") ;;
    --test-deps) WANT_TEST_PACKAGES=1; shift ;;
    -h|--help) sed -n '4,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    "") ;;
    *) echo "setup.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
esac

START=$(date +%s.%N)
CHANGED=0
say() { echo "setup: $*"; }
warn() { echo "setup: warning: $*" >&2; }
die() { echo "setup: error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: sudo $INVOCATION"

# --------------------------------------------------------------------------------------------------
# Debian packages: apt-get update only when something has to be installed, and only once.

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
APT=(apt-get -y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)

apt_update_once() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        "${APT[@]}" update >/dev/null
        APT_UPDATED=1
    fi
}

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

has_candidate() {  # apt knows a version of this package (after an update if needed)
    local c
    c="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
    [ -n "$c" ] && [ "$c" != "(none)" ]
}

install_packages() {
    local missing=() p
    for p in "$@"; do is_installed "$p" || missing+=("$p"); done
    [ "${#missing[@]}" -eq 0 ] && return 0
    apt_update_once
    say "apt-get install ${missing[*]}"
    "${APT[@]}" install --no-install-recommends "${missing[@]}" >/dev/null
    CHANGED=1
}

command -v apt-get >/dev/null || die "this script supports Debian and Ubuntu (apt); see README.md for other systems"
install_packages "${RUNTIME_PACKAGES[@]}"
if [ "$WANT_TEST_PACKAGES" -eq 1 ]; then install_packages "${TEST_PACKAGES[@]}"; fi

# --------------------------------------------------------------------------------------------------
# tracefs and debugfs (BCC reads trace events there; not persistent across reboots, the tool re-checks)

if [ ! -d /sys/kernel/tracing/events ]; then
    mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
    [ -d /sys/kernel/tracing/events ] || die "cannot mount tracefs at /sys/kernel/tracing (kernel needs CONFIG_TRACING)"
    say "mounted tracefs at /sys/kernel/tracing"
fi
if ! mountpoint -q /sys/kernel/debug; then
    if mount -t debugfs nodev /sys/kernel/debug 2>/dev/null; then
        say "mounted debugfs at /sys/kernel/debug"
    else
        warn "debugfs not mounted (BCC falls back to /sys/kernel/tracing)"
    fi
fi

# --------------------------------------------------------------------------------------------------
# Kernel headers. BCC compiles C and will not run without headers of some kernel. Use the exact
# linux-headers-$RELEASE package when apt has one; otherwise link the newest installed or installable
# header tree that BCC really compiles with (a test compile decides; BCC 0.26 breaks on 6.12 headers).
# Their struct layouts are not this kernel's: the probes take offsets from BTF, so that is safe.

KDIR="$MODULES_DIR/$RELEASE"
LINK_NOTE="$KDIR/.netlat-tui-linked-headers"   # marks links made by this script (vs. a package's)

uts_release() {  # the release a header tree was built for
    sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' "$1/include/generated/utsrelease.h" 2>/dev/null | head -n1
}

bcc_compiles() {  # a real compile through the headers now linked for the running kernel
    [ "$RELEASE" = "$(uname -r)" ] || return 0   # test mode on a fake release: cannot compile for it
    "$SYSTEM_PYTHON" - <<'EOF' >/dev/null 2>&1
import bcc
bcc.BPF(text="#include <net/sock.h>\n#include <linux/skbuff.h>\n"
        "int probe(void *ctx) { return sizeof(struct sock) + sizeof(struct sk_buff) > 0; }\n")
EOF
}

link_headers() {  # link_headers OTHER_RELEASE: make its build/source trees this kernel's
    local other="$1"
    mkdir -p "$KDIR"
    ln -sfn "$(readlink -f "$MODULES_DIR/$other/build")" "$KDIR/build"
    if [ -e "$MODULES_DIR/$other/source" ]; then
        ln -sfn "$(readlink -f "$MODULES_DIR/$other/source")" "$KDIR/source"
    else
        rm -f "$KDIR/source"
    fi
    echo "$other" >"$LINK_NOTE"
}

unlink_headers() {  # drop links to another release's headers (ours, or made by hand)
    if [ -L "$KDIR/build" ]; then rm -f "$KDIR/build"; fi
    if [ -L "$KDIR/source" ]; then rm -f "$KDIR/source"; fi
    rm -f "$LINK_NOTE"
}

header_candidates() {  # other releases with an installed header tree, newest first
    local d rel
    for d in "$MODULES_DIR"/*/build; do
        [ -d "$d/include" ] || continue
        rel="$(basename "$(dirname "$d")")"
        [ "$rel" = "$RELEASE" ] || echo "$rel"
    done | sort -rV
}

try_nearest_headers() {
    local rel
    for rel in $(header_candidates); do
        link_headers "$rel"
        if bcc_compiles; then return 0; fi
        warn "BCC cannot compile with the $rel headers; trying another"
        unlink_headers
    done
    return 1
}

ensure_headers() {
    local current=""   # release of another kernel's headers linked here earlier ("" when none)
    if [ -d "$KDIR/build/include" ]; then
        current="$(uts_release "$KDIR/build")"
        # This kernel's own headers (a package, or a kernel built here): nothing to do.
        if [ -z "$current" ] || [ "$current" = "$RELEASE" ]; then return 0; fi
    fi
    # The exact package wins whenever apt has it; look it up without an apt-get update when
    # headers are already in place, so that a second run stays fast.
    if has_candidate "linux-headers-$RELEASE" \
        || { [ -z "$current" ] && apt_update_once && has_candidate "linux-headers-$RELEASE"; }; then
        unlink_headers
        install_packages "linux-headers-$RELEASE"
        [ -d "$KDIR/build/include" ] || die "linux-headers-$RELEASE installed but $KDIR/build is missing"
        say "kernel headers: linux-headers-$RELEASE"
        return 0
    fi
    if [ -n "$current" ]; then
        warn "headers are $current, not $RELEASE: struct offsets come from BTF"
        return 0
    fi
    unlink_headers
    if ! try_nearest_headers; then
        # Nothing usable installed: the distribution's own header flavour (Debian 12: 6.1).
        local arch meta found=""
        arch="$(dpkg --print-architecture)"
        apt_update_once
        for meta in "linux-headers-cloud-$arch" "linux-headers-$arch" linux-headers-generic; do
            if has_candidate "$meta"; then found="$meta"; break; fi
        done
        [ -n "$found" ] || die "no kernel headers package found for $RELEASE; install linux-headers-$RELEASE"
        install_packages "$found"
        try_nearest_headers || die "BCC cannot compile with any installed kernel headers; install linux-headers-$RELEASE"
    fi
    [ -e /sys/kernel/btf/vmlinux ] || die "headers are $(cat "$LINK_NOTE"), not $RELEASE, and the kernel has no BTF: install linux-headers-$RELEASE"
    CHANGED=1
    warn "headers are $(cat "$LINK_NOTE"), not $RELEASE: struct offsets come from BTF"
}

ensure_headers

# --------------------------------------------------------------------------------------------------
# Virtual environment from Debian's python, able to import bcc, with netlat-tui installed editable.

"$SYSTEM_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$SYSTEM_PYTHON is older than 3.11 (netlat-tui needs 3.11+)"
SYSTEM_BCC="$("$SYSTEM_PYTHON" -c 'import bcc, os; print(os.path.dirname(bcc.__file__))' 2>/dev/null)" \
    || die "$SYSTEM_PYTHON cannot import bcc: apt-get install python3-bpfcc"

if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    say "creating virtual environment $VENV"
    rm -rf "$VENV"
    "$SYSTEM_PYTHON" -m venv "$VENV"
    CHANGED=1
fi
# Only bcc is linked in: putting all of dist-packages on the path would shadow the venv's pinned
# libraries with Debian's versions.
PURELIB="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ "$(readlink "$PURELIB/bcc" 2>/dev/null)" != "$SYSTEM_BCC" ]; then
    ln -sfn "$SYSTEM_BCC" "$PURELIB/bcc"
    CHANGED=1
fi

STAMP="$VENV/.netlat-tui-setup"
WANT_STAMP="$REPO $(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"
installed_ok() {
    [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT_STAMP" ] && [ -x "$VENV/bin/netlat-tui" ] \
        && (cd / && "$VENV/bin/python" - "$REPO" <<'EOF' 2>/dev/null)
import os, sys
import bcc, plotext, prometheus_client, pytest, textual, textual_plotext, tui
sys.exit(os.path.dirname(os.path.dirname(os.path.abspath(tui.__file__))) != sys.argv[1])
EOF
}
if ! installed_ok; then
    say "pip install -e '.[dev]' into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$REPO[dev]"
    echo "$WANT_STAMP" >"$STAMP"
    installed_ok || die "netlat-tui is not importable from $VENV after pip install"
    CHANGED=1
fi

ELAPSED=$(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
if [ "$CHANGED" -eq 0 ]; then
    say "everything already in place (${ELAPSED} s)"
else
    say "done in ${ELAPSED} s: $VENV/bin/netlat-tui"
fi

cd "$REPO"
case "$MODE" in
    run) exec "$VENV/bin/netlat-tui" "${ARGS[@]}" ;;
    test) exec "$VENV/bin/python" -m pytest -ra "${ARGS[@]}" ;;
esac
