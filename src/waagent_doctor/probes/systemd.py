"""The agent unit as systemd sees it, from `systemctl show` (key=value, stable across versions).

Timestamps are taken from the `...Monotonic` properties (microseconds since boot), because the
text form (`Thu 2024-01-04 10:00:00 CET`) carries a local zone name that cannot be parsed
reliably; the monotonic value converts exactly with the current wall and monotonic clocks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional

from waagent_doctor import distro
from waagent_doctor.config import Settings
from waagent_doctor.host import CommandRunner, Host
from waagent_doctor.paths import InputError
from waagent_doctor.probes import ProbeError, ProbeSkipped

SHOW_PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "NRestarts",
    "MainPID",
    "InactiveExitTimestamp",
    "InactiveExitTimestampMonotonic",
    "ExecMainStartTimestamp",
    "ExecMainStartTimestampMonotonic",
    "Restart",
    "FragmentPath",
    "DropInPaths",
    "UnitFileState",
)
SYSTEMCTL_TIMEOUT = 10.0


@dataclass(frozen=True)
class UnitState:
    """What `systemctl show` says of one unit; empty strings where systemd has no value."""

    unit: str
    load_state: str
    active_state: str
    sub_state: str
    result: str
    n_restarts: Optional[int]
    main_pid: int
    inactive_exit: Optional[datetime]
    exec_main_start: Optional[datetime]
    restart: str
    fragment_path: str
    drop_in_paths: tuple[str, ...]
    unit_file_state: str

    @property
    def not_found(self) -> bool:
        """systemd knows no such unit (no unit file anywhere)."""
        return self.load_state == "not-found"

    @property
    def masked(self) -> bool:
        """The unit is masked (linked to /dev/null): it cannot be started."""
        return (
            self.load_state == "masked"
            or self.unit_file_state.startswith("masked")
            or self.fragment_path == "/dev/null"
        )

    @property
    def active(self) -> bool:
        """The unit runs (active or reloading)."""
        return self.active_state in ("active", "reloading")

    @property
    def failed(self) -> bool:
        """The unit is in the failed state."""
        return self.active_state == "failed"

    @property
    def start_limit_hit(self) -> bool:
        """systemd gave up restarting the unit (StartLimitBurst within StartLimitIntervalSec)."""
        return self.result == "start-limit-hit"

    @property
    def auto_restarting(self) -> bool:
        """The unit died and systemd waits RestartSec= before starting it again."""
        return self.sub_state == "auto-restart"

    @property
    def source(self) -> str:
        """Evidence source naming the command."""
        return f"systemctl show {self.unit}"


def _int(text: str) -> Optional[int]:
    try:
        return int(text)
    except ValueError:
        return None


def _mono_to_wall(text: str, clock: tuple[float, float]) -> Optional[datetime]:
    # InactiveExitTimestampMonotonic=1234567890 (µs since boot; 0 = never)
    value = _int(text)
    if not value:
        return None
    wall_now, mono_now = clock
    wall = wall_now - (mono_now - value / 1_000_000)
    return datetime.fromtimestamp(wall, timezone.utc)


def _text_time(text: str) -> Optional[datetime]:
    # ExecMainStartTimestamp=Thu 2024-01-04 10:00:00 UTC (only UTC is unambiguous)
    parts = text.split()
    if len(parts) == 4 and parts[3] == "UTC":
        try:
            when = datetime.strptime(f"{parts[1]} {parts[2]}", "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
        return when.replace(tzinfo=timezone.utc)
    return None


def parse_show(text: str, unit: str, clock: Optional[tuple[float, float]] = None) -> UnitState:
    """Parse `systemctl show -p ... UNIT` output; clock is (time.time(), time.monotonic())."""
    now = clock or (time.time(), time.monotonic())
    props: dict[str, str] = {}
    for line in text.splitlines():
        # ActiveState=failed
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()

    def when(name: str) -> Optional[datetime]:
        mono = props.get(f"{name}Monotonic", "")
        return _mono_to_wall(mono, now) if mono else _text_time(props.get(name, ""))

    return UnitState(
        unit=props.get("Id") or unit,
        load_state=props.get("LoadState", ""),
        active_state=props.get("ActiveState", ""),
        sub_state=props.get("SubState", ""),
        result=props.get("Result", ""),
        # NRestarts= exists since systemd 235.
        n_restarts=_int(props.get("NRestarts", "")),
        main_pid=_int(props.get("MainPID", "")) or 0,
        inactive_exit=when("InactiveExitTimestamp"),
        exec_main_start=when("ExecMainStartTimestamp"),
        restart=props.get("Restart", ""),
        fragment_path=props.get("FragmentPath", ""),
        # DropInPaths=/etc/systemd/system/x.service.d/a.conf /run/systemd/system/x.service.d/b.conf
        drop_in_paths=tuple(props.get("DropInPaths", "").split()),
        unit_file_state=props.get("UnitFileState", ""),
    )


def show(runner: CommandRunner, unit: str) -> UnitState:
    """Ask systemd about a unit; ProbeSkipped without systemd, ProbeError when systemctl fails."""
    if runner.which("systemctl") is None:
        raise ProbeSkipped("systemctl not found: not a systemd system")
    argv = ["systemctl", "show", "-p", ",".join(SHOW_PROPERTIES), "--", unit]
    res = runner.run(argv, timeout=SYSTEMCTL_TIMEOUT)
    if res.timed_out:
        raise ProbeError(f"systemctl show {unit}: timed out after {SYSTEMCTL_TIMEOUT:g}s")
    if not res.ok:
        reason = res.stderr.strip().splitlines()[0] if res.stderr.strip() else ""
        if "not been booted with systemd" in reason or "Failed to connect to bus" in reason:
            raise ProbeSkipped(f"systemd is not running: {reason}")
        raise ProbeError(f"systemctl show {unit}: exit {res.returncode}: {reason}")
    return parse_show(res.stdout, unit)


def agent_unit_name(host: Host, settings: Settings) -> str:
    """The agent's unit: the configured one, else by distribution (walinuxagent on Debian)."""
    if settings.agent_unit:
        return settings.agent_unit
    from waagent_doctor.probes import units  # the unit found on disk, either known name

    try:
        found = units.probe(host, settings).unit
    except InputError:
        found = None
    if found is not None:
        return found.name
    return distro.row_for(distro.read_os_release(host.root)).agent_unit


def probe(host: Host, settings: Settings) -> UnitState:
    """Probe: the agent unit's state (live only)."""
    if not host.live or host.runner is None:
        raise ProbeSkipped("offline: systemd is not asked")
    return show(host.runner, agent_unit_name(host, settings))


@dataclass(frozen=True)
class RestartSample:
    """One observation of the unit's restart counter, for crash-loop detection over time."""

    at: datetime
    n_restarts: int
    inactive_exit: Optional[datetime]


@dataclass(frozen=True)
class RestartHistory:
    """Restart-counter samples, oldest first; `check` has one, the daemon primes its history."""

    samples: tuple[RestartSample, ...]

    def restarts_within(self, now: datetime, window: timedelta) -> int:
        """Automatic restarts counted inside the window (a counter reset starts a new base)."""
        inside = [s for s in self.samples if now - s.at <= window]
        before = [s for s in self.samples if now - s.at > window]
        # The newest sample before the window is the base, else the oldest inside it.
        seq = before[-1:] + inside
        total = 0
        for prev, cur in zip(seq, seq[1:]):
            # NRestarts is reset by a manual start: count from zero again.
            grew = cur.n_restarts - prev.n_restarts
            total += grew if grew >= 0 else cur.n_restarts
        return total


def restart_history(host: Host, settings: Settings) -> RestartHistory:
    """Probe: the current restart sample only; the daemon primes this probe with its history."""
    state = probe(host, settings)
    if state.n_restarts is None:
        return RestartHistory(())
    sample = RestartSample(host.as_of, state.n_restarts, state.inactive_exit)
    return RestartHistory((sample,))
