"""The running agent: is it running, does its extension handler run, is it hung or looping."""

from __future__ import annotations

from datetime import timedelta
from typing import Optional

from waagent_doctor.checks import Context, check
from waagent_doctor.model import Evidence, utc_text
from waagent_doctor.paths import DISABLE_AGENT
from waagent_doctor.probes import ProbeSkipped, processes, progress, systemd
from waagent_doctor.probes.systemd import UnitState


def _unit(ctx: Context) -> tuple[Optional[UnitState], str]:
    """The agent unit, or None with the reason systemd could not be asked."""
    try:
        return ctx.snap.get(systemd.probe), ""
    except ProbeSkipped as exc:
        return None, str(exc)


def _unit_evidence(unit: UnitState) -> Evidence:
    detail = (
        f"LoadState={unit.load_state} ActiveState={unit.active_state} SubState={unit.sub_state} "
        f"Result={unit.result} UnitFileState={unit.unit_file_state or '-'}"
    )
    if unit.masked:
        detail += " (masked: it cannot be started until unmasked)"
    if unit.start_limit_hit:
        detail += " (systemd gave up: start limit hit)"
    return Evidence(source=unit.source, detail=detail)


@check("agent_running", live_only=True, order=30)
def agent_running(ctx: Context) -> None:
    """agent.not_running and agent.exthandler.not_running (after a grace period)."""
    procs = ctx.snap.get(processes.probe)
    unit, _ = _unit(ctx)
    daemon = procs.daemon
    evidence: list[Evidence] = []
    # systemd waiting RestartSec= before starting it again: a crash loop, not a stop.
    restarting = unit is not None and unit.auto_restarting
    # A unit systemd does not know, while a daemon runs (started another way), is fine.
    if (
        unit is not None
        and not unit.active
        and not restarting
        and not (unit.not_found and daemon is not None)
    ):
        evidence.append(_unit_evidence(unit))
    if daemon is None and not restarting:
        evidence.append(Evidence(source="processes", detail="no `waagent -daemon` process runs"))
    if evidence:
        ctx.raise_("agent.not_running", evidence)
        return
    if daemon is None:
        ctx.skip(f"the agent unit is restarting ({unit.sub_state if unit else ''})")
        return
    if procs.living(procs.exthandlers):
        return
    if ctx.host.root.exists(DISABLE_AGENT):
        ctx.skip(f"{DISABLE_AGENT} exists: the daemon runs no extension handler on purpose")
        return
    grace = timedelta(seconds=ctx.settings.thresholds.exthandler_grace_seconds)
    age = ctx.host.as_of - daemon.started
    if age < grace:
        return
    ctx.raise_(
        "agent.exthandler.not_running",
        [
            Evidence(source=daemon.source, detail=f"daemon: {daemon.describe()}"),
            Evidence(
                source="processes",
                detail=f"no `-run-exthandlers` process runs, {int(age.total_seconds())}s after "
                f"the daemon started (grace {grace.total_seconds():g}s)",
            ),
        ],
    )


@check("agent_hung", live_only=True, order=31)
def agent_hung(ctx: Context) -> None:
    """agent.hung: the processes live, but log, heartbeat and status files are all stale."""
    procs = ctx.snap.get(processes.probe)
    daemon = procs.daemon
    if daemon is None:
        ctx.skip("the agent does not run")
        return
    alive = [daemon, *procs.living(procs.exthandlers)]
    signs = ctx.snap.get(progress.probe)
    threshold = timedelta(minutes=ctx.settings.thresholds.agent_hung_minutes)
    newest = signs.newest
    # A process (re)started recently is progress too: the agent had no time to write yet.
    youngest = max(alive, key=lambda p: p.started)
    last = max(newest.when, youngest.started) if newest else youngest.started
    if ctx.host.as_of - last <= threshold:
        return
    evidence = [Evidence(source=p.source, detail=p.describe()) for p in alive]
    evidence += [
        Evidence(source=m.path, detail=f"last changed {utc_text(m.when)}") for m in signs.marks
    ]
    if not signs.marks:
        evidence.append(Evidence(source="/var/log/waagent.log", detail="no log or status files"))
    stopped = [p for p in alive if p.stopped]
    for p in stopped:
        evidence.append(Evidence(source=p.source, detail="stopped (SIGSTOP or a debugger)"))
    minutes = int((ctx.host.as_of - last).total_seconds() // 60)
    evidence.append(
        Evidence(
            source="progress",
            detail=f"no progress for {minutes} min (threshold "
            f"{ctx.settings.thresholds.agent_hung_minutes:g} min)",
        )
    )
    ctx.raise_("agent.hung", evidence)


@check("agent_restarts_live", live_only=True, order=32)
def agent_restarts_live(ctx: Context) -> None:
    """agent.crash_loop from systemd: the restart counter grows within the window."""
    unit, why = _unit(ctx)
    if unit is None:
        ctx.skip(why)
        return
    if unit.not_found:
        ctx.skip(f"{unit.unit} is not installed")
        return
    history = ctx.snap.get(systemd.restart_history)
    t = ctx.settings.thresholds
    window = timedelta(minutes=t.crash_loop_window_minutes)
    now = ctx.host.as_of
    evidence: list[Evidence] = []
    if unit.start_limit_hit:
        evidence.append(_unit_evidence(unit))
    if len(history.samples) >= 2:
        grew = history.restarts_within(now, window)
        if grew >= t.crash_loop_restarts:
            first = history.samples[0]
            evidence.append(
                Evidence(
                    source=unit.source,
                    detail=f"NRestarts grew by {grew} within {t.crash_loop_window_minutes:g} min "
                    f"(now {history.samples[-1].n_restarts}, sampled since {utc_text(first.at)})",
                )
            )
    elif history.samples:
        # One observation: the count since the last manual start, the last start recent.
        s = history.samples[-1]
        recent = s.inactive_exit is not None and now - s.inactive_exit <= window
        if s.n_restarts >= t.crash_loop_restarts and (recent or unit.auto_restarting):
            last = utc_text(s.inactive_exit) if s.inactive_exit else "-"
            evidence.append(
                Evidence(
                    source=unit.source,
                    detail=f"NRestarts={s.n_restarts} SubState={unit.sub_state} "
                    f"InactiveExitTimestamp={last} (within {t.crash_loop_window_minutes:g} min)",
                )
            )
    if evidence:
        ctx.raise_("agent.crash_loop", evidence)
