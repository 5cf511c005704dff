"""DHCP as the guest's files record it: leases (with option 245) and the interface configuration.

The backup extension finds the WireServer through DHCP option 245; the agent reads it from lease
files (`osutil/default.py:get_endpoint_from_leases_path`). This probe reads the same files, plus
each network tool's configuration of the interfaces (netplan, ifcfg, ifupdown, networkd,
NetworkManager), and reports what it saw. It never judges: the `dhcp` check does.

A lease is *authoritative* when its format stores every option the server sent (dhclient,
systemd-networkd, NetworkManager's systemd-based internal client), so a missing option 245 there
is evidence. Formats that may drop unknown options or whose layout is unverified (wicked,
NetworkManager device state, NetworkManager's nettools address-only file) can only show 245.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Optional, Union

import defusedxml.ElementTree as SafeET

from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.paths import InputError, Root

_MAX_BYTES = 1024 * 1024
_MAX_FILES = 200

# Where leases live: (directory, file-name pattern, kind).
LEASE_LOCATIONS: tuple[tuple[str, str, str], ...] = (
    ("/var/lib/dhcp", "dhclient*.lease*", "dhclient"),
    ("/var/lib/dhclient", "*.lease*", "dhclient"),
    ("/var/lib/NetworkManager", "*.lease", "nm"),
    ("/run/systemd/netif/leases", "*", "networkd"),
    ("/var/lib/wicked", "lease-*-dhcp-ipv4.xml", "wicked"),
    ("/run/NetworkManager/devices", "*", "nm-device-state"),
)
RUN_DIR = "/run"
SYS_NET = "/sys/class/net"

NETPLAN_DIRS = ("/lib/netplan", "/etc/netplan", "/run/netplan")  # later dirs shadow by name
IFCFG_DIRS = ("/etc/sysconfig/network-scripts", "/etc/sysconfig/network")
INTERFACES = "/etc/network/interfaces"
NETWORKD_DIRS = (
    "/etc/systemd/network",
    "/run/systemd/network",
    "/usr/local/lib/systemd/network",
    "/usr/lib/systemd/network",
    "/lib/systemd/network",
)
NM_CONNECTION_DIRS = (
    "/etc/NetworkManager/system-connections",
    "/run/NetworkManager/system-connections",
    "/usr/lib/NetworkManager/system-connections",
)
# network-scripts skips backup copies (ifup-eth: *~, *.bak, *.orig, *.rpmnew, *.rpmorig, *.rpmsave).
_IFCFG_SKIP = ("~", ".bak", ".orig", ".rpmnew", ".rpmorig", ".rpmsave", ".old", ".swp")
# [Match] keys of systemd's container/VM-host templates, which never match a VM's own NIC.
_NETWORKD_TEMPLATE_MATCHES = ("Virtualization", "Kind")
# In networkd Address=, the unspecified address asks for an address from a pool; nothing binds.
_ANY_V4 = "0.0.0.0"  # noqa: S104
_TRUE = {"true", "yes", "on", "y", "1"}
_FALSE = {"false", "no", "off", "n", "0"}
ANY = "*"  # a configuration that applies to any ethernet interface


@dataclass(frozen=True)
class Lease:
    """One DHCPv4 lease and whether it carries option 245 (the WireServer address)."""

    path: str
    line: int
    kind: str
    interface: Optional[str]
    address: Optional[str]
    option_245: Optional[str]  # decoded, e.g. 168.63.129.16
    option_245_raw: Optional[str]  # as written, e.g. a8:3f:81:10
    option_245_line: Optional[int]
    expires: Optional[str]  # as written; None when the format has no expiry
    expired: bool
    authoritative: bool

    @property
    def source(self) -> str:
        """Evidence source: path:line of the lease."""
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class IfaceConfig:
    """How one network tool configures IPv4 on one interface."""

    interface: str  # a name, a glob (networkd `Name=e*`), or ANY
    method: str  # dhcp | static | unknown
    tool: str  # netplan | ifcfg | ifupdown | networkd | networkmanager
    source: str  # path:line
    detail: str  # the words that decided it, e.g. BOOTPROTO=static

    def applies_to(self, name: str) -> bool:
        """True when this configuration names (or matches) the interface."""
        if self.interface == ANY:
            return True
        return fnmatch.fnmatchcase(name, self.interface)


@dataclass(frozen=True)
class Skipped:
    """A file that was read but not understood, or could not be read."""

    path: str
    reason: str
    unreadable: bool

    def error(self) -> InputError:
        """The InputError a check hands to `ctx.unreadable`."""
        return InputError(self.path, self.reason)


@dataclass(frozen=True)
class DhcpState:
    """Everything the guest's files say about DHCP on it."""

    leases: tuple[Lease, ...]
    lease_files: tuple[str, ...]
    lease_places: tuple[str, ...]
    configs: tuple[IfaceConfig, ...]
    primary: Optional[str]
    run_empty: bool
    skipped: tuple[Skipped, ...] = ()

    def primary_configs(self) -> tuple[IfaceConfig, ...]:
        """The configurations that apply to the primary interface."""
        if self.primary is None:
            return tuple(c for c in self.configs if c.interface == ANY or _is_glob(c.interface))
        return tuple(c for c in self.configs if c.applies_to(self.primary))

    def current_leases(self) -> tuple[Lease, ...]:
        """Leases that have not expired (as of the cycle's clock)."""
        return tuple(lease for lease in self.leases if not lease.expired)


# -- option 245 -----------------------------------------------------------------------------------


def decode_245(raw: str) -> Optional[str]:
    """`a8:3f:81:10` or `a83f8110` -> `168.63.129.16`; None when it is not 4 bytes of hex."""
    text = raw.strip().strip(";").strip().strip('"')
    if ":" in text:
        parts = text.split(":")
    elif len(text) == 8:
        parts = [text[i : i + 2] for i in range(0, 8, 2)]
    else:
        return None
    if len(parts) != 4 or not all(1 <= len(p) <= 2 for p in parts):
        return None
    try:
        octets = [int(p, 16) for p in parts]
    except ValueError:
        return None
    if any(o < 0 or o > 255 for o in octets):
        return None
    return ".".join(str(o) for o in octets)


# -- dhclient -------------------------------------------------------------------------------------

_RE_OPT245 = re.compile(r"^\s*option\s+unknown-245\s+([0-9A-Fa-f:]+)\s*;")
_RE_EXPIRE = re.compile(r"^\s*expire\s+(.*?);")
_RE_IFACE = re.compile(r'^\s*interface\s+"([^"]*)"\s*;')
_RE_ADDR = re.compile(r"^\s*fixed-address\s+([0-9.]+)\s*;")


def _expiry(text: str, now: datetime) -> tuple[bool, str]:
    """Parse a dhclient `expire` value; (expired, as written). Unparsable counts as current.

    `4 2015/06/16 16:58:54` (UTC), `never`, or `epoch 1434473934` (db-time-format local).
    """
    value = text.strip()
    if value == "never":
        return False, value
    words = value.split()
    try:
        if words and words[0] == "epoch":
            when = datetime.fromtimestamp(int(words[1]), tz=timezone.utc)
        else:
            when = datetime.strptime(" ".join(words[1:3]), "%Y/%m/%d %H:%M:%S").replace(
                tzinfo=timezone.utc
            )
    except (ValueError, IndexError, OverflowError, OSError):
        return False, value
    return when <= now, value


def parse_dhclient(text: str, path: str, now: datetime, kind: str = "dhclient") -> list[Lease]:
    """Parse dhclient lease blocks: `lease { ... option unknown-245 a8:3f:81:10; ... }`."""
    out: list[Lease] = []
    start: Optional[int] = None
    iface: Optional[str] = None
    addr: Optional[str] = None
    raw245: Optional[str] = None
    line245: Optional[int] = None
    expires: Optional[str] = None
    expired = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("lease") and stripped.endswith("{"):
            start, iface, addr, raw245, line245, expires, expired = (
                lineno,
                None,
                None,
                None,
                None,
                None,
                False,
            )
            continue
        if start is None:
            continue
        if stripped.startswith("}"):
            out.append(
                Lease(
                    path=path,
                    line=start,
                    kind=kind,
                    interface=iface,
                    address=addr,
                    option_245=decode_245(raw245) if raw245 else None,
                    option_245_raw=raw245,
                    option_245_line=line245,
                    expires=expires,
                    expired=expired,
                    authoritative=True,
                )
            )
            start = None
            continue
        m = _RE_OPT245.match(line)
        if m:
            raw245, line245 = m.group(1), lineno
            continue
        m = _RE_EXPIRE.match(line)
        if m:
            expired, expires = _expiry(m.group(1), now)
            continue
        m = _RE_IFACE.match(line)
        if m:
            iface = m.group(1)
            continue
        m = _RE_ADDR.match(line)
        if m:
            addr = m.group(1)
    return out


# -- systemd-networkd and NetworkManager's internal client -----------------------------------------


def parse_networkd(text: str, path: str, kind: str = "networkd") -> Optional[Lease]:
    """Parse an sd-dhcp lease (`ADDRESS=10.0.0.69`, `OPTION_245=a83f8110`); None if empty.

    NetworkManager's nettools client writes only `ADDRESS=` to its internal-*.lease: such a
    file proves nothing about options, so it is not authoritative.
    """
    values: dict[str, tuple[str, int]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, _, value = stripped.partition("=")
        values[key.strip()] = (value.strip(), lineno)
    if not values:
        return None
    opt = values.get("OPTION_245")
    address_only = set(values) <= {"ADDRESS"}
    return Lease(
        path=path,
        line=1,
        kind=kind,
        interface=None,
        address=values["ADDRESS"][0] if "ADDRESS" in values else None,
        option_245=decode_245(opt[0]) if opt else None,
        option_245_raw=opt[0] if opt else None,
        option_245_line=opt[1] if opt else None,
        expires=None,
        expired=False,
        authoritative=not address_only,
    )


def parse_nm_device_state(text: str, path: str) -> Optional[Lease]:
    """Parse /run/NetworkManager/devices/<ifindex>; a `[dhcp4]` group may hold the options.

    The option's key name there is not verified against NetworkManager's sources, so both
    `private_245` (NetworkManager's option name) and `option_245` are accepted and absence is
    never taken as evidence.
    """
    section = ""
    found: Optional[tuple[str, int]] = None
    has_dhcp4 = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
            has_dhcp4 = has_dhcp4 or section == "dhcp4"
            continue
        if section != "dhcp4" or "=" not in stripped:
            continue
        key, _, value = stripped.partition("=")
        if key.strip() in ("private_245", "option_245", "unknown_245"):
            found = (value.strip(), lineno)
    if not has_dhcp4:
        return None
    return Lease(
        path=path,
        line=1,
        kind="nm-device-state",
        interface=None,
        address=None,
        option_245=decode_245(found[0]) if found else None,
        option_245_raw=found[0] if found else None,
        option_245_line=found[1] if found else None,
        expires=None,
        expired=False,
        authoritative=False,
    )


def parse_wicked(data: bytes, path: str) -> Optional[Lease]:
    """Parse a wicked lease XML; option 245 is `<unknown-245><code>245</code><data>a8:...`."""
    root_el = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True)
    raw: Optional[str] = None
    addr: Optional[str] = None
    for el in root_el.iter():
        tag = el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else ""
        if tag == "address" and addr is None and el.text:
            addr = el.text.strip()
        if tag == "unknown-245":
            for child in el:
                ctag = child.tag.rsplit("}", 1)[-1] if isinstance(child.tag, str) else ""
                if ctag == "data" and child.text:
                    raw = child.text.strip()
    iface = None
    base = posixpath.basename(path)
    # lease-eth0-dhcp-ipv4.xml -> eth0
    if base.startswith("lease-") and base.endswith("-dhcp-ipv4.xml"):
        iface = base[len("lease-") : -len("-dhcp-ipv4.xml")]
    return Lease(
        path=path,
        line=1,
        kind="wicked",
        interface=iface,
        address=addr,
        option_245=decode_245(raw) if raw else None,
        option_245_raw=raw,
        option_245_line=None,
        expires=None,
        expired=False,
        authoritative=False,
    )


def read_leases(root: Root, now: datetime) -> tuple[list[Lease], list[str], list[Skipped]]:
    """Every lease in the places the agent and the network tools keep them."""
    leases: list[Lease] = []
    files: list[str] = []
    skipped: list[Skipped] = []
    for directory, pattern, kind in LEASE_LOCATIONS:
        try:
            paths = root.glob(directory, pattern)
        except InputError as err:
            skipped.append(Skipped(err.guest_path, err.reason, True))
            continue
        for path in paths[:_MAX_FILES]:
            if root.is_dir(path):
                continue
            try:
                data = root.read_bytes(path, _MAX_BYTES)
            except InputError as err:
                skipped.append(Skipped(err.guest_path, err.reason, not err.missing))
                continue
            files.append(path)
            text = data.decode("utf-8", errors="replace")
            try:
                found = _parse_lease_file(kind, text, data, path, now)
            except Exception as exc:  # noqa: BLE001 - defusedxml/expat raise several types
                skipped.append(Skipped(path, f"not a lease file: {type(exc).__name__}", True))
                continue
            leases.extend(found)
    return leases, files, skipped


def _parse_lease_file(kind: str, text: str, data: bytes, path: str, now: datetime) -> list[Lease]:
    if kind == "wicked":
        one = parse_wicked(data, path)
        return [one] if one else []
    if kind == "nm-device-state":
        one = parse_nm_device_state(text, path)
        return [one] if one else []
    if "lease {" in text or re.search(r"^\s*lease\s*\{", text, re.M):
        # dhclient format, also NetworkManager's dhclient-*.lease
        return parse_dhclient(text, path, now, "dhclient" if kind == "dhclient" else "nm-dhclient")
    one = parse_networkd(text, path, "networkd" if kind == "networkd" else "nm-internal")
    return [one] if one else []


# -- a tolerant YAML reader for netplan ------------------------------------------------------------


@dataclass(frozen=True)
class YamlScalar:
    """A scalar and its line."""

    text: str
    line: int


YamlNode = Union[YamlScalar, "YamlMap", "YamlSeq"]


@dataclass(frozen=True)
class YamlMap:
    """A mapping and the line it starts on."""

    items: dict[str, YamlNode]
    line: int


@dataclass(frozen=True)
class YamlSeq:
    """A sequence and the line it starts on."""

    items: list[YamlNode]
    line: int


def _strip_comment(line: str) -> str:
    """Remove a `# comment` that is not inside quotes."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _unquote(text: str) -> str:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    return t


def _split_flow(body: str) -> list[str]:
    """Split `a, {b: c}, [d]` at top-level commas."""
    out: list[str] = []
    depth = 0
    quote = ""
    cur = ""
    for ch in body:
        if quote:
            cur += ch
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        cur += ch
    if cur.strip():
        out.append(cur)
    return out


def _flow(text: str, line: int) -> YamlNode:
    """A flow value: `[a, b]`, `{k: v}`, or a scalar."""
    t = text.strip()
    if t.startswith("[") and t.endswith("]"):
        return YamlSeq([_flow(p, line) for p in _split_flow(t[1:-1])], line)
    if t.startswith("{") and t.endswith("}"):
        items: dict[str, YamlNode] = {}
        for part in _split_flow(t[1:-1]):
            key, sep, value = part.partition(":")
            if sep:
                items[_unquote(key)] = _flow(value, line)
        return YamlMap(items, line)
    return YamlScalar(_unquote(t), line)


def parse_yaml(text: str) -> YamlNode:
    """Parse the block-style YAML subset netplan files use (maps, lists, flow values)."""
    lines: list[tuple[int, int, str]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        body = _strip_comment(raw.replace("\t", "  ")).rstrip()
        if not body.strip() or body.strip() in ("---", "..."):
            continue
        lines.append((len(body) - len(body.lstrip(" ")), lineno, body.strip()))
    node, _ = _block(lines, 0, lines[0][0] if lines else 0)
    return node


def _block(lines: list[tuple[int, int, str]], i: int, indent: int) -> tuple[YamlNode, int]:
    if i >= len(lines):
        return YamlMap({}, 0), i
    if lines[i][2].startswith("- ") or lines[i][2] == "-":
        seq: list[YamlNode] = []
        start = lines[i][1]
        while i < len(lines) and lines[i][0] == indent and lines[i][2].startswith("-"):
            _, lineno, content = lines[i]
            rest = content[1:].strip()
            if not rest:
                child, i = _block(lines, i + 1, lines[i + 1][0] if i + 1 < len(lines) else indent)
                seq.append(child)
                continue
            if ":" in rest and not rest.startswith(("[", "{", "'", '"')):
                # - key: value  (a mapping inside a list item)
                fake = [(indent + 2, lineno, rest)]
                j = i + 1
                while j < len(lines) and lines[j][0] > indent:
                    fake.append(lines[j])
                    j += 1
                child, _ = _block(fake, 0, indent + 2)
                seq.append(child)
                i = j
                continue
            seq.append(_flow(rest, lineno))
            i += 1
        return YamlSeq(seq, start), i
    items: dict[str, YamlNode] = {}
    start = lines[i][1]
    while i < len(lines) and lines[i][0] == indent:
        _, lineno, content = lines[i]
        key, sep, value = content.partition(":")
        if not sep:
            i += 1
            continue
        key = _unquote(key)
        if value.strip():
            items[key] = _flow(value, lineno)
            i += 1
            continue
        if i + 1 < len(lines) and lines[i + 1][0] > indent:
            child, i = _block(lines, i + 1, lines[i + 1][0])
            items[key] = child
        elif i + 1 < len(lines) and lines[i + 1][0] == indent and lines[i + 1][2].startswith("-"):
            # addresses:
            # - 10.0.0.4/24      (a list at the same indent as its key)
            child, i = _block(lines, i + 1, indent)
            items[key] = child
        else:
            items[key] = YamlScalar("", lineno)
            i += 1
    return YamlMap(items, start), i


# -- interface configuration ----------------------------------------------------------------------


def _shadowed(root: Root, dirs: tuple[str, ...], pattern: str, first_wins: bool) -> list[str]:
    """Files by name across directories, one per name, sorted by name."""
    chosen: dict[str, str] = {}
    for d in dirs if first_wins else tuple(reversed(dirs)):
        for path in root.glob(d, pattern):
            name = posixpath.basename(path)
            if name not in chosen:
                chosen[name] = path
    return [chosen[k] for k in sorted(chosen)][:_MAX_FILES]


def _read(root: Root, path: str, skipped: list[Skipped]) -> Optional[str]:
    try:
        return root.read_text(path, _MAX_BYTES)
    except InputError as err:
        if not err.missing:
            skipped.append(Skipped(err.guest_path, err.reason, True))
        return None


def read_netplan(root: Root, skipped: list[Skipped]) -> list[IfaceConfig]:
    """netplan: `network: ethernets: eth0: dhcp4: true` / `addresses: [10.0.0.4/24]`."""
    merged: dict[str, dict[str, tuple[YamlNode, str]]] = {}
    for path in _shadowed(root, NETPLAN_DIRS, "*.yaml", first_wins=False):
        text = _read(root, path, skipped)
        if text is None:
            continue
        try:
            doc = parse_yaml(text)
        except (IndexError, ValueError, RecursionError):
            skipped.append(Skipped(path, "YAML not understood", False))
            continue
        if not isinstance(doc, YamlMap):
            continue
        network = doc.items.get("network")
        if not isinstance(network, YamlMap):
            continue
        for kind in ("ethernets", "bonds", "bridges", "vlans"):
            group = network.items.get(kind)
            if not isinstance(group, YamlMap):
                continue
            for ifname, body in group.items.items():
                if not isinstance(body, YamlMap):
                    continue
                slot = merged.setdefault(ifname, {})
                for key in ("dhcp4", "addresses"):
                    if key in body.items:
                        slot[key] = (body.items[key], path)
    out: list[IfaceConfig] = []
    for ifname in sorted(merged):
        slot = merged[ifname]
        dhcp = slot.get("dhcp4")
        addrs = slot.get("addresses")
        dhcp_on = dhcp is not None and _scalar(dhcp[0]).lower() in _TRUE
        v4 = _v4_addresses(addrs[0]) if addrs else []
        if dhcp_on and dhcp:
            out.append(IfaceConfig(ifname, "dhcp", "netplan", _src(dhcp), "dhcp4: true"))
        elif v4 and addrs:
            text = f"addresses: [{', '.join(v4)}]"
            if dhcp:
                text = f"dhcp4: {_scalar(dhcp[0])}, {text}"
            out.append(IfaceConfig(ifname, "static", "netplan", _src(addrs), text))
        elif dhcp:
            detail = f"dhcp4: {_scalar(dhcp[0])} and no IPv4 address"
            out.append(IfaceConfig(ifname, "unknown", "netplan", _src(dhcp), detail))
    return out


def _scalar(node: YamlNode) -> str:
    return node.text if isinstance(node, YamlScalar) else "?"


def _src(pair: tuple[YamlNode, str]) -> str:
    return f"{pair[1]}:{pair[0].line}"


def _v4_addresses(node: YamlNode) -> list[str]:
    """IPv4 entries of a netplan `addresses:` list (strings, or `{10.0.0.4/24: {...}}` maps)."""
    items: list[YamlNode] = node.items if isinstance(node, YamlSeq) else [node]
    out: list[str] = []
    for item in items:
        if isinstance(item, YamlScalar) and ":" not in item.text and item.text:
            out.append(item.text)
        elif isinstance(item, YamlMap):
            out.extend(k for k in item.items if ":" not in k)
    return out


def _shell_values(text: str) -> dict[str, tuple[str, int]]:
    """KEY=value lines with shell quoting; `# comment` lines are skipped."""
    out: dict[str, tuple[str, int]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, _, raw = stripped.partition("=")
        try:
            words = shlex.split(raw, comments=True)
        except ValueError:
            words = [raw.strip("'\" ")]
        out[key.strip()] = (words[0] if words else "", lineno)
    return out


def read_ifcfg(root: Root, skipped: list[Skipped]) -> list[IfaceConfig]:
    """ifcfg-<if> (RHEL and SUSE): `BOOTPROTO=dhcp|static|none` plus `IPADDR=`."""
    out: list[IfaceConfig] = []
    for d in IFCFG_DIRS:
        for path in root.glob(d, "ifcfg-*")[:_MAX_FILES]:
            if path.endswith(_IFCFG_SKIP) or path.endswith("ifcfg-lo"):
                continue
            text = _read(root, path, skipped)
            if text is None:
                continue
            values = _shell_values(text)
            ifname = values.get("DEVICE", (posixpath.basename(path)[len("ifcfg-") :], 0))[0]
            if not ifname or ifname == "lo":
                continue
            boot = values.get("BOOTPROTO")
            ipaddr = next((values[k] for k in sorted(values) if k.startswith("IPADDR")), None)
            proto = boot[0].lower() if boot else ""
            where = f"{path}:{boot[1]}" if boot else path
            said = f"BOOTPROTO={boot[0]}" if boot else "no BOOTPROTO (defaults to none)"
            if proto.startswith(("dhcp4", "bootp")) or proto in ("dhcp", "dhcp+autoip"):
                out.append(IfaceConfig(ifname, "dhcp", "ifcfg", where, said))
            elif proto == "static" or (proto in ("none", "") and ipaddr):
                detail = said
                if ipaddr:
                    detail += f", IPADDR={ipaddr[0]}"
                out.append(IfaceConfig(ifname, "static", "ifcfg", where, detail))
    return out


def read_ifupdown(root: Root, skipped: list[Skipped]) -> list[IfaceConfig]:
    """/etc/network/interfaces (and what it sources): `iface eth0 inet dhcp|static`."""
    out: list[IfaceConfig] = []
    queue = [INTERFACES]
    seen: set[str] = set()
    while queue and len(seen) < _MAX_FILES:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        text = _read(root, path, skipped)
        if text is None:
            continue
        for lineno, line in enumerate(text.splitlines(), start=1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if words[0] == "source" and len(words) > 1:
                queue.extend(_expand(root, words[1], posixpath.dirname(INTERFACES)))
            elif words[0] == "source-directory" and len(words) > 1:
                d = words[1] if words[1].startswith("/") else f"/etc/network/{words[1]}"
                queue.extend(p for p in root.glob(d, "*") if re.fullmatch(r"[\w-]+", _bn(p)))
            elif words[0] == "iface" and len(words) >= 4 and words[2] == "inet":
                ifname, method = words[1], words[3]
                if ifname == "lo" or method not in ("dhcp", "static"):
                    continue
                out.append(
                    IfaceConfig(ifname, method, "ifupdown", f"{path}:{lineno}", " ".join(words[:4]))
                )
    return out


def _bn(path: str) -> str:
    return posixpath.basename(path)


def _expand(root: Root, pattern: str, base: str) -> list[str]:
    """`source /etc/network/interfaces.d/*` -> the matching files."""
    full = pattern if pattern.startswith("/") else posixpath.join(base, pattern)
    d, name = posixpath.split(full)
    if any(ch in name for ch in "*?["):
        return [p for p in root.glob(d, name) if root.is_file(p)]
    return [full]


def _static_v4(value: str) -> bool:
    """Address=10.0.0.4/24 is static IPv4; IPv6 (colons) and a 0.0.0.0/28 pool request are not."""
    return bool(value) and ":" not in value and value.split("/")[0] != _ANY_V4


def read_networkd(root: Root, skipped: list[Skipped]) -> list[IfaceConfig]:
    """systemd-networkd `.network` files: `[Match] Name=`, `DHCP=`, `Address=`."""
    out: list[IfaceConfig] = []
    for path in _shadowed(root, NETWORKD_DIRS, "*.network", first_wins=True):
        if root.resolve(path) == "/dev/null":
            continue
        text = _read(root, path, skipped)
        if text is None:
            continue
        section = ""
        names: list[str] = []
        dhcp: Optional[tuple[str, int]] = None
        addrs: list[tuple[str, int]] = []
        template = False
        for lineno, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", ";")):
                continue
            if stripped.startswith("[") and stripped.endswith("]"):
                section = stripped[1:-1].strip()
                continue
            key, sep, value = stripped.partition("=")
            if not sep:
                continue
            key, value = key.strip(), value.strip()
            if section == "Match" and key in _NETWORKD_TEMPLATE_MATCHES:
                # systemd's own 80-container-ve.network: Name=ve-* Virtualization=!container
                template = True
            elif section == "Match" and key == "Name":
                names = value.split() if value else []
            elif section == "Network" and key == "DHCP":
                dhcp = (value, lineno)
            elif section in ("Network", "Address") and key == "Address" and _static_v4(value):
                addrs.append((value, lineno))
        if template:
            continue
        targets = [n for n in names if not n.startswith("!")] or [ANY]
        for target in targets:
            if dhcp and dhcp[0].lower() in (_TRUE | {"ipv4", "both"}):
                out.append(
                    IfaceConfig(target, "dhcp", "networkd", f"{path}:{dhcp[1]}", f"DHCP={dhcp[0]}")
                )
            elif addrs:
                detail = f"Address={addrs[0][0]}" + (f", DHCP={dhcp[0]}" if dhcp else "")
                out.append(
                    IfaceConfig(target, "static", "networkd", f"{path}:{addrs[0][1]}", detail)
                )
    return out


def read_nm_keyfiles(root: Root, skipped: list[Skipped]) -> list[IfaceConfig]:
    """NetworkManager keyfiles: `[connection] interface-name=`, `[ipv4] method=auto|manual`."""
    out: list[IfaceConfig] = []
    for d in NM_CONNECTION_DIRS:
        for path in root.glob(d, "*.nmconnection")[:_MAX_FILES]:
            text = _read(root, path, skipped)
            if text is None:
                continue
            section = ""
            ifname = ANY
            ctype = ""
            method: Optional[tuple[str, int]] = None
            address: Optional[str] = None
            for lineno, line in enumerate(text.splitlines(), start=1):
                stripped = line.strip()
                if not stripped or stripped.startswith(("#", ";")):
                    continue
                if stripped.startswith("[") and stripped.endswith("]"):
                    section = stripped[1:-1].strip()
                    continue
                key, _, value = stripped.partition("=")
                key, value = key.strip(), value.strip()
                if section == "connection" and key == "interface-name" and value:
                    ifname = value
                elif section == "connection" and key == "type":
                    ctype = value
                elif section == "ipv4" and key == "method":
                    method = (value, lineno)
                elif section == "ipv4" and re.fullmatch(r"address\d*", key) and value:
                    address = value.split(",")[0]
            if ctype and ctype not in ("ethernet", "802-3-ethernet", "bond", "bridge", "vlan"):
                continue
            value = method[0] if method else "auto"
            where = f"{path}:{method[1]}" if method else path
            detail = f"[ipv4] method={value}" + (f", address={address}" if address else "")
            if value == "auto":
                out.append(IfaceConfig(ifname, "dhcp", "networkmanager", where, detail))
            elif value == "manual":
                out.append(IfaceConfig(ifname, "static", "networkmanager", where, detail))
    return out


def _is_glob(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def choose_primary(configs: list[IfaceConfig]) -> Optional[str]:
    """eth0 when any tool names it, else the first name with an IPv4 method (no globs, no lo)."""
    named = [c for c in configs if c.interface not in (ANY, "lo") and not _is_glob(c.interface)]
    if any(c.interface == "eth0" for c in named):
        return "eth0"
    known = sorted({c.interface for c in named if c.method != "unknown"})
    if known:
        return known[0]
    unknown = sorted({c.interface for c in named})
    return unknown[0] if unknown else None


def _ifindex_names(root: Root) -> dict[str, str]:
    """ifindex -> interface name from /sys/class/net (live only; empty on a rescue disk)."""
    out: dict[str, str] = {}
    try:
        names = root.listdir(SYS_NET)
    except InputError:
        return out
    for name in names[:_MAX_FILES]:
        try:
            index = root.read_text(posixpath.join(SYS_NET, name, "ifindex"), 64).strip()
        except InputError:
            continue
        if index.isdigit():
            out[index] = name
    return out


def read_state(root: Root, now: datetime) -> DhcpState:
    """Leases and interface configuration from the guest's files."""
    leases, files, skipped = read_leases(root, now)
    names = _ifindex_names(root)
    leases = [
        replace(lease, interface=names.get(_bn(lease.path), lease.interface))
        if lease.interface is None and lease.kind in ("networkd", "nm-device-state")
        else lease
        for lease in leases
    ]
    configs: list[IfaceConfig] = []
    for reader in (read_netplan, read_ifcfg, read_ifupdown, read_networkd, read_nm_keyfiles):
        try:
            configs.extend(reader(root, skipped))
        except InputError as err:
            skipped.append(Skipped(err.guest_path, err.reason, not err.missing))
    try:
        run_empty = not root.listdir(RUN_DIR)
    except InputError:
        run_empty = True
    return DhcpState(
        leases=tuple(leases),
        lease_files=tuple(files),
        lease_places=tuple(posixpath.join(d, p) for d, p, _ in LEASE_LOCATIONS),
        configs=tuple(configs),
        primary=choose_primary(configs),
        run_empty=run_empty,
        skipped=tuple(skipped),
    )


def probe(host: Host, settings: Settings) -> DhcpState:
    """Probe: DHCP leases and the primary interface's configuration, from files."""
    return read_state(host.root, host.as_of)
