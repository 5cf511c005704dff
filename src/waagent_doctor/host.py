"""The host the doctor runs on: its root, its clock, whether it is live, and its commands."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from waagent_doctor.paths import Root


@dataclass(frozen=True)
class CommandResult:
    """What a command said: exit status, output, and whether it ran at all."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """True when the command ran to completion with status 0."""
        return self.returncode == 0 and not self.timed_out


class CommandRunner:
    """Runs host commands with a timeout; a missing program is status 127, never an exception."""

    def __init__(self, path: Optional[str] = None) -> None:
        self.path = path or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    def which(self, name: str) -> Optional[str]:
        """The program's full path on the runner's PATH, or None."""
        return shutil.which(name, path=self.path)

    def run(
        self, argv: list[str], *, timeout: float = 10.0, max_output: int = 4 * 1024 * 1024
    ) -> CommandResult:
        """Run argv with LC_ALL=C; output is cut at max_output bytes."""
        exe = self.which(argv[0]) if "/" not in argv[0] else argv[0]
        if exe is None or not Path(exe).exists():
            return CommandResult(tuple(argv), 127, "", f"{argv[0]}: not found")
        env = {"PATH": self.path, "LC_ALL": "C", "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""}
        try:
            proc = subprocess.run(
                [exe, *argv[1:]],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout if isinstance(exc.stdout, bytes) else b""
            return CommandResult(
                tuple(argv), -1, out[:max_output].decode("utf-8", "replace"), "timed out", True
            )
        except OSError as exc:
            return CommandResult(tuple(argv), 126, "", str(exc))
        return CommandResult(
            tuple(argv),
            proc.returncode,
            proc.stdout[:max_output].decode("utf-8", "replace"),
            proc.stderr[:max_output].decode("utf-8", "replace"),
        )


@dataclass(frozen=True)
class Host:
    """Everything a probe may touch: the root, the clock (as_of), and commands when live.

    Offline (`--root`), `runner` is None: no process, unit, network or resource probe runs.
    """

    root: Root
    live: bool
    as_of: datetime
    runner: Optional[CommandRunner] = None
    is_root_user: bool = field(default_factory=lambda: os.geteuid() == 0)

    @classmethod
    def live_host(cls, as_of: Optional[datetime] = None) -> Host:
        """The running machine."""
        return cls(Root("/"), True, as_of or datetime.now(timezone.utc), CommandRunner())

    @classmethod
    def offline(cls, root_dir: str, as_of: datetime) -> Host:
        """A guest tree under root_dir: files only."""
        return cls(Root(root_dir), False, as_of, None)

    @property
    def mode(self) -> str:
        """live or offline, as the report says."""
        return "live" if self.live else "offline"
