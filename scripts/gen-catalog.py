#!/usr/bin/env python3
"""Generate systemd/waagent-doctor.catalog (the journal message catalog) from codes.py.

Usage: scripts/gen-catalog.py            write the catalog
       scripts/gen-catalog.py --check    exit 1 when the committed catalog is out of date
       scripts/gen-catalog.py --stdout   print it
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from waagent_doctor import codes  # noqa: E402 - after the src path is known

CATALOG = ROOT / "systemd" / "waagent-doctor.catalog"
DEFINED_BY = "waagent-doctor"
WIDTH = 78


def _wrap(text: str) -> str:
    return "\n".join(textwrap.wrap(text, WIDTH, break_on_hyphens=False))


def _entry(message_id: str, subject: str, paragraphs: list[str]) -> str:
    body = "\n\n".join(_wrap(p) for p in paragraphs if p)
    return f"-- {message_id}\nSubject: {subject}\nDefined-By: {DEFINED_BY}\n\n{body}\n"


def _finding(row: codes.Code) -> str:
    cause = codes.CAUSE_TITLES.get(row.cause, "Other")
    where = "live and offline" if row.mode is codes.Mode.BOTH else "live only"
    actions = (
        "The daemon may apply: "
        + ", ".join(row.actions)
        + " (each within its policy: switch, budget, cool-down, dry run). "
        + "Its entries carry WAAGENT_DOCTOR_ACTION and this code."
        if row.actions
        else "The daemon applies no automatic action for this code."
    )
    return _entry(
        row.message_id,
        f"{row.title} ({row.code})",
        [
            f"waagent-doctor raised (WAAGENT_DOCTOR_EVENT=finding.raised) or cleared "
            f"(finding.cleared) the finding {row.code}: {row.title}. Severity {row.severity.value},"
            f" cause {row.cause} ({cause}), checked {where}.",
            "Cause 1 to 4 are the four causes of the Azure Backup error 'Could not communicate "
            "with the VM agent for snapshot status - Snapshot VM sub-task timed out'."
            if row.cause
            else "",
            "Evidence: WAAGENT_DOCTOR_EVIDENCE names the files (with line numbers) and commands "
            "that show it; `waagent-doctor check` prints the full evidence.",
            f"What to do: {row.remedy}",
            actions,
        ],
    )


def _action(info: codes.ActionInfo) -> str:
    return _entry(
        info.message_id,
        f"waagent-doctor action {info.name}",
        [
            f"The daemon's automatic action {info.name}: it {info.description}.",
            "WAAGENT_DOCTOR_EVENT says what happened: action.applied (done and verified), "
            "action.failed (done but the result was not there: see WAAGENT_DOCTOR_REASON) or "
            "action.skipped (policy refused it: switched off, dry run, the operator's "
            "disable_agent, systemd restarting the unit itself). WAAGENT_DOCTOR_CODE is the "
            "finding it was for.",
            f"To switch it off, set `{info.name} = false` under [actions] in "
            "/etc/waagent-doctor/config.toml and reload the service (systemctl reload "
            "waagent-doctor). `waagent-doctor status` lists recent actions and the budget left.",
        ],
    )


def _doctor_entries() -> list[str]:
    return [
        _entry(
            codes.MESSAGE_ID_STARTED,
            "waagent-doctor started",
            [
                "The waagent-doctor daemon started. It diagnoses the Azure VM agent and the "
                "backup extension every interval_seconds and logs one entry per finding raised "
                "or cleared. WAAGENT_DOCTOR_OPEN lists the findings still open from before the "
                "start (they are not announced again). WAAGENT_DOCTOR_DRY_RUN=1 means nothing "
                "will be changed.",
            ],
        ),
        _entry(
            codes.MESSAGE_ID_CONFIG_REJECTED,
            "waagent-doctor refused a new configuration",
            [
                "On reload (SIGHUP) the configuration file could not be used; the daemon keeps "
                "running with the previous configuration. WAAGENT_DOCTOR_REASON names the file "
                "and the key.",
                "What to do: fix the key in /etc/waagent-doctor/config.toml (see "
                "examples/config.toml for every key and its default), then run `systemctl "
                "reload waagent-doctor` again.",
            ],
        ),
        _entry(
            codes.MESSAGE_ID_GAVE_UP,
            "waagent-doctor gave up an action: its budget is spent",
            [
                "The daemon used up the budget of WAAGENT_DOCTOR_ACTION (default: at most 3 "
                "agent restarts per hour, restart_agent_per_hour) and stopped repeating it. This "
                "entry is written once until the problem clears. The daemon then escalates: it "
                "turns on verbose agent logging (enable_verbose_logging) and writes a support "
                "bundle (collect_logs) into /var/lib/waagent-doctor/bundles.",
                "What to do: restarting does not fix this agent. Read /var/log/waagent.log "
                "around the restarts, run `waagent-doctor status` and `waagent-doctor check`, "
                "and open a support case with the newest bundle.",
            ],
        ),
        _entry(
            codes.MESSAGE_ID_VERBOSE_REVERTED,
            "waagent-doctor turned verbose agent logging off again",
            [
                "The daemon had set Logs.Verbose=y in /etc/waagent.conf (enable_verbose_logging)"
                " and has now put the original value back, because its period "
                "(verbose_logging_hours) ended or the agent is healthy again. If the operator "
                "changed the key in the meantime, their value was kept. The agent is restarted "
                "(if running) so that the change takes effect.",
            ],
        ),
    ]


def render() -> str:
    """The whole catalog."""
    header = (
        "#  waagent-doctor journal message catalog. Generated by scripts/gen-catalog.py from\n"
        "#  src/waagent_doctor/codes.py: do not edit by hand.\n"
        "#  Installed as /usr/lib/systemd/catalog/waagent-doctor.catalog; then run\n"
        "#  `journalctl --update-catalog` and read entries with `journalctl -x`.\n"
    )
    parts = [header]
    parts += [_finding(row) for row in codes.CODES.values()]
    parts += [_action(info) for info in codes.ACTIONS.values()]
    parts += _doctor_entries()
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    """Write, check or print the catalog."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    p.add_argument("--stdout", action="store_true")
    args = p.parse_args(argv)
    text = render()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = CATALOG.read_text(encoding="utf-8") if CATALOG.exists() else ""
        if current != text:
            sys.stderr.write(f"{CATALOG} is out of date: run scripts/gen-catalog.py\n")
            return 1
        return 0
    CATALOG.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
