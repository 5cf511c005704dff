"""Other extensions that failed or hang: the agent can hold a goal state waiting for them."""

from __future__ import annotations

from datetime import timedelta
from typing import Optional

from waagent_doctor.checks import Context, check
from waagent_doctor.checks.backup_extension import describe
from waagent_doctor.model import Evidence, utc_text
from waagent_doctor.probes import goalstate, handlers
from waagent_doctor.probes.goalstate import PluginRequest
from waagent_doctor.probes.handlers import VMSNAPSHOT, ExtStatus, Handler


def _statuses(handler: Handler, req: Optional[PluginRequest]) -> list[ExtStatus]:
    # Single-config: the requested seqNo's status (else the newest); multi-config: the newest
    # status of each extension name (<extName>.<seq>.status).
    if req is not None and req.seq_no is not None and not req.multi_config:
        st = handler.status_for(req.seq_no)
        return [st] if st is not None else []
    newest: dict[Optional[str], ExtStatus] = {}
    for st in handler.statuses:
        newest.setdefault(st.ext_name, st)
    return list(newest.values())


def _judge(ctx: Context, handler: Handler, req: Optional[PluginRequest]) -> list[Evidence]:
    found: list[Evidence] = []
    if (handler.state or "").lower() == "failedupgrade":
        found.append(
            Evidence(
                source=handler.path + "/config/HandlerState", detail="HandlerState=FailedUpgrade"
            )
        )
    hs = handler.handler_status
    if hs is not None and hs.status in ("NotReady", "Unresponsive"):
        found.append(
            Evidence(
                source=handler.path + "/config/HandlerStatus",
                detail=f"status={hs.status} code={hs.code} message={hs.message[:200]}".rstrip(),
            )
        )
    limit = ctx.settings.thresholds.other_extension_stuck_minutes
    for st in _statuses(handler, req):
        if st.problem is not None or st.status == "error":
            found.append(Evidence(source=st.path, detail=describe(st)))
        elif st.status == "transitioning":
            age = (ctx.host.as_of - st.when) / timedelta(minutes=1)
            if age > limit:
                found.append(
                    Evidence(
                        source=st.path,
                        detail=f"{describe(st)} (transitioning since "
                        f"{utc_text(st.when)}, {age:.0f} min)",
                    )
                )
    return found


@check("other_extensions", order=61)
def other_extensions(ctx: Context) -> None:
    """Each extension other than the backup one that the newest goal state wants enabled."""
    gs = ctx.snap.get(goalstate.probe)
    hs = ctx.snap.get(handlers.probe)
    judged = 0
    for name in hs.names():
        if name.lower() == VMSNAPSHOT.lower():
            continue
        req = gs.plugin(name) if gs is not None else None
        if gs is not None and (req is None or req.state != "enabled"):
            # Left over from an older goal state, or asked to be disabled: not a failure.
            continue
        handler = hs.active(name, req.version if req else None)
        if handler is None or (req is None and (handler.state or "").lower() != "enabled"):
            continue
        judged += 1
        for err in handler.problems:
            ctx.unreadable(err)
        evidence = _judge(ctx, handler, req)
        if evidence:
            ctx.raise_("extension.other.failed", evidence)
    if not judged:
        ctx.skip("no other extension is requested or enabled")
