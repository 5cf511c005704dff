"""Diff a report against the open findings: what was raised and what was cleared.

Findings are conditions with transitions (node-problem-detector): the journal hears about a
change, never about a finding that merely stays open.
"""

from __future__ import annotations

from dataclasses import dataclass

from waagent_doctor.model import CheckStatus, Finding, Report
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


def opened(finding: Finding, now: float, checks: tuple[str, ...] = ()) -> OpenFinding:
    """The record kept in state for a finding raised now."""
    return OpenFinding(
        code=finding.code,
        cause=finding.cause,
        severity=finding.severity.value,
        title=finding.title,
        since=now,
        evidence=finding.evidence[:MAX_EVIDENCE],
        actions=finding.actions,
        checks=checks,
    )


def diff(open_before: dict[str, OpenFinding], report: Report, now: float) -> Transitions:
    """Raised = in the report, not open before; cleared = open before, not in the report.

    A finding that stays open keeps its `since` and refreshes its evidence. A finding whose
    checks could not run this cycle (status error: a file half-written, a command that timed
    out) is neither cleared nor raised again: no answer is not a recovery.
    """
    current = {f.code: f for f in report.findings}
    errored = {c.name for c in report.checks if c.status is CheckStatus.ERROR}
    speakers: dict[str, list[str]] = {}
    for c in report.checks:
        for code in c.codes:
            speakers.setdefault(code, []).append(c.name)
    held = {
        code: o
        for code, o in open_before.items()
        if code not in current and o.checks and set(o.checks) & errored
    }
    raised = tuple(f for code, f in current.items() if code not in open_before)
    still = tuple(f for code, f in current.items() if code in open_before)
    cleared = tuple(
        o for code, o in open_before.items() if code not in current and code not in held
    )
    after: dict[str, OpenFinding] = dict(held)
    for code, f in current.items():
        before = open_before.get(code)
        rec = opened(f, now, tuple(speakers.get(code, ())))
        if before is not None:
            rec = rec.model_copy(update={"since": before.since})
        after[code] = rec
    return Transitions(raised=raised, cleared=cleared, still_open=still, open_after=after)
