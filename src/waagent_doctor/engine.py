"""One diagnosis cycle: probes -> snapshot -> checks -> report. No policy, no actions."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Optional

from waagent_doctor import __version__
from waagent_doctor.bundle.redact import redact_bytes
from waagent_doctor.checks import CheckSpec, Context, all_checks
from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.model import (
    CheckResult,
    CheckStatus,
    Evidence,
    Finding,
    Report,
    overall_status,
    utc_text,
)
from waagent_doctor.paths import InputError
from waagent_doctor.probes import ProbeError, ProbeSkipped
from waagent_doctor.snapshot import Snapshot

OFFLINE_SKIP = "offline analysis (--root): live probes do not run"
NOT_AZURE_SKIP = "not an Azure VM (host.not_azure): the doctor stays idle"

# A finding that explains another makes it redundant: the agent cannot hang if it is not
# running, and nothing about the agent matters while disable_agent keeps it asleep.
_EXTENSION_BLOCKED = (
    "extension.vmsnapshot.stuck",
    "extension.vmsnapshot.failed",
    "extension.vmsnapshot.not_installed",
)
SUPERSEDES: dict[str, tuple[str, ...]] = {
    "agent.not_installed": (
        "agent.not_running",
        "agent.exthandler.not_running",
        "agent.hung",
        "agent.crash_loop",
        "agent.autorestart.missing",
        "agent.outdated",
        "agent.autoupdate.disabled",
    ),
    # The agent sleeps forever, or runs no extension at all: no restart can help the backup
    # extension, so its stuck/failed/not_installed findings (and their restart_agent or
    # reload_extension) are replaced by the cause.
    "agent.disabled_by_file": (
        "agent.not_running",
        "agent.exthandler.not_running",
        "agent.hung",
        *_EXTENSION_BLOCKED,
    ),
    "agent.extensions.disabled": _EXTENSION_BLOCKED,
    "agent.not_running": ("agent.exthandler.not_running", "agent.hung"),
    "agent.exthandler.not_running": ("agent.hung",),
}


def offline_as_of(root_dir: str) -> Optional[datetime]:
    """Offline default for --as-of: the newest record time in /var/log/waagent.log."""
    from waagent_doctor.paths import Root
    from waagent_doctor.probes import logscan

    return logscan.newest_record_time(Root(root_dir))


def _run_one(spec: CheckSpec, snap: Snapshot) -> tuple[CheckResult, Context]:
    ctx = Context(snap)
    if spec.live_only and not snap.host.live:
        return CheckResult(name=spec.name, status=CheckStatus.SKIPPED, reason=OFFLINE_SKIP), ctx
    try:
        spec.rule(ctx)
    except InputError as exc:
        ctx.unreadable(exc)
    except ProbeSkipped as exc:
        ctx.skip(str(exc))
    except ProbeError as exc:
        ctx.error(str(exc))
    except Exception as exc:  # noqa: BLE001 - one broken check must not stop the others
        reason = _one_line(f"internal error: {type(exc).__name__}: {exc}")
        _log_crash(spec.name, reason)
        ctx.error(reason)
        # A partial diagnosis never reads `ok`: the crash is a finding of its own.
        ctx.findings.append(
            Finding.of(
                "doctor.check_failed", [Evidence(source=f"check {spec.name}", detail=reason)]
            )
        )
    if ctx.errors:
        status, reason = CheckStatus.ERROR, "; ".join(dict.fromkeys(ctx.errors))
    elif ctx.findings:
        status, reason = CheckStatus.FINDING, ", ".join(dict.fromkeys(f.code for f in ctx.findings))
    elif ctx.skipped is not None:
        status, reason = CheckStatus.SKIPPED, ctx.skipped
    else:
        status, reason = CheckStatus.OK, ""
    codes = tuple(dict.fromkeys(f.code for f in ctx.findings))
    return CheckResult(name=spec.name, status=status, reason=reason, codes=codes), ctx


def _one_line(text: str, limit: int = 300) -> str:
    """A reason fit for one line of the report: no newlines, bounded length."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _log_crash(check_name: str, reason: str) -> None:
    """Say on stderr (or the journal, once logging is configured) that a check crashed.

    Never stdout: `check --json` must print exactly one report there. structlog's default
    logger prints to stdout, so it is used only once `logging.configure` has set it up
    (the daemon); a one-shot `check` writes one line to stderr instead.
    """
    # structlog is imported only here: `check` stays light (it pulls in asyncio).
    import structlog

    if structlog.is_configured():
        structlog.get_logger("waagent_doctor.engine").exception("check.crashed", check=check_name)
    else:
        sys.stderr.write(f"waagent-doctor: check {check_name} crashed: {reason}\n")


def _scrubbed(ev: Evidence) -> Evidence:
    """Evidence with secrets masked: it goes to the journal, the console and bundles.

    The same redactor as the support bundle (SAS signatures, protected settings, passwords,
    keys, proxy credentials), so a log line quoted as evidence never carries a secret.
    """
    detail, count = redact_bytes(ev.detail.encode("utf-8", "surrogateescape"))
    if not count:
        return ev
    return Evidence(source=ev.source, detail=detail.decode("utf-8", "replace"))


def _merge(findings: list[Finding]) -> list[Finding]:
    """One finding per code, evidence merged in order (secrets masked), duplicates dropped."""
    by_code: dict[str, list[Evidence]] = {}
    for f in findings:
        seen = by_code.setdefault(f.code, [])
        for raw in f.evidence:
            ev = _scrubbed(raw)
            if ev not in seen:
                seen.append(ev)
    return [Finding.of(code, ev) for code, ev in by_code.items()]


def _supersede(findings: list[Finding]) -> list[Finding]:
    present = {f.code for f in findings}
    hidden = {c for code in present for c in SUPERSEDES.get(code, ())}
    return [f for f in findings if f.code not in hidden]


def _verdict(findings: list[Finding]) -> Optional[dict[str, object]]:
    from waagent_doctor.verdict import compute

    v = compute(findings)
    return None if v is None else v.to_json()


def sort_key(f: Finding) -> tuple[int, int, str]:
    """Worst first, then by cause (1..4, then 0), then code."""
    cause_order = f.cause if f.cause else 9
    return (-f.severity.rank, cause_order, f.code)


def diagnose(
    host: Host,
    settings: Settings,
    *,
    snapshot: Optional[Snapshot] = None,
    only: Optional[set[str]] = None,
) -> Report:
    """Run every check once against one snapshot and build the report."""
    snap = snapshot or Snapshot(host, settings)
    results: list[CheckResult] = []
    raw: list[Finding] = []
    unreadable: list[InputError] = []
    idle = False
    for spec in all_checks():
        if only is not None and spec.name not in only:
            continue
        if idle:
            # Off Azure the doctor stays idle: nothing else is probed or judged.
            results.append(
                CheckResult(name=spec.name, status=CheckStatus.SKIPPED, reason=NOT_AZURE_SKIP)
            )
            continue
        result, ctx = _run_one(spec, snap)
        idle = any(f.code == "host.not_azure" for f in ctx.findings)
        results.append(result)
        raw.extend(ctx.findings)
        unreadable.extend(ctx.unreadable_inputs)
    for err in unreadable:
        if err.missing:
            continue
        raw.append(
            Finding.of(
                "input.unreadable",
                [Evidence(source=err.guest_path, detail=err.reason)],
            )
        )
    findings = sorted(_supersede(_merge(raw)), key=sort_key)
    return Report(
        generated_at=utc_text(datetime.now(timezone.utc)),
        as_of=utc_text(host.as_of),
        mode=host.mode,
        status=overall_status(findings),
        findings=tuple(findings),
        checks=tuple(results),
        version=__version__,
        root=None if host.live else str(host.root.base),
        verdict=_verdict(findings),
    )
