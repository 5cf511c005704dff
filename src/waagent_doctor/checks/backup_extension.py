"""The backup extension (VMSnapshotLinux): requested, installed, answering, and why it failed.

Only the newest goal state's request counts; the extension's status codes and its own log
turn a generic failure into the cause an operator can act on (network, freeze, load).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Optional

from waagent_doctor.checks import Context, check
from waagent_doctor.model import Evidence, utc_text
from waagent_doctor.paths import InputError
from waagent_doctor.probes import extlogs, goalstate, handlers
from waagent_doctor.probes.goalstate import GoalState, PluginRequest
from waagent_doctor.probes.handlers import VMSNAPSHOT, ExtStatus, Handler
from waagent_doctor.probes.versions import older

# VMBackup/main/ExtensionErrorCodeHelper.py and common.py
STORAGE_CODES = frozenset({76, 761})  # FailedRetryableSnapshotFailed(No|Restricted)Network
FREEZE_CODES = frozenset({121, 122, 123})  # FsFreezeFailed, FsFreezeTimeout, UnableToOpenMount
TOO_LATE_CODES = frozenset({402})  # FailedGuestAgentInvokedCommandTooLate
_BLOB_UPLOAD_ERROR = re.compile(r"statusBlobUploadError\s*=\s*true", re.IGNORECASE)
# Freeze failures in extension.log: "T:S Enable failed with error: ... FsFreezeFailed",
# "Failed to freeze", "freeze timed out", "Unable to open mount".
FREEZE_WORDS = re.compile(
    r"FsFreeze(Failed|Timeout)|FailedRetryableFsFreeze|freeze (failed|error|timed ?out)"
    r"|failed to freeze|freezing .* failed|unable to open mount",
    re.IGNORECASE,
)
# HandlerStatus messages of a failed install/enable/update (exthandlers.py, extensionprocessutil.py)
_HANDLER_FAILURE = re.compile(
    r"Non-zero exit code|Timeout\(\d+\)|\[Extension\w*Error\]|failed|Downgrade not allowed",
    re.IGNORECASE,
)
_MESSAGE_CHARS = 200


def describe(st: ExtStatus) -> str:
    """`status=error code=76 message=...` for evidence (message already SAS-scrubbed)."""
    if st.problem:
        return f"status file rejected by the agent: {st.problem}"
    msg = st.message if len(st.message) <= _MESSAGE_CHARS else st.message[:_MESSAGE_CHARS] + "..."
    return f"status={st.status} code={st.code} message={msg}".rstrip()


def request_evidence(gs: GoalState, req: PluginRequest) -> Evidence:
    """Evidence naming what the newest goal state asks for."""
    seq = "" if req.seq_no is None else f" seqNo={req.seq_no}"
    return Evidence(
        source=gs.source,
        detail=f"goal state (incarnation {gs.incarnation or '?'}) requests {req.name} "
        f"version={req.version} state={req.state}{seq}",
    )


def handler_failure(handler: Handler) -> Optional[Evidence]:
    """Evidence of a failed install/enable/update recorded by the agent, or None."""
    if (handler.state or "").lower() == "failedupgrade":
        return Evidence(
            source=handler.path + "/config/HandlerState", detail="HandlerState=FailedUpgrade"
        )
    hs = handler.handler_status
    if hs is not None and hs.status == "NotReady" and _HANDLER_FAILURE.search(hs.message):
        return Evidence(
            source=handler.path + "/config/HandlerStatus",
            detail=f"status=NotReady code={hs.code} message={hs.message[:_MESSAGE_CHARS]}",
        )
    return None


def age_minutes(as_of: datetime, since: datetime) -> float:
    """Minutes from since to as_of (negative when since is later)."""
    return (as_of - since) / timedelta(minutes=1)


def _judged_status(
    handler: Handler, req: Optional[PluginRequest]
) -> tuple[Optional[ExtStatus], Optional[int]]:
    # The status of the requested sequence number; without a goal state, the newest one.
    if req is not None and req.seq_no is not None and not req.multi_config:
        return handler.status_for(req.seq_no), req.seq_no
    return handler.newest_status, None


def _failure(st: ExtStatus) -> bool:
    return st.problem is not None or st.status == "error"


@check("backup_extension", order=60)
def backup_extension(ctx: Context) -> None:
    """Raise what keeps the backup extension from answering a snapshot request."""
    gs = ctx.snap.get(goalstate.probe)
    hs = ctx.snap.get(handlers.probe)
    req = gs.plugin(VMSNAPSHOT) if gs is not None else None
    installed = hs.versions_of(VMSNAPSHOT)
    if gs is not None and req is None:
        ctx.skip("backup extension not requested by the newest goal state")
        return
    if req is None and not installed:
        ctx.skip("backup extension not requested")
        return
    if req is not None and req.state != "enabled":
        ctx.skip(f"the goal state asks for the backup extension to be {req.state}")
        return
    as_of = ctx.host.as_of
    thresholds = ctx.settings.thresholds
    handler = hs.active(VMSNAPSHOT, req.version if req else None)
    asked = [request_evidence(gs, req)] if gs is not None and req is not None else []

    if handler is None or (handler.state or "").lower() not in ("enabled", "failedupgrade"):
        young = (
            gs is not None
            and gs.received_at is not None
            and age_minutes(as_of, gs.received_at) < thresholds.extension_stuck_minutes
        )
        failure = handler_failure(handler) if handler is not None else None
        if failure is not None:
            ctx.raise_("extension.vmsnapshot.failed", [*asked, failure])
        elif not young:
            where = (
                Evidence(
                    source=handler.path + "/config/HandlerState",
                    detail=f"HandlerState={handler.state or 'NotInstalled'}",
                )
                if handler is not None
                else Evidence(
                    source="/var/lib/waagent", detail=f"no {VMSNAPSHOT}-<version> handler folder"
                )
            )
            ctx.raise_("extension.vmsnapshot.not_installed", [*asked, where])
        return

    for err in handler.problems:
        ctx.unreadable(err)
    if older(handler.version, thresholds.min_vmsnapshot_version):
        ctx.raise_(
            "extension.vmsnapshot.outdated",
            [
                Evidence(
                    source=handler.path,
                    detail=f"installed version {handler.version} "
                    f"< minimum {thresholds.min_vmsnapshot_version}",
                )
            ],
        )

    specific = 0
    generic: list[Evidence] = []
    failure = handler_failure(handler)
    if failure is not None:
        generic.append(failure)

    st, seq = _judged_status(handler, req)
    if st is None and seq is not None and seq not in handler.status_seqs:
        limit = thresholds.extension_stuck_minutes
        since = gs.received_at if gs is not None else None
        settings_file = handler.settings_for(seq)
        if since is None and settings_file is not None:
            since = settings_file.mtime
        if since is not None and age_minutes(as_of, since) > thresholds.extension_stuck_minutes:
            ctx.raise_(
                "extension.vmsnapshot.stuck",
                [
                    *asked,
                    Evidence(
                        source=f"{handler.path}/status/{seq}.status",
                        detail=f"no status for seqNo {seq} since {utc_text(since)} "
                        f"({age_minutes(as_of, since):.0f} min > {limit:g})",
                    ),
                ],
            )
            specific += 1
    elif st is not None:
        ev = Evidence(source=st.path, detail=describe(st))
        if st.status == "transitioning":
            age = age_minutes(as_of, st.when)
            if age > thresholds.extension_stuck_minutes:
                stuck = Evidence(
                    source=st.path,
                    detail=f"{describe(st)} (transitioning since {utc_text(st.when)}, "
                    f"{age:.0f} min)",
                )
                ctx.raise_("extension.vmsnapshot.stuck", [stuck])
                specific += 1
        elif _failure(st):
            codes = set(st.codes()) if st.status == "error" else set()
            if codes & STORAGE_CODES or any(_BLOB_UPLOAD_ERROR.search(m) for m in st.messages()):
                ctx.raise_("network.storage.unreachable", [ev])
                specific += 1
            if codes & FREEZE_CODES:
                ctx.raise_("snapshot.freeze.failed", [ev])
                specific += 1
            if codes & TOO_LATE_CODES:
                ctx.raise_("snapshot.command_too_late", [ev])
                specific += 1
            generic.append(ev)

    specific += _freeze_from_log(ctx, handler)
    specific += _repeated_failures(ctx, handler, seq)
    if generic and not specific:
        ctx.raise_("extension.vmsnapshot.failed", [*asked, *generic])


def _freeze_from_log(ctx: Context, handler: Handler) -> int:
    """Freeze-failure words in extension.log within the look-back window, after the last success."""
    try:
        logs = ctx.snap.get(extlogs.probe)
    except InputError as err:
        ctx.unreadable(err)
        return 0
    as_of = ctx.host.as_of
    start = as_of - timedelta(hours=ctx.settings.thresholds.lookback_hours)
    # A later successful snapshot clears an earlier freeze failure.
    for st in handler.statuses:
        if st.status == "success":
            start = max(start, st.when)
            break
    hits = [ln for ln in logs.extension_log.between(start, as_of) if FREEZE_WORDS.search(ln.text)]
    if not hits:
        return 0
    ctx.raise_(
        "snapshot.freeze.failed", [Evidence(source=ln.source, detail=ln.text) for ln in hits[-3:]]
    )
    return 1


def _repeated_failures(ctx: Context, handler: Handler, seq: Optional[int]) -> int:
    """The last N status files (by sequence number, up to the requested one) are all failures."""
    n = ctx.settings.thresholds.repeated_failures
    recent = [s for s in handler.statuses if seq is None or s.seq_no <= seq][:n]
    if len(recent) < n or not all(_failure(s) for s in recent):
        return 0
    ctx.raise_(
        "backup.repeated_failures",
        [Evidence(source=s.path, detail=f"seqNo={s.seq_no} {describe(s)}") for s in recent],
    )
    return 1
