"""Build fake Azure VM guest trees for tests: a healthy base tree, then overrides.

The files follow the real agent's formats (tests/data/walinuxagent/, copied from
Azure/WALinuxAgent). `python -m tests.vmtree` regenerates the static trees under
tests/data/vms/ (healthy-*, ext-*) and the demo sample examples/broken-vm/.
"""

# ruff: noqa: E501  -- the builder writes real-format fixture text: agent log records, blob URLs
# and JSON lines are longer than 100 characters, and wrapping them would hide their shape.

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

TESTS = Path(__file__).resolve().parent
PROJECT = TESTS.parent
FIXTURES = TESTS / "data" / "walinuxagent"
VMS = TESTS / "data" / "vms"
EXAMPLE = PROJECT / "examples" / "broken-vm"

VMSNAPSHOT = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"
CUSTOMSCRIPT = "Microsoft.Azure.Extensions.CustomScript"
# The newest record in every tree's waagent.log: offline, --as-of defaults to it.
AS_OF = datetime(2025, 11, 20, 10, 0, 0, tzinfo=timezone.utc)
THUMBPRINT = "1AF52E2E892C3A0DBC589F301F80073CBA924E26"


@dataclass(frozen=True)
class Distro:
    """What differs per distribution in a guest tree."""

    key: str
    os_release: str
    conf: str  # tests/data/walinuxagent/etc/waagent_conf/<conf>/waagent.conf
    unit_fixture: str  # tests/data/walinuxagent/systemd/<...>
    unit_path: str
    daemon_version: str
    pylib: str
    leases: tuple[tuple[str, str], ...]  # (guest path, fixture under dhcp/)
    net_config: tuple[tuple[str, str], ...]  # (guest path, content)
    python: str


DISTROS: dict[str, Distro] = {
    "ubuntu": Distro(
        key="ubuntu",
        os_release='PRETTY_NAME="Ubuntu 22.04.5 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
        'VERSION="22.04.5 LTS (Jammy Jellyfish)"\nVERSION_CODENAME=jammy\nID=ubuntu\n'
        "ID_LIKE=debian\nUBUNTU_CODENAME=jammy\n",
        conf="ubuntu",
        unit_fixture="ubuntu/walinuxagent.service",
        unit_path="/lib/systemd/system/walinuxagent.service",
        daemon_version="2.2.46",
        pylib="/usr/lib/python3/dist-packages",
        leases=(
            ("/var/lib/dhcp/dhclient.eth0.leases", "dhclient.leases"),
            ("/run/systemd/netif/leases/2", "networkd-lease-2"),
        ),
        net_config=(
            (
                "/etc/netplan/50-cloud-init.yaml",
                "network:\n    ethernets:\n        eth0:\n            dhcp4: true\n"
                "            dhcp4-overrides:\n                route-metric: 100\n"
                "            match:\n                driver: hv_netvsc\n"
                "                macaddress: 00:0d:3a:12:34:56\n"
                "            set-name: eth0\n    version: 2\n",
            ),
        ),
        python="3.10",
    ),
    "debian": Distro(
        key="debian",
        os_release='PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
        'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n',
        conf="ubuntu",
        unit_fixture="tests_data_init/walinuxagent.service",
        unit_path="/lib/systemd/system/walinuxagent.service",
        daemon_version="2.2.49.2",
        pylib="/usr/lib/python3/dist-packages",
        leases=(("/var/lib/dhcp/dhclient.eth0.leases", "dhclient.leases"),),
        net_config=(
            (
                "/etc/network/interfaces.d/50-cloud-init",
                "auto lo\niface lo inet loopback\n\nauto eth0\nallow-hotplug eth0\n"
                "iface eth0 inet dhcp\n",
            ),
        ),
        python="3.11",
    ),
    "rhel": Distro(
        key="rhel",
        os_release='NAME="Red Hat Enterprise Linux"\nVERSION="9.4 (Plow)"\nID="rhel"\n'
        'ID_LIKE="fedora"\nVERSION_ID="9.4"\nPLATFORM_ID="platform:el9"\n'
        'PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"\n',
        conf="generic",
        unit_fixture="redhat/waagent.service",
        unit_path="/usr/lib/systemd/system/waagent.service",
        daemon_version="2.7.0.6",
        pylib="/usr/lib/python3.9/site-packages",
        leases=(
            (
                "/var/lib/NetworkManager/internal-5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03-eth0.lease",
                "networkd-lease-2",
            ),
        ),
        net_config=(
            (
                "/etc/sysconfig/network-scripts/ifcfg-eth0",
                "DEVICE=eth0\nONBOOT=yes\nBOOTPROTO=dhcp\nTYPE=Ethernet\nUSERCTL=no\n"
                "PEERDNS=yes\nIPV6INIT=no\nNM_CONTROLLED=yes\n",
            ),
        ),
        python="3.9",
    ),
    "sles": Distro(
        key="sles",
        os_release='NAME="SLES"\nVERSION="15-SP5"\nVERSION_ID="15.5"\n'
        'PRETTY_NAME="SUSE Linux Enterprise Server 15 SP5"\nID="sles"\n'
        'ID_LIKE="suse"\nCPE_NAME="cpe:/o:suse:sles:15:sp5"\n',
        conf="suse",
        unit_fixture="sles/waagent.service",
        unit_path="/usr/lib/systemd/system/waagent.service",
        daemon_version="2.9.1.1",
        pylib="/usr/lib/python3.6/site-packages",
        leases=(("/var/lib/dhcp/dhclient.eth0.leases", "dhclient.leases"),),
        net_config=(
            (
                "/etc/sysconfig/network/ifcfg-eth0",
                "BOOTPROTO='dhcp'\nDHCLIENT_SET_DEFAULT_ROUTE='yes'\nSTARTMODE='auto'\n",
            ),
        ),
        python="3.6",
    ),
}


def ticks(when: datetime) -> int:
    """datetime -> .NET ticks (100 ns since 0001-01-01 UTC)."""
    delta = when - datetime(1, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def iso(when: datetime) -> str:
    """2025-11-20T10:00:00Z"""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def log_time(when: datetime) -> str:
    """waagent.log record time: 2025-11-20T10:00:00.123456Z"""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Plugin:
    """One extension requested by a goal state."""

    name: str
    version: str
    seq_no: int
    state: str = "enabled"


@dataclass
class GoalStateSpec:
    """One goal state as the agent saved it."""

    received: datetime
    incarnation: int
    plugins: list[Plugin]
    ga_version: Optional[str] = "2.15.0.1"
    agent_reported: Optional[str] = "2.15.0.1"
    handler_statuses: dict[str, tuple[str, int]] = field(default_factory=dict)


def _read_fixture(rel: str) -> str:
    return (FIXTURES / rel).read_text(encoding="utf-8")


def vmsnapshot_status(
    status: str, code: int, message: str, when: datetime, *, operation: str = "Enable"
) -> list[Any]:
    """A VMSnapshot status file: the real sample (facts §2a) with status, code, message, time."""
    doc: list[Any] = json.loads(
        _read_fixture("var_lib_waagent/handler/status/sample-status.vmsnapshot.json")
    )
    if status == "success" and code == 1 and not message:
        doc[0]["timestampUTC"] = iso(when)
        return doc
    st = doc[0]["status"]
    st["status"], st["code"], st["operation"] = status, code, operation
    st["formattedMessage"]["message"] = message
    inner = json.loads(st["substatus"][0]["name"])
    inner[0]["status"]["status"] = status
    inner[0]["status"]["code"] = str(code)
    inner[0]["status"]["formattedMessage"]["message"] = message
    inner[0]["status"]["snapshotInfo"] = (
        [] if status != "success" else inner[0]["status"]["snapshotInfo"]
    )
    inner[0]["timestampUTC"] = f"\\/Date({int(when.timestamp() * 1000)})\\/"
    st["substatus"][0]["name"] = json.dumps(inner)
    st["substatus"][0]["status"] = (
        status if status in ("success", "error", "transitioning", "warning") else "error"
    )
    doc[0]["timestampUTC"] = iso(when)
    return doc


def simple_status(name: str, status: str, code: int, message: str, when: datetime) -> list[Any]:
    """A plain extension status file (facts §2a)."""
    return [
        {
            "version": "1.0",
            "timestampUTC": iso(when),
            "status": {
                "name": name,
                "operation": "Enable",
                "status": status,
                "code": code,
                "formattedMessage": {"lang": "en-US", "message": message},
                "substatus": None,
            },
        }
    ]


class VmTree:
    """A guest tree on disk: write guest paths, set mtimes, remove files."""

    def __init__(self, base: Path, distro: Distro, generation: str) -> None:
        self.base = base
        self.distro = distro
        self.generation = generation

    def host(self, guest: str) -> Path:
        """The host path of a guest path."""
        return self.base / guest.lstrip("/")

    def write(
        self,
        guest: str,
        content: str | bytes,
        *,
        mtime: Optional[datetime] = None,
        mode: int = 0o644,
    ) -> Path:
        """Write a guest file (parents created)."""
        p = self.host(guest)
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            p.write_text(content, encoding="utf-8")
        else:
            p.write_bytes(content)
        os.chmod(p, mode)
        if mtime is not None:
            ts = mtime.timestamp()
            os.utime(p, (ts, ts))
        return p

    def write_json(
        self, guest: str, data: Any, *, mtime: Optional[datetime] = None, indent: Optional[int] = 4
    ) -> Path:
        """Write a guest JSON file."""
        return self.write(guest, json.dumps(data, indent=indent), mtime=mtime)

    def read(self, guest: str) -> str:
        """A guest file's text."""
        return self.host(guest).read_text(encoding="utf-8")

    def remove(self, guest: str) -> None:
        """Remove a guest file or folder."""
        p = self.host(guest)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()

    def append_log(self, lines: list[str]) -> None:
        """Append records to /var/log/waagent.log."""
        with self.host("/var/log/waagent.log").open("a", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for line in lines))

    # -- extension handler helpers ------------------------------------------------------------
    def handler_dir(self, name: str, version: str) -> str:
        """Guest path of a handler folder."""
        return f"/var/lib/waagent/{name}-{version}"

    def set_status(self, name: str, version: str, seq: int, doc: Any, when: datetime) -> str:
        """Write status/<seq>.status of a handler."""
        guest = f"{self.handler_dir(name, version)}/status/{seq}.status"
        self.write_json(guest, doc, mtime=when)
        return guest

    def vmsnapshot(
        self,
        seq: int,
        status: str,
        code: int,
        message: str,
        when: datetime,
        version: str = "1.0.9225.0",
    ) -> str:
        """Write a VMSnapshot status file."""
        return self.set_status(
            VMSNAPSHOT, version, seq, vmsnapshot_status(status, code, message, when), when
        )


# -- the pieces of a base tree ----------------------------------------------------------------


def _extensions_config(gs: GoalStateSpec, *, redacted: bool) -> str:
    # Structure of tests/data/hibernate/goal_state_1/ExtensionsConfig.xml (history copy,
    # redacted) and tests/data/wire/ext_conf_redact.xml (legacy copy, SAS kept).
    sas = (
        "***REDACTED***"
        if redacted
        else (
            "sv=2018-03-28&amp;sr=b&amp;sk=system-1&amp;sig=9ZzZZzZZZZ999zzz%2bzz99zzZzZZZ99999zz%2b9ZZZ%3d"
            "&amp;se=9999-01-01T00%3a00%3a00Z&amp;sp=w"
        )
    )
    protected = (
        "***REDACTED***"
        if redacted
        else "MIIB8wYJKoZIhvcNAQcDoIIB5DCCAeACAQAxggFpMIIBZQIBADBNMDkxNzA1BgoJkiaJk/IsZAEZFidXaW5kb3dzIEF6dXJlIENSUCBDZXJ0aWZpY2F0ZSBHZW5lcmF0b3I="
    )
    version = f"\n      <Version>{gs.ga_version}</Version>" if gs.ga_version else ""
    plugins = []
    settings = []
    for p in gs.plugins:
        mid = (
            "5237dd14-0aad-f051-0fad-1e33e1b63091"
            if p.name == CUSTOMSCRIPT
            else "2b2a2b39-5c21-4d8c-9f7b-3d0e0c2f7a11"
        )
        plugins.append(
            f'  <Plugin name="{p.name}" version="{p.version}" '
            f'location="https://umsawhl4grhgzs0z1rmq.blob.core.windows.net/{mid}/{mid}_manifest.xml" '
            f'state="{p.state}" autoUpgrade="true" '
            f'failoverlocation="https://umsalhsl5scrdmt03dql.blob.core.windows.net/{mid}/{mid}_manifest.xml" '
            'runAsStartupTask="false" isJson="true" useExactVersion="true">\n'
            "    <additionalLocations>\n"
            f"      <additionalLocation>https://umsalvlwk4lfvxs4w05v.blob.core.windows.net/{mid}/{mid}_manifest.xml</additionalLocation>\n"
            "    </additionalLocations>\n  </Plugin>"
        )
        public = (
            '"publicSettings": {"locale": "en-us", "taskId": "767baff0-3f1e-4363-a974-5d801189250d", '
            '"commandToExecute": "snapshot", "vmType": "microsoft.compute/virtualmachines"}'
            if p.name == VMSNAPSHOT
            else '"publicSettings": {}'
        )
        settings.append(
            f'  <Plugin name="{p.name}" version="{p.version}">\n'
            f'    <RuntimeSettings seqNo="{p.seq_no}">{{\n  "runtimeSettings": [\n    {{\n'
            '      "handlerSettings": {\n'
            f'        "protectedSettingsCertThumbprint": "{THUMBPRINT}",\n'
            f'        "protectedSettings": "{protected}",\n'
            f"        {public}\n"
            "      }\n    }\n  ]\n}</RuntimeSettings>\n  </Plugin>"
        )
    created = ticks(gs.received - timedelta(seconds=7))
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<Extensions version="1.0.0.0" goalStateIncarnation="{gs.incarnation}">'
        '<GuestAgentExtension xmlns:i="http://www.w3.org/2001/XMLSchema-instance">\n'
        "  <GAFamilies>\n    <GAFamily>\n"
        "      <IsVMEnabledForRSMUpgrades>false</IsVMEnabledForRSMUpgrades>\n"
        "      <IsVersionFromRSM>false</IsVersionFromRSM>\n"
        "      <Name>Prod</Name>\n      <Uris>\n"
        "        <Uri>https://umsas3lpnprqfsznclrr.blob.core.windows.net/568bb00f-455e-32b8-8deb-0e1bf1636254/568bb00f-455e-32b8-8deb-0e1bf1636254_manifest.xml</Uri>\n"
        f"      </Uris>{version}\n"
        "    </GAFamily>\n  </GAFamilies>\n  <Location>westeurope</Location>\n"
        "  <ServiceName>CRP</ServiceName>\n</GuestAgentExtension>\n"
        '<StatusUploadBlob statusBlobType="PageBlob">https://md-hdd-x1y2z3w4v5u6.z38.blob.storage.azure.net/$system/'
        f"vm01.667ae9f0-1a2b-4c3d-8e9f-0a1b2c3d4e5f.status?{sas}</StatusUploadBlob>\n"
        "<Plugins>\n" + "\n".join(plugins) + "\n</Plugins>\n"
        "<PluginSettings>\n" + "\n".join(settings) + "\n</PluginSettings>\n"
        "<InVMArtifactsProfileBlob>https://md-hdd-x1y2z3w4v5u6.z38.blob.storage.azure.net/$system/"
        f"vm01.667ae9f0-1a2b-4c3d-8e9f-0a1b2c3d4e5f.vmSettings?{sas}</InVMArtifactsProfileBlob>\n"
        f'<InVMGoalStateMetaData inSvdSeqNo="{gs.incarnation + 8}" createdOnTicks="{created}" '
        'activityId="f32f99b5-4347-4ad2-b901-6e795254ac5b" correlationId="6dcbeebc-d90e-4c71-b058-6ac175dc65ee" />'
        "</Extensions>"
    )


def _goal_state_xml(incarnation: int) -> str:
    # tests/data/hibernate/goal_state_1/GoalState.xml with this incarnation
    text = _read_fixture("var_lib_waagent/history_example/hibernate_goal_state_1/GoalState.xml")
    text = text.replace("<Incarnation>1</Incarnation>", f"<Incarnation>{incarnation}</Incarnation>")
    return text.replace("incarnation=1<", f"incarnation={incarnation}<")


def _waagent_status(gs: GoalStateSpec, when: datetime, distro: Distro) -> dict[str, Any]:
    # wire.py vm_status_to_v1 (facts §6b)
    handlers = []
    for p in gs.plugins:
        hstatus, code = gs.handler_statuses.get(p.name, ("Ready", 0))
        ext_status = "success" if hstatus == "Ready" else "error"
        handlers.append(
            {
                "handlerVersion": p.version,
                "handlerName": p.name,
                "status": hstatus,
                "code": code,
                "useExactVersion": True,
                "formattedMessage": {
                    "lang": "en-US",
                    "message": "Plugin enabled" if hstatus == "Ready" else "Plugin failed",
                },
                "runtimeSettingsStatus": {
                    "settingsStatus": {
                        "status": {
                            "name": p.name,
                            "configurationAppliedTime": None,
                            "operation": "Enable",
                            "status": ext_status,
                            "code": 1 if ext_status == "success" else 2,
                            "formattedMessage": {"lang": "en-US", "message": ""},
                        },
                        "version": 1.0,
                        "timestampUTC": iso(when),
                    },
                    "sequenceNumber": p.seq_no,
                },
            }
        )
    return {
        "version": "1.1",
        "timestampUTC": iso(when),
        "aggregateStatus": {
            "guestAgentStatus": {
                "version": gs.agent_reported,
                "status": "Ready",
                "formattedMessage": {"lang": "en-US", "message": "Guest Agent is running"},
            },
            "handlerAggregateStatus": handlers,
            "vmArtifactsAggregateStatus": {
                "goalStateAggregateStatus": {
                    "formattedMessage": {
                        "lang": "en-US",
                        "message": "GoalState executed successfully",
                    },
                    "timestampUTC": iso(when),
                    "inSvdSeqNo": str(gs.incarnation + 8),
                    "status": "Success",
                    "code": 0,
                }
            },
        },
        "guestOSInfo": {
            "computerName": "vm01",
            "osName": distro.key,
            "osVersion": distro.os_release.split("VERSION_ID=")[1].split("\n")[0].strip('"'),
            "version": gs.agent_reported,
        },
        "supportedFeatures": [{"Key": "MultipleExtensionsPerHandler", "Value": "1.0"}],
    }


def add_goal_state(tree: VmTree, gs: GoalStateSpec) -> str:
    """Save a goal state the way the tree's agent generation does; returns its document path."""
    if tree.generation == "history":
        folder = f"/var/lib/waagent/history/{gs.received.strftime('%Y-%m-%dT%H-%M-%S')}__{gs.incarnation}"
        tree.write(f"{folder}/GoalState.xml", _goal_state_xml(gs.incarnation), mtime=gs.received)
        tree.write(
            f"{folder}/ExtensionsConfig.xml",
            _extensions_config(gs, redacted=True),
            mtime=gs.received,
        )
        tree.write(
            f"{folder}/HostingEnvironmentConfig.xml",
            _read_fixture(
                "var_lib_waagent/history_example/hibernate_goal_state_1/HostingEnvironmentConfig.xml"
            ),
            mtime=gs.received,
        )
        tree.write(
            f"{folder}/SharedConfig.xml",
            _read_fixture(
                "var_lib_waagent/history_example/hibernate_goal_state_1/SharedConfig.xml"
            ),
            mtime=gs.received,
        )
        tree.write_json(
            f"{folder}/Certificates.json",
            [{"thumbprint": THUMBPRINT, "hasPrivateKey": True}],
            mtime=gs.received,
        )
        status_when = gs.received + timedelta(minutes=4)
        tree.write_json(
            f"{folder}/waagent_status.json",
            _waagent_status(gs, status_when, tree.distro),
            mtime=status_when,
        )
        return f"{folder}/ExtensionsConfig.xml"
    n = gs.incarnation
    tree.write(f"/var/lib/waagent/GoalState.{n}.xml", _goal_state_xml(n), mtime=gs.received)
    tree.write(
        f"/var/lib/waagent/ExtensionsConfig.{n}.xml",
        _extensions_config(gs, redacted=False),
        mtime=gs.received,
    )
    status_when = gs.received + timedelta(minutes=4)
    tree.write_json(
        f"/var/lib/waagent/waagent_status.{n}.json",
        _waagent_status(gs, status_when, tree.distro),
        mtime=status_when,
    )
    return f"/var/lib/waagent/ExtensionsConfig.{n}.xml"


def add_handler(
    tree: VmTree,
    name: str,
    version: str,
    seq: int,
    *,
    state: str = "Enabled",
    handler_status: tuple[str, int, str] = ("Ready", 0, "Plugin enabled"),
    settings_when: datetime,
) -> str:
    """A handler folder as the agent leaves it after enabling the extension."""
    d = tree.handler_dir(name, version)
    is_snapshot = name == VMSNAPSHOT
    manifest = [
        {
            "version": 1.0,
            "handlerManifest": {
                "installCommand": "main/handle.sh install"
                if is_snapshot
                else "bin/custom-script-shim install",
                "uninstallCommand": "main/handle.sh uninstall"
                if is_snapshot
                else "bin/custom-script-shim uninstall",
                "updateCommand": "main/handle.sh update"
                if is_snapshot
                else "bin/custom-script-shim update",
                "enableCommand": "main/handle.sh enable"
                if is_snapshot
                else "bin/custom-script-shim enable",
                "disableCommand": "main/handle.sh disable"
                if is_snapshot
                else "bin/custom-script-shim disable",
                "rebootAfterInstall": False,
                "reportHeartbeat": False,
            },
            "name": name,
        }
    ]
    tree.write_json(f"{d}/HandlerManifest.json", manifest, mtime=settings_when)
    log_folder = f"/var/log/azure/{name}"
    env = [
        {
            "name": name,
            "version": 1.0,
            "handlerEnvironment": {
                "logFolder": log_folder,
                "configFolder": f"{d}/config",
                "statusFolder": f"{d}/status",
                "heartbeatFile": f"{d}/heartbeat.log",
                "eventsFolder": f"{log_folder}/events",
                "eventsFolder_preview": f"{log_folder}/events",
            },
        }
    ]
    tree.write_json(f"{d}/HandlerEnvironment.json", env, mtime=settings_when, indent=None)
    tree.write(f"{d}/config/HandlerState", state, mtime=settings_when)
    hstatus, hcode, hmsg = handler_status
    tree.write_json(
        f"{d}/config/HandlerStatus",
        {
            "name": name,
            "version": version,
            "status": hstatus,
            "code": hcode,
            "message": hmsg,
            "supports_multi_config": False,
            "extension_status": None,
        },
        mtime=settings_when,
        indent=None,
    )
    # The settings file carries (encrypted) secrets on a real VM; here a redacted stand-in.
    tree.write_json(
        f"{d}/config/{seq}.settings",
        {
            "runtimeSettings": [
                {
                    "handlerSettings": {
                        "protectedSettingsCertThumbprint": THUMBPRINT,
                        "protectedSettings": "***REDACTED***",
                        "publicSettings": {},
                    }
                }
            ]
        },
        mtime=settings_when,
        indent=None,
    )
    if is_snapshot:
        tree.write(f"{d}/mrseq", str(seq), mtime=settings_when)
    tree.host(f"{d}/status").mkdir(parents=True, exist_ok=True)
    return d


def _waagent_log(
    tree: VmTree, gs: GoalStateSpec, daemon: str, agent: str, end: datetime
) -> list[str]:
    # facts §7: <time> <LEVEL> <thread> <prefix> <message>
    boot = end - timedelta(hours=14)
    t = boot
    out = []

    def rec(when: datetime, text: str) -> None:
        out.append(f"{log_time(when)} {text}")

    rec(t, f"INFO Daemon Daemon Azure Linux Agent Version: {daemon}")
    rec(
        t + timedelta(microseconds=120),
        f"INFO Daemon Daemon OS: {tree.distro.key} {tree.distro.os_release.split('VERSION_ID=')[1].split(chr(10))[0].strip(chr(34))}",
    )
    rec(t + timedelta(microseconds=250), f"INFO Daemon Daemon Python: {tree.distro.python}")
    rec(t + timedelta(milliseconds=3), "INFO Daemon Daemon Run daemon")
    rec(t + timedelta(milliseconds=40), "INFO Daemon Daemon Wire server endpoint:168.63.129.16")
    rec(
        t + timedelta(seconds=2),
        f"INFO Daemon Daemon Determined Agent WALinuxAgent-{agent} to be the latest agent",
    )
    rec(
        t + timedelta(seconds=3),
        f"INFO ExtHandler ExtHandler Azure Linux Agent (Goal State Agent version {agent})",
    )
    rec(
        t + timedelta(seconds=3, milliseconds=5),
        f"INFO ExtHandler ExtHandler WALinuxAgent-{agent} running as process 1187",
    )
    rec(
        t + timedelta(seconds=5),
        f"INFO Daemon Daemon Agent WALinuxAgent-{agent} launched with command 'python3 -u bin/WALinuxAgent-{agent}-py3.12.egg -run-exthandlers' is successfully running",
    )
    rec(
        t + timedelta(seconds=9),
        f"INFO ExtHandler ExtHandler Fetching new goal state [incarnation {gs.incarnation}]",
    )
    hb = 0
    t = boot + timedelta(minutes=1)
    while t <= end - timedelta(minutes=1):
        rec(
            t,
            f"INFO ExtHandler ExtHandler [HEARTBEAT] Agent WALinuxAgent-{agent} is running as the goal state agent [DEBUG HeartbeatCounter: {hb};HeartbeatId: 4AE2D67A-0E4F-4E5B-9F2B-9C3D1F2E0A11;UpdateGSErrors: 0;AutoUpdate: 1;UpdateMode: SelfUpdate;]",
        )
        hb += 1
        t += timedelta(minutes=30)
    g = gs.received
    rec(g, f"INFO ExtHandler ExtHandler Fetching new goal state [incarnation {gs.incarnation}]")
    rec(
        g + timedelta(milliseconds=400),
        f"INFO ExtHandler ExtHandler ProcessExtensionsGoalState started [incarnation_{gs.incarnation} channel: WireServer source: Fabric activity: f32f99b5-4347-4ad2-b901-6e795254ac5b correlation 6dcbeebc-d90e-4c71-b058-6ac175dc65ee created: {iso(g)}]",
    )
    for i, p in enumerate(gs.plugins):
        rec(
            g + timedelta(seconds=1 + i),
            f"INFO ExtHandler [{p.name}-{p.version}] Target handler state: enabled [incarnation_{gs.incarnation}]",
        )
        rec(
            g + timedelta(seconds=1 + i, milliseconds=30),
            f"INFO ExtHandler [{p.name}-{p.version}] [Enable] current handler state is: enabled",
        )
        cmd = "main/handle.sh enable" if p.name == VMSNAPSHOT else "bin/custom-script-shim enable"
        rec(
            g + timedelta(seconds=1 + i, milliseconds=60),
            f"INFO ExtHandler [{p.name}-{p.version}] Enable extension: [{cmd}]",
        )
    rec(
        g + timedelta(seconds=20),
        f"INFO ExtHandler ExtHandler ProcessExtensionsGoalState completed [incarnation_{gs.incarnation} 20112 ms]",
    )
    rec(
        end,
        f"INFO ExtHandler ExtHandler [HEARTBEAT] Agent WALinuxAgent-{agent} is running as the goal state agent [DEBUG HeartbeatCounter: {hb};HeartbeatId: 4AE2D67A-0E4F-4E5B-9F2B-9C3D1F2E0A11;UpdateGSErrors: 0;AutoUpdate: 1;UpdateMode: SelfUpdate;]",
    )
    out.sort()
    return out


def _extension_log(seq_times: list[tuple[int, datetime]]) -> str:
    # VMBackup's HandlerUtil log format (Python 3 builds): "<utc time> [<name>-<ver>]<msg>"
    lines = []
    for seq, when in seq_times:

        def rec(offset: float, msg: str, when: datetime = when) -> None:
            t = when + timedelta(seconds=offset)
            lines.append(f"{t.strftime('%Y-%m-%d %H:%M:%S.%f')} [{VMSNAPSHOT}-1.0.9225.0]{msg}")

        rec(0, f" [Info] enable, seq_no: {seq}")
        rec(0.4, " [Info] T:S doing snapshot, taskId: 767baff0-3f1e-4363-a974-5d801189250d")
        rec(1.2, " [Info] T:S freezing the mount: /")
        rec(1.3, " [Info] T:S freezing the mount: /boot")
        rec(1.5, " [Info] T:S freeze result None")
        rec(
            2.8,
            " [Info] T:S snapshot result: snapshotCreator=backupHostService, hostStatusCodeDoSnapshot=200",
        )
        rec(3.0, " [Info] T:S thaw result None")
        rec(3.2, " [Info] T:S Enable Succeeded")
    return "".join(line + "\n" for line in lines)


def _shell_log(seq_times: list[tuple[int, datetime]]) -> str:
    # VMBackup/main/handle.sh: "$(date)- python3 path exists" ... "- 0 returned from handle.py"
    out = []
    for _seq, when in seq_times:
        stamp = when.strftime("%a %b %d %H:%M:%S UTC %Y")
        out += [f"{stamp}- python3 path exists", f"{stamp}- 0 returned from handle.py"]
    return "".join(line + "\n" for line in out)


def build(
    dest: Path,
    distro: str = "ubuntu",
    generation: str = "history",
    *,
    as_of: datetime = AS_OF,
    agent_version: Optional[str] = None,
    vmsnapshot_version: str = "1.0.9225.0",
    vmsnapshot_seq: int = 12,
    with_vmsnapshot: bool = True,
) -> VmTree:
    """A healthy VM: agent running, goal state processed, VMSnapshot and CustomScript succeeded."""
    d = DISTROS[distro]
    # Legacy goal-state files mean an agent from before the history folders (2022).
    legacy = generation == "legacy"
    agent_version = agent_version or ("2.7.0.6" if legacy else "2.15.0.1")
    tree = VmTree(dest, d, generation)
    dest.mkdir(parents=True, exist_ok=True)
    tree.write("/etc/os-release", d.os_release)
    tree.write("/etc/hostname", "vm01\n")
    tree.write("/etc/waagent.conf", _read_fixture(f"etc/waagent_conf/{d.conf}/waagent.conf"))
    tree.write(d.unit_path, _read_fixture(f"systemd/{d.unit_fixture}"))
    tree.write(
        "/usr/sbin/waagent",
        "#!/usr/bin/python3\n# -*- coding: utf-8 -*-\nimport re\nimport sys\n\n"
        "from azurelinuxagent.agent import main\n\nif __name__ == '__main__':\n"
        "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    sys.exit(main())\n",
        mode=0o755,
    )
    tree.write(
        f"{d.pylib}/azurelinuxagent/common/version.py",
        f"AGENT_NAME = 'WALinuxAgent'\nAGENT_VERSION = '{d.daemon_version}'\n",
    )
    for guest, fixture in d.leases:
        tree.write(guest, _read_fixture(f"dhcp/{fixture}"))
    for guest, content in d.net_config:
        tree.write(guest, content)

    lib = "/var/lib/waagent"
    tree.write(f"{lib}/WireServerEndpoint", "168.63.129.16")
    tree.write(f"{lib}/provisioned", "")
    received = as_of - timedelta(hours=12)
    plugins = [Plugin(CUSTOMSCRIPT, "2.1.13", 4)]
    if with_vmsnapshot:
        plugins.insert(0, Plugin(VMSNAPSHOT, vmsnapshot_version, vmsnapshot_seq))
    gs = GoalStateSpec(
        received=received,
        incarnation=3,
        plugins=plugins,
        ga_version=None if legacy else agent_version,
        agent_reported=agent_version,
    )
    if generation == "history":
        # A current agent leaves a placeholder GoalState.1.xml that holds no data (facts §1a).
        tree.write(f"{lib}/GoalState.1.xml", "<xml>empty placeholder file</xml>")
        tree.write(
            f"{lib}/SharedConfig.xml",
            _read_fixture(
                "var_lib_waagent/history_example/hibernate_goal_state_1/SharedConfig.xml"
            ),
        )
    add_goal_state(tree, gs)

    agent_dir = f"{lib}/WALinuxAgent-{agent_version}"
    tree.write_json(
        f"{agent_dir}/HandlerManifest.json",
        [
            {
                "name": "WALinuxAgent",
                "version": agent_version,
                "handlerManifest": {
                    "installCommand": "",
                    "uninstallCommand": "",
                    "updateCommand": "",
                    "enableCommand": f"python -u bin/WALinuxAgent-{agent_version}-py3.12.egg -run-exthandlers",
                    "disableCommand": "",
                    "rebootAfterInstall": False,
                    "reportHeartbeat": False,
                },
            }
        ],
    )
    tree.write_json(
        f"{agent_dir}/error.json",
        {"last_failure": 0.0, "failure_count": 0, "was_fatal": False, "reason": ""},
        indent=None,
    )
    tree.write(
        f"{agent_dir}/bin/WALinuxAgent-{agent_version}-py3.12.egg", b"PK\x05\x06" + b"\x00" * 18
    )

    settings_at = received + timedelta(seconds=2)
    add_handler(tree, CUSTOMSCRIPT, "2.1.13", 4, settings_when=settings_at)
    tree.set_status(
        CUSTOMSCRIPT,
        "2.1.13",
        4,
        simple_status(
            CUSTOMSCRIPT, "success", 0, "Enable succeeded", received + timedelta(seconds=30)
        ),
        received + timedelta(seconds=30),
    )
    seq_times: list[tuple[int, datetime]] = []
    if with_vmsnapshot:
        add_handler(tree, VMSNAPSHOT, vmsnapshot_version, vmsnapshot_seq, settings_when=settings_at)
        prev = received - timedelta(days=1)
        tree.vmsnapshot(
            vmsnapshot_seq - 1, "success", 1, "", prev + timedelta(minutes=3), vmsnapshot_version
        )
        tree.vmsnapshot(
            vmsnapshot_seq, "success", 1, "", received + timedelta(minutes=3), vmsnapshot_version
        )
        seq_times = [
            (vmsnapshot_seq - 1, prev + timedelta(seconds=5)),
            (vmsnapshot_seq, received + timedelta(seconds=5)),
        ]
        logdir = f"/var/log/azure/{VMSNAPSHOT}"
        tree.write(f"{logdir}/extension.log", _extension_log(seq_times))
        tree.write(f"{logdir}/shell.log", _shell_log(seq_times))
    tree.write(
        f"/var/log/azure/{CUSTOMSCRIPT}/handler.log",
        f'time={iso(received + timedelta(seconds=3))} version=v2.1.13 operation=enable seq=4 event="enabled"\n',
    )
    log = _waagent_log(tree, gs, d.daemon_version, agent_version, as_of)
    tree.write("/var/log/waagent.log", "".join(line + "\n" for line in log))
    return tree


# -- static trees -----------------------------------------------------------------------------

SCENARIO_README = "README.md"


def _scenarios() -> dict[str, tuple[str, Any]]:
    """ext-* scenario trees: (what it shows, how to build it from a healthy ubuntu tree)."""

    def not_installed(t: VmTree) -> None:
        t.remove(t.handler_dir(VMSNAPSHOT, "1.0.9225.0"))

    def failed(t: VmTree) -> None:
        when = AS_OF - timedelta(hours=12) + timedelta(minutes=3)
        t.vmsnapshot(
            12,
            "error",
            2,
            "Enable failed with error: snapshot call failed, snapshotCreator=backupHostService, hostStatusCodeDoSnapshot=500, ",
            when,
        )

    def install_failed(t: VmTree) -> None:
        d = t.handler_dir(VMSNAPSHOT, "1.0.9225.0")
        t.write(f"{d}/config/HandlerState", "Installed")
        t.write_json(
            f"{d}/config/HandlerStatus",
            {
                "name": VMSNAPSHOT,
                "version": "1.0.9225.0",
                "status": "NotReady",
                "code": 1009,
                "message": "[ExtensionOperationError] Non-zero exit code: 127, main/handle.sh enable",
                "supports_multi_config": False,
                "extension_status": None,
            },
            indent=None,
        )
        t.remove(f"{d}/status/12.status")

    def stuck(t: VmTree) -> None:
        t.vmsnapshot(
            12,
            "transitioning",
            0,
            "T:S doing snapshot, snapshotCreator=backupHostService, ",
            AS_OF - timedelta(hours=3),
        )

    def stuck_no_status(t: VmTree) -> None:
        # A newer goal state (incarnation 4, 5 h ago) asks for seqNo 13; no status/13.status.
        gs = GoalStateSpec(
            received=AS_OF - timedelta(hours=5),
            incarnation=4,
            plugins=[Plugin(VMSNAPSHOT, "1.0.9225.0", 13), Plugin(CUSTOMSCRIPT, "2.1.13", 4)],
        )
        add_goal_state(t, gs)
        d = t.handler_dir(VMSNAPSHOT, "1.0.9225.0")
        t.write_json(
            f"{d}/config/13.settings",
            {
                "runtimeSettings": [
                    {
                        "handlerSettings": {
                            "protectedSettingsCertThumbprint": THUMBPRINT,
                            "protectedSettings": "***REDACTED***",
                            "publicSettings": {},
                        }
                    }
                ]
            },
            mtime=gs.received,
            indent=None,
        )

    def young_transitioning(t: VmTree) -> None:
        t.vmsnapshot(12, "transitioning", 0, "T:S doing snapshot, ", AS_OF - timedelta(minutes=10))

    def stale_history(t: VmTree) -> None:
        # An older goal state (incarnation 2) whose request (seqNo 11) failed with code 76 and
        # whose saved status says so; the newest goal state asks for seqNo 12, which succeeded.
        old = GoalStateSpec(
            received=AS_OF - timedelta(days=1, hours=12),
            incarnation=2,
            plugins=[Plugin(VMSNAPSHOT, "1.0.9225.0", 11), Plugin(CUSTOMSCRIPT, "2.1.13", 4)],
            handler_statuses={VMSNAPSHOT: ("NotReady", 76)},
        )
        add_goal_state(t, old)
        t.vmsnapshot(
            11,
            "error",
            76,
            "Enable failed with error: FailedRetryableSnapshotFailedNoNetwork, statusBlobUploadError=true, ",
            old.received + timedelta(minutes=3),
        )

    def outdated(t: VmTree) -> None:
        d_old = t.handler_dir(VMSNAPSHOT, "1.0.9225.0")
        d_new = t.handler_dir(VMSNAPSHOT, "1.0.90.0")
        shutil.move(str(t.host(d_old)), str(t.host(d_new)))
        for guest in (f"{d_new}/HandlerEnvironment.json", f"{d_new}/config/HandlerStatus"):
            t.write(guest, t.read(guest).replace("1.0.9225.0", "1.0.90.0"))
        folder = sorted(t.host("/var/lib/waagent/history").iterdir())[-1]
        ec = folder / "ExtensionsConfig.xml"
        ec.write_text(
            ec.read_text().replace(
                f'name="{VMSNAPSHOT}" version="1.0.9225.0"',
                f'name="{VMSNAPSHOT}" version="1.0.90.0"',
            )
        )

    def storage(t: VmTree) -> None:
        t.vmsnapshot(
            12,
            "error",
            76,
            "Enable failed with error: FailedRetryableSnapshotFailedNoNetwork, statusBlobUploadError=true, snapshotCreator=guestExtension, https://md-x.blob.core.windows.net/abc/def?sv=2018-03-28&sig=SECRETSIG",
            AS_OF - timedelta(hours=12) + timedelta(minutes=3),
        )

    def freeze(t: VmTree) -> None:
        when = AS_OF - timedelta(hours=12) + timedelta(minutes=3)
        t.vmsnapshot(
            12,
            "error",
            121,
            "T:S Enable failed with error: FailedRetryableFsFreezeFailed, freeze failed on mount /data, ",
            when,
        )
        log = f"/var/log/azure/{VMSNAPSHOT}/extension.log"
        stamp = (when - timedelta(seconds=20)).strftime("%Y-%m-%d %H:%M:%S.%f")
        t.write(
            log,
            t.read(log)
            + f"{stamp} [{VMSNAPSHOT}-1.0.9225.0] [Error] T:S freeze failed on mount /data: [Errno 16] Device or resource busy\n",
        )

    def too_late(t: VmTree) -> None:
        t.vmsnapshot(
            12,
            "error",
            402,
            "FailedGuestAgentInvokedCommandTooLate, commandStartTimeUTCTicks=638987424000000000, ",
            AS_OF - timedelta(hours=12) + timedelta(minutes=3),
        )

    def repeated(t: VmTree) -> None:
        base = AS_OF - timedelta(hours=12) + timedelta(minutes=3)
        for i, seq in enumerate((12, 11, 10)):
            t.vmsnapshot(
                seq,
                "error",
                2,
                "Enable failed with error: snapshot call failed, hostStatusCodeDoSnapshot=500, ",
                base - timedelta(days=i),
            )

    def other_failed(t: VmTree) -> None:
        d = t.handler_dir(CUSTOMSCRIPT, "2.1.13")
        t.write_json(
            f"{d}/config/HandlerStatus",
            {
                "name": CUSTOMSCRIPT,
                "version": "2.1.13",
                "status": "NotReady",
                "code": 1009,
                "message": "Plugin enabled",
                "supports_multi_config": False,
                "extension_status": None,
            },
            indent=None,
        )
        when = AS_OF - timedelta(hours=12) + timedelta(seconds=30)
        t.set_status(
            CUSTOMSCRIPT,
            "2.1.13",
            4,
            simple_status(
                CUSTOMSCRIPT,
                "error",
                1,
                "Enable failed: failed to execute command: command terminated with exit status=127",
                when,
            ),
            when,
        )

    def agent_outdated(t: VmTree) -> None:
        # The goal-state agent reports 2.2.45 while the goal state offers 2.15.0.1.
        folder = sorted(t.host("/var/lib/waagent/history").iterdir())[-1]
        st = folder / "waagent_status.json"
        st.write_text(st.read_text().replace('"2.15.0.1"', '"2.2.45"'))
        t.remove("/var/lib/waagent/WALinuxAgent-2.15.0.1")

    def extensions_disabled(t: VmTree) -> None:
        conf = t.read("/etc/waagent.conf").replace("Extensions.Enabled=y", "Extensions.Enabled=n")
        t.write("/etc/waagent.conf", conf)

    def autoupdate_disabled(t: VmTree) -> None:
        t.write("/etc/waagent.conf", t.read("/etc/waagent.conf") + "AutoUpdate.Enabled=n\n")

    def conf_trap_commented(t: VmTree) -> None:
        extra = "# Extensions.Enabled=n\n#AutoUpdate.Enabled=n\n"
        t.write("/etc/waagent.conf", t.read("/etc/waagent.conf") + extra)

    def conf_trap_update_latest(t: VmTree) -> None:
        # The agent ignores the legacy key when AutoUpdate.UpdateToLatestVersion is set.
        extra = "AutoUpdate.Enabled=n\nAutoUpdate.UpdateToLatestVersion=y\n"
        t.write("/etc/waagent.conf", t.read("/etc/waagent.conf") + extra)

    def hostgaplugin_down(t: VmTree) -> None:
        t.append_log(
            [
                f"{log_time(AS_OF + timedelta(minutes=m))} WARNING MonitorHandler ExtHandler "
                "Error in SendHostPluginHeartbeat: [HttpError] [HTTP Failed] GET "
                "http://168.63.129.16:32526/health -- IOError timed out -- 1 attempts made --- "
                "[NOTE: Will not log the same error for the next hour]"
                for m in (1, 31)
            ]
        )

    def crash_loop(t: VmTree) -> None:
        lines = []
        for m in (2, 7, 12, 17):
            lines.append(
                f"{log_time(AS_OF + timedelta(minutes=m))} WARNING Daemon Daemon ExtHandler "
                "process WALinuxAgent-2.15.0.1 launched with command 'python3 -u "
                "bin/WALinuxAgent-2.15.0.1-py3.12.egg -run-exthandlers' exited with return "
                "code: 1"
            )
        t.append_log(lines)

    def crash_recovered(t: VmTree) -> None:
        # Crashes early in the window, then hours of normal heartbeats: no longer a loop.
        log = t.read("/var/log/waagent.log").splitlines()
        crashes = [
            f"{log_time(datetime(2025, 11, 19, 20, 5, s, tzinfo=timezone.utc))} WARNING "
            "ExtHandler ExtHandler MonitorHandler thread died, restarting"
            for s in (1, 2, 3, 4)
        ]
        merged = sorted(log + crashes, key=lambda line: line[:27])
        t.write("/var/log/waagent.log", "\n".join(merged) + "\n")

    def xml_bomb(t: VmTree) -> None:
        folder = "/var/lib/waagent/history/2025-11-19T22-00-00__3"
        bomb = (
            '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
            '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
            '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>\n'
            "<Extensions>&lol3;</Extensions>\n"
        )
        t.write(f"{folder}/ExtensionsConfig.xml", bomb)

    return {
        "ext-vmsnapshot-not-installed": (
            "extension.vmsnapshot.not_installed: the goal state asks for VMSnapshotLinux; no handler folder",
            not_installed,
        ),
        "ext-vmsnapshot-failed": (
            "extension.vmsnapshot.failed: status/12.status is error code 2",
            failed,
        ),
        "ext-vmsnapshot-install-failed": (
            "extension.vmsnapshot.failed: HandlerState Installed, HandlerStatus NotReady (Non-zero exit code: 127)",
            install_failed,
        ),
        "ext-vmsnapshot-stuck": (
            "extension.vmsnapshot.stuck: status/12.status transitioning for 3 h",
            stuck,
        ),
        "ext-vmsnapshot-stuck-no-status": (
            "extension.vmsnapshot.stuck: the newest goal state asks for seqNo 13 (5 h ago); no 13.status",
            stuck_no_status,
        ),
        "ext-vmsnapshot-outdated": (
            "extension.vmsnapshot.outdated: VMSnapshotLinux 1.0.90.0 < 1.0.91.0",
            outdated,
        ),
        "ext-storage-unreachable": (
            "network.storage.unreachable: status error code 76 (and statusBlobUploadError=true)",
            storage,
        ),
        "ext-freeze-failed": (
            "snapshot.freeze.failed: status error code 121 and freeze failure in extension.log",
            freeze,
        ),
        "ext-command-too-late": ("snapshot.command_too_late: status error code 402", too_late),
        "ext-repeated-failures": (
            "backup.repeated_failures: seqNo 10, 11, 12 all error code 2",
            repeated,
        ),
        "ext-other-failed": (
            "extension.other.failed: CustomScript NotReady and status error",
            other_failed,
        ),
        "ext-agent-outdated": (
            "agent.outdated: goal-state agent 2.2.45 < minimum 2.2.53 and < offered 2.15.0.1",
            agent_outdated,
        ),
        "ext-trap-stale-history": (
            "no finding: an older history folder (seqNo 11, code 76) and a newer success (seqNo 12)",
            stale_history,
        ),
        "ext-trap-young-transitioning": (
            "no finding: status/12.status transitioning for only 10 min",
            young_transitioning,
        ),
        "conf-extensions-disabled": (
            "agent.extensions.disabled: Extensions.Enabled=n in /etc/waagent.conf",
            extensions_disabled,
        ),
        "conf-autoupdate-disabled": (
            "agent.autoupdate.disabled: AutoUpdate.Enabled=n, no UpdateToLatestVersion",
            autoupdate_disabled,
        ),
        "conf-trap-commented": (
            "no finding: Extensions.Enabled=n and AutoUpdate.Enabled=n only in comments",
            conf_trap_commented,
        ),
        "conf-trap-update-latest": (
            "no finding: AutoUpdate.Enabled=n overridden by AutoUpdate.UpdateToLatestVersion=y",
            conf_trap_update_latest,
        ),
        "log-hostgaplugin-down": (
            "network.hostgaplugin.unreachable: /health timing out after the last heartbeat",
            hostgaplugin_down,
        ),
        "log-crash-loop": (
            "agent.crash_loop: the ExtHandler process exits 4 times in 15 minutes",
            crash_loop,
        ),
        "log-trap-crash-recovered": (
            "no finding: 4 thread restarts 14 hours before a long healthy stretch",
            crash_recovered,
        ),
        "input-xml-bomb": (
            "input.unreadable: the newest ExtensionsConfig.xml is a billion-laughs document",
            xml_bomb,
        ),
    }


def scenario(name: str, dest: Path) -> VmTree:
    """Build one ext-* scenario into dest (a healthy ubuntu history tree plus its override)."""
    _, change = _scenarios()[name]
    tree = build(dest, "ubuntu", "history")
    change(tree)
    return tree


HEALTHY = {
    "healthy-ubuntu-history": ("ubuntu", "history"),
    "healthy-ubuntu-legacy": ("ubuntu", "legacy"),
    "healthy-debian-legacy": ("debian", "legacy"),
    "healthy-debian-history": ("debian", "history"),
    "healthy-rhel-history": ("rhel", "history"),
    "healthy-rhel-legacy": ("rhel", "legacy"),
    "healthy-sles-legacy": ("sles", "legacy"),
    "healthy-sles-history": ("sles", "history"),
}


def broken_vm(dest: Path) -> VmTree:
    """The demo sample: several causes at once (see examples/broken-vm/README.md)."""
    tree = build(dest, "ubuntu", "history")
    # Cause 1: the agent's latest word is that it cannot reach the WireServer.
    fail_from = AS_OF - timedelta(hours=2)
    lines = []
    t = fail_from
    first = True
    while t <= AS_OF:
        if first:
            lines.append(
                f"{log_time(t)} ERROR ExtHandler ExtHandler Error fetching the goal state: [ProtocolError] [Wireserver Exception] [HttpError] [HTTP Failed] GET http://168.63.129.16/machine/ -- IOError timed out -- 6 attempts made"
            )
            first = False
        else:
            lines.append(
                f"{log_time(t)} WARNING ExtHandler ExtHandler Fetching the goal state is still failing: [ProtocolError] [Wireserver Exception] [HttpError] [HTTP Failed] GET http://168.63.129.16/machine/ -- IOError timed out -- 6 attempts made"
            )
        lines.append(
            f"{log_time(t + timedelta(seconds=40))} WARNING MonitorHandler ExtHandler Error in SendHostPluginHeartbeat: [HttpError] [HTTP Failed] GET http://168.63.129.16:32526/health -- IOError timed out -- 1 attempts made --- [NOTE: Will not log the same error for the next hour]"
        )
        t += timedelta(minutes=30)
    # The agent keeps its heartbeat while goal-state fetches fail (UpdateGSErrors grows).
    kept = []
    errors = 0
    for ln in tree.read("/var/log/waagent.log").splitlines():
        if ln[:27] >= log_time(fail_from) and "[HEARTBEAT]" in ln:
            errors += 1
            ln = ln.replace("UpdateGSErrors: 0", f"UpdateGSErrors: {errors}")
        kept.append(ln)
    g = AS_OF - timedelta(hours=5)
    lines += [
        f"{log_time(g)} INFO ExtHandler ExtHandler Fetching new goal state [incarnation 4]",
        f"{log_time(g + timedelta(seconds=1))} INFO ExtHandler [{VMSNAPSHOT}-1.0.9225.0] Target handler state: enabled [incarnation_4]",
        f"{log_time(g + timedelta(seconds=1, milliseconds=40))} INFO ExtHandler [{VMSNAPSHOT}-1.0.9225.0] Enable extension: [main/handle.sh enable]",
    ]
    merged = sorted(kept + lines)
    tree.write("/var/log/waagent.log", "".join(ln + "\n" for ln in merged))
    # Cause 2: auto-update off, and the agent's unit has no Restart=.
    conf = tree.read("/etc/waagent.conf")
    tree.write(
        "/etc/waagent.conf",
        conf.replace("# AutoUpdate.UpdateToLatestVersion=y", "AutoUpdate.Enabled=n"),
    )
    unit = tree.read("/lib/systemd/system/walinuxagent.service")
    tree.write(
        "/lib/systemd/system/walinuxagent.service",
        "".join(ln + "\n" for ln in unit.splitlines() if not ln.startswith("Restart")),
    )
    # Cause 4: the last snapshot (seqNo 12) could not freeze /data (code 121) ...
    when = AS_OF - timedelta(hours=12) + timedelta(minutes=3)
    tree.vmsnapshot(
        12,
        "error",
        121,
        "T:S Enable failed with error: FailedRetryableFsFreezeFailed, freeze failed on mount /data, ",
        when,
    )
    log = f"/var/log/azure/{VMSNAPSHOT}/extension.log"
    stamp = (when - timedelta(seconds=20)).strftime("%Y-%m-%d %H:%M:%S.%f")
    tree.write(
        log,
        tree.read(log)
        + f"{stamp} [{VMSNAPSHOT}-1.0.9225.0] [Error] T:S freeze failed on mount /data: [Errno 16] Device or resource busy\n",
    )
    # Cause 3: ... and the next request (seqNo 13, 5 h ago) never got a status.
    gs = GoalStateSpec(
        received=AS_OF - timedelta(hours=5),
        incarnation=4,
        plugins=[Plugin(VMSNAPSHOT, "1.0.9225.0", 13), Plugin(CUSTOMSCRIPT, "2.1.13", 4)],
    )
    add_goal_state(tree, gs)
    d = tree.handler_dir(VMSNAPSHOT, "1.0.9225.0")
    tree.write_json(
        f"{d}/config/13.settings",
        {
            "runtimeSettings": [
                {
                    "handlerSettings": {
                        "protectedSettingsCertThumbprint": THUMBPRINT,
                        "protectedSettings": "***REDACTED***",
                        "publicSettings": {},
                    }
                }
            ]
        },
        mtime=gs.received,
        indent=None,
    )
    tree.write(f"{d}/mrseq", "12")
    return tree


def regenerate() -> None:
    """Rewrite tests/data/vms/{healthy-*,ext-*} and examples/broken-vm (keeping its README)."""
    for name, (distro, generation) in HEALTHY.items():
        dest = VMS / name
        shutil.rmtree(dest, ignore_errors=True)
        build(dest, distro, generation)
    for name, (what, _change) in _scenarios().items():
        dest = VMS / name
        shutil.rmtree(dest, ignore_errors=True)
        scenario(name, dest)
        (dest / SCENARIO_README).write_text(
            f"# {name}\n\n{what}\n\nBuilt by `python -m tests.vmtree` (tests/vmtree.py).\n"
        )
    readme = (EXAMPLE / "README.md").read_text() if (EXAMPLE / "README.md").exists() else None
    shutil.rmtree(EXAMPLE, ignore_errors=True)
    broken_vm(EXAMPLE)
    if readme is not None:
        (EXAMPLE / "README.md").write_text(readme)


if __name__ == "__main__":
    regenerate()
    sys.exit(0)
