"""The testbed harness itself: a real systemd and journald, behaving as the doctor relies on."""

from __future__ import annotations

import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .testbed import (
    BUILD_SCRIPT,
    STATE_DIR,
    VENV_PYTHON,
    CommandFailed,
    Testbed,
    TestbedError,
    wait_for,
)

SLEEPER = """\
[Unit]
Description=testbed sleeper

[Service]
ExecStart=/bin/sleep infinity
LimitCORE=0
"""


@pytest.fixture
def tb(testbed_clean: Testbed) -> Iterator[Testbed]:
    """The shared container, reset after each test."""
    yield testbed_clean


def _unit(prefix: str) -> str:
    """A unit name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}.service"


def _wait_failed(tb: Testbed, unit: str, timeout: float = 10.0) -> dict[str, str]:
    """Wait until unit is failed; return its ActiveState and Result."""

    def failed() -> dict[str, str]:
        props = tb.show(unit, "ActiveState", "Result")
        return props if props["ActiveState"] == "failed" else {}

    return wait_for(failed, timeout, what=f"{unit} failed")


def test_systemd_is_pid1_and_system_running(tb: Testbed) -> None:
    assert tb.read_file("/proc/1/comm").strip() == "systemd"
    assert tb.run(["ps", "-o", "comm=", "-p", "1"]).stdout.strip() == "systemd"
    state = tb.run(["systemctl", "is-system-running"], check=False).stdout.strip()
    assert state in ("running", "degraded"), tb.systemctl("--failed", check=False).stdout
    assert "VERSION_CODENAME=bookworm" in tb.read_file("/etc/os-release")


def test_only_loopback_inside(tb: Testbed) -> None:
    assert tb.run(["ls", "/sys/class/net"]).stdout.split() == ["lo"]
    links = tb.run(["ip", "-o", "link", "show"]).stdout.splitlines()
    assert [line.split(":")[1].strip() for line in links] == ["lo"]
    assert "default" not in tb.run(["ip", "route", "show", "table", "all"]).stdout


def test_sigkill_gives_failed_signal_and_restart_works(tb: Testbed) -> None:
    unit = _unit("wd-tb-kill")
    tb.install_unit(unit, SLEEPER)
    tb.systemctl("start", unit)
    pid = tb.main_pid(unit)
    assert pid > 0
    tb.run(["kill", "-KILL", str(pid)])
    assert _wait_failed(tb, unit) == {"ActiveState": "failed", "Result": "signal"}
    started = time.monotonic()
    tb.systemctl("restart", unit)
    assert tb.prop(unit, "ActiveState") == "active"
    assert tb.main_pid(unit) not in (0, pid)
    assert time.monotonic() - started < 5


def test_restart_always_dropin_counts_nrestarts(tb: Testbed) -> None:
    unit = _unit("wd-tb-restart")
    tb.install_unit(unit, SLEEPER, reload=False)
    tb.install_dropin(unit, "[Service]\nRestart=always\nRestartSec=100ms\n")
    assert tb.prop(unit, "Restart") == "always"
    tb.systemctl("start", unit)
    for expected in (1, 2):
        old_pid = tb.main_pid(unit)
        tb.systemctl("kill", "--signal=SIGKILL", "--kill-who=main", unit)

        def restarted(n: int = expected, old: int = old_pid) -> bool:
            return int(tb.prop(unit, "NRestarts")) >= n and tb.main_pid(unit) not in (0, old)

        wait_for(restarted, what=f"NRestarts >= {expected}")
    props = tb.show(unit, "NRestarts", "ActiveState")
    assert props == {"NRestarts": "2", "ActiveState": "active"}


def test_journal_send_reads_back_as_json(tb: Testbed) -> None:
    cursor = tb.cursor()
    message_id = uuid.uuid4().hex
    code = f"from systemd import journal; journal.send('x', MESSAGE_ID='{message_id}', FOO='bar')"
    tb.run(["python3", "-c", code])
    entries = wait_for(lambda: tb.journal(f"MESSAGE_ID={message_id}"), what="journal entry")
    assert len(entries) == 1
    assert entries[0]["MESSAGE"] == "x"
    assert entries[0]["FOO"] == "bar"
    assert tb.journal(f"MESSAGE_ID={message_id}", since_cursor=cursor) == entries
    assert tb.journal(f"MESSAGE_ID={message_id}", since_cursor=entries[0]["__CURSOR"]) == []


def test_run_unit_passes_status_and_tags_journal(tb: Testbed) -> None:
    unit = _unit("wd-tb-run")
    message_id = uuid.uuid4().hex
    code = (
        "import sys; from systemd import journal; "
        f"journal.send('from a unit', MESSAGE_ID='{message_id}'); "
        "print(sys.stdin.read().upper()); sys.exit(3)"
    )
    result = tb.run_unit(
        ["python3", "-c", code], unit=unit, check=False, input="hello", WorkingDirectory="/src"
    )
    assert result.returncode == 3
    assert result.stdout.strip() == "HELLO"
    entries = wait_for(lambda: tb.journal(f"MESSAGE_ID={message_id}"), what="journal entry")
    assert entries[0]["_SYSTEMD_UNIT"] == unit
    with pytest.raises(CommandFailed) as err:
        tb.run_unit(["sh", "-c", "echo oops >&2; exit 4"])
    assert err.value.returncode == 4
    assert "oops" in str(err.value)


def test_watchdog_kills_a_silent_notify_service(tb: Testbed) -> None:
    unit = _unit("wd-tb-watchdog")
    script = textwrap.dedent(
        """\
        import time
        from systemd import daemon
        daemon.notify("READY=1")
        for _ in range(5):
            daemon.notify("WATCHDOG=1")
            time.sleep(0.2)
        time.sleep(3600)
        """
    )
    tb.write_file("/run/wd-tb-watchdog.py", script)
    tb.install_unit(
        unit,
        "[Service]\nType=notify\nWatchdogSec=1\nLimitCORE=0\n"
        "ExecStart=/usr/bin/python3 /run/wd-tb-watchdog.py\n",
    )
    tb.systemctl("start", unit)  # returns once READY=1 arrived
    assert tb.prop(unit, "ActiveState") == "active"
    assert _wait_failed(tb, unit, 15) == {"ActiveState": "failed", "Result": "watchdog"}


def test_venv_has_pydantic2_and_debian_systemd(tb: Testbed) -> None:
    code = (
        "import pydantic, psutil, tenacity, structlog, defusedxml, prometheus_client, "
        "systemd.journal; print(pydantic.VERSION)"
    )
    out = tb.run([VENV_PYTHON, "-c", code]).stdout.strip()
    assert out.startswith("2."), out
    assert tb.python("-c", "import sys; print(sys.path)").stdout.count("/src/src") == 1


def test_src_is_the_project_read_only(tb: Testbed) -> None:
    assert (
        tb.read_file("/src/pyproject.toml")
        == (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    )
    assert tb.run(["touch", "/src/should-not-exist"], check=False).returncode != 0


def test_real_walinuxagent_unit_is_installed_but_skipped(tb: Testbed) -> None:
    props = tb.show("walinuxagent.service", "LoadState", "ActiveState", "FragmentPath")
    assert props["LoadState"] == "loaded"
    assert props["ActiveState"] == "inactive"
    assert props["FragmentPath"].endswith("/systemd/system/walinuxagent.service")
    assert "ConditionVirtualization=microsoft" in tb.read_file(props["FragmentPath"])


def test_write_file_stays_inside_even_through_absolute_symlinks(tb: Testbed) -> None:
    name = f"wd-tb-probe-{uuid.uuid4().hex[:8]}"
    tb.write_file(f"/var/run/{name}", "inside\n", mode=0o600)  # /var/run -> /run, absolute
    assert not Path(f"/run/{name}").exists()
    assert tb.read_file(f"/run/{name}") == "inside\n"
    assert tb.run(["stat", "-c", "%a", f"/run/{name}"]).stdout.strip() == "600"
    with pytest.raises(FileNotFoundError):
        tb.read_file(f"/run/{name}.absent")


def test_run_timeout_kills_the_command_inside(tb: Testbed) -> None:
    marker = f"sleep 3{uuid.uuid4().int % 10**6:06d}"  # a command line no one else has
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        tb.run(["sh", "-c", f"{marker}; true"], timeout=0.5)
    assert time.monotonic() - started < 10
    wait_for(
        lambda: tb.run(["pgrep", "-f", marker], check=False).returncode == 1,
        what="command gone after timeout",
    )


def test_reset_removes_units_and_restores_files(testbed: Testbed) -> None:
    tb = testbed
    tb.reset()
    unit = _unit("wd-tb-reset")
    tb.install_unit(unit, SLEEPER)
    tb.systemctl("start", unit)
    tb.install_dropin("walinuxagent.service", "[Service]\nEnvironment=WD_TB=1\n")
    hostname = tb.read_file("/etc/hostname")
    tb.write_file("/etc/hostname", "changed\n")
    tb.write_file("/etc/wd-tb-new/sub/file", "new\n")
    tb.write_file("/etc/wd-tb-new/other", "new\n")
    tb.remove("/etc/os-release")  # a symlink to ../usr/lib/os-release
    with pytest.raises(CommandFailed, match="is a directory"):
        tb.write_file("/etc/systemd", "not a directory")
    tb.run_unit(["true"], unit="wd-tb-reset-run.service")
    stopped = tb.reset()
    assert unit in stopped
    assert tb.show(unit, "LoadState", "ActiveState") == {
        "LoadState": "not-found",
        "ActiveState": "inactive",
    }
    assert "50-test.conf" not in tb.prop("walinuxagent.service", "DropInPaths")
    assert not tb.exists(f"/run/systemd/system/{unit}")
    assert not tb.exists("/run/systemd/system/walinuxagent.service.d")
    assert tb.read_file("/etc/hostname") == hostname
    assert not tb.exists("/etc/wd-tb-new")
    assert tb.run(["readlink", "/etc/os-release"]).stdout.strip() == "../usr/lib/os-release"
    assert tb.exists("/etc/systemd/system.conf")
    assert tb.reset() == []


def test_build_script_stamp_is_current(testbed: Testbed) -> None:
    check = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr


def test_second_container_starts_stops_and_leaves_nothing(testbed: Testbed) -> None:
    with Testbed.start(testbed.rootfs, src=None) as other:
        assert other.name != testbed.name
        assert other.run(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
        assert not other.exists("/src/pyproject.toml")
        leader, workdir = other.leader, other.workdir
        assert (STATE_DIR / f"{other.name}.json").exists()
    assert not other.is_running
    assert not Path(f"/proc/{leader}").exists()
    assert not workdir.exists()
    assert not (STATE_DIR / f"{other.name}.json").exists()
    with pytest.raises(TestbedError, match="not running"):
        other.run(["true"])


def test_boot_timeout_reports_and_cleans_up(testbed: Testbed) -> None:
    before = set(STATE_DIR.glob("*.json"))
    with pytest.raises(TestbedError, match="not booted after") as err:
        Testbed.start(testbed.rootfs, src=None, boot_timeout=0.001)
    assert "systemd-nspawn log" in str(err.value)
    assert set(STATE_DIR.glob("*.json")) == before
