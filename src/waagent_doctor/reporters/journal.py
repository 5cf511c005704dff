"""The journal entries of the contract: one per finding raised/cleared, per action decision.

Each carries MESSAGE_ID (explained in the catalog), WAAGENT_DOCTOR_EVENT, _CODE, _CAUSE and
_ACTION where it applies. The fields are built here; logging.py sends them.
"""

from __future__ import annotations

from typing import Any, Optional

import structlog

from waagent_doctor.codes import ACTIONS, CODES, MESSAGE_ID_GAVE_UP
from waagent_doctor.model import Finding
from waagent_doctor.state import OpenFinding

log = structlog.get_logger("waagent_doctor.journal")

# syslog priorities: a critical finding is an error on the machine, a cleared one a notice.
_RAISED = {"critical": 3, "warning": 4, "info": 6}
_ACTION = {"action.applied": 5, "action.failed": 3, "action.skipped": 5}


def _evidence(finding: Finding) -> str:
    return "\n".join(f"{e.source}: {e.detail}" for e in finding.evidence[:5])


def finding_raised_fields(finding: Finding) -> dict[str, Any]:
    """The entry of a finding that appeared."""
    first = finding.evidence[0] if finding.evidence else None
    where = f": {first.source}: {first.detail}" if first is not None else ""
    return {
        "MESSAGE_ID": CODES[finding.code].message_id,
        "WAAGENT_DOCTOR_EVENT": "finding.raised",
        "WAAGENT_DOCTOR_CODE": finding.code,
        "WAAGENT_DOCTOR_CAUSE": finding.cause,
        "WAAGENT_DOCTOR_SEVERITY": finding.severity.value,
        "WAAGENT_DOCTOR_ACTION": finding.action,
        "WAAGENT_DOCTOR_EVIDENCE": _evidence(finding) or None,
        "message": f"{finding.title} [{finding.code}]{where}",
        "priority": _RAISED.get(finding.severity.value, 4),
    }


def finding_cleared_fields(opened: OpenFinding) -> dict[str, Any]:
    """The entry of a finding that went away."""
    row = CODES.get(opened.code)
    return {
        "MESSAGE_ID": row.message_id if row is not None else None,
        "WAAGENT_DOCTOR_EVENT": "finding.cleared",
        "WAAGENT_DOCTOR_CODE": opened.code,
        "WAAGENT_DOCTOR_CAUSE": opened.cause,
        "WAAGENT_DOCTOR_SEVERITY": opened.severity,
        "message": f"Cleared: {opened.title} [{opened.code}]",
        "priority": 5,
    }


def action_fields(
    event: str,
    action: str,
    code: str,
    detail: str,
    *,
    gave_up: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """The entry of an action applied, failed or skipped (gave_up: the budget is spent)."""
    row = CODES.get(code)
    verb = {"action.applied": "applied", "action.failed": "FAILED", "action.skipped": "skipped"}
    text = f"{action} {verb.get(event, event)} for {code}: {detail}"
    if gave_up:
        text = f"Gave up {action} for {code}: {detail}"
    return {
        "MESSAGE_ID": MESSAGE_ID_GAVE_UP if gave_up else ACTIONS[action].message_id,
        "WAAGENT_DOCTOR_EVENT": event,
        "WAAGENT_DOCTOR_ACTION": action,
        "WAAGENT_DOCTOR_CODE": code,
        "WAAGENT_DOCTOR_CAUSE": row.cause if row is not None else None,
        "WAAGENT_DOCTOR_REASON": detail,
        "WAAGENT_DOCTOR_GAVE_UP": "1" if gave_up else None,
        "WAAGENT_DOCTOR_DRY_RUN": "1" if dry_run else None,
        "message": text,
        "priority": 4 if gave_up else _ACTION.get(event, 5),
    }


def _emit(fields: dict[str, Any]) -> None:
    event = str(fields["WAAGENT_DOCTOR_EVENT"])
    prio = int(fields.get("priority", 6))
    clean = {k: v for k, v in fields.items() if v is not None}
    if prio <= 3:
        log.error(event, **clean)
    elif prio == 4:
        log.warning(event, **clean)
    else:
        log.info(event, **clean)


def finding_raised(finding: Finding) -> None:
    """Tell the journal a finding appeared."""
    _emit(finding_raised_fields(finding))


def finding_cleared(opened: OpenFinding) -> None:
    """Tell the journal a finding went away."""
    _emit(finding_cleared_fields(opened))


def action(
    event: str,
    action_name: str,
    code: str,
    detail: str,
    *,
    gave_up: bool = False,
    dry_run: bool = False,
) -> None:
    """Tell the journal what happened to an action."""
    _emit(action_fields(event, action_name, code, detail, gave_up=gave_up, dry_run=dry_run))


def doctor_event(
    event: str, message: str, *, message_id: Optional[str] = None, priority: int = 6, **fields: Any
) -> None:
    """One entry about the doctor itself (started, config rejected, verbose reverted...)."""
    data: dict[str, Any] = {"WAAGENT_DOCTOR_EVENT": event, "message": message, "priority": priority}
    if message_id:
        data["MESSAGE_ID"] = message_id
    data.update(fields)
    _emit(data)
