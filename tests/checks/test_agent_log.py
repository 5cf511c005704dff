"""agent_log: repeated restarts within a short time are a crash loop; a quiet stretch clears it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest

from waagent_doctor.config import Settings, from_mapping
from waagent_doctor.engine import diagnose
from waagent_doctor.host import Host
from waagent_doctor.model import Report

AS_OF = datetime(2025, 9, 6, 12, 0, 0, tzinfo=timezone.utc)
CRASH = "agent.crash_loop"


def iso(minutes_ago: float) -> str:
    return (AS_OF - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def slash(minutes_ago: float) -> str:
    return (AS_OF - timedelta(minutes=minutes_ago)).strftime("%Y/%m/%d %H:%M:%S.%f")


# Real message templates of the agent (update.py, daemon/main.py) and lines from its issues.
def thread_died(m: float) -> str:
    return f"{iso(m)} INFO ExtHandler ExtHandler MonitorHandler thread died, restarting"


def daemon_exception(m: float) -> list[str]:
    return [
        f"{iso(m)} ERROR Daemon Daemon Daemon ended with exception -- Sleep 15 seconds and "
        "restart daemon",
        "Traceback (most recent call last):",
        '  File "bin/WALinuxAgent-2.9.1.1-py3.8.egg/azurelinuxagent/daemon/main.py", line 87',
        "OSError: [Errno 28] No space left on device",
    ]


def launch_failed(m: float) -> str:
    # WALinuxAgent issue #761
    return (
        f"{slash(m)} WARNING Agent WALinuxAgent-2.2.12 launched with command "
        "'python3 -u /usr/sbin/waagent -run-exthandlers' failed with return code: 1"
    )


def not_clean(m: float) -> str:
    # WALinuxAgent issue #947
    return f"{slash(m)} INFO WALinuxAgent-2.2.18 did not terminate cleanly"


def exited(m: float, rc: int) -> str:
    return (
        f"{iso(m)} INFO Daemon Daemon ExtHandler process WALinuxAgent-2.9.1.1 launched with "
        f"command 'python3 -u bin/WALinuxAgent-2.9.1.1-py3.8.egg -run-exthandlers' exited with "
        f"return code: {rc}"
    )


def healthy(m: float) -> str:
    return (
        f"{iso(m)} INFO ExtHandler ExtHandler [HEARTBEAT] Agent WALinuxAgent-2.9.1.1 is running "
        "as the goal state agent [DEBUG HeartbeatCounter: 4;UpdateGSErrors: 0;AutoUpdate: 1;]"
    )


def run(tmp_path: Path, lines: list[str], settings: Settings | None = None) -> Report:
    log = tmp_path / "var" / "log" / "waagent.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("\n".join(lines) + "\n")
    return diagnose(Host.offline(str(tmp_path), AS_OF), settings or Settings(), only={"agent_log"})


def codes(report: Report) -> set[str]:
    return {f.code for f in report.findings}


@pytest.mark.parametrize(
    "crash",
    [
        thread_died,
        launch_failed,
        not_clean,
        lambda m: exited(m, 1),
    ],
)
def test_three_restarts_within_an_hour_raise(tmp_path: Path, crash: Callable[[float], str]) -> None:
    """Three restarts of one kind within 60 minutes, the last one recent, are a crash loop."""
    report = run(tmp_path, [healthy(200), crash(40), crash(25), crash(10), healthy(5)])
    (finding,) = report.findings
    assert finding.code == CRASH and finding.cause == 2
    assert [e.source for e in finding.evidence[:3]] == [
        "/var/log/waagent.log:2",
        "/var/log/waagent.log:3",
        "/var/log/waagent.log:4",
    ]
    assert "3 restarts in 30 minutes" in finding.evidence[-1].detail


def test_daemon_exceptions_with_tracebacks_count(tmp_path: Path) -> None:
    """'Daemon ended with exception' records (with tracebacks) count as restarts."""
    lines = daemon_exception(30) + daemon_exception(20) + daemon_exception(10)
    report = run(tmp_path, lines)
    assert codes(report) == {CRASH}
    assert report.findings[0].evidence[1].source == "/var/log/waagent.log:5"


def test_two_restarts_are_not_a_loop(tmp_path: Path) -> None:
    """Below the threshold (a reboot after a power loss) nothing is raised."""
    assert codes(run(tmp_path, [not_clean(30), thread_died(10)])) == set()


def test_restarts_spread_out_are_not_a_loop(tmp_path: Path) -> None:
    """Three restarts over six hours are not within the 60-minute window."""
    assert codes(run(tmp_path, [thread_died(360), thread_died(180), thread_died(10)])) == set()


def test_clean_exit_code_zero_is_not_a_crash(tmp_path: Path) -> None:
    """An ExtHandler that exited with return code 0 (self-update) is not a crash."""
    assert codes(run(tmp_path, [exited(30, 0), exited(20, 0), exited(10, 0)])) == set()


def test_quiet_healthy_stretch_after_the_loop_clears_it(tmp_path: Path) -> None:
    """A burst long ago, then hours of healthy heartbeats: no crash loop now."""
    lines = [thread_died(600), thread_died(590), thread_died(580)]
    lines += [healthy(m) for m in range(570, 0, -30)]
    assert codes(run(tmp_path, lines)) == set()


def test_loop_that_goes_on_still_raises(tmp_path: Path) -> None:
    """A burst long ago, then new restarts: raised with every restart since the burst."""
    lines = [thread_died(600), thread_died(590), thread_died(580), healthy(300), thread_died(20)]
    (finding,) = run(tmp_path, lines).findings
    assert finding.code == CRASH
    assert "4 restarts" in finding.evidence[-1].detail


def test_thresholds_are_configurable(tmp_path: Path) -> None:
    """crash_loop_restarts and crash_loop_window_minutes are read from the settings."""
    lines = [thread_died(30), thread_died(10)]
    settings = from_mapping({"thresholds": {"crash_loop_restarts": 2}})
    assert codes(run(tmp_path, lines, settings)) == {CRASH}
    lines = [thread_died(300), thread_died(200), thread_died(100)]
    settings = from_mapping({"thresholds": {"crash_loop_window_minutes": 240}})
    assert codes(run(tmp_path, lines, settings)) == {CRASH}


def test_crash_words_inside_a_traceback_do_not_count(tmp_path: Path) -> None:
    """Only a record's first line is matched, not output quoted in its continuation lines."""
    lines = []
    for m in (30, 20, 10):
        lines += [f"{iso(m)} INFO ExtHandler ExtHandler Command output:", "thread died, restarting"]
    assert codes(run(tmp_path, lines)) == set()
