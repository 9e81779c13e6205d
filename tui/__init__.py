"""netlat-tui: live per-layer latency of the Linux TCP/IP stack, measured with BCC eBPF probes."""

__version__ = "0.1.0"
