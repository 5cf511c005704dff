"""collect_logs: a support bundle into /var/lib/waagent-doctor/bundles (0700), newest few kept."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from waagent_doctor.actions import ActionEnv, Outcome, Stopping
from waagent_doctor.state import BundleRecord, ensure_dir

# Names the bundle builder gives its archives (and their temporary names while written).
BUNDLE_PATTERNS = ("waagent-doctor-*.tar.gz", "waagent-doctor-*.tgz", "waagent-doctor-*.zip")


def bundles(directory: str | os.PathLike[str]) -> list[Path]:
    """The finished bundles in the folder, newest first."""
    found: dict[Path, float] = {}
    for pattern in BUNDLE_PATTERNS:
        for p in Path(directory).glob(pattern):
            with contextlib.suppress(OSError):
                if p.is_file() and not p.name.startswith("."):
                    found[p] = p.stat().st_mtime
    return sorted(found, key=lambda p: (found[p], p.name), reverse=True)


def prune(directory: str | os.PathLike[str], keep: int) -> list[Path]:
    """Remove all but the newest `keep` bundles; the removed paths."""
    removed = []
    for old in bundles(directory)[keep:]:
        try:
            old.unlink()
        except OSError:
            continue
        removed.append(old)
    return removed


def build(env: ActionEnv, directory: Path) -> tuple[Path, str]:
    """Write one bundle into directory with the support-bundle library; its path and a note."""
    from waagent_doctor.bundle.collect import build_bundle

    def progress(_: str) -> None:
        # A bundle may take minutes: keep the watchdog fed (wait(0) pings), stop on SIGTERM
        # (the builder removes its partial archive on the way out).
        if not env.wait(0.0):
            raise Stopping

    result = build_bundle(
        env.host, env.settings, output=str(directory), report=env.report, progress=progress
    )
    note = f"{result.files_taken} files, {result.redactions} redactions"
    if result.deadline_hit:
        note += ", deadline hit"
    return Path(result.path), note


def apply(env: ActionEnv) -> Outcome:
    """Build a bundle, verify it exists and is not empty, keep the newest few."""
    try:
        directory = ensure_dir(env.paths.bundles, 0o700)
    except OSError as exc:
        return Outcome(False, f"{env.paths.bundles}: {exc.strerror or exc}")
    try:
        path, note = build(env, directory)
    except Exception as exc:  # noqa: BLE001 - any builder failure is this action's failure
        return Outcome(False, f"bundle failed: {type(exc).__name__}: {exc}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        return Outcome(False, f"bundle not found after writing: {path}: {exc.strerror or exc}")
    if size == 0:
        return Outcome(False, f"bundle is empty: {path}")
    removed = prune(directory, env.settings.actions.bundles_keep)
    if removed:
        note += f"; removed {len(removed)} older"
    record = BundleRecord(path=str(path), at=env.host.as_of.timestamp(), size=size, code=env.code)
    return Outcome(True, f"{path} ({size} bytes, {note})", bundle=record)
