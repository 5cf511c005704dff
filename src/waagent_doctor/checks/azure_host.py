"""Is this an Azure VM at all? Off Azure the doctor has nothing to heal."""

from __future__ import annotations

from waagent_doctor.checks import Context, check
from waagent_doctor.model import Evidence
from waagent_doctor.probes import azure


@check("azure_host", live_only=True, order=1)
def azure_host(ctx: Context) -> None:
    """host.not_azure when the DMI chassis asset tag is not Azure's."""
    ident = ctx.snap.get(azure.probe)
    if ident.is_azure:
        return
    seen = ident.asset_tag if ident.readable else f"unreadable: {ident.reason}"
    ctx.raise_(
        "host.not_azure",
        [Evidence(source=azure.CHASSIS_ASSET_TAG,
                  detail=f"{seen!r} is not {azure.AZURE_ASSET_TAG!r}")],
    )  # fmt: skip
