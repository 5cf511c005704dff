"""other_extensions flags other handlers that failed or hang, only for the newest goal state."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Optional

from tests.vmtree import AS_OF, CUSTOMSCRIPT, VMS, build, simple_status
from waagent_doctor.config import Settings, Thresholds
from waagent_doctor.engine import diagnose
from waagent_doctor.host import Host
from waagent_doctor.model import Report

CSE = f"/var/lib/waagent/{CUSTOMSCRIPT}-2.1.13"


def run(root: Path, *, as_of: datetime = AS_OF, settings: Optional[Settings] = None) -> Report:
    """Run only this check, offline."""
    return diagnose(
        Host.offline(str(root), as_of), settings or Settings(), only={"other_extensions"}
    )


def codes(report: Report) -> list[str]:
    """Finding codes of a report."""
    return sorted(f.code for f in report.findings)


def test_static_trees() -> None:
    """The ext-other-failed tree raises it; healthy trees do not."""
    report = run(VMS / "ext-other-failed")
    assert codes(report) == ["extension.other.failed"]
    details = [ev.detail for ev in report.findings[0].evidence]
    assert details[0].startswith("status=NotReady code=1009")
    assert details[1].startswith("status=error code=1 message=Enable failed")
    for tree in ("healthy-ubuntu-history", "healthy-rhel-legacy", "ext-vmsnapshot-failed"):
        assert codes(run(VMS / tree)) == [], tree


def test_unresponsive_handler(tmp_path: Path) -> None:
    """HandlerStatus Unresponsive (heartbeat too old) is a failure."""
    tree = build(tmp_path)
    tree.write(
        f"{CSE}/config/HandlerStatus",
        '{"status": "Unresponsive", "code": 0, "message": "Extension heartbeat is not responsive"}',
    )
    report = run(tmp_path)
    assert codes(report) == ["extension.other.failed"]
    assert "Unresponsive" in report.findings[0].evidence[0].detail


def test_transitioning_threshold(tmp_path: Path) -> None:
    """Transitioning counts only past other_extension_stuck_minutes."""
    tree = build(tmp_path)
    when = AS_OF - timedelta(minutes=45)
    tree.set_status(
        CUSTOMSCRIPT,
        "2.1.13",
        4,
        simple_status(CUSTOMSCRIPT, "transitioning", 0, "running", when),
        when,
    )
    assert codes(run(tmp_path)) == []
    quick = Settings(thresholds=Thresholds(other_extension_stuck_minutes=30))
    assert codes(run(tmp_path, settings=quick)) == ["extension.other.failed"]


def test_leftover_handler_not_in_goal_state(tmp_path: Path) -> None:
    """A failed handler the newest goal state no longer asks for is not judged."""
    tree = build(tmp_path)
    d = "/var/lib/waagent/Microsoft.OSTCExtensions.VMAccessForLinux-1.5.11"
    tree.write(f"{d}/config/HandlerState", "Enabled")
    tree.write(
        f"{d}/config/HandlerStatus",
        '{"status": "NotReady", "code": 1, "message": "Non-zero exit code: 1"}',
    )
    assert codes(run(tmp_path)) == []


def test_no_other_extension(tmp_path: Path) -> None:
    """Only the backup extension requested: skipped with a reason."""
    tree = build(tmp_path)
    tree.remove(CSE)
    folder = sorted(tree.host("/var/lib/waagent/history").iterdir())[-1]
    text = (folder / "ExtensionsConfig.xml").read_text()
    (folder / "ExtensionsConfig.xml").write_text(
        text.replace(f'name="{CUSTOMSCRIPT}"', 'name="Gone.Extension"')
    )
    (res,) = run(tmp_path).checks
    assert res.status.value == "skipped"
