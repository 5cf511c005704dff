"""Typed values that cross layers: evidence, findings, check results and the report."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from waagent_doctor.codes import CODES, Severity

REPORT_SCHEMA = "waagent-doctor/report/1"


def utc_text(when: datetime) -> str:
    """RFC 3339 UTC with a Z, seconds precision: 2026-11-26T10:00:00Z."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time (Z or offset); a naive time is taken as UTC."""
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    when = datetime.fromisoformat(t)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        return when.astimezone(timezone.utc)
    except OverflowError:
        # 0001-01-01T00:00:00+14:00 is before the first representable UTC instant.
        raise ValueError(f"time out of range: {text!r}") from None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Evidence(_Frozen):
    """Where a finding comes from: a guest path (with :line) or a probe, and what was seen."""

    source: str
    detail: str


class Finding(_Frozen):
    """One finding code raised with its evidence; cause/severity/title come from the code."""

    code: str
    cause: int
    severity: Severity
    title: str
    evidence: tuple[Evidence, ...] = ()
    remedy: str
    action: Optional[str] = None
    actions: tuple[str, ...] = ()

    @classmethod
    def of(cls, code: str, evidence: list[Evidence] | tuple[Evidence, ...] = ()) -> Finding:
        """Build a finding from the code table; an unknown code is a programming error."""
        row = CODES[code]
        return cls(
            code=code,
            cause=row.cause,
            severity=row.severity,
            title=row.title,
            evidence=tuple(evidence),
            remedy=row.remedy,
            action=row.actions[0] if row.actions else None,
            actions=row.actions,
        )


class CheckStatus(str, Enum):
    """The outcome of one check."""

    OK = "ok"
    FINDING = "finding"
    SKIPPED = "skipped"
    ERROR = "error"


class CheckResult(_Frozen):
    """One check's outcome, with a reason when not ok."""

    name: str
    status: CheckStatus
    reason: str = ""
    # The codes this check raised this cycle (so the daemon knows who speaks for a finding).
    codes: tuple[str, ...] = ()


class Report(_Frozen):
    """The diagnosis of one cycle: `check --json`, and report.json in every bundle."""

    schema_id: str = Field(default=REPORT_SCHEMA, serialization_alias="schema")
    generated_at: str
    as_of: str
    mode: str
    status: str
    findings: tuple[Finding, ...]
    checks: tuple[CheckResult, ...]
    version: str = ""
    root: Optional[str] = None
    # report/1 (2026-12): the finding that best explains the failure (verdict.py), or null.
    verdict: Optional[dict[str, object]] = None

    def worst(self) -> Optional[Severity]:
        """The worst severity among the findings, or None."""
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=lambda s: s.rank)

    def to_json_dict(self) -> dict[str, object]:
        """The report as the contract's JSON object."""
        return self.model_dump(mode="json", by_alias=True)


def overall_status(findings: tuple[Finding, ...] | list[Finding]) -> str:
    """ok, warning or critical: the worst finding (info counts as ok)."""
    rank = max((f.severity.rank for f in findings), default=0)
    return {0: "ok", 1: "warning", 2: "critical"}[rank]
