"""Guest: run one probe plan through the live source against traffic of known shape; write what it saw.

One compile per plan (30-40 s under TCG), then three scenarios measured as snapshot deltas:

- ``loopback``: request/response on the filtered port, plus the same kind of traffic on another
  port that the filter must exclude;
- ``veth``: request/response between two network namespaces over a veth pair, a UDP filler datagram
  ahead of each request (same traffic as ``tbf``, without the qdisc);
- ``tbf``: the same with a tbf qdisc on the sending veth, sized so that each request waits a
  predictable time behind its filler (the injected delay that must land in the qdisc stage).

When the harness gave the guest its two NICs (``NETLAT_VM_NICS``, see nics.py), three more over a
real driver (virtio-net: TX ring, NAPI poll, GRO, TX completion), each with the kernel's own
counters around it (``evidence``: our programs' run and skip counts, witness kprobes' misses,
softnet/RPS, interrupts, /proc/net/snmp):

- ``nic``: request/response between the two NICs' namespaces, exact counts per stage;
- ``nic_bulk``: one bulk TCP transfer; TCP_INFO of both sockets is the witness for bytes and segments;
- ``nic_tbf``: the filler/request traffic of ``tbf`` with the tbf on the client's NIC.

Writes ``$NETLAT_VM_OUT/plan-<probes>.json``: per scenario the headless summary document of the
delta plus the ground truth (what the traffic did, the tbf parameters). The host-side tests
(tests/vm/test_vm_plans.py) make the assertions, so a figure can be checked without a reboot.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nics

from tui.bpf.stats import program_misses, program_stats
from tui.model.filters import Filters
from tui.model.summary import snapshot_summary
from tui.sources.live import LiveSource

HERE = Path(__file__).resolve().parent
TRAFFIC = [sys.executable, str(HERE / "traffic.py")]

NS_CLIENT, NS_SERVER = "nlvmA", "nlvmB"
DEV_CLIENT, DEV_SERVER = "vmA", "vmB"
# Addresses exist only inside the two namespaces this script creates in the NIC-less guest.
ADDR_CLIENT, ADDR_SERVER = "10.231.0.1", "10.231.0.2"

# tbf: 250 kbit/s, a bucket of 1500 bytes. A 1400-byte filler frame leaves 100 bytes of tokens; the
# request frame (1000 bytes of data + 66 of headers with TCP timestamps) then waits for the rest:
# 31 ms. At 1 Mbit/s (7.7 ms) a vCPU stalled under TCG on a busy host let the bucket refill between
# filler and request: 11 of 60 requests crossed undelayed in one run (6.1, two vCPUs), and so did
# 6-7 of 60 over the NICs.
TBF_RATE_BIT = 250_000
TBF_BURST = 1500
FILLER_FRAME = 1400
FILLER_PAYLOAD = FILLER_FRAME - 14 - 20 - 8  # Ethernet, IPv4, UDP headers
VETH_REQUEST = 1000
REQUEST_FRAME = VETH_REQUEST + 14 + 20 + 32  # Ethernet, IPv4, TCP with the timestamp option
VETH_EXCHANGES = 60
# Long enough for the bucket to refill (1500 bytes at 250 kbit/s = 48 ms) before the next filler.
VETH_PAUSE_S = 0.06
# Over the NICs: 64-byte request/response as in DESIGN.md's first try, 1000 exchanges rather than
# 200 so that a loss of one packet in 200 (the kprobe plan's, see vm_figures) shows in every run;
# and a bulk transfer modest enough for TCG (4 MB take about 0.3 s).
NIC_EXCHANGES, NIC_MESSAGE = 1000, 64
NIC_BULK_BYTES = 4 << 20
# tbf on the client's NIC: the same rate and pause as on the veth pair (under TCG a vCPU can stall
# for milliseconds: seen 2-187 device-stage samples over 2.3 ms with no tbf at all).
NIC_TBF_RATE_BIT, NIC_TBF_PAUSE_S = TBF_RATE_BIT, VETH_PAUSE_S


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True)


def _start_server(port: int, exchanges: int, request: int, response: int, host: str = "127.0.0.1",
                  netns: str | None = None) -> subprocess.Popen:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    proc = subprocess.Popen(
        [*prefix, *TRAFFIC, "serve", "--host", host, "--port", str(port), "--exchanges", str(exchanges),
         "--request", str(request), "--response", str(response)],
        stdout=subprocess.PIPE, text=True,
    )
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError(f"traffic server on port {port} did not start")
    return proc


def _client(port: int, exchanges: int, request: int, response: int, host: str = "127.0.0.1",
            netns: str | None = None, pause: float = 0.0, filler: int = 0) -> subprocess.Popen:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.Popen(
        [*prefix, *TRAFFIC, "client", "--host", host, "--port", str(port), "--exchanges", str(exchanges),
         "--request", str(request), "--response", str(response), "--pause", str(pause),
         "--filler", str(filler)],
        stdout=subprocess.PIPE, text=True,
    )


def _kernel_counts(reports: list[dict]) -> dict[str, int]:
    """What the kernel says both ends sent (TCP_INFO): data segments and retransmissions."""
    return {"data_segs_out": sum(r["data_segs_out"] for r in reports),
            "retrans": sum(r["total_retrans"] for r in reports)}


def _finish(*procs: subprocess.Popen) -> list[dict]:
    done = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"traffic process {proc.args} exited {proc.returncode}")
        line = out.strip().splitlines()[-1] if out.strip() else "{}"
        done.append(json.loads(line) if line.startswith("{") else {})
    return done


def loopback(port: int, other_port: int) -> dict:
    """200 exchanges on the filtered port and 100 on another port, at the same time."""
    exchanges, request, response = 200, 100, 300
    servers = [_start_server(port, exchanges, request, response),
               _start_server(other_port, 100, request, response)]
    clients = [_client(port, exchanges, request, response), _client(other_port, 100, request, response)]
    client, _ = _finish(*clients)
    server, _ = _finish(*servers)
    return {"port": port, "exchanges": exchanges, "request": request, "response": response,
            "other_port": other_port, "other_exchanges": 100, **_kernel_counts([client, server])}


def udp(port: int) -> dict:
    """UDP request/response on the filtered port between two sockets of this process: the server
    peeks at each request before it reads it (a peek must neither close a datagram nor count as a
    read); every datagram, request or response, must be timed once to the read that took it."""
    exchanges = 50
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with server, client:
        server.bind(("127.0.0.1", port))
        client.connect(("127.0.0.1", port))
        server.settimeout(30)
        client.settimeout(30)
        for _ in range(exchanges):
            client.send(b"u" * 100)
            server.recv(2048, socket.MSG_PEEK)
            data, peer = server.recvfrom(2048)
            server.sendto(data, peer)
            client.recv(2048)
    return {"port": port, "exchanges": exchanges}


def hook_cost(source: LiveSource, port: int) -> dict:
    """Per program: runs and BPF run time (BPF_ENABLE_STATS, which the live source holds on) over
    1000 one-byte request/response exchanges on loopback: the per-hook cost of this plan here."""
    before = source.prog_stats()
    server = _start_server(port, 1000, 1, 1)
    client = _client(port, 1000, 1, 1)
    _finish(client)
    _finish(server)
    after = source.prog_stats()
    out = {}
    for name, (runs, ns) in after.items():
        runs, ns = runs - before.get(name, (0, 0))[0], ns - before.get(name, (0, 0))[1]
        if runs:
            out[name] = {"runs": runs, "ns": ns, "ns_per_run": round(ns / runs)}
    return {"exchanges": 1000, "programs": out}


def netns_up() -> None:
    netns_down()
    if shutil.which("modprobe"):  # modules in the Debian guest; built in elsewhere
        subprocess.run(["modprobe", "-a", "veth", "sch_tbf"], check=False)
    for ns in (NS_CLIENT, NS_SERVER):
        _sh("ip", "netns", "add", ns)
        _sh("ip", "-n", ns, "link", "set", "lo", "up")
    _sh("ip", "link", "add", DEV_CLIENT, "netns", NS_CLIENT, "type", "veth", "peer", "name", DEV_SERVER,
        "netns", NS_SERVER)
    _sh("ip", "-n", NS_CLIENT, "addr", "add", f"{ADDR_CLIENT}/24", "dev", DEV_CLIENT)
    _sh("ip", "-n", NS_SERVER, "addr", "add", f"{ADDR_SERVER}/24", "dev", DEV_SERVER)
    _sh("ip", "-n", NS_CLIENT, "link", "set", DEV_CLIENT, "up")
    _sh("ip", "-n", NS_SERVER, "link", "set", DEV_SERVER, "up")


def netns_down() -> None:
    for ns in (NS_CLIENT, NS_SERVER):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, check=False)


def veth(port: int, with_tbf: bool, ns_client: str = NS_CLIENT, dev_client: str = DEV_CLIENT,
         ns_server: str = NS_SERVER, addr_server: str = ADDR_SERVER, rate_bit: int = TBF_RATE_BIT,
         pause_s: float = VETH_PAUSE_S) -> dict:
    """Filler + request/response from the client's namespace, over the veth pair or (other
    arguments) the NICs; with_tbf puts a tbf of ``rate_bit`` on the client's device."""
    if with_tbf:
        _sh("ip", "netns", "exec", ns_client, "tc", "qdisc", "replace", "dev", dev_client, "root", "tbf",
            "rate", f"{rate_bit}bit", "burst", str(TBF_BURST), "limit", "100000")
    qdisc = subprocess.run(["ip", "netns", "exec", ns_client, "tc", "qdisc", "show", "dev", dev_client],
                           capture_output=True, text=True).stdout.strip()
    response = 300
    server = _start_server(port, VETH_EXCHANGES, VETH_REQUEST, response, host=addr_server, netns=ns_server)
    client = _client(port, VETH_EXCHANGES, VETH_REQUEST, response, host=addr_server, netns=ns_client,
                     pause=pause_s, filler=FILLER_PAYLOAD)
    reports = _finish(client) + _finish(server)
    truth = {"port": port, "exchanges": VETH_EXCHANGES, "request": VETH_REQUEST, "response": response,
             "filler_frame": FILLER_FRAME, "request_frame": REQUEST_FRAME, "qdisc": qdisc,
             **_kernel_counts(reports)}
    if with_tbf:
        deficit = REQUEST_FRAME - (TBF_BURST - FILLER_FRAME)
        truth.update(tbf_rate_bit=rate_bit, tbf_burst=TBF_BURST,
                     expected_wait_us=round(deficit * 8 / rate_bit * 1e6, 1))
    return truth


def nic_exchanges(port: int) -> dict:
    """Request/response over the NICs: every packet crosses the virtio-net driver both ways."""
    server = _start_server(port, NIC_EXCHANGES, NIC_MESSAGE, NIC_MESSAGE, host=nics.ADDR_SERVER,
                           netns=nics.NS_SERVER)
    client = _client(port, NIC_EXCHANGES, NIC_MESSAGE, NIC_MESSAGE, host=nics.ADDR_SERVER,
                     netns=nics.NS_CLIENT)
    reports = _finish(client) + _finish(server)
    return {"port": port, "exchanges": NIC_EXCHANGES, "request": NIC_MESSAGE, "response": NIC_MESSAGE,
            **_kernel_counts(reports), "tcp_info": reports}


def nic_bulk(port: int) -> dict:
    """One bulk transfer client -> server; each side's TCP_INFO taken once every byte is across."""
    prefix = ["ip", "netns", "exec"]
    server = subprocess.Popen([*prefix, nics.NS_SERVER, *TRAFFIC, "sink", "--host", nics.ADDR_SERVER,
                               "--port", str(port), "--bytes", str(NIC_BULK_BYTES)],
                              stdout=subprocess.PIPE, text=True)
    if server.stdout.readline().strip() != "ready":
        server.kill()
        raise RuntimeError("bulk sink did not start")
    client = subprocess.Popen([*prefix, nics.NS_CLIENT, *TRAFFIC, "bulk", "--host", nics.ADDR_SERVER,
                               "--port", str(port), "--bytes", str(NIC_BULK_BYTES)],
                              stdout=subprocess.PIPE, text=True)
    sender, receiver = _finish(client) + _finish(server)
    return {"port": port, "bytes": NIC_BULK_BYTES, "sender": sender, "receiver": receiver}


class Evidence:
    """The kernel's own counters around one NIC scenario: per program of ours, runs (BPF stats on)
    and skipped runs (recursion_misses); our witness kprobes' hits and misses; softnet (RPS);
    the NICs' interrupts per CPU; each namespace's TCP segment counters."""

    def __init__(self, source: LiveSource, irqs: list[int]) -> None:
        self.source, self.irqs = source, irqs
        self.witness = nics.witnesses_on()
        self.before = self._read()

    def _read(self) -> dict:
        bpf = self.source._bpf  # the kernel's view of our programs (no public accessor)
        return {"runs": {k: v[0] for k, v in program_stats(bpf).items()},
                "misses": program_misses(bpf),
                "witness": nics.witness_counts() if self.witness else {},
                "softnet": nics.softnet(), "irqs": nics.interrupts(self.irqs),
                "snmp": {ns: nics.snmp(ns) for ns in (nics.NS_CLIENT, nics.NS_SERVER)}}

    def close(self) -> dict:
        after = self._read()
        nics.witnesses_off()
        b = self.before

        def sub(new: dict, old: dict) -> dict:
            return {k: v - old.get(k, 0) for k, v in new.items()}

        return {
            "runs": sub(after["runs"], b["runs"]),
            "misses": {k: v for k, v in sub(after["misses"], b["misses"]).items() if v},
            "witness": {k: sub(v, b["witness"].get(k, {})) for k, v in after["witness"].items()},
            "softnet": [sub(n, o) for n, o in zip(after["softnet"], b["softnet"], strict=True)],
            "irqs": {irq: [n - o for n, o in zip(v, b["irqs"].get(irq, [0] * len(v)), strict=True)]
                     for irq, v in after["irqs"].items()},
            "snmp": {ns: sub(v, b["snmp"][ns]) for ns, v in after["snmp"].items()},
        }


def _kernel_kprobes() -> list[str]:
    path = Path("/sys/kernel/debug/kprobes/list")
    return [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _bpf_prog_count() -> int | None:
    """BPF programs loaded in the kernel (bpftool), None without bpftool."""
    if shutil.which("bpftool") is None:
        return None
    done = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
    return len(json.loads(done.stdout)) if done.returncode == 0 else None


def _poll(source: LiveSource):
    for _ in range(10):
        snap = source.poll()
        if snap is not None:
            return snap
        time.sleep(0.2)
    raise RuntimeError("the live source gave no snapshot")


def nic_scenarios(source: LiveSource, port: int, macs: list[str], scenarios: dict, probes: str) -> dict:
    """The NIC scenarios, each measured as a snapshot delta with its Evidence. A failed setup or
    scenario is written down (``error``) and the run goes on: the host-side tests say what failed."""
    started = time.monotonic()
    try:
        setup = nics.nics_up(macs)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        return {"error": f"NIC setup failed: {exc}"}
    devs = {nic["netns"]: dev for dev, nic in setup["nics"].items()}
    irqs = [irq for nic in setup["nics"].values() for irq in nic["irqs"]]
    steps = (("nic", lambda: nic_exchanges(port)),
             ("nic_bulk", lambda: nic_bulk(port)),
             ("nic_tbf", lambda: veth(port, True, nics.NS_CLIENT, devs[nics.NS_CLIENT], nics.NS_SERVER,
                                      nics.ADDR_SERVER, NIC_TBF_RATE_BIT, NIC_TBF_PAUSE_S)))
    Path("/proc/sys/kernel/bpf_stats_enabled").write_text("1")
    try:
        for name, run in steps:
            base = _poll(source)
            evidence = Evidence(source, irqs)
            t0 = time.monotonic()
            try:
                truth = run()
            except (OSError, RuntimeError, subprocess.SubprocessError, ValueError) as exc:
                nics.witnesses_off()
                scenarios[name] = {"error": f"{name}: {exc}"}
                continue
            time.sleep(0.5)
            snap = _poll(source)
            summary = snapshot_summary(snap.since(base), time.monotonic() - t0)
            scenarios[name] = {"truth": truth, "summary": summary, "evidence": evidence.close()}
            print(f"plan_checks: {probes} {name} done in {time.monotonic() - t0:.1f} s", flush=True)
    finally:
        Path("/proc/sys/kernel/bpf_stats_enabled").write_text("0")
    setup["seconds"] = round(time.monotonic() - started, 1)
    return setup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", required=True)
    args = parser.parse_args(argv)
    out = Path(os.environ.get("NETLAT_VM_OUT", "."))
    port, other_port = _free_port(), _free_port()
    result: dict = {"probes": args.probes, "port": port, "scenarios": {},
                    "bpf_progs_before": _bpf_prog_count()}
    source = LiveSource(probes=args.probes, filters=Filters.parse(port=str(port)))
    started = time.monotonic()
    source.start()
    result["start_s"] = round(time.monotonic() - started, 1)
    result["notes"] = list(getattr(source, "notes", ()))
    result["kprobes_attached"] = len(_kernel_kprobes())
    print(f"plan_checks: {args.probes} attached in {result['start_s']} s", flush=True)
    try:
        netns_up()
        base = _poll(source)
        steps = (("loopback", lambda: loopback(port, other_port)),
                 ("udp", lambda: udp(port)),
                 ("veth", lambda: veth(port, with_tbf=False)),
                 ("tbf", lambda: veth(port, with_tbf=True)))
        for name, run in steps:
            t0 = time.monotonic()
            truth = run()
            time.sleep(0.5)  # late ACKs and deferred packets settle into this scenario's delta
            snap = _poll(source)
            summary = snapshot_summary(snap.since(base), time.monotonic() - t0)
            base = snap
            result["scenarios"][name] = {"truth": truth, "summary": summary}
            print(f"plan_checks: {args.probes} {name} done", flush=True)
        result["hooks"] = [list(h) for h in source.plan.info.hooks]
        result["cost"] = hook_cost(source, _free_port())
        macs = os.environ.get("NETLAT_VM_NICS", "").split()
        if macs:
            result["nic_setup"] = nic_scenarios(source, port, macs, result["scenarios"], args.probes)
    finally:
        source.close()
        netns_down()
        nics.nics_down()
    result["kprobes_after_close"] = _kernel_kprobes()
    result["bpf_progs_after_close"] = _bpf_prog_count()
    (out / f"plan-{args.probes}.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
