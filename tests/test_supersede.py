"""Findings that explain the backup extension's state replace the extension's codes."""

from __future__ import annotations

import pytest

from waagent_doctor.engine import _supersede
from waagent_doctor.model import Evidence, Finding

EXT = (
    "extension.vmsnapshot.stuck",
    "extension.vmsnapshot.failed",
    "extension.vmsnapshot.not_installed",
)


@pytest.mark.parametrize("cause", ["agent.extensions.disabled", "agent.disabled_by_file"])
@pytest.mark.parametrize("ext", EXT)
def test_disabled_agent_or_extensions_replace_extension_codes(cause: str, ext: str) -> None:
    """No restart can help: the extension code (and its action) goes, the cause stays."""
    ev = [Evidence(source="/etc/waagent.conf:12", detail="Extensions.Enabled=n")]
    kept = {f.code for f in _supersede([Finding.of(cause, ev), Finding.of(ext, ev)])}
    assert kept == {cause}


def test_extension_codes_stay_without_a_disabling_cause() -> None:
    """A stuck extension alone is reported as stuck."""
    ev = [Evidence(source="/var/lib/waagent/x/status/3.status", detail="code=4")]
    kept = {f.code for f in _supersede([Finding.of("extension.vmsnapshot.stuck", ev)])}
    assert kept == {"extension.vmsnapshot.stuck"}
