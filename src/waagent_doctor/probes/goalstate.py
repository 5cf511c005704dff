"""The newest extensions goal state the agent received: plugins, GA families, status blob host.

Two generations exist on disk (facts §1a): legacy top-level `ExtensionsConfig.<N>.xml` and
`history/<YYYY-MM-DDTHH-MM-SS>__<incarnation>[-<etag>]/`. Only the newest goal state counts:
an error recorded in an older one is history, not a diagnosis.
"""

from __future__ import annotations

import json
import posixpath
import re
import xml.etree.ElementTree as ET  # only for the ParseError/Element types; parsing is defusedxml
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Optional
from urllib.parse import urlsplit

import defusedxml
import defusedxml.ElementTree as DET

from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.paths import HISTORY_DIR, LIB_DIR, InputError, Root

# Goal-state documents are small (the hibernate fixture's VmSettings.json is 10 KiB); a large
# one with many extensions and signatures stays well below this.
MAX_DOC_BYTES = 4 * 1024 * 1024
# history/2025-11-20T09-58-02__3-etag_1234 -> ("2025-11-20T09-58-02", "3-etag_1234")
_HISTORY_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2})__(.+)$")
# ExtensionsConfig.7.xml / VmSettings.7.json / GoalState.7.xml (legacy, one per incarnation)
_LEGACY_RE = re.compile(r"^(GoalState|ExtensionsConfig|VmSettings)\.(\d+)\.(xml|json)$")
_TICKS_EPOCH = datetime(1, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class PluginRequest:
    """One extension the goal state asks for (Plugins/Plugin or extensionGoalStates[])."""

    name: str
    version: str
    state: str
    seq_no: Optional[int]
    is_json: bool
    multi_config: bool


@dataclass(frozen=True)
class GAFamily:
    """An agent family offered by the goal state; `version` is absent in older goal states."""

    name: str
    version: Optional[str]


@dataclass(frozen=True)
class GoalState:
    """The extensions goal state the agent used: the newest of ExtensionsConfig and VmSettings."""

    source: str
    generation: str
    folder: Optional[str]
    incarnation: Optional[str]
    etag: Optional[str]
    received_at: Optional[datetime]
    created_on: Optional[datetime]
    plugins: tuple[PluginRequest, ...]
    ga_families: tuple[GAFamily, ...]
    status_upload_host: Optional[str]
    status_blob_type: Optional[str]

    def plugin(self, name: str) -> Optional[PluginRequest]:
        """The request for one extension by Publisher.Type (case-insensitive), or None."""
        for p in self.plugins:
            if p.name.lower() == name.lower():
                return p
        return None

    def family(self, name: str) -> Optional[GAFamily]:
        """The GA family of that name (Prod by default in the agent), or None."""
        for f in self.ga_families:
            if f.name.lower() == name.lower():
                return f
        return None


def ticks_to_time(ticks: Any) -> Optional[datetime]:
    """.NET ticks (100 ns since 0001-01-01 UTC) -> datetime; None when not a sane number."""
    try:
        value = int(ticks)
    except (TypeError, ValueError):
        return None
    if value <= 0 or value > 3_155_378_975_999_999_999:
        return None
    return _TICKS_EPOCH + timedelta(microseconds=value // 10)


def read_json(root: Root, guest: str, max_bytes: int = MAX_DOC_BYTES) -> Any:
    """Parse a guest JSON file; bad JSON or a file over max_bytes is an InputError."""
    raw = root.read_bytes(guest, max_bytes)
    try:
        return json.loads(raw.decode("utf-8-sig", errors="replace"))
    except (ValueError, RecursionError) as exc:
        raise InputError(guest, f"not valid JSON: {exc}") from exc


def parse_xml(root: Root, guest: str, max_bytes: int = MAX_DOC_BYTES) -> ET.Element:
    """Parse a guest XML file with defusedxml: DTDs, entities and external references refused."""
    raw = root.read_bytes(guest, max_bytes)
    try:
        elem: ET.Element = DET.fromstring(raw, forbid_dtd=True)
    except defusedxml.DefusedXmlException as exc:
        raise InputError(guest, f"XML refused ({type(exc).__name__})") from exc
    except (ET.ParseError, ValueError) as exc:
        raise InputError(guest, f"not well-formed XML: {exc}") from exc
    return elem


def _host_of(url: Optional[str]) -> Optional[str]:
    # https://md-x.z38.blob.storage.azure.net/$system/vm.status?sv=... -> md-x.z38.blob...
    if not url:
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return host or None


def _int(value: Any) -> Optional[int]:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _bool(value: Any) -> bool:
    return str(value).strip().lower() == "true"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: ET.Element, name: str) -> Optional[ET.Element]:
    for c in elem:
        if _local(c.tag) == name:
            return c
    return None


def _children(elem: Optional[ET.Element], name: str) -> list[ET.Element]:
    if elem is None:
        return []
    return [c for c in elem if _local(c.tag) == name]


@dataclass(frozen=True)
class _Doc:
    """A parsed extensions document before the newest one is chosen."""

    path: str
    created_on: Optional[datetime]
    plugins: tuple[PluginRequest, ...]
    families: tuple[GAFamily, ...]
    status_host: Optional[str]
    status_type: Optional[str]
    incarnation: Optional[str]


def parse_extensions_config(root: Root, guest: str) -> _Doc:
    """Read ExtensionsConfig.xml: Plugins, PluginSettings seqNo, GAFamilies, StatusUploadBlob."""
    doc = parse_xml(root, guest)
    if _local(doc.tag) != "Extensions":
        raise InputError(guest, f"not an ExtensionsConfig document (<{_local(doc.tag)}>)")
    # <PluginSettings><Plugin name=".." version=".."><RuntimeSettings seqNo="4">...
    seqs: dict[tuple[str, str], Optional[int]] = {}
    multi: set[tuple[str, str]] = set()
    for ps in _children(_child(doc, "PluginSettings"), "Plugin"):
        key = (ps.get("name", "").lower(), ps.get("version", ""))
        rs = _child(ps, "RuntimeSettings")
        if rs is not None:
            seqs[key] = _int(rs.get("seqNo"))
        ext_settings = _children(ps, "ExtensionRuntimeSettings")
        if ext_settings:
            multi.add(key)
            seqs.setdefault(key, max(_int(e.get("seqNo")) or 0 for e in ext_settings))
    plugins = []
    for p in _children(_child(doc, "Plugins"), "Plugin"):
        name, version = p.get("name", ""), p.get("version", "")
        if not name:
            continue
        key = (name.lower(), version)
        plugins.append(
            PluginRequest(
                name=name,
                version=version,
                state=p.get("state", "enabled").lower(),
                seq_no=seqs.get(key),
                is_json=_bool(p.get("isJson", "false")),
                multi_config=key in multi,
            )
        )
    families = []
    gae = _child(doc, "GuestAgentExtension")
    for fam in _children(_child(gae, "GAFamilies") if gae is not None else None, "GAFamily"):
        name_el, ver_el = _child(fam, "Name"), _child(fam, "Version")
        if name_el is None or not (name_el.text or "").strip():
            continue
        ver = (ver_el.text or "").strip() if ver_el is not None else ""
        families.append(GAFamily((name_el.text or "").strip(), ver or None))
    blob = _child(doc, "StatusUploadBlob")
    meta = _child(doc, "InVMGoalStateMetaData")
    return _Doc(
        path=guest,
        created_on=ticks_to_time(meta.get("createdOnTicks")) if meta is not None else None,
        plugins=tuple(plugins),
        families=tuple(families),
        status_host=_host_of(blob.text if blob is not None else None),
        status_type=blob.get("statusBlobType") if blob is not None else None,
        incarnation=doc.get("goalStateIncarnation"),
    )


def parse_vm_settings(root: Root, guest: str) -> _Doc:
    """Read the HostGAPlugin's VmSettings.json (Fast Track): extensionGoalStates, gaFamilies."""
    data = read_json(root, guest)
    if not isinstance(data, dict):
        raise InputError(guest, "not a vmSettings object")
    plugins = []
    for e in data.get("extensionGoalStates") or []:
        if not isinstance(e, dict) or not e.get("name"):
            continue
        plugins.append(
            PluginRequest(
                name=str(e["name"]),
                version=str(e.get("version", "")),
                state=str(e.get("state", "enabled")).lower(),
                seq_no=_int(e.get("settingsSeqNo")),
                is_json=bool(e.get("isJson", False)),
                multi_config=bool(e.get("isMultiConfig", False)),
            )
        )
    families = [
        GAFamily(str(f["name"]), str(f["version"]) if f.get("version") else None)
        for f in data.get("gaFamilies") or []
        if isinstance(f, dict) and f.get("name")
    ]
    blob = data.get("statusUploadBlob")
    blob = blob if isinstance(blob, dict) else {}
    return _Doc(
        path=guest,
        created_on=ticks_to_time(data.get("extensionsLastModifiedTickCount")),
        plugins=tuple(plugins),
        families=tuple(families),
        status_host=_host_of(str(blob.get("value") or "")),
        status_type=str(blob["statusBlobType"]) if blob.get("statusBlobType") else None,
        incarnation=None,
    )


def _newer(wire: Optional[_Doc], fast: Optional[_Doc]) -> Optional[_Doc]:
    # The agent uses vmSettings only when it is newer than ExtensionsConfig
    # (goal_state.py: created_on_timestamp comparison); without times, ExtensionsConfig.
    if wire is None or fast is None:
        return wire or fast
    if fast.created_on and wire.created_on and fast.created_on > wire.created_on:
        return fast
    return wire


@dataclass(frozen=True)
class HistoryFolder:
    """One history/<timestamp>__<tag> directory."""

    path: str
    timestamp: datetime
    incarnation: Optional[str]
    etag: Optional[str]


def history_folders(root: Root) -> list[HistoryFolder]:
    """History folders (not the .zip archives), newest first by the timestamp in the name."""
    found = []
    for name in root.listdir(HISTORY_DIR):
        m = _HISTORY_RE.match(name)
        path = posixpath.join(HISTORY_DIR, name)
        if m is None or not root.is_dir(path):
            continue
        try:
            when = datetime.strptime(m.group(1), "%Y-%m-%dT%H-%M-%S").replace(tzinfo=timezone.utc)
        except ValueError:
            continue
        # "3-etag_1234" -> incarnation 3, etag etag_1234; "etag_1234" alone (Fast Track)
        tag = m.group(2)
        inc, _, etag = tag.partition("-")
        if not inc.isdigit():
            inc, etag = "", tag
        found.append(HistoryFolder(path, when, inc or None, etag or None))
    found.sort(key=lambda h: (h.timestamp, h.path), reverse=True)
    return found


def _from_history(root: Root, folders: list[HistoryFolder]) -> Optional[GoalState]:
    wire_at: Optional[HistoryFolder] = None
    fast_at: Optional[HistoryFolder] = None
    for h in folders:
        if wire_at is None and root.is_file(posixpath.join(h.path, "ExtensionsConfig.xml")):
            wire_at = h
        if fast_at is None and root.is_file(posixpath.join(h.path, "VmSettings.json")):
            fast_at = h
        if wire_at and fast_at:
            break
    wire = (
        parse_extensions_config(root, wire_at.path + "/ExtensionsConfig.xml") if wire_at else None
    )
    fast = parse_vm_settings(root, fast_at.path + "/VmSettings.json") if fast_at else None
    chosen: Optional[_Doc]
    folder: Optional[HistoryFolder]
    if wire and fast and wire_at and fast_at and not (wire.created_on and fast.created_on):
        # No ticks to compare: the folder saved later holds the document the agent used.
        chosen, folder = (
            (fast, fast_at) if fast_at.timestamp > wire_at.timestamp else (wire, wire_at)
        )
    else:
        chosen = _newer(wire, fast)
        folder = wire_at if chosen is wire else fast_at
    if chosen is None or folder is None:
        return None
    return GoalState(
        source=chosen.path,
        generation="history",
        folder=folder.path,
        incarnation=folder.incarnation or chosen.incarnation,
        etag=folder.etag,
        received_at=folder.timestamp,
        created_on=chosen.created_on,
        plugins=chosen.plugins,
        ga_families=chosen.families,
        status_upload_host=chosen.status_host,
        status_blob_type=chosen.status_type,
    )


def _from_legacy(root: Root) -> Optional[GoalState]:
    newest: dict[str, tuple[int, str]] = {}
    for name in root.listdir(LIB_DIR):
        m = _LEGACY_RE.match(name)
        if m is None:
            continue
        kind, n = m.group(1), int(m.group(2))
        if kind not in newest or n > newest[kind][0]:
            newest[kind] = (n, posixpath.join(LIB_DIR, name))
    wire = (
        parse_extensions_config(root, newest["ExtensionsConfig"][1])
        if "ExtensionsConfig" in newest
        else None
    )
    fast = parse_vm_settings(root, newest["VmSettings"][1]) if "VmSettings" in newest else None
    chosen = _newer(wire, fast)
    if chosen is None:
        return None
    info = root.stat(chosen.path)
    mtime = datetime.fromtimestamp(info.mtime, timezone.utc) if info else None
    incarnation = chosen.incarnation
    if incarnation is None and "ExtensionsConfig" in newest:
        incarnation = str(newest["ExtensionsConfig"][0])
    return GoalState(
        source=chosen.path,
        generation="legacy",
        folder=None,
        incarnation=incarnation,
        etag=None,
        # The request reached the VM no later than the agent wrote the file; the creation
        # time from the platform (createdOnTicks) is the better clock when present.
        received_at=chosen.created_on or mtime,
        created_on=chosen.created_on,
        plugins=chosen.plugins,
        ga_families=chosen.families,
        status_upload_host=chosen.status_host,
        status_blob_type=chosen.status_type,
    )


def read(root: Root) -> Optional[GoalState]:
    """The newest extensions goal state on disk; None when the VM has none yet.

    History folders win over legacy files: a current agent purges the legacy ones (and
    leaves a placeholder GoalState.1.xml that holds no data).
    """
    folders = history_folders(root)
    found = _from_history(root, folders) if folders else None
    if found is not None:
        return found
    return _from_legacy(root)


def probe(host: Host, settings: Settings) -> Optional[GoalState]:
    """Probe: the newest extensions goal state (InputError when it cannot be parsed)."""
    return read(host.root)
