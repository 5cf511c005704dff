"""Snapshot conditions inside the VM: CPU, memory, and room where the agent writes."""

from __future__ import annotations

from waagent_doctor.checks import Context, check
from waagent_doctor.model import Evidence
from waagent_doctor.probes import resources

_MIB = 1024 * 1024


@check("resources", live_only=True, order=60)
def resources_check(ctx: Context) -> None:
    """resources.cpu.high, resources.memory.high, resources.disk.full."""
    r = ctx.snap.get(resources.probe)
    t = ctx.settings.thresholds
    window = f"over {r.sample_seconds:g}s"
    if r.cpu_percent > t.cpu_percent:
        ctx.raise_(
            "resources.cpu.high",
            [Evidence(source="/proc/stat", detail=f"CPU {r.cpu_percent:.0f}% {window} "
                      f"(threshold {t.cpu_percent:g}%)")],
        )  # fmt: skip
    if r.memory_percent > t.memory_percent:
        ctx.raise_(
            "resources.memory.high",
            [Evidence(source="/proc/meminfo", detail=f"memory {r.memory_percent:.0f}% used, "
                      f"{r.memory_available_bytes // _MIB} MiB available "
                      f"(threshold {t.memory_percent:g}%)")],
        )  # fmt: skip
    full: list[Evidence] = []
    for fs in r.filesystems:
        low_space = fs.free_percent < t.disk_free_percent or fs.free_bytes < t.disk_free_mib * _MIB
        low_inodes = fs.free_inode_percent < t.inode_free_percent
        if low_space or low_inodes:
            full.append(
                Evidence(
                    source=fs.path,
                    detail=f"filesystem {fs.mountpoint}: {fs.free_bytes // _MIB} MiB free "
                    f"({fs.free_percent:.1f}%), {fs.free_inodes} inodes free "
                    f"({fs.free_inode_percent:.1f}%)",
                )
            )
    if full:
        ctx.raise_("resources.disk.full", full)
    for path, reason in r.unreadable:
        ctx.error(f"{path}: {reason}")
