"""Live agent checks: not running, no extension handler, hung, crash loop."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import psutil
import pytest

from tests.checks.live_support import (
    StandIn,
    codes,
    live_host,
    run,
    settings_from,
    systemctl_runner,
)
from waagent_doctor.probes import processes
from waagent_doctor.probes.systemd import RestartHistory, RestartSample, restart_history
from waagent_doctor.snapshot import Snapshot

AGENT = {"agent_running", "agent_hung", "agent_restarts_live"}


@pytest.fixture
def standins(allow_subprocess: Any) -> Iterator[Callable[..., StandIn]]:
    """Start stand-in agents; every one is killed at teardown."""
    made: list[StandIn] = []

    def start(root: Path, **env: str) -> StandIn:
        s = StandIn(root, allow_subprocess, **env)
        made.append(s)
        return s

    yield start
    for s in made:
        s.stop()


def _mine(pid: int) -> bool:
    """The stand-in's daemon is visible to the processes probe."""
    d = processes.scan([pid]).daemon
    return d is not None and d.pid == pid


def _child_running(pid: int) -> bool:
    return any(
        processes.classify(c.cmdline()) for c in psutil.Process(pid).children(recursive=True)
    )


def test_inactive_unit_and_no_process_is_not_running(tmp_path: Path, allow_subprocess: Any) -> None:
    """A masked unit with no daemon: agent.not_running, with the masked state as evidence."""
    host = live_host(tmp_path, systemctl_runner(tmp_path, "masked"))
    with allow_subprocess("systemctl", "sh"):
        report = run(host, settings_from("", tmp_path), AGENT)
    assert "agent.not_running" in codes(report)
    finding = next(f for f in report.findings if f.code == "agent.not_running")
    assert any("masked" in e.detail for e in finding.evidence)


def test_auto_restart_is_a_crash_loop_not_a_stop(tmp_path: Path, allow_subprocess: Any) -> None:
    """SubState=auto-restart with NRestarts=4: agent.crash_loop; systemd restarts it itself."""
    as_of = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
    host = live_host(tmp_path, systemctl_runner(tmp_path, "auto-restart"), as_of)
    with allow_subprocess("systemctl", "sh"):
        report = run(host, settings_from("", tmp_path), AGENT)
    assert codes(report) == {"agent.crash_loop"}


def test_old_restarts_are_not_a_crash_loop(tmp_path: Path, allow_subprocess: Any) -> None:
    """The same NRestarts with the last start two hours ago is no crash loop."""
    as_of = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    runner = systemctl_runner(tmp_path, "auto-restart", "SubState=running\nActiveState=active\n")
    host = live_host(tmp_path, runner, as_of)
    with allow_subprocess("systemctl", "sh"):
        report = run(host, settings_from("", tmp_path), {"agent_restarts_live"})
    assert "agent.crash_loop" not in codes(report)


def test_start_limit_hit_is_a_crash_loop_and_not_running(
    tmp_path: Path, allow_subprocess: Any
) -> None:
    """systemd gave up (start-limit-hit): both agent.not_running and agent.crash_loop."""
    host = live_host(tmp_path, systemctl_runner(tmp_path, "start-limit-hit"))
    with allow_subprocess("systemctl", "sh"):
        report = run(host, settings_from("", tmp_path), AGENT)
    assert {"agent.not_running", "agent.crash_loop"} <= codes(report)


def test_daemon_history_growth_is_a_crash_loop(tmp_path: Path, allow_subprocess: Any) -> None:
    """The daemon primes the restart history: growth of 3 within the window is a crash loop."""
    now = datetime.now(timezone.utc)
    host = live_host(tmp_path, systemctl_runner(tmp_path, "active"), now)
    settings = settings_from("", tmp_path)
    snap = Snapshot(host, settings)
    snap.prime(
        restart_history,
        RestartHistory(
            (
                RestartSample(now - timedelta(minutes=40), 1, None),
                RestartSample(now - timedelta(minutes=20), 2, None),
                RestartSample(now, 4, None),
            )
        ),
    )
    from waagent_doctor.engine import diagnose

    with allow_subprocess("systemctl", "sh"):
        report = diagnose(host, settings, snapshot=snap, only={"agent_restarts_live"})
    assert codes(report) == {"agent.crash_loop"}


def test_running_agent_is_healthy(
    tmp_path: Path, allow_subprocess: Any, standins: Callable[..., StandIn]
) -> None:
    """An active unit with a daemon and its child, writing its log: no finding."""
    agent = standins(tmp_path)
    agent.wait_until(lambda: _mine(agent.proc.pid) and _child_running(agent.proc.pid))
    host = live_host(tmp_path, systemctl_runner(tmp_path, "active"))
    with allow_subprocess("systemctl", "sh"):
        report = run(host, settings_from("", tmp_path), AGENT)
    assert codes(report) == set()


def test_missing_child_past_grace_is_exthandler_not_running(
    tmp_path: Path, allow_subprocess: Any, standins: Callable[..., StandIn]
) -> None:
    """A daemon without `-run-exthandlers` child: a finding after the grace, none before."""
    agent = standins(tmp_path, STANDIN_NO_CHILD="1")
    agent.wait_until(lambda: _mine(agent.proc.pid))
    runner = systemctl_runner(tmp_path, "active")
    later = datetime.now(timezone.utc) + timedelta(minutes=5)
    with allow_subprocess("systemctl", "sh"):
        early = run(live_host(tmp_path, runner), settings_from("", tmp_path), AGENT)
        late = run(live_host(tmp_path, runner, later), settings_from("", tmp_path), AGENT)
    assert "agent.exthandler.not_running" not in codes(early)
    assert "agent.exthandler.not_running" in codes(late)


def test_disable_agent_file_means_no_exthandler_finding(
    tmp_path: Path, allow_subprocess: Any, standins: Callable[..., StandIn]
) -> None:
    """With disable_agent the daemon sleeps on purpose: no exthandler finding."""
    (tmp_path / "var/lib/waagent").mkdir(parents=True)
    (tmp_path / "var/lib/waagent/disable_agent").write_text("")
    agent = standins(tmp_path, STANDIN_NO_CHILD="1")
    agent.wait_until(lambda: _mine(agent.proc.pid))
    later = datetime.now(timezone.utc) + timedelta(minutes=5)
    host = live_host(tmp_path, systemctl_runner(tmp_path, "active"), later)
    with allow_subprocess("systemctl", "sh"):
        report = run(host, settings_from("", tmp_path), {"agent_running"})
    assert codes(report) == set()


def test_stale_agent_is_hung(
    tmp_path: Path, allow_subprocess: Any, standins: Callable[..., StandIn]
) -> None:
    """Alive, SIGSTOPped, nothing written for longer than agent_hung_minutes: agent.hung."""
    agent = standins(tmp_path, STANDIN_PERIOD="3600")
    agent.wait_until(lambda: _mine(agent.proc.pid) and _child_running(agent.proc.pid))
    os.kill(agent.proc.pid, signal.SIGSTOP)
    runner = systemctl_runner(tmp_path, "active")
    settings = settings_from("[thresholds]\nagent_hung_minutes = 30\n", tmp_path)
    later = datetime.now(timezone.utc) + timedelta(minutes=45)
    try:
        with allow_subprocess("systemctl", "sh"):
            fresh = run(live_host(tmp_path, runner), settings, {"agent_hung"})
            stale = run(live_host(tmp_path, runner, later), settings, {"agent_hung"})
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)
    assert codes(fresh) == set()
    assert codes(stale) == {"agent.hung"}
    details = " ".join(e.detail for f in stale.findings for e in f.evidence)
    assert "stopped" in details and "/var/log/waagent.log" in {
        e.source for f in stale.findings for e in f.evidence
    }


def test_no_systemd_falls_back_to_processes(tmp_path: Path, allow_subprocess: Any) -> None:
    """Without systemd the processes decide: no daemon is agent.not_running."""
    host = live_host(tmp_path, systemctl_runner(tmp_path, None))
    with allow_subprocess("systemctl", "sh"):
        report = run(host, settings_from("", tmp_path), AGENT)
    assert "agent.not_running" in codes(report)
    statuses = {c.name: c.status.value for c in report.checks}
    assert statuses["agent_restarts_live"] == "skipped"


def test_live_checks_are_skipped_offline(tmp_path: Path) -> None:
    """Offline (--root) the live checks say skipped and never run."""
    from waagent_doctor.config import Settings
    from waagent_doctor.engine import diagnose
    from waagent_doctor.host import Host

    report = diagnose(
        Host.offline(str(tmp_path), datetime.now(timezone.utc)),
        Settings(),
        only=AGENT | {"resources", "azure_host", "network_live_wireserver"},
    )
    assert {c.status.value for c in report.checks} == {"skipped"}
