"""The daemon's memory across restarts: /var/lib/waagent-doctor/state.json.

Open findings (so nothing is announced twice), action history (budgets), log cursors, the
verbose-logging record and the last bundle. Written atomically; a corrupt file is set aside.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Literal, Optional

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from waagent_doctor.model import Evidence

log = structlog.get_logger("waagent_doctor.state")

STATE_SCHEMA = "waagent-doctor/state/1"
MAX_STATE_BYTES = 16 * 1024 * 1024
# Enough for a day of a crash-looping agent at the default budget, and for status to show.
MAX_HISTORY = 500
MAX_EVIDENCE = 5
MAX_QUARANTINED = 50
# Present when SELinux runs (enforcing or permissive).
SELINUX_ENFORCE = "/sys/fs/selinux/enforce"
# Bound to the old content (a hash, a signature) or granting privileges: never copied.
_NOT_KEPT_XATTRS = frozenset({"security.ima", "security.evm", "security.capability"})
_NO_XATTRS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA})

ActionResult = Literal["applied", "failed", "skipped"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class OpenFinding(_Record):
    """A finding announced as raised and not yet cleared."""

    code: str
    cause: int
    severity: str
    title: str
    since: float
    evidence: tuple[Evidence, ...] = ()
    actions: tuple[str, ...] = ()
    # The checks that raised it: while one of them errors, the finding is not cleared.
    checks: tuple[str, ...] = ()


class ActionRecord(_Record):
    """One action decision that reached the journal: applied, failed or skipped."""

    action: str
    result: ActionResult
    at: float
    code: str = ""
    reason: str = ""


class VerboseLogging(_Record):
    """What enable_verbose_logging changed in waagent.conf, to revert it later.

    `pending` is written before the file is edited, so a doctor killed mid-way still knows.
    """

    phase: Literal["pending", "applied"]
    path: str
    key: str = "Logs.Verbose"
    # The effective value before the edit; None when the key was absent (the line appended).
    original: Optional[str]
    # The whole line before the edit (to put it back as it was); None when appended.
    original_line: Optional[str]
    value: str = "y"
    applied_at: float
    revert_after: float
    code: str = ""


class BundleRecord(_Record):
    """The newest support bundle the daemon wrote."""

    path: str
    at: float
    size: int = 0
    code: str = ""


class RestartSampleRecord(_Record):
    """One observation of the agent unit's NRestarts (crash-loop detection across restarts)."""

    at: float
    n_restarts: int
    inactive_exit: Optional[float] = None


class QuarantineRecord(_Record):
    """A handler folder reload_extension moved aside: where it was, where it is now."""

    # The guest path it had (/var/lib/waagent/Microsoft.Azure...VMSnapshotLinux-1.0.9225.0).
    original: str
    # Where it lies now (/var/lib/waagent-doctor/quarantine/<stamp>-<random>/<its name>).
    path: str
    at: float
    code: str = ""


class CycleRecord(_Record):
    """The last completed cycle."""

    at: float
    duration: float
    status: str
    findings: int
    dry_run: bool = False


class State(BaseModel):
    """Everything the daemon remembers; one JSON object."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    schema_id: str = STATE_SCHEMA
    open_findings: dict[str, OpenFinding] = {}
    history: list[ActionRecord] = []
    # "action/result" -> count since the state was created (metrics counters).
    totals: dict[str, int] = {}
    # action -> when the doctor logged that it gave up (cleared once healthy).
    gave_up: dict[str, float] = {}
    # "action/code" -> the skip reason already logged (nothing repeated every cycle).
    skip_notes: dict[str, str] = {}
    log_cursors: dict[str, Any] = {}
    restart_samples: list[RestartSampleRecord] = []
    verbose_logging: Optional[VerboseLogging] = None
    last_bundle: Optional[BundleRecord] = None
    # Newest last: the folders moved aside by reload_extension, to be put back by hand.
    quarantined: list[QuarantineRecord] = []
    last_cycle: Optional[CycleRecord] = None

    def record(self, rec: ActionRecord) -> None:
        """Append to the history (bounded) and count it."""
        self.history = [*self.history[-(MAX_HISTORY - 1) :], rec]
        key = f"{rec.action}/{rec.result}"
        self.totals = {**self.totals, key: self.totals.get(key, 0) + 1}

    def attempts_since(self, action: str, since: float) -> int:
        """How many times the action was tried (applied or failed) since a moment."""
        return sum(
            1
            for r in self.history
            if r.action == action and r.result != "skipped" and r.at >= since
        )

    def last_attempt(self, action: str) -> Optional[ActionRecord]:
        """The newest applied-or-failed record of an action."""
        for r in reversed(self.history):
            if r.action == action and r.result != "skipped":
                return r
        return None

    def remember_quarantine(self, rec: QuarantineRecord) -> None:
        """Add a moved folder to the (bounded) list."""
        self.quarantined = [*self.quarantined[-(MAX_QUARANTINED - 1) :], rec]


def _kept_xattr(name: str) -> bool:
    """Whether an extended attribute follows the file when it is replaced.

    Labels (security.selinux, security.SMACK64...) and user.* do; security.ima and
    security.evm are a hash and a signature of the old content, security.capability grants
    privileges: copied onto new content they would be wrong or dangerous.
    """
    if name.startswith("user."):
        return True
    return name.startswith("security.") and name not in _NOT_KEPT_XATTRS


def file_xattrs(path: str | os.PathLike[str]) -> dict[str, bytes]:
    """The extended attributes a replacement of this file keeps ({} where unsupported)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _NO_XATTRS:
            return {}
        raise
    kept: dict[str, bytes] = {}
    for name in names:
        if not _kept_xattr(name):
            continue
        try:
            kept[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in _NO_XATTRS:
                raise
    return kept


def write_atomic(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int = 0o600,
    owner: Optional[tuple[int, int]] = None,
    xattrs: Optional[dict[str, bytes]] = None,
) -> None:
    """Replace a file so that readers see the old or the new content, never a mix.

    Temp file in the same directory, fsync, rename over, fsync the directory: a crash or a
    SIGKILL at any point leaves the old file or the new one. The new file carries `xattrs`
    (by default those file_xattrs keeps of the file it replaces: an SELinux label is not lost);
    one that cannot be set fails the write and leaves the old file as it was.
    """
    target = Path(path)
    if xattrs is None:
        xattrs = file_xattrs(target) if target.exists() else {}
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            for name, value in xattrs.items():
                _set_xattr(fh.fileno(), name, value, target)
            if owner is not None:
                os.fchown(fh.fileno(), owner[0], owner[1])
            os.fsync(fh.fileno())
        Path(tmp).replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    fsync_dir(target.parent)


def _set_xattr(fd: int, name: str, value: bytes, target: Path) -> None:
    """Set one kept attribute on the new file; only a label that is in force must succeed.

    A filesystem without xattrs has nothing to keep. Setting a security.* label other than that
    of a running SELinux (security.selinux on a machine booted with selinux=0) needs
    CAP_SYS_ADMIN, which the unit does not have; such a label is left behind with a warning.
    """
    try:
        os.setxattr(fd, name, value)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        required = name.startswith("user.") or (
            name == "security.selinux" and Path(SELINUX_ENFORCE).exists()
        )
        if exc.errno in (errno.EPERM, errno.EACCES) and not required:
            log.warning("xattr.not_kept", path=str(target), xattr=name, error=exc.strerror)
            return
        raise OSError(exc.errno, f"{exc.strerror} (setting {name})") from exc


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename in this directory durable."""
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def ensure_dir(path: str | os.PathLike[str], mode: int = 0o700) -> Path:
    """Create a private directory (and parents) if missing; tighten its mode if it exists."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True, mode=mode)
    if (p.stat().st_mode & 0o777) != mode:
        p.chmod(mode)
    return p


def load(path: str | os.PathLike[str]) -> State:
    """The saved state; a fresh one when missing; a corrupt file is set aside, never fatal."""
    target = Path(path)
    try:
        with target.open("rb") as fh:
            raw = fh.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return State()
    except OSError as exc:
        log.warning("state.unreadable", path=str(target), error=str(exc))
        return State()
    try:
        if len(raw) > MAX_STATE_BYTES:
            raise ValueError(f"larger than {MAX_STATE_BYTES} bytes")
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.get("schema_id") != STATE_SCHEMA:
            raise ValueError("not a waagent-doctor state object")
        return State.model_validate(data)
    except (ValueError, ValidationError) as exc:
        aside = target.with_name(f"{target.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            target.replace(aside)
        except OSError as mv_exc:
            log.warning("state.corrupt", path=str(target), error=str(exc), moved=str(mv_exc))
        else:
            log.warning(
                "state.corrupt", path=str(target), error=str(exc)[:300], moved_to=str(aside)
            )
        return State()


def read_only(path: str | os.PathLike[str]) -> Optional[State]:
    """The saved state for `status`: None when missing; ValueError when unreadable."""
    target = Path(path)
    try:
        with target.open("rb") as fh:
            raw = fh.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"{target}: {exc.strerror or exc}") from None
    try:
        return State.model_validate(json.loads(raw.decode("utf-8")))
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"{target}: not a valid state file ({str(exc)[:200]})") from None


def save(path: str | os.PathLike[str], state: State) -> None:
    """Write the state atomically (mode 0600) in a 0700 directory."""
    target = Path(path)
    ensure_dir(target.parent)
    payload = state.model_dump_json(indent=1).encode("utf-8") + b"\n"
    write_atomic(target, payload, mode=0o600)
