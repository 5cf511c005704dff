"""Finding the agent's processes with psutil: real stand-in processes, real command lines."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import psutil
import pytest

from tests.conftest import DATA
from waagent_doctor.probes import processes
from waagent_doctor.probes.processes import AgentProcesses

STANDIN = DATA / "standin" / "waagent"
PY = Path(sys.executable).name
EGG = "/var/lib/waagent/WALinuxAgent-2.9.1.1/bin/WALinuxAgent-2.9.1.1-py3.8.egg"


@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [
        (["/usr/bin/python3", "-u", "/usr/sbin/waagent", "-daemon"], ("daemon", None)),
        (["python3", "-u", "/usr/sbin/waagent", "-run-exthandlers"], ("exthandler", None)),
        (["python3", "-u", "/usr/sbin/waagent", "--daemon"], ("daemon", None)),
        (
            ["/usr/bin/python3", "-u", "bin/WALinuxAgent-2.15.0.1-py3.12.egg", "-run-exthandlers"],
            ("exthandler", "2.15.0.1"),
        ),
        (
            [
                "python3",
                "-u",
                "/var/lib/waagent/WALinuxAgent-2.9.1.1/bin/WALinuxAgent-2.9.1.1-py3.8.egg",
                "-run-exthandlers",
            ],
            ("exthandler", "2.9.1.1"),
        ),
        (["/usr/bin/waagent", "-daemon"], ("daemon", None)),
        (["python3", "-u", "/usr/sbin/waagent", "-collect-logs"], None),
        (["/usr/bin/waagent-doctor", "run", "-daemon"], None),
        (["vim", "/usr/sbin/waagent"], None),
        (["python3", "daemon.py", "-daemon"], None),
        ([], None),
    ],
)
def test_classify(cmdline: list[str], expected: Optional[tuple[str, Optional[str]]]) -> None:
    """Only the agent's daemon and extension-handler command lines are the agent's."""
    found = processes.classify(cmdline)
    assert (None if found is None else (found[0], found[2])) == expected


@pytest.fixture
def spawn(allow_subprocess: Any) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start the stand-in agent (in its own process group); kill every group at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def run(
        program: Path, verb: str, env: Optional[dict[str, str]] = None
    ) -> subprocess.Popen[bytes]:
        with allow_subprocess(PY):
            proc = subprocess.Popen(
                [sys.executable, "-u", str(program), verb],
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        started.append(proc)
        return proc

    yield run
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _wait_for(pred: Callable[[], Any], timeout: float = 10.0) -> Any:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met")


def _mine(found: AgentProcesses, root_pid: int) -> AgentProcesses:
    """Only the processes of this test's stand-in (other tests may run their own)."""
    tree = {root_pid, *(c.pid for c in psutil.Process(root_pid).children(recursive=True))}
    return AgentProcesses(
        tuple(p for p in found.daemons if p.pid in tree),
        tuple(p for p in found.exthandlers if p.pid in tree),
    )


def test_daemon_and_its_child_are_found(spawn: Any, tmp_path: Path) -> None:
    """`waagent -daemon` and the `-run-exthandlers` child it launches are both found."""
    prog = tmp_path / "waagent"
    shutil.copy(STANDIN, prog)
    daemon = spawn(prog, "-daemon", {"WAAGENT_LOG": str(tmp_path / "waagent.log")})
    found = _wait_for(lambda: (f := _mine(processes.scan(), daemon.pid)).exthandlers and f)
    assert found.daemon is not None and found.daemon.pid == daemon.pid
    assert found.daemon.program == str(prog)
    child = found.children_of(daemon.pid)
    assert len(child) == 1 and child[0].role == processes.EXTHANDLER
    assert child[0].started >= found.daemon.started


def test_auto_updated_child_reports_its_version(spawn: Any, tmp_path: Path) -> None:
    """An extension handler run from WALinuxAgent-<ver>/bin/*.egg carries that version."""
    prog = tmp_path / "waagent"
    shutil.copy(STANDIN, prog)
    egg_dir = tmp_path / "WALinuxAgent-2.15.0.1" / "bin"
    egg_dir.mkdir(parents=True)
    egg = egg_dir / "WALinuxAgent-2.15.0.1-py3.12.egg"
    shutil.copy(STANDIN, egg)
    env = {"WAAGENT_LOG": str(tmp_path / "waagent.log"), "STANDIN_CHILD": str(egg)}
    daemon = spawn(prog, "-daemon", env)
    found = _wait_for(lambda: (f := _mine(processes.scan(), daemon.pid)).exthandlers and f)
    assert found.exthandlers[0].version == "2.15.0.1"
    assert found.daemon is not None and found.daemon.version is None


def test_stopped_agent_is_seen_as_stopped(spawn: Any, tmp_path: Path) -> None:
    """A SIGSTOPped daemon is alive but reported stopped."""
    prog = tmp_path / "waagent"
    shutil.copy(STANDIN, prog)
    daemon = spawn(prog, "-daemon", {"WAAGENT_LOG": str(tmp_path / "log"), "STANDIN_NO_CHILD": "1"})
    _wait_for(lambda: _mine(processes.scan(), daemon.pid).daemon)
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        d = _wait_for(lambda: (d := _mine(processes.scan(), daemon.pid).daemon) and d.stopped and d)
        assert d.stopped and not d.zombie
    finally:
        os.kill(daemon.pid, signal.SIGCONT)


def test_proxy_environ_keeps_only_proxy_variables(spawn: Any, tmp_path: Path) -> None:
    """/proc/PID/environ gives the running agent's proxy variables and nothing else."""
    prog = tmp_path / "waagent"
    shutil.copy(STANDIN, prog)
    env = {
        "WAAGENT_LOG": str(tmp_path / "log"),
        "STANDIN_NO_CHILD": "1",
        "https_proxy": "http://127.0.0.1:3128",
        "NO_PROXY": "168.63.129.16",
        "SECRET_TOKEN": "x",
    }
    daemon = spawn(prog, "-daemon", env)
    _wait_for(lambda: _mine(processes.scan(), daemon.pid).daemon)
    got = processes.proxy_environ(daemon.pid)
    assert got == {"https_proxy": "http://127.0.0.1:3128", "NO_PROXY": "168.63.129.16"}


def test_proxy_environ_of_a_gone_process_is_unreadable() -> None:
    """A pid that does not exist: None (unreadable, so callers fall back), no exception."""
    assert processes.proxy_environ(2**22 + 12345) is None
