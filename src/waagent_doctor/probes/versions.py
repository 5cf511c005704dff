"""The agent's versions: the installed daemon package and the goal-state agent that runs extensions.

`waagent -version` prints both (facts §5). Offline, the files tell the same story: the
package's `azurelinuxagent/common/version.py`, the `WALinuxAgent-<ver>/` folders of
auto-updates (with `error.json` marking a blacklisted one), and `waagent_status.json`, the
status the goal-state agent last reported (`guestAgentStatus.version`).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Optional

from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.paths import LIB_DIR, InputError, Root

# AGENT_VERSION = '2.2.45'  (azurelinuxagent/common/version.py)
_AGENT_VERSION_RE = re.compile(r"""^AGENT_VERSION\s*=\s*['"](\d+(?:\.\d+)+)['"]""", re.MULTILINE)
# WALinuxAgent-2.15.0.1 (a folder; WALinuxAgent-2.15.0.1.zip is the package)
_AGENT_DIR_RE = re.compile(r"^WALinuxAgent-(\d+(?:\.\d+)+)$")
# waagent_status.7.json (legacy agents, one per incarnation)
_LEGACY_STATUS_RE = re.compile(r"^waagent_status\.(\d+)\.json$")
_PY_LIB_DIRS = ("/usr/lib", "/usr/local/lib", "/usr/lib64")


def parse_version(text: Optional[str]) -> Optional[tuple[int, ...]]:
    """Dotted numeric version -> tuple without trailing zeros; None when not numeric."""
    if not text:
        return None
    parts = text.strip().split(".")
    if not all(p.isdigit() for p in parts):
        return None
    nums = [int(p) for p in parts]
    while len(nums) > 1 and nums[-1] == 0:
        nums.pop()
    return tuple(nums)


def version_key(text: Optional[str]) -> tuple[int, ...]:
    """A sort key for versions: numeric tuple, non-numeric versions sort lowest."""
    return parse_version(text) or (-1,)


def older(a: Optional[str], b: Optional[str]) -> Optional[bool]:
    """True when version a is older than b; None when either is not a dotted number."""
    va, vb = parse_version(a), parse_version(b)
    if va is None or vb is None:
        return None
    return va < vb


@dataclass(frozen=True)
class AgentFolder:
    """A downloaded agent under /var/lib/waagent/WALinuxAgent-<ver>/."""

    version: str
    path: str
    blacklisted: bool


@dataclass(frozen=True)
class AgentVersions:
    """What the files say of the agent's versions, each with the guest path it came from."""

    daemon: Optional[str]
    daemon_source: Optional[str]
    reported: Optional[str]
    reported_source: Optional[str]
    folders: tuple[AgentFolder, ...]
    problems: tuple[InputError, ...] = ()

    @property
    def goal_state_agent(self) -> Optional[str]:
        """The goal-state agent: as reported in waagent_status.json, else the newest usable."""
        if self.reported:
            return self.reported
        candidates = [f.version for f in self.folders if not f.blacklisted]
        if self.daemon:
            candidates.append(self.daemon)
        return max(candidates, key=version_key) if candidates else None

    @property
    def goal_state_agent_source(self) -> Optional[str]:
        """The guest path the goal-state agent version comes from."""
        if self.reported:
            return self.reported_source
        best = self.goal_state_agent
        for f in self.folders:
            if f.version == best and not f.blacklisted:
                return f.path
        return self.daemon_source


def _daemon(root: Root) -> tuple[Optional[str], Optional[str]]:
    for lib in _PY_LIB_DIRS:
        for py in root.glob(lib, "python*"):
            for pkgs in ("dist-packages", "site-packages"):
                guest = f"{py}/{pkgs}/azurelinuxagent/common/version.py"
                try:
                    text = root.read_text(guest, 256 * 1024)
                except InputError:
                    continue
                m = _AGENT_VERSION_RE.search(text)
                if m:
                    return m.group(1), guest
    return None, None


def _folders(root: Root) -> tuple[AgentFolder, ...]:
    from waagent_doctor.probes.goalstate import read_json

    found = []
    for name in root.listdir(LIB_DIR):
        m = _AGENT_DIR_RE.match(name)
        path = posixpath.join(LIB_DIR, name)
        if m is None or not root.is_dir(path):
            continue
        # error.json: {"last_failure": .., "failure_count": 3, "was_fatal": true, "reason": ..}
        try:
            err = read_json(root, path + "/error.json", 64 * 1024)
        except InputError:
            err = None
        fatal = isinstance(err, dict) and err.get("was_fatal") is True
        found.append(AgentFolder(m.group(1), path, fatal))
    found.sort(key=lambda f: version_key(f.version), reverse=True)
    return tuple(found)


def _status_files(root: Root) -> list[str]:
    from waagent_doctor.probes.goalstate import history_folders

    paths = [h.path + "/waagent_status.json" for h in history_folders(root)]
    legacy = []
    for name in root.listdir(LIB_DIR):
        m = _LEGACY_STATUS_RE.match(name)
        if m:
            legacy.append((int(m.group(1)), posixpath.join(LIB_DIR, name)))
    paths += [p for _, p in sorted(legacy, reverse=True)]
    paths.append(LIB_DIR + "/waagent_status.json")
    return paths


def _reported(root: Root, problems: list[InputError]) -> tuple[Optional[str], Optional[str]]:
    from waagent_doctor.probes.goalstate import read_json

    for guest in _status_files(root):
        if not root.is_file(guest):
            continue
        # {"aggregateStatus": {"guestAgentStatus": {"version": "2.15.0.1", "status": "Ready"}}}
        try:
            data = read_json(root, guest)
        except InputError as err:
            problems.append(err)
            return None, guest
        agg = data.get("aggregateStatus") if isinstance(data, dict) else None
        gas = agg.get("guestAgentStatus") if isinstance(agg, dict) else None
        version = gas.get("version") if isinstance(gas, dict) else None
        if isinstance(version, str) and parse_version(version):
            return version, guest
        return None, guest
    return None, None


def read(root: Root) -> AgentVersions:
    """The agent's versions as the guest's files record them; an unreadable status is listed."""
    problems: list[InputError] = []
    daemon, daemon_source = _daemon(root)
    reported, reported_source = _reported(root, problems)
    return AgentVersions(
        daemon=daemon,
        daemon_source=daemon_source,
        reported=reported,
        reported_source=reported_source if reported else None,
        folders=_folders(root),
        problems=tuple(problems),
    )


def probe(host: Host, settings: Settings) -> AgentVersions:
    """Probe: the agent's installed and goal-state versions."""
    return read(host.root)
