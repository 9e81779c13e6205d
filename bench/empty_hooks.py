#!/usr/bin/env python3
"""The floor: the tracepoint plan's hooks attached as raw tracepoints with empty bodies.

Run by bench/overhead.py as the "empty_hooks" condition: what any tracer using these hooks pays
before doing any work, so netlat-tui's figure splits into hook dispatch and its own program bodies.
Attaches, then waits for SIGINT.
"""

from __future__ import annotations

import signal

from tui.bpf.plans import TRACEPOINT_EVENTS
from tui.system import import_bcc

bcc = import_bcc()
names = [event.split(":")[1] for event in TRACEPOINT_EVENTS]
text = "\n".join(f"RAW_TRACEPOINT_PROBE({name}) {{ return 0; }}" for name in names)
bpf = bcc.BPF(text=text)  # BCC attaches RAW_TRACEPOINT_PROBE functions itself
print(f"attached {len(names)} empty raw tracepoints", flush=True)
try:
    signal.pause()
except KeyboardInterrupt:
    pass
finally:
    bpf.cleanup()
