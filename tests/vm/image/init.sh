#!/bin/sh
# PID 1 of the test guest: mount the kernel file systems, run the job from the job disk,
# report its exit status on the third serial port, power off.
#
# Serial ports: ttyS0 kernel console, ttyS1 the job's output, ttyS2 "NETLAT_VM_EXIT=<status>".
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
hostname netlat-vm
ip link set lo up

# The UART speed bounds how fast qemu hands output over; raw mode keeps bytes as they are.
stty -F /dev/ttyS1 115200 raw -echo 2>/dev/null
stty -F /dev/ttyS2 115200 raw -echo 2>/dev/null

# The job disk is the NVMe namespace whose file system holds job.sh (names are not stable on 7.x).
status=125
mkdir -p /job
found=
for dev in /dev/nvme*n*; do
    case $dev in *p[0-9]*) continue ;; esac
    if mount -t ext4 "$dev" /job 2>/dev/null; then
        [ -f /job/job.sh ] && { found=$dev; break; }
        umount /job
    fi
done
if [ -n "$found" ]; then
    cd /job
    sh /job/job.sh >/dev/ttyS1 2>&1 </dev/null
    status=$?
    cd /
    sync
    umount /job || status=124
else
    echo "netlat-vm-init: no NVMe namespace holds job.sh" >/dev/ttyS1
fi
echo "NETLAT_VM_EXIT=$status" >/dev/ttyS2
sync
# Power off now; should sysrq be missing, init's exit panics the kernel and qemu (-no-reboot) exits.
echo o >/proc/sysrq-trigger
sleep 5
