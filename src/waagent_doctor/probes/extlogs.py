"""The backup extension's own logs: extension.log and shell.log, tail-read with bounded memory.

`/var/log/azure/Microsoft.Azure.RecoveryServices.VMSnapshotLinux/extension.log` is where the
extension says why a freeze or a snapshot failed (facts §3); only its tail matters.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.paths import EXT_LOG_DIR, InputError, Root
from waagent_doctor.probes.handlers import VMSNAPSHOT, scrub

VMSNAPSHOT_LOG_DIR = f"{EXT_LOG_DIR}/{VMSNAPSHOT}"
EXTENSION_LOG = f"{VMSNAPSHOT_LOG_DIR}/extension.log"
SHELL_LOG = f"{VMSNAPSHOT_LOG_DIR}/shell.log"
# Only the tail is read: the last MAX_SCAN_BYTES of the file, at most MAX_LINES lines kept,
# each line cut at MAX_LINE_BYTES.
MAX_SCAN_BYTES = 8 * 1024 * 1024
MAX_LINES = 5000
MAX_LINE_BYTES = 8 * 1024
_TEXT_CHARS = 400
# 2016/12/16 17:18:09 [Microsoft...-1.0]2016-12-16 17:18:09.739891  Info  freezing the mount
# 2024-05-02 10:11:12.123456 [Microsoft...-1.0.9225.0]...   (Python 3 builds, UTC)
_TIME_RE = re.compile(r"^\s*(\d{4})[/-](\d{2})[/-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")


@dataclass(frozen=True)
class LogLine:
    """One line of an extension log: guest source (with :line when known), time, text."""

    source: str
    time: Optional[datetime]
    text: str


@dataclass(frozen=True)
class ExtLog:
    """The tail of one log file; `present` False when the file does not exist."""

    path: str
    present: bool
    lines: tuple[LogLine, ...] = ()
    tail_only: bool = False

    def between(self, start: datetime, end: datetime) -> list[LogLine]:
        """Lines stamped within [start, end]."""
        return [ln for ln in self.lines if ln.time is not None and start <= ln.time <= end]


@dataclass(frozen=True)
class ExtLogs:
    """The backup extension's logs."""

    extension_log: ExtLog
    shell_log: ExtLog


def _line_time(text: str) -> Optional[datetime]:
    m = _TIME_RE.match(text)
    if m is None:
        return None
    try:
        y, mo, d, h, mi, s = (int(g) for g in m.groups())
        return datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc)
    except ValueError:
        return None


def tail(root: Root, guest: str) -> ExtLog:
    """Read the tail of a log file; line numbers are given when the whole file was read."""
    info = root.stat(guest)
    if info is None:
        return ExtLog(guest, False)
    tail_only = info.size > MAX_SCAN_BYTES
    kept: deque[tuple[int, bytes]] = deque(maxlen=MAX_LINES)
    with root.open(guest) as fh:
        if tail_only:
            fh.seek(info.size - MAX_SCAN_BYTES)
            fh.readline(MAX_LINE_BYTES)  # a partial first line
        lineno = 0
        while True:
            chunk = fh.readline(MAX_LINE_BYTES)
            if not chunk:
                break
            if not chunk.endswith(b"\n") and len(chunk) == MAX_LINE_BYTES:
                while True:
                    rest = fh.readline(MAX_LINE_BYTES)
                    if not rest or rest.endswith(b"\n"):
                        break
            lineno += 1
            kept.append((lineno, chunk))
    lines = []
    last: Optional[datetime] = None
    for lineno, raw in kept:
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        when = _line_time(text)
        # A line without a time continues the record above it (tracebacks, command output).
        last = when or last
        source = guest if tail_only else f"{guest}:{lineno}"
        lines.append(LogLine(source, last, scrub(text, _TEXT_CHARS)))
    return ExtLog(guest, True, tuple(lines), tail_only)


def read(root: Root) -> ExtLogs:
    """The backup extension's extension.log and shell.log (tails)."""
    return ExtLogs(tail(root, EXTENSION_LOG), tail(root, SHELL_LOG))


def probe(host: Host, settings: Settings) -> ExtLogs:
    """Probe: the backup extension's logs (InputError when one exists but cannot be read)."""
    try:
        return read(host.root)
    except OSError as exc:
        raise InputError(VMSNAPSHOT_LOG_DIR, exc.strerror or str(exc)) from exc
