"""The daemon's loop on this machine: READY=1, SIGHUP with a bad file, SIGTERM, pidfd."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from waagent_doctor import daemon as daemonmod
from waagent_doctor import state as statemod
from waagent_doctor.actions import DaemonPaths
from waagent_doctor.config import load
from waagent_doctor.host import CommandRunner, Host
from waagent_doctor.notify import Notifier
from waagent_doctor.paths import Root

CONFIG = """
interval_seconds = 1
assume_azure = true
[endpoints]
wireserver = "127.0.0.1"
wireserver_port = 9
hostgaplugin_port = 9
imds = "127.0.0.1"
imds_port = 9
storage = "127.0.0.1"
storage_port = 9
connect_timeout_seconds = 0.2
deadline_seconds = 1.0
[thresholds]
sample_seconds = 0.1
"""


@pytest.fixture
def guest(tmp_path: Path) -> Path:
    """A small Debian guest tree with the agent's config and log."""
    root = tmp_path / "guest"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    (root / "etc" / "waagent.conf").write_text("Logs.Verbose=n\n")
    (root / "var" / "log").mkdir(parents=True)
    (root / "var" / "log" / "waagent.log").write_text(
        "2026-01-01T00:00:00.000000Z INFO Daemon Daemon Azure Linux Agent Version: 2.9.1.1\n"
    )
    return root


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield sock, path
    sock.close()


def _daemon(tmp_path: Path, guest: Path, notify: str, **kw: Any) -> daemonmod.Daemon:
    cfg = tmp_path / "config.toml"
    if not cfg.exists():
        cfg.write_text(CONFIG)

    def host() -> Host:
        return Host(Root(guest), True, datetime.now(timezone.utc), CommandRunner())

    return daemonmod.Daemon(
        load(str(cfg)),
        config_path=str(cfg),
        paths=DaemonPaths(
            state=str(tmp_path / "lib" / "state.json"),
            bundles=str(tmp_path / "lib" / "bundles"),
            quarantine=str(tmp_path / "lib" / "quarantine"),
            unit_dir=str(tmp_path / "units"),
        ),
        notifier=Notifier(
            {"NOTIFY_SOCKET": notify, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
        ),
        host_factory=host,
        **kw,
    )


def test_once_runs_one_cycle_and_saves_state(
    tmp_path: Path, guest: Path, notify_socket: tuple[socket.socket, str], allow_subprocess: Any
) -> None:
    """--once: one cycle, READY=1 with a status line, state saved, exit 0."""
    sock, path = notify_socket
    d = _daemon(tmp_path, guest, path)
    with allow_subprocess("systemctl"):
        assert d.run(once=True) == 0
    first = sock.recv(4096).decode()
    assert first.startswith("READY=1\nSTATUS=")
    saved = statemod.load(tmp_path / "lib" / "state.json")
    assert saved.last_cycle is not None
    assert saved.log_cursors["/var/log/waagent.log"]["offset"] > 0


def test_sighup_refuses_a_bad_config_and_sigterm_stops_quickly(
    tmp_path: Path, guest: Path, notify_socket: tuple[socket.socket, str], allow_subprocess: Any
) -> None:
    """A broken file on SIGHUP is refused (old settings kept); SIGTERM ends the loop fast."""
    sock, path = notify_socket
    d = _daemon(tmp_path, guest, path)
    before = d.settings
    stop_sent: list[float] = []

    def drive() -> None:
        time.sleep(1.5)
        (tmp_path / "config.toml").write_text("interval_seconds = 0\n")
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(1.0)
        stop_sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)

    t = threading.Thread(target=drive)
    with capture_logs() as logs, allow_subprocess("systemctl"):
        t.start()
        rc = d.run()
        ended = time.monotonic()
    t.join()
    assert rc == 0
    assert ended - stop_sent[0] < 5.0
    assert d.settings == before
    rejected = [e for e in logs if e["event"] == "config.rejected"]
    assert len(rejected) == 1 and "interval_seconds" in rejected[0]["WAAGENT_DOCTOR_REASON"]
    got = []
    sock.settimeout(0.5)
    try:
        while True:
            got.append(sock.recv(4096).decode())
    except socket.timeout:
        pass
    assert got[0].startswith("READY=1")
    assert "WATCHDOG=1" in got
    assert any(g.startswith("STOPPING=1") for g in got)


def test_pidfd_becomes_readable_when_the_process_exits(allow_subprocess: Any) -> None:
    """The loop's way of noticing the agent's death: a pidfd turns readable at exit."""
    import select

    with allow_subprocess("python3", os.path.basename(sys.executable)):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    fd = daemonmod._pidfd_open(child.pid)
    assert fd is not None
    try:
        assert select.select([fd], [], [], 0)[0] == []
        assert select.select([fd], [], [], 5)[0] == [fd]
    finally:
        os.close(fd)
        child.wait()
