"""network_log: the agent's latest word on the WireServer and the HostGAPlugin decides."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA, VMS
from waagent_doctor import cli
from waagent_doctor.config import Settings, from_mapping
from waagent_doctor.engine import diagnose
from waagent_doctor.host import Host
from waagent_doctor.model import Report

FIXTURE = DATA / "walinuxagent" / "logs" / "waagent.log.examples_from_agent_log_py.log"
AS_OF = datetime(2025, 9, 6, 12, 0, 0, tzinfo=timezone.utc)
WIRE = "network.wireserver.unreachable"
HGAP = "network.hostgaplugin.unreachable"


def real(marker: str, minutes_ago: float) -> str:
    """The agent's real line containing marker, re-dated minutes_ago before AS_OF."""
    line = next(x for x in FIXTURE.read_text().splitlines() if marker in x)
    when = AS_OF - timedelta(minutes=minutes_ago)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + " " + line.split(" ", 1)[1]


def info(msg: str, minutes_ago: float) -> str:
    when = AS_OF - timedelta(minutes=minutes_ago)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + f" INFO ExtHandler ExtHandler {msg}"


def run(tmp_path: Path, lines: list[str], settings: Settings | None = None) -> Report:
    log = tmp_path / "var" / "log" / "waagent.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("\n".join(lines) + "\n")
    host = Host.offline(str(tmp_path), AS_OF)
    return diagnose(host, settings or Settings(), only={"network_log"})


def codes(report: Report) -> set[str]:
    return {f.code for f in report.findings}


WIRE_TIMEOUT = "GET http://168.63.129.16/machine/ -- IOError timed out -- 6 attempts made"
WIRE_RESET = "Connection reset by peer -- 6 attempts"
HGAP_HEALTH = ":32526/health -- IOError timed out"
HEARTBEAT = (
    "[HEARTBEAT] Agent WALinuxAgent-2.9.1.1 is running as the goal state agent [DEBUG "
    "HeartbeatCounter: 4;HeartbeatId: 1C0B6C5A;DroppedPackets: 0;UpdateGSErrors: 0;"
    "AutoUpdate: 1;UpdateMode: SelfUpdate;]"
)


@pytest.mark.parametrize("marker", [WIRE_TIMEOUT, WIRE_RESET])
def test_wireserver_failure_as_latest_word_raises(tmp_path: Path, marker: str) -> None:
    """A goal-state fetch that timed out or was reset, with nothing after it, raises."""
    report = run(tmp_path, [info("Run daemon", 120), real(marker, 30)])
    (finding,) = report.findings
    assert finding.code == WIRE and finding.cause == 1
    (ev,) = finding.evidence
    assert ev.source == "/var/log/waagent.log:2"
    assert "IOError" in ev.detail and len(ev.detail) <= 300
    assert report.checks[0].status.value == "finding"


@pytest.mark.parametrize(
    "success",
    [
        "Fetching the goal state recovered from previous errors. Fetched etag_1384893241",
        "ProcessExtensionsGoalState completed [etag_13848932411473871259 4082 ms]",
        "Fetching new goal state [incarnation 2]",
        HEARTBEAT,
    ],
)
def test_error_followed_by_recovery_does_not_raise(tmp_path: Path, success: str) -> None:
    """The trap: errors earlier in the window, then a success: the latest word is success."""
    report = run(
        tmp_path,
        [real(WIRE_TIMEOUT, 300), real(WIRE_RESET, 200), info(success, 100)],
    )
    assert codes(report) == set()
    assert report.checks[0].status.value == "ok"


def test_recovery_followed_by_new_errors_raises(tmp_path: Path) -> None:
    """Recovered, then failing again: raised, with the new failures as evidence."""
    report = run(
        tmp_path,
        [
            real(WIRE_TIMEOUT, 300),
            info("Fetching the goal state recovered from previous errors.", 200),
            real(WIRE_RESET, 50),
            real(WIRE_TIMEOUT, 10),
        ],
    )
    (finding,) = report.findings
    assert finding.code == WIRE
    assert [e.source for e in finding.evidence] == [
        "/var/log/waagent.log:3",
        "/var/log/waagent.log:4",
    ]


def test_failure_older_than_the_window_is_ignored(tmp_path: Path) -> None:
    """A failure 30 hours ago is outside the 24-hour look-back."""
    report = run(tmp_path, [real(WIRE_TIMEOUT, 30 * 60), info("Run daemon", 5)])
    assert codes(report) == set()


def test_lookback_is_configurable(tmp_path: Path) -> None:
    """thresholds.lookback_hours widens the window."""
    settings = from_mapping({"thresholds": {"lookback_hours": 48}})
    report = run(tmp_path, [real(WIRE_TIMEOUT, 30 * 60), info("Run daemon", 5)], settings)
    assert codes(report) == {WIRE}


def test_hostgaplugin_health_timeout_raises_hostgaplugin_only(tmp_path: Path) -> None:
    """A :32526 health check timeout is the HostGAPlugin, not the WireServer."""
    report = run(tmp_path, [real(HGAP_HEALTH, 20)])
    assert codes(report) == {HGAP}
    assert report.findings[0].severity.value == "warning"


def test_vmsettings_timeout_is_the_hostgaplugin(tmp_path: Path) -> None:
    """'GET vmSettings ...: Timeout' (no URL) is the HostGAPlugin."""
    report = run(tmp_path, [real("eTag: 9757461589808963322]: Timeout", 20)])
    assert codes(report) == {HGAP}


def test_hostgaplugin_cleared_by_new_vmsettings(tmp_path: Path) -> None:
    """Fetched new vmSettings after the failure clears the HostGAPlugin finding."""
    ok = "Fetched new vmSettings [HostGAPlugin correlation ID: b746e0ec eTag: 1535 source: Fabric]"
    report = run(tmp_path, [real(HGAP_HEALTH, 60), info(ok, 10)])
    assert codes(report) == set()


def test_host_plugin_heartbeat_reporting_a_wireserver_timeout(tmp_path: Path) -> None:
    """SendHostPluginHeartbeat failing on /machine/ (port 80) is about the WireServer."""
    report = run(tmp_path, [real("[Wireserver Exception] [HttpError] [HTTP Failed] GET", 0)])
    # The fixture has two such lines; the first is an 'Error fetching the goal state'.
    assert codes(report) == {WIRE}
    line = "SendHostPluginHeartbeat: [ProtocolError] [Wireserver Exception]"
    report = run(tmp_path, [real(line, 0)])
    assert codes(report) == {WIRE}


@pytest.mark.parametrize(
    "marker",
    [
        # Answers with a status code: the endpoint was reached.
        "[HTTP Retry] GET http://168.63.129.16:32526/extensionArtifact -- Status Code 502",
        "[ResourceGoneError] [HTTP Failed] [410: Gone] The page you requested",
        "[403: Forbidden]",
        # A blob URL (Azure Storage), not the HostGAPlugin, even though it ends in vmSettings.
        "MainThread LogCollector Fetch failed",
        # systemctl's D-Bus said 'Connection reset by peer': nothing to do with the network.
        "(Failed to get properties: Connection reset by peer)",
    ],
)
def test_lines_that_are_not_unreachability(tmp_path: Path, marker: str) -> None:
    """Real failures that do not mean an endpoint cannot be reached raise nothing."""
    assert codes(run(tmp_path, [real(marker, 10)])) == set()


def test_configured_wireserver_address_still_matches(tmp_path: Path) -> None:
    """Another WireServer address (configured) is matched by the URL and the goal-state text."""
    line = info(
        "Error fetching the goal state: [ProtocolError] [Wireserver Exception] [HttpError] "
        "[HTTP Failed] GET http://10.0.0.4/machine/ -- IOError timed out -- 6 attempts made",
        5,
    )
    assert codes(run(tmp_path, [line])) == {WIRE}


def test_older_agent_format_giving_up(tmp_path: Path) -> None:
    """The 2.2.x slash format ('ProtocolError processing goal state, giving up') raises."""
    when = (AS_OF - timedelta(minutes=3)).strftime("%Y/%m/%d %H:%M:%S.%f")
    line = (
        f"{when} ERROR ExtHandler ProtocolError processing goal state, giving up "
        "[[ProtocolError] [Wireserver Exception] [HttpError] [HTTP Failed] "
        "GET http://168.63.129.16/machine/?comp=goalstate -- IOError timed out -- 6 attempts made]"
    )
    assert codes(run(tmp_path, [line])) == {WIRE}


def test_extension_lines_are_not_the_agents_word(tmp_path: Path) -> None:
    """An extension's own line (no level) saying timeout does not count."""
    when = (AS_OF - timedelta(minutes=3)).strftime("%Y/%m/%d %H:%M:%S")
    line = f"{when} [Some.Ext-1.0] GET http://168.63.129.16/machine/ -- IOError timed out"
    assert codes(run(tmp_path, [line])) == set()


def test_missing_log_skips(tmp_path: Path) -> None:
    """No agent log: the check is skipped."""
    (tmp_path / "etc").mkdir()
    report = diagnose(Host.offline(str(tmp_path), AS_OF), Settings(), only={"network_log"})
    assert report.checks[0].status.value == "skipped"


def test_fifo_log_is_an_error_with_input_unreadable(tmp_path: Path) -> None:
    """A FIFO in place of waagent.log: check error and input.unreadable, no hang."""
    (tmp_path / "var" / "log").mkdir(parents=True)
    os.mkfifo(tmp_path / "var" / "log" / "waagent.log")
    report = diagnose(Host.offline(str(tmp_path), AS_OF), Settings(), only={"network_log"})
    assert report.checks[0].status.value == "error"
    assert codes(report) == {"input.unreadable"}


# -- end to end: the command line on scenario trees -----------------------------------------------
def cli_check(vm: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    status = cli.main(["check", "--root", str(VMS / vm), "--json"])
    return status, json.loads(capsys.readouterr().out)


def test_cli_wireserver_down(capsys: pytest.CaptureFixture[str]) -> None:
    """`check --root` on a VM whose agent last failed to reach the WireServer: critical, exit 2."""
    status, report = cli_check("log-wireserver-down", capsys)
    assert status == 2
    assert report["mode"] == "offline" and report["status"] == "critical"
    # --as-of defaults to the newest record of the agent log.
    assert report["as_of"] == "2025-09-06T09:14:31Z"
    found = {f["code"]: f for f in report["findings"]}
    assert found[WIRE]["cause"] == 1 and found[WIRE]["severity"] == "critical"
    sources = [e["source"] for e in found[WIRE]["evidence"]]
    assert sources[-1] == "/var/log/waagent.log:13"
    assert all(s.startswith("/var/log/waagent.log:") for s in sources)
    checks = {c["name"]: c["status"] for c in report["checks"]}
    assert checks["network_log"] == "finding" and checks["agent_log"] == "ok"


def test_cli_wireserver_recovered(capsys: pytest.CaptureFixture[str]) -> None:
    """The same VM after 'recovered from previous errors': nothing raised, exit 0."""
    status, report = cli_check("log-wireserver-recovered", capsys)
    assert report["findings"] == []
    assert status == 0 and report["status"] == "ok"
    checks = {c["name"]: c["status"] for c in report["checks"]}
    assert checks["network_log"] == "ok" and checks["agent_log"] == "ok"


def test_cli_as_of_before_the_recovery_sees_the_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--as-of before the recovery record: the failure was the latest word then."""
    status = cli.main(
        [
            "check",
            "--root",
            str(VMS / "log-wireserver-recovered"),
            "--json",
            "--as-of",
            "2025-09-06T09:20:00Z",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert status == 2
    assert WIRE in {f["code"] for f in report["findings"]}
