"""enable_autorestart: a drop-in `Restart=always` for the agent's unit, then daemon-reload.

Idempotent: the drop-in has a fixed name and fixed content; writing it again changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from waagent_doctor.actions import ActionEnv, Outcome
from waagent_doctor.actions.restart_agent import SYSTEMCTL_TIMEOUT, current
from waagent_doctor.state import write_atomic

DROPIN_NAME = "50-waagent-doctor-restart.conf"


def dropin_text(restart_sec: int) -> str:
    """The drop-in's content."""
    return (
        "# Written by waagent-doctor (enable_autorestart): restart the Azure VM agent after a\n"
        "# crash. Remove this file and run `systemctl daemon-reload` to undo.\n"
        "[Service]\n"
        "Restart=always\n"
        f"RestartSec={restart_sec}\n"
    )


def dropin_path(unit_dir: str, unit: str) -> Path:
    """Where the drop-in goes: /etc/systemd/system/<unit>.d/50-waagent-doctor-restart.conf."""
    return Path(unit_dir) / f"{unit}.d" / DROPIN_NAME


def write_dropin(unit_dir: str, unit: str, restart_sec: int) -> tuple[Path, bool]:
    """Write the drop-in atomically (0644); whether the file changed."""
    path = dropin_path(unit_dir, unit)
    text = dropin_text(restart_sec).encode("utf-8")
    try:
        if path.read_bytes() == text:
            return path, False
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    write_atomic(path, text, mode=0o644)
    return path, True


def apply(env: ActionEnv) -> Outcome:
    """Install the drop-in, reload systemd, verify that systemd now says Restart=always."""
    try:
        path, changed = write_dropin(env.paths.unit_dir, env.unit, env.settings.actions.restart_sec)
    except OSError as exc:
        return Outcome(False, f"cannot write the drop-in: {exc.strerror or exc}")
    if changed:
        res = env.runner.run(["systemctl", "daemon-reload"], timeout=SYSTEMCTL_TIMEOUT * 4)
        if not res.ok:
            why = (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[0]
            return Outcome(False, f"{path} written; systemctl daemon-reload failed: {why}")
    after = current(env.runner, env.unit)
    if after is None or after.restart != "always":
        seen = "unknown" if after is None else after.restart or "(empty)"
        hint = "" if os.access(path, os.R_OK) else " (drop-in unreadable)"
        return Outcome(False, f"{path} written but systemd says Restart={seen}{hint}")
    return Outcome(True, f"{path}: Restart=always, RestartSec={env.settings.actions.restart_sec}")
