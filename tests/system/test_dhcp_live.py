"""Live DHCP probe inside a real systemd (the container has only `lo`, no default route)."""

from __future__ import annotations

import json
from typing import Any

from tests.system.testbed import Testbed

PROBE = """
import json
from waagent_doctor.config import Settings
from waagent_doctor.engine import diagnose
from waagent_doctor.host import Host
from waagent_doctor.probes import dhcp_live

host = Host.live_host()
live = dhcp_live.probe(host, Settings())
notes = []
view = dhcp_live.ask_networkd(host, host.runner, "lo", notes)
report = diagnose(host, Settings(), only={"dhcp"})
print(json.dumps({
    "available": live.available, "reason": live.reason, "views": len(live.views),
    "lo": {"tool": view.tool, "managed": view.managed, "detail": view.detail}, "notes": notes,
    "check": [report.checks[0].status.value, report.checks[0].reason],
    "codes": [f.code for f in report.findings],
}))
"""


def _observe(tb: Testbed) -> dict[str, Any]:
    out = tb.python("-c", PROBE).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def test_no_default_route_in_a_real_systemd(testbed_clean: Testbed) -> None:
    """Only `lo`: no primary interface, no finding, no error; networkd stopped is a note."""
    testbed_clean.systemctl(
        "stop", "systemd-networkd.service", "systemd-networkd.socket", check=False
    )
    got = _observe(testbed_clean)
    assert got["available"] is False and got["views"] == 0
    assert got["reason"].startswith("no primary interface: no IPv4 default route")
    assert got["codes"] == [] and got["check"][0] in ("ok", "skipped")
    assert got["lo"]["managed"] is False
    assert got["notes"] and got["notes"][0].startswith("networkctl --json=short status lo: exit")


def test_real_networkctl_json_for_an_unmanaged_link(testbed_clean: Testbed) -> None:
    """A running systemd-networkd: its real JSON for `lo` parses, and says it does not manage it."""
    tb = testbed_clean
    try:
        tb.systemctl("start", "systemd-networkd.service")
        got = _observe(tb)
    finally:
        tb.systemctl("stop", "systemd-networkd.service", "systemd-networkd.socket", check=False)
    assert got["notes"] == [], got["notes"]
    assert got["lo"] == {"tool": "networkd", "managed": False, "detail": got["lo"]["detail"]}
    assert got["lo"]["detail"].endswith("=unmanaged")
    assert got["codes"] == [] and got["check"][0] in ("ok", "skipped")
