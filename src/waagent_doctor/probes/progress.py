"""Signs that the agent makes progress: when it last wrote its log and its status files.

A live agent writes /var/log/waagent.log (a [HEARTBEAT] every 30 minutes at least), the status
blob copy history/<ts>__<n>/waagent_status.json, and each handler's config/HandlerStatus; the
extensions write status/<seq>.status. An agent whose processes live but none of these move is
hung.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.paths import AGENT_LOG, HISTORY_DIR, LIB_DIR, InputError, Root

# Handler folders and status files examined (a VM has a handful of handlers).
MAX_HANDLERS = 64
MAX_STATUS_FILES = 64
MAX_HISTORY = 8


@dataclass(frozen=True)
class Mark:
    """One progress signal: a guest file and when it last changed."""

    path: str
    when: datetime


@dataclass(frozen=True)
class AgentProgress:
    """The newest change of each kind of progress signal found."""

    marks: tuple[Mark, ...]

    @property
    def newest(self) -> Optional[Mark]:
        """The most recent signal, or None when there is none at all."""
        return max(self.marks, key=lambda m: m.when) if self.marks else None


def _mark(root: Root, guest: str) -> Optional[Mark]:
    try:
        info = root.stat(guest)
    except InputError:
        return None
    if info is None or not info.is_file:
        return None
    return Mark(guest, datetime.fromtimestamp(info.mtime, timezone.utc))


def _newest(marks: list[Optional[Mark]]) -> Optional[Mark]:
    found = [m for m in marks if m is not None]
    return max(found, key=lambda m: m.when) if found else None


def _list(root: Root, guest: str) -> list[str]:
    try:
        return root.listdir(guest)
    except InputError:
        return []


def read(root: Root) -> AgentProgress:
    """The newest log, status-blob and handler-status changes under the root."""
    marks: list[Optional[Mark]] = [_mark(root, AGENT_LOG)]
    # history/2025-11-20T09-58-02__3/waagent_status.json; names sort by time.
    folders = [n for n in _list(root, HISTORY_DIR) if "__" in n and not n.endswith(".zip")]
    marks.append(
        _newest(
            [_mark(root, posixpath.join(HISTORY_DIR, n, "waagent_status.json"))
             for n in folders[-MAX_HISTORY:]]
        )
    )  # fmt: skip
    marks.append(_mark(root, posixpath.join(LIB_DIR, "waagent_status.json")))
    handler_marks: list[Optional[Mark]] = []
    # Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9225.0/config/HandlerStatus
    handlers = [n for n in _list(root, LIB_DIR) if "-" in n and "." in n.split("-", 1)[0]]
    for name in handlers[:MAX_HANDLERS]:
        base = posixpath.join(LIB_DIR, name)
        handler_marks.append(_mark(root, posixpath.join(base, "config", "HandlerStatus")))
        try:
            statuses = root.glob(posixpath.join(base, "status"), "*.status")
        except InputError:
            statuses = []
        handler_marks.extend(_mark(root, s) for s in statuses[-MAX_STATUS_FILES:])
    marks.append(_newest(handler_marks))
    return AgentProgress(tuple(m for m in marks if m is not None))


def probe(host: Host, settings: Settings) -> AgentProgress:
    """Probe: the agent's progress signals."""
    return read(host.root)
