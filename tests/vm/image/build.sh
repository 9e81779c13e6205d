#!/bin/bash
# Build a netlat-tui test guest: a Debian root filesystem (stock cloud kernel with kprobes and fentry,
# its exact headers, BCC) as an ext4 image, plus the kernel to boot it with.
#
# Usage: build.sh SUITE OUTDIR   (writes OUTDIR/root.img, OUTDIR/vmlinuz, OUTDIR/release; needs root)
#   bookworm          Debian 12: kernel 6.1, BCC 0.26 (what many users run; lacks the newer tcp/sock
#                     tracepoints the tracepoint plan uses)
#   trixie            Debian 13: kernel 6.12, BCC 0.31 (has the sock tracepoints, not tcp_sendmsg_locked)
#   trixie-backports  Debian 13 with the newest kernel from trixie-backports: every tracepoint the
#                     tracepoint plan uses, and kprobes, so both plans run on one kernel
# The harness (tests/vm/vm_harness.py) caches OUTDIR under a key made of the suite and this
# directory's content, so any change here rebuilds the image.
set -euo pipefail

# The root file system sits in partition 1 of an MBR disk with this signature: the kernel finds it
# by root=PARTUUID=6e6c6174-01 without an initramfs. Device names are no use: from Linux 7.x NVMe
# namespaces are scanned in parallel, so nvme0n1 may be either disk. Keep in step with vm_harness.py.
DISK_SIGNATURE=0x6e6c6174

suite=${1:?usage: build.sh SUITE OUTDIR}
out=${2:?usage: build.sh SUITE OUTDIR}
dist=${suite%-backports}   # the Debian release; "-backports" only says where the kernel comes from
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /var/tmp/netlat-vm-build.XXXXXX)
cleanup() {
    # mmdebstrap mounts proc, sys and dev inside the chroot; if it is killed they stay: unmount first.
    grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

# Debian packages only. The headers come from the same archive as the kernel, so they match it
# exactly: that is the "normal distro" set-up this guest exists to test.
kernel=(linux-image-cloud-amd64 linux-headers-cloud-amd64)
if [ "$dist" != "$suite" ]; then
    kernel=("${kernel[@]/%//$suite}")   # pkg/trixie-backports
fi
packages=(
    "${kernel[@]}"
    python3 python3-bpfcc bpfcc-tools bpftool
    iproute2 procps kmod mount util-linux
)

# Use the host's own Debian sources (the host's mirror), with the host's release name swapped for
# this one's, plus the backports suite when asked; mmdebstrap's default applies only when the host
# has no Debian sources file.
host_dist=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
mirrors=()
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -s "$f" ] && grep -Eq '^[[:space:]]*(deb |URIs:)' "$f"; then
        sources="$work/$(basename "$f")"
        cp "$f" "$sources"
        if [ -n "$host_dist" ] && [ "$host_dist" != "$dist" ]; then
            sed -E -i "s/\\b$host_dist(-updates|-security)?\\b/$dist\\1/g" "$sources"
        fi
        if [ "$dist" != "$suite" ]; then
            # deb822: add the suite next to <dist>-updates; one-line: repeat the main line for it.
            sed -E -i -e "s/^(Suites:.*\\b$dist-updates\\b.*)\$/\\1 $suite/" \
                      -e "s/^(deb [^#]* )$dist( .*)\$/&\\n\\1$suite\\2/" "$sources"
        fi
        mirrors+=("$sources")
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
    "$dist" "$work/root" "${mirrors[@]}"

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
# so those never reach this file). One partition from 1 MiB, the file system written into it.
used_mb=$(du -sm "$work/root" | cut -f1)
fs_mb=$((used_mb + used_mb / 3 + 256))
truncate -s "$((fs_mb + 1))M" "$out/root.img"
# A classic MBR by hand (sfdisk is in a package the host may not have): signature, one Linux
# partition (type 0x83) from sector 2048, boot mark. CHS fields unused by Linux: left zero.
python3 - "$out/root.img" "$DISK_SIGNATURE" "$((fs_mb * 2048))" <<'PY'
import struct, sys
path, signature, sectors = sys.argv[1], int(sys.argv[2], 16), int(sys.argv[3])
entry = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048, sectors)
mbr = bytearray(512)
mbr[440:444] = struct.pack("<I", signature)
mbr[446:462] = entry
mbr[510:512] = b"\x55\xaa"
with open(path, "r+b") as disk:
    disk.write(mbr)
PY
mkfs.ext4 -q -F -L netlat-root -E offset=1048576 -d "$work/root" "$out/root.img" "${fs_mb}M"
echo "build.sh: guest kernel $release, root filesystem ${used_mb} MB"
