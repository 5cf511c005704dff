"""DHCP probe: real lease formats with option 245, and every interface-configuration format."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import DATA
from waagent_doctor.paths import Root
from waagent_doctor.probes import dhcp
from waagent_doctor.probes.dhcp import YamlMap, YamlScalar, YamlSeq

LEASES = DATA / "walinuxagent" / "dhcp"
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
WIRESERVER = "168.63.129.16"


def put(root: Path, guest: str, text: str) -> Path:
    """Write a guest file under the fake root."""
    p = root / guest.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def state(root: Path) -> dhcp.DhcpState:
    """The probe's reading of a tree."""
    return dhcp.read_state(Root(root), NOW)


# -- option 245 and leases ---------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["a8:3f:81:10", "a83f8110", "A8:3F:81:10;", '"a8:3f:81:10"'])
def test_decode_245(raw: str) -> None:
    """Both spellings (dhclient colons, networkd plain hex) decode to the WireServer."""
    assert dhcp.decode_245(raw) == WIRESERVER


@pytest.mark.parametrize("raw", ["", "a8:3f:81", "zz:3f:81:10", "a83f811", "a8:3f:81:10:00"])
def test_decode_245_rejects_junk(raw: str) -> None:
    """Anything but 4 bytes of hex is not an address."""
    assert dhcp.decode_245(raw) is None


def test_agent_fixture_dhclient_leases() -> None:
    """The agent's dhcp.leases: 3 leases, the middle one expired, all with 245."""
    text = (LEASES / "dhclient.leases").read_text()
    leases = dhcp.parse_dhclient(text, "/var/lib/dhcp/dhclient.eth0.leases", NOW)
    assert [lease.expired for lease in leases] == [False, True, False]
    assert {lease.option_245 for lease in leases} == {WIRESERVER}
    assert all(lease.interface == "eth0" and lease.authoritative for lease in leases)
    lines = text.splitlines()
    for lease in leases:
        assert lines[lease.line - 1].startswith("lease {")
        assert lease.option_245_line is not None
        assert "unknown-245" in lines[lease.option_245_line - 1]


def test_agent_fixture_custom_dns_leases_decode_what_they_say() -> None:
    """A lease whose 245 is not the usual address decodes to that address."""
    leases = dhcp.parse_dhclient((LEASES / "dhclient.leases.custom.dns").read_text(), "/l", NOW)
    assert [lease.option_245 for lease in leases] == ["168.63.129.1", "168.63.129.2", WIRESERVER]


def test_agent_fixture_networkd_lease() -> None:
    """systemd-networkd's lease: OPTION_245=a83f8110, authoritative."""
    lease = dhcp.parse_networkd((LEASES / "networkd-lease-2").read_text(), "/run/x/2")
    assert lease is not None and lease.option_245 == WIRESERVER and lease.authoritative
    assert lease.address == "10.0.0.69"


def test_dhclient_epoch_expiry() -> None:
    """db-time-format local writes `expire epoch N; # date`."""
    text = 'lease {\n  interface "eth0";\n  expire epoch 1434473934; # Tue Jun 16 2015\n}\n'
    (lease,) = dhcp.parse_dhclient(text, "/l", NOW)
    assert lease.expired and lease.option_245 is None


def test_nettools_address_only_lease_is_not_authoritative() -> None:
    """NetworkManager's nettools client saves only ADDRESS=: no evidence about options."""
    lease = dhcp.parse_networkd("ADDRESS=10.0.0.4\n", "/var/lib/NetworkManager/i.lease", "nm")
    assert lease is not None and not lease.authoritative and lease.option_245 is None


def test_nm_device_state_with_dhcp4_group() -> None:
    """/run/NetworkManager/devices/<ifindex> [dhcp4] private_245 shows 245; never authoritative."""
    text = (
        "[device]\nmanaged=true\n\n[dhcp4]\n"
        "dhcp_server_identifier=168.63.129.16\nprivate_245=a8:3f:81:10\n"
    )
    lease = dhcp.parse_nm_device_state(text, "/run/NetworkManager/devices/2")
    assert lease is not None and lease.option_245 == WIRESERVER and not lease.authoritative
    assert dhcp.parse_nm_device_state("[device]\nmanaged=true\n", "/d") is None


def test_wicked_lease_xml() -> None:
    """wicked writes unknown options as <unknown-245><code>245</code><data>a8:3f:81:10</data>."""
    xml = (
        b'<lease xmlns:ipv4="http://www.suse.com/ipv4"><family>ipv4</family><type>dhcp</type>'
        b"<ipv4:dhcp><address>10.0.0.4</address><options><unknown-245><code>245</code>"
        b"<data>a8:3f:81:10</data></unknown-245></options></ipv4:dhcp></lease>"
    )
    lease = dhcp.parse_wicked(xml, "/var/lib/wicked/lease-eth0-dhcp-ipv4.xml")
    assert lease is not None
    assert (lease.option_245, lease.interface, lease.address) == (WIRESERVER, "eth0", "10.0.0.4")


def test_wicked_xml_with_entities_is_refused(tmp_path: Path) -> None:
    """An XML bomb in a lease file is skipped as not a lease, never expanded."""
    bomb = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">]><lease>&a;</lease>'
    put(tmp_path, "/var/lib/wicked/lease-eth0-dhcp-ipv4.xml", bomb)
    got = state(tmp_path)
    assert got.leases == ()
    assert [s.path for s in got.skipped] == ["/var/lib/wicked/lease-eth0-dhcp-ipv4.xml"]


def test_read_leases_finds_every_place(tmp_path: Path) -> None:
    """dhclient (Debian and RHEL), networkd, NetworkManager internal and dhclient leases."""
    fixture = (LEASES / "dhclient.leases").read_text()
    put(tmp_path, "/var/lib/dhcp/dhclient.eth0.leases", fixture)
    put(tmp_path, "/var/lib/dhclient/dhclient--eth0.lease", fixture)
    put(tmp_path, "/var/lib/NetworkManager/dhclient-abc-eth0.lease", fixture)
    put(tmp_path, "/run/systemd/netif/leases/2", (LEASES / "networkd-lease-2").read_text())
    put(
        tmp_path,
        "/var/lib/NetworkManager/internal-abc-eth0.lease",
        (LEASES / "networkd-lease-2").read_text(),
    )
    got = state(tmp_path)
    kinds = sorted({lease.kind for lease in got.leases})
    assert kinds == ["dhclient", "networkd", "nm-dhclient", "nm-internal"]
    assert len(got.lease_files) == 5
    assert not got.run_empty


def test_fifo_lease_file_is_skipped_as_unreadable(tmp_path: Path) -> None:
    """A FIFO where a lease should be never blocks the probe."""
    (tmp_path / "var/lib/dhcp").mkdir(parents=True)
    os.mkfifo(tmp_path / "var/lib/dhcp/dhclient.eth0.leases")
    got = state(tmp_path)
    assert got.leases == () and got.skipped[0].unreadable


def test_empty_run_is_noticed(tmp_path: Path) -> None:
    """A rescue-VM disk: /run exists but is empty."""
    (tmp_path / "run").mkdir()
    assert state(tmp_path).run_empty


# -- the YAML subset ---------------------------------------------------------------------------


def test_yaml_block_flow_and_comments() -> None:
    """Maps, block and flow lists, flow maps, comments, quotes."""
    doc = dhcp.parse_yaml(
        "network:\n"
        "  version: 2  # v2\n"
        "  ethernets:\n"
        "    eth0:\n"
        "      dhcp4: 'yes'\n"
        '      addresses: [10.0.0.4/24, "fe80::1/64"]\n'
        "      dhcp4-overrides: {route-metric: 100}\n"
        "      nameservers:\n"
        "        addresses:\n"
        "        - 168.63.129.16\n"
    )
    assert isinstance(doc, YamlMap)
    network = doc.items["network"]
    assert isinstance(network, YamlMap)
    eths = network.items["ethernets"]
    assert isinstance(eths, YamlMap)
    eth0 = eths.items["eth0"]
    assert isinstance(eth0, YamlMap)
    dhcp4 = eth0.items["dhcp4"]
    assert isinstance(dhcp4, YamlScalar) and dhcp4.text == "yes" and dhcp4.line == 5
    addrs = eth0.items["addresses"]
    assert isinstance(addrs, YamlSeq)
    assert [a.text for a in addrs.items if isinstance(a, YamlScalar)] == [
        "10.0.0.4/24",
        "fe80::1/64",
    ]
    ns = eth0.items["nameservers"]
    assert isinstance(ns, YamlMap)
    ns_addrs = ns.items["addresses"]
    assert isinstance(ns_addrs, YamlSeq) and len(ns_addrs.items) == 1


# -- interface configuration -------------------------------------------------------------------

CLOUD_INIT_NETPLAN = """network:
    ethernets:
        eth0:
            dhcp4: true
            dhcp4-overrides:
                route-metric: 100
            dhcp6: false
            match:
                driver: hv_netvsc
                macaddress: 00:0d:3a:12:34:56
            set-name: eth0
    version: 2
"""


def test_netplan_cloud_init_is_dhcp(tmp_path: Path) -> None:
    """The normal Azure case: cloud-init's netplan with dhcp4: true."""
    put(tmp_path, "/etc/netplan/50-cloud-init.yaml", CLOUD_INIT_NETPLAN)
    got = state(tmp_path)
    assert got.primary == "eth0"
    (cfg,) = got.primary_configs()
    assert (cfg.method, cfg.tool, cfg.source) == (
        "dhcp",
        "netplan",
        "/etc/netplan/50-cloud-init.yaml:4",
    )


def test_netplan_static_secondary_does_not_hide_dhcp_primary(tmp_path: Path) -> None:
    """Trap: eth0 dhcp4: true and a static eth1: eth0 is primary and uses DHCP."""
    put(tmp_path, "/etc/netplan/50-cloud-init.yaml", CLOUD_INIT_NETPLAN)
    put(
        tmp_path,
        "/etc/netplan/60-eth1.yaml",
        "network:\n  version: 2\n  ethernets:\n    eth1:\n"
        "      addresses:\n        - 10.1.0.4/24\n",
    )
    got = state(tmp_path)
    assert got.primary == "eth0"
    assert [c.method for c in got.primary_configs()] == ["dhcp"]
    assert {c.interface: c.method for c in got.configs} == {"eth0": "dhcp", "eth1": "static"}


def test_netplan_later_file_overrides_earlier(tmp_path: Path) -> None:
    """netplan merges files in name order: 90-static.yaml turns eth0's DHCP off."""
    put(tmp_path, "/etc/netplan/50-cloud-init.yaml", CLOUD_INIT_NETPLAN)
    put(
        tmp_path,
        "/etc/netplan/90-static.yaml",
        "network:\n  ethernets:\n    eth0:\n      dhcp4: no\n      addresses: [10.0.0.4/24]\n",
    )
    (cfg,) = state(tmp_path).primary_configs()
    assert cfg.method == "static" and cfg.source == "/etc/netplan/90-static.yaml:5"


def test_ifcfg_rhel_static_and_comment_trap(tmp_path: Path) -> None:
    """Trap: `# BOOTPROTO=static` is a comment; BOOTPROTO=dhcp decides."""
    put(
        tmp_path,
        "/etc/sysconfig/network-scripts/ifcfg-eth0",
        'DEVICE=eth0\n# BOOTPROTO=static\nBOOTPROTO="dhcp"\nONBOOT=yes\n',
    )
    put(
        tmp_path, "/etc/sysconfig/network-scripts/ifcfg-eth0.bak", "DEVICE=eth0\nBOOTPROTO=static\n"
    )
    (cfg,) = state(tmp_path).primary_configs()
    assert (cfg.method, cfg.source) == ("dhcp", "/etc/sysconfig/network-scripts/ifcfg-eth0:3")


@pytest.mark.parametrize(
    ("body", "method"),
    [
        ("BOOTPROTO=none\nIPADDR=10.0.0.4\n", "static"),
        ("BOOTPROTO=static\n", "static"),
        ("IPADDR0=10.0.0.4\n", "static"),
        ("BOOTPROTO=bootp\n", "dhcp"),
    ],
)
def test_ifcfg_rhel_variants(tmp_path: Path, body: str, method: str) -> None:
    """none+IPADDR and a missing BOOTPROTO with an address are static; bootp is DHCP."""
    put(tmp_path, "/etc/sysconfig/network-scripts/ifcfg-eth0", body)
    (cfg,) = state(tmp_path).primary_configs()
    assert cfg.method == method


def test_ifcfg_suse(tmp_path: Path) -> None:
    """SUSE's /etc/sysconfig/network/ifcfg-eth0 with single quotes."""
    put(tmp_path, "/etc/sysconfig/network/ifcfg-eth0", "STARTMODE='auto'\nBOOTPROTO='dhcp'\n")
    (cfg,) = state(tmp_path).primary_configs()
    assert (cfg.method, cfg.detail) == ("dhcp", "BOOTPROTO=dhcp")


def test_ifupdown_with_sourced_directory(tmp_path: Path) -> None:
    """/etc/network/interfaces sources interfaces.d/*, where eth0 is static."""
    put(
        tmp_path,
        "/etc/network/interfaces",
        "auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n",
    )
    put(
        tmp_path,
        "/etc/network/interfaces.d/50-eth0",
        "auto eth0\niface eth0 inet static\n  address 10.0.0.4/24\niface eth0 inet6 dhcp\n",
    )
    (cfg,) = state(tmp_path).primary_configs()
    assert (cfg.method, cfg.tool, cfg.source) == (
        "static",
        "ifupdown",
        "/etc/network/interfaces.d/50-eth0:2",
    )


def test_networkd_network_files(tmp_path: Path) -> None:
    """A .network with Name=eth0 DHCP=ipv4; a vendor file of the same name is shadowed."""
    put(
        tmp_path,
        "/etc/systemd/network/10-eth0.network",
        "[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n",
    )
    put(
        tmp_path,
        "/usr/lib/systemd/network/10-eth0.network",
        "[Match]\nName=eth0\n[Network]\nAddress=10.0.0.4/24\n",
    )
    (cfg,) = state(tmp_path).primary_configs()
    assert (cfg.method, cfg.source) == ("dhcp", "/etc/systemd/network/10-eth0.network:5")


def test_networkd_static_glob_applies_to_eth0(tmp_path: Path) -> None:
    """`Name=e*` with Address= and DHCP=no applies to the primary interface."""
    put(tmp_path, "/etc/netplan/x.yaml", "network:\n  ethernets:\n    eth0:\n      dhcp4: false\n")
    put(
        tmp_path,
        "/etc/systemd/network/99-en.network",
        "[Match]\nName=e*\n[Network]\nDHCP=no\n[Address]\nAddress=10.0.0.4/24\n",
    )
    got = state(tmp_path)
    methods = sorted((c.tool, c.method) for c in got.primary_configs())
    assert methods == [("netplan", "unknown"), ("networkd", "static")]


def test_nm_keyfile_manual(tmp_path: Path) -> None:
    """NetworkManager keyfile [ipv4] method=manual for eth0."""
    put(
        tmp_path,
        "/etc/NetworkManager/system-connections/eth0.nmconnection",
        "[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n\n"
        "[ipv4]\naddress1=10.0.0.4/24,10.0.0.1\nmethod=manual\n",
    )
    (cfg,) = state(tmp_path).primary_configs()
    assert (cfg.method, cfg.source) == (
        "static",
        "/etc/NetworkManager/system-connections/eth0.nmconnection:8",
    )
    assert "10.0.0.4/24" in cfg.detail


def test_nm_keyfile_without_interface_applies_to_any(tmp_path: Path) -> None:
    """A keyfile with no interface-name and no [ipv4] is DHCP for any ethernet device."""
    put(
        tmp_path,
        "/etc/NetworkManager/system-connections/Wired.nmconnection",
        "[connection]\nid=Wired\ntype=ethernet\n",
    )
    got = state(tmp_path)
    assert got.primary is None
    (cfg,) = got.primary_configs()
    assert (cfg.interface, cfg.method) == (dhcp.ANY, "dhcp")


def test_primary_is_first_configured_when_no_eth0(tmp_path: Path) -> None:
    """Without eth0 the first configured interface by name is primary; lo never is."""
    put(tmp_path, "/etc/network/interfaces", "iface lo inet static\niface ens5 inet dhcp\n")
    assert state(tmp_path).primary == "ens5"


def test_networkd_container_templates_are_ignored(tmp_path: Path) -> None:
    """systemd's 80-container-*.network (Virtualization=/Kind= matches) are not VM config."""
    put(
        tmp_path,
        "/usr/lib/systemd/network/80-container-ve.network",
        "[Match]\nName=ve-*\nDriver=veth\nVirtualization=!container\n\n"
        "[Network]\nAddress=0.0.0.0/28\nLinkLocalAddressing=yes\nDHCPServer=yes\n",
    )
    put(
        tmp_path,
        "/usr/lib/systemd/network/80-container-host0.network",
        "[Match]\nKind=veth\nName=host0\nVirtualization=container\n\n[Network]\nDHCP=yes\n",
    )
    got = state(tmp_path)
    assert got.configs == () and got.primary is None
