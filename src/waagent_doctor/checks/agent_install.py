"""The agent is installed, and not switched off by /var/lib/waagent/disable_agent."""

from __future__ import annotations

from datetime import datetime, timezone

from waagent_doctor.checks import Context, check
from waagent_doctor.model import Evidence, utc_text
from waagent_doctor.paths import UNIT_DIRS, WAAGENT_BINARIES
from waagent_doctor.probes import units


@check("agent_install", order=10)
def agent_install(ctx: Context) -> None:
    """No unit and no waagent executable: nothing can talk to Azure; disable_agent: it sleeps.

    A masked unit still counts as installed: the package is there and `systemctl unmask` fixes
    it. The masked state is recorded in the probe for the live unit check, not raised here.
    """
    inst = ctx.snap.get(units.probe)
    if inst.unit is None and not inst.binaries:
        ctx.raise_(
            "agent.not_installed",
            [
                Evidence(
                    source=f"{UNIT_DIRS[-1]}/{inst.names_tried[0]}",
                    detail=(
                        f"no {' or '.join(inst.names_tried)} in "
                        f"{', '.join(UNIT_DIRS)} ({inst.name_source})"
                    ),
                ),
                Evidence(
                    source=WAAGENT_BINARIES[0],
                    detail=f"none of {', '.join(WAAGENT_BINARIES)} exists",
                ),
            ],
        )
    if inst.disable_file is not None:
        mtime = datetime.fromtimestamp(inst.disable_file.mtime, tz=timezone.utc)
        ctx.raise_(
            "agent.disabled_by_file",
            [
                Evidence(
                    source=inst.disable_file.path,
                    detail=f"exists (modified {utc_text(mtime)}): the agent sleeps forever",
                )
            ],
        )
