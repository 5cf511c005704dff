"""reload_extension (opt-in): move the backup extension's handler folder aside, never delete it.

Stop the agent, move `/var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-*`
into /var/lib/waagent-doctor/quarantine/, start the agent: it downloads and reinstalls the
extension with the next goal state (the manual fix of WALinuxAgent issue #1059).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from waagent_doctor.actions import ActionEnv, Outcome
from waagent_doctor.actions.restart_agent import (
    SYSTEMCTL_TIMEOUT,
    describe,
    restart,
    wait_until,
)
from waagent_doctor.codes import VMSNAPSHOT
from waagent_doctor.paths import LIB_DIR
from waagent_doctor.state import ensure_dir

STOP_SECONDS = 100.0


def handler_dirs(env: ActionEnv) -> list[str]:
    """Guest paths of the backup extension's handler folders."""
    return [p for p in env.host.root.glob(LIB_DIR, f"{VMSNAPSHOT}-*") if env.host.root.is_dir(p)]


def apply(env: ActionEnv) -> Outcome:
    """Stop the agent, quarantine the handler folders, start the agent; verify both."""
    folders = handler_dirs(env)
    if not folders:
        return Outcome(False, f"no {VMSNAPSHOT}-* handler folder in {LIB_DIR}")
    res = env.runner.run(
        ["systemctl", "stop", "--no-block", "--", env.unit], timeout=SYSTEMCTL_TIMEOUT
    )
    if not res.ok:
        why = (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[0]
        return Outcome(False, f"systemctl stop {env.unit} failed: {why}")
    stopped = wait_until(
        env.runner,
        env.unit,
        lambda u: u.active_state in ("inactive", "failed"),
        env.wait,
        STOP_SECONDS,
    )
    if stopped is None or stopped.active_state not in ("inactive", "failed"):
        restart(env, "start")
        return Outcome(False, f"{env.unit} did not stop: {describe(stopped)}; nothing moved")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    quarantine = ensure_dir(env.paths.quarantine)
    moved: list[str] = []
    problems: list[str] = []
    for guest in folders:
        src = env.host.root.path(guest)
        dst = Path(quarantine) / f"{Path(guest).name}.{stamp}"
        try:
            try:
                Path(src).rename(dst)
            except OSError as exc:
                if exc.errno != 18:  # EXDEV: another filesystem; copy, then remove the original
                    raise
                shutil.move(str(src), str(dst))
            moved.append(f"{guest} -> {dst}")
        except OSError as exc:
            problems.append(f"{guest}: {exc.strerror or exc}")
    started = restart(env, "start")
    if problems:
        return Outcome(False, f"could not move {'; '.join(problems)}; {started.detail}")
    if not started.ok:
        return Outcome(False, f"moved {'; '.join(moved)}; {started.detail}")
    left = [g for g in folders if env.host.root.exists(g)]
    if left:
        return Outcome(False, f"still present after the move: {', '.join(left)}")
    return Outcome(True, f"moved {'; '.join(moved)}; {started.detail}")
