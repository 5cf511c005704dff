"""state.json: round trip, atomic replacement, corrupt files set aside."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from waagent_doctor import state as statemod
from waagent_doctor.model import Evidence
from waagent_doctor.state import ActionRecord, OpenFinding, State, VerboseLogging


def _sample() -> State:
    s = State()
    s.open_findings = {
        "agent.not_running": OpenFinding(
            code="agent.not_running",
            cause=2,
            severity="critical",
            title="t",
            since=100.0,
            evidence=(Evidence(source="systemctl show x", detail="failed"),),
            actions=("restart_agent",),
        )
    }
    s.record(ActionRecord(action="restart_agent", result="applied", at=90.0, code="agent.hung"))
    s.verbose_logging = VerboseLogging(
        phase="applied",
        path="/etc/waagent.conf",
        original="n",
        original_line="Logs.Verbose=n",
        applied_at=1.0,
        revert_after=2.0,
    )
    s.log_cursors = {"/var/log/waagent.log": {"dev": 1, "inode": 2, "offset": 3, "line": None}}
    return s


def test_round_trip(tmp_path: Path) -> None:
    """What is saved is what is loaded."""
    path = tmp_path / "lib" / "state.json"
    statemod.save(path, _sample())
    assert statemod.load(path) == _sample()


def test_file_and_folder_are_private(tmp_path: Path) -> None:
    """The state file is 0600 in a 0700 folder, and no temporary file is left behind."""
    path = tmp_path / "lib" / "state.json"
    statemod.save(path, _sample())
    statemod.save(path, State())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]


def test_missing_file_is_a_fresh_state(tmp_path: Path) -> None:
    """No file yet: an empty state, no warning."""
    with capture_logs() as logs:
        assert statemod.load(tmp_path / "none.json") == State()
    assert logs == []


def test_corrupt_file_is_set_aside_with_a_warning(tmp_path: Path) -> None:
    """Junk, truncated JSON, or a foreign object: moved aside, fresh state, one warning."""
    for junk in (b"\x00\xff garbage", b'{"schema_id": "waagent-doctor/state/1", "open', b"[1,2]"):
        path = tmp_path / "state.json"
        path.write_bytes(junk)
        with capture_logs() as logs:
            loaded = statemod.load(path)
        assert loaded == State()
        assert not path.exists()
        aside = list(tmp_path.glob("state.json.corrupt-*"))
        assert len(aside) == 1
        assert aside[0].read_bytes() == junk
        assert [e["event"] for e in logs] == ["state.corrupt"]
        assert logs[0]["log_level"] == "warning"
        aside[0].unlink()


def test_wrong_types_are_corrupt_too(tmp_path: Path) -> None:
    """A state whose fields have the wrong types does not crash the daemon."""
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"schema_id": statemod.STATE_SCHEMA, "history": "nope"}))
    with capture_logs():
        assert statemod.load(path) == State()
    assert list(tmp_path.glob("state.json.corrupt-*"))


def test_history_is_bounded_and_counted() -> None:
    """The history keeps the newest MAX_HISTORY records; totals count every one."""
    s = State()
    for i in range(statemod.MAX_HISTORY + 20):
        s.record(ActionRecord(action="restart_agent", result="failed", at=float(i)))
    assert len(s.history) == statemod.MAX_HISTORY
    assert s.history[-1].at == statemod.MAX_HISTORY + 19
    assert s.totals == {"restart_agent/failed": statemod.MAX_HISTORY + 20}
    assert s.attempts_since("restart_agent", float(statemod.MAX_HISTORY + 10)) == 10


def test_write_atomic_keeps_mode_and_owner(tmp_path: Path) -> None:
    """write_atomic replaces content with the mode asked for, in place of the old file."""
    target = tmp_path / "f"
    target.write_text("old")
    statemod.write_atomic(target, b"new", mode=0o640)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_write_atomic_keeps_labels_not_content_hashes(tmp_path: Path) -> None:
    """Replacing a file keeps its user.* and security.* labels, but not security.ima (a hash of
    the old content); a file system without xattrs is no error."""
    target = tmp_path / "waagent.conf"
    target.write_bytes(b"old\n")
    try:
        os.setxattr(target, "user.origin", b"operator")
    except OSError as exc:
        pytest.skip(f"{tmp_path} does not take user.* xattrs: {exc.strerror}")
    labels = {"user.origin": b"operator"}
    for name, value in (("security.selinux", b"system_u:object_r:etc_t:s0\x00"),
                        ("security.ima", b"\x04\x04hash")):  # fmt: skip
        try:
            os.setxattr(target, name, value)
            labels[name] = value
        except OSError:
            pass  # not root, or a security module that refuses the label: test the rest
    statemod.write_atomic(target, b"new\n", mode=0o640)
    assert target.read_bytes() == b"new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    got = {n: os.getxattr(target, n) for n in os.listxattr(target)}
    assert got.get("user.origin") == b"operator"
    if "security.selinux" in labels:
        assert got.get("security.selinux") == labels["security.selinux"]
    assert "security.ima" not in got
    assert statemod.file_xattrs(target) == {
        n: v for n, v in got.items() if n in ("user.origin", "security.selinux")
    }
