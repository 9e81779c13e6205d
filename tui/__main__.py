"""``python -m tui`` runs the netlat-tui command line."""

from tui.cli import main

raise SystemExit(main())
