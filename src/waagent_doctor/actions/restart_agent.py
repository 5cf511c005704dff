"""restart_agent: restart the agent's unit and verify it is active with a new MainPID."""

from __future__ import annotations

import time
from typing import Callable, Optional

from waagent_doctor.actions import ActionEnv, Outcome
from waagent_doctor.host import CommandRunner
from waagent_doctor.probes import ProbeError, ProbeSkipped
from waagent_doctor.probes import systemd as sd

# How long the unit may take to be active again with a new process.
VERIFY_SECONDS = 30.0
POLL_SECONDS = 0.25
SYSTEMCTL_TIMEOUT = 15.0


def current(runner: CommandRunner, unit: str) -> Optional[sd.UnitState]:
    """The unit's state now, or None when systemd cannot be asked."""
    try:
        return sd.show(runner, unit)
    except (ProbeError, ProbeSkipped):
        return None


def wait_until(
    runner: CommandRunner,
    unit: str,
    done: Callable[[sd.UnitState], bool],
    wait: Callable[[float], bool],
    seconds: float = VERIFY_SECONDS,
) -> Optional[sd.UnitState]:
    """Poll the unit until done(state) or the deadline; the last state seen."""
    deadline = time.monotonic() + seconds
    last = current(runner, unit)
    while last is None or not done(last):
        if time.monotonic() >= deadline or not wait(POLL_SECONDS):
            break
        last = current(runner, unit)
    return last


def describe(u: Optional[sd.UnitState]) -> str:
    """ActiveState/SubState, Result and MainPID in one phrase."""
    if u is None:
        return "unit state unknown"
    return f"{u.active_state}/{u.sub_state} (result {u.result or '-'}, MainPID {u.main_pid})"


def systemctl(env: ActionEnv, verb: str) -> Outcome:
    """`systemctl <verb> --no-block -- <unit>`: queued, or not with systemctl's first word."""
    res = env.runner.run(
        ["systemctl", verb, "--no-block", "--", env.unit], timeout=SYSTEMCTL_TIMEOUT
    )
    if res.ok:
        return Outcome(True, f"systemctl {verb} {env.unit} queued")
    why = (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[0]
    return Outcome(False, f"systemctl {verb} {env.unit} failed: {why}")


def restart(env: ActionEnv, verb: str = "restart") -> Outcome:
    """`systemctl <verb>` the agent's unit without blocking, then wait for a new MainPID."""
    runner, unit = env.runner, env.unit
    before = current(runner, unit)
    old_pid = before.main_pid if before is not None else 0
    if before is not None and before.failed:
        # A unit that hit its start limit refuses `start` until its failure is reset.
        runner.run(["systemctl", "reset-failed", "--", unit], timeout=SYSTEMCTL_TIMEOUT)
    asked = systemctl(env, verb)
    if not asked.ok:
        return asked

    old_start = before.inactive_exit if before is not None else None

    def renewed(u: sd.UnitState) -> bool:
        return u.active_state == "active" and u.main_pid not in (0, old_pid)

    def died(u: sd.UnitState) -> bool:
        # Started again (a newer InactiveExitTimestamp) and already down: no need to wait.
        # (The probe derives the time from a monotonic value: allow for clock-read jitter.)
        started = u.inactive_exit is not None and (
            old_start is None or (u.inactive_exit - old_start).total_seconds() > 0.05
        )
        return started and u.active_state in ("failed", "inactive")

    after = wait_until(runner, unit, lambda u: renewed(u) or died(u), env.wait)
    if after is not None and renewed(after):
        return Outcome(
            True,
            f"{unit} active again with MainPID {after.main_pid} (was {old_pid or 'none'})",
            extra={"old_pid": str(old_pid), "new_pid": str(after.main_pid)},
        )
    if after is not None and died(after):
        return Outcome(False, f"{unit} started but stopped again at once: {describe(after)}")
    return Outcome(
        False,
        f"{unit} not active with a new MainPID after {VERIFY_SECONDS:g}s: {describe(after)}",
    )


def apply(env: ActionEnv) -> Outcome:
    """Restart the agent's unit; verified by a new MainPID in the active state."""
    return restart(env, "restart")
