"""What the screens show, derived from snapshots: pure Python (no textual, no bcc)."""
