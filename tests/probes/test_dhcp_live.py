"""Live DHCP probe: the primary interface and its manager's view, from stand-in programs.

The stand-ins in tests/probes/bin_dhcp print the real output formats of networkctl and nmcli
(sources cited in each); the interface named by the fake /proc/net/route picks the scenario.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.conftest import DATA
from waagent_doctor.config import Settings
from waagent_doctor.host import CommandRunner, Host
from waagent_doctor.paths import Root
from waagent_doctor.probes import dhcp_live
from waagent_doctor.probes.dhcp_live import LiveDhcp

HERE = Path(__file__).resolve().parent
BIN = HERE / "bin_dhcp"
BIN_V252 = HERE / "bin_dhcp_v252"
LEASE = DATA / "walinuxagent" / "dhcp" / "networkd-lease-2"
WIRESERVER = "168.63.129.16"
STUBS = ("networkctl", "nmcli")
# /proc/net/route as Linux writes it (captured on a Debian 12 machine, interface renamed).
PROC_ROUTE = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"
    "                                                       \n"
    "{ifname}\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0"
    "                                                                               \n"
    "{ifname}\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0"
    "                                                                               \n"
)


def guest(tmp: Path, ifname: Optional[str]) -> Path:
    """A guest tree whose default route goes out of ifname (None: no /proc/net/route)."""
    root = tmp / "root"
    root.mkdir(exist_ok=True)
    if ifname is not None:
        (root / "proc/net").mkdir(parents=True, exist_ok=True)
        (root / "proc/net/route").write_text(PROC_ROUTE.format(ifname=ifname))
    return root


def observe(root: Path, allow: Any, path: str = f"{BIN}:/usr/bin:/bin") -> LiveDhcp:
    """Run the probe live on the tree with PATH (default: the stand-ins, then sh's tools)."""
    host = Host(Root(root), True, datetime.now(timezone.utc), CommandRunner(path))
    with allow(*STUBS, "sleep"):
        return dhcp_live.probe(host, Settings())


# -- parsers on real formats -------------------------------------------------------------------


def test_proc_route_picks_the_lowest_metric_default() -> None:
    """Two defaults: the lower metric wins; the subnet route and a down route are ignored."""
    text = PROC_ROUTE.format(ifname="eth0") + (
        "eth1\t00000000\t0101000A\t0003\t0\t0\t50\t00000000\t0\t0\t0\n"
        "eth2\t00000000\t0101000A\t0002\t0\t0\t1\t00000000\t0\t0\t0\n"  # not RTF_UP
    )
    text = text.replace("\t0\t0\t0\t00000000", "\t0\t0\t100\t00000000", 1)
    route = dhcp_live.parse_proc_route(text)
    assert route is not None
    assert (route.interface, route.source) == ("eth1", "/proc/net/route:4")
    assert route.detail == "eth1 default via 10.0.1.1 metric 50"


def test_proc_route_without_default() -> None:
    """Only the header and a subnet route: no primary interface."""
    lines = PROC_ROUTE.format(ifname="eth0").splitlines()
    assert dhcp_live.parse_proc_route("\n".join([lines[0], lines[2]])) is None


def test_systemd_version_line() -> None:
    """The first line of `networkctl --version`."""
    assert dhcp_live.systemd_version("systemd 252 (252.39-1~deb12u2)\n+PAM") == 252
    assert dhcp_live.systemd_version("networkctl: unrecognized option") is None


def test_nmcli_terse_unescapes() -> None:
    """With escaping left on, nmcli writes `a8\\:3f`; both spellings give the same value."""
    fields = dhcp_live.parse_nmcli("DHCP4.OPTION[9]:private_245 = a8\\:3f\\:81\\:10\n")
    assert fields == {"DHCP4.OPTION[9]": "private_245 = a8:3f:81:10"}


def test_wicked_xml_shows_245_only() -> None:
    """wicked's <unknown-245> decodes; its absence is no view at all (never evidence)."""
    xml = b"<lease><unknown-245><code>245</code><data>a8:3f:81:10</data></unknown-245></lease>"
    view = dhcp_live.wicked_view(xml, "wicked show-xml eth0")
    assert view.managed and view.option_245 == WIRESERVER and not view.authoritative
    assert not dhcp_live.wicked_view(b"<lease/>", "w").managed


# -- systemd-networkd ---------------------------------------------------------------------------


def test_networkd_lease_with_245(tmp_path: Path, allow_subprocess: Any) -> None:
    """systemd 256: DHCPv4Client.PrivateOptions carries 245."""
    live = observe(guest(tmp_path, "eth0"), allow_subprocess)
    view = live.manager()
    assert live.primary == "eth0" and live.route is not None
    assert live.route.source == "/proc/net/route:2"
    assert view is not None and view.tool == "networkd"
    assert (view.dhcp, view.lease, view.option_245, view.authoritative) == (
        True,
        True,
        WIRESERVER,
        True,
    )
    assert view.source == "networkctl --json=short status eth0"
    assert '"PrivateOptionData":"a83f8110"' in view.detail and "10.0.0.4/24" in view.detail


def test_networkd_lease_without_245(tmp_path: Path, allow_subprocess: Any) -> None:
    """systemd 256 lists every private option: 250 but no 245 is evidence."""
    view = observe(guest(tmp_path, "eth1"), allow_subprocess).manager()
    assert view is not None
    assert (view.lease, view.option_245, view.authoritative) == (True, None, True)
    assert "no option 245" in view.detail


def test_networkd_static(tmp_path: Path, allow_subprocess: Any) -> None:
    """Managed, no DHCPv4Client, a static address: DHCP off, with the .network file named."""
    view = observe(guest(tmp_path, "eth2"), allow_subprocess).manager()
    assert view is not None and view.dhcp is False
    assert "10.0.0.9/24 (ConfigSource=static)" in view.detail
    assert "NetworkFile=/etc/systemd/network/10-eth2.network" in view.detail


@pytest.mark.parametrize("with_245", [True, False])
def test_networkd_252_reads_the_lease_file(
    tmp_path: Path, allow_subprocess: Any, with_245: bool
) -> None:
    """systemd 252 shows no options: /run/systemd/netif/leases/<Index> decides."""
    root = guest(tmp_path, "eth3")
    text = LEASE.read_text()
    if not with_245:
        text = text.replace("OPTION_245=a83f8110\n", "")
    (root / "run/systemd/netif/leases").mkdir(parents=True)
    (root / "run/systemd/netif/leases/5").write_text(text)
    view = observe(root, allow_subprocess, f"{BIN_V252}:{BIN}:/usr/bin:/bin").manager()
    assert view is not None and view.lease and view.authoritative
    assert view.option_245 == (WIRESERVER if with_245 else None)
    assert view.source.endswith("; /run/systemd/netif/leases/5")


def test_networkd_252_without_lease_file_proves_nothing(
    tmp_path: Path, allow_subprocess: Any
) -> None:
    """systemd 252, DHCP address, no lease file readable: a lease, but not authoritative."""
    view = observe(
        guest(tmp_path, "eth3"), allow_subprocess, f"{BIN_V252}:{BIN}:/usr/bin:/bin"
    ).manager()
    assert view is not None and view.lease and not view.authoritative and not view.option_245


def test_networkctl_junk_is_a_note(tmp_path: Path, allow_subprocess: Any) -> None:
    """Output that is not JSON: a note, then the next manager is asked."""
    live = observe(guest(tmp_path, "junk0"), allow_subprocess)
    assert live.manager() is None
    assert any("no JSON object for junk0" in n for n in live.notes)


# -- NetworkManager ----------------------------------------------------------------------------


def test_nm_lease_with_245_after_networkd_declines(tmp_path: Path, allow_subprocess: Any) -> None:
    """networkd says unmanaged; NetworkManager's lease has private_245."""
    live = observe(guest(tmp_path, "eth4"), allow_subprocess)
    assert [v.tool for v in live.views] == ["networkd", "networkmanager"]
    view = live.manager()
    assert view is not None and view.tool == "networkmanager"
    assert view.option_245 == WIRESERVER and view.authoritative
    assert "DHCP4.OPTION:private_245 = a8:3f:81:10" in view.detail


def test_nm_lease_without_245(tmp_path: Path, allow_subprocess: Any) -> None:
    """A lease of 17 options and none is private_245."""
    view = observe(guest(tmp_path, "eth5"), allow_subprocess).manager()
    assert view is not None and view.lease and view.option_245 is None
    assert not view.authoritative, "NetworkManager's option list does not prove 245 absent"
    assert "17 options, no private_245" in view.detail


def test_nm_manual_method(tmp_path: Path, allow_subprocess: Any) -> None:
    """No DHCP4 options; the active connection's ipv4.method is manual."""
    view = observe(guest(tmp_path, "eth6"), allow_subprocess).manager()
    assert view is not None and view.dhcp is False
    assert "ipv4.method:manual" in view.detail
    assert "connection show id System eth6" in view.source


def test_nm_externally_connected_is_not_managed(tmp_path: Path, allow_subprocess: Any) -> None:
    """`connected (externally)`: NetworkManager only watches; nobody is asked to judge."""
    live = observe(guest(tmp_path, "eth8"), allow_subprocess)
    assert live.manager() is None
    assert "no running manager says it manages eth8" in live.summary()


def test_no_manager_running_is_not_an_error(tmp_path: Path, allow_subprocess: Any) -> None:
    """networkd and NetworkManager both stopped: notes with their own words, no view."""
    live = observe(guest(tmp_path, "eth7"), allow_subprocess)
    assert live.available and live.manager() is None
    summary = live.summary()
    assert "Failed to connect system bus" in summary
    assert "exit 8: Error: NetworkManager is not running." in summary


def test_hanging_nmcli_is_cut_by_the_timeout(tmp_path: Path, allow_subprocess: Any) -> None:
    """nmcli never answers: the probe returns after its timeout with a note."""
    began = time.monotonic()
    live = observe(guest(tmp_path, "eth9"), allow_subprocess)
    assert time.monotonic() - began < dhcp_live.TIMEOUT + 3
    assert any("timed out after" in n for n in live.notes)


# -- the primary interface ----------------------------------------------------------------------


def test_no_proc_route(tmp_path: Path, allow_subprocess: Any) -> None:
    """A tree without /proc/net/route: no primary interface, no command run, the reason given."""
    live = observe(guest(tmp_path, None), allow_subprocess)
    assert not live.available and live.views == ()
    assert (
        live.reason == "no primary interface: no IPv4 default route; /proc/net/route: no such file"
    )


def test_no_default_route(tmp_path: Path, allow_subprocess: Any) -> None:
    """Only a subnet route: not available, and says why."""
    root = guest(tmp_path, "eth0")
    lines = (root / "proc/net/route").read_text().splitlines()
    (root / "proc/net/route").write_text("\n".join([lines[0], lines[2]]) + "\n")
    live = observe(root, allow_subprocess, str(tmp_path / "empty"))
    assert not live.available and live.reason.startswith("no primary interface")


def test_no_tools_at_all(tmp_path: Path, allow_subprocess: Any) -> None:
    """A default route, no manager on PATH: available, nothing asked, said so."""
    live = observe(guest(tmp_path, "eth0"), allow_subprocess, str(tmp_path / "empty"))
    assert live.available and live.views == ()
    assert "no networkctl, nmcli or wicked to ask" in live.summary()


def test_offline_asks_nothing(tmp_path: Path) -> None:
    """Offline (no runner): no command runs, not available."""
    live = dhcp_live.probe(
        Host.offline(str(guest(tmp_path, "eth0")), datetime.now(timezone.utc)), Settings()
    )
    assert not live.available and "offline" in live.reason


def test_early_networkd_json_says_setupstate() -> None:
    """The first networkctl JSON (before AdministrativeState) named the link state SetupState."""
    link = {"Name": "eth0", "SetupState": "configured", "Addresses": []}
    view = dhcp_live.networkd_view(link, 250, "networkctl --json=short status eth0")
    assert view.managed and view.detail == "SetupState=configured"
