"""What doctor found and how it is shown: one Check a line, each check's Finding, the Report made of
them, its ``--json`` document and its text for a terminal."""

from __future__ import annotations

import os
import platform
import sys
import textwrap
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

OK, WARN, NO, FAIL, SKIP, INFO = "ok", "warn", "no", "fail", "skip", "info"
#: status -> (unicode mark, ascii mark, ANSI colour)
MARKS = {
    OK: ("✓", "ok", "32"),
    WARN: ("!", "!!", "33"),
    NO: ("✗", "no", "33"),  # an optional feature this kernel lacks: not an error
    FAIL: ("✗", "XX", "31"),
    SKIP: ("-", "--", "2"),
    INFO: ("i", "i", "36"),
}
NAME_WIDTH = 16
WIDTH = 80

T = TypeVar("T")


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    #: ok | warn | no (optional feature absent) | fail | skip (could not be checked) | info
    status: str
    detail: str
    fix: str = ""
    required: bool = False  #: the live dashboard cannot run when this one fails
    sub: bool = False  #: a detail line under the check before it (e.g. one tracepoint)


@dataclass(frozen=True)
class Finding(Generic[T]):
    """What one check returns: the value the checks after it build on (root or not, the tracefs
    path, the bcc module, ...), its lines in the report, and its facts for the JSON document."""

    value: T
    checks: tuple[Check, ...] = ()
    #: JSON section ("features", "bcc", ...) -> the entries this check adds to it
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)


def found(value: T, *checks: Check, **facts: dict[str, Any]) -> Finding[T]:
    """``Finding(value, checks, facts)`` written the way the checks read best."""
    return Finding(value, checks, facts)


@dataclass
class Report:
    """Everything doctor found; ``as_json()`` is the ``--json`` document."""

    kernel: str = field(default_factory=platform.release)
    machine: str = field(default_factory=platform.machine)
    checks: list[Check] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)
    tracepoints: dict[str, bool] = field(default_factory=dict)
    bcc: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    offsets: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, findings: Iterable[Finding[Any]]) -> Report:
        """The report of these findings: their lines in order, their facts merged section by section."""
        report = cls()
        for finding in findings:
            report.checks.extend(finding.checks)
            for section, facts in finding.facts.items():
                getattr(report, section).update(facts)
        return report

    def blocker(self) -> Check | None:
        return next((c for c in self.checks if c.required and c.status in (FAIL, SKIP)), None)

    def as_json(self) -> dict[str, Any]:
        blocker = self.blocker()
        return {
            "ok": blocker is None,
            "reason": None if blocker is None else f"{blocker.name}: {blocker.detail}",
            "fix": None if blocker is None else blocker.fix or None,
            "kernel": self.kernel,
            "machine": self.machine,
            "features": self.features,
            "tracepoints": self.tracepoints,
            "bcc": self.bcc,
            "headers": self.headers,
            "offsets": self.offsets,
            "plan": self.plan,
            "checks": [asdict(c) for c in self.checks],
        }


def use_unicode(stream: Any = None) -> bool:
    stream = sys.stdout if stream is None else stream
    if os.environ.get("NO_COLOR"):
        return False
    return "utf" in (getattr(stream, "encoding", "") or "").lower()


def use_colour(stream: Any = None) -> bool:
    stream = sys.stdout if stream is None else stream
    return (not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
            and hasattr(stream, "isatty") and stream.isatty())


def render(report: Report, unicode: bool = True, colour: bool = False, width: int = WIDTH) -> str:
    """The human report: one check per line, wrapped to ``width`` columns."""
    lines = [f"netlat-tui doctor: Linux {report.kernel} ({report.machine})"]
    indent = " " * (NAME_WIDTH + 5)
    for c in report.checks:
        uni, asc, code = MARKS[c.status]
        mark = (uni if unicode else asc).ljust(2)
        if colour:
            mark = f"\x1b[{code}m{mark}\x1b[0m"
        if c.sub:  # e.g. "      ✓ tcp:tcp_probe (tracepoint, kprobe)"
            lines.append(f"{'':6}{mark} {c.name} {c.detail}"[: width + len(mark) - 2])
            continue
        head = f" {mark} {c.name:<{NAME_WIDTH}} "
        text = c.detail + (f" (fix: {c.fix})" if c.fix and c.status in (FAIL, SKIP) else "")
        wrapped = textwrap.wrap(text, width - len(indent)) or [""]
        lines.append(head + wrapped[0])
        lines.extend(indent + more for more in wrapped[1:])
    blocker = report.blocker()
    if blocker is None:
        verdict = f"the live dashboard can run here (probe plan: {report.plan.get('auto')})"
    else:
        verdict = f"the live dashboard cannot run here: {blocker.name}: {blocker.detail}"
    lines.extend(["", *textwrap.wrap(verdict, width)])
    return "\n".join(lines)
