"""Distribution differences as table rows: os-release ID, then each ID_LIKE."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Optional

from waagent_doctor.paths import OS_RELEASE, USR_OS_RELEASE, InputError, Root


@dataclass(frozen=True)
class DistroRow:
    """What differs per distribution family."""

    family: str
    agent_unit: str
    agent_package: str


# os-release ID or ID_LIKE word -> row. Anything not listed falls back to DEFAULT.
_TABLE: dict[str, DistroRow] = {
    "debian": DistroRow("debian", "walinuxagent.service", "walinuxagent"),
    "ubuntu": DistroRow("debian", "walinuxagent.service", "walinuxagent"),
}
DEFAULT = DistroRow("other", "waagent.service", "WALinuxAgent")


@dataclass(frozen=True)
class OsRelease:
    """The parts of /etc/os-release the doctor uses."""

    id: str
    id_like: tuple[str, ...]
    version_id: str
    pretty_name: str
    source: Optional[str]


def parse_os_release(text: str, source: Optional[str] = None) -> OsRelease:
    """Parse os-release(5) text: KEY=value lines, shell quoting, # comments."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip("\"'")]
        values[key.strip()] = parts[0] if parts else ""
    return OsRelease(
        id=values.get("ID", "").lower(),
        id_like=tuple(values.get("ID_LIKE", "").lower().split()),
        version_id=values.get("VERSION_ID", ""),
        pretty_name=values.get("PRETTY_NAME", ""),
        source=source,
    )


def read_os_release(root: Root) -> OsRelease:
    """os-release of the guest; an empty one when neither file can be read."""
    for guest in (OS_RELEASE, USR_OS_RELEASE):
        try:
            return parse_os_release(root.read_text(guest, 64 * 1024), guest)
        except InputError:
            continue
    return OsRelease("", (), "", "", None)


def row_for(osr: OsRelease) -> DistroRow:
    """The table row for ID, else the first ID_LIKE that has one, else the default."""
    for word in (osr.id, *osr.id_like):
        if word in _TABLE:
            return _TABLE[word]
    return DEFAULT
