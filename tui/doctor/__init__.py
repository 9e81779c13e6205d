"""``netlat-tui doctor``: what this machine and kernel offer, and whether the live dashboard can run.

``checks`` runs the checks (each returns its Finding), ``report`` turns them into the JSON document
and the text. Exit status 0 when live probes can run; otherwise 1 and one line on stderr with the
reason and fix.

``--json`` prints one object (null wherever something could not be checked, e.g. without root)::

    ok          bool: the live dashboard can run
    reason, fix str|null: the first blocking check ("name: detail") and what to do about it
    kernel, machine
    features    {privileges, bpf_syscall, tracefs (path|null), btf, kprobes, fentry,
                 raw_tracepoints, ringbuf, tracepoints (all present)}
    tracepoints {"category:event": present} for every tracepoint any plan uses
    bcc         {importable, version, path, test_compile, test_compile_s}
    headers     {kind: exact|nearest|missing, path, version, message}
    offsets     {btf: {field: bytes}, headers: {field: bytes}|null, mismatched: [field]}
    plan        {auto: plan name|null, stages: {path: [stage keys]}, merged: [line], events: [...],
                 runs: the plan really started (compile, load, attach) and stopped, start_s | error}
    checks      [{name, status: ok|warn|no|fail|skip|info, detail, fix, required, sub}]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tui.doctor.checks import bpf_map_create_works, collect
from tui.doctor.report import (
    FAIL,
    INFO,
    MARKS,
    NAME_WIDTH,
    NO,
    OK,
    SKIP,
    WARN,
    WIDTH,
    Check,
    Finding,
    Report,
    render,
    use_colour,
    use_unicode,
)
from tui.errors import fail


def run_doctor(args: argparse.Namespace) -> int:
    report = collect()
    text = json.dumps(report.as_json(), indent=2) if getattr(args, "json", False) else \
        render(report, use_unicode(), use_colour())
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `doctor | head`: the reader left; not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    blocker = report.blocker()
    if blocker is None:
        return 0
    reason = f"doctor: live probes cannot run: {blocker.name}: {blocker.detail}"
    return fail(reason + (f"; fix: {blocker.fix}" if blocker.fix else ""), 1)


__all__ = [
    "FAIL", "INFO", "MARKS", "NAME_WIDTH", "NO", "OK", "SKIP", "WARN", "WIDTH", "Check", "Finding",
    "Report", "bpf_map_create_works", "collect", "render", "run_doctor", "use_colour", "use_unicode",
]
