"""The model and the non-live sources import neither bcc nor textual (they run anywhere)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PURE_MODULES = [
    "tui.model.histogram",
    "tui.model.snapshot",
    "tui.model.filters",
    "tui.model.summary",
    "tui.model.timeline",
    "tui.model.heatmap",
    "tui.model.verdict",
    "tui.model.groups",
    "tui.attribution",
    "tui.sources.base",
    "tui.sources.synthetic",
    "tui.sources.runner",
    "tui.view.frame",
    "tui.view.state",
    "tui.cli",
    "tui.exporter.buckets",
    "tui.exporter.collector",
    "tui.exporter.server",
    "tui.exporter.run",
]


@pytest.mark.parametrize("module", PURE_MODULES)
def test_module_imports_neither_bcc_nor_textual(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('bcc', 'textual', 'plotext')); "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} pulls in {out.stdout.strip()}"
