"""Human output of `check`: grouped by cause, worst first, fits an 80-column terminal."""

from __future__ import annotations

import textwrap

from waagent_doctor.codes import CAUSE_TITLES
from waagent_doctor.model import CheckStatus, Finding, Report

WIDTH = 80
_MARK = {"critical": "CRITICAL", "warning": "WARNING", "info": "INFO"}


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(
        text,
        width=WIDTH,
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=True,
        break_on_hyphens=False,
    ) or [indent.rstrip()]


def _cause_rank(findings: list[Finding]) -> tuple[int, int]:
    worst = max(f.severity.rank for f in findings)
    cause = findings[0].cause
    return (-worst, cause if cause else 9)


def render(report: Report) -> str:
    """The report as text lines for a terminal."""
    lines: list[str] = []
    head = f"waagent-doctor {report.version}: {report.status.upper()}"
    head += f"  ({report.mode}, as of {report.as_of})"
    lines.append(head)
    if not report.findings:
        lines.append("")
        lines.append("No findings: nothing here explains a failing backup.")
    groups: dict[int, list[Finding]] = {}
    for f in report.findings:
        groups.setdefault(f.cause, []).append(f)
    for cause, findings in sorted(groups.items(), key=lambda kv: _cause_rank(kv[1])):
        lines.append("")
        label = f"Cause {cause}: " if cause else ""
        lines.append(f"== {label}{CAUSE_TITLES[cause]} ==")
        for f in findings:
            lines.append("")
            lines.extend(_wrap(f"[{_MARK[f.severity.value]}] {f.title} ({f.code})", ""))
            for ev in f.evidence[:8]:
                lines.extend(_wrap(f"{ev.source}: {ev.detail}", "    "))
            if len(f.evidence) > 8:
                lines.append(f"    ... and {len(f.evidence) - 8} more")
            lines.extend(_wrap("Fix: " + f.remedy, "  "))
            if f.actions:
                lines.extend(_wrap("Automatic remedy (daemon): " + ", ".join(f.actions), "  "))
    not_ok = [c for c in report.checks if c.status in (CheckStatus.ERROR, CheckStatus.SKIPPED)]
    # Skips that say the same thing (live-only checks offline, everything off Azure) are
    # one line, naming the checks, so the reasons that matter stay visible.
    common: dict[str, list[str]] = {}
    for c in not_ok:
        if c.status is CheckStatus.SKIPPED:
            common.setdefault(c.reason, []).append(c.name)
    grouped = {reason for reason, names in common.items() if len(names) > 2}
    if not_ok:
        lines.append("")
        lines.append("== Checks not fully run ==")
        for c in not_ok:
            if c.status is CheckStatus.SKIPPED and c.reason in grouped:
                continue
            lines.extend(_wrap(f"{c.name}: {c.status.value}: {c.reason}", "  "))
        for reason in sorted(grouped):
            names = ", ".join(common[reason])
            lines.extend(_wrap(f"{len(common[reason])} checks skipped: {reason} ({names})", "  "))
    ran = sum(1 for c in report.checks if c.status in (CheckStatus.OK, CheckStatus.FINDING))
    lines.append("")
    lines.append(f"{len(report.findings)} finding(s); {ran} of {len(report.checks)} checks ran.")
    return "\n".join(line.rstrip() for line in lines) + "\n"
