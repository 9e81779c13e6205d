"""Reusable dashboard widgets; each takes its data through ``update_snapshot(...)`` and never fetches."""
