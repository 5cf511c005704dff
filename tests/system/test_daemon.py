"""The doctor as a real Type=notify unit next to a stand-in agent unit, under a real systemd.

The stand-in agent (tests/data/standin/waagent) has the real agent's process shapes:
`waagent -daemon` with a `-run-exthandlers` child writing records to /var/log/waagent.log.
Every endpoint points at 127.0.0.1 (the container has only loopback).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from waagent_doctor.codes import ACTIONS, CODES, MESSAGE_ID_GAVE_UP

from .testbed import Testbed, wait_for

ROOT = Path(__file__).resolve().parents[2]
AGENT = "walinuxagent.service"
DOCTOR = "waagent-doctor.service"
CONF = "/etc/waagent-doctor/test.toml"
STANDIN = "/usr/bin/python3 -u /src/tests/data/standin/waagent -daemon"
WAAGENT_CONF = (ROOT / "tests/data/walinuxagent/etc/waagent_conf/ubuntu/waagent.conf").read_bytes()
EVENTS = {"finding.raised", "finding.cleared", "action.applied", "action.failed", "action.skipped"}

BASE_CONFIG = """
interval_seconds = {interval}
assume_azure = true
agent_unit = "walinuxagent.service"
dry_run = {dry_run}

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
agent_hung_minutes = 0.05
exthandler_grace_seconds = 5.0

[actions]
enable_autorestart = {autorestart}
restart_cooldown_seconds = {cooldown}
restart_agent_per_hour = 3
"""


def config(
    *, interval: int = 1, dry_run: bool = False, autorestart: bool = False, cooldown: float = 1.0
) -> str:
    """A test configuration (TOML)."""
    return BASE_CONFIG.format(
        interval=interval,
        dry_run=str(dry_run).lower(),
        autorestart=str(autorestart).lower(),
        cooldown=cooldown,
    )


def agent_unit(restart: Optional[str] = None, exec_start: str = STANDIN) -> str:
    """The stand-in agent's unit (Restart= only when asked)."""
    lines = [
        "[Unit]",
        "Description=stand-in Azure agent for waagent-doctor tests",
        "[Service]",
        f"ExecStart={exec_start}",
        "Environment=STANDIN_PERIOD=0.5",
    ]
    if restart:
        lines += [f"Restart={restart}", "RestartSec=2"]
    return "\n".join(lines) + "\n"


def doctor_dropin(args: str = "", extra: str = "") -> str:
    """Run the doctor from /src with the test venv and config (the shipped unit otherwise)."""
    return (
        "[Service]\nExecStart=\n"
        f"ExecStart=/opt/wd-venv/bin/python -m waagent_doctor run --config {CONF} {args}\n"
        "Environment=PYTHONPATH=/src/src PYTHONDONTWRITEBYTECODE=1\n"
        f"{extra}"
    )


class Scene:
    """One test's doctor + agent, with journal helpers."""

    def __init__(self, tb: Testbed) -> None:
        self.tb = tb
        self.cursor = ""

    def setup(
        self, cfg: str, agent: str, *, args: str = "", extra: str = "", start_agent: bool = True
    ) -> None:
        tb = self.tb
        tb.systemctl("stop", DOCTOR, AGENT, check=False)
        tb.remove("/var/lib/waagent-doctor")
        tb.write_file("/etc/waagent.conf", WAAGENT_CONF)
        tb.write_file("/var/log/waagent.log", "")
        tb.write_file(CONF, cfg)
        tb.install_unit(AGENT, agent, reload=False)
        tb.install_unit(DOCTOR, (ROOT / "systemd" / DOCTOR).read_text(), reload=False)
        tb.install_dropin(DOCTOR, doctor_dropin(args, extra))
        tb.systemctl("reset-failed", check=False)
        self.cursor = tb.cursor()
        if start_agent:
            tb.systemctl("start", AGENT)
            wait_for(lambda: self.exthandler_running(), 10, what="stand-in exthandler")

    def exthandler_running(self) -> bool:
        out = self.tb.run(["pgrep", "-f", "waagent -run-exthandlers"], check=False).stdout
        return bool(out.strip())

    def start_doctor(self) -> int:
        """Start the doctor; systemctl returns once it sent READY=1."""
        self.tb.systemctl("start", DOCTOR, timeout=60)
        assert self.tb.prop(DOCTOR, "ActiveState") == "active"
        return self.tb.main_pid(DOCTOR)

    def entries(self, *match: str) -> list[dict[str, Any]]:
        """The doctor's journal entries since setup()."""
        return self.tb.journal("SYSLOG_IDENTIFIER=waagent-doctor", *match, since_cursor=self.cursor)

    def events(self, event: str, **fields: str) -> list[dict[str, Any]]:
        """Entries of one WAAGENT_DOCTOR_EVENT, filtered by WAAGENT_DOCTOR_<KEY>=value."""
        match = [f"WAAGENT_DOCTOR_EVENT={event}"]
        match += [f"WAAGENT_DOCTOR_{k.upper()}={v}" for k, v in fields.items()]
        return self.entries(*match)

    def wait_event(
        self, event: str, timeout: float = 30.0, count: int = 1, **fields: str
    ) -> list[dict[str, Any]]:
        """Wait until at least `count` such entries exist; return them."""

        def enough() -> list[dict[str, Any]]:
            found = self.events(event, **fields)
            return found if len(found) >= count else []

        return wait_for(enough, timeout, interval=0.3, what=f"{count}x {event} {fields}")

    def kill_agent(self, sig: str) -> None:
        """Signal every stand-in agent process (`systemctl kill` cannot use cgroup.kill here)."""
        pids = self.tb.run(["pgrep", "-f", "standin/waagent"], check=False).stdout.split()
        main = str(self.tb.main_pid(AGENT))
        assert main in pids, (main, pids)
        for pid in [main] + [p for p in pids if p != main]:
            self.tb.run(["kill", f"-{sig}", pid], check=False)

    def attempts(self, action: str) -> list[dict[str, Any]]:
        return self.events("action.applied", action=action) + self.events(
            "action.failed", action=action
        )


@pytest.fixture
def scene(testbed_clean: Testbed) -> Any:
    s = Scene(testbed_clean)
    yield s
    testbed_clean.systemctl("stop", DOCTOR, AGENT, check=False)
    testbed_clean.remove("/var/lib/waagent-doctor")


def _check_contract_fields(entries: list[dict[str, Any]]) -> None:
    """Every finding/action entry carries the contract's fields, with the right MESSAGE_ID."""
    contract = [e for e in entries if e.get("WAAGENT_DOCTOR_EVENT") in EVENTS]
    assert contract, "no finding or action entries"
    for e in contract:
        assert e["SYSLOG_IDENTIFIER"] == "waagent-doctor"
        assert e["PRIORITY"] in {"2", "3", "4", "5", "6"}
        assert e["_SYSTEMD_UNIT"] == DOCTOR
        code = e["WAAGENT_DOCTOR_CODE"]
        assert e["WAAGENT_DOCTOR_CAUSE"] == str(CODES[code].cause)
        if e["WAAGENT_DOCTOR_EVENT"].startswith("finding."):
            assert e["MESSAGE_ID"] == CODES[code].message_id
        else:
            action = e["WAAGENT_DOCTOR_ACTION"]
            assert e["MESSAGE_ID"] in (ACTIONS[action].message_id, MESSAGE_ID_GAVE_UP)


def test_shipped_unit_verifies_and_is_hardened(scene: Scene) -> None:
    """systemd-analyze verify is clean and the exposure score stays under 5.0."""
    tb = scene.tb
    tb.write_file("/usr/bin/waagent-doctor", "#!/bin/sh\nexit 0\n", mode=0o755)
    res = tb.run(["systemd-analyze", "verify", "--man=no", f"/src/systemd/{DOCTOR}"], check=False)
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr
    tb.install_unit(DOCTOR, (ROOT / "systemd" / DOCTOR).read_text())
    out = tb.run(["systemd-analyze", "security", "--no-pager", DOCTOR], check=False).stdout
    score = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out).group(1))  # type: ignore[union-attr]
    assert score < 5.0, out


def test_killed_agent_without_restart_is_restarted_at_once(scene: Scene) -> None:
    """No Restart=: the doctor sees the death through a pidfd (interval 30 s) and restarts it."""
    tb = scene.tb
    scene.setup(config(interval=30), agent_unit())
    scene.start_doctor()
    old = tb.main_pid(AGENT)
    time.sleep(1.5)  # past the cool-down since the agent started
    killed = time.monotonic()
    scene.kill_agent("KILL")
    applied = scene.wait_event("action.applied", 20, action="restart_agent")
    took = time.monotonic() - killed
    assert took < 10, f"restart took {took:.1f} s with a 30 s interval: not noticed at once"
    assert applied[0]["WAAGENT_DOCTOR_CODE"] == "agent.not_running"
    new = tb.main_pid(AGENT)
    assert tb.prop(AGENT, "ActiveState") == "active" and new not in (0, old)
    assert f"MainPID {new}" in applied[0]["MESSAGE"]
    raised = scene.events("finding.raised", code="agent.not_running")
    assert len(raised) == 1
    scene.wait_event("finding.cleared", 40, code="agent.not_running")
    _check_contract_fields(scene.entries())
    # SIGTERM: a clean stop well within 5 s.
    t0 = time.monotonic()
    tb.systemctl("stop", DOCTOR)
    assert time.monotonic() - t0 < 5
    assert tb.show(DOCTOR, "ActiveState", "Result") == {
        "ActiveState": "inactive",
        "Result": "success",
    }


def test_killed_agent_with_restart_is_left_to_systemd(scene: Scene) -> None:
    """Restart=always: systemd brings the agent back; the doctor does not race it."""
    tb = scene.tb
    scene.setup(config(), agent_unit("always"))
    scene.start_doctor()
    old = tb.main_pid(AGENT)
    time.sleep(1.5)
    scene.kill_agent("KILL")
    wait_for(
        lambda: tb.prop(AGENT, "ActiveState") == "active" and tb.main_pid(AGENT) not in (0, old),
        15,
        what="systemd restarts the agent",
    )
    time.sleep(3)
    assert int(tb.prop(AGENT, "NRestarts")) >= 1
    assert scene.attempts("restart_agent") == []


def test_hung_agent_is_restarted(scene: Scene) -> None:
    """SIGSTOP on the agent's processes: no log progress, agent.hung, restarted."""
    tb = scene.tb
    scene.setup(config(), agent_unit("always"))
    scene.start_doctor()
    old = tb.main_pid(AGENT)
    scene.kill_agent("STOP")
    applied = scene.wait_event("action.applied", 40, action="restart_agent")
    assert applied[0]["WAAGENT_DOCTOR_CODE"] == "agent.hung"
    assert len(scene.events("finding.raised", code="agent.hung")) == 1
    new = tb.main_pid(AGENT)
    assert new not in (0, old)
    state = tb.run(["ps", "-o", "stat=", "-p", str(new)]).stdout.strip()
    assert not state.startswith("T"), state
    scene.wait_event("finding.cleared", 30, code="agent.hung")


def test_crash_loop_budget_give_up_escalation_and_doctor_restart(scene: Scene) -> None:
    """An agent that dies at every start: at most 3 restarts, one give-up, verbose logging and
    a bundle; the doctor restarted mid-way keeps its budget and announces nothing twice; once
    the agent is healthy again, Logs.Verbose goes back to the original."""
    tb = scene.tb
    dying = agent_unit(exec_start="/usr/bin/python3 -u -c 'import sys; sys.exit(1)'")
    scene.setup(config(cooldown=3.0), dying, start_agent=False)
    tb.systemctl("start", AGENT, check=False)
    first_pid = scene.start_doctor()
    wait_for(
        lambda: len(scene.attempts("restart_agent")) >= 1, 30, interval=0.3, what="1st restart"
    )
    tb.systemctl("restart", DOCTOR)
    assert tb.main_pid(DOCTOR) != first_pid
    gave_up = scene.wait_event("action.skipped", 60, action="restart_agent", gave_up="1")
    assert gave_up[0]["MESSAGE_ID"] == MESSAGE_ID_GAVE_UP
    assert "budget" in gave_up[0]["MESSAGE"]
    verbose = scene.wait_event("action.applied", 30, action="enable_verbose_logging")
    assert verbose[0]["WAAGENT_DOCTOR_CODE"] == "agent.not_running"
    conf = tb.read_bytes("/etc/waagent.conf")
    assert conf == WAAGENT_CONF.replace(b"Logs.Verbose=n", b"Logs.Verbose=y")
    scene.wait_event("action.applied", 60, action="collect_logs")
    bundles = tb.run(["find", "/var/lib/waagent-doctor/bundles", "-type", "f"]).stdout.split()
    assert len(bundles) == 1
    assert tb.run(["stat", "-c", "%a", "/var/lib/waagent-doctor/bundles"]).stdout.strip() == "700"
    time.sleep(6)  # several more cycles: nothing more happens
    assert len(scene.attempts("restart_agent")) == 3
    assert len(scene.events("action.skipped", action="restart_agent", gave_up="1")) == 1
    assert len(scene.events("finding.raised", code="agent.not_running")) == 1
    started = scene.events("doctor.started")
    assert len(started) == 2 and "agent.not_running" in started[1]["WAAGENT_DOCTOR_OPEN"]
    # The operator fixes the agent: the finding clears and verbose logging is reverted.
    tb.install_unit(AGENT, agent_unit())
    tb.systemctl("restart", AGENT)
    scene.wait_event("verbose_logging.reverted", 40)
    assert tb.read_bytes("/etc/waagent.conf") == WAAGENT_CONF
    status = tb.python("-m", "waagent_doctor", "status", "--json").stdout
    assert '"verbose_logging": null' in status


def test_dry_run_changes_nothing_and_catalog_explains(scene: Scene) -> None:
    """--dry-run: findings and `skipped (dry run)` entries, but the agent stays dead, no file
    changes; the catalog shows in journalctl -x; SIGHUP with a bad config keeps the old one."""
    tb = scene.tb
    scene.setup(config(autorestart=True), agent_unit(), args="--dry-run")
    tb.write_file(
        "/usr/lib/systemd/catalog/waagent-doctor.catalog",
        (ROOT / "systemd" / "waagent-doctor.catalog").read_bytes(),
    )
    tb.run(["journalctl", "--update-catalog"])
    pid = scene.start_doctor()
    time.sleep(1.5)
    scene.kill_agent("KILL")
    skipped = scene.wait_event("action.skipped", 30, action="restart_agent")
    assert skipped[0]["WAAGENT_DOCTOR_DRY_RUN"] == "1"
    scene.wait_event("action.skipped", 30, action="enable_autorestart")
    time.sleep(4)
    assert tb.prop(AGENT, "ActiveState") == "failed"
    assert scene.attempts("restart_agent") == [] and scene.attempts("enable_autorestart") == []
    assert len(scene.events("action.skipped", action="restart_agent")) == 1  # not every cycle
    assert tb.read_bytes("/etc/waagent.conf") == WAAGENT_CONF
    assert not tb.exists(f"/etc/systemd/system/{AGENT}.d")
    _check_contract_fields(scene.entries())
    # journalctl -x shows the catalog's explanation of the finding.
    text = tb.run(
        ["journalctl", "-x", "--no-pager", f"--unit={DOCTOR}",
         f"MESSAGE_ID={CODES['agent.not_running'].message_id}"]
    ).stdout  # fmt: skip
    assert "Subject: The Azure VM agent is not running (agent.not_running)" in text
    assert "What to do: Start the agent" in text
    # SIGHUP with an invalid file: refused with an entry, same process, old settings in force.
    tb.write_file(CONF, "interval_seconds = 0\n")
    tb.systemctl("reload", DOCTOR)
    rejected = scene.wait_event("config.rejected", 15)
    assert "interval_seconds" in rejected[0]["MESSAGE"]
    assert tb.main_pid(DOCTOR) == pid and tb.prop(DOCTOR, "ActiveState") == "active"


def test_stuck_doctor_is_killed_by_the_watchdog(scene: Scene) -> None:
    """With WatchdogSec=3s and a 10 s interval the idle loop keeps pinging; a stopped loop is
    killed by the watchdog and restarted."""
    tb = scene.tb
    scene.setup(
        config(interval=10),
        agent_unit("always"),
        extra="WatchdogSec=3s\nTimeoutAbortSec=2s\nRestartSec=1s\n",
    )
    pid = scene.start_doctor()
    time.sleep(7)  # longer than WatchdogSec, shorter than the interval
    assert tb.main_pid(DOCTOR) == pid, "a healthy idle doctor was killed"
    tb.run(["kill", "-STOP", str(pid)])
    wait_for(
        lambda: tb.prop(DOCTOR, "ActiveState") == "active" and tb.main_pid(DOCTOR) not in (0, pid),
        30,
        interval=0.3,
        what="watchdog restart",
    )
    pid1 = tb.journal(f"UNIT={DOCTOR}", since_cursor=scene.cursor)
    assert any("Watchdog timeout" in str(e.get("MESSAGE", "")) for e in pid1)
    assert int(tb.prop(DOCTOR, "NRestarts")) >= 1


def test_autorestart_dropin_installed_once(scene: Scene) -> None:
    """agent.autorestart.missing: a Restart=always drop-in under /etc, daemon-reload, verified
    by systemd; the hardened unit can do it; the finding clears and nothing is repeated."""
    tb = scene.tb
    scene.setup(config(autorestart=True), agent_unit())
    scene.start_doctor()
    applied = scene.wait_event("action.applied", 30, action="enable_autorestart")
    assert applied[0]["WAAGENT_DOCTOR_CODE"] == "agent.autorestart.missing"
    dropin = f"/etc/systemd/system/{AGENT}.d/50-waagent-doctor-restart.conf"
    assert "Restart=always" in tb.read_file(dropin)
    assert tb.prop(AGENT, "Restart") == "always"
    scene.wait_event("finding.cleared", 30, code="agent.autorestart.missing")
    time.sleep(3)
    assert len(scene.attempts("enable_autorestart")) == 1
    tb.remove(f"/etc/systemd/system/{AGENT}.d")
    tb.daemon_reload()


def test_agent_proxy_found_although_its_environ_is_unreadable(scene: Scene) -> None:
    """The hardened unit has no CAP_SYS_PTRACE, so the agent's /proc/PID/environ is EACCES to
    the doctor; the proxy is taken from the agent unit's Environment= instead, and its being
    unreachable is reported."""
    tb = scene.tb
    scene.setup(config(), agent_unit() + "Environment=https_proxy=http://127.0.0.1:9\n")
    unit = (ROOT / "systemd" / DOCTOR).read_text()
    caps = re.search(r"^CapabilityBoundingSet=(.*)$", unit, re.MULTILINE).group(1)  # type: ignore[union-attr]
    denied = tb.run_unit(
        ["cat", f"/proc/{tb.main_pid(AGENT)}/environ"], check=False, CapabilityBoundingSet=caps
    )
    assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied
    scene.start_doctor()
    [raised] = scene.wait_event("finding.raised", 30, code="network.proxy.unreachable")
    evidence = raised["WAAGENT_DOCTOR_EVIDENCE"]
    assert f"/run/systemd/system/{AGENT}:" in evidence and "127.0.0.1:9" in evidence, evidence
    assert "/proc/" not in evidence


# -- reload_extension: the guest tree of tests/data/vms/ext-vmsnapshot-failed in the container;
# under the unit /var/lib/waagent and /var/lib/waagent-doctor are separate bind mounts, so the
# move is the copy-then-remove path, not a rename.
VMSNAPSHOT_DIR = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9225.0"
TREE = "/src/tests/data/vms/ext-vmsnapshot-failed/var/lib/waagent"
HANDLER = f"/var/lib/waagent/{VMSNAPSHOT_DIR}"
QUARANTINE = "/var/lib/waagent-doctor/quarantine"


def _files(tb: Testbed, folder: str) -> dict[str, str]:
    """relative path -> sha256 of every file below a container folder."""
    out = tb.sh(f'cd "{folder}" && find . -type f -exec sha256sum {{}} + | sort -k2').stdout
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


def test_reload_extension_quarantines_the_handler_and_restarts_the_agent(scene: Scene) -> None:
    """The folder lands whole in a unique quarantine folder (recorded in state.json), the agent
    runs again with a new MainPID, one action.applied entry with the contract's fields, and no
    second reload while the finding stays open."""
    tb = scene.tb
    try:
        scene.setup(config(interval=2) + "reload_extension = true\n", agent_unit())
        tb.run(["cp", "-a", TREE, "/var/lib/"])
        before = _files(tb, HANDLER)
        assert "./status/12.status" in before
        old_pid = tb.main_pid(AGENT)
        scene.start_doctor()
        raised = scene.wait_event("finding.raised", 30, code="extension.vmsnapshot.failed")
        assert raised[0]["WAAGENT_DOCTOR_ACTION"] == "reload_extension"
        [applied] = scene.wait_event("action.applied", 60, action="reload_extension")
        assert applied["WAAGENT_DOCTOR_CODE"] == "extension.vmsnapshot.failed"
        assert applied["MESSAGE_ID"] == ACTIONS["reload_extension"].message_id
        assert applied["WAAGENT_DOCTOR_CAUSE"] == "3"
        assert applied["PRIORITY"] in {"5", "6"}
        assert not tb.exists(HANDLER)
        state = json.loads(tb.read_file("/var/lib/waagent-doctor/state.json"))
        [rec] = state["quarantined"]
        assert rec["original"] == HANDLER
        assert rec["path"].startswith(f"{QUARANTINE}/")
        assert rec["path"].endswith(f"/{VMSNAPSHOT_DIR}")
        assert f"{HANDLER} -> {rec['path']}" in applied["MESSAGE"]
        assert _files(tb, rec["path"]) == before
        leftovers = tb.run(["find", QUARANTINE, "-name", ".*partial"]).stdout.strip()
        assert leftovers == ""
        assert tb.run(["stat", "-c", "%a", QUARANTINE]).stdout.strip() == "700"
        new_pid = tb.main_pid(AGENT)
        assert tb.prop(AGENT, "ActiveState") == "active" and new_pid not in (0, old_pid)
        assert f"MainPID {new_pid}" in applied["MESSAGE"]
        time.sleep(6)  # three more cycles: the finding stays (no reinstall here), no 2nd move
        assert len(scene.attempts("reload_extension")) == 1
        _check_contract_fields(scene.entries())
    finally:
        tb.systemctl("stop", DOCTOR, AGENT, check=False)
        tb.run(["rm", "-rf", "/var/lib/waagent"])
