"""sd_notify against real AF_UNIX datagram sockets (a path and an abstract name)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from waagent_doctor.notify import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound to a path, as systemd's notify socket is."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def test_ready_and_status_arrive_as_one_datagram(listener: tuple[socket.socket, str]) -> None:
    """READY=1 and STATUS= travel together, newline-separated."""
    sock, path = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("ok: no findings")
    assert sock.recv(4096) == b"READY=1\nSTATUS=ok: no findings"
    n.close()


def test_status_newlines_are_flattened(listener: tuple[socket.socket, str]) -> None:
    """A status can never inject another assignment with a newline."""
    sock, path = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    n.status("a\nREADY=1")
    assert sock.recv(4096) == b"STATUS=a READY=1"


def test_abstract_namespace_socket() -> None:
    """NOTIFY_SOCKET=@name means the abstract namespace (leading NUL)."""
    name = f"waagent-doctor-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.send("STOPPING=1")
        assert sock.recv(4096) == b"STOPPING=1"
    finally:
        sock.close()


def test_no_socket_means_no_op() -> None:
    """Without NOTIFY_SOCKET nothing is sent and nothing fails."""
    n = Notifier({})
    assert not n.enabled
    assert not n.ready("x")
    assert not n.watchdog()


def test_gone_listener_is_not_an_error(tmp_path: Path) -> None:
    """A socket path nobody listens on makes send() return False, never raise."""
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert n.send("READY=1") is False


def test_watchdog_only_when_asked_for_this_pid(listener: tuple[socket.socket, str]) -> None:
    """WATCHDOG_USEC enables pings; a WATCHDOG_PID of another process disables them."""
    sock, path = listener
    mine = Notifier(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert mine.watchdog_seconds == 3.0
    assert mine.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    other = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_seconds is None
    assert not other.watchdog()
