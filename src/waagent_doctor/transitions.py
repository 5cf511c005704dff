"""Diff a report against the open findings: what was raised and what was cleared.

Findings are conditions with transitions (node-problem-detector): the journal hears about a
change, never about a finding that merely stays open.
"""

from __future__ import annotations

from dataclasses import dataclass

from waagent_doctor.model import Finding, Report
from waagent_doctor.state import MAX_EVIDENCE, OpenFinding


@dataclass(frozen=True)
class Transitions:
    """The changes of one cycle and the open set after it."""

    raised: tuple[Finding, ...]
    cleared: tuple[OpenFinding, ...]
    still_open: tuple[Finding, ...]
    open_after: dict[str, OpenFinding]

    @property
    def changed(self) -> bool:
        """True when anything was raised or cleared."""
        return bool(self.raised or self.cleared)


def opened(finding: Finding, now: float) -> OpenFinding:
    """The record kept in state for a finding raised now."""
    return OpenFinding(
        code=finding.code,
        cause=finding.cause,
        severity=finding.severity.value,
        title=finding.title,
        since=now,
        evidence=finding.evidence[:MAX_EVIDENCE],
        actions=finding.actions,
    )


def diff(open_before: dict[str, OpenFinding], report: Report, now: float) -> Transitions:
    """Raised = in the report, not open before; cleared = open before, not in the report.

    A finding that stays open keeps its `since` and refreshes its evidence.
    """
    current = {f.code: f for f in report.findings}
    raised = tuple(f for code, f in current.items() if code not in open_before)
    still = tuple(f for code, f in current.items() if code in open_before)
    cleared = tuple(o for code, o in open_before.items() if code not in current)
    after: dict[str, OpenFinding] = {}
    for code, f in current.items():
        before = open_before.get(code)
        rec = opened(f, now)
        if before is not None:
            rec = rec.model_copy(update={"since": before.since})
        after[code] = rec
    return Transitions(raised=raised, cleared=cleared, still_open=still, open_after=after)
