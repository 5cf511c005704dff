"""Handler folders and status files are read as the agent reads them, on its real test files."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.vmtree import AS_OF, VMSNAPSHOT, build
from waagent_doctor.paths import Root
from waagent_doctor.probes import extlogs, handlers, versions

STATUS = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "walinuxagent"
    / "var_lib_waagent"
    / "handler"
    / "status"
)
HDIR = f"var/lib/waagent/{VMSNAPSHOT}-1.0.9225.0"


def _status_tree(tmp_path: Path, fixture: str, seq: int = 12) -> Root:
    d = tmp_path / HDIR / "status"
    d.mkdir(parents=True)
    shutil.copyfile(STATUS / fixture, d / f"{seq}.status")
    return Root(tmp_path)


def test_real_vmsnapshot_status() -> None:
    """The real VMSnapshot sample: success, code 1, the embedded status's message is kept."""
    raw = (STATUS / "sample-status.vmsnapshot.json").read_bytes()
    st = handlers.parse_status(raw, "/x/12.status", 12, None, AS_OF)
    assert st.problem is None
    assert (st.status, st.code, st.operation) == ("success", 1, "Enable")
    assert st.timestamp == datetime(2019, 6, 6, 23, 52, 59, tzinfo=timezone.utc)
    assert any("statusBlobUploadError=true" in m for m in st.messages())
    assert 1 in st.codes()


@pytest.mark.parametrize(
    ("fixture", "problem"),
    [
        ("sample-status-invalid-json-format.json", "not valid JSON"),
        ("sample-status-invalid-format-emptykey-line7.json", "not valid JSON"),
        ("sample-status-invalid-status-no-status-status-key.json", "no status.status"),
        ("sample-status-very-large.json", "too large (143238 bytes"),
    ],
)
def test_malformed_status_files(tmp_path: Path, fixture: str, problem: str) -> None:
    """The agent's malformed samples become a recorded problem, never an exception."""
    found = handlers.read(_status_tree(tmp_path, fixture))
    (h,) = found.handlers
    st = h.status_for(12)
    assert st is not None and st.status is None
    assert st.problem is not None and problem in st.problem


def test_fifo_status_does_not_hang(tmp_path: Path) -> None:
    """A FIFO in place of a status file is reported as unreadable, and reading goes on."""
    d = tmp_path / HDIR / "status"
    d.mkdir(parents=True)
    os.mkfifo(d / "12.status")
    shutil.copyfile(STATUS / "sample-status.vmsnapshot.json", d / "11.status")
    (h,) = handlers.read(Root(tmp_path)).handlers
    assert [p.guest_path for p in h.problems] == [f"/{HDIR}/status/12.status"]
    assert h.newest_status is not None and h.newest_status.seq_no == 11


def _status_json(status: str, code: int, message: str) -> bytes:
    fm = {"lang": "en-US", "message": message}
    return json.dumps(
        [{"status": {"status": status, "code": code, "formattedMessage": fm}}]
    ).encode()


def test_unknown_status_value_is_error() -> None:
    """The agent coerces a status.status outside the four values to error."""
    raw = _status_json("exploded", 3, "m")
    assert handlers.parse_status(raw, "/x", 1, None, AS_OF).status == "error"


def test_messages_are_scrubbed_and_cut() -> None:
    """SAS query strings are replaced and messages cut to 1 KiB, as the agent does."""
    msg = "upload to https://a.blob.core.windows.net/c/b?sv=2018&sig=SECRET failed " + "x" * 3000
    raw = _status_json("error", 2, msg)
    st = handlers.parse_status(raw, "/x", 1, None, AS_OF)
    assert "SECRET" not in st.message and "<redacted>" in st.message
    assert st.message.endswith("[TRUNCATED]") and len(st.message) < 1100


def test_handler_folder_from_tree(tmp_path: Path) -> None:
    """A healthy tree's handler: Enabled, Ready, settings seen by mtime only, statuses by seq."""
    tree = build(tmp_path, "ubuntu", "history")
    settings = tree.host(f"/{HDIR}/config/12.settings")
    public = {"statusBlobUri": "TOPSECRET"}
    settings.write_text(
        json.dumps({"runtimeSettings": [{"handlerSettings": {"publicSettings": public}}]})
    )
    found = handlers.read(Root(tmp_path))
    assert found.names() == ["Microsoft.Azure.Extensions.CustomScript", VMSNAPSHOT]
    h = found.active(VMSNAPSHOT)
    assert h is not None and h.version == "1.0.9225.0"
    assert (
        h.state == "Enabled" and h.handler_status is not None and h.handler_status.status == "Ready"
    )
    assert [s.seq_no for s in h.statuses] == [12, 11]
    assert h.settings_for(12) is not None and h.mrseq == 12
    assert h.log_folder == f"/var/log/azure/{VMSNAPSHOT}"
    assert "TOPSECRET" not in repr(found)


def test_active_version_choice(tmp_path: Path) -> None:
    """The requested version wins; otherwise the newest Enabled folder, not merely the newest."""
    for ver, state in (
        ("1.0.9120.0", "Enabled"),
        ("1.0.9225.0", "Installed"),
        ("1.0.90.0", "Enabled"),
    ):
        d = tmp_path / f"var/lib/waagent/{VMSNAPSHOT}-{ver}/config"
        d.mkdir(parents=True)
        (d / "HandlerState").write_text(state)
    (tmp_path / "var/lib/waagent/WALinuxAgent-2.15.0.1").mkdir()
    found = handlers.read(Root(tmp_path))
    assert [h.version for h in found.versions_of(VMSNAPSHOT)] == [
        "1.0.9225.0",
        "1.0.9120.0",
        "1.0.90.0",
    ]
    assert found.active(VMSNAPSHOT, "1.0.90.0").version == "1.0.90.0"  # type: ignore[union-attr]
    assert found.active(VMSNAPSHOT).version == "1.0.9120.0"  # type: ignore[union-attr]
    assert "WALinuxAgent" not in found.names()


def test_extension_log_tail(tmp_path: Path) -> None:
    """extension.log lines carry guest path:line and a time; continuation lines inherit it."""
    log = tmp_path / "var/log/azure" / VMSNAPSHOT / "extension.log"
    log.parent.mkdir(parents=True)
    log.write_text(
        # issue #525's line (Python 2 builds)
        f"2016/12/16 17:18:09 [{VMSNAPSHOT}-1.0]2016-12-16 17:18:09.739891  Info  "
        "freezing the mount: /mnt\n"
        "Traceback (most recent call last):\n"
        "2024-05-02 10:11:12.123456 [VMSnapshotLinux-1.0.9225.0] T:S freeze failed on /data\n"
        + "y" * 20000
        + "\nlast line\n"
    )
    got = extlogs.read(Root(tmp_path)).extension_log
    assert got.present and not got.tail_only
    assert [ln.source.rsplit(":", 1)[1] for ln in got.lines] == ["1", "2", "3", "4", "5"]
    assert got.lines[1].time == datetime(2016, 12, 16, 17, 18, 9, tzinfo=timezone.utc)
    assert got.lines[2].time == datetime(2024, 5, 2, 10, 11, 12, tzinfo=timezone.utc)
    assert len(got.lines[3].text) <= 420
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert next(ln.text for ln in got.between(start, start + timedelta(days=400))).endswith(
        "failed on /data"
    )
    assert not extlogs.read(Root(tmp_path)).shell_log.present


def test_extension_log_huge_is_tail_only(tmp_path: Path) -> None:
    """A log larger than the scan limit is read from its tail only, with a bounded line count."""
    log = tmp_path / "var/log/azure" / VMSNAPSHOT / "extension.log"
    log.parent.mkdir(parents=True)
    with log.open("wb") as fh:
        fh.truncate(extlogs.MAX_SCAN_BYTES * 2)
        fh.seek(0, 2)
        fh.write(b"\n2025-11-20 09:00:00.000000 [x] T:S freeze failed\n")
    got = extlogs.read(Root(tmp_path)).extension_log
    assert got.tail_only and len(got.lines) <= extlogs.MAX_LINES
    assert got.lines[-1].text.endswith("freeze failed")
    assert got.lines[-1].source == extlogs.EXTENSION_LOG


def test_versions_from_tree(tmp_path: Path) -> None:
    """Daemon from the package's version.py, goal-state agent from waagent_status.json."""
    tree = build(tmp_path, "rhel", "history")
    tree.write(
        "/var/lib/waagent/WALinuxAgent-9.9.9.9/error.json",
        '{"was_fatal": true, "failure_count": 3}',
    )
    got = versions.read(Root(tmp_path))
    assert got.daemon == "2.7.0.6"
    assert got.daemon_source == "/usr/lib/python3.9/site-packages/azurelinuxagent/common/version.py"
    assert got.goal_state_agent == "2.15.0.1"
    assert got.goal_state_agent_source is not None and got.goal_state_agent_source.endswith(
        "waagent_status.json"
    )
    assert [(f.version, f.blacklisted) for f in got.folders] == [
        ("9.9.9.9", True),
        ("2.15.0.1", False),
    ]


def test_versions_fallback_and_bad_status(tmp_path: Path) -> None:
    """A broken waagent_status.json is a listed problem; the newest usable folder is used."""
    tree = build(tmp_path, "debian", "history")
    folder = sorted(tree.host("/var/lib/waagent/history").iterdir())[-1]
    (folder / "waagent_status.json").write_text("{not json")
    got = versions.read(Root(tmp_path))
    assert [p.guest_path.rsplit("/", 1)[1] for p in got.problems] == ["waagent_status.json"]
    assert got.goal_state_agent == "2.15.0.1"
    assert got.goal_state_agent_source == "/var/lib/waagent/WALinuxAgent-2.15.0.1"


def test_version_order() -> None:
    """Dotted versions compare numerically; trailing zeros do not matter."""
    assert versions.older("1.0.90.0", "1.0.91.0") is True
    assert versions.older("1.0.9225.0", "1.0.91.0") is False
    assert versions.older("2.2.53", "2.2.53.0") is False
    assert versions.older("2.10", "2.9.1") is False
    assert versions.older("x", "1") is None
