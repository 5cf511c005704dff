"""dhcp, live: the primary interface's manager decides when it says enough, else the files do."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.conftest import DATA
from tests.probes.test_dhcp_live import BIN, PROC_ROUTE
from waagent_doctor.config import Settings
from waagent_doctor.engine import diagnose
from waagent_doctor.host import CommandRunner, Host
from waagent_doctor.model import CheckStatus, Report
from waagent_doctor.paths import Root

STUBS = ("networkctl", "nmcli")
LEASE_WITHOUT_245 = (
    (DATA / "walinuxagent" / "dhcp" / "networkd-lease-2")
    .read_text()
    .replace("OPTION_245=a83f8110\n", "")
)


def put(root: Path, guest: str, text: str) -> None:
    """Write a guest file under the fake root."""
    p = root / guest.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def run(tmp: Path, ifname: str, allow: Any) -> Report:
    """Only the dhcp check, live, default route out of ifname, the stand-ins on PATH."""
    root = tmp / "root"
    put(root, "/proc/net/route", PROC_ROUTE.format(ifname=ifname))
    runner = CommandRunner(f"{BIN}:/usr/bin:/bin")
    host = Host(Root(root), True, datetime.now(timezone.utc), runner, True)
    with allow(*STUBS):
        return diagnose(host, Settings(), only={"dhcp"})


def codes(report: Report) -> list[str]:
    """Finding codes of a report."""
    return [f.code for f in report.findings]


def test_live_245_clears_a_static_file(tmp_path: Path, allow_subprocess: Any) -> None:
    """A stale ifcfg says static, but networkd holds a lease with 245: no finding."""
    put(tmp_path / "root", "/etc/sysconfig/network-scripts/ifcfg-eth0", "BOOTPROTO=static\n")
    report = run(tmp_path, "eth0", allow_subprocess)
    assert codes(report) == [] and report.checks[0].status is CheckStatus.OK


def test_live_245_clears_a_file_lease_without_245(tmp_path: Path, allow_subprocess: Any) -> None:
    """An old networkd lease file without 245 on disk; the running client's lease has it."""
    put(tmp_path / "root", "/run/systemd/netif/leases/9", LEASE_WITHOUT_245)
    assert codes(run(tmp_path, "eth0", allow_subprocess)) == []


def test_networkd_lease_without_245_raises(tmp_path: Path, allow_subprocess: Any) -> None:
    """systemd 256 lists the lease's private options and 245 is not there."""
    report = run(tmp_path, "eth1", allow_subprocess)
    assert codes(report) == ["dhcp.disabled"]
    (ev,) = report.findings[0].evidence
    assert ev.source == "networkctl --json=short status eth1"
    assert "eth1 is managed by networkd" in ev.detail and "no option 245" in ev.detail


def test_networkd_static_raises(tmp_path: Path, allow_subprocess: Any) -> None:
    """networkd runs eth2 with a static address and no DHCP client."""
    report = run(tmp_path, "eth2", allow_subprocess)
    assert codes(report) == ["dhcp.disabled"]
    (ev,) = report.findings[0].evidence
    assert "DHCP off" in ev.detail and "10.0.0.9/24" in ev.detail


def test_nm_manual_raises_with_both_commands(tmp_path: Path, allow_subprocess: Any) -> None:
    """NetworkManager's connection for eth6 is ipv4.method manual."""
    report = run(tmp_path, "eth6", allow_subprocess)
    assert codes(report) == ["dhcp.disabled"]
    (ev,) = report.findings[0].evidence
    assert ev.source.startswith("nmcli -t -e no -f GENERAL.STATE,GENERAL.CONNECTION,DHCP4")
    assert "ipv4.method:manual" in ev.detail


def test_nm_lease_without_245_is_not_a_finding(tmp_path: Path, allow_subprocess: Any) -> None:
    """NetworkManager's lease of eth5 lists no private_245: not proof, so no critical."""
    report = run(tmp_path, "eth5", allow_subprocess)
    assert codes(report) == []
    (result,) = [c for c in report.checks if c.name == "dhcp"]
    assert result.status.value in ("ok", "skipped")


def test_no_manager_no_lease_is_not_raised(tmp_path: Path, allow_subprocess: Any) -> None:
    """Nothing manages eth7 and no lease file exists: skipped, saying what was asked."""
    put(tmp_path / "root", "/etc/netplan/50-cloud-init.yaml", "network:\n  version: 2\n")
    report = run(tmp_path, "eth7", allow_subprocess)
    assert codes(report) == [] and report.checks[0].status is CheckStatus.SKIPPED
    assert "live DHCP probe: primary interface eth7" in report.checks[0].reason
    assert "NetworkManager is not running" in report.checks[0].reason


def test_no_manager_leaves_the_files_to_judge(tmp_path: Path, allow_subprocess: Any) -> None:
    """Nothing manages eth7, but a current networkd lease file lacks 245: the files raise."""
    put(tmp_path / "root", "/run/systemd/netif/leases/2", LEASE_WITHOUT_245)
    report = run(tmp_path, "eth7", allow_subprocess)
    assert codes(report) == ["dhcp.disabled"]
    assert report.findings[0].evidence[0].source == "/run/systemd/netif/leases/2:1"
