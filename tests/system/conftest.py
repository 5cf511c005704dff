"""Fixtures for tests that need a real systemd: ``testbed`` boots one container per session.

Use it from tests in this directory::

    def test_something(testbed: Testbed) -> None:
        testbed.install_unit("x.service", "[Service]\\nExecStart=/bin/true\\n")
        ...

``testbed_clean`` is the same container, reset() after the test (units and files the test
made are removed). Tests using either fixture get the ``system`` marker, so
``pytest -m 'not system'`` leaves them out.

When this machine cannot boot a container (not root, no systemd-nspawn, no debootstrap, rootfs
build failed) the tests are skipped and the terminal summary says why; with
WAAGENT_DOCTOR_REQUIRE_SYSTEM=1 they fail instead. A container that cannot boot on a machine
that has everything is an error, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from types import FrameType
from typing import NoReturn, Optional

import pytest

from .testbed import Testbed, TestbedUnavailable, ensure_rootfs, unavailable_reason

REQUIRE_ENV = "WAAGENT_DOCTOR_REQUIRE_SYSTEM"
_SUMMARY: list[str] = []
_SYSTEM_FIXTURES = ("testbed", "testbed_clean")


def _required() -> bool:
    """Whether WAAGENT_DOCTOR_REQUIRE_SYSTEM asks to fail rather than skip."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes")


def _say(config: pytest.Config, message: str) -> None:
    """Write a line to the terminal right away (outside pytest's output capture)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    capman = config.pluginmanager.get_plugin("capturemanager")
    suspend = getattr(capman, "global_and_fixture_disabled", None)
    with suspend() if suspend is not None else contextlib.nullcontext():
        reporter.ensure_newline()
        reporter.write_line(f"[testbed] {message}")


def _unavailable(config: pytest.Config, reason: str) -> NoReturn:
    """Skip (or fail, when required) every test that needs the testbed, loudly."""
    if _required():
        _SUMMARY.append(f"FAILED: system testbed required ({REQUIRE_ENV}=1) but {reason}")
        pytest.fail(f"system testbed required ({REQUIRE_ENV}=1) but unavailable: {reason}")
    _SUMMARY.append(
        f"SKIPPED all system tests: {reason}\n  (set {REQUIRE_ENV}=1 to make this a failure)"
    )
    _say(config, f"system tests will be SKIPPED: {reason}")
    pytest.skip(f"system testbed unavailable: {reason}")


def _interrupt(signum: int, frame: Optional[FrameType]) -> NoReturn:
    """Signal handler: turn SIGTERM into KeyboardInterrupt."""
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def testbed(request: pytest.FixtureRequest) -> Iterator[Testbed]:
    """A booted Debian 12 container with systemd as PID 1, shared by the whole session."""
    config = request.config
    reason = unavailable_reason()
    if reason:
        _unavailable(config, reason)
    try:
        rootfs = ensure_rootfs(progress=lambda msg: _say(config, msg))
    except TestbedUnavailable as exc:
        _unavailable(config, str(exc))
    tb = Testbed.start(rootfs)
    _SUMMARY.append(
        f"booted {tb.name} from {rootfs} in {tb.boot_seconds:.2f} s (state: {tb.boot_state})"
    )
    # SIGTERM (CI timeouts, kill) becomes an interrupt, so pytest tears the container down.
    # If even that does not happen, the kernel's parent-death signal stops it anyway.
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        yield tb
    finally:
        if previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        stop_started = time.monotonic()
        tb.stop()
        _SUMMARY.append(
            f"container used for {stop_started - started:.1f} s, "
            f"stopped in {time.monotonic() - stop_started:.2f} s"
        )


@pytest.fixture
def testbed_clean(testbed: Testbed) -> Iterator[Testbed]:
    """The session's container; after the test, reset() undoes the test's units and files."""
    yield testbed
    if testbed.is_running:
        testbed.reset()


@pytest.fixture(autouse=True)
def _testbed_tests_may_run_host_tools(request: pytest.FixtureRequest) -> None:
    """Tests that drive the container run nsenter & co: lift the subprocess guard for them.

    The top-level conftest guards every test against unplanned subprocesses and offers
    ``allow_any_subprocess`` for system tests; the network guard stays on.
    """
    if any(f in request.fixturenames for f in _SYSTEM_FIXTURES):
        try:
            request.getfixturevalue("allow_any_subprocess")
        except pytest.FixtureLookupError:
            pass  # no guard in this tree


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses the testbed as `system`."""
    for item in items:
        if any(f in getattr(item, "fixturenames", ()) for f in _SYSTEM_FIXTURES):
            item.add_marker(pytest.mark.system)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """Say what happened to the system testbed, so a skip cannot go unnoticed."""
    if not _SUMMARY:
        return
    failed_or_skipped = any(line.startswith(("SKIPPED", "FAILED")) for line in _SUMMARY)
    terminalreporter.write_sep(
        "=", "waagent-doctor system testbed", yellow=failed_or_skipped, bold=True
    )
    for line in _SUMMARY:
        terminalreporter.write_line(line, yellow=failed_or_skipped, bold=failed_or_skipped)
