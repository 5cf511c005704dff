"""Policy: switches, dry run, disable_agent, systemd's own Restart=, cool-down, budget."""

from __future__ import annotations

from typing import Optional

from waagent_doctor.config import Actions, Settings
from waagent_doctor.policy import Facts, decide
from waagent_doctor.probes.systemd import UnitState, parse_show
from waagent_doctor.state import ActionRecord, BundleRecord, State, VerboseLogging

NOW = 1_800_000_000.0
MONO = 50_000.0  # seconds since boot at NOW


def unit(
    active: str = "failed",
    sub: str = "failed",
    restart: str = "no",
    started_ago: float = 3600.0,
    result: str = "signal",
    load: str = "loaded",
) -> UnitState:
    """A UnitState parsed from `systemctl show` text, as the probe gets it."""
    text = (
        f"Id=walinuxagent.service\nLoadState={load}\nActiveState={active}\nSubState={sub}\n"
        f"Result={result}\nNRestarts=0\nMainPID=0\n"
        f"InactiveExitTimestampMonotonic={int((MONO - started_ago) * 1e6)}\n"
        f"Restart={restart}\nFragmentPath=/lib/systemd/system/walinuxagent.service\n"
        "UnitFileState=enabled\n"
    )
    return parse_show(text, "walinuxagent.service", clock=(NOW, MONO))


def facts(u: Optional[UnitState] = None, **kw: object) -> Facts:
    base = dict(
        now=NOW,
        unit=u or unit(),
        disable_agent=False,
        not_azure=False,
        verbose_on=False,
        dry_run=False,
    )
    base.update(kw)
    return Facts(**base)  # type: ignore[arg-type]


def restarts(state: State, *ages: float) -> State:
    for age in ages:
        state.record(ActionRecord(action="restart_agent", result="applied", at=NOW - age))
    return state


S = Settings()


def test_failed_agent_may_be_restarted() -> None:
    """A unit that died and stays failed is restarted."""
    assert decide("restart_agent", S, State(), facts()).allow


def test_switched_off_is_announced() -> None:
    """An action switched off is refused with a reason worth one journal entry."""
    off = Settings(actions=Actions(restart_agent=False))
    d = decide("restart_agent", off, State(), facts())
    assert not d.allow and d.announce and "switched off" in d.reason


def test_dry_run_refuses_what_would_be_allowed() -> None:
    """Dry run comes last: the reason says the action would have run."""
    d = decide("restart_agent", S, State(), facts(dry_run=True))
    assert not d.allow and d.announce and d.reason.startswith("dry run")


def test_disable_agent_is_respected_by_every_agent_action() -> None:
    """Never restart (or reconfigure and restart) an agent the operator disabled."""
    for action in ("restart_agent", "enable_verbose_logging", "reload_extension"):
        d = decide(
            action,
            Settings(actions=Actions(reload_extension=True)),
            State(),
            facts(disable_agent=True),
        )
        assert not d.allow and "disable_agent" in d.reason, action


def test_systemd_restarting_the_unit_is_left_alone() -> None:
    """A unit waiting in auto-restart is systemd's business."""
    u = unit(active="activating", sub="auto-restart", restart="always")
    d = decide("restart_agent", S, State(), facts(u))
    assert not d.allow and "left to systemd" in d.reason


def test_cool_down_since_the_unit_last_started() -> None:
    """InactiveExitTimestamp within restart_cooldown_seconds: wait, silently."""
    d = decide(
        "restart_agent", S, State(), facts(unit(active="active", sub="running", started_ago=30))
    )
    assert not d.allow and not d.announce and "cool-down" in d.reason
    assert decide("restart_agent", S, State(), facts(unit(started_ago=500))).allow


def test_budget_spent_gives_up() -> None:
    """Three restarts in the last hour spend the default budget; older ones do not count."""
    assert decide("restart_agent", S, restarts(State(), 3000, 2000, 4000), facts()).allow
    d = decide("restart_agent", S, restarts(State(), 3000, 2000, 1000), facts())
    assert not d.allow and d.gave_up and "budget" in d.reason


def test_not_azure_keeps_the_doctor_idle() -> None:
    """Off Azure nothing is done and nothing is announced."""
    d = decide("collect_logs", S, State(), facts(not_azure=True))
    assert not d.allow and not d.announce


def test_verbose_logging_once() -> None:
    """Already on (by the doctor or the operator): nothing to do."""
    s = State()
    s.verbose_logging = VerboseLogging(
        phase="applied",
        path="/etc/waagent.conf",
        original="n",
        original_line="Logs.Verbose=n",
        applied_at=NOW,
        revert_after=NOW + 10,
    )
    assert not decide("enable_verbose_logging", S, s, facts()).allow
    assert not decide("enable_verbose_logging", S, State(), facts(verbose_on=True)).allow
    assert decide("enable_verbose_logging", S, State(), facts()).allow


def test_collect_logs_at_most_once_per_period() -> None:
    """A bundle written recently blocks another one."""
    s = State()
    s.last_bundle = BundleRecord(path="/x", at=NOW - 3600)
    assert not decide("collect_logs", S, s, facts()).allow
    s.last_bundle = BundleRecord(path="/x", at=NOW - 25 * 3600)
    assert decide("collect_logs", S, s, facts()).allow


def test_reload_extension_is_opt_in() -> None:
    """reload_extension is off by default."""
    assert not decide("reload_extension", S, State(), facts()).allow
    on = Settings(actions=Actions(reload_extension=True))
    assert decide("reload_extension", on, State(), facts()).allow


def test_autorestart_idempotent() -> None:
    """A unit that already has Restart=always needs no drop-in."""
    assert not decide("enable_autorestart", S, State(), facts(unit(restart="always"))).allow
    assert decide("enable_autorestart", S, State(), facts(unit(restart="no"))).allow


def test_masked_unit_is_the_operators_choice() -> None:
    """A masked agent unit is never started by the doctor."""
    d = decide("restart_agent", S, State(), facts(unit(load="masked")))
    assert not d.allow and "masked" in d.reason
