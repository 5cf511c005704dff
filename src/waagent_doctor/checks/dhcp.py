"""DHCP gives the WireServer address: the primary interface uses DHCP and a lease carries 245."""

from __future__ import annotations

from waagent_doctor.checks import Context, check
from waagent_doctor.model import Evidence
from waagent_doctor.probes import dhcp, dhcp_live
from waagent_doctor.probes.dhcp import DhcpState, Lease
from waagent_doctor.probes.dhcp_live import LiveDhcp

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
    live = ctx.snap.get(dhcp_live.probe) if ctx.host.live else None
    live_dhcp_on = False
    if live is not None:
        decided, live_dhcp_on = _judge_live(ctx, live)
        if decided:
            return
    label = state.primary or "any ethernet interface"
    configs = state.primary_configs()
    statics = [c for c in configs if c.method == "static"]
    if statics and not live_dhcp_on and not any(c.method == "dhcp" for c in configs):
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
    ctx.skip(_why_not_judged(state, ctx.host.live, live))


def _judge_live(ctx: Context, live: LiveDhcp) -> tuple[bool, bool]:
    """The manager of the primary interface decides when it says enough: (decided, DHCP on).

    A lease with 245 clears the files' doubts; DHCP off, or a complete lease without 245,
    raises. Anything less (no manager, no lease yet) leaves the files to judge.
    """
    view = live.manager()
    if view is None:
        return False, False
    who = f"{live.primary} is managed by {view.tool}"
    if view.option_245:
        return True, True
    if view.dhcp is False:
        detail = f"{who} with DHCP off ({view.detail}); no DHCP client asks for option 245"
        ctx.raise_("dhcp.disabled", [Evidence(source=view.source, detail=detail)])
        return True, False
    if view.lease and view.authoritative:
        detail = f"{who}: its current DHCP lease carries no option 245 ({view.detail})"
        ctx.raise_("dhcp.disabled", [Evidence(source=view.source, detail=detail)])
        return True, True
    return False, bool(view.dhcp)


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


def _why_not_judged(state: DhcpState, live: bool, live_dhcp: LiveDhcp | None = None) -> str:
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
    if live_dhcp is not None:
        reason += "; live DHCP probe: " + live_dhcp.summary()
    elif live:
        reason += "; the live DHCP probe (networkctl/nmcli) judges the rest"
    return reason
