"""The support bundle end to end: no secret anywhere, must-have content present, caps, failures."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.bundle.planted import EXTLOG, FIXTURE_SECRETS, MIB, Planted, members, plant, scan
from waagent_doctor import cli
from waagent_doctor.bundle.collect import BundleError, build_bundle, collect_logs_command
from waagent_doctor.config import Bundle, Settings
from waagent_doctor.host import CommandRunner, Host
from waagent_doctor.paths import Root

BIN = Path(__file__).resolve().parent / "bin"
STUBS = ("systemctl", "journalctl", "waagent", "df", "uptime")


def _offline(vm: Planted) -> Host:
    return Host.offline(str(vm.root), datetime.now(timezone.utc))


def _manifest(archive: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(members(archive)["manifest.json"])
    return doc


def _row(manifest: dict[str, Any], suffix: str) -> dict[str, Any]:
    rows = [r for r in manifest["entries"] if r["guest_path"].endswith(suffix)]
    assert rows, suffix
    row: dict[str, Any] = rows[0]
    return row


def _leaks(blob: bytes, tokens: dict[str, str]) -> list[str]:
    seen = b"\n".join(scan(blob)).lower()
    return [f"{t} ({where})" for t, where in tokens.items() if t.lower().encode() in seen]


@pytest.fixture(scope="module")
def big_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Planted, Path, float]:
    """One offline bundle of the fully planted tree (3 GiB sparse log included)."""
    base = tmp_path_factory.mktemp("planted")
    vm = plant(base / "root")
    began = time.monotonic()
    result = build_bundle(
        _offline(vm), Settings(), output=str(base / "out"), report_error="not run here"
    )
    return vm, Path(result.path), time.monotonic() - began


def test_no_planted_secret_survives_anywhere(big_bundle: tuple[Planted, Path, float]) -> None:
    """Every byte of the bundle, nested archives opened, is free of every planted secret."""
    vm, archive, _ = big_bundle
    assert _leaks(archive.read_bytes(), vm.secrets) == []
    assert _leaks(archive.read_bytes(), {t: "agent fixture" for t in FIXTURE_SECRETS}) == []


def test_must_have_content_is_there(big_bundle: tuple[Planted, Path, float]) -> None:
    """The agent log, its rotations, the backup extension's logs and state, history: present."""
    vm, archive, elapsed = big_bundle
    got = members(archive)
    for name, needle in vm.must_have.items():
        assert name in got, name
        assert needle in got[name], name
    assert "report-error.txt" in got and "manifest.json" in got
    assert elapsed < 60


def test_never_files_and_tricks_are_skipped_with_reasons(
    big_bundle: tuple[Planted, Path, float],
) -> None:
    """Keys, certificates, links out of the tree, a FIFO, RemoteAccess.xml: skipped, said why."""
    _, archive, _ = big_bundle
    names = set(members(archive))
    assert not any(n.endswith((".prv", ".crt", ".pem", ".p7m", "CustomData")) for n in names)
    assert not any("RemoteAccess.xml" in n or n.endswith("Certificates.xml") for n in names)
    m = _manifest(archive)
    assert "FIFO" in _row(m, "Other.Ext/pipe.log")["reason"]
    assert _row(m, "Other.Ext/shadow.log")["link_target"] == "/etc/shadow"
    assert _row(m, "Other.Ext/shadow.log")["status"] == "skipped"
    assert _row(m, "/var/log/waagent.log.3")["status"] == "skipped"
    assert "never collected" in _row(m, "/var/lib/waagent/Certificates.xml")["reason"]
    assert "never collected" in _row(m, "__3.zip/RemoteAccess.xml")["reason"]
    assert "never collected" in _row(m, "__4/RemoteAccess.xml")["reason"]
    for row in m["entries"]:
        assert "OUTSIDE0035" not in json.dumps(row)


def test_caps_and_redaction_counts_are_in_the_manifest(
    big_bundle: tuple[Planted, Path, float],
) -> None:
    """The 3 GiB log keeps a 30 MiB tail; the manifest counts redactions per file."""
    _, archive, _ = big_bundle
    m = _manifest(archive)
    big = _row(m, "big.log")
    assert big["size"] == 3 * 1024**3 and big["truncated"] and "per-file cap" in big["reason"]
    assert big["source_bytes"] == 30 * MIB
    assert big["bytes_taken"] <= 30 * MIB + 1024
    assert _row(m, "config/12.settings")["redactions"] >= 4
    assert _row(m, "/var/log/waagent.log.1.gz")["kind"] == "decompressed"
    assert m["totals"]["bytes_taken"] <= m["caps"]["max_total_bytes"]


def test_archive_is_private_and_nothing_partial_is_left(
    big_bundle: tuple[Planted, Path, float],
) -> None:
    """0600 archive in a 0700 folder, named waagent-doctor-<host>-<UTC>.tar.gz, no temp file."""
    _, archive, _ = big_bundle
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert stat.S_IMODE(archive.parent.stat().st_mode) == 0o700
    assert archive.name.startswith("waagent-doctor-vm-planted-") and archive.name.endswith(
        "Z.tar.gz"
    )
    assert os.listdir(archive.parent) == [archive.name]


def test_total_cap_takes_must_have_first(tmp_path: Path) -> None:
    """With a tiny total cap the agent log and backup extension files win; the rest is skipped."""
    vm = plant(tmp_path / "root", big_log=False)
    vm.write(f"{EXTLOG}/extension.log.1", b"filler\n" * 40_000)
    for n in range(3):
        vm.write(f"/var/log/azure/Other.Ext/filler{n}.log", b"other filler\n" * 10_000)
    settings = Settings(bundle=Bundle(max_file_mib=0.1, max_total_mib=0.2))
    result = build_bundle(_offline(vm), settings, output=str(tmp_path / "out"))
    m = _manifest(Path(result.path))
    assert m["totals"]["bytes_taken"] <= 0.2 * MIB + 64 * 1024
    assert _row(m, "/var/log/waagent.log")["status"] == "taken"
    assert _row(m, "extension.log.1")["bytes_taken"] <= 0.1 * MIB + 1024
    assert any("total cap" in r["reason"] for r in m["entries"] if r["status"] == "skipped")
    assert _leaks(Path(result.path).read_bytes(), vm.secrets) == []


def test_cli_prints_the_path_last_even_with_a_broken_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--collect-logs --root`: exit 0, path on the last stdout line, config error noted."""
    vm = plant(tmp_path / "root", big_log=False)
    bad = tmp_path / "bad.toml"
    bad.write_text("interval_seconds = 'often'\n[[[")
    out = tmp_path / "out"
    out.mkdir()
    rc = cli.main(
        ["--collect-logs", "--root", str(vm.root), "--output", str(out), "--config", str(bad)]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    path = Path(captured.out.strip().splitlines()[-1])
    assert path.parent == out and path.is_file()
    m = _manifest(path)
    assert any("configuration" in n for n in m["notes"])
    assert m["mode"] == "offline" and m["report_included"]
    report = json.loads(members(path)["report.json"])
    assert report["schema"] == "waagent-doctor/report/1" and report["mode"] == "offline"


def test_output_may_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--output FILE.tar.gz writes exactly there, 0600."""
    vm = plant(tmp_path / "root", big_log=False)
    target = tmp_path / "ticket-123.tar.gz"
    assert collect_logs_command(str(target), str(vm.root), None) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_symlinked_output_folder_is_refused(tmp_path: Path) -> None:
    """A private output folder must be a real folder of ours, not a planted link."""
    vm = plant(tmp_path / "root", big_log=False)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BundleError, match="not a folder"):
        build_bundle(_offline(vm), Settings(), output=str(tmp_path / "link"))
    assert os.listdir(tmp_path / "elsewhere") == []


def test_deadline_still_gives_a_valid_bundle(tmp_path: Path) -> None:
    """Out of time: files are skipped with the reason, the archive and manifest are complete."""
    vm = plant(tmp_path / "root", big_log=False)
    settings = Settings(bundle=Bundle(deadline_seconds=0.001))
    result = build_bundle(_offline(vm), settings, output=str(tmp_path / "out"))
    m = _manifest(Path(result.path))
    assert result.deadline_hit and m["deadline_hit"]
    assert any("deadline" in r["reason"] for r in m["entries"])


def test_live_commands_are_bounded_and_redacted(tmp_path: Path, allow_subprocess: Any) -> None:
    """Live: command output is collected and redacted; a hanging command is cut by its timeout."""
    vm = plant(tmp_path / "root", big_log=False)
    host = Host(Root(vm.root), True, datetime.now(timezone.utc), CommandRunner(path=str(BIN)))
    settings = Settings(bundle=Bundle(command_timeout_seconds=1.0))
    began = time.monotonic()
    with allow_subprocess(*STUBS):
        result = build_bundle(host, settings, output=str(tmp_path / "out"), report_error="x")
    assert time.monotonic() - began < 20
    got = members(Path(result.path))
    assert b"MUSTHAVE-JOURNAL" in got["commands/journal-agent.txt"]
    assert b"MUSTHAVE-SYSTEMCTL" in got["commands/systemctl-status-agent.txt"]
    assert b"walinuxagent.service" in got["commands/systemctl-status-agent.txt"]
    m = _manifest(Path(result.path))
    assert _row(m, "$ uptime")["timed_out"] is True
    assert _row(m, "$ ps -eo pid,ppid,user,etimes,stat,pcpu,pmem,rss,args")["returncode"] == 127
    secrets = {"JOURNALSIG0040": "journal", "JOURNALPASS0041": "journal", **vm.secrets}
    assert _leaks(Path(result.path).read_bytes(), secrets) == []


@contextmanager
def _tmpfs(path: Path, size: str, allow: Any) -> Iterator[Path]:
    path.mkdir()
    with allow("mount", "umount"):
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            pytest.skip(
                f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {res.stderr.strip()}"
            )
        try:
            yield path
        finally:
            subprocess.run(["umount", str(path)], check=False)


def _incompressible_vm(root: Path) -> Planted:
    vm = Planted(root)
    vm.write("/etc/hostname", "vm-full\n")
    vm.write("/var/log/waagent.log", "2026-11-26T09:00:00.000000Z INFO ExtHandler start\n")
    vm.write(f"{EXTLOG}/extension.log", os.urandom(12 * MIB))
    return vm


def test_disk_full_midway_leaves_nothing_and_says_why(
    tmp_path: Path, allow_subprocess: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The filesystem fills during the run: exit non-zero, one line on stderr, no partial file."""
    vm = _incompressible_vm(tmp_path / "root")
    with _tmpfs(tmp_path / "small", "8m", allow_subprocess) as out:
        rc = collect_logs_command(str(out), str(vm.root), None)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc != 0
        assert len(err) == 1 and "no space left" in err[0], err
        assert os.listdir(out) == []


def test_not_enough_space_up_front_is_refused(
    tmp_path: Path, allow_subprocess: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The free-space check refuses before writing anything."""
    vm = _incompressible_vm(tmp_path / "root")
    with _tmpfs(tmp_path / "tiny", "2m", allow_subprocess) as out:
        rc = collect_logs_command(str(out), str(vm.root), None)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc != 0
        assert len(err) == 1 and "not enough free space" in err[0], err
        assert os.listdir(out) == []


def test_a_gzip_bomb_is_skipped_not_inflated(tmp_path: Path) -> None:
    """A rotation that inflates absurdly is skipped with the reason, the rest goes on."""
    import gzip

    vm = plant(tmp_path / "root", big_log=False)
    vm.write("/var/log/waagent.log.5.gz", gzip.compress(b"\0" * (400 * MIB), 9))
    result = build_bundle(_offline(vm), Settings(), output=str(tmp_path / "out"))
    m = _manifest(Path(result.path))
    assert "decompresses to more than" in _row(m, "/var/log/waagent.log.5.gz")["reason"]
    assert _row(m, "/var/log/waagent.log")["status"] == "taken"
