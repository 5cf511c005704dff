"""Placeholder: the agent log scanner (being written)."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from waagent_doctor.paths import Root


def newest_record_time(root: Root) -> Optional[datetime]:
    """The time of the newest record in /var/log/waagent.log, or None."""
    return None
