#!/bin/sh
# Every benchmark in sequence (about 20 minutes on the development machine); results in bench/results/.
set -eu
cd "$(dirname "$0")/.."
PY=.venv/bin/python
uptime
$PY bench/startup.py
$PY bench/probe_cost.py
$PY bench/resources.py
$PY bench/ceiling.py
$PY bench/socket_table.py
$PY bench/bulk.py
$PY bench/exporter.py
$PY bench/overhead.py
uptime
