"""The verdict: which open finding explains why backups fail (docs/verdict.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from waagent_doctor import cli
from waagent_doctor.model import Evidence, Finding
from waagent_doctor.verdict import compute

GS = "2025-09-06T08:47:16Z ERROR ExtHandler Error fetching the goal state: 6 attempts made"


def f(code: str, detail: str = "x") -> Finding:
    return Finding.of(code, [Evidence(source="/var/log/waagent.log:1", detail=detail)])


def test_healthy_is_none() -> None:
    assert compute([]) is None
    assert compute([Finding.of("host.not_azure")]) is None


def test_warnings_only_gives_the_warning() -> None:
    v = compute([f("agent.autoupdate.disabled")])
    assert v is not None and v.code == "agent.autoupdate.disabled" and v.explains == ()


def test_wireserver_explains_stuck_and_crash_loop() -> None:
    v = compute(
        [
            f("extension.vmsnapshot.stuck"),
            f("agent.crash_loop"),
            f("network.wireserver.unreachable", GS),
        ]
    )
    assert v is not None
    assert v.code == "network.wireserver.unreachable" and v.cause == 1
    assert set(v.explains) == {"extension.vmsnapshot.stuck", "agent.crash_loop"}


def test_unrelated_problems_are_not_chained() -> None:
    v = compute(
        [
            f("network.wireserver.unreachable", GS),
            f("snapshot.freeze.failed", "status=error code=122"),
        ]
    )
    assert v is not None
    assert v.code == "network.wireserver.unreachable"
    assert "snapshot.freeze.failed" not in v.explains


def test_no_goal_state_evidence_no_chain() -> None:
    v = compute([f("network.wireserver.unreachable", "connect refused"), f("agent.crash_loop")])
    assert v is not None and v.explains == ()


def test_extensions_disabled() -> None:
    v = compute([f("extension.vmsnapshot.not_installed"), f("agent.extensions.disabled")])
    assert v is not None and v.code == "agent.extensions.disabled"
    assert v.explains == ("extension.vmsnapshot.not_installed",)


def _cli_verdict(root: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    cli.main(["check", "--json", "--root", str(root)])
    return json.loads(capsys.readouterr().out)["verdict"]


def test_broken_vm_verdict_via_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    v = _cli_verdict(Path(__file__).resolve().parent.parent / "examples" / "broken-vm", capsys)
    assert v["code"] == "network.wireserver.unreachable"
    assert "extension.vmsnapshot.stuck" in v["explains"]
    assert "snapshot.freeze.failed" not in v["explains"]


def test_healthy_tree_verdict_null(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parent / "data" / "vms" / "healthy-ubuntu-history"
    assert _cli_verdict(root, capsys) is None
