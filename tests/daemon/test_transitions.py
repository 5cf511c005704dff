"""Transitions: raised once, cleared once, nothing for findings that stay open."""

from __future__ import annotations

from waagent_doctor.model import CheckResult, CheckStatus, Evidence, Finding, Report
from waagent_doctor.transitions import diff


def _report(*codes: str) -> Report:
    findings = tuple(Finding.of(c, [Evidence(source="s", detail=c)]) for c in codes)
    return Report(
        generated_at="2026-01-01T00:00:00Z",
        as_of="2026-01-01T00:00:00Z",
        mode="live",
        status="critical" if findings else "ok",
        findings=findings,
        checks=(),
    )


def test_first_cycle_raises_everything() -> None:
    """With nothing open, every finding is raised."""
    t = diff({}, _report("agent.not_running", "agent.autorestart.missing"), 10.0)
    assert [f.code for f in t.raised] == ["agent.not_running", "agent.autorestart.missing"]
    assert t.cleared == ()
    assert set(t.open_after) == {"agent.not_running", "agent.autorestart.missing"}


def test_open_finding_is_not_raised_again_and_keeps_its_since() -> None:
    """A finding that stays open is neither raised nor cleared; since stays the first time."""
    first = diff({}, _report("agent.hung"), 10.0)
    second = diff(first.open_after, _report("agent.hung"), 70.0)
    assert second.raised == () and second.cleared == ()
    assert not second.changed
    assert second.open_after["agent.hung"].since == 10.0


def test_gone_finding_is_cleared_once() -> None:
    """A finding missing from the report is cleared, then forgotten."""
    first = diff({}, _report("agent.hung", "resources.cpu.high"), 10.0)
    second = diff(first.open_after, _report("resources.cpu.high"), 70.0)
    assert [o.code for o in second.cleared] == ["agent.hung"]
    third = diff(second.open_after, _report("resources.cpu.high"), 130.0)
    assert third.cleared == ()


def _with_checks(codes: tuple[str, ...], checks: tuple[CheckResult, ...]) -> Report:
    return _report(*codes).model_copy(update={"checks": checks})


def test_a_check_that_errors_does_not_clear_its_finding() -> None:
    """No answer is not a recovery: an errored check keeps its finding open, unannounced."""
    raising = CheckResult(
        name="backup_extension",
        status=CheckStatus.FINDING,
        reason="extension.vmsnapshot.failed",
        codes=("extension.vmsnapshot.failed",),
    )
    first = diff({}, _with_checks(("extension.vmsnapshot.failed",), (raising,)), 10.0)
    assert first.open_after["extension.vmsnapshot.failed"].checks == ("backup_extension",)
    broken = CheckResult(name="backup_extension", status=CheckStatus.ERROR, reason="half-written")
    second = diff(first.open_after, _with_checks((), (broken,)), 70.0)
    assert second.cleared == () and second.raised == ()
    assert second.open_after["extension.vmsnapshot.failed"].since == 10.0
    healthy = CheckResult(name="backup_extension", status=CheckStatus.OK)
    third = diff(second.open_after, _with_checks((), (healthy,)), 130.0)
    assert [o.code for o in third.cleared] == ["extension.vmsnapshot.failed"]
