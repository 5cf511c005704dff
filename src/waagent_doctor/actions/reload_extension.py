"""reload_extension (opt-in): move the backup extension's handler folder aside, never delete it.

Stop the agent, move `/var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-*`
into /var/lib/waagent-doctor/quarantine/<stamp>-<random>/, start the agent: it downloads and
reinstalls the extension with the next goal state (the manual fix of WALinuxAgent issue #1059).
Each move is recorded in the state, so an operator can put the folder back.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

from waagent_doctor.actions import ActionEnv, Outcome
from waagent_doctor.actions.restart_agent import (
    current,
    describe,
    restart,
    systemctl,
    wait_until,
)
from waagent_doctor.codes import VMSNAPSHOT
from waagent_doctor.paths import LIB_DIR
from waagent_doctor.state import QuarantineRecord, ensure_dir

STOP_SECONDS = 100.0


class MoveError(Exception):
    """A folder could not be moved; the original stays where it was (or wholly copied)."""


def handler_dirs(env: ActionEnv) -> list[str]:
    """Guest paths of the backup extension's handler folders (real folders, not links)."""
    root = env.host.root
    return [
        g
        for g in root.glob(LIB_DIR, f"{VMSNAPSHOT}-*")
        if not (root.path(LIB_DIR) / Path(g).name).is_symlink() and root.is_dir(g)
    ]


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy a folder with its links, modes, times, owners and xattrs (dst must not exist)."""
    shutil.copytree(src, dst, symlinks=True)
    for here, dirs, files in os.walk(src):
        rel = Path(here).relative_to(src)
        for name in [".", *dirs, *files]:
            st = os.lstat(Path(here) / name)
            os.chown(dst / rel / name, st.st_uid, st.st_gid, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                # chown clears set-user/group-ID bits: put the mode back after it.
                (dst / rel / name).chmod(stat.S_IMODE(st.st_mode))


def move_aside(src: Path, quarantine: Path) -> Path:
    """Move a folder into a new, uniquely named folder of the quarantine; its new path.

    A rename when both are on one mount. Under the hardened unit /var/lib/waagent and
    /var/lib/waagent-doctor are separate bind mounts (rename gives EXDEV): then the folder is
    copied whole under a temporary name, synced, renamed into place, and only then removed
    from /var/lib/waagent. A failure or a kill before that point leaves the original intact.
    """
    box = Path(
        tempfile.mkdtemp(prefix=time.strftime("%Y%m%dT%H%M%SZ-", time.gmtime()), dir=quarantine)
    )
    dst = box / src.name
    try:
        src.rename(dst)
        return dst
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            with contextlib.suppress(OSError):
                box.rmdir()
            raise MoveError(f"{src}: {exc.strerror or exc}") from None
    partial = box / f".{src.name}.partial"
    try:
        _copy_tree(src, partial)
        os.sync()
        partial.rename(dst)
    except (OSError, shutil.Error) as exc:
        shutil.rmtree(box, ignore_errors=True)
        raise MoveError(f"copying {src} to {box} failed: {exc}") from None
    try:
        shutil.rmtree(src)
    except OSError as exc:
        raise MoveError(f"copied to {dst}, but removing {src} failed: {exc}") from None
    return dst


def apply(env: ActionEnv) -> Outcome:
    """Stop the agent, quarantine the handler folders, start the agent; verify both."""
    folders = handler_dirs(env)
    if not folders:
        return Outcome(False, f"no {VMSNAPSHOT}-* handler folder in {LIB_DIR}: nothing to move")
    before = current(env.runner, env.unit)
    old_pid = before.main_pid if before is not None else 0
    stopping = systemctl(env, "stop")
    if not stopping.ok:
        return stopping
    stopped = wait_until(
        env.runner,
        env.unit,
        lambda u: u.active_state in ("inactive", "failed"),
        env.wait,
        STOP_SECONDS,
    )
    if stopped is None or stopped.active_state not in ("inactive", "failed"):
        started = restart(env, "start")
        return Outcome(
            False, f"{env.unit} did not stop: {describe(stopped)}; nothing moved; {started.detail}"
        )
    quarantine = ensure_dir(env.paths.quarantine)
    moved: list[str] = []
    problems: list[str] = []
    for guest in folders:
        try:
            dst = move_aside(env.host.root.path(guest), quarantine)
        except MoveError as exc:
            problems.append(str(exc))
            continue
        env.state.remember_quarantine(
            QuarantineRecord(
                original=guest, path=str(dst), at=env.host.as_of.timestamp(), code=env.code
            )
        )
        env.persist()
        moved.append(f"{guest} -> {dst}")
    started = restart(env, "start")
    what = f"moved {'; '.join(moved)}" if moved else "moved nothing"
    if problems:
        return Outcome(False, f"{what}; could not move {'; '.join(problems)}; {started.detail}")
    left = [g for g in folders if env.host.root.exists(g)]
    if left:
        return Outcome(False, f"{what}; still present: {', '.join(left)}; {started.detail}")
    new_pid = started.extra.get("new_pid", "")
    if not started.ok or new_pid in ("", "0", str(old_pid)):
        return Outcome(False, f"{what}; {started.detail}")
    return Outcome(True, f"{what}; {started.detail}", extra=started.extra)
