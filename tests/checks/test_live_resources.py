"""Resource and host checks, judged from real samples with thresholds set around them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.checks.live_support import codes, live_host, run, settings_from, systemctl_runner

AZURE_TAG = "7783-7084-3265-9085-8269-3286-77"


def _report(tmp_path: Path, allow: Any, text: str, only: set[str]) -> Any:
    host = live_host(tmp_path, systemctl_runner(tmp_path, None))
    with allow("systemctl", "sh"):
        return run(host, settings_from(text, tmp_path), only)


def test_generous_thresholds_give_no_finding(tmp_path: Path, allow_subprocess: Any) -> None:
    """Thresholds at 100% and no free-space floor: nothing to report."""
    text = (
        "[thresholds]\nsample_seconds = 0.1\ncpu_percent = 100\nmemory_percent = 100\n"
        "disk_free_percent = 0\ndisk_free_mib = 0\ninode_free_percent = 0\n"
    )
    assert codes(_report(tmp_path, allow_subprocess, text, {"resources"})) == set()


def test_impossible_thresholds_raise_every_resource_code(
    tmp_path: Path, allow_subprocess: Any
) -> None:
    """Asking for more free space than any disk has raises resources.disk.full (etc.)."""
    text = (
        "[thresholds]\nsample_seconds = 0.1\ncpu_percent = 0.0001\nmemory_percent = 0.0001\n"
        "disk_free_percent = 100\ndisk_free_mib = 0\n"
    )
    report = _report(tmp_path, allow_subprocess, text, {"resources"})
    assert "resources.disk.full" in codes(report)
    assert "resources.memory.high" in codes(report)
    disk = next(f for f in report.findings if f.code == "resources.disk.full")
    assert {e.source for e in disk.evidence} == {"/var/lib/waagent", "/var/log"}


def test_azure_asset_tag_means_azure(tmp_path: Path, allow_subprocess: Any) -> None:
    """The DMI chassis asset tag of Azure: no host.not_azure."""
    dmi = tmp_path / "sys/class/dmi/id"
    dmi.mkdir(parents=True)
    (dmi / "chassis_asset_tag").write_text(AZURE_TAG + "\n")
    assert codes(_report(tmp_path, allow_subprocess, "", {"azure_host"})) == set()


def test_other_asset_tag_is_not_azure(tmp_path: Path, allow_subprocess: Any) -> None:
    """Another tag: host.not_azure (info), naming what was read."""
    dmi = tmp_path / "sys/class/dmi/id"
    dmi.mkdir(parents=True)
    (dmi / "chassis_asset_tag").write_text("No Asset Tag\n")
    report = _report(tmp_path, allow_subprocess, "", {"azure_host"})
    assert codes(report) == {"host.not_azure"}
    assert "No Asset Tag" in report.findings[0].evidence[0].detail


def test_assume_azure_overrides_the_tag(tmp_path: Path, allow_subprocess: Any) -> None:
    """assume_azure = true: no DMI test."""
    report = _report(tmp_path, allow_subprocess, "assume_azure = true\n", {"azure_host"})
    assert codes(report) == set()
