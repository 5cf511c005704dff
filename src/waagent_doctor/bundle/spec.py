"""What the support bundle takes, what it never takes, what it redacts, and its limits.

Declared here as data (sos's lesson: declare, then run); collect.py and redact.py only execute
it, so a reviewer can audit the whole policy in one file.
"""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass

from waagent_doctor.paths import (
    AGENT_LOG,
    DOCTOR_BUNDLES,
    DOCTOR_CONFIG,
    DOCTOR_STATE,
    EXT_LOG_DIR,
    LIB_DIR,
    OS_RELEASE,
    UNIT_DIRS,
    USR_OS_RELEASE,
    VMBACKUP_CONF,
    VMSNAPSHOT_SCRIPT_CONF,
    WAAGENT_CONF,
)

MIB = 1024 * 1024

# -- limits ---------------------------------------------------------------------------------
# Files up to this size are read whole and redacted in memory; larger ones are streamed.
SMALL_FILE_BYTES = 1 * MIB
# Read size of the streaming path; memory stays a few of these whatever the input.
CHUNK_BYTES = 1 * MIB
# A tail starts this far before its cut so a secret that began earlier is still masked.
TAIL_PRIME_BYTES = 1 * MIB
# A log cut by the total cap is still worth taking if at least this much fits.
MIN_PARTIAL_BYTES = 64 * 1024
# Keep this much free on the output filesystem (and at most this share of it).
RESERVE_BYTES = 64 * MIB
RESERVE_FRACTION = 0.05
# Expected compression of text logs, for the free-space estimate before starting.
ESTIMATED_RATIO = 0.5
# Diagnosis inside the bundle may use at most this share of the run's deadline.
DIAGNOSIS_SHARE = 0.4
GZIP_LEVEL = 6
# Python's thread switch interval while a bundle is written (the default is 5 ms).
SWITCH_INTERVAL = 0.0005

BACKUP_EXT = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"
HISTORY_DIR = f"{LIB_DIR}/history"
DOCTOR_UNIT = "waagent-doctor.service"
AGENT_UNITS = ("walinuxagent.service", "waagent.service")

# -- priorities: lower is taken first -------------------------------------------------------
P_REPORT = 0  # report.json (manifest.json is always written last, outside the caps)
P_MUST = 1  # newest agent log, backup extension logs and status, agent configuration
P_STATE = 2  # other handlers' state, newest goal states, unit files, commands
P_LOGS = 3  # rotated agent logs, other extensions' logs
P_EXTRA = 4  # older goal-state history


@dataclass(frozen=True)
class Take:
    """A guest glob to collect: `*` within a component, `**` for any depth below."""

    pattern: str
    priority: int
    is_log: bool = False


def _handler(sub: str, priority: int) -> list[Take]:
    # The backup extension's handler folder comes first, any other handler after it.
    return [
        Take(f"{LIB_DIR}/{BACKUP_EXT}-*/{sub}", P_MUST),
        Take(f"{LIB_DIR}/*/{sub}", priority),
    ]


TAKE: tuple[Take, ...] = (
    Take(AGENT_LOG, P_MUST, is_log=True),
    Take(f"{EXT_LOG_DIR}/{BACKUP_EXT}/**", P_MUST, is_log=True),
    Take(WAAGENT_CONF, P_MUST),
    Take(f"{LIB_DIR}/waagent_status.json", P_MUST),
    *_handler("config/HandlerState", P_STATE),
    *_handler("config/*.HandlerState", P_STATE),
    *_handler("config/HandlerStatus", P_STATE),
    *_handler("config/*.settings", P_STATE),
    *_handler("status/*.status", P_STATE),
    *_handler("HandlerManifest.json", P_STATE),
    *_handler("HandlerEnvironment.json", P_STATE),
    *_handler("mrseq", P_STATE),
    *_handler("heartbeat.log", P_STATE),
    *_handler("error.json", P_STATE),
    Take(VMBACKUP_CONF, P_MUST),
    Take(VMSNAPSHOT_SCRIPT_CONF, P_MUST),
    Take(OS_RELEASE, P_STATE),
    Take(USR_OS_RELEASE, P_STATE),
    Take("/etc/hostname", P_STATE),
    # Legacy top-level goal state (GoalState.N.xml, ExtensionsConfig.N.xml, ...) and markers.
    Take(f"{LIB_DIR}/*.xml", P_STATE),
    Take(f"{LIB_DIR}/VmSettings*.json", P_STATE),
    Take(f"{LIB_DIR}/waagent_status*.json", P_STATE),
    Take(f"{LIB_DIR}/*.agentsManifest", P_STATE),
    Take(f"{LIB_DIR}/error.json", P_STATE),
    Take(f"{LIB_DIR}/fast_track.json", P_STATE),
    Take(f"{LIB_DIR}/WireServerEndpoint", P_STATE),
    Take(f"{LIB_DIR}/provisioned", P_STATE),
    Take(f"{LIB_DIR}/published_hostname", P_STATE),
    Take(f"{LIB_DIR}/disable_agent", P_STATE),
    Take(f"{LIB_DIR}/waagent_rsm_update", P_STATE),
    Take(f"{LIB_DIR}/waagent_initial_update", P_STATE),
    # history/ is handled by collect.py: the newest entries at P_STATE, the rest at P_EXTRA.
    *(Take(f"{d}/{u}", P_STATE) for d in UNIT_DIRS for u in (*AGENT_UNITS, DOCTOR_UNIT)),
    *(Take(f"{d}/{u}.d/*.conf", P_STATE) for d in UNIT_DIRS for u in (*AGENT_UNITS, DOCTOR_UNIT)),
    Take(DOCTOR_CONFIG, P_STATE),
    Take(DOCTOR_STATE, P_STATE),
    Take("/etc/resolv.conf", P_STATE),
    # DHCP leases (option 245 is what the backup extension looks for).
    Take("/var/lib/dhcp/*.lease*", P_STATE),
    Take("/var/lib/dhclient/*.lease*", P_STATE),
    Take("/var/lib/NetworkManager/*.lease", P_STATE),
    Take("/run/systemd/netif/leases/*", P_STATE),
    Take("/var/lib/wicked/lease*", P_STATE),
    Take(f"{AGENT_LOG}.*", P_LOGS, is_log=True),
    Take(f"{EXT_LOG_DIR}/**", P_LOGS, is_log=True),
)

# Every collected guest path (and the target of any link it goes through) must match one of
# these; it is the fence around TAKE, checked again on each link's target.
ALLOWED: tuple[str, ...] = (
    *(t.pattern for t in TAKE),
    f"{HISTORY_DIR}/*/*",
    f"{HISTORY_DIR}/*.zip",
)

# Never collected, wherever they appear (matched on the file name, case-insensitive), and
# never taken out of a zip either. RemoteAccess.xml holds JIT users' passwords.
DENY_NAMES: tuple[str, ...] = (
    "*.prv",
    "*.key",
    "*.crt",
    "*.cer",
    "*.pem",
    "*.p7m",
    "*.p7b",
    "*.p12",
    "*.pfx",
    "Certificates.xml",
    "Certificates.p7m",
    "Certificates.pfx",
    "CustomData",
    "RemoteAccess.xml",
    "ManagedIdentity-*.json",
)
# Never collected below these guest folders (our own bundles must not nest).
DENY_DIRS: tuple[str, ...] = (DOCTOR_BUNDLES, "/var/lib/waagent-doctor/quarantine")

# Compressed rotations are decompressed, redacted and stored as plain text.
COMPRESSED_SUFFIXES: tuple[str, ...] = (".gz", ".xz", ".bz2")
# A rotation that inflates more than this many times its size is a bomb, not a log (text
# logs inflate 5-20x).
MAX_INFLATE_RATIO = 200
UNSUPPORTED_SUFFIXES: tuple[str, ...] = (".zst", ".lz4", ".7z", ".rar", ".tar", ".tgz")


def denied(guest_path: str) -> str:
    """Why a guest path must never be collected, or "" when it may be."""
    name = posixpath.basename(guest_path)
    for pattern in DENY_NAMES:
        if fnmatch.fnmatch(name.lower(), pattern.lower()):
            return f"never collected ({pattern}: keys, certificates or credentials)"
    for folder in DENY_DIRS:
        if guest_path == folder or guest_path.startswith(folder + "/"):
            return "never collected (the doctor's own bundles)"
    return ""


def glob_match(pattern: str, guest_path: str) -> bool:
    """Shell-style match where `*` stays in one component and `**` spans any depth."""
    pat = pattern.split("/")
    parts = guest_path.split("/")

    def go(i: int, j: int) -> bool:
        if i == len(pat):
            return j == len(parts)
        if pat[i] == "**":
            return any(go(i + 1, k) for k in range(j + 1, len(parts) + 1))
        return j < len(parts) and fnmatch.fnmatchcase(parts[j], pat[i]) and go(i + 1, j + 1)

    return go(0, 0)


def allowed(guest_path: str) -> bool:
    """True when a guest path lies inside the collected set."""
    return any(glob_match(p, guest_path) for p in ALLOWED)


# -- live commands --------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    """A live-only command: its name in the bundle and its argv ({agent} = the agent's unit)."""

    name: str
    argv: tuple[str, ...]
    fallback_for: str = ""  # run only when the named command failed


COMMANDS: tuple[Command, ...] = (
    Command("systemctl-status-agent", ("systemctl", "status", "--no-pager", "--full", "{agent}")),
    Command("systemctl-show-agent", ("systemctl", "show", "{agent}")),
    Command(
        "journal-agent",
        ("journalctl", "-u", "{agent}", "--no-pager", "-n", "5000", "-o", "short-iso"),
    ),
    Command(
        "journal-waagent-doctor",
        ("journalctl", "-u", DOCTOR_UNIT, "--no-pager", "-n", "2000", "-o", "short-iso"),
    ),
    Command("waagent-version", ("waagent", "--version")),
    Command("ps", ("ps", "-eo", "pid,ppid,user,etimes,stat,pcpu,pmem,rss,args")),
    Command("df-h", ("df", "-h")),
    Command("df-i", ("df", "-i")),
    Command("free", ("free", "-m")),
    Command("meminfo", ("cat", "/proc/meminfo")),
    Command("uptime", ("uptime",)),
    Command("ip-addr", ("ip", "addr", "show")),
    Command("ip-route", ("ip", "route", "show")),
    Command("ip6-route", ("ip", "-6", "route", "show")),
    Command("kernel-log", ("journalctl", "-k", "--no-pager", "-n", "2000", "-o", "short-iso")),
    Command("dmesg", ("dmesg",), fallback_for="kernel-log"),
)
# Output of one command kept in the bundle (the runner also cuts at this size).
COMMAND_MAX_BYTES = 4 * MIB


# -- redaction ------------------------------------------------------------------------------
REDACTED = b"***REDACTED***"

# A key names a secret when it (lower-cased, whole token) ends with one of these:
# storageAccountKey, clientSecret, snapshotTaskToken, adminPassword, sig, protectedSettings,
# logsBlobUri, objectStr... but not keyVaultName, tokenExpiry or SshHostKeyPairType.
SECRET_KEY_SUFFIXES: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "secrets",
    "token",
    "key",
    "credential",
    "credentials",
    "sig",
    "signature",
    "protectedsettings",
    "objectstr",
    "bloburi",
    "sasuri",
    "sasurl",
    "customdata",
    "userdata",
    "connectionstring",
)
# SAS query parameters: sig is the secret, the others are redacted with it (the agent's own
# SAS_TOKEN_RE redacts them all). Caught after ?, &, &amp; (;) and \u0026.
SAS_PARAMS: frozenset[str] = frozenset(
    {"sv", "st", "se", "sr", "sp", "sip", "spr", "sk", "ss", "srt", "si", "sig"}
    | {"skoid", "sktid", "skt", "ske", "sks", "skv", "sdd", "ses", "sduoid", "saoid", "suoid"}
    | {"scid"}
)
# Values that are switches, not secrets (Provisioning.DeleteRootPassword=y).
NOT_SECRET_VALUES = ("y", "n", "yes", "no", "true", "false", "none", "null")

# Literal anchors searched in the case-folded text (with ? and ; folded to &); every trigger
# contains one, so text without any anchor passes through untouched at memchr speed.
TOKEN_ANCHORS: tuple[bytes, ...] = (
    b"sig",
    b"pass",
    b"pwd",
    b"secret",
    b"token",
    b"key",
    b"credential",
    b"objectstr",
    b"bloburi",
    b"sasur",
    b"protectedsettings",
    b"customdata",
    b"userdata",
    b"connectionstring",
    b"bearer",
    b"basic",
    b"sharedkey",
)
SAS_SEPARATOR_ANCHORS: tuple[bytes, ...] = (b"&s",)  # ?s &s ;s after folding
URL_ANCHOR = b"://"  # user:password@ in proxy URLs
PEM_ANCHOR = b"-----begin "  # every PEM block, body dropped up to its -----END
