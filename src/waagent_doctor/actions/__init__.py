"""Actions act: each module applies one contract action and verifies that it worked.

An action never checks a budget or a switch (that is policy's job); it does its one thing,
looks whether it took effect, and says so in an `Outcome`.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, cast

from waagent_doctor.config import Settings
from waagent_doctor.host import CommandRunner, Host
from waagent_doctor.model import Report
from waagent_doctor.paths import DOCTOR_BUNDLES, DOCTOR_QUARANTINE, DOCTOR_STATE
from waagent_doctor.state import BundleRecord, State, VerboseLogging

# Contract name -> the module under actions/ that applies it.
_MODULES = {
    "restart_agent": "restart_agent",
    "enable_autorestart": "autorestart",
    "enable_verbose_logging": "verbose_logging",
    "collect_logs": "collect_logs",
    "reload_extension": "reload_extension",
}
ACTION_NAMES = tuple(_MODULES)


@dataclass(frozen=True)
class DaemonPaths:
    """Where the daemon writes (host paths; tests point them into tmp_path)."""

    state: str = DOCTOR_STATE
    bundles: str = DOCTOR_BUNDLES
    quarantine: str = DOCTOR_QUARANTINE
    # Drop-ins for the agent's unit go to <unit_dir>/<unit>.d/.
    unit_dir: str = "/etc/systemd/system"


def _nothing() -> None:
    return None


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return True


@dataclass(frozen=True)
class ActionEnv:
    """What an action may use: the host, the configuration, the agent's unit, a wait."""

    host: Host
    settings: Settings
    unit: str
    paths: DaemonPaths
    state: State
    code: str
    report: Optional[Report] = None
    # Sleep that keeps the watchdog fed and returns False when the daemon must stop.
    wait: Callable[[float], bool] = _sleep
    # Save the state now (before a file edit, so a kill mid-way is remembered).
    persist: Callable[[], None] = _nothing

    @property
    def runner(self) -> CommandRunner:
        """The host's command runner (actions only run live)."""
        if self.host.runner is None:
            raise RuntimeError("actions need a live host")
        return self.host.runner


@dataclass(frozen=True)
class Outcome:
    """What an action did: ok (verified) or not, and a one-line detail."""

    ok: bool
    detail: str
    verbose: Optional[VerboseLogging] = None
    bundle: Optional[BundleRecord] = None
    extra: dict[str, str] = field(default_factory=dict)


class Stopping(BaseException):
    """The daemon is stopping: a long action abandons its work (cleaning up after itself)."""


Apply = Callable[[ActionEnv], Outcome]


def get(name: str) -> Apply:
    """The apply function of an action by its contract name (its module imported on first use)."""
    module = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return cast(Apply, module.apply)
