"""Snapshot sources: live BCC probes, replay of a recorded file, deterministic synthetic data."""
