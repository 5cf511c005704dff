"""DHCP gives the WireServer address: the primary interface uses DHCP and a lease carries 245."""

from __future__ import annotations

from waagent_doctor.checks import Context, check
from waagent_doctor.model import Evidence
from waagent_doctor.probes import dhcp
from waagent_doctor.probes.dhcp import DhcpState, Lease

_MAX_EVIDENCE = 5


@check("dhcp", order=60)
def dhcp_check(ctx: Context) -> None:
    """Static configuration, or current leases without option 245, leave the extension blind.

    Absence proves nothing: an OS disk on a rescue VM has an empty /run, and several clients
    keep no lease file at all. Only a static configuration, or lease files that exist and lack
    option 245, raise `dhcp.disabled`; otherwise the check says why it could not judge.
    """
    state = ctx.snap.get(dhcp.probe)
    for skipped in state.skipped:
        if skipped.unreadable:
            ctx.unreadable(skipped.error())
    label = state.primary or "any ethernet interface"
    configs = state.primary_configs()
    statics = [c for c in configs if c.method == "static"]
    if statics and not any(c.method == "dhcp" for c in configs):
        ctx.raise_(
            "dhcp.disabled",
            [
                Evidence(
                    source=c.source,
                    detail=f"{label} is statically configured ({c.tool}: {c.detail}); "
                    "no DHCP client asks for option 245",
                )
                for c in statics[:_MAX_EVIDENCE]
            ],
        )
        return
    current = state.current_leases()
    if any(lease.option_245 for lease in current):
        return
    judged = [lease for lease in current if lease.authoritative]
    if judged:
        evidence = [_no_245(lease) for lease in judged[:_MAX_EVIDENCE]]
        evidence.extend(
            Evidence(
                source=lease.source,
                detail=f"expired lease (expire {lease.expires}) had option 245 "
                f"({lease.option_245}); expired leases are ignored, as the agent does",
            )
            for lease in state.leases
            if lease.expired and lease.option_245
        )
        ctx.raise_("dhcp.disabled", evidence[: _MAX_EVIDENCE * 2])
        return
    ctx.skip(_why_not_judged(state, ctx.host.live))


def _no_245(lease: Lease) -> Evidence:
    what = [f"interface {lease.interface}" if lease.interface else "", lease.address or ""]
    if lease.expires:
        what.append(f"expire {lease.expires}")
    about = ", ".join(w for w in what if w)
    return Evidence(
        source=lease.source,
        detail=f"current {lease.kind} lease ({about}) carries no option 245"
        if about
        else f"current {lease.kind} lease carries no option 245",
    )


def _why_not_judged(state: DhcpState, live: bool) -> str:
    if not state.lease_files:
        reason = "no lease files to judge (searched " + ", ".join(state.lease_places) + ")"
        if not live and state.run_empty:
            reason += "; /run is empty, as on an OS disk attached to a rescue VM"
    elif state.leases and all(lease.expired for lease in state.leases):
        reason = "only expired leases to judge (" + ", ".join(state.lease_files) + ")"
    else:
        reason = (
            "lease files hold no option list to judge ("
            + ", ".join(state.lease_files)
            + "); their format may drop option 245"
        )
    if live:
        reason += "; the live DHCP probe (networkctl/nmcli) judges the rest"
    return reason
