"""The agent's own word on the WireServer and the HostGAPlugin, from its log window.

Rule (CONTRACT: "the agent's latest word in the look-back window is a failure to reach it; a
later success clears it"): every agent record is sorted into failure / success / neither for
each endpoint, and the newest record that is not "neither" decides.

* About the WireServer: a plain-http URL on any port but the HostGAPlugin's (the agent's
  WireServer address can be configured, so the address is not required), `[Wireserver
  Exception]`, or goal-state fetch text that does not name vmSettings/HostGAPlugin.
* About the HostGAPlugin: a URL on `endpoints.hostgaplugin_port` (32526), `vmSettings`,
  `HostGAPlugin`, `SendHostPluginHeartbeat`.
* A failure to reach is a network error in such a record: `IOError`, `timed out`,
  `Timeout`, connection reset/refused/aborted, no route, network unreachable, name
  resolution, or `Exceeded max retry` / `giving up`. An answer with an HTTP status
  (`[410: Gone]`, `Status Code 502`, `[403: Forbidden]`) proves the endpoint was reached and
  counts as neither: that is someone else's problem, not a network one.
* A success: `Fetching/Retrieving the goal state recovered from previous errors`, `Fetching
  new goal state`, `Fetched a new incarnation`, `Fetching full goal state`, `Wire protocol
  version`, `ProcessGoalState completed`, `ProcessExtensionsGoalState completed`, a
  `[HEARTBEAT]` with `UpdateGSErrors: 0` (WireServer); `Fetched new vmSettings`, `HostGAPlugin
  version` and the goal-state recoveries (HostGAPlugin).
"""

from __future__ import annotations

import re
from typing import Optional

from waagent_doctor.checks import Context, check
from waagent_doctor.model import Evidence
from waagent_doctor.probes import logscan
from waagent_doctor.probes.logscan import LogRecord

WIRESERVER = "network.wireserver.unreachable"
HOSTGAPLUGIN = "network.hostgaplugin.unreachable"

# "GET http://168.63.129.16/machine/ -- IOError timed out", "POST http://168.63.129.16:80/..."
_URL = re.compile(r"\b(https?)://([^/\s:\]\[]+|\[[0-9a-fA-F:]+\])(?::(\d+))?")
_NET_FAILURE = re.compile(
    r"IOError|timed out|\bTimeout\b|Connection (?:reset|refused|aborted)|No route to host"
    r"|Network is unreachable|Name or service not known|Temporary failure in name resolution"
    r"|\[Errno (?:101|104|110|111|113)\]|Exceeded max retry|giving up",
    re.IGNORECASE,
)
# The goal state is fetched from the WireServer (and vmSettings from the HostGAPlugin).
_GOAL_STATE_FAILURE = re.compile(
    r"Error fetching the goal state|Fetching the goal state is still failing"
    r"|Fetching the goal state failed|An error occurred while retrieving the goal state"
    r"|ProtocolError processing goal state|Exceeded max retry updating goal state"
    r"|Exception retrieving extension handlers",
)
_HGAP_TEXT = re.compile(r"vmSettings|HostGAPlugin|SendHostPluginHeartbeat|host ?plugin", re.I)
_WIRESERVER_TEXT = re.compile(r"\[Wireserver Exception\]", re.I)
_RECOVERED = re.compile(r"(?:Fetching|Retrieving) the goal state recovered from previous errors")
_WIRESERVER_OK = re.compile(
    r"Fetching new goal state|Fetched a new incarnation|Fetching full goal state"
    r"|Wire protocol version|ProcessGoalState completed|ProcessExtensionsGoalState completed"
    r"|\[HEARTBEAT\].*UpdateGSErrors: 0\b",
)
_HGAP_OK = re.compile(r"Fetched new vmSettings|HostGAPlugin version|Host ?GA ?Plugin version")


def _endpoints(rec: LogRecord, hgap_port: int) -> tuple[bool, bool]:
    """(about the WireServer, about the HostGAPlugin) for one record.

    URLs decide when there are any (a blob URL ending in .vmSettings is Azure Storage);
    otherwise the words do.
    """
    text = rec.message
    wire = bool(_WIRESERVER_TEXT.search(text))
    hgap = False
    urls = _URL.findall(text)
    for scheme, _host, port in urls:
        if port and int(port) == hgap_port:
            hgap = True
        elif scheme == "http":
            # https URLs are Azure Storage (blobs), not the WireServer.
            wire = True
    if urls or wire:
        return wire, hgap
    if _HGAP_TEXT.search(text):
        return False, True
    return bool(_GOAL_STATE_FAILURE.search(text)), False


def classify(rec: LogRecord, hgap_port: int) -> tuple[Optional[bool], Optional[bool]]:
    """(WireServer, HostGAPlugin): False = a failure to reach it, True = success, None = no word."""
    if not rec.is_agent:
        return None, None
    text = rec.message
    if _RECOVERED.search(text):
        return True, True
    wire_ok = True if _WIRESERVER_OK.search(rec.headline) else None
    hgap_ok = True if _HGAP_OK.search(rec.headline) else None
    if wire_ok or hgap_ok:
        return wire_ok, hgap_ok
    if not _NET_FAILURE.search(text):
        return None, None
    wire, hgap = _endpoints(rec, hgap_port)
    return (False if wire else None), (False if hgap else None)


def latest_words(
    records: tuple[LogRecord, ...], hgap_port: int
) -> tuple[Optional[LogRecord], Optional[LogRecord], list[LogRecord], list[LogRecord]]:
    """The deciding record per endpoint and the failures since the last success of each."""
    wire_last: Optional[LogRecord] = None
    hgap_last: Optional[LogRecord] = None
    wire_fail: list[LogRecord] = []
    hgap_fail: list[LogRecord] = []
    for rec in records:
        wire, hgap = classify(rec, hgap_port)
        if wire is not None:
            wire_last = rec
            wire_fail = [] if wire else [*wire_fail, rec]
        if hgap is not None:
            hgap_last = rec
            hgap_fail = [] if hgap else [*hgap_fail, rec]
    return wire_last, hgap_last, wire_fail, hgap_fail


def _evidence(failures: list[LogRecord]) -> list[Evidence]:
    # The first failure of the streak and the newest ones (the agent may log every few seconds).
    picked = failures[:1] + failures[-3:] if len(failures) > 4 else failures
    seen: list[Evidence] = []
    for rec in picked:
        ev = Evidence(source=rec.source, detail=rec.excerpt())
        if ev not in seen:
            seen.append(ev)
    if len(failures) > len(picked):
        seen.append(
            Evidence(
                source=failures[-1].path,
                detail=f"{len(failures)} failures since the last success in the window",
            )
        )
    return seen


@check("network_log", order=15)
def network_log(ctx: Context) -> None:
    """The agent's latest word on the WireServer/HostGAPlugin is a failure to reach it.

    Why: the backup's snapshot status travels through the agent; when it cannot reach the
    WireServer nothing of the backup extension's status gets to Azure.
    """
    window = ctx.snap.get(logscan.probe)
    for err in window.errors:
        ctx.unreadable(err)
    if not window.present and not window.records:
        ctx.skip("/var/log/waagent.log does not exist")
        return
    port = ctx.settings.endpoints.hostgaplugin_port
    _, _, wire_fail, hgap_fail = latest_words(window.records, port)
    if wire_fail:
        ctx.raise_(WIRESERVER, _evidence(wire_fail))
    if hgap_fail:
        ctx.raise_(HOSTGAPLUGIN, _evidence(hgap_fail))
