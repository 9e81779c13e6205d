"""Guest: the two virtio-net NICs of the harness's own qemu hub, one in each of two network namespaces.

The harness (``run_in_guest(nics=True)``) gives the guest two virtio-net NICs joined by a qemu hub and
nothing else, and says their MACs in ``NETLAT_VM_NICS``. Traffic between the namespaces crosses the
real driver: TX ring, interrupt, NAPI poll, GRO, TX completion. With two CPUs each NIC's interrupts
go to CPU 0 and RPS hands its received packets to the other CPUs, so the backlog stage is real
cross-CPU queueing; ``/proc/net/softnet_stat`` says how many packets RPS moved.

Also the witnesses of skipped kprobe runs: kprobes of our own (tracefs ``kprobe_events``) whose
``kprobe_profile`` misses count the hits the kernel dropped because a kprobe handler was already
running on that CPU (a receive softirq run on interrupt exit on top of a process-context kprobe).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

NS_CLIENT, NS_SERVER = "nlnicA", "nlnicB"
# Addresses exist only inside the two namespaces; the hub joins the two NICs and nothing else.
ADDR_CLIENT, ADDR_SERVER = "10.232.0.1", "10.232.0.2"

TRACING = Path("/sys/kernel/tracing")
#: our witness kprobes, on two of the kprobe plan's own receive hooks: a second kprobe on one
#: address shares the kernel's aggregate kprobe, and a hit skipped because a kprobe handler was
#: already running on that CPU counts as missed for every kprobe on it, so their misses are the
#: plan's skipped runs on tcp_v4_rcv and sock_def_readable (under the tracepoint plan, a baseline).
WITNESS_GROUP = "netlatvm"
WITNESSES = ("tcp_v4_rcv", "sock_def_readable")


def _sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def _in_ns(ns: str, script: str) -> str:
    """Run a shell line in a namespace (``ip netns exec`` mounts that namespace's /sys)."""
    return _sh("ip", "netns", "exec", ns, "sh", "-c", script)


def _by_mac(macs: list[str], wait_s: float = 15.0) -> dict[str, str]:
    """MAC -> interface name in this namespace, waiting for the driver to register them."""
    deadline = time.monotonic() + wait_s
    while True:
        found = {}
        for dev in Path("/sys/class/net").iterdir():
            addr = (dev / "address").read_text().strip() if (dev / "address").exists() else ""
            if addr in macs:
                found[addr] = dev.name
        if len(found) == len(macs) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    missing = [m for m in macs if m not in found]
    if missing:
        raise RuntimeError(f"no NIC with MAC {', '.join(missing)} (virtio_net loaded?)")
    return found


def _irqs(dev: str) -> list[int]:
    """The interrupt numbers of a NIC's PCI function (MSI-X vectors: config, input, output)."""
    msi = Path(f"/sys/class/net/{dev}/device/../msi_irqs")
    return sorted(int(p.name) for p in msi.iterdir()) if msi.is_dir() else []


def nics_up(macs: list[str]) -> dict:
    """Load the driver, put NIC 1 in the client namespace and NIC 2 in the server's, address them,
    bring them up; IRQs on CPU 0 and RPS to the other CPUs when there are two or more. Returns
    what was set up (names, RPS masks, IRQs), for the figures' note."""
    nics_down()
    subprocess.run(["modprobe", "-a", "virtio_pci", "virtio_net", "sch_tbf"], check=False)
    names = _by_mac(macs)
    cpus = os.cpu_count() or 1
    info: dict = {"cpus": cpus, "nics": {}}
    for mac, ns, addr in zip(macs, (NS_CLIENT, NS_SERVER), (ADDR_CLIENT, ADDR_SERVER), strict=True):
        dev = names[mac]
        irqs = _irqs(dev)
        if cpus > 1:
            for irq in irqs:  # before the move: /sys/class/net is per namespace
                Path(f"/proc/irq/{irq}/smp_affinity_list").write_text("0")
        _sh("ip", "netns", "add", ns)
        # No IPv6 in the namespace: no router solicitations or DAD packets on the NICs.
        _in_ns(ns, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1; "
                   "ip link set lo up")
        _sh("ip", "link", "set", dev, "netns", ns)
        _in_ns(ns, f"ip addr add {addr}/24 dev {dev} && ip link set {dev} up")
        rps = "0"
        if cpus > 1:
            mask = ((1 << cpus) - 1) & ~1  # every CPU but the interrupts' CPU 0
            _in_ns(ns, f"echo {mask:x} > /sys/class/net/{dev}/queues/rx-0/rps_cpus")
            rps = _in_ns(ns, f"cat /sys/class/net/{dev}/queues/rx-0/rps_cpus").strip()
        driver = _in_ns(ns, f"basename $(readlink /sys/class/net/{dev}/device/driver)").strip()
        info["nics"][dev] = {"mac": mac, "netns": ns, "addr": addr, "irqs": irqs, "rps_cpus": rps,
                             "driver": driver}
    for dev, nic in info["nics"].items():
        _wait_up(nic["netns"], dev)
    return info


def _wait_up(ns: str, dev: str, wait_s: float = 20.0) -> None:
    """Until the NIC says its link is up (the image has no ping; ARP happens on the first SYN)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if _in_ns(ns, f"cat /sys/class/net/{dev}/operstate").strip() == "up":
            return
        time.sleep(0.2)
    raise RuntimeError(f"{dev} in {ns}: link not up after {wait_s:.0f} s")


def nics_down() -> None:
    """Delete the namespaces (their NICs go back to the initial namespace)."""
    for ns in (NS_CLIENT, NS_SERVER):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, check=False)


def softnet() -> list[dict[str, int]]:
    """Per CPU (/proc/net/softnet_stat): packets processed, dropped, received through RPS."""
    rows = []
    for line in Path("/proc/net/softnet_stat").read_text().splitlines():
        cols = [int(c, 16) for c in line.split()]
        rows.append({"processed": cols[0], "dropped": cols[1], "rps": cols[9] if len(cols) > 9 else 0})
    return rows


def interrupts(irqs: list[int]) -> dict[int, list[int]]:
    """Per interrupt number: how many times each CPU took it."""
    out = {}
    for line in Path("/proc/interrupts").read_text().splitlines()[1:]:
        head, _, rest = line.partition(":")
        if head.strip().isdigit() and int(head) in irqs:
            out[int(head)] = [int(c) for c in rest.split() if c.isdigit()][: os.cpu_count() or 1]
    return out


def snmp(ns: str) -> dict[str, int]:
    """The namespace's TCP counters (/proc/net/snmp): segments in and out, retransmitted."""
    text = _in_ns(ns, "cat /proc/net/snmp")
    lines = [line.split() for line in text.splitlines() if line.startswith("Tcp:")]
    names, values = lines[0][1:], lines[1][1:]
    tcp = dict(zip(names, (int(v) for v in values), strict=True))
    return {k: tcp[k] for k in ("InSegs", "OutSegs", "RetransSegs", "InErrs")}


def _append(path: Path, line: str) -> None:
    """One definition per write(2), appended (a truncating open would drop every kprobe event)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def witnesses_on() -> bool:
    """Register and enable our witness kprobes (tracing itself off: only hits/misses count)."""
    events = TRACING / "kprobe_events"
    if not events.exists():
        return False
    witnesses_off()
    for fn in WITNESSES:
        _append(events, f"p:{WITNESS_GROUP}/{fn} {fn}")
    (TRACING / "tracing_on").write_text("0")
    (TRACING / "events" / WITNESS_GROUP / "enable").write_text("1")
    return True


def witness_counts() -> dict[str, dict[str, int]]:
    """function -> hits and misses of our witness kprobes (kprobe_profile names events without
    their group; ours are the only ones defined through kprobe_events here)."""
    out = {}
    for line in (TRACING / "kprobe_profile").read_text().splitlines():
        m = re.match(r"\s*(\S+)\s+(\d+)\s+(\d+)\s*$", line)
        if m and m.group(1) in WITNESSES:
            out[m.group(1)] = {"hits": int(m.group(2)), "misses": int(m.group(3))}
    return out


def witnesses_off() -> None:
    """Disable and remove our witness kprobes (nothing of ours stays registered)."""
    enable = TRACING / "events" / WITNESS_GROUP / "enable"
    if enable.exists():
        enable.write_text("0")
        for fn in WITNESSES:
            _append(TRACING / "kprobe_events", f"-:{WITNESS_GROUP}/{fn}")
    (TRACING / "tracing_on").write_text("1")
