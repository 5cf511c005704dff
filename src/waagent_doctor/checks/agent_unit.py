"""The agent's unit restarts it after a crash (Restart= in the fragment and its drop-ins)."""

from __future__ import annotations

from waagent_doctor.checks import Context, check
from waagent_doctor.model import Evidence
from waagent_doctor.probes import units

# systemd.service(5): which Restart= values restart a service after a crash. The agent is a
# Python program: an uncaught exception exits with status 1, a kill is a signal. Only `always`
# and `on-failure` restart on both. `on-abnormal` and `on-abort` restart on signals only (not on
# the non-zero exit of a traceback); `on-success`, `on-watchdog` and `no` never after a crash.
RESTARTS_AFTER_CRASH = frozenset({"always", "on-failure"})
_PARTIAL = {
    "on-abnormal": "restarts on a signal, timeout or watchdog, not on a non-zero exit status",
    "on-abort": "restarts only on an uncaught signal, not on a non-zero exit status",
    "on-success": "restarts only after a clean exit",
    "on-watchdog": "restarts only when the watchdog fires (the agent has none)",
    "no": "never restarts",
}


@check("agent_unit", order=12)
def agent_unit(ctx: Context) -> None:
    """Without Restart=always (or on-failure) a crashed agent stays down until someone acts."""
    inst = ctx.snap.get(units.probe)
    unit = inst.unit
    if unit is None:
        ctx.skip(f"no {' or '.join(inst.names_tried)} unit file on disk")
        return
    if unit.masked:
        # A masked agent cannot start at all: Restart= is moot and no offline code fits it.
        # The live unit check sees LoadState=masked and raises what applies.
        ctx.skip(f"{unit.name} is masked ({unit.masked_by}); Restart= does not apply")
        return
    for bad in unit.unreadable:
        ctx.unreadable(bad.error())
    if unit.unreadable:
        return
    value = unit.restart_value
    if value in RESTARTS_AFTER_CRASH:
        return
    evidence: list[Evidence] = []
    if unit.restart is None:
        files = [unit.fragment or unit.name, *unit.dropins]
        evidence.append(
            Evidence(
                source=unit.fragment or unit.name,
                detail=(
                    f"no Restart= in {', '.join(files)}: systemd's default is Restart=no "
                    "(never restarts)"
                ),
            )
        )
    elif unit.restart.value == "":
        evidence.append(
            Evidence(
                source=unit.restart.source,
                detail="Restart= (empty) resets it to the default Restart=no (never restarts)",
            )
        )
    else:
        evidence.append(
            Evidence(
                source=unit.restart.source,
                detail=f"Restart={value}: {_PARTIAL.get(value, 'does not restart after a crash')}",
            )
        )
    for note in unit.ignored:
        path, _, text = note.partition(": ")
        evidence.append(Evidence(source=path, detail=text))
    ctx.raise_("agent.autorestart.missing", evidence)
