"""Shared setup for the live check tests: a guest tree, canned systemctl, the stand-in agent."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from tests.conftest import DATA
from waagent_doctor import config as configmod
from waagent_doctor.config import Settings
from waagent_doctor.engine import diagnose
from waagent_doctor.host import CommandRunner, Host
from waagent_doctor.model import Report
from waagent_doctor.paths import Root

STANDIN = DATA / "standin" / "waagent"
CANNED = DATA / "systemctl"


def settings_from(text: str, tmp: Path) -> Settings:
    """Settings from TOML text, through the real loader."""
    path = tmp / "config.toml"
    path.write_text(text)
    return configmod.load(str(path))


def systemctl_runner(tmp: Path, canned: Optional[str], overrides: str = "") -> CommandRunner:
    """A runner whose `systemctl` prints tests/data/systemctl/<canned>.txt (+ overrides)."""
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    prog = bindir / "systemctl"
    if canned is None:
        prog.write_text("#!/bin/sh\necho 'System has not been booted with systemd' >&2\nexit 1\n")
    else:
        extra = tmp / "systemctl-overrides.txt"
        extra.write_text(overrides)
        prog.write_text(f"#!/bin/sh\ncat {CANNED / (canned + '.txt')} {extra}\n")
    prog.chmod(0o755)
    return CommandRunner(path=f"{bindir}:/usr/bin:/bin")


def live_host(root: Path, runner: CommandRunner, as_of: Optional[datetime] = None) -> Host:
    """A live host whose guest files are under root."""
    return Host(Root(root), True, as_of or datetime.now(timezone.utc), runner, True)


def run(host: Host, settings: Settings, only: set[str]) -> Report:
    """diagnose() restricted to some checks."""
    return diagnose(host, settings, only=only)


def codes(report: Report) -> set[str]:
    """The finding codes of a report."""
    return {f.code for f in report.findings}


class StandIn:
    """The stand-in agent as real processes on this machine (killed by stop())."""

    def __init__(self, root: Path, allow: Callable[..., Any], **env: str) -> None:
        prog = root / "usr" / "sbin" / "waagent"
        prog.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(STANDIN, prog)
        log = root / "var" / "log" / "waagent.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with allow(Path(sys.executable).name):
            self.proc = subprocess.Popen(
                [sys.executable, "-u", str(prog), "-daemon"],
                env={**os.environ, "WAAGENT_LOG": str(log), **env},
                start_new_session=True,
            )

    def wait_until(self, pred: Callable[[], bool], timeout: float = 10.0) -> None:
        """Poll until pred() holds."""
        end = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > end:
                raise AssertionError("stand-in did not reach the expected state")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill the stand-in and its children."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
