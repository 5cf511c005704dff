"""The agent's install and unit, read from disk the way systemd loads it (no systemctl).

Works offline (`--root`, an OS disk on a rescue VM) as well as live: the fragment is the first
`<unit>` found along systemd's search path (a link to /dev/null or an empty file = masked), then
every `<unit>.d/*.conf` and `service.d/*.conf` drop-in from all search directories applies in
lexical order of file name (a higher-priority directory shadows a lower one's file of the same
name). The grammar is systemd's: `[Section]`, `Key=value`, `#`/`;` comment lines, a trailing
backslash continues the line, an empty assignment resets, the later assignment wins.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass, field
from typing import Optional

from waagent_doctor import distro
from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.paths import DISABLE_AGENT, UNIT_DIRS, WAAGENT_BINARIES, InputError, Root

# systemctl set-property writes drop-ins here; they outrank every unit directory.
CONTROL_DIRS = ("/etc/systemd/system.control", "/run/systemd/system.control")
DROPIN_DIRS = (*CONTROL_DIRS, *UNIT_DIRS)
# Both names the agent's unit has ever had (WALinuxAgent osutil get_service_name).
KNOWN_AGENT_UNITS = ("walinuxagent.service", "waagent.service")
# systemd.service(5) Restart= values; anything else is logged by systemd and ignored.
RESTART_VALUES = (
    "no",
    "on-success",
    "on-failure",
    "on-abnormal",
    "on-watchdog",
    "on-abort",
    "always",
)
_MAX_UNIT_BYTES = 1024 * 1024
_DEV_NULL = "/dev/null"


@dataclass(frozen=True)
class Setting:
    """One effective assignment and the line that made it (`/lib/systemd/system/x.service:12`)."""

    value: str
    source: str


@dataclass(frozen=True)
class Unreadable:
    """A unit file that exists but could not be read; the check reports it as input.unreadable."""

    guest_path: str
    reason: str

    def error(self) -> InputError:
        """The InputError a check hands to `ctx.unreadable`."""
        return InputError(self.guest_path, self.reason)


@dataclass(frozen=True)
class UnitFile:
    """A service unit as systemd would load it from disk: fragment plus drop-ins, merged."""

    name: str
    fragment: Optional[str]
    masked: bool
    masked_by: Optional[str] = None
    dropins: tuple[str, ...] = ()
    restart: Optional[Setting] = None
    restart_sec: Optional[Setting] = None
    exec_start: tuple[Setting, ...] = ()
    environment: tuple[Setting, ...] = ()
    environment_files: tuple[Setting, ...] = ()
    ignored: tuple[str, ...] = ()
    unreadable: tuple[Unreadable, ...] = ()

    @property
    def restart_value(self) -> str:
        """The effective Restart= value; systemd's default is `no`."""
        if self.restart is None or self.restart.value == "":
            return "no"
        return self.restart.value

    @property
    def exec_program(self) -> Optional[str]:
        """The program of the last ExecStart= (`/usr/bin/python3`), without `-@:+!` prefixes."""
        if not self.exec_start:
            return None
        argv = split_words(self.exec_start[-1].value)
        if not argv:
            return None
        return argv[0].lstrip("-@:+!") or None

    @property
    def exec_argv(self) -> tuple[str, ...]:
        """The words of the last ExecStart= (`/usr/bin/python3 -u /usr/sbin/waagent -daemon`)."""
        if not self.exec_start:
            return ()
        return tuple(split_words(self.exec_start[-1].value))

    def env(self) -> dict[str, str]:
        """Environment= assignments merged in order (`http_proxy=...`); files are not read."""
        out: dict[str, str] = {}
        for setting in self.environment:
            for word in split_words(setting.value):
                key, sep, value = word.partition("=")
                if sep and key:
                    out[key] = value
        return out

    def env_source(self, key: str) -> Optional[str]:
        """path:line of the Environment= that last set key, or None."""
        found: Optional[str] = None
        for setting in self.environment:
            for word in split_words(setting.value):
                if word.partition("=")[0] == key:
                    found = setting.source
        return found


@dataclass(frozen=True)
class DisableFile:
    """/var/lib/waagent/disable_agent: while it exists the agent sleeps forever."""

    path: str
    mtime: float


@dataclass(frozen=True)
class AgentInstall:
    """The agent's unit (as found on disk), its executables, and the disable file."""

    unit_name: str
    name_source: str
    unit: Optional[UnitFile]
    names_tried: tuple[str, ...]
    binaries: tuple[str, ...]
    exec_program_present: Optional[bool]
    disable_file: Optional[DisableFile]
    notes: tuple[str, ...] = field(default=())


# -- grammar ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    """`Key=value` in `[Section]` at path:line."""

    section: str
    key: str
    value: str
    path: str
    line: int

    @property
    def source(self) -> str:
        """Evidence source: guest path and line."""
        return f"{self.path}:{self.line}"


def split_words(text: str) -> list[str]:
    """Split a systemd value into words, honouring quotes; never raises."""
    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError:
        return text.split()


def parse_unit_text(text: str, path: str) -> list[Assignment]:
    """Parse systemd unit-file syntax into assignments, in file order."""
    out: list[Assignment] = []
    section = ""
    pending: Optional[tuple[int, str]] = None  # (first line, text so far) of a continued line
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if pending is not None:
            # A comment inside a continuation is skipped; the continuation goes on.
            if line.startswith(("#", ";")):
                continue
            start, acc = pending
            if line.endswith("\\"):
                pending = (start, acc + " " + line[:-1])
                continue
            pending = None
            _assign(out, section, acc + " " + line, path, start)
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if line.endswith("\\"):
            # ExecStart=/usr/bin/python3 -u \
            #     /usr/sbin/waagent -daemon
            pending = (lineno, line[:-1])
            continue
        _assign(out, section, line, path, lineno)
    if pending is not None:
        _assign(out, section, pending[1], path, pending[0])
    return out


def _assign(out: list[Assignment], section: str, line: str, path: str, lineno: int) -> None:
    if "=" not in line:
        return
    key, _, value = line.partition("=")
    out.append(Assignment(section, key.strip(), value.strip(), path, lineno))


# -- loading ------------------------------------------------------------------------------------


def _is_masked_target(root: Root, guest: str) -> tuple[bool, Optional[str]]:
    """(masked, why): a link resolving to /dev/null, or an empty regular file."""
    resolved = root.resolve(guest)
    if resolved == _DEV_NULL:
        return True, f"{guest} -> {_DEV_NULL}"
    info = root.stat(guest)
    if info is not None and info.is_file and info.size == 0:
        return True, f"{guest} is empty"
    return False, None


def _find_fragment(root: Root, name: str) -> Optional[str]:
    """The guest path of the first `name` on the search path (links count, even dangling)."""
    seen: set[str] = set()
    for unit_dir in UNIT_DIRS:
        real_dir = root.resolve(unit_dir)
        if real_dir in seen:
            continue  # /lib -> /usr/lib on merged-/usr systems: one directory, read once
        seen.add(real_dir)
        guest = posixpath.join(unit_dir, name)
        if root.resolve(guest) == _DEV_NULL or root.exists(guest):
            return guest
    return None


def _find_dropins(root: Root, name: str) -> list[str]:
    """Drop-in guest paths for a service, shadowed by name, in lexical order of file name."""
    suffix = name.rsplit(".", 1)[-1]
    chosen: dict[str, str] = {}
    seen: set[str] = set()
    for base in DROPIN_DIRS:
        # Unit-specific first, then the type-wide `service.d/` of the same directory.
        for sub in (f"{name}.d", f"{suffix}.d"):
            d = posixpath.join(base, sub)
            real = root.resolve(d)
            if real in seen:
                continue
            seen.add(real)
            try:
                names = root.listdir(d)
            except InputError:
                continue
            for fname in names:
                if fname.endswith(".conf") and fname not in chosen:
                    chosen[fname] = posixpath.join(d, fname)
    return [chosen[k] for k in sorted(chosen)]


def load_unit(root: Root, name: str) -> Optional[UnitFile]:
    """Load a service unit from the guest's disk; None when no fragment exists anywhere."""
    fragment = _find_fragment(root, name)
    if fragment is None:
        return None
    masked, why = _is_masked_target(root, fragment)
    if masked:
        return UnitFile(name=name, fragment=fragment, masked=True, masked_by=why)
    assignments: list[Assignment] = []
    unreadable: list[Unreadable] = []
    try:
        assignments.extend(parse_unit_text(root.read_text(fragment, _MAX_UNIT_BYTES), fragment))
    except InputError as err:
        unreadable.append(Unreadable(err.guest_path, err.reason))
    dropins: list[str] = []
    for path in _find_dropins(root, name):
        if _is_masked_target(root, path)[0]:
            continue  # a drop-in masked by name in a higher directory: nothing applies
        try:
            text = root.read_text(path, _MAX_UNIT_BYTES)
        except InputError as err:
            if not err.missing:
                unreadable.append(Unreadable(err.guest_path, err.reason))
            continue
        dropins.append(path)
        assignments.extend(parse_unit_text(text, path))
    return _merge(name, fragment, dropins, assignments, unreadable)


def _merge(
    name: str,
    fragment: str,
    dropins: list[str],
    assignments: list[Assignment],
    unreadable: list[Unreadable],
) -> UnitFile:
    """Apply assignments in order: a later one wins, an empty one resets (lists: clears)."""
    restart: Optional[Setting] = None
    restart_sec: Optional[Setting] = None
    exec_start: list[Setting] = []
    environment: list[Setting] = []
    env_files: list[Setting] = []
    ignored: list[str] = []
    for a in assignments:
        if a.section != "Service":
            continue
        setting = Setting(a.value, a.source)
        if a.key == "Restart":
            # `Restart=always # comment` is not a comment to systemd: the value is invalid and
            # the assignment is ignored, like any other unknown value.
            if a.value == "" or a.value in RESTART_VALUES:
                restart = setting
            else:
                ignored.append(f"{a.source}: Restart={a.value} is not a valid value; ignored")
        elif a.key == "RestartSec":
            restart_sec = setting if a.value else None
        elif a.key == "ExecStart":
            exec_start = [setting] if a.value else []
        elif a.key == "Environment":
            environment = [*environment, setting] if a.value else []
        elif a.key == "EnvironmentFile":
            env_files = [*env_files, setting] if a.value else []
    return UnitFile(
        name=name,
        fragment=fragment,
        masked=False,
        dropins=tuple(dropins),
        restart=restart,
        restart_sec=restart_sec,
        exec_start=tuple(exec_start),
        environment=tuple(environment),
        environment_files=tuple(env_files),
        ignored=tuple(ignored),
        unreadable=tuple(unreadable),
    )


def read_environment_files(root: Root, unit: UnitFile) -> dict[str, str]:
    """Variables from the unit's EnvironmentFile= entries (`-` prefix: may be missing).

    systemd lets these override Environment=; the proxy probe merges them on top of `env()`.
    """
    out: dict[str, str] = {}
    for setting in unit.environment_files:
        for word in split_words(setting.value):
            path = word.lstrip("-")
            if not path.startswith("/"):
                continue
            try:
                text = root.read_text(path, 256 * 1024)
            except InputError:
                continue
            for line in text.splitlines():
                # http_proxy="http://proxy:3128"
                line = line.strip()
                if not line or line.startswith(("#", ";")) or "=" not in line:
                    continue
                key, _, value = line.partition("=")
                words = split_words(value)
                out[key.strip()] = words[0] if words else ""
    return out


# -- the probe ----------------------------------------------------------------------------------


def _names(host: Host, settings: Settings) -> tuple[list[str], str]:
    """Unit names to try, in order, and where the first came from."""
    if settings.agent_unit:
        return [settings.agent_unit], "config agent_unit"
    osr = distro.read_os_release(host.root)
    row = distro.row_for(osr)
    others = [n for n in KNOWN_AGENT_UNITS if n != row.agent_unit]
    label = f"distribution {osr.id or 'unknown'}" + (
        f" (ID_LIKE {' '.join(osr.id_like)})" if osr.id_like else ""
    )
    return [row.agent_unit, *others], label


def probe(host: Host, settings: Settings) -> AgentInstall:
    """Probe: the agent's unit from disk, its executables, and disable_agent."""
    root = host.root
    names, source = _names(host, settings)
    unit: Optional[UnitFile] = None
    notes: list[str] = []
    tried: list[str] = []
    for name in names:
        tried.append(name)
        unit = load_unit(root, name)
        if unit is not None:
            if name != names[0]:
                notes.append(f"{names[0]} not found; found {name} instead")
            break
    binaries = tuple(p for p in WAAGENT_BINARIES if root.is_file(p))
    present: Optional[bool] = None
    if unit is not None and unit.exec_program and unit.exec_program.startswith("/"):
        present = root.is_file(unit.exec_program)
    disable: Optional[DisableFile] = None
    try:
        info = root.stat(DISABLE_AGENT)
    except InputError:
        info = None
        notes.append(f"{DISABLE_AGENT}: cannot stat")
    if info is not None:
        disable = DisableFile(DISABLE_AGENT, info.mtime)
    return AgentInstall(
        unit_name=names[0],
        name_source=source,
        unit=unit,
        names_tried=tuple(tried),
        binaries=binaries,
        exec_program_present=present,
        disable_file=disable,
        notes=tuple(notes),
    )
