"""The endpoints the agent and the backup extension need, probed live (one check each)."""

from __future__ import annotations

from waagent_doctor.checks import Context, check
from waagent_doctor.model import Evidence
from waagent_doctor.probes import azure, network

# Storage failures where the proxy itself did not answer: the proxy is the finding.
_PROXY_STAGES = ("proxy",)


def _report(ctx: Context) -> network.NetworkReport | None:
    """The network probe, or None (skipped) on a host that is not Azure."""
    ident = ctx.snap.get(azure.probe)
    if not ident.is_azure:
        ctx.skip("not an Azure VM (see host.not_azure)")
        return None
    return ctx.snap.get(network.probe)


def _judge(ctx: Context, name: str, code: str) -> None:
    report = _report(ctx)
    if report is None:
        return
    result = report.get(name)
    if result is None:
        ctx.skip(f"no {name} endpoint to probe")
        return
    if result.skipped:
        ctx.skip(result.skipped)
        return
    if not result.ok:
        ctx.raise_(code, [Evidence(source=f"probe {name}", detail=result.describe())])


@check("network_live_wireserver", live_only=True, order=10)
def wireserver(ctx: Context) -> None:
    """network.wireserver.unreachable: GET /?comp=versions gives no Versions XML."""
    _judge(ctx, network.WIRESERVER, "network.wireserver.unreachable")


@check("network_live_hostgaplugin", live_only=True, order=10)
def hostgaplugin(ctx: Context) -> None:
    """network.hostgaplugin.unreachable: GET /health on port 32526 fails."""
    _judge(ctx, network.HOSTGAPLUGIN, "network.hostgaplugin.unreachable")


@check("network_live_imds", live_only=True, order=10)
def imds(ctx: Context) -> None:
    """network.imds.unreachable: the instance metadata cannot be read."""
    _judge(ctx, network.IMDS, "network.imds.unreachable")


@check("network_live_storage", live_only=True, order=10)
def storage(ctx: Context) -> None:
    """network.storage.unreachable: no TLS session with the status blob's storage host."""
    report = _report(ctx)
    if report is None:
        return
    result = report.get(network.STORAGE)
    if result is None:
        ctx.skip("; ".join(report.notes) or "no storage host known")
        return
    if result.ok:
        return
    evidence = [Evidence(source=f"probe {network.STORAGE}", detail=result.describe())]
    if result.target.proxy is not None and result.stage in _PROXY_STAGES:
        # The proxy did not answer: network.proxy.unreachable says it more precisely.
        ctx.raise_("network.proxy.unreachable", evidence)
        return
    ctx.raise_("network.storage.unreachable", evidence)


@check("network_live_proxy", live_only=True, order=10)
def proxy(ctx: Context) -> None:
    """network.proxy.unreachable: the agent's proxy gives no HTTP answer."""
    report = _report(ctx)
    if report is None:
        return
    result = report.get(network.PROXY)
    if result is None:
        ctx.skip("the agent uses no proxy")
        return
    if not result.ok:
        ctx.raise_(
            "network.proxy.unreachable",
            [
                Evidence(source=result.target.source, detail=f"proxy {result.target.host}:"
                         f"{result.target.port}"),
                Evidence(source=f"probe {network.PROXY}", detail=result.describe()),
            ],
        )  # fmt: skip
