"""Pure-Python model of netlat-tui: histograms, snapshots, summaries. Imports neither bcc nor textual."""
