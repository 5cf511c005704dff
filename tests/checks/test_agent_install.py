"""agent_install: agent.not_installed and agent.disabled_by_file, from files."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA, VMS
from waagent_doctor import cli
from waagent_doctor.config import Settings
from waagent_doctor.engine import diagnose
from waagent_doctor.host import Host
from waagent_doctor.model import CheckStatus, Report, utc_text

REDHAT_UNIT = (DATA / "walinuxagent/systemd/redhat/waagent.service").read_text()
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)


def put(root: Path, guest: str, text: str) -> Path:
    """Write a guest file under the fake root."""
    p = root / guest.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def run(root: Path) -> Report:
    """Only the agent_install check, offline, on a RHEL-like tree."""
    put(root, "/etc/os-release", 'ID="rhel"\nID_LIKE="fedora"\n')
    return diagnose(Host.offline(str(root), NOW), Settings(), only={"agent_install"})


def codes(report: Report) -> list[str]:
    """Finding codes of a report."""
    return [f.code for f in report.findings]


def test_nothing_installed(tmp_path: Path) -> None:
    """No unit under either name and no waagent executable."""
    report = run(tmp_path)
    assert codes(report) == ["agent.not_installed"]
    details = " ".join(e.detail for e in report.findings[0].evidence)
    assert "waagent.service" in details and "/usr/sbin/waagent" in details


def test_executable_without_unit_is_installed(tmp_path: Path) -> None:
    """A waagent script alone (SysV or hand install) is not 'not installed'."""
    put(tmp_path, "/usr/sbin/waagent", "#!/usr/bin/python3\n")
    assert codes(run(tmp_path)) == []


def test_unit_without_executable_is_installed(tmp_path: Path) -> None:
    """A unit alone is an install (perhaps broken, which the live checks see)."""
    put(tmp_path, "/usr/lib/systemd/system/waagent.service", REDHAT_UNIT)
    assert codes(run(tmp_path)) == []


def test_masked_unit_is_not_reported_as_not_installed(tmp_path: Path) -> None:
    """Masked is installed-but-blocked: agent.not_installed would mislead."""
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    os.symlink("/dev/null", tmp_path / "etc/systemd/system/waagent.service")
    report = run(tmp_path)
    assert codes(report) == [] and report.checks[0].status is CheckStatus.OK


def test_disable_file_with_mtime_evidence(tmp_path: Path) -> None:
    """disable_agent: critical finding naming the file and when it appeared."""
    put(tmp_path, "/usr/lib/systemd/system/waagent.service", REDHAT_UNIT)
    p = put(tmp_path, "/var/lib/waagent/disable_agent", "")
    os.utime(p, (1_764_151_200, 1_764_151_200))
    report = run(tmp_path)
    assert codes(report) == ["agent.disabled_by_file"]
    (ev,) = report.findings[0].evidence
    assert ev.source == "/var/lib/waagent/disable_agent"
    assert utc_text(datetime.fromtimestamp(1_764_151_200, tz=timezone.utc)) in ev.detail


def test_disable_directory_counts_too(tmp_path: Path) -> None:
    """The agent tests os.path.exists: a directory of that name disables it as well."""
    put(tmp_path, "/usr/lib/systemd/system/waagent.service", REDHAT_UNIT)
    (tmp_path / "var/lib/waagent/disable_agent").mkdir(parents=True)
    assert codes(run(tmp_path)) == ["agent.disabled_by_file"]


# -- end to end on the scenario trees ---------------------------------------------------------


def cli_check(tree: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    """`waagent-doctor check --root TREE --json` in-process: exit status and the report."""
    rc = cli.main(["check", "--root", str(tree), "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_scenario_unit_disabled_file(capsys: pytest.CaptureFixture[str]) -> None:
    """disable_agent present: agent.disabled_by_file, critical, exit 2."""
    rc, report = cli_check(VMS / "unit-disabled-file", capsys)
    found = {f["code"]: f for f in report["findings"]}
    assert found["agent.disabled_by_file"]["severity"] == "critical"
    assert found["agent.disabled_by_file"]["cause"] == 2
    assert report["mode"] == "offline"
    assert rc == 2


def test_scenario_unit_not_installed(capsys: pytest.CaptureFixture[str]) -> None:
    """Only os-release: agent.not_installed, critical, exit 2; no autorestart noise."""
    rc, report = cli_check(VMS / "unit-not-installed", capsys)
    found = [f["code"] for f in report["findings"]]
    assert "agent.not_installed" in found
    assert "agent.autorestart.missing" not in found
    assert rc == 2
