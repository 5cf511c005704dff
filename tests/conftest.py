"""Test-wide guards: nothing leaves loopback, and no subprocess runs unless a test plans it.

Both guards are audit hooks (sys.addaudithook), so they see every socket and subprocess call
without patching anything. A violation is recorded and fails the test at teardown even when
the code under test swallowed the exception.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
VMS = DATA / "vms"


class GuardViolation(RuntimeError):
    """A test tried to leave loopback or to run an unplanned subprocess."""


class _Guard:
    def __init__(self) -> None:
        self.active = False
        self.violations: list[str] = []
        self.allowed_programs: set[str] = set()
        self.allow_any_subprocess = False
        # Test-only: loopback addresses treated as forbidden, to prove the real socket path
        # reaches the guard without ever aiming at a real outside address.
        self.deny_for_test: set[str] = set()

    def _loopback(self, host: Any) -> bool:
        if host is None:
            return True
        if str(host) in self.deny_for_test:
            return False
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        host = str(host)
        if host in ("localhost", "localhost.localdomain", "ip6-localhost", ""):
            return True
        try:
            return ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return False

    def _violate(self, what: str) -> None:
        self.violations.append(what)
        raise GuardViolation(what)

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "socket.connect" or event == "socket.sendto":
            sock, address = args[0], args[1]
            family = getattr(sock, "family", None)
            inet = family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple)
            if inet and not self._loopback(address[0]):
                self._violate(f"{event} to non-loopback {address!r}")
        elif event == "socket.getaddrinfo":
            if not self._loopback(args[0]):
                self._violate(f"name lookup of {args[0]!r}")
        elif event in ("socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"):
            if not self._loopback(args[0]):
                self._violate(f"{event} of {args[0]!r}")
        elif event == "subprocess.Popen":
            if self.allow_any_subprocess:
                return
            exe = args[0]
            name = Path(str(exe if exe else args[1][0])).name
            argv0 = Path(str(args[1][0])).name if args[1] else name
            if name not in self.allowed_programs and argv0 not in self.allowed_programs:
                self._violate(f"unplanned subprocess {list(args[1])!r}")


GUARD = _Guard()
sys.addaudithook(GUARD.hook)


@pytest.fixture(autouse=True)
def _network_and_subprocess_guard() -> Iterator[None]:
    """Fail the test on any non-loopback connect or lookup, or any unplanned subprocess."""
    GUARD.active = True
    GUARD.violations = []
    GUARD.allowed_programs = set()
    GUARD.allow_any_subprocess = False
    try:
        yield
    finally:
        GUARD.active = False
        found = list(GUARD.violations)
        GUARD.violations = []
    if found:
        pytest.fail("guard: " + "; ".join(found), pytrace=False)


@contextmanager
def planned_subprocess(*programs: str) -> Iterator[None]:
    """Allow the named programs (by basename) to run inside the block."""
    before = set(GUARD.allowed_programs)
    GUARD.allowed_programs |= set(programs)
    try:
        yield
    finally:
        GUARD.allowed_programs = before


@pytest.fixture
def allow_subprocess() -> Any:
    """A test that runs real programs names them: `with allow_subprocess("systemctl"): ...`."""
    return planned_subprocess


@pytest.fixture
def allow_any_subprocess() -> Iterator[None]:
    """For system tests that drive a container with many host tools."""
    GUARD.allow_any_subprocess = True
    try:
        yield
    finally:
        GUARD.allow_any_subprocess = False
