"""Policy permits: may this action run now for this finding? It never acts.

The rules, in order: not on Azure (idle); switched off; the operator's disable_agent; a masked
unit; systemd restarting the unit itself (Restart=); a cool-down since the unit last started;
the per-action budget (spent = give up once, then escalate); dry run last, so that a dry run
says what it would have done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from waagent_doctor.config import Settings
from waagent_doctor.paths import DISABLE_AGENT
from waagent_doctor.probes.systemd import UnitState
from waagent_doctor.state import State

HOUR = 3600.0
# Actions that stop or restart the agent: never while disable_agent asks it to sleep.
TOUCHES_AGENT = frozenset({"restart_agent", "enable_verbose_logging", "reload_extension"})
# After the restart budget is spent: gather evidence instead of restarting again.
ESCALATION = ("enable_verbose_logging", "collect_logs")
# A failed attempt of a non-budgeted action is not retried for this long.
RETRY_FAILED_SECONDS = HOUR
# reload_extension moves the handler aside at most once a day.
RELOAD_EXTENSION_PERIOD = 24 * HOUR
TRANSITIONAL = frozenset({"activating", "deactivating", "reloading", "refreshing"})


@dataclass(frozen=True)
class Facts:
    """What policy needs to know about the machine now."""

    now: float
    unit: Optional[UnitState]
    disable_agent: bool
    not_azure: bool
    verbose_on: bool
    dry_run: bool


@dataclass(frozen=True)
class Decision:
    """Allowed, or not and why; `announce` when the refusal deserves one journal entry."""

    allow: bool
    reason: str = ""
    announce: bool = False
    gave_up: bool = False


ALLOW = Decision(True)


def _wait(reason: str) -> Decision:
    return Decision(False, reason, announce=False)


def _skip(reason: str) -> Decision:
    return Decision(False, reason, announce=True)


def switched_on(settings: Settings, action: str) -> bool:
    """The configuration's switch for an action."""
    return bool(getattr(settings.actions, action, False))


def _recent_failure(state: State, action: str, now: float, seconds: float) -> bool:
    last = state.last_attempt(action)
    return last is not None and last.result == "failed" and now - last.at < seconds


def _unit_unknown(facts: Facts) -> Optional[Decision]:
    """A refusal when systemd cannot tell the agent unit's state, else None."""
    if facts.unit is None:
        return _skip("the agent's unit state is unknown (systemctl did not answer)")
    if facts.unit.not_found:
        return _skip(f"{facts.unit.unit} is not loaded")
    return None


def _restart_agent(settings: Settings, state: State, facts: Facts) -> Decision:
    unit = facts.unit
    if unit is None or unit.not_found:
        return _unit_unknown(facts) or ALLOW
    if unit.auto_restarting:
        return _skip(f"left to systemd: Restart={unit.restart} restarts {unit.unit} itself")
    if unit.active_state in TRANSITIONAL:
        return _wait(f"{unit.unit} is {unit.active_state}: systemd is busy with it")
    cooldown = settings.actions.restart_cooldown_seconds
    if unit.inactive_exit is not None:
        age = facts.now - unit.inactive_exit.timestamp()
        if age < cooldown:
            return _wait(f"cool-down: {unit.unit} started {age:.0f}s ago (< {cooldown:g}s)")
    last = state.last_attempt("restart_agent")
    if last is not None and facts.now - last.at < cooldown:
        return _wait(f"cool-down: the doctor restarted it {facts.now - last.at:.0f}s ago")
    budget = settings.actions.restart_agent_per_hour
    used = state.attempts_since("restart_agent", facts.now - HOUR)
    if used >= budget:
        return Decision(
            False,
            f"gave up: {used} agent restart(s) in the last hour, budget restart_agent_per_hour"
            f" = {budget}; escalating to verbose logging and a support bundle",
            announce=True,
            gave_up=True,
        )
    return ALLOW


def _verbose(settings: Settings, state: State, facts: Facts) -> Decision:
    if state.verbose_logging is not None:
        return _wait("verbose logging is already on")
    if facts.verbose_on:
        return _wait("Logs.Verbose is already y in /etc/waagent.conf")
    period = settings.actions.verbose_logging_hours * HOUR
    last = state.last_attempt("enable_verbose_logging")
    # On for at most one period, then off for at least one: verbose logs fill disks.
    if last is not None and last.result == "applied" and facts.now - last.at < 2 * period:
        return _wait("verbose logging was on recently; not again before one period off")
    if _recent_failure(state, "enable_verbose_logging", facts.now, RETRY_FAILED_SECONDS):
        return _wait("the last attempt failed less than an hour ago")
    return ALLOW


def _collect(settings: Settings, state: State, facts: Facts) -> Decision:
    period = settings.actions.collect_logs_min_hours * HOUR
    if state.last_bundle is not None and facts.now - state.last_bundle.at < period:
        return _wait(
            f"a bundle was written less than {settings.actions.collect_logs_min_hours:g}h ago"
        )
    if _recent_failure(state, "collect_logs", facts.now, RETRY_FAILED_SECONDS):
        return _wait("the last bundle failed less than an hour ago")
    return ALLOW


def _autorestart(settings: Settings, state: State, facts: Facts) -> Decision:
    unit = facts.unit
    if unit is None or unit.not_found:
        return _unit_unknown(facts) or ALLOW
    if unit.restart == "always":
        return _wait(f"{unit.unit} already has Restart=always")
    if _recent_failure(state, "enable_autorestart", facts.now, RETRY_FAILED_SECONDS):
        return _wait("the last attempt failed less than an hour ago")
    return ALLOW


def _reload(settings: Settings, state: State, facts: Facts) -> Decision:
    unit = facts.unit
    if unit is None or unit.not_found:
        return _unit_unknown(facts) or ALLOW
    if unit.active_state in TRANSITIONAL:
        return _wait(f"{unit.unit} is {unit.active_state}: systemd is busy with it")
    last = state.last_attempt("reload_extension")
    if last is not None and facts.now - last.at < RELOAD_EXTENSION_PERIOD:
        return _wait("the extension was reloaded less than a day ago")
    return ALLOW


_RULES = {
    "restart_agent": _restart_agent,
    "enable_verbose_logging": _verbose,
    "collect_logs": _collect,
    "enable_autorestart": _autorestart,
    "reload_extension": _reload,
}


def decide(action: str, settings: Settings, state: State, facts: Facts) -> Decision:
    """May `action` run now?"""
    if facts.not_azure:
        return _wait("not an Azure VM: the doctor stays idle")
    if not switched_on(settings, action):
        return _skip(f"switched off: actions.{action} = false in the configuration")
    if action in TOUCHES_AGENT:
        if facts.disable_agent:
            return _skip(f"{DISABLE_AGENT} exists: the operator disabled the agent")
        if facts.unit is not None and facts.unit.masked:
            return _skip(f"{facts.unit.unit} is masked: the operator keeps it from starting")
    decision = _RULES[action](settings, state, facts)
    if not decision.allow:
        return decision
    if facts.dry_run:
        return _skip("dry run: would apply it, changed nothing")
    return decision
