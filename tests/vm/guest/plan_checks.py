"""Guest: run one probe plan through the live source against traffic of known shape; write what it saw.

One compile per plan (30-40 s under TCG), then three scenarios measured as snapshot deltas:

- ``loopback``: request/response on the filtered port, plus the same kind of traffic on another
  port that the filter must exclude;
- ``veth``: request/response between two network namespaces over a veth pair, a UDP filler datagram
  ahead of each request (same traffic as ``tbf``, without the qdisc);
- ``tbf``: the same with a tbf qdisc on the sending veth, sized so that each request waits a
  predictable time behind its filler (the injected delay that must land in the qdisc stage).

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

from tui.model.filters import Filters
from tui.model.summary import snapshot_summary
from tui.sources.live import LiveSource

HERE = Path(__file__).resolve().parent
TRAFFIC = [sys.executable, str(HERE / "traffic.py")]

NS_CLIENT, NS_SERVER = "nlvmA", "nlvmB"
DEV_CLIENT, DEV_SERVER = "vmA", "vmB"
# Addresses exist only inside the two namespaces this script creates in the NIC-less guest.
ADDR_CLIENT, ADDR_SERVER = "10.231.0.1", "10.231.0.2"

# tbf: 1 Mbit/s, a bucket of 1500 bytes. A 1400-byte filler frame leaves 100 bytes of tokens; the
# request frame (1000 bytes of data + 66 of headers with TCP timestamps) then waits for the rest.
TBF_RATE_BIT = 1_000_000
TBF_BURST = 1500
FILLER_FRAME = 1400
FILLER_PAYLOAD = FILLER_FRAME - 14 - 20 - 8  # Ethernet, IPv4, UDP headers
VETH_REQUEST = 1000
REQUEST_FRAME = VETH_REQUEST + 14 + 20 + 32  # Ethernet, IPv4, TCP with the timestamp option
VETH_EXCHANGES = 60
# Long enough for the bucket to refill (1500 bytes at 1 Mbit/s = 12 ms) before the next filler.
VETH_PAUSE_S = 0.03


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


def veth(port: int, with_tbf: bool) -> dict:
    if with_tbf:
        _sh("ip", "netns", "exec", NS_CLIENT, "tc", "qdisc", "replace", "dev", DEV_CLIENT, "root", "tbf",
            "rate", f"{TBF_RATE_BIT}bit", "burst", str(TBF_BURST), "limit", "100000")
    qdisc = subprocess.run(["ip", "netns", "exec", NS_CLIENT, "tc", "qdisc", "show", "dev", DEV_CLIENT],
                           capture_output=True, text=True).stdout.strip()
    response = 300
    server = _start_server(port, VETH_EXCHANGES, VETH_REQUEST, response, host=ADDR_SERVER, netns=NS_SERVER)
    client = _client(port, VETH_EXCHANGES, VETH_REQUEST, response, host=ADDR_SERVER, netns=NS_CLIENT,
                     pause=VETH_PAUSE_S, filler=FILLER_PAYLOAD)
    reports = _finish(client) + _finish(server)
    truth = {"port": port, "exchanges": VETH_EXCHANGES, "request": VETH_REQUEST, "response": response,
             "filler_frame": FILLER_FRAME, "request_frame": REQUEST_FRAME, "qdisc": qdisc,
             **_kernel_counts(reports)}
    if with_tbf:
        deficit = REQUEST_FRAME - (TBF_BURST - FILLER_FRAME)
        truth.update(tbf_rate_bit=TBF_RATE_BIT, tbf_burst=TBF_BURST,
                     expected_wait_us=round(deficit * 8 / TBF_RATE_BIT * 1e6, 1))
    return truth


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
    finally:
        source.close()
        netns_down()
    result["kprobes_after_close"] = _kernel_kprobes()
    result["bpf_progs_after_close"] = _bpf_prog_count()
    (out / f"plan-{args.probes}.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
