"""``python -m tui.workload`` runs the loads' command line (see tui.workload.cli)."""

from tui.workload.cli import main

raise SystemExit(main())
