"""The agent keeps dying and restarting, as its own log tells.

A restart is an agent record whose first line says `<name> thread died, restarting`,
`<agent> did not terminate cleanly`, `Daemon ended with exception`, `ExtHandler process ...
exited with return code: N` (N not 0), `Agent ... launched with command ... failed with return
code`, or `... restarted more than N times in M seconds` (the agent blacklisting itself).

`agent.crash_loop` is raised when at least `thresholds.crash_loop_restarts` restarts (default
3) fall within `thresholds.crash_loop_window_minutes` (default 60) somewhere in the look-back
window, unless the agent has since run quietly: its newest record is at least
`crash_loop_window_minutes` after the last restart with no restart in between. One restart
(a reboot after a power loss says "did not terminate cleanly") is normal; three in an hour
are a loop.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Optional

from waagent_doctor.checks import Context, check
from waagent_doctor.model import Evidence
from waagent_doctor.probes import logscan
from waagent_doctor.probes.logscan import LogRecord

CRASH_LOOP = "agent.crash_loop"

# "MonitorHandler thread died, restarting"
# "WALinuxAgent-2.2.18 did not terminate cleanly"
# "Daemon ended with exception -- Sleep 15 seconds and restart daemon"
# "Agent WALinuxAgent-2.2.12 launched with command 'python3 -u /usr/sbin/waagent
#  -run-exthandlers' failed with return code: 1"
# "Agent WALinuxAgent-2.2.45 restarted more than 3 times in 300 seconds"
_RESTART = re.compile(
    r"thread died, restarting|did not terminate cleanly|Daemon ended with exception"
    r"|launched with command .* failed with return code"
    r"|restarted more than \d+ times in \d+ seconds"
)
# "ExtHandler process WALinuxAgent-2.9.1.1 launched with command '...' exited with return code: 1"
_EXITED = re.compile(r"process .* exited with return code:? *(-?\d+)")


def is_restart(rec: LogRecord) -> bool:
    """True when an agent record says the agent (or one of its threads) died."""
    if not rec.is_agent:
        return False
    head = rec.headline
    if _RESTART.search(head):
        return True
    m = _EXITED.search(head)
    return m is not None and int(m.group(1)) != 0


def find_loop(
    records: tuple[LogRecord, ...], count: int, window: timedelta
) -> Optional[list[LogRecord]]:
    """The newest burst of `count` restarts within `window`, unless the agent ran quietly since."""
    restarts = [r for r in records if is_restart(r)]
    burst: Optional[list[LogRecord]] = None
    for i in range(len(restarts) - count, -1, -1):
        if restarts[i + count - 1].when - restarts[i].when <= window:
            burst = restarts[i : i + count]
            break
    if burst is None:
        return None
    last = restarts[-1]
    newest = max((r.when for r in records if r.is_agent), default=last.when)
    if newest - last.when >= window:
        return None  # a quiet, healthy stretch after the last restart
    # Every restart since the burst began, so the evidence shows the loop as it goes on.
    return [r for r in restarts if r.when >= burst[0].when]


@check("agent_log", order=25)
def agent_log(ctx: Context) -> None:
    """The agent log shows a crash loop: repeated restarts within a short time.

    Why: an agent that keeps restarting cannot process the backup extension's goal state or
    report its status, so the snapshot sub-task times out.
    """
    window = ctx.snap.get(logscan.probe)
    for err in window.errors:
        ctx.unreadable(err)
    if not window.present and not window.records:
        ctx.skip("/var/log/waagent.log does not exist")
        return
    th = ctx.settings.thresholds
    span = timedelta(minutes=th.crash_loop_window_minutes)
    loop = find_loop(window.records, th.crash_loop_restarts, span)
    if loop is None:
        return
    shown = loop if len(loop) <= 5 else loop[:1] + loop[-4:]
    evidence = [Evidence(source=r.source, detail=r.excerpt()) for r in shown]
    minutes = (loop[-1].when - loop[0].when).total_seconds() / 60
    evidence.append(
        Evidence(
            source=loop[-1].path,
            detail=f"{len(loop)} restarts in {minutes:.0f} minutes "
            f"(threshold: {th.crash_loop_restarts} within {th.crash_loop_window_minutes:g})",
        )
    )
    ctx.raise_(CRASH_LOOP, evidence)
