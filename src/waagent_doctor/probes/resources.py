"""CPU and memory over a sampling window, and room left where the agent writes.

The agent and the backup extension need CPU time to answer in time, memory to run, and space
in /var/lib/waagent and /var/log to write status and logs.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import psutil

from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.paths import LIB_DIR, LOG_DIR
from waagent_doctor.probes import ProbeSkipped

WATCHED_DIRS = (LIB_DIR, LOG_DIR)


@dataclass(frozen=True)
class FsRoom:
    """Free space and inodes of the filesystem holding a guest directory."""

    path: str
    mountpoint: str
    total_bytes: int
    free_bytes: int
    total_inodes: int
    free_inodes: int

    @property
    def free_percent(self) -> float:
        """Free space (for unprivileged users, as `df` shows it) in percent."""
        return 100.0 * self.free_bytes / self.total_bytes if self.total_bytes else 100.0

    @property
    def free_inode_percent(self) -> float:
        """Free inodes in percent; 100 on filesystems without an inode count (btrfs)."""
        return 100.0 * self.free_inodes / self.total_inodes if self.total_inodes else 100.0


@dataclass(frozen=True)
class Resources:
    """CPU and memory use over the window, and room on the watched filesystems."""

    sample_seconds: float
    cpu_percent: float
    memory_percent: float
    memory_available_bytes: int
    filesystems: tuple[FsRoom, ...]
    unreadable: tuple[tuple[str, str], ...] = ()


def _mountpoint(path: Path) -> str:
    cur = path.resolve()
    while not cur.is_mount() and cur.parent != cur:
        cur = cur.parent
    return str(cur)


def fs_room(host: Host, guest_dir: str) -> Optional[FsRoom]:
    """statvfs of the nearest existing ancestor of a guest directory; None if none exists."""
    cur = guest_dir
    while not host.root.is_dir(cur) and cur != "/":
        cur = posixpath.dirname(cur)
    target = host.root.path(cur)
    st = os.statvfs(target)
    return FsRoom(
        path=guest_dir,
        mountpoint=_mountpoint(target),
        total_bytes=st.f_blocks * st.f_frsize,
        free_bytes=st.f_bavail * st.f_frsize,
        total_inodes=st.f_files,
        free_inodes=st.f_favail,
    )


def sample(host: Host, seconds: float) -> Resources:
    """Measure CPU over `seconds` (blocking), memory at the end, and the watched filesystems."""
    cpu = psutil.cpu_percent(interval=seconds)
    mem = psutil.virtual_memory()
    rooms: list[FsRoom] = []
    bad: list[tuple[str, str]] = []
    for guest in WATCHED_DIRS:
        try:
            room = fs_room(host, guest)
        except OSError as exc:
            bad.append((guest, exc.strerror or str(exc)))
            continue
        if room is not None:
            rooms.append(room)
    return Resources(
        sample_seconds=seconds,
        cpu_percent=float(cpu),
        memory_percent=float(mem.percent),
        memory_available_bytes=int(mem.available),
        filesystems=tuple(rooms),
        unreadable=tuple(bad),
    )


def probe(host: Host, settings: Settings) -> Resources:
    """Probe: resources over settings.thresholds.sample_seconds (live only)."""
    if not host.live:
        raise ProbeSkipped("offline: host resources are not sampled")
    return sample(host, settings.thresholds.sample_seconds)
