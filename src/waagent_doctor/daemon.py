"""Placeholder: the daemon (`run`) is being written."""

from __future__ import annotations

from typing import Optional


def run_command(config_path: Optional[str], *, dry_run: bool, once: bool) -> int:
    """`waagent-doctor run`."""
    raise NotImplementedError("run is not implemented yet")
