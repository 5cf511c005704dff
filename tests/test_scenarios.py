"""Every VM tree under tests/data/vms gives exactly the codes it was built to show.

The table is exhaustive: a new tree without an expectation fails, and so does a check that
starts raising something extra on a tree (a healthy tree, a trap) or stops raising its code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import VMS
from waagent_doctor import cli

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "broken-vm"

HEALTHY: frozenset[str] = frozenset()
EXPECTED: dict[str, frozenset[str]] = {
    **{
        f"healthy-{d}-{g}": HEALTHY
        for d in ("ubuntu", "debian", "rhel", "sles")
        for g in ("history", "legacy")
    },
    "conf-extensions-disabled": frozenset({"agent.extensions.disabled"}),
    "conf-autoupdate-disabled": frozenset({"agent.autoupdate.disabled"}),
    "conf-trap-commented": HEALTHY,
    "conf-trap-update-latest": HEALTHY,
    "dhcp-no-245": frozenset({"dhcp.disabled"}),
    "dhcp-static-ifcfg": frozenset({"dhcp.disabled"}),
    "dhcp-static-netplan": frozenset({"dhcp.disabled"}),
    "ext-agent-outdated": frozenset({"agent.outdated"}),
    "ext-command-too-late": frozenset({"snapshot.command_too_late"}),
    "ext-freeze-failed": frozenset({"snapshot.freeze.failed"}),
    "ext-other-failed": frozenset({"extension.other.failed"}),
    "ext-repeated-failures": frozenset({"backup.repeated_failures"}),
    "ext-storage-unreachable": frozenset({"network.storage.unreachable"}),
    "ext-trap-stale-history": HEALTHY,
    "ext-trap-young-transitioning": HEALTHY,
    "ext-vmsnapshot-failed": frozenset({"extension.vmsnapshot.failed"}),
    "ext-vmsnapshot-install-failed": frozenset({"extension.vmsnapshot.failed"}),
    "ext-vmsnapshot-not-installed": frozenset({"extension.vmsnapshot.not_installed"}),
    "ext-vmsnapshot-outdated": frozenset({"extension.vmsnapshot.outdated"}),
    "ext-vmsnapshot-stuck": frozenset({"extension.vmsnapshot.stuck"}),
    "ext-vmsnapshot-stuck-no-status": frozenset({"extension.vmsnapshot.stuck"}),
    "input-xml-bomb": frozenset({"input.unreadable"}),
    "log-crash-loop": frozenset({"agent.crash_loop"}),
    "log-hostgaplugin-down": frozenset({"network.hostgaplugin.unreachable"}),
    "log-trap-crash-recovered": HEALTHY,
    "log-wireserver-down": frozenset({"network.wireserver.unreachable"}),
    "log-wireserver-recovered": HEALTHY,
    "unit-disabled-file": frozenset({"agent.disabled_by_file"}),
    "unit-dropin-restart": HEALTHY,
    "unit-no-restart": frozenset({"agent.autorestart.missing"}),
    "unit-not-installed": frozenset({"agent.not_installed"}),
}


def _check(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    rc = cli.main(["check", "--root", str(root), "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_every_tree_has_an_expectation() -> None:
    """No tree is left without an expected set of codes, and no expectation without a tree."""
    trees = {p.name for p in VMS.iterdir() if p.is_dir()}
    assert trees == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tree_gives_exactly_its_codes(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """check --root on the tree: exactly the expected codes, and the exit status they imply."""
    rc, report = _check(VMS / name, capsys)
    findings = report["findings"]
    assert isinstance(findings, list)
    codes = {f["code"] for f in findings}
    assert codes == EXPECTED[name]
    worst = max((f["severity"] for f in findings), key=["info", "warning", "critical"].index,
                default="info")  # fmt: skip
    assert rc == {"info": 0, "warning": 1, "critical": 2}[worst]
    assert report["mode"] == "offline"
    for f in findings:
        for ev in f["evidence"]:
            assert ev["source"].startswith("/"), "evidence names guest paths"
            assert str(VMS) not in ev["source"] + ev["detail"], "no host path leaks"


def test_the_demo_shows_all_four_causes(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's embedded sample shows a finding for each of the four causes."""
    rc, report = _check(EXAMPLE, capsys)
    findings = report["findings"]
    assert isinstance(findings, list)
    assert rc == 2
    assert {f["cause"] for f in findings} >= {1, 2, 3, 4}
