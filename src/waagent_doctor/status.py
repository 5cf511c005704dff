"""Placeholder: `status` is being written."""

from __future__ import annotations


def status_command(*, as_json: bool) -> int:
    """`waagent-doctor status`."""
    raise NotImplementedError("status is not implemented yet")
