"""Placeholder: the support bundle is being written."""

from __future__ import annotations

from typing import Optional


def collect_logs_command(output: Optional[str], root: Optional[str], config: Optional[str]) -> int:
    """`waagent-doctor --collect-logs`."""
    raise NotImplementedError("collect-logs is not implemented yet")
