"""The guards themselves: a test that leaves loopback or runs a program fails."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.conftest import GUARD, GuardViolation


def _drain() -> list[str]:
    found = list(GUARD.violations)
    GUARD.violations.clear()
    return found


def test_non_loopback_connect_is_refused_before_any_packet() -> None:
    """Connecting to the WireServer address raises at once and is recorded."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(GuardViolation):
        s.connect(("168.63.129.16", 80))
    s.close()
    assert any("168.63.129.16" in v for v in _drain())


def test_imds_udp_sendto_is_refused() -> None:
    """A datagram to IMDS is refused too."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(GuardViolation):
        s.sendto(b"x", ("169.254.169.254", 80))
    s.close()
    assert _drain()


def test_name_lookup_is_refused() -> None:
    """Resolving a public name is refused before any DNS packet."""
    with pytest.raises(GuardViolation):
        socket.getaddrinfo("management.azure.com", 443)
    assert _drain()


def test_loopback_is_allowed() -> None:
    """Loopback connects work (fake servers live there)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.create_connection(srv.getsockname(), timeout=2)
    c.close()
    srv.close()
    assert not GUARD.violations


def test_unplanned_subprocess_is_refused() -> None:
    """Running a program no test planned is refused."""
    with pytest.raises(GuardViolation):
        subprocess.run(["true"], check=False)
    assert _drain()


def test_planned_subprocess_runs(allow_subprocess) -> None:  # type: ignore[no-untyped-def]
    """A program named by the test runs."""
    with allow_subprocess("true"):
        assert subprocess.run(["true"], check=False).returncode == 0
