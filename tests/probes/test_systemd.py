"""`systemctl show` parsing and the restart history, with canned output from a real program."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA
from waagent_doctor.config import Settings
from waagent_doctor.host import CommandRunner, Host
from waagent_doctor.paths import Root
from waagent_doctor.probes import ProbeError, ProbeSkipped, systemd
from waagent_doctor.probes.systemd import RestartHistory, RestartSample

CANNED = DATA / "systemctl"
T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=timezone.utc)


def _parse(name: str, clock: tuple[float, float] = (T0.timestamp(), 105.0)) -> systemd.UnitState:
    return systemd.parse_show((CANNED / f"{name}.txt").read_text(), "walinuxagent.service", clock)


def test_active_unit() -> None:
    """A running unit: active, its MainPID, Restart=, and both drop-ins."""
    u = _parse("active")
    assert u.active and not u.failed and not u.masked and not u.not_found
    assert (u.main_pid, u.restart, u.n_restarts) == (812, "always", 0)
    assert u.drop_in_paths == (
        "/etc/systemd/system/walinuxagent.service.d/10-Slice.conf",
        "/run/systemd/system/walinuxagent.service.d/50-proxy.conf",
    )


def test_monotonic_timestamps_convert_with_the_clock() -> None:
    """InactiveExitTimestampMonotonic=5 s after boot, now 105 s after boot -> 100 s ago."""
    u = _parse("active")
    assert u.inactive_exit == T0 - timedelta(seconds=100)
    assert u.exec_main_start == T0 - timedelta(seconds=100)


def test_text_timestamps_in_utc_are_used_without_monotonic() -> None:
    """Without ...Monotonic, a UTC text timestamp is parsed."""
    u = _parse("auto-restart")
    assert u.inactive_exit == datetime(2026, 11, 26, 9, 59, 50, tzinfo=timezone.utc)
    assert u.auto_restarting and not u.active and u.n_restarts == 4


def test_masked_not_found_and_start_limit() -> None:
    """masked, not-found and start-limit-hit are told apart."""
    masked, missing, limit = _parse("masked"), _parse("not-found"), _parse("start-limit-hit")
    assert masked.masked and not masked.not_found and masked.inactive_exit is None
    assert missing.not_found and not missing.masked
    assert limit.failed and limit.start_limit_hit and limit.n_restarts == 5


def test_garbage_is_not_a_crash() -> None:
    """Output without key=value lines gives empty fields, never an exception."""
    u = systemd.parse_show("\x00\xff garbage\nNRestarts=many\nMainPID=\n", "x.service")
    assert u.n_restarts is None and u.main_pid == 0 and u.load_state == ""


def _runner(tmp_path: Path, script: str) -> CommandRunner:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    prog = bindir / "systemctl"
    prog.write_text("#!/bin/sh\n" + script)
    prog.chmod(0o755)
    return CommandRunner(path=f"{bindir}:/usr/bin:/bin")


def test_show_runs_systemctl(tmp_path: Path, allow_subprocess: Any) -> None:
    """show() runs `systemctl show -p ... -- UNIT` and parses what it prints."""
    args = tmp_path / "args"
    runner = _runner(tmp_path, f'echo "$@" > {args}\ncat {CANNED / "masked.txt"}\n')
    with allow_subprocess("systemctl", "sh"):
        u = systemd.show(runner, "walinuxagent.service")
    assert u.masked
    assert args.read_text().startswith("show -p Id,LoadState,ActiveState")
    assert args.read_text().strip().endswith("-- walinuxagent.service")


def test_show_without_systemd_is_skipped(tmp_path: Path, allow_subprocess: Any) -> None:
    """`System has not been booted with systemd` means skip, not a failure."""
    runner = _runner(
        tmp_path,
        'echo "System has not been booted with systemd as init system (PID 1)." >&2\nexit 1\n',
    )
    with allow_subprocess("systemctl", "sh"), pytest.raises(ProbeSkipped):
        systemd.show(runner, "walinuxagent.service")


def test_show_failure_is_an_error(tmp_path: Path, allow_subprocess: Any) -> None:
    """Any other systemctl failure is a ProbeError naming the exit status."""
    runner = _runner(tmp_path, 'echo "Access denied" >&2\nexit 4\n')
    with allow_subprocess("systemctl", "sh"), pytest.raises(ProbeError, match="exit 4"):
        systemd.show(runner, "walinuxagent.service")


def test_no_systemctl_is_skipped(tmp_path: Path) -> None:
    """No systemctl on PATH: not a systemd system, skipped."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProbeSkipped):
        systemd.show(CommandRunner(path=str(tmp_path / "empty")), "x.service")


def test_probe_is_skipped_offline(tmp_path: Path) -> None:
    """Offline (--root) systemd is never asked."""
    with pytest.raises(ProbeSkipped):
        systemd.probe(Host.offline(str(tmp_path), T0), Settings())


def test_configured_unit_name_wins(tmp_path: Path) -> None:
    """agent_unit in the configuration names the unit."""
    host = Host(Root(tmp_path), True, T0, CommandRunner())
    settings = Settings.model_validate({"agent_unit": "waagent.service"})
    assert systemd.agent_unit_name(host, settings) == "waagent.service"


def _s(minutes_ago: float, n: int) -> RestartSample:
    return RestartSample(T0 - timedelta(minutes=minutes_ago), n, None)


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([_s(0, 3)], 0),
        ([_s(90, 1), _s(30, 2), _s(0, 5)], 4),  # base: the sample before the window
        ([_s(50, 0), _s(20, 3), _s(0, 4)], 4),
        ([_s(50, 6), _s(20, 1), _s(0, 3)], 3),  # a manual restart reset the counter to 0
        ([_s(200, 0), _s(100, 9)], 0),  # all growth before the window
    ],
)
def test_restarts_within_the_window(samples: list[RestartSample], expected: int) -> None:
    """Growth of NRestarts inside a 60-minute window, surviving a counter reset."""
    assert RestartHistory(tuple(samples)).restarts_within(T0, timedelta(minutes=60)) == expected
