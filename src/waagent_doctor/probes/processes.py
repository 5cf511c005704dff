"""The agent's processes, found with psutil by their command lines.

The daemon is `python3 -u /usr/sbin/waagent -daemon`; its extension-handler child is
`python3 -u /usr/sbin/waagent -run-exthandlers`, or after an auto-update
`python3 -u bin/WALinuxAgent-2.15.0.1-py3.12.egg -run-exthandlers` (cwd
/var/lib/waagent/WALinuxAgent-2.15.0.1). The agent accepts `-`, `--` or `/` before a verb.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import psutil

from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.probes import ProbeSkipped

DAEMON = "daemon"
EXTHANDLER = "exthandler"
_VERBS = {"daemon": DAEMON, "run-exthandlers": EXTHANDLER}
# bin/WALinuxAgent-2.15.0.1-py3.12.egg or /var/lib/waagent/WALinuxAgent-2.9.1.1/bin/...
_VERSION = re.compile(r"WALinuxAgent-(\d+(?:\.\d+)+)")
# How much of an environ the doctor keeps: the agent's proxy variables only.
PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY")


@dataclass(frozen=True)
class AgentProcess:
    """One agent process: its role, command line, version (when the path names one), start."""

    pid: int
    ppid: int
    role: str
    cmdline: tuple[str, ...]
    program: str
    version: Optional[str]
    started: datetime
    status: str

    @property
    def stopped(self) -> bool:
        """Stopped by a signal (SIGSTOP) or a debugger: alive but cannot make progress."""
        return self.status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)

    @property
    def zombie(self) -> bool:
        """Exited; the parent has not reaped it."""
        return self.status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)

    @property
    def source(self) -> str:
        """Evidence source: the process."""
        return f"process {self.pid}"

    def describe(self) -> str:
        """One line for evidence: command line, state, start."""
        started = self.started.strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{' '.join(self.cmdline)} (state {self.status}, started {started})"


@dataclass(frozen=True)
class AgentProcesses:
    """Every agent process found; empty tuples when none runs."""

    daemons: tuple[AgentProcess, ...]
    exthandlers: tuple[AgentProcess, ...]

    def living(self, procs: Iterable[AgentProcess]) -> list[AgentProcess]:
        """The processes that are not zombies."""
        return [p for p in procs if not p.zombie]

    @property
    def daemon(self) -> Optional[AgentProcess]:
        """The oldest living daemon, or None."""
        alive = self.living(self.daemons)
        return min(alive, key=lambda p: p.started) if alive else None

    def children_of(self, pid: int) -> list[AgentProcess]:
        """Living extension handlers whose parent is pid."""
        return [p for p in self.living(self.exthandlers) if p.ppid == pid]


def classify(cmdline: Iterable[str]) -> Optional[tuple[str, str, Optional[str]]]:
    """(role, program, version) when the command line is the agent's, else None."""
    args = list(cmdline)
    program: Optional[str] = None
    role: Optional[str] = None
    for arg in args:
        base = posixpath.basename(arg)
        is_egg = base.endswith(".egg") and _VERSION.search(arg) is not None
        if program is None and (base == "waagent" or is_egg):
            program = arg
            continue
        if program is not None:
            verb = arg.lstrip("-/")
            if verb in _VERBS and arg != verb:
                role = _VERBS[verb]
                break
    if program is None or role is None:
        return None
    found = _VERSION.search(program)
    return role, program, found.group(1) if found else None


def _candidates() -> list[int]:
    """Pids in our PID namespace whose cmdline mentions the agent: a cheap filter before psutil.

    psutil builds a Process (reading /proc/PID/stat) for every pid; reading only the command
    line first keeps a scan of hundreds of processes to a few milliseconds of CPU.
    """
    found = []
    mine = _pid_namespace("self")
    for pid in psutil.pids():
        try:
            # /proc/812/cmdline -> b"/usr/bin/python3\x00-u\x00/usr/sbin/waagent\x00-daemon\x00"
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"waagent" not in raw and b"WALinuxAgent-" not in raw:
            continue
        # An agent inside a container on this VM is not this VM's agent.
        theirs = _pid_namespace(str(pid))
        if mine and theirs and theirs != mine:
            continue
        found.append(pid)
    return found


def _pid_namespace(pid: str) -> str:
    """/proc/PID/ns/pid -> "pid:[4026531836]"; "" when it cannot be read."""
    try:
        return str(Path(f"/proc/{pid}/ns/pid").readlink())
    except OSError:
        return ""


def scan(pids: Optional[Iterable[int]] = None) -> AgentProcesses:
    """Find the agent's processes (all processes, or the given pids)."""
    daemons: list[AgentProcess] = []
    handlers: list[AgentProcess] = []
    attrs = ["pid", "ppid", "cmdline", "create_time", "status"]
    for pid in _candidates() if pids is None else pids:
        try:
            info = psutil.Process(pid).as_dict(attrs)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        cmd = info.get("cmdline") or []
        kind = classify(cmd)
        if kind is None:
            continue
        role, program, version = kind
        found = AgentProcess(
            pid=int(info["pid"]),
            ppid=int(info.get("ppid") or 0),
            role=role,
            cmdline=tuple(cmd),
            program=program,
            version=version,
            started=datetime.fromtimestamp(float(info.get("create_time") or 0), timezone.utc),
            status=str(info.get("status") or ""),
        )
        (daemons if role == DAEMON else handlers).append(found)
    return AgentProcesses(tuple(daemons), tuple(handlers))


def proxy_environ(pid: int) -> Optional[dict[str, str]]:
    """The proxy variables of a running process (/proc/PID/environ); None when unreadable.

    Unreadable is common: reading another root process's environ needs CAP_SYS_PTRACE, which
    the hardened unit drops (EACCES), and the process may be gone.
    """
    try:
        env = psutil.Process(pid).environ()
    except (psutil.Error, OSError):
        return None
    return {k: v for k, v in env.items() if k in PROXY_VARIABLES}


def probe(host: Host, settings: Settings) -> AgentProcesses:
    """Probe: the agent's running processes (live only)."""
    if not host.live:
        raise ProbeSkipped("offline: processes are not examined")
    return scan()
