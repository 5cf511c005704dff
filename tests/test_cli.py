"""The command line's contract: exit statuses and one-line reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from waagent_doctor import __version__, cli


def _tree(tmp_path: Path, conf: str) -> Path:
    (tmp_path / "etc").mkdir(parents=True)
    (tmp_path / "etc" / "waagent.conf").write_text(conf)
    (tmp_path / "etc" / "os-release").write_text("ID=ubuntu\nID_LIKE=debian\n")
    # An installed agent, so that agent_install does not add agent.not_installed.
    (tmp_path / "usr" / "sbin").mkdir(parents=True)
    (tmp_path / "usr" / "sbin" / "waagent").write_text("#!/usr/bin/python3\n")
    return tmp_path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the version and exits 0."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_bad_argument_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    """Bad arguments: exit 3 with a reason."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["check", "--frobnicate"])
    assert exc.value.code == 3
    assert "unrecognized arguments" in capsys.readouterr().err


def test_bad_config_exits_3_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad configuration key: exit 3, one line naming the key."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("[actions]\nrestart_agent_per_hour = -1\n")
    root = _tree(tmp_path / "vm", "")
    rc = cli.main(["check", "--root", str(root), "--config", str(cfg)])
    err = capsys.readouterr().err
    assert rc == 3
    assert "actions.restart_agent_per_hour" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_as_of_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--as-of must be RFC 3339."""
    rc = cli.main(["check", "--root", str(_tree(tmp_path, "")), "--as-of", "yesterday"])
    assert rc == 3
    assert "--as-of" in capsys.readouterr().err


def test_root_must_be_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--root naming no directory: exit 3."""
    rc = cli.main(["check", "--root", str(tmp_path / "missing")])
    assert rc == 3
    assert "not a directory" in capsys.readouterr().err


def test_extensions_disabled_is_critical_cause_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Extensions.Enabled=n offline: critical, cause 3, exit 2, evidence with the line."""
    root = _tree(tmp_path, "# comment\nExtensions.Enabled=n\n")
    rc = cli.main(["check", "--root", str(root), "--json", "--as-of", "2026-11-26T10:00:00Z"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 2
    assert report["schema"] == "waagent-doctor/report/1"
    assert report["mode"] == "offline"
    assert report["as_of"] == "2026-11-26T10:00:00Z"
    f = next(f for f in report["findings"] if f["code"] == "agent.extensions.disabled")
    assert f["cause"] == 3
    assert f["severity"] == "critical"
    assert f["evidence"][0]["source"] == "/etc/waagent.conf:2"
    assert f["action"] is None
    assert report["status"] == "critical"


def test_offline_skips_live_only_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Offline, no live-only code appears and live-only checks say skipped."""
    from waagent_doctor.codes import CODES, Mode

    root = _tree(tmp_path, "AutoUpdate.Enabled=n\n")
    rc = cli.main(["check", "--root", str(root), "--json"])
    report = json.loads(capsys.readouterr().out)
    live_codes = {c for c, row in CODES.items() if row.mode is Mode.LIVE}
    assert not live_codes & {f["code"] for f in report["findings"]}
    assert rc in (1, 2)
    statuses = {c["status"] for c in report["checks"]}
    assert statuses <= {"ok", "finding", "skipped", "error"}
    assert all(c["reason"] for c in report["checks"] if c["status"] != "ok")


def test_human_output_fits_80_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The text report is grouped by cause and no line is wider than 80 columns."""
    root = _tree(tmp_path, "Extensions.Enabled=n\nAutoUpdate.Enabled=n\n")
    cli.main(["check", "--root", str(root)])
    out = capsys.readouterr().out
    assert "Cause 3: The backup extension" in out
    assert "Cause 2: The VM agent" in out
    assert out.index("Cause 3") < out.index("Cause 2")  # critical before warning
    assert max(len(line) for line in out.splitlines()) <= 80


def test_evidence_never_carries_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log line quoted as evidence has its SAS signature masked in the report."""
    root = _tree(tmp_path, "")
    log = root / "var" / "log"
    log.mkdir(parents=True)
    secret = "Zm9vYmFyU0VDUkVUc2lnbmF0dXJl"  # noqa: S105 - a planted test secret
    (log / "waagent.log").write_text(
        "2026-11-26T09:00:00.000000Z ERROR ExtHandler ExtHandler Error fetching the goal "
        "state: [ProtocolError] [Wireserver Exception] [HttpError] [HTTP Failed] GET "
        f"http://127.0.0.1/machine/?comp=goalstate&sig={secret}&se=2026 -- IOError timed out "
        "-- 6 attempts made\n"
    )
    rc = cli.main(["check", "--root", str(root), "--json"])
    out = capsys.readouterr().out
    report = json.loads(out)
    codes = {f["code"] for f in report["findings"]}
    assert "network.wireserver.unreachable" in codes
    assert rc == 2
    assert secret not in out
    assert "REDACTED" in out


def test_off_azure_the_doctor_stays_idle(tmp_path: Path) -> None:
    """Live on a machine whose DMI asset tag is not Azure's: host.not_azure, nothing else."""
    from datetime import datetime, timezone

    from waagent_doctor.config import Settings
    from waagent_doctor.engine import diagnose
    from waagent_doctor.host import Host
    from waagent_doctor.paths import Root

    root = _tree(tmp_path, "Extensions.Enabled=n\n")
    dmi = root / "sys" / "class" / "dmi" / "id"
    dmi.mkdir(parents=True)
    (dmi / "chassis_asset_tag").write_text("No Asset Tag\n")
    host = Host(Root(root), True, datetime.now(timezone.utc), runner=None)
    report = diagnose(host, Settings())
    assert [f.code for f in report.findings] == ["host.not_azure"]
    assert report.status == "ok"
    others = [c for c in report.checks if c.name != "azure_host"]
    assert others and all(c.status.value == "skipped" for c in others)
    assert all("not an Azure VM" in c.reason for c in others)


def test_offline_text_groups_the_live_only_skips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offline, the live-only checks are one grouped line, not one line each."""
    cli.main(["check", "--root", str(_tree(tmp_path, ""))])
    out = capsys.readouterr().out
    assert out.count("offline analysis (--root)") == 1
    assert "checks skipped: offline analysis" in out
    assert "agent_running" in out


@pytest.mark.parametrize(
    ("as_of", "words"),
    [
        ("", "not an RFC 3339 time"),
        ("0001-01-01T00:00:00+14:00", "out of range"),
        ("9999-12-31T23:59:59-12:00", "out of range"),
        ("9999-12-31T00:00:00Z", "outside"),
        ("1969-12-31T23:00:00Z", "outside"),
        ("/Date(99999999999999999)/", "not an RFC 3339 time"),
    ],
)
def test_as_of_at_the_calendar_edges_exits_3_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_of: str, words: str
) -> None:
    """--as-of that is empty or at the calendar's edges: exit 3 and one line, never a crash."""
    root = _tree(tmp_path, "Extensions.Enabled=y\n")
    assert cli.main(["check", "--json", "--root", str(root), "--as-of", as_of]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert words in captured.err and len(captured.err.strip().splitlines()) == 1
