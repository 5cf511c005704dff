"""The configuration: one validated model loaded from TOML, passed in, never a global.

Every key has a default; an unknown or invalid key stops the program with a message naming it.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.9/3.10 only
    import tomli as tomllib

from waagent_doctor.paths import DOCTOR_CONFIG


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file and the key."""


# Every number of the configuration is a count, a port, a percentage or a duration: none is
# meaningful past this, and `1e300` hours would overflow every time computation downstream.
MAX_NUMBER = 1_000_000_000
# A configuration file is a few hundred bytes; read at most this much of it.
MAX_CONFIG_BYTES = 1024 * 1024


class _Section(BaseModel):
    # inf and nan are refused at load (naming the key), never carried into a comparison.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and abs(value) > MAX_NUMBER:
            raise ValueError(f"must be at most {MAX_NUMBER}")
        return value


class Endpoints(_Section):
    """Where the Azure platform endpoints are; every one can point at a test server."""

    wireserver: str = ""  # "" = /var/lib/waagent/WireServerEndpoint, else 168.63.129.16
    wireserver_port: int = Field(80, ge=1, le=65535)
    hostgaplugin_port: int = Field(32526, ge=1, le=65535)
    imds: str = "169.254.169.254"
    imds_port: int = Field(80, ge=1, le=65535)
    # "" = the host of StatusUploadBlob in the newest goal state.
    storage: str = ""
    storage_port: int = Field(443, ge=1, le=65535)
    connect_timeout_seconds: float = Field(3.0, gt=0, le=60)
    deadline_seconds: float = Field(10.0, gt=0, le=120)


class Thresholds(_Section):
    """When an observation becomes a finding."""

    lookback_hours: float = Field(24.0, gt=0)
    cpu_percent: float = Field(90.0, gt=0, le=100)
    memory_percent: float = Field(90.0, gt=0, le=100)
    sample_seconds: float = Field(1.0, gt=0, le=60)
    disk_free_percent: float = Field(2.0, ge=0, le=100)
    disk_free_mib: int = Field(100, ge=0)
    inode_free_percent: float = Field(2.0, ge=0, le=100)
    # The agent logs a [HEARTBEAT] every 30 minutes.
    agent_hung_minutes: float = Field(45.0, gt=0)
    exthandler_grace_seconds: float = Field(120.0, ge=0)
    crash_loop_restarts: int = Field(3, ge=1)
    crash_loop_window_minutes: float = Field(60.0, gt=0)
    extension_stuck_minutes: float = Field(90.0, gt=0)
    other_extension_stuck_minutes: float = Field(90.0, gt=0)
    repeated_failures: int = Field(3, ge=2)
    min_agent_version: str = "2.2.53"
    min_vmsnapshot_version: str = "1.0.91.0"

    @field_validator("min_agent_version", "min_vmsnapshot_version")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if value and not all(p.isdigit() for p in value.split(".")):
            raise ValueError("must be a dotted version like 1.0.91.0")
        return value


class Actions(_Section):
    """Each automatic action can be switched off; budgets and periods."""

    restart_agent: bool = True
    enable_autorestart: bool = True
    enable_verbose_logging: bool = True
    collect_logs: bool = True
    reload_extension: bool = False
    restart_agent_per_hour: int = Field(3, ge=0)
    restart_cooldown_seconds: float = Field(120.0, ge=0)
    verbose_logging_hours: float = Field(24.0, gt=0)
    collect_logs_min_hours: float = Field(24.0, gt=0)
    bundles_keep: int = Field(3, ge=1)
    restart_sec: int = Field(5, ge=1, le=3600)


class Bundle(_Section):
    """Caps of the support bundle (the agent's own collector uses 30 MiB and 150 MiB)."""

    max_file_mib: float = Field(30.0, gt=0)
    max_total_mib: float = Field(150.0, gt=0)
    command_timeout_seconds: float = Field(10.0, gt=0)
    deadline_seconds: float = Field(300.0, gt=0)
    history_folders: int = Field(5, ge=0)


class Metrics(_Section):
    """Prometheus textfile output for node_exporter; "" switches it off."""

    textfile: str = ""


class Settings(_Section):
    """The whole configuration of waagent-doctor."""

    interval_seconds: int = Field(60, ge=1)
    dry_run: bool = False
    assume_azure: bool = False
    # "" = by distribution: walinuxagent.service on Debian/Ubuntu, waagent.service elsewhere.
    agent_unit: str = ""
    endpoints: Endpoints = Endpoints()
    thresholds: Thresholds = Thresholds()
    actions: Actions = Actions()
    bundle: Bundle = Bundle()
    metrics: Metrics = Metrics()

    @field_validator("agent_unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        if value and not value.endswith(".service"):
            raise ValueError("must name a .service unit")
        return value


def _key_of(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def from_mapping(data: dict[str, Any], source: str = "<config>") -> Settings:
    """Validate a parsed TOML document; raise ConfigError naming the first bad key."""
    try:
        return Settings.model_validate(data, strict=True)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = _key_of(tuple(err["loc"]))
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"key '{key}': {msg}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def _read_capped(target: Path) -> bytes:
    """A regular file's bytes, at most MAX_CONFIG_BYTES; never blocks on a FIFO or device."""
    fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise ConfigError(f"{target}: {kind}")
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{target}: too large ({st.st_size} bytes; at most {MAX_CONFIG_BYTES})"
            )
        raw = os.read(fd, MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{target}: too large (more than {MAX_CONFIG_BYTES} bytes)")
        return raw
    finally:
        os.close(fd)


def load(path: Optional[str], *, required: bool = False) -> Settings:
    """Load the configuration file; a missing default file means all defaults."""
    target = Path(path or DOCTOR_CONFIG)
    try:
        raw = _read_capped(target)
    except FileNotFoundError:
        if required or path is not None:
            raise ConfigError(f"{target}: no such file") from None
        return Settings()
    except OSError as exc:
        raise ConfigError(f"{target}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{target}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{target}: not valid TOML: nested too deeply") from None
    return from_mapping(data, str(target))
