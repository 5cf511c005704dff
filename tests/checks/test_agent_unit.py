"""agent_unit: agent.autorestart.missing from the unit and drop-ins on disk."""

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
from waagent_doctor.model import CheckStatus, Report

UBUNTU_UNIT = (DATA / "walinuxagent/systemd/ubuntu/walinuxagent.service").read_text()
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
DEBIAN_LIKE = "[Service]\nExecStart=/usr/sbin/waagent -daemon\n"


def put(root: Path, guest: str, text: str) -> None:
    """Write a guest file under the fake root."""
    p = root / guest.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def run(root: Path) -> Report:
    """Only the agent_unit check, offline on the tree."""
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/os-release").write_text("ID=ubuntu\nID_LIKE=debian\n")
    return diagnose(Host.offline(str(root), NOW), Settings(), only={"agent_unit"})


def codes(report: Report) -> list[str]:
    """Finding codes of a report."""
    return [f.code for f in report.findings]


def test_no_restart_raises_with_the_files_read(tmp_path: Path) -> None:
    """No Restart= anywhere: the finding names the fragment and says the default is no."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", DEBIAN_LIKE)
    report = run(tmp_path)
    (finding,) = report.findings
    assert finding.code == "agent.autorestart.missing"
    assert finding.action == "enable_autorestart"
    (ev,) = finding.evidence
    assert ev.source == "/lib/systemd/system/walinuxagent.service"
    assert "no Restart=" in ev.detail


@pytest.mark.parametrize("value", ["no", "on-success", "on-abnormal", "on-abort", "on-watchdog"])
def test_values_that_do_not_restart_after_a_crash(tmp_path: Path, value: str) -> None:
    """A Python traceback exits 1: only always/on-failure bring the agent back."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", DEBIAN_LIKE + f"Restart={value}\n")
    report = run(tmp_path)
    assert codes(report) == ["agent.autorestart.missing"]
    (ev,) = report.findings[0].evidence
    assert ev.source == "/lib/systemd/system/walinuxagent.service:3"
    assert f"Restart={value}" in ev.detail


@pytest.mark.parametrize("value", ["always", "on-failure"])
def test_values_that_restart_after_a_crash(tmp_path: Path, value: str) -> None:
    """always and on-failure: no finding, check ok."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", DEBIAN_LIKE + f"Restart={value}\n")
    report = run(tmp_path)
    assert codes(report) == []
    assert report.checks[0].status is CheckStatus.OK


def test_dropin_with_restart_always_means_no_finding(tmp_path: Path) -> None:
    """Trap: the fragment lacks Restart= but a drop-in supplies it."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", DEBIAN_LIKE)
    put(
        tmp_path,
        "/etc/systemd/system/walinuxagent.service.d/override.conf",
        "[Service]\nRestart=always\n",
    )
    assert codes(run(tmp_path)) == []


def test_later_dropin_restart_no_overrides(tmp_path: Path) -> None:
    """Trap: Restart=always in the unit, Restart=no in a later drop-in -> finding there."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", UBUNTU_UNIT)
    put(
        tmp_path, "/run/systemd/system/walinuxagent.service.d/99-no.conf", "[Service]\nRestart=no\n"
    )
    report = run(tmp_path)
    assert codes(report) == ["agent.autorestart.missing"]
    assert report.findings[0].evidence[0].source == (
        "/run/systemd/system/walinuxagent.service.d/99-no.conf:2"
    )


def test_restart_only_in_a_comment_raises(tmp_path: Path) -> None:
    """Trap: `#Restart=always` is a comment, not a setting."""
    put(
        tmp_path,
        "/lib/systemd/system/walinuxagent.service",
        DEBIAN_LIKE + "#Restart=always\n",
    )
    assert codes(run(tmp_path)) == ["agent.autorestart.missing"]


def test_etc_override_of_whole_unit_without_restart_raises(tmp_path: Path) -> None:
    """Trap: an /etc copy of the unit without Restart= hides the vendor's Restart=always."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", UBUNTU_UNIT)
    put(tmp_path, "/etc/systemd/system/walinuxagent.service", DEBIAN_LIKE)
    report = run(tmp_path)
    assert codes(report) == ["agent.autorestart.missing"]
    assert report.findings[0].evidence[0].source == "/etc/systemd/system/walinuxagent.service"


def test_masked_unit_is_skipped_with_the_reason(tmp_path: Path) -> None:
    """Masked: no offline code fits; the check says so and raises nothing."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", UBUNTU_UNIT)
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    os.symlink("/dev/null", tmp_path / "etc/systemd/system/walinuxagent.service")
    report = run(tmp_path)
    assert codes(report) == []
    assert report.checks[0].status is CheckStatus.SKIPPED
    assert "masked" in report.checks[0].reason


def test_no_unit_is_skipped(tmp_path: Path) -> None:
    """Without a unit there is no Restart= to judge (agent_install judges the absence)."""
    report = run(tmp_path)
    assert codes(report) == [] and report.checks[0].status is CheckStatus.SKIPPED


def test_unreadable_dropin_is_an_error_and_input_unreadable(tmp_path: Path) -> None:
    """A drop-in that is a FIFO: the check errors, input.unreadable names it, no guess."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", DEBIAN_LIKE)
    d = tmp_path / "etc/systemd/system/walinuxagent.service.d"
    d.mkdir(parents=True)
    os.mkfifo(d / "10-x.conf")
    report = run(tmp_path)
    assert report.checks[0].status is CheckStatus.ERROR
    assert codes(report) == ["input.unreadable"]
    assert report.findings[0].evidence[0].source.endswith("walinuxagent.service.d/10-x.conf")


# -- end to end on the scenario trees ---------------------------------------------------------


def cli_check(tree: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    """`waagent-doctor check --root TREE --json` in-process: exit status and the report."""
    rc = cli.main(["check", "--root", str(tree), "--json"])
    out = capsys.readouterr().out
    return rc, json.loads(out)


def exit_for(report: dict[str, Any]) -> int:
    """The contract's exit status for a report's worst finding."""
    ranks = {"info": 0, "warning": 1, "critical": 2}
    findings = report["findings"]
    assert isinstance(findings, list)
    return max((ranks[f["severity"]] for f in findings), default=0)


def test_scenario_unit_no_restart(capsys: pytest.CaptureFixture[str]) -> None:
    """The Debian package's unit has no Restart=: autorestart.missing (warning), exit >= 1."""
    rc, report = cli_check(VMS / "unit-no-restart", capsys)
    found = {f["code"]: f for f in report["findings"]}
    assert "agent.autorestart.missing" in found
    assert found["agent.autorestart.missing"]["evidence"][0]["source"] == (
        "/usr/lib/systemd/system/walinuxagent.service"
    )
    assert "agent.not_installed" not in found
    assert rc == exit_for(report) and rc >= 1


def test_scenario_unit_dropin_restart(capsys: pytest.CaptureFixture[str]) -> None:
    """Same unit plus an /etc drop-in with Restart=always: no autorestart finding."""
    rc, report = cli_check(VMS / "unit-dropin-restart", capsys)
    found = [f["code"] for f in report["findings"]]
    assert "agent.autorestart.missing" not in found
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["agent_unit"]["status"] == "ok"
    assert rc == exit_for(report)
