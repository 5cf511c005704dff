"""Extension handler folders under /var/lib/waagent: state, handler status, extension status.

`<Publisher>.<Type>-<version>/` holds `config/HandlerState`, `config/HandlerStatus`,
`config/<seq>.settings` (secrets: only its existence and mtime are read), `status/<seq>.status`
(the extension's own report, facts §2a), `mrseq`, `HandlerEnvironment.json`, `HandlerManifest.json`.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.model import parse_time
from waagent_doctor.paths import LIB_DIR, InputError, Root
from waagent_doctor.probes import goalstate
from waagent_doctor.probes.goalstate import read_json
from waagent_doctor.probes.versions import version_key

VMSNAPSHOT = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"
# The agent's limits (exthandlers.py): status file 128 KiB, message 1 KiB.
MAX_STATUS_BYTES = 128 * 1024
MAX_MESSAGE_CHARS = 1024
# Status files parsed per handler, newest sequence numbers first (a VM backed up daily for a
# year keeps hundreds; the diagnosis needs the last few).
MAX_STATUS_FILES = 20
_SMALL = 256 * 1024
_TERMINAL_OR_KNOWN = ("transitioning", "warning", "error", "success")
# Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.9225.0 -> (name, version)
_HANDLER_DIR_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)+)-(?P<ver>\d+(?:\.\d+)+)$"
)
# 12.status, or multi-config "<extName>.12.status"
_SEQ_FILE_RE = re.compile(r"^(?:(?P<ext>.+)\.)?(?P<seq>\d+)\.(?P<kind>status|settings)$")
# The agent's own SAS scrubber (textutil.py SAS_TOKEN_RE), applied to every message we keep.
_SAS_RE = re.compile(r"(https://\S+\?)((sv|st|se|sr|sp|sip|spr|sig)=\S+)+", re.IGNORECASE)
# "/Date(1559865179380)/" -> 1559865179380 ms (VMSnapshot's embedded statuses)
_MS_DATE_RE = re.compile(r"/Date\((\d+)\)/")


def scrub(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Scrub SAS tokens and cut a message to the agent's 1 KiB message limit."""
    text = _SAS_RE.sub(r"\1<redacted>", text.replace("\\/", "/"))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " ... [TRUNCATED]"


def _time(value: Any) -> Optional[datetime]:
    # "2019-06-06T23:52:59Z" or "\/Date(1559865179380)\/"
    if not isinstance(value, str) or not value.strip():
        return None
    m = _MS_DATE_RE.search(value.replace("\\/", "/"))
    if m:
        return datetime.fromtimestamp(int(m.group(1)) / 1000, timezone.utc)
    try:
        return parse_time(value)
    except ValueError:
        return None


def _code(value: Any) -> Optional[int]:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _message(obj: Any) -> str:
    # {"formattedMessage": {"lang": "en-US", "message": "..."}}
    if isinstance(obj, dict):
        fm = obj.get("formattedMessage")
        msg = fm.get("message") if isinstance(fm, dict) else None
        if isinstance(msg, str):
            return msg
    return ""


@dataclass(frozen=True)
class SubStatus:
    """A substatus, or a status embedded as JSON in a substatus name (VMSnapshot)."""

    status: str
    code: Optional[int]
    message: str


@dataclass(frozen=True)
class ExtStatus:
    """One `status/<seq>.status` file as the agent would read it.

    `problem` says why the agent would reject it (too large, not JSON, malformed); the agent
    then reports the extension as failed, so a problem is an observation, not a read error.
    """

    path: str
    seq_no: int
    ext_name: Optional[str]
    size: int
    mtime: datetime
    status: Optional[str] = None
    code: Optional[int] = None
    message: str = ""
    operation: Optional[str] = None
    timestamp: Optional[datetime] = None
    substatus: tuple[SubStatus, ...] = ()
    problem: Optional[str] = None

    @property
    def when(self) -> datetime:
        """When the extension last wrote it: timestampUTC, else the file's mtime."""
        return self.timestamp or self.mtime

    def codes(self) -> tuple[int, ...]:
        """The status code and every substatus code (embedded ones included)."""
        found = [self.code] if self.code is not None else []
        found += [s.code for s in self.substatus if s.code is not None]
        return tuple(found)

    def messages(self) -> tuple[str, ...]:
        """The status message and every substatus message."""
        return tuple(m for m in (self.message, *(s.message for s in self.substatus)) if m)


def parse_status(
    raw: bytes,
    path: str,
    seq_no: int,
    ext_name: Optional[str],
    mtime: datetime,
    *,
    size: Optional[int] = None,
) -> ExtStatus:
    """Parse status JSON bytes with the agent's rules (exthandlers.py parse_ext_status).

    `raw` may be cut at MAX_STATUS_BYTES + 1; `size` is the file's real size.
    """
    real = max(size or 0, len(raw))
    base: dict[str, Any] = {
        "path": path,
        "seq_no": seq_no,
        "ext_name": ext_name,
        "size": real,
        "mtime": mtime,
    }
    if real > MAX_STATUS_BYTES:
        return ExtStatus(
            **base, problem=f"too large ({real} bytes; the agent's limit is {MAX_STATUS_BYTES})"
        )
    try:
        data = json.loads(raw.decode("utf-8-sig", errors="replace"))
    except (ValueError, RecursionError) as exc:
        return ExtStatus(**base, problem=f"not valid JSON ({exc})")
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return ExtStatus(**base, problem="malformed: the top level is not a non-empty JSON array")
    top = data[0]
    st = top.get("status")
    if not isinstance(st, dict) or "status" not in st:
        return ExtStatus(
            **base, problem="malformed: no status.status", timestamp=_time(top.get("timestampUTC"))
        )
    value = str(st.get("status", "")).lower()
    # The agent coerces an unknown status.status to "error".
    status = value if value in _TERMINAL_OR_KNOWN else "error"
    subs: list[SubStatus] = []
    for sub in st.get("substatus") or []:
        if not isinstance(sub, dict):
            continue
        subs.append(
            SubStatus(
                str(sub.get("status", "")).lower(), _code(sub.get("code")), scrub(_message(sub))
            )
        )
        # VMSnapshot: substatus[0].name is a JSON-encoded status array.
        name = sub.get("name")
        if (
            isinstance(name, str)
            and name.lstrip().startswith("[")
            and len(name) <= MAX_STATUS_BYTES
        ):
            try:
                inner = json.loads(name)
            except (ValueError, RecursionError):
                inner = None
            for item in inner if isinstance(inner, list) else []:
                ist = item.get("status") if isinstance(item, dict) else None
                if isinstance(ist, dict):
                    subs.append(
                        SubStatus(
                            str(ist.get("status", "")).lower(),
                            _code(ist.get("code")),
                            scrub(_message(ist)),
                        )
                    )
    return ExtStatus(
        **base,
        status=status,
        code=_code(st.get("code", 0)),
        message=scrub(_message(st)),
        operation=str(st["operation"]) if st.get("operation") else None,
        timestamp=_time(top.get("timestampUTC")),
        substatus=tuple(subs),
    )


@dataclass(frozen=True)
class HandlerStatus:
    """config/HandlerStatus (agent-owned): Ready, NotReady, Installing or Unresponsive."""

    status: str
    code: Optional[int]
    message: str


@dataclass(frozen=True)
class SeqFile:
    """A config/<seq>.settings file: its existence and mtime only (its content has secrets)."""

    path: str
    seq_no: int
    ext_name: Optional[str]
    mtime: datetime


@dataclass(frozen=True)
class Handler:
    """One `<Publisher>.<Type>-<version>/` folder."""

    name: str
    version: str
    path: str
    state: Optional[str]
    handler_status: Optional[HandlerStatus]
    settings: tuple[SeqFile, ...]
    statuses: tuple[ExtStatus, ...]
    status_seqs: tuple[int, ...]
    mrseq: Optional[int]
    log_folder: Optional[str]
    report_heartbeat: bool
    heartbeat_mtime: Optional[datetime]
    problems: tuple[InputError, ...]

    def status_for(self, seq_no: int) -> Optional[ExtStatus]:
        """The parsed status of one sequence number (single-config), or None."""
        for s in self.statuses:
            if s.seq_no == seq_no:
                return s
        return None

    @property
    def newest_status(self) -> Optional[ExtStatus]:
        """The status with the highest sequence number, or None."""
        return self.statuses[0] if self.statuses else None

    def settings_for(self, seq_no: int) -> Optional[SeqFile]:
        """The settings file of one sequence number, or None."""
        for s in self.settings:
            if s.seq_no == seq_no:
                return s
        return None


@dataclass(frozen=True)
class Handlers:
    """Every handler folder found, sorted by name then version (newest first)."""

    handlers: tuple[Handler, ...]

    def versions_of(self, name: str) -> list[Handler]:
        """The folders of one extension, newest version first."""
        return [h for h in self.handlers if h.name.lower() == name.lower()]

    def names(self) -> list[str]:
        """Each extension name once."""
        return list(dict.fromkeys(h.name for h in self.handlers))

    def active(self, name: str, requested_version: Optional[str] = None) -> Optional[Handler]:
        """The folder the agent uses: the requested version, else the newest Enabled one."""
        found = self.versions_of(name)
        if not found:
            return None
        if requested_version:
            for h in found:
                if h.version == requested_version:
                    return h
        for h in found:
            if (h.state or "").lower() == "enabled":
                return h
        return found[0]


def _mtime(root: Root, guest: str) -> Optional[datetime]:
    info = root.stat(guest)
    return datetime.fromtimestamp(info.mtime, timezone.utc) if info else None


def _read_small(root: Root, guest: str, problems: list[InputError]) -> Optional[str]:
    try:
        return root.read_text(guest, _SMALL)
    except InputError as err:
        if not err.missing:
            problems.append(err)
        return None


def _json_small(root: Root, guest: str, problems: list[InputError]) -> Any:
    try:
        return read_json(root, guest, _SMALL)
    except InputError as err:
        if not err.missing:
            problems.append(err)
        return None


def read_handler(
    root: Root,
    path: str,
    name: str,
    version: str,
    max_status: int = MAX_STATUS_FILES,
    wanted: frozenset[int] = frozenset(),
) -> Handler:
    """Read one handler folder; files the doctor cannot read are listed in `problems`."""
    problems: list[InputError] = []
    conf, stat_dir = path + "/config", path + "/status"
    state_text = _read_small(root, conf + "/HandlerState", problems)
    hs = _json_small(root, conf + "/HandlerStatus", problems)
    # {"name": .., "version": .., "status": "NotReady", "code": 1, "message": "..."}
    handler_status = None
    if isinstance(hs, dict) and hs.get("status"):
        handler_status = HandlerStatus(
            str(hs["status"]), _code(hs.get("code")), scrub(str(hs.get("message") or ""))
        )
    elif hs is not None:
        problems.append(InputError(conf + "/HandlerStatus", "not a HandlerStatus object"))
    settings = []
    for fname in root.listdir(conf):
        m = _SEQ_FILE_RE.match(fname)
        if m and m.group("kind") == "settings":
            guest = f"{conf}/{fname}"
            when = _mtime(root, guest)
            if when is not None:
                settings.append(SeqFile(guest, int(m.group("seq")), m.group("ext"), when))
    settings.sort(key=lambda s: s.seq_no, reverse=True)
    found: list[tuple[int, Optional[str], str]] = []
    for fname in root.listdir(stat_dir):
        m = _SEQ_FILE_RE.match(fname)
        if m and m.group("kind") == "status":
            found.append((int(m.group("seq")), m.group("ext"), f"{stat_dir}/{fname}"))
    found.sort(key=lambda t: t[0], reverse=True)
    statuses = []
    # The newest files, plus any the goal state asks about that are older than those.
    chosen = found[:max_status] + [f for f in found[max_status:] if f[0] in wanted]
    for seq, ext, guest in chosen:
        try:
            info = root.stat(guest)
            with root.open(guest) as fh:
                raw = fh.read(MAX_STATUS_BYTES + 1)
        except InputError as err:
            problems.append(err)
            continue
        except OSError as exc:
            problems.append(InputError(guest, exc.strerror or str(exc)))
            continue
        when = (
            datetime.fromtimestamp(info.mtime, timezone.utc) if info else datetime.now(timezone.utc)
        )
        statuses.append(parse_status(raw, guest, seq, ext, when, size=info.size if info else None))
    mrseq_text = _read_small(root, path + "/mrseq", problems)
    env = _json_small(root, path + "/HandlerEnvironment.json", problems)
    log_folder = None
    # [{"name": .., "version": 1.0, "handlerEnvironment": {"logFolder": "/var/log/azure/.."}}]
    if isinstance(env, list) and env and isinstance(env[0], dict):
        he = env[0].get("handlerEnvironment")
        if isinstance(he, dict) and isinstance(he.get("logFolder"), str):
            log_folder = he["logFolder"]
    manifest = _json_small(root, path + "/HandlerManifest.json", problems)
    report_heartbeat = False
    if isinstance(manifest, list) and manifest and isinstance(manifest[0], dict):
        hm = manifest[0].get("handlerManifest")
        if isinstance(hm, dict):
            report_heartbeat = str(hm.get("reportHeartbeat", "")).lower() == "true"
    return Handler(
        name=name,
        version=version,
        path=path,
        state=state_text.strip() if state_text is not None else None,
        handler_status=handler_status,
        settings=tuple(settings),
        statuses=tuple(statuses),
        status_seqs=tuple(seq for seq, _, _ in found),
        mrseq=_code(mrseq_text) if mrseq_text is not None else None,
        log_folder=log_folder,
        report_heartbeat=report_heartbeat,
        heartbeat_mtime=_mtime(root, path + "/heartbeat.log") if report_heartbeat else None,
        problems=tuple(problems),
    )


def read(
    root: Root, max_status: int = MAX_STATUS_FILES, wanted: Optional[dict[str, int]] = None
) -> Handlers:
    """Every extension handler folder in /var/lib/waagent (the agent's own folders excluded).

    `wanted` maps an extension name (lower case) to the sequence number the goal state asks
    for, so that its status is parsed even when newer ones exist.
    """
    wanted = wanted or {}
    found = []
    for name in root.listdir(LIB_DIR):
        m = _HANDLER_DIR_RE.match(name)
        path = posixpath.join(LIB_DIR, name)
        if m is None or m.group("name") == "WALinuxAgent" or not root.is_dir(path):
            continue
        seq = wanted.get(m.group("name").lower())
        extra = frozenset() if seq is None else frozenset({seq})
        found.append(read_handler(root, path, m.group("name"), m.group("ver"), max_status, extra))
    found.sort(key=lambda h: (h.name.lower(), tuple(-p for p in version_key(h.version))))
    return Handlers(tuple(found))


def probe(host: Host, settings: Settings) -> Handlers:
    """Probe: the extension handler folders (enough statuses for the repeated-failures rule)."""
    try:
        gs = goalstate.read(host.root)
    except InputError:
        gs = None  # the checks report the goal state's own problem
    wanted = {p.name.lower(): p.seq_no for p in gs.plugins if p.seq_no is not None} if gs else {}
    return read(host.root, max(MAX_STATUS_FILES, settings.thresholds.repeated_failures), wanted)
