"""reload_extension: the handler folder moved whole into a unique quarantine folder, recorded,
the agent stopped first and started after; refused by policy when it must not run.

systemd is a small stateful `systemctl` program (tests/data/systemctl-fake): `stop` and `start`
change the unit's state and MainPID, and every call is written to a log with whether the
handler folder existed at that moment.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import socket
import stat
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.test_loop import CONFIG as LOOP_CONFIG
from tests.daemon.test_policy import NOW, facts, unit
from waagent_doctor import daemon as daemonmod
from waagent_doctor import state as statemod
from waagent_doctor import status
from waagent_doctor.actions import ActionEnv, DaemonPaths, reload_extension
from waagent_doctor.config import Actions, Settings, load
from waagent_doctor.host import CommandRunner, Host
from waagent_doctor.notify import Notifier
from waagent_doctor.paths import Root
from waagent_doctor.policy import decide
from waagent_doctor.state import ActionRecord, State

DATA = Path(__file__).resolve().parent.parent / "data"
SCENARIO = DATA / "vms" / "ext-vmsnapshot-failed"
NAME = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9225.0"
FAKE = DATA / "systemctl-fake" / "systemctl"
UNIT = "walinuxagent.service"


class Scene:
    """A guest tree with the failed backup extension, a fake systemd, and an ActionEnv."""

    def __init__(self, tmp_path: Path, quarantine: Path | None = None) -> None:
        self.guest = tmp_path / "guest"
        shutil.copytree(SCENARIO, self.guest, symlinks=True)
        self.lib = self.guest / "var" / "lib" / "waagent"
        self.handler = self.lib / NAME
        self.systemd = tmp_path / "systemd"
        self.systemd.mkdir()
        (self.systemd / "active").write_text("active\n")
        (self.systemd / "pid").write_text("4242\n")
        bindir = tmp_path / "bin"
        bindir.mkdir()
        prog = bindir / "systemctl"
        # The fake reads where to keep its state and which folder to watch from its own name's
        # neighbours (the runner passes only PATH and LC_ALL).
        prog.write_text(f"#!/bin/sh\nSTATE={self.systemd}\nWATCH={self.handler}\n. {FAKE}\n")
        prog.chmod(0o755)
        self.runner = CommandRunner(path=f"{bindir}:/usr/bin:/bin")
        self.quarantine = quarantine or tmp_path / "doctor" / "quarantine"
        self.state = State()

    def env(self) -> ActionEnv:
        return ActionEnv(
            host=Host(Root(self.guest), True, datetime.now(timezone.utc), self.runner, True),
            settings=Settings(actions=Actions(reload_extension=True)),
            unit=UNIT,
            paths=DaemonPaths(
                state=str(self.systemd.parent / "doctor" / "state.json"),
                quarantine=str(self.quarantine),
            ),
            state=self.state,
            code="extension.vmsnapshot.failed",
        )

    def calls(self) -> list[str]:
        log = self.systemd / "calls"
        return log.read_text().splitlines() if log.exists() else []

    def set(self, name: str, value: str) -> None:
        (self.systemd / name).write_text(value + "\n")


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    return Scene(tmp_path)


def same_tree(a: Path, b: Path) -> bool:
    """Same names, file contents and modes below a and b."""
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        return False
    for name in cmp.common:
        if stat.S_IMODE(os.lstat(a / name).st_mode) != stat.S_IMODE(os.lstat(b / name).st_mode):
            return False
    return all(same_tree(a / d, b / d) for d in cmp.common_dirs)


def test_moves_the_folder_aside_between_stop_and_start(
    scene: Scene, tmp_path: Path, allow_subprocess: Any
) -> None:
    """Stopped, moved whole (never deleted), recorded in the state, started with a new PID."""
    pristine = tmp_path / "pristine"
    shutil.copytree(scene.handler, pristine, symlinks=True)
    with allow_subprocess("systemctl", "sh"):
        out = reload_extension.apply(scene.env())
    assert out.ok, out.detail
    assert not scene.handler.exists()
    [rec] = scene.state.quarantined
    moved = Path(rec.path)
    assert rec.original == f"/var/lib/waagent/{NAME}"
    assert rec.code == "extension.vmsnapshot.failed"
    assert moved.name == NAME and moved.parent.parent == scene.quarantine
    assert same_tree(pristine, moved)
    assert stat.S_IMODE(scene.quarantine.stat().st_mode) == 0o700
    # The agent was stopped while the folder was still there, and started once it was gone.
    verbs = [c for c in scene.calls() if not c.startswith("show")]
    assert verbs == ["stop present", "start absent"], scene.calls()
    assert out.extra["old_pid"] != out.extra["new_pid"]
    assert f"{rec.original} -> {rec.path}" in out.detail


def test_every_move_gets_its_own_name(scene: Scene, allow_subprocess: Any) -> None:
    """Two reloads of the same version in the same second: two folders, neither overwritten."""
    with allow_subprocess("systemctl", "sh"):
        first = reload_extension.apply(scene.env())
        shutil.copytree(SCENARIO / "var" / "lib" / "waagent" / NAME, scene.handler)
        (scene.handler / "marker").write_text("second\n")
        second = reload_extension.apply(scene.env())
    assert first.ok and second.ok, (first.detail, second.detail)
    a, b = (Path(r.path) for r in scene.state.quarantined)
    assert a != b and a.is_dir() and b.is_dir()
    assert not (a / "marker").exists() and (b / "marker").read_text() == "second\n"


def test_no_handler_folder_changes_nothing(scene: Scene, allow_subprocess: Any) -> None:
    """Nothing to move: failed, and the agent is left alone."""
    shutil.rmtree(scene.handler)
    (scene.lib / f"{NAME.replace('-', '__')}.zip").write_bytes(b"PK")  # a package, not a folder
    with allow_subprocess("systemctl", "sh"):
        out = reload_extension.apply(scene.env())
    assert not out.ok and "nothing to move" in out.detail
    assert scene.calls() == []
    assert not scene.quarantine.exists()


def test_a_link_named_like_the_handler_is_not_followed(
    scene: Scene, tmp_path: Path, allow_subprocess: Any
) -> None:
    """Only real folders are moved: a symlink with the handler's name is left as it is."""
    elsewhere = tmp_path / "elsewhere"
    scene.handler.rename(elsewhere)
    scene.handler.symlink_to(elsewhere)
    with allow_subprocess("systemctl", "sh"):
        out = reload_extension.apply(scene.env())
    assert not out.ok
    assert scene.handler.is_symlink() and elsewhere.is_dir()


def test_agent_that_does_not_stop_keeps_its_folder(scene: Scene, allow_subprocess: Any) -> None:
    """If the unit stays active after `stop`, nothing is moved and the action fails."""
    scene.set("stop_ignored", "1")
    reload_extension.STOP_SECONDS, saved = 1.0, reload_extension.STOP_SECONDS
    try:
        with allow_subprocess("systemctl", "sh"):
            out = reload_extension.apply(scene.env())
    finally:
        reload_extension.STOP_SECONDS = saved
    assert not out.ok and "did not stop" in out.detail and "nothing moved" in out.detail
    assert scene.handler.is_dir()
    assert scene.state.quarantined == []


def test_agent_that_does_not_come_back_is_a_failure(scene: Scene, allow_subprocess: Any) -> None:
    """Moved and recorded, but the agent fails at start: action.failed, folder in quarantine."""
    scene.set("start_fails", "1")
    with allow_subprocess("systemctl", "sh"):
        out = reload_extension.apply(scene.env())
    assert not out.ok
    assert "stopped again at once" in out.detail or "not active" in out.detail, out.detail
    assert not scene.handler.exists()
    [rec] = scene.state.quarantined
    assert Path(rec.path).is_dir()


def _other_filesystem(tmp_path: Path) -> Path:
    """A folder on another filesystem than tmp_path (tmpfs /dev/shm), or skip."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem (/dev/shm) to move across")
    here = Path(os.environ.get("PYTEST_XDIST_WORKER", "x"))
    place = shm / f"wd-test-quarantine-{os.getpid()}-{here.name}"
    shutil.rmtree(place, ignore_errors=True)
    return place


def test_across_mounts_the_folder_is_copied_whole_then_removed(tmp_path: Path) -> None:
    """rename() gives EXDEV across mounts (as under the hardened unit): the copy keeps links,
    modes, owners and user xattrs; the original goes only after the copy is complete."""
    quarantine = _other_filesystem(tmp_path)
    try:
        src = tmp_path / NAME
        shutil.copytree(SCENARIO / "var" / "lib" / "waagent" / NAME, src)
        (src / "status" / "link").symlink_to("12.status")
        (src / "config" / "12.settings").chmod(0o600)
        if os.geteuid() == 0:
            os.chown(src / "mrseq", 1234, 5678)
            os.chown(src / "status", 1234, 5678)
            (src / "mrseq").chmod(0o2755)  # set-group-ID: chown would clear it
        xattr = True
        try:
            os.setxattr(src / "mrseq", "user.test", b"kept")
        except OSError:
            xattr = False
        pristine = tmp_path / "pristine"
        shutil.copytree(src, pristine, symlinks=True)
        quarantine.mkdir(mode=0o700)
        dst = reload_extension.move_aside(src, quarantine)
        assert not src.exists()
        assert dst.parent.parent == quarantine and dst.name == NAME
        assert same_tree(pristine, dst)
        assert os.readlink(dst / "status" / "link") == "12.status"
        if os.geteuid() == 0:
            for owned in ("mrseq", "status"):
                st = os.stat(dst / owned)
                assert (st.st_uid, st.st_gid) == (1234, 5678), owned
            assert stat.S_IMODE(os.stat(dst / "mrseq").st_mode) == 0o2755
        if xattr and "user.test" in os.listxattr(quarantine):
            assert os.getxattr(dst / "mrseq", "user.test") == b"kept"
        assert [p.name for p in dst.parent.iterdir()] == [NAME]  # no .partial left
    finally:
        shutil.rmtree(quarantine, ignore_errors=True)


def test_a_failed_copy_leaves_the_original(tmp_path: Path) -> None:
    """A copy that cannot finish (an unreadable file) leaves the original whole and no
    partial folder in the quarantine."""
    quarantine = _other_filesystem(tmp_path)
    try:
        src = tmp_path / NAME
        shutil.copytree(SCENARIO / "var" / "lib" / "waagent" / NAME, src)
        os.mkfifo(src / "fifo")  # copytree cannot copy a FIFO's content: shutil.Error
        quarantine.mkdir(mode=0o700)
        before = sorted(p.relative_to(src) for p in src.rglob("*"))
        with pytest.raises(reload_extension.MoveError):
            reload_extension.move_aside(src, quarantine)
        assert sorted(p.relative_to(src) for p in src.rglob("*")) == before
        assert list(quarantine.iterdir()) == []
    finally:
        shutil.rmtree(quarantine, ignore_errors=True)


# -- policy -----------------------------------------------------------------------------------
def test_policy_off_by_default_never_with_disable_agent_and_not_in_dry_run() -> None:
    """Opt-in; refused when the operator disabled the agent; a dry run only says so."""
    on = Settings(actions=Actions(reload_extension=True))
    running = unit(active="active", sub="running", result="success")
    assert Settings().actions.reload_extension is False
    off = decide("reload_extension", Settings(), State(), facts(running))
    assert not off.allow and "switched off" in off.reason
    assert decide("reload_extension", on, State(), facts(running)).allow
    disabled = decide("reload_extension", on, State(), facts(running, disable_agent=True))
    assert not disabled.allow and "disable_agent" in disabled.reason and disabled.announce
    dry = decide("reload_extension", on, State(), facts(running, dry_run=True))
    assert not dry.allow and "dry run" in dry.reason


def test_policy_once_a_day_and_not_while_systemd_is_busy() -> None:
    """A reload (applied or failed) less than a day ago waits; so does a unit in transition."""
    on = Settings(actions=Actions(reload_extension=True))
    running = unit(active="active", sub="running", result="success")
    for result in ("applied", "failed"):
        st = State()
        st.record(ActionRecord(action="reload_extension", result=result, at=NOW - 3600))
        assert not decide("reload_extension", on, st, facts(running)).allow
    old = State()
    old.record(ActionRecord(action="reload_extension", result="applied", at=NOW - 25 * 3600))
    assert decide("reload_extension", on, old, facts(running)).allow
    busy = unit(active="deactivating", sub="stop-sigterm", result="success")
    assert not decide("reload_extension", on, State(), facts(busy)).allow


# -- the daemon -------------------------------------------------------------------------------
# test_loop's endpoints (all on 127.0.0.1) with only reload_extension switched on.
CONFIG = (
    LOOP_CONFIG
    + """
[actions]
restart_agent = false
enable_autorestart = false
enable_verbose_logging = false
collect_logs = false
reload_extension = true
"""
)


def _cycle(scene: Scene, tmp_path: Path, *, dry_run: bool) -> daemonmod.CycleResult:
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG)
    env = scene.env()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    try:
        d = daemonmod.Daemon(
            load(str(cfg)),
            config_path=str(cfg),
            dry_run=dry_run,
            paths=env.paths,
            notifier=Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")}),
            host_factory=lambda: Host(
                Root(scene.guest), True, datetime.now(timezone.utc), scene.runner, True
            ),
        )
        return d.cycle()
    finally:
        sock.close()


@pytest.mark.parametrize("dry_run", [True, False])
def test_daemon_cycle_reloads_only_when_not_dry_run(
    scene: Scene, tmp_path: Path, allow_subprocess: Any, dry_run: bool
) -> None:
    """extension.vmsnapshot.failed with reload_extension = true: applied, or (dry run) only
    announced with every file and the agent untouched."""
    with allow_subprocess("systemctl", "sh"):
        result = _cycle(scene, tmp_path, dry_run=dry_run)
    assert "extension.vmsnapshot.failed" in result.raised
    saved = statemod.load(Path(scene.env().paths.state))
    last = [r for r in saved.history if r.action == "reload_extension"]
    verbs = [c for c in scene.calls() if not c.startswith("show")]
    if dry_run:
        assert [r.result for r in last] == ["skipped"] and "dry run" in last[0].reason
        assert scene.handler.is_dir() and not scene.quarantine.exists()
        assert verbs == [] and saved.quarantined == []
    else:
        assert [r.result for r in last] == ["applied"], last
        assert result.applied == ("reload_extension",)
        assert not scene.handler.exists()
        [rec] = saved.quarantined
        assert Path(rec.path).is_dir()
        assert verbs == ["stop present", "start absent"]
        # `waagent-doctor status` tells where it went, so it can be put back.
        doc = status.build(saved, Settings(), rec.at)
        assert [(q["original"], q["path"]) for q in doc["quarantined"]] == [
            (rec.original, rec.path)
        ]
        assert f"{rec.original} -> {rec.path}" in status.render(doc)


def test_daemon_leaves_a_disabled_agent_alone(
    scene: Scene, tmp_path: Path, allow_subprocess: Any
) -> None:
    """/var/lib/waagent/disable_agent: the cause replaces the extension's failure, so no
    reload is even planned; nothing moved or stopped."""
    (scene.lib / "disable_agent").write_text("")
    with allow_subprocess("systemctl", "sh"):
        result = _cycle(scene, tmp_path, dry_run=False)
    assert "agent.disabled_by_file" in result.raised
    assert "extension.vmsnapshot.failed" not in result.raised
    saved = statemod.load(Path(scene.env().paths.state))
    assert [r for r in saved.history if r.action == "reload_extension"] == []
    assert scene.handler.is_dir()
    assert [c for c in scene.calls() if not c.startswith("show")] == []


def test_fake_systemctl_answers_like_systemd(scene: Scene, allow_subprocess: Any) -> None:
    """The fake's `show` parses as systemd's does (so the tests above test the real parser)."""
    with allow_subprocess("systemctl", "sh"):
        out = subprocess.run(
            [str(scene.runner.which("systemctl")), "show", "-p", "Id", "--", UNIT],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    assert "ActiveState=active" in out and "MainPID=4242" in out
