"""dhcp: dhcp.disabled from static configuration or current leases without option 245."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA, VMS
from waagent_doctor import cli
from waagent_doctor.config import Settings
from waagent_doctor.engine import diagnose
from waagent_doctor.host import Host
from waagent_doctor.model import CheckStatus, Report

LEASES = DATA / "walinuxagent" / "dhcp"
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
CLOUD_INIT_NETPLAN = (
    "network:\n  version: 2\n  ethernets:\n    eth0:\n      dhcp4: true\n      set-name: eth0\n"
)
LEASE_WITHOUT_245 = """lease {
  interface "eth0";
  fixed-address 10.0.1.4;
  option dhcp-server-identifier 10.0.1.1;
  renew 0 2152/07/23 23:27:10;
  expire 0 2152/07/23 23:27:10;
}
"""


def put(root: Path, guest: str, text: str) -> Path:
    """Write a guest file under the fake root."""
    p = root / guest.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def run(root: Path, *, live: bool = False) -> Report:
    """Only the dhcp check on the tree (live: same files, the live flag set, no commands)."""
    host = Host.offline(str(root), NOW)
    if live:
        host = Host(root=host.root, live=True, as_of=NOW, runner=None)
    return diagnose(host, Settings(), only={"dhcp"})


def codes(report: Report) -> list[str]:
    """Finding codes of a report."""
    return [f.code for f in report.findings]


def test_cloud_init_dhcp_with_245_lease_is_ok(tmp_path: Path) -> None:
    """The normal Azure VM: netplan dhcp4: true and a networkd lease with OPTION_245."""
    put(tmp_path, "/etc/netplan/50-cloud-init.yaml", CLOUD_INIT_NETPLAN)
    put(tmp_path, "/run/systemd/netif/leases/2", (LEASES / "networkd-lease-2").read_text())
    report = run(tmp_path)
    assert codes(report) == [] and report.checks[0].status is CheckStatus.OK


def test_agent_fixture_leases_are_ok(tmp_path: Path) -> None:
    """The agent's own dhclient fixture (one lease expired) still has current 245 leases."""
    put(tmp_path, "/var/lib/dhcp/dhclient.eth0.leases", (LEASES / "dhclient.leases").read_text())
    assert codes(run(tmp_path)) == []


def test_expired_245_and_current_without_raises(tmp_path: Path) -> None:
    """Trap: an expired lease with 245 does not count; the current one lacks it."""
    expired = (LEASES / "dhclient.leases").read_text().split("}\n")[1] + "}\n"
    assert "expire 4 2015" in expired and "unknown-245" in expired
    put(tmp_path, "/var/lib/dhclient/dhclient-eth0.leases", expired + LEASE_WITHOUT_245)
    report = run(tmp_path)
    assert codes(report) == ["dhcp.disabled"]
    first, second = report.findings[0].evidence
    current_line = 1 + (expired + LEASE_WITHOUT_245).splitlines().index("lease {", 1)
    assert first.source == f"/var/lib/dhclient/dhclient-eth0.leases:{current_line}"
    assert "no option 245" in first.detail
    assert second.source == "/var/lib/dhclient/dhclient-eth0.leases:1"
    assert "expired" in second.detail and "168.63.129.16" in second.detail


def test_networkd_lease_without_245_raises(tmp_path: Path) -> None:
    """A networkd lease stores every option: no OPTION_245 there is evidence."""
    text = (LEASES / "networkd-lease-2").read_text().replace("OPTION_245=a83f8110\n", "")
    put(tmp_path, "/run/systemd/netif/leases/2", text)
    assert codes(run(tmp_path)) == ["dhcp.disabled"]


def test_one_lease_with_245_anywhere_clears(tmp_path: Path) -> None:
    """Like the agent, any current lease with 245 is enough."""
    put(tmp_path, "/var/lib/dhcp/dhclient.eth1.leases", LEASE_WITHOUT_245)
    put(tmp_path, "/run/systemd/netif/leases/2", (LEASES / "networkd-lease-2").read_text())
    assert codes(run(tmp_path)) == []


def test_rescue_disk_with_empty_run_is_not_judged(tmp_path: Path) -> None:
    """Trap: an OS disk on a rescue VM has an empty /run; no lease proves nothing."""
    put(tmp_path, "/etc/netplan/50-cloud-init.yaml", CLOUD_INIT_NETPLAN)
    (tmp_path / "run").mkdir()
    report = run(tmp_path)
    assert codes(report) == []
    assert report.checks[0].status is CheckStatus.SKIPPED
    assert (
        "no lease files" in report.checks[0].reason and "/run is empty" in report.checks[0].reason
    )


def test_live_without_leases_is_not_raised(tmp_path: Path) -> None:
    """Live, DHCP configured, no lease file: left to the live DHCP probe, not guessed."""
    put(tmp_path, "/etc/netplan/50-cloud-init.yaml", CLOUD_INIT_NETPLAN)
    report = run(tmp_path, live=True)
    assert codes(report) == []
    assert "live DHCP probe" in report.checks[0].reason


def test_nettools_address_only_lease_is_not_judged(tmp_path: Path) -> None:
    """NetworkManager's nettools lease has no options at all: not evidence of no 245."""
    put(tmp_path, "/var/lib/NetworkManager/internal-x-eth0.lease", "ADDRESS=10.0.0.4\n")
    report = run(tmp_path)
    assert codes(report) == [] and report.checks[0].status is CheckStatus.SKIPPED


def test_only_expired_leases_are_not_judged(tmp_path: Path) -> None:
    """Every lease expired (a VM long deallocated): nothing current to judge."""
    put(tmp_path, "/var/lib/dhcp/dhclient.leases", LEASE_WITHOUT_245.replace("2152", "2015"))
    report = run(tmp_path)
    assert codes(report) == [] and "only expired" in report.checks[0].reason


def test_static_netplan_raises_with_file_and_line(tmp_path: Path) -> None:
    """dhcp4: false with addresses on eth0: static."""
    put(
        tmp_path,
        "/etc/netplan/01-net.yaml",
        "network:\n  ethernets:\n    eth0:\n      dhcp4: false\n      addresses: [10.0.0.4/24]\n",
    )
    report = run(tmp_path)
    assert codes(report) == ["dhcp.disabled"]
    (ev,) = report.findings[0].evidence
    assert ev.source == "/etc/netplan/01-net.yaml:5"
    assert "10.0.0.4/24" in ev.detail and "eth0" in ev.detail


def test_static_secondary_with_dhcp_primary_is_ok(tmp_path: Path) -> None:
    """Trap: a static eth1 beside cloud-init's DHCP eth0 is fine."""
    put(tmp_path, "/etc/netplan/50-cloud-init.yaml", CLOUD_INIT_NETPLAN)
    put(
        tmp_path,
        "/etc/netplan/60-eth1.yaml",
        "network:\n  ethernets:\n    eth1:\n      addresses: [10.1.0.4/24]\n",
    )
    report = run(tmp_path)
    assert codes(report) == []


def test_commented_static_bootproto_is_ok(tmp_path: Path) -> None:
    """Trap: `# BOOTPROTO=static` above BOOTPROTO=dhcp."""
    put(
        tmp_path,
        "/etc/sysconfig/network-scripts/ifcfg-eth0",
        "DEVICE=eth0\n# BOOTPROTO=static\nBOOTPROTO=dhcp\n",
    )
    assert codes(run(tmp_path)) == []


def test_static_in_one_tool_dhcp_in_another_is_not_raised(tmp_path: Path) -> None:
    """A stale static ifupdown stanza beside netplan DHCP: DHCP is configured, no finding."""
    put(tmp_path, "/etc/netplan/50-cloud-init.yaml", CLOUD_INIT_NETPLAN)
    put(tmp_path, "/etc/network/interfaces", "iface eth0 inet static\n  address 10.0.0.4/24\n")
    assert codes(run(tmp_path)) == []


def test_static_wins_over_old_leases_with_245(tmp_path: Path) -> None:
    """Static eth0 with leftover leases from its DHCP days: still static."""
    put(
        tmp_path, "/etc/sysconfig/network-scripts/ifcfg-eth0", "BOOTPROTO=static\nIPADDR=10.0.0.4\n"
    )
    put(
        tmp_path, "/var/lib/dhclient/dhclient-eth0.leases", (LEASES / "dhclient.leases").read_text()
    )
    assert codes(run(tmp_path)) == ["dhcp.disabled"]


def test_unreadable_lease_file_is_an_error(tmp_path: Path) -> None:
    """A FIFO lease file: input.unreadable and a check error, never a hang."""
    (tmp_path / "var/lib/dhcp").mkdir(parents=True)
    os.mkfifo(tmp_path / "var/lib/dhcp/dhclient.eth0.leases")
    report = run(tmp_path)
    assert report.checks[0].status is CheckStatus.ERROR
    assert codes(report) == ["input.unreadable"]


# -- end to end on the scenario trees ---------------------------------------------------------


def cli_check(tree: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    """`waagent-doctor check --root TREE --json` in-process: exit status and the report."""
    rc = cli.main(["check", "--root", str(tree), "--json"])
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return rc, report


@pytest.mark.parametrize(
    ("scenario", "source"),
    [
        ("dhcp-static-netplan", "/etc/netplan/01-static.yaml:"),
        ("dhcp-static-ifcfg", "/etc/sysconfig/network-scripts/ifcfg-eth0:"),
        ("dhcp-no-245", "/var/lib/dhcp/dhclient.eth0.leases:"),
    ],
)
def test_scenarios_raise_dhcp_disabled(
    scenario: str, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each DHCP scenario: dhcp.disabled (critical, cause 4) with file:line evidence, exit 2."""
    rc, report = cli_check(VMS / scenario, capsys)
    found = {f["code"]: f for f in report["findings"]}
    finding = found["dhcp.disabled"]
    assert finding["severity"] == "critical" and finding["cause"] == 4
    assert finding["evidence"][0]["source"].startswith(source)
    checks = {c["name"]: c["status"] for c in report["checks"]}
    assert checks["dhcp"] == "finding"
    assert report["mode"] == "offline" and report["status"] == "critical"
    assert rc == 2
