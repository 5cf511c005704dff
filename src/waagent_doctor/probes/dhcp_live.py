"""DHCP on the running VM: the primary interface and what its network manager says of DHCP.

The files (`probes/dhcp.py`) cannot tell a client that keeps no lease file from one that has no
lease; the manager that runs the interface can. This probe finds the interface of the default
route, then asks systemd-networkd (`networkctl`), NetworkManager (`nmcli`) and wicked, in that
order, until one says it manages that interface. A missing tool, a stopped daemon or a timeout is
a note, never an error. It never judges: the `dhcp` check does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional

import defusedxml.ElementTree as SafeET

from waagent_doctor.config import Settings
from waagent_doctor.host import CommandResult, CommandRunner, Host
from waagent_doctor.paths import InputError, Root
from waagent_doctor.probes.dhcp import decode_245, parse_networkd

PROC_ROUTE = "/proc/net/route"
NETWORKD_LEASES = "/run/systemd/netif/leases"
TIMEOUT = 3.0  # seconds per command: these tools answer from memory in milliseconds
_MAX_OUTPUT = 1024 * 1024
_MAX_NOTE = 160
# systemd versions: `DHCPv4Client` in the link JSON since 255 (PR #29023), its `PrivateOptions`
# (options 224-254, so 245) since 256 (PR #30954).
_NETWORKD_DHCP_CLIENT_JSON = 255
_NETWORKD_PRIVATE_OPTIONS_JSON = 256
# networkd link states where networkd configures the link (src/network/networkd-link.c).
_NETWORKD_MANAGING = ("configuring", "configured", "failed")
# NetworkManager's lease option names for 245: its own clients, and dhclient's `unknown-245`.
_NM_245_KEYS = ("private_245", "unknown_245")
_NM_DISCONNECTED = 30  # NMDeviceState: 10 unmanaged, 20 unavailable, 30 disconnected, 100 activated
_NM_OFF_METHODS = ("manual", "disabled")


@dataclass(frozen=True)
class Route:
    """The default route that names the primary interface."""

    interface: str
    source: str  # /proc/net/route:2
    detail: str  # eth0 default via 10.0.0.1 metric 100


@dataclass(frozen=True)
class ManagerView:
    """What one network manager says of DHCPv4 on the primary interface."""

    tool: str  # networkd | networkmanager | wicked
    managed: bool  # this tool configures the interface
    dhcp: Optional[bool]  # True: DHCPv4 on; False: static/manual; None: not known
    lease: Optional[bool]  # True: a lease is held; None: not known
    option_245: Optional[str]  # decoded, e.g. 168.63.129.16
    authoritative: bool  # the lease's option list is complete: no 245 there is evidence
    source: str  # the command (or lease file) that said it
    detail: str  # the words that decided it


@dataclass(frozen=True)
class LiveDhcp:
    """The primary interface and the managers' views of it; `reason` says why there are none."""

    available: bool
    reason: str
    route: Optional[Route] = None
    views: tuple[ManagerView, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def primary(self) -> Optional[str]:
        """The interface of the default route, or None."""
        return self.route.interface if self.route else None

    def manager(self) -> Optional[ManagerView]:
        """The view of the tool that manages the primary interface, or None."""
        return next((v for v in self.views if v.managed), None)

    def summary(self) -> str:
        """One line for a check's skip reason: what was asked and why it said nothing."""
        if not self.available:
            return self.reason
        parts = [f"primary interface {self.primary} ({self.route.source if self.route else ''})"]
        parts.extend(self.notes)
        if not self.views and not self.notes:
            parts.append("no networkctl, nmcli or wicked to ask")
        return "; ".join(parts)


# -- the primary interface -------------------------------------------------------------------


def _hex_ipv4(text: str) -> str:
    """/proc/net/route stores addresses little-endian: 0100000A -> 10.0.0.1."""
    try:
        raw = int(text, 16).to_bytes(4, "little")
    except (ValueError, OverflowError):
        return text
    return ".".join(str(b) for b in raw)


def parse_proc_route(text: str) -> Optional[Route]:
    """The lowest-metric default route in /proc/net/route, or None.

    Iface  Destination  Gateway   Flags  RefCnt  Use  Metric  Mask      MTU  Window  IRTT
    eth0   00000000     0100000A  0003   0       0    100     00000000  0    0       0
    """
    best: Optional[tuple[int, int, list[str]]] = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        f = line.split()
        if lineno == 1 or len(f) < 8:
            continue
        try:
            flags, metric = int(f[3], 16), int(f[6])
        except ValueError:
            continue
        if f[1] != "00000000" or f[7] != "00000000" or not flags & 0x1:  # RTF_UP
            continue
        if best is None or metric < best[0]:
            best = (metric, lineno, f)
    if best is None:
        return None
    metric, lineno, f = best
    return Route(
        f[0], f"{PROC_ROUTE}:{lineno}", f"{f[0]} default via {_hex_ipv4(f[2])} metric {metric}"
    )


def find_route(root: Root, notes: list[str]) -> Optional[Route]:
    """The default route from the guest's /proc/net/route (through the root: no process).

    `ip route` would ask this machine's kernel, which is the guest's only when the root is `/`,
    and then /proc/net/route already holds the same main-table IPv4 routes.
    """
    try:
        return parse_proc_route(root.read_text(PROC_ROUTE, _MAX_OUTPUT))
    except InputError as err:
        notes.append(f"{err.guest_path}: {err.reason}")
        return None


# -- systemd-networkd ----------------------------------------------------------------------------


def _failed(what: str, res: CommandResult) -> str:
    if res.timed_out:
        return f"{what}: timed out after {TIMEOUT:g}s"
    first = next((ln.strip() for ln in res.stderr.splitlines() if ln.strip()), "")
    return f"{what}: exit {res.returncode}" + (f": {first[:_MAX_NOTE]}" if first else "")


def systemd_version(text: str) -> Optional[int]:
    """`networkctl --version` -> `systemd 256 (256.5-1)` -> 256."""
    m = re.match(r"\s*systemd\s+(\d+)", text)
    return int(m.group(1)) if m else None


def _addr(entry: dict[str, Any]) -> str:
    """An Addresses[] entry: "AddressString" (newer) or "Address": [10,0,0,4] (older)."""
    text = entry.get("AddressString")
    if isinstance(text, str):
        addr = text
    else:
        raw = entry.get("Address")
        ok = isinstance(raw, list) and all(isinstance(b, int) for b in raw)
        addr = ".".join(str(b) for b in raw) if ok and isinstance(raw, list) else "?"
    prefix = entry.get("PrefixLength")
    return f"{addr}/{prefix}" if isinstance(prefix, int) else addr


def _private_245(client: dict[str, Any]) -> Optional[str]:
    # "PrivateOptions": [{"Option": 245, "PrivateOptionData": "a83f8110"}]
    opts = client.get("PrivateOptions")
    for opt in opts if isinstance(opts, list) else []:
        if isinstance(opt, dict) and opt.get("Option") == 245:
            data = opt.get("PrivateOptionData")
            return data if isinstance(data, str) else None
    return None


def networkd_view(link: dict[str, Any], version: Optional[int], source: str) -> ManagerView:
    """Judge-free reading of one link object of `networkctl --json=short status <if>`."""
    state = link.get("AdministrativeState", link.get("SetupState", ""))  # SetupState: early JSON
    state = state if isinstance(state, str) else ""
    network_file = link.get("NetworkFile")
    key = "AdministrativeState" if "AdministrativeState" in link else "SetupState"
    where = f"{key}={state}" + (
        f", NetworkFile={network_file}" if isinstance(network_file, str) else ""
    )
    if state not in _NETWORKD_MANAGING:
        return ManagerView("networkd", False, None, None, None, False, source, where)
    entries = link.get("Addresses")
    v4 = [
        a
        for a in (entries if isinstance(entries, list) else [])
        if isinstance(a, dict) and a.get("Family") == 2
    ]
    by_dhcp = [_addr(a) for a in v4 if a.get("ConfigSource") == "dhcp4"]
    static = [_addr(a) for a in v4 if a.get("ConfigSource") == "static"]
    client = link.get("DHCPv4Client")
    if isinstance(client, dict) or by_dhcp:
        return _networkd_dhcp(client, by_dhcp, version, source, where)
    if static and version is not None and version >= _NETWORKD_DHCP_CLIENT_JSON:
        detail = f"{where}; no DHCPv4Client; Addresses: {', '.join(static)} (ConfigSource=static)"
        return ManagerView("networkd", True, False, None, None, False, source, detail)
    return ManagerView("networkd", True, None, None, None, False, source, where)


def _networkd_dhcp(
    client: Any, by_dhcp: list[str], version: Optional[int], source: str, where: str
) -> ManagerView:
    client = client if isinstance(client, dict) else {}
    has_lease = "Lease" in client or bool(by_dhcp)
    detail = f"{where}; DHCPv4Client" + (" with a Lease" if has_lease else " without a Lease")
    if by_dhcp:
        detail += f"; Addresses: {', '.join(by_dhcp)} (ConfigSource=dhcp4)"
    raw = _private_245(client)
    if raw is not None:
        detail += f'; PrivateOptions: {{"Option":245,"PrivateOptionData":"{raw}"}}'
        return ManagerView("networkd", True, True, True, decode_245(raw), True, source, detail)
    if not has_lease:
        return ManagerView("networkd", True, True, None, None, False, source, detail)
    if version is not None and version >= _NETWORKD_PRIVATE_OPTIONS_JSON:
        detail += "; PrivateOptions has no option 245"
        return ManagerView("networkd", True, True, True, None, True, source, detail)
    # networkd before 256 shows no options: ask_networkd reads its lease file instead.
    return ManagerView("networkd", True, True, True, None, False, source, detail)


def ask_networkd(host: Host, runner: CommandRunner, ifname: str, notes: list[str]) -> ManagerView:
    """`networkctl --json=short status <if>` (systemd 250+), with the lease file before 256."""
    ver = runner.run(["networkctl", "--version"], timeout=TIMEOUT)
    version = systemd_version(ver.stdout) if ver.ok else None
    argv = ["networkctl", "--json=short", "status", "--", ifname]
    source = " ".join(a for a in argv if a != "--")
    res = runner.run(argv, timeout=TIMEOUT, max_output=_MAX_OUTPUT)
    if not res.ok:
        notes.append(_failed(source, res))
        return ManagerView("networkd", False, None, None, None, False, source, "")
    link = _link_object(res.stdout, ifname)
    if link is None:
        notes.append(f"{source}: no JSON object for {ifname}")
        return ManagerView("networkd", False, None, None, None, False, source, "")
    view = networkd_view(link, version, source)
    if view.lease and view.option_245 is None and not view.authoritative:
        return _with_lease_file(view, link, host.root)
    return view


def _link_object(text: str, ifname: str) -> Optional[dict[str, Any]]:
    """One JSON object per matching link (--json=short), or one pretty object; pick the name."""
    candidates: list[Any] = []
    try:
        candidates.append(json.loads(text))
    except ValueError:
        for line in text.splitlines():
            try:
                candidates.append(json.loads(line))
            except ValueError:
                continue
    for obj in candidates:
        if isinstance(obj, dict) and obj.get("Name") == ifname:
            return obj
    return None


def _with_lease_file(view: ManagerView, link: dict[str, Any], root: Root) -> ManagerView:
    # /run/systemd/netif/leases/2: ADDRESS=10.0.0.4 ... OPTION_245=a83f8110
    index = link.get("Index")
    if not isinstance(index, int):
        return view
    path = f"{NETWORKD_LEASES}/{index}"
    try:
        lease = parse_networkd(root.read_text(path, _MAX_OUTPUT), path)
    except InputError:
        return view
    if lease is None:
        return view
    detail = f"{view.detail}; {path}: " + (
        f"OPTION_245={lease.option_245_raw}" if lease.option_245_raw else "no OPTION_245"
    )
    return ManagerView(
        "networkd",
        True,
        True,
        True,
        lease.option_245,
        lease.authoritative,
        f"{view.source}; {path}",
        detail,
    )


# -- NetworkManager ------------------------------------------------------------------------------


def parse_nmcli(text: str) -> dict[str, str]:
    """`nmcli -t -e no -f ... device show <if>` -> {field: value}.

    GENERAL.STATE:100 (connected)
    DHCP4.OPTION[12]:private_245 = a8:3f:81:10
    With escaping on (the default) nmcli writes `a8\\:3f`; both spellings are read.
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        field, sep, value = line.partition(":")
        if sep and field and " " not in field:
            out[field.strip()] = value.replace("\\:", ":").replace("\\\\", "\\").strip()
    return out


def nm_view(fields: dict[str, str], source: str, method: Optional[tuple[str, str]]) -> ManagerView:
    """Judge-free reading of nmcli's device fields (and the connection's ipv4.method)."""
    state_text = fields.get("GENERAL.STATE", "")
    m = re.match(r"\s*(\d+)", state_text)
    state = int(m.group(1)) if m else 0
    where = f"GENERAL.STATE:{state_text}"
    if state < _NM_DISCONNECTED or "externally" in state_text:
        # (externally): another tool configured the device; NetworkManager only watches it.
        return ManagerView("networkmanager", False, None, None, None, False, source, where)
    options: dict[str, str] = {}
    for key, value in fields.items():
        if key.startswith("DHCP4.OPTION"):
            name, _, val = value.partition(" = ")
            options[name.strip()] = val.strip()
    if options:
        for key in _NM_245_KEYS:
            if key in options:
                line = f"DHCP4.OPTION:{key} = {options[key]}"
                return ManagerView(
                    "networkmanager",
                    True,
                    True,
                    True,
                    decode_245(options[key]),
                    True,
                    source,
                    f"{where}; {line}",
                )
        detail = f"{where}; DHCP4 lease with {len(options)} options, no private_245"
        # Not proof: which unknown options NetworkManager passes on depends on its DHCP
        # backend (internal or dhclient) and the request list, and the backup extension asks
        # the DHCP server itself. A false critical on every RHEL VM would be worse than
        # silence here; the lease files (dhclient, networkd) are the authoritative witnesses.
        return ManagerView("networkmanager", True, True, True, None, False, source, detail)
    if method is not None:
        msource, value = method
        detail = f"{where}; ipv4.method:{value}"
        dhcp = False if value in _NM_OFF_METHODS else (True if value == "auto" else None)
        return ManagerView(
            "networkmanager", True, dhcp, None, None, False, f"{source}; {msource}", detail
        )
    return ManagerView("networkmanager", True, None, None, None, False, source, where)


def ask_nm(runner: CommandRunner, ifname: str, notes: list[str]) -> ManagerView:
    """`nmcli -t -e no -f GENERAL.STATE,GENERAL.CONNECTION,DHCP4 device show <if>`."""
    argv = ["nmcli", "-t", "-e", "no", "-f", "GENERAL.STATE,GENERAL.CONNECTION,DHCP4"]
    argv += ["device", "show", ifname]
    source = " ".join(argv)
    res = runner.run(argv, timeout=TIMEOUT, max_output=_MAX_OUTPUT)
    if not res.ok:
        notes.append(_failed(source, res))
        return ManagerView("networkmanager", False, None, None, None, False, source, "")
    fields = parse_nmcli(res.stdout)
    method: Optional[tuple[str, str]] = None
    conn = fields.get("GENERAL.CONNECTION", "")
    has_options = any(k.startswith("DHCP4.OPTION") for k in fields)
    if conn and conn != "--" and not has_options:
        margv = ["nmcli", "-t", "-e", "no", "-f", "ipv4.method", "connection", "show", "id", conn]
        mres = runner.run(margv, timeout=TIMEOUT, max_output=_MAX_OUTPUT)
        value = parse_nmcli(mres.stdout).get("ipv4.method") if mres.ok else None
        if value:
            method = (" ".join(margv), value)
        elif not mres.ok:
            notes.append(_failed(" ".join(margv), mres))
    return nm_view(fields, source, method)


# -- wicked --------------------------------------------------------------------------------------


def wicked_view(data: bytes, source: str) -> ManagerView:
    """`wicked show-xml <if>`: only a shown option 245 counts; its XML may leave options out.

    <unknown-245><code>245</code><data>a8:3f:81:10</data></unknown-245> (as in its lease files)
    """
    root_el = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True)
    for el in root_el.iter():
        tag = el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else ""
        if tag != "unknown-245":
            continue
        for child in el:
            ctag = child.tag.rsplit("}", 1)[-1] if isinstance(child.tag, str) else ""
            if ctag == "data" and child.text:
                raw = child.text.strip()
                detail = f"<unknown-245><data>{raw}</data>"
                return ManagerView(
                    "wicked", True, True, True, decode_245(raw), False, source, detail
                )
    return ManagerView("wicked", False, None, None, None, False, source, "no option 245 shown")


def ask_wicked(runner: CommandRunner, ifname: str, notes: list[str]) -> ManagerView:
    """`wicked show-xml <if>`, parsed with defusedxml."""
    argv = ["wicked", "show-xml", ifname]
    source = " ".join(argv)
    res = runner.run(argv, timeout=TIMEOUT, max_output=_MAX_OUTPUT)
    if not res.ok:
        notes.append(_failed(source, res))
        return ManagerView("wicked", False, None, None, None, False, source, "")
    try:
        view = wicked_view(res.stdout.encode("utf-8"), source)
    except Exception as exc:  # noqa: BLE001 - defusedxml/expat raise several types
        notes.append(f"{source}: not XML ({type(exc).__name__})")
        return ManagerView("wicked", False, None, None, None, False, source, "")
    if not view.managed:
        notes.append(f"{source}: {view.detail} (its XML may leave options out; not judged)")
    return view


# -- the probe -----------------------------------------------------------------------------------


def read_live(host: Host, runner: CommandRunner) -> LiveDhcp:
    """The primary interface, then each present manager until one manages it."""
    notes: list[str] = []
    route = find_route(host.root, notes)
    if route is None:
        reason = "no primary interface: no IPv4 default route"
        return LiveDhcp(False, "; ".join([reason, *notes]), notes=tuple(notes))
    views: list[ManagerView] = []
    asked = 0
    for tool in ("networkctl", "nmcli", "wicked"):
        if runner.which(tool) is None:
            continue
        asked += 1
        if tool == "networkctl":
            view = ask_networkd(host, runner, route.interface, notes)
        elif tool == "nmcli":
            view = ask_nm(runner, route.interface, notes)
        else:
            view = ask_wicked(runner, route.interface, notes)
        views.append(view)
        if view.managed:
            break
    if asked and not any(v.managed for v in views):
        notes.append(f"no running manager says it manages {route.interface}")
    return LiveDhcp(True, "", route, tuple(views), tuple(notes))


def probe(host: Host, settings: Settings) -> LiveDhcp:
    """Probe: the primary interface's DHCP state from its manager (live only; never raises)."""
    if not host.live:
        return LiveDhcp(False, "offline: no network manager is asked")
    if host.runner is None:
        return LiveDhcp(False, "no command runner: no network manager is asked")
    return read_live(host, host.runner)
