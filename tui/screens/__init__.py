"""The dashboard's screens: main view, socket drill-down, filter dialog, help."""
