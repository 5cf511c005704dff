"""backup_extension judges only the newest goal state and names the most specific cause."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Optional

import pytest

from tests.vmtree import AS_OF, VMS, VMSNAPSHOT, build, scenario
from waagent_doctor.config import Settings, Thresholds
from waagent_doctor.engine import diagnose
from waagent_doctor.host import Host
from waagent_doctor.model import CheckResult, Report

HDIR = f"/var/lib/waagent/{VMSNAPSHOT}-1.0.9225.0"


def run(root: Path, *, as_of: datetime = AS_OF, settings: Optional[Settings] = None) -> Report:
    """Run only this check, offline, on a tree."""
    return diagnose(
        Host.offline(str(root), as_of), settings or Settings(), only={"backup_extension"}
    )


def codes(report: Report) -> list[str]:
    """Finding codes of a report."""
    return sorted(f.code for f in report.findings)


def result(report: Report) -> CheckResult:
    """The check's own result."""
    (res,) = [c for c in report.checks if c.name == "backup_extension"]
    return res


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        ("healthy-ubuntu-history", []),
        ("healthy-debian-legacy", []),
        ("healthy-rhel-history", []),
        ("healthy-sles-legacy", []),
        ("ext-vmsnapshot-not-installed", ["extension.vmsnapshot.not_installed"]),
        ("ext-vmsnapshot-failed", ["extension.vmsnapshot.failed"]),
        ("ext-vmsnapshot-install-failed", ["extension.vmsnapshot.failed"]),
        ("ext-vmsnapshot-stuck", ["extension.vmsnapshot.stuck"]),
        ("ext-vmsnapshot-stuck-no-status", ["extension.vmsnapshot.stuck"]),
        ("ext-vmsnapshot-outdated", ["extension.vmsnapshot.outdated"]),
        ("ext-storage-unreachable", ["network.storage.unreachable"]),
        ("ext-freeze-failed", ["snapshot.freeze.failed"]),
        ("ext-command-too-late", ["snapshot.command_too_late"]),
        ("ext-repeated-failures", ["backup.repeated_failures"]),
        ("ext-trap-stale-history", []),
        ("ext-trap-young-transitioning", []),
    ],
)
def test_static_trees(tree: str, expected: list[str]) -> None:
    """Each scenario tree raises exactly its code; traps and healthy trees raise none."""
    report = run(VMS / tree)
    assert codes(report) == expected
    assert result(report).status.value == ("finding" if expected else "ok")


def test_storage_evidence_names_guest_status_and_scrubs_sas() -> None:
    """Evidence names the guest status path with status, code and a SAS-free message."""
    report = run(VMS / "ext-storage-unreachable")
    (ev,) = report.findings[0].evidence
    assert ev.source == f"{HDIR}/status/12.status"
    assert ev.detail.startswith("status=error code=76 message=Enable failed")
    assert "SECRETSIG" not in ev.detail


def test_specific_code_replaces_generic(tmp_path: Path) -> None:
    """Code 76 with three failures in a row: storage and repeated failures, never the generic."""
    tree = build(tmp_path)
    for i, seq in enumerate((12, 11, 10)):
        tree.vmsnapshot(
            seq,
            "error",
            76,
            "FailedRetryableSnapshotFailedNoNetwork, ",
            AS_OF - timedelta(days=i, hours=11),
        )
    assert codes(run(tmp_path)) == ["backup.repeated_failures", "network.storage.unreachable"]


def test_repeated_failures_threshold_from_settings(tmp_path: Path) -> None:
    """N comes from settings.thresholds.repeated_failures."""
    tree = build(tmp_path)
    for i, seq in enumerate((12, 11)):
        tree.vmsnapshot(seq, "error", 2, "Enable failed", AS_OF - timedelta(days=i, hours=11))
    assert codes(run(tmp_path)) == ["extension.vmsnapshot.failed"]
    two = Settings(thresholds=Thresholds(repeated_failures=2))
    assert codes(run(tmp_path, settings=two)) == ["backup.repeated_failures"]


def test_stuck_threshold_and_as_of(tmp_path: Path) -> None:
    """Transitioning is stuck only past extension_stuck_minutes, measured at as_of."""
    tree = build(tmp_path)
    tree.vmsnapshot(12, "transitioning", 0, "T:S doing snapshot", AS_OF - timedelta(minutes=60))
    assert codes(run(tmp_path)) == []
    assert codes(run(tmp_path, as_of=AS_OF + timedelta(minutes=31))) == [
        "extension.vmsnapshot.stuck"
    ]
    quick = Settings(thresholds=Thresholds(extension_stuck_minutes=30))
    assert codes(run(tmp_path, settings=quick)) == ["extension.vmsnapshot.stuck"]


@pytest.mark.parametrize(
    ("fixture_name", "words"),
    [
        ("sample-status-very-large.json", "too large"),
        ("sample-status-invalid-json-format.json", "not valid JSON"),
    ],
)
def test_status_the_agent_rejects_is_a_failure(
    tmp_path: Path, fixture_name: str, words: str
) -> None:
    """A status file the agent itself rejects (too large, not JSON) is reported as a failure."""
    build(tmp_path)
    src = (
        Path(__file__).resolve().parents[1]
        / "data/walinuxagent/var_lib_waagent/handler/status"
        / fixture_name
    )
    (tmp_path / HDIR.lstrip("/") / "status/12.status").write_bytes(src.read_bytes())
    report = run(tmp_path)
    assert codes(report) == ["extension.vmsnapshot.failed"]
    assert any(words in ev.detail for ev in report.findings[0].evidence)


def test_handler_state_not_enabled_and_young_goal_state(tmp_path: Path) -> None:
    """HandlerState Installed is not_installed, but not while the goal state is still young."""
    tree = build(tmp_path)
    tree.write(f"{HDIR}/config/HandlerState", "Installed")
    report = run(tmp_path)
    assert codes(report) == ["extension.vmsnapshot.not_installed"]
    assert any("HandlerState=Installed" in ev.detail for ev in report.findings[0].evidence)
    young = AS_OF - timedelta(hours=12) + timedelta(minutes=10)
    assert codes(run(tmp_path, as_of=young)) == []


def test_failed_upgrade(tmp_path: Path) -> None:
    """HandlerState FailedUpgrade is a failure of the extension."""
    tree = build(tmp_path)
    tree.write(f"{HDIR}/config/HandlerState", "FailedUpgrade")
    assert codes(run(tmp_path)) == ["extension.vmsnapshot.failed"]


def test_freeze_in_log_cleared_by_later_success(tmp_path: Path) -> None:
    """Freeze words in extension.log count only after the last successful snapshot."""
    tree = build(tmp_path)
    log = f"/var/log/azure/{VMSNAPSHOT}/extension.log"
    before = (AS_OF - timedelta(hours=13)).strftime("%Y-%m-%d %H:%M:%S.%f")
    tree.write(log, tree.read(log) + f"{before} [x] [Error] T:S freeze failed on mount /data\n")
    assert codes(run(tmp_path)) == []
    after = (AS_OF - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    tree.write(log, tree.read(log) + f"{after} [x] [Error] FsFreezeTimeout on mount /data\n")
    report = run(tmp_path)
    assert codes(report) == ["snapshot.freeze.failed"]
    assert report.findings[0].evidence[0].source.startswith(log + ":")


def test_not_requested(tmp_path: Path) -> None:
    """No request and no handler: skipped with a reason."""
    build(tmp_path, with_vmsnapshot=False)
    res = result(run(tmp_path))
    assert res.status.value == "skipped" and "not requested" in res.reason


def test_legacy_generation_failure(tmp_path: Path) -> None:
    """Legacy goal-state files drive the same diagnosis."""
    tree = build(tmp_path, "sles", "legacy")
    tree.vmsnapshot(12, "error", 122, "FailedRetryableFsFreezeTimeout", AS_OF - timedelta(hours=11))
    assert codes(run(tmp_path)) == ["snapshot.freeze.failed"]


def test_unreadable_goal_state(tmp_path: Path) -> None:
    """A hostile ExtensionsConfig.xml gives input.unreadable and a check error, not a crash."""
    tree = build(tmp_path)
    folder = sorted(tree.host("/var/lib/waagent/history").iterdir())[-1]
    (folder / "ExtensionsConfig.xml").write_text(
        '<!DOCTYPE x [<!ENTITY a SYSTEM "file:///etc/passwd">]><Extensions>&a;</Extensions>'
    )
    report = run(tmp_path)
    assert codes(report) == ["input.unreadable"]
    assert result(report).status.value == "error"


def test_scenario_builder_matches_static_tree(tmp_path: Path) -> None:
    """The builder still produces the committed scenario tree (same files, same bytes)."""
    scenario("ext-freeze-failed", tmp_path)
    static = VMS / "ext-freeze-failed"
    built = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    stored = {p.relative_to(static) for p in static.rglob("*") if p.is_file()} - {Path("README.md")}
    assert built == stored
    for rel in built:
        assert (tmp_path / rel).read_bytes() == (static / rel).read_bytes(), rel


def test_requested_status_older_than_many_newer_ones(tmp_path: Path) -> None:
    """The requested seqNo's status is read even when more than 20 newer status files exist."""
    tree = build(tmp_path)
    for seq in range(13, 40):
        tree.vmsnapshot(seq, "success", 1, "", AS_OF - timedelta(hours=11))
    tree.vmsnapshot(
        12, "error", 402, "FailedGuestAgentInvokedCommandTooLate", AS_OF - timedelta(hours=11)
    )
    assert codes(run(tmp_path)) == ["snapshot.command_too_late"]


def test_requested_status_unreadable_is_not_stuck(tmp_path: Path) -> None:
    """A FIFO as the requested status file: input.unreadable, not a claim that it is missing."""
    build(tmp_path)
    status = tmp_path / HDIR.lstrip("/") / "status/12.status"
    status.unlink()
    os.mkfifo(status)
    report = run(tmp_path)
    assert codes(report) == ["input.unreadable"]
    assert report.findings[0].evidence[0].source == f"{HDIR}/status/12.status"
