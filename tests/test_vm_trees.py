"""End to end: `check --root` on every healthy tree and on the demo sample, in process."""

from __future__ import annotations

import json

import pytest

from tests.vmtree import EXAMPLE, HEALTHY, VMS
from waagent_doctor import cli


@pytest.mark.parametrize("tree", sorted(HEALTHY))
def test_healthy_tree_is_ok(tree: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A healthy VM gives no finding above info and exit status 0."""
    rc = cli.main(["check", "--root", str(VMS / tree), "--json"])
    report = json.loads(capsys.readouterr().out)
    above_info = [(f["code"], f["evidence"]) for f in report["findings"] if f["severity"] != "info"]
    assert above_info == []
    assert report["status"] == "ok" and rc == 0
    assert report["mode"] == "offline"
    assert [c["name"] for c in report["checks"] if c["status"] == "error"] == []


def test_broken_vm_demo(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo sample shows every cause it was built with, and exits 2."""
    rc = cli.main(["check", "--root", str(EXAMPLE), "--json"])
    report = json.loads(capsys.readouterr().out)
    found = {f["code"] for f in report["findings"]}
    assert {
        "network.wireserver.unreachable",
        "agent.autoupdate.disabled",
        "agent.autorestart.missing",
        "extension.vmsnapshot.stuck",
        "snapshot.freeze.failed",
    } <= found
    assert {f["cause"] for f in report["findings"]} >= {1, 2, 3, 4}
    assert report["status"] == "critical" and rc == 2
    # Evidence names guest paths, never the host's.
    assert str(EXAMPLE) not in json.dumps(report["findings"])
