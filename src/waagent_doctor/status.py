"""`waagent-doctor status [--json]`: what the daemon found and did, read from its state."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from typing import Any, Optional

from waagent_doctor import config as configmod
from waagent_doctor import state as statemod
from waagent_doctor.config import Settings
from waagent_doctor.model import utc_text
from waagent_doctor.paths import DOCTOR_STATE
from waagent_doctor.policy import HOUR

STATUS_SCHEMA = "waagent-doctor/status/1"
RECENT_ACTIONS = 10


def _t(epoch: Optional[float]) -> Optional[str]:
    return None if epoch is None else utc_text(datetime.fromtimestamp(epoch, timezone.utc))


def build(state: statemod.State, settings: Settings, now: float) -> dict[str, Any]:
    """The status object (the JSON of `status --json`)."""
    used = state.attempts_since("restart_agent", now - HOUR)
    budget = settings.actions.restart_agent_per_hour
    cycle = state.last_cycle
    verbose = state.verbose_logging
    bundle = state.last_bundle
    return {
        "schema": STATUS_SCHEMA,
        "last_cycle": None
        if cycle is None
        else {
            "at": _t(cycle.at),
            "duration_seconds": round(cycle.duration, 3),
            "status": cycle.status,
            "findings": cycle.findings,
            "dry_run": cycle.dry_run,
        },
        "open_findings": [
            {
                "code": o.code,
                "cause": o.cause,
                "severity": o.severity,
                "title": o.title,
                "since": _t(o.since),
                "evidence": [e.model_dump() for e in o.evidence],
            }
            for o in sorted(state.open_findings.values(), key=lambda o: o.since)
        ],
        "actions": {
            "recent": [
                {
                    "action": r.action,
                    "result": r.result,
                    "at": _t(r.at),
                    "code": r.code,
                    "reason": r.reason,
                }
                for r in state.history[-RECENT_ACTIONS:]
            ],
            "totals": dict(sorted(state.totals.items())),
            "budget": {
                "restart_agent": {
                    "per_hour": budget,
                    "used_last_hour": used,
                    "left": max(budget - used, 0),
                }
            },
            "gave_up": {a: _t(t) for a, t in sorted(state.gave_up.items())},
        },
        "verbose_logging": None
        if verbose is None
        else {
            "phase": verbose.phase,
            "path": verbose.path,
            "original": verbose.original,
            "since": _t(verbose.applied_at),
            "reverts_at": _t(verbose.revert_after),
        },
        "last_bundle": None
        if bundle is None
        else {"path": bundle.path, "at": _t(bundle.at), "size": bundle.size},
        # Handler folders reload_extension moved aside: `mv path original` puts one back.
        "quarantined": [
            {"original": q.original, "path": q.path, "at": _t(q.at), "code": q.code}
            for q in state.quarantined
        ],
    }


def render(doc: dict[str, Any]) -> str:
    """The status as text for a terminal."""
    out: list[str] = []
    cycle = doc["last_cycle"]
    if cycle is None:
        out.append("Last cycle: none yet")
    else:
        dry = " (dry run)" if cycle["dry_run"] else ""
        out.append(
            f"Last cycle: {cycle['at']} took {cycle['duration_seconds']}s, "
            f"status {cycle['status']}{dry}"
        )
    findings = doc["open_findings"]
    out.append(f"Open findings: {len(findings) or 'none'}")
    for f in findings:
        out.append(f"  {f['severity']:<8} {f['code']} (cause {f['cause']}) since {f['since']}")
        out.append(f"           {f['title']}")
    budget = doc["actions"]["budget"]["restart_agent"]
    out.append(
        f"Agent restarts: {budget['used_last_hour']} in the last hour, "
        f"{budget['left']} of {budget['per_hour']} left"
    )
    for action, at in doc["actions"]["gave_up"].items():
        out.append(f"  gave up {action} at {at}")
    recent = doc["actions"]["recent"]
    out.append(f"Recent actions: {len(recent) or 'none'}")
    for r in recent:
        out.append(f"  {r['at']} {r['action']} {r['result']} ({r['code']}): {r['reason']}")
    v = doc["verbose_logging"]
    if v is None:
        out.append("Verbose agent logging: off (not set by the doctor)")
    else:
        out.append(
            f"Verbose agent logging: on since {v['since']} in {v['path']}, reverts by "
            f"{v['reverts_at']} or once healthy (was {v['original'] or 'unset'})"
        )
    b = doc["last_bundle"]
    out.append("Last bundle: none" if b is None else f"Last bundle: {b['path']} ({b['at']})")
    for q in doc["quarantined"]:
        out.append(f"Moved aside {q['at']}: {q['original']} -> {q['path']}")
    return "\n".join(out) + "\n"


def status_command(
    *,
    as_json: bool,
    state_path: Optional[str] = None,
    config_path: Optional[str] = None,
) -> int:
    """`waagent-doctor status`: 0 when the state was read, 3 when there is none to read."""
    try:
        state = statemod.read_only(state_path or DOCTOR_STATE)
    except ValueError as exc:
        sys.stderr.write(f"waagent-doctor: {exc}\n")
        return 3
    if state is None:
        where = state_path or DOCTOR_STATE
        sys.stderr.write(f"waagent-doctor: no state in {where}: the daemon has not run\n")
        return 3
    try:
        settings = configmod.load(config_path)
    except configmod.ConfigError:
        settings = Settings()
    doc = build(state, settings, time.time())
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(render(doc))
    return 0
