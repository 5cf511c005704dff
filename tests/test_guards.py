"""The guards themselves: a test that leaves loopback or runs a program fails."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.conftest import GUARD, GuardViolation


def _drain() -> list[str]:
    found = list(GUARD.violations)
    GUARD.violations.clear()
    return found


# Never contacted: these only ride in audit events, never in a socket call.
WIRESERVER = ("168.63.129.16", 80)
IMDS = ("169.254.169.254", 80)

# The guard is exercised through sys.audit with the very events CPython raises before a
# connect, sendto or lookup, so even a broken guard could never let a packet out here.


def test_non_loopback_connect_is_refused() -> None:
    """The audit event of a connect to the WireServer address is refused and recorded."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(GuardViolation):
        sys.audit("socket.connect", s, WIRESERVER)
    assert any("168.63.129.16" in v for v in _drain())


def test_imds_udp_sendto_is_refused() -> None:
    """The audit event of a datagram to IMDS is refused too."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(GuardViolation):
        sys.audit("socket.sendto", s, IMDS)
    assert _drain()


def test_name_lookup_is_refused() -> None:
    """The audit event of resolving a public name is refused."""
    with pytest.raises(GuardViolation):
        sys.audit("socket.getaddrinfo", "management.azure.com", 443, 0, 0, 0)
    assert _drain()


def test_a_swallowed_violation_still_fails_the_test() -> None:
    """Code that catches the refusal cannot hide it: it is recorded for teardown."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            sys.audit("socket.connect", s, IMDS)
        except GuardViolation:
            pass
    assert GUARD.violations
    GUARD.violations.clear()


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


def test_a_real_connect_reaches_the_guard() -> None:
    """A real socket.connect raises the audit event before any packet (shown on loopback)."""
    GUARD.deny_for_test = {"127.0.0.99"}
    try:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s,
            pytest.raises(GuardViolation),
        ):
            s.connect(("127.0.0.99", 9))
    finally:
        GUARD.deny_for_test = set()
    assert any("127.0.0.99" in v for v in _drain())
