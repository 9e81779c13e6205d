#!/bin/bash
# Build the netlat-tui test guest: a Debian bookworm root filesystem (stock cloud kernel with kprobes
# and fentry, its exact headers, BCC) as an ext4 image, plus the kernel to boot it with.
#
# Usage: build.sh OUTDIR     (writes OUTDIR/rootfs.ext4, OUTDIR/vmlinuz, OUTDIR/release; needs root)
# The harness (tests/vm/vm_harness.py) caches OUTDIR under a key made of this directory's content,
# so any change here rebuilds the image.
set -euo pipefail

out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /var/tmp/netlat-vm-build.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Debian packages only. The headers come from the same archive as the kernel, so they match it
# exactly: that is the "normal distro" set-up this guest exists to test.
packages=(
    linux-image-cloud-amd64 linux-headers-cloud-amd64
    python3 python3-bpfcc bpfcc-tools bpftool
    iproute2 procps kmod mount util-linux
)

# Use the host's own Debian sources (same mirror and suites as the host's apt); mmdebstrap's
# default applies only when the host has none in deb822 or one-line form.
mirrors=()
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -s "$f" ] && grep -Eq '^[[:space:]]*(deb |URIs:)' "$f"; then
        mirrors+=("$f")
        break
    fi
done

# INITRD=No: the kernel has NVMe and ext4 built in and boots without an initramfs, so skip
# building one (saves time and space). Docs, man pages and locales are not needed in the guest.
INITRD=No mmdebstrap \
    --variant=apt \
    --include="$(IFS=,; echo "${packages[*]}")" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -f "$1"/boot/initrd.img*' \
    bookworm "$work/root" "${mirrors[@]}"

install -m 0755 "$here/init.sh" "$work/root/sbin/netlat-vm-init"
echo netlat-vm > "$work/root/etc/hostname"

release=$(ls "$work/root/lib/modules")
if [ "$(echo "$release" | wc -w)" != 1 ]; then
    echo "build.sh: expected one kernel in the guest, found: $release" >&2
    exit 1
fi
[ -e "$work/root/lib/modules/$release/build" ] || { echo "build.sh: no headers for $release" >&2; exit 1; }

mkdir -p "$out"
cp "$work/root/boot/vmlinuz-$release" "$out/vmlinuz"
echo "$release" > "$out/release"

# Size: what the tree uses plus room for the guest's writes (the harness boots it in snapshot mode,
# so those never reach this file).
used_mb=$(du -sm "$work/root" | cut -f1)
mkfs.ext4 -q -F -L netlat-root -d "$work/root" "$out/rootfs.ext4" "$((used_mb + used_mb / 3 + 256))M"
echo "build.sh: guest kernel $release, root filesystem ${used_mb} MB"
