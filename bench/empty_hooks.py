#!/usr/bin/env python3
"""The floor: the tracepoint plan's hooks attached as raw tracepoints with empty bodies.

Run by bench/overhead.py as the "empty_hooks" condition: what any tracer using these hooks pays
before doing any work, so netlat-tui's figure splits into hook dispatch and its own program bodies.
Attaches, then waits for SIGINT. ``hold_plan_hooks()`` also serves bench/counters_floor.py, which
gives some hooks a body.
"""

from __future__ import annotations

import signal

from tui.bpf.plans import TRACEPOINT_EVENTS
from tui.system import import_bcc


def hold_plan_hooks(bodies: dict[str, str] | None = None, prelude: str = "") -> None:
    """Attach every hook of the tracepoint plan as a raw tracepoint whose body is ``bodies[name]``
    (empty where none is given; ``prelude`` is C placed before them), hold them until SIGINT."""
    bodies = bodies or {}
    names = [event.split(":")[1] for event in TRACEPOINT_EVENTS]
    unknown = set(bodies) - set(names)
    if unknown:
        raise SystemExit(f"bench: not hooks of the tracepoint plan: {', '.join(sorted(unknown))}")
    programs = "\n".join(f"RAW_TRACEPOINT_PROBE({name})\n{{\n{bodies.get(name, '')}\n    return 0;\n}}"
                         for name in names)
    bpf = import_bcc().BPF(text=prelude + programs)  # BCC attaches RAW_TRACEPOINT_PROBE functions itself
    print(f"attached {len(names)} raw tracepoints, {len(bodies)} of them with a body", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        bpf.cleanup()


if __name__ == "__main__":
    hold_plan_hooks()
