"""Guest smoke check: BCC compiles against the kernel's own headers and a kprobe on tcp_sendmsg counts
real loopback sends.

Runs inside the test guest (Debian python3 + python3-bpfcc). The probe reads the destination port
through ``struct sock`` as the headers lay it out, so a count that matches proves the headers match
the running kernel, not only that a kprobe attached. Writes ``$NETLAT_VM_OUT/smoke.json``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from bcc import BPF

SENDS = 200
SIZE = 100

BPF_TEXT = r"""
#include <uapi/linux/ptrace.h>
#include <net/sock.h>

BPF_ARRAY(counts, u64, 3);   /* 0: calls, 1: bytes, 2: returns */

int kprobe__tcp_sendmsg(struct pt_regs *ctx, struct sock *sk, struct msghdr *msg, size_t size)
{
    u16 dport = sk->__sk_common.skc_dport;
    if (ntohs(dport) != SERVER_PORT)
        return 0;
    int calls = 0, bytes = 1;
    counts.atomic_increment(calls);
    counts.atomic_increment(bytes, size);
    return 0;
}

int kretprobe__tcp_sendmsg(struct pt_regs *ctx)
{
    /* All tcp_sendmsg returns of the client thread (the probe has no socket at return). */
    if ((bpf_get_current_pid_tgid() & 0xffffffff) != CLIENT_TID)
        return 0;
    int returns = 2;
    counts.atomic_increment(returns);
    return 0;
}
"""


def _kernel_kprobes() -> list[str]:
    """The kprobes the kernel has registered (debugfs), as "<kind> <symbol>": the independent view."""
    lines = Path("/sys/kernel/debug/kprobes/list").read_text().splitlines()
    return sorted(" ".join(line.split()[1:3]) for line in lines if line.strip())


def _serve(listener: socket.socket, total: int) -> None:
    conn, _ = listener.accept()
    with conn:
        got = 0
        while got < total:
            chunk = conn.recv(65536)
            if not chunk:
                break
            got += len(chunk)


def main() -> int:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    started = time.monotonic()
    bpf = BPF(text=BPF_TEXT, cflags=[f"-DSERVER_PORT={port}", f"-DCLIENT_TID={threading.get_native_id()}"])
    compile_s = time.monotonic() - started

    server = threading.Thread(target=_serve, args=(listener, SENDS * SIZE))
    server.start()
    client = socket.create_connection(("127.0.0.1", port))
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(SENDS):
        client.sendall(b"x" * SIZE)
    server.join(timeout=30)
    client.close()
    listener.close()

    counts = bpf["counts"]
    result = {
        "kernel": os.uname().release,
        "compile_s": round(compile_s, 1),
        "server_port": port,
        "sends": SENDS,
        "size": SIZE,
        "calls": counts[0].value,
        "bytes": counts[1].value,
        "returns": counts[2].value,
        "kernel_kprobes": _kernel_kprobes(),
    }
    bpf.cleanup()
    result["kernel_kprobes_after_cleanup"] = _kernel_kprobes()
    out = Path(os.environ.get("NETLAT_VM_OUT", "."))
    (out / "smoke.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
