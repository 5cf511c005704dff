"""The goal-state agent's version against the configured minimum and the offered family version."""

from __future__ import annotations

from waagent_doctor.checks import Context, check
from waagent_doctor.model import Evidence
from waagent_doctor.paths import InputError
from waagent_doctor.probes import goalstate, versions, waagent_conf
from waagent_doctor.probes.versions import older


@check("agent_version", order=25)
def agent_version(ctx: Context) -> None:
    """An old agent is a known cause of snapshot status timeouts (Azure Backup docs)."""
    found = ctx.snap.get(versions.probe)
    for err in found.problems:
        ctx.unreadable(err)
    current = found.goal_state_agent
    if current is None:
        ctx.skip(
            "no agent version recorded (no waagent_status.json, WALinuxAgent-* folder or package)"
        )
        return
    source = found.goal_state_agent_source or "/var/lib/waagent"
    minimum = ctx.settings.thresholds.min_agent_version
    if older(current, minimum):
        ctx.raise_(
            "agent.outdated",
            [Evidence(source=source, detail=f"goal-state agent {current} < minimum {minimum}")],
        )
    try:
        gs = ctx.snap.get(goalstate.probe)
    except InputError as err:
        ctx.unreadable(err)
        return
    if gs is None:
        return
    try:
        conf = ctx.snap.get(waagent_conf.probe)
        family_name = conf.get("AutoUpdate.GAFamily") or "Prod"
    except InputError:
        family_name = "Prod"
    family = gs.family(family_name)
    if family is not None and family.version and older(current, family.version):
        ctx.raise_(
            "agent.outdated",
            [
                Evidence(source=source, detail=f"goal-state agent {current}"),
                Evidence(
                    source=gs.source, detail=f"GAFamily {family.name} offers {family.version}"
                ),
            ],
        )
