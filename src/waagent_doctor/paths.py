"""Guest paths and the one door to the guest's filesystem.

Every read of a guest file goes through a `Root`, so `--root DIR` lands every read under DIR
and evidence always names guest paths (`/var/log/waagent.log`), never host paths.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional

# Guest paths: constants, resolved only through a Root when used.
WAAGENT_CONF = "/etc/waagent.conf"
OS_RELEASE = "/etc/os-release"
USR_OS_RELEASE = "/usr/lib/os-release"
LIB_DIR = "/var/lib/waagent"
AGENT_LOG = "/var/log/waagent.log"
LOG_DIR = "/var/log"
EXT_LOG_DIR = "/var/log/azure"
DISABLE_AGENT = "/var/lib/waagent/disable_agent"
WIRESERVER_ENDPOINT_FILE = "/var/lib/waagent/WireServerEndpoint"
HISTORY_DIR = "/var/lib/waagent/history"
VMBACKUP_CONF = "/etc/azure/vmbackup.conf"
VMSNAPSHOT_SCRIPT_CONF = "/etc/azure/VMSnapshotScriptPluginConfig.json"
WAAGENT_BINARIES = ("/usr/sbin/waagent", "/usr/bin/waagent", "/usr/local/sbin/waagent")

# systemd's unit search path, most specific first (systemd.unit(5)).
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)

# The doctor's own places (CONTRACT.md).
DOCTOR_CONFIG = "/etc/waagent-doctor/config.toml"
DOCTOR_STATE_DIR = "/var/lib/waagent-doctor"
DOCTOR_STATE = "/var/lib/waagent-doctor/state.json"
DOCTOR_BUNDLES = "/var/lib/waagent-doctor/bundles"
DOCTOR_QUARANTINE = "/var/lib/waagent-doctor/quarantine"

_MAX_SYMLINKS = 40
# Structured files (XML, JSON, conf) larger than this are refused rather than parsed.
DEFAULT_MAX_BYTES = 4 * 1024 * 1024


class InputError(Exception):
    """A guest file that could not be read: missing, unreadable, not a regular file, too large."""

    def __init__(self, guest_path: str, reason: str, *, missing: bool = False) -> None:
        super().__init__(f"{guest_path}: {reason}")
        self.guest_path = guest_path
        self.reason = reason
        self.missing = missing


@dataclass(frozen=True)
class FileInfo:
    """What `stat` says of a guest file, after resolving links inside the root."""

    guest_path: str
    size: int
    mtime: float
    is_file: bool
    is_dir: bool


def _norm(guest: str) -> str:
    if not guest.startswith("/"):
        raise ValueError(f"guest path must be absolute: {guest!r}")
    return posixpath.normpath(guest).replace("//", "/")


class Root:
    """The guest's `/`: the real one when live, a mounted OS disk or fixture tree offline.

    Links are resolved as the guest would see them (an absolute target means the guest's `/`),
    so nothing is ever read outside the root.
    """

    def __init__(self, base: str | os.PathLike[str] = "/") -> None:
        self.base = Path(os.path.abspath(base))
        self.is_host_root = str(self.base) == "/"

    def __repr__(self) -> str:
        return f"Root({str(self.base)!r})"

    # -- resolution -------------------------------------------------------------------------
    def _host(self, guest: str) -> str:
        if self.is_host_root:
            return guest
        return str(self.base) + guest

    def resolve(self, guest: str) -> str:
        """Resolve links component by component inside the root; return the guest path."""
        parts = [p for p in _norm(guest).split("/") if p]
        done = "/"
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                done = posixpath.dirname(done) or "/"
                continue
            cand = posixpath.join(done, name)
            try:
                st = os.lstat(self._host(cand))
            except OSError:
                # A missing component: the rest cannot be links; keep the path as written.
                return posixpath.join(cand, *parts) if parts else cand
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise InputError(guest, "too many levels of symbolic links")
                target = os.readlink(self._host(cand))
                base = "/" if target.startswith("/") else done
                parts = [p for p in target.split("/") if p] + parts
                done = base
                if target.startswith("/"):
                    done = "/"
                continue
            done = cand
        return done

    def path(self, guest: str) -> Path:
        """The host path where a guest path's content lives (links resolved inside the root)."""
        return Path(self._host(self.resolve(guest)))

    # -- metadata ---------------------------------------------------------------------------
    def stat(self, guest: str) -> Optional[FileInfo]:
        """Stat a guest path; None when it does not exist."""
        try:
            st = os.stat(self.path(guest))
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            raise InputError(guest, exc.strerror or str(exc)) from exc
        return FileInfo(
            guest_path=_norm(guest),
            size=st.st_size,
            mtime=st.st_mtime,
            is_file=stat.S_ISREG(st.st_mode),
            is_dir=stat.S_ISDIR(st.st_mode),
        )

    def exists(self, guest: str) -> bool:
        """True when the guest path exists (as anything)."""
        try:
            return self.stat(guest) is not None
        except InputError:
            return True

    def is_dir(self, guest: str) -> bool:
        """True when the guest path is a directory."""
        try:
            info = self.stat(guest)
        except InputError:
            return False
        return info is not None and info.is_dir

    def is_file(self, guest: str) -> bool:
        """True when the guest path is a regular file."""
        try:
            info = self.stat(guest)
        except InputError:
            return False
        return info is not None and info.is_file

    def listdir(self, guest: str) -> list[str]:
        """Names in a guest directory, sorted; [] when it does not exist."""
        try:
            return sorted(os.listdir(self.path(guest)))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise InputError(guest, exc.strerror or str(exc)) from exc

    def glob(self, guest_dir: str, pattern: str) -> list[str]:
        """Guest paths of the entries of a directory whose name matches a shell pattern."""
        return [
            posixpath.join(_norm(guest_dir), n)
            for n in self.listdir(guest_dir)
            if fnmatch.fnmatchcase(n, pattern)
        ]

    # -- content ----------------------------------------------------------------------------
    def open(self, guest: str) -> BinaryIO:
        """Open a regular guest file for reading; refuse FIFOs, devices, sockets, directories.

        O_NONBLOCK keeps a FIFO from hanging the open; O_NOFOLLOW refuses a link swapped in
        after resolution.
        """
        host = self.path(guest)
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
        flags |= getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(host, flags)
        except FileNotFoundError as exc:
            raise InputError(guest, "no such file", missing=True) from exc
        except NotADirectoryError as exc:
            raise InputError(guest, "no such file", missing=True) from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InputError(guest, "is a symbolic link") from exc
            raise InputError(guest, exc.strerror or str(exc)) from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                kind = _kind(st.st_mode)
                raise InputError(guest, f"not a regular file ({kind})")
            # Back to blocking reads for a regular file.
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def read_bytes(self, guest: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
        """Read a whole guest file, refusing one larger than max_bytes (memory stays bounded)."""
        with self.open(guest) as fh:
            try:
                data = fh.read(max_bytes + 1)
            except OSError as exc:
                raise InputError(guest, exc.strerror or str(exc)) from exc
        if len(data) > max_bytes:
            raise InputError(guest, f"larger than {max_bytes} bytes; not parsed")
        return data

    def read_text(self, guest: str, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
        """Read a guest text file; undecodable bytes become U+FFFD, never an exception."""
        return self.read_bytes(guest, max_bytes).decode("utf-8", errors="replace")

    def walk(self, guest_dir: str, *, max_entries: int = 100_000) -> Iterator[str]:
        """Guest paths of the regular files below a directory, links never followed out."""
        count = 0
        stack = [_norm(guest_dir)]
        while stack:
            cur = stack.pop()
            try:
                names = sorted(os.listdir(self._host(cur)))
            except OSError:
                continue
            for name in names:
                g = posixpath.join(cur, name)
                try:
                    st = os.lstat(self._host(g))
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(g)
                elif stat.S_ISREG(st.st_mode):
                    count += 1
                    if count > max_entries:
                        return
                    yield g


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"
