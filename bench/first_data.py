#!/usr/bin/env python3
"""Child of bench/startup.py: time from launch to the live source's first snapshot with data.

argv[1] is the launch time (time.time() of the parent just before it started this process). Prints
one JSON line: seconds from launch to imports done, to start() done (BCC compile + attach) and to
the first snapshot whose histograms hold a packet.
"""

from __future__ import annotations

import json
import sys
import time

launched = float(sys.argv[1])
interval = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1

from tui.model.filters import Filters  # noqa: E402 - timed: imports are part of startup
from tui.sources.live import LiveSource  # noqa: E402

imported = time.time()
source = LiveSource(probes="auto", filters=Filters(), sample=1, interval_s=interval)
try:
    source.start()
    started = time.time()
    packets = 0
    while True:
        snap = source.poll()
        if snap is not None:
            packets = sum(s.hist.total for path in snap.paths.values() for s in path.all())
            if packets:
                break
        time.sleep(interval / 4)
    first = time.time()
finally:
    source.close()
print(json.dumps({
    "import_s": round(imported - launched, 3),
    "start_s": round(started - launched, 3),
    "first_data_s": round(first - launched, 3),
    "packets_in_first": packets,
}))
