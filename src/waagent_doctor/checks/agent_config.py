"""The agent's configuration: extensions disabled, auto-update off."""

from __future__ import annotations

from waagent_doctor.checks import Context, check
from waagent_doctor.model import Evidence
from waagent_doctor.probes import waagent_conf


@check("agent_config", order=20)
def agent_config(ctx: Context) -> None:
    """Extensions.Enabled=n stops the backup extension; auto-update off leaves the agent old."""
    conf = ctx.snap.get(waagent_conf.probe)
    if not conf.present:
        ctx.skip(f"{conf.path} does not exist; the agent uses its defaults")
        return
    if conf.switch("Extensions.Enabled") is False:
        ctx.raise_(
            "agent.extensions.disabled",
            [
                Evidence(
                    source=conf.where("Extensions.Enabled"),
                    detail=f"Extensions.Enabled={conf.get('Extensions.Enabled')}",
                )
            ],
        )
    # CONTRACT: AutoUpdate.Enabled=n, and AutoUpdate.UpdateToLatestVersion not y (when it is
    # set, the agent ignores the legacy key).
    if (
        conf.switch("AutoUpdate.Enabled") is False
        and conf.switch("AutoUpdate.UpdateToLatestVersion", default=False) is not True
    ):
        evidence = [
            Evidence(
                source=conf.where("AutoUpdate.Enabled"),
                detail=f"AutoUpdate.Enabled={conf.get('AutoUpdate.Enabled')}",
            )
        ]
        latest = conf.values.get("AutoUpdate.UpdateToLatestVersion")
        if latest is not None:
            evidence.append(
                Evidence(
                    source=conf.where("AutoUpdate.UpdateToLatestVersion"),
                    detail=f"AutoUpdate.UpdateToLatestVersion={latest.value}",
                )
            )
        ctx.raise_("agent.autoupdate.disabled", evidence)
