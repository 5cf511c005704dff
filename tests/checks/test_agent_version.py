"""agent_version compares the goal-state agent with the minimum and the offered family version."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from tests.vmtree import AS_OF, VMS, build
from waagent_doctor.config import Settings, Thresholds
from waagent_doctor.engine import diagnose
from waagent_doctor.host import Host
from waagent_doctor.model import Report


def run(root: Path, settings: Optional[Settings] = None) -> Report:
    """Run only this check, offline."""
    return diagnose(Host.offline(str(root), AS_OF), settings or Settings(), only={"agent_version"})


def codes(report: Report) -> list[str]:
    """Finding codes of a report."""
    return sorted(f.code for f in report.findings)


def test_outdated_tree() -> None:
    """2.2.45 is older than the minimum 2.2.53 and than the offered 2.15.0.1."""
    report = run(VMS / "ext-agent-outdated")
    assert codes(report) == ["agent.outdated"]
    details = [ev.detail for ev in report.findings[0].evidence]
    assert "goal-state agent 2.2.45 < minimum 2.2.53" in details
    assert "GAFamily Prod offers 2.15.0.1" in details


def test_healthy_trees() -> None:
    """Current agents in both generations are not outdated."""
    for tree in ("healthy-ubuntu-history", "healthy-debian-legacy", "healthy-sles-history"):
        assert codes(run(VMS / tree)) == [], tree


def test_offered_family_version_only(tmp_path: Path) -> None:
    """Newer than the minimum but older than what the goal state offers: outdated."""
    build(tmp_path, agent_version="2.14.0.1")
    folder = sorted((tmp_path / "var/lib/waagent/history").iterdir())[-1]
    ec = folder / "ExtensionsConfig.xml"
    ec.write_text(
        ec.read_text().replace("<Version>2.14.0.1</Version>", "<Version>2.15.0.1</Version>")
    )
    report = run(tmp_path)
    assert codes(report) == ["agent.outdated"]
    assert report.findings[0].evidence[1].source == "/" + str(ec.relative_to(tmp_path))


def test_minimum_from_settings(tmp_path: Path) -> None:
    """The minimum comes from settings.thresholds.min_agent_version."""
    build(tmp_path, "rhel", "legacy")
    assert codes(run(tmp_path)) == []
    strict = Settings(thresholds=Thresholds(min_agent_version="2.9.0.4"))
    assert codes(run(tmp_path, strict)) == ["agent.outdated"]


def test_no_version_recorded(tmp_path: Path) -> None:
    """A tree without any version record is skipped."""
    (tmp_path / "var/lib/waagent").mkdir(parents=True)
    (res,) = run(tmp_path).checks
    assert res.status.value == "skipped"
