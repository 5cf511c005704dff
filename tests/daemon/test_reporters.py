"""Journal fields of the contract, the journal renderer, metrics textfile, and status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from waagent_doctor import logging as doctor_logging
from waagent_doctor import state as statemod
from waagent_doctor.codes import ACTIONS, CODES, MESSAGE_ID_GAVE_UP
from waagent_doctor.config import Settings
from waagent_doctor.model import Evidence, Finding
from waagent_doctor.reporters import journal, metrics
from waagent_doctor.state import ActionRecord, CycleRecord, State
from waagent_doctor.status import build, status_command
from waagent_doctor.transitions import opened


def _finding() -> Finding:
    return Finding.of(
        "agent.not_running",
        [Evidence(source="systemctl show walinuxagent.service", detail="ActiveState=failed")],
    )


def test_raised_entry_has_the_contract_fields() -> None:
    """MESSAGE_ID, EVENT, CODE, CAUSE and ACTION of a raised finding."""
    f = journal.finding_raised_fields(_finding())
    assert f["MESSAGE_ID"] == CODES["agent.not_running"].message_id
    assert f["WAAGENT_DOCTOR_EVENT"] == "finding.raised"
    assert f["WAAGENT_DOCTOR_CODE"] == "agent.not_running"
    assert f["WAAGENT_DOCTOR_CAUSE"] == 2
    assert f["WAAGENT_DOCTOR_ACTION"] == "restart_agent"
    assert "ActiveState=failed" in f["message"]
    assert f["priority"] == 3


def test_cleared_and_action_entries() -> None:
    """Cleared findings keep the code's MESSAGE_ID; actions use the action's, give-up its own."""
    c = journal.finding_cleared_fields(opened(_finding(), 1.0))
    assert c["WAAGENT_DOCTOR_EVENT"] == "finding.cleared"
    assert c["MESSAGE_ID"] == CODES["agent.not_running"].message_id
    a = journal.action_fields("action.failed", "restart_agent", "agent.hung", "no new MainPID")
    assert a["MESSAGE_ID"] == ACTIONS["restart_agent"].message_id
    assert (a["WAAGENT_DOCTOR_ACTION"], a["WAAGENT_DOCTOR_CODE"]) == ("restart_agent", "agent.hung")
    assert a["WAAGENT_DOCTOR_CAUSE"] == 2 and a["priority"] == 3
    g = journal.action_fields("action.skipped", "restart_agent", "agent.hung", "x", gave_up=True)
    assert g["MESSAGE_ID"] == MESSAGE_ID_GAVE_UP and g["WAAGENT_DOCTOR_GAVE_UP"] == "1"


def test_renderer_sends_native_fields() -> None:
    """Through structlog, the journal gets SYSLOG_IDENTIFIER, PRIORITY and upper-case fields."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def send(message: str, **fields: Any) -> None:
        sent.append((message, fields))

    assert doctor_logging.configure(send=send) == "journal"
    try:
        journal.finding_raised(_finding())
        structlog.get_logger("t").info("cycle.done", duration=0.5, unit="x.service")
    finally:
        doctor_logging.configure(journal=False)
    (msg, fields), (msg2, fields2) = sent
    assert fields["SYSLOG_IDENTIFIER"] == "waagent-doctor"
    assert fields["PRIORITY"] == "3"
    assert fields["MESSAGE_ID"] == CODES["agent.not_running"].message_id
    assert fields["WAAGENT_DOCTOR_CAUSE"] == "2"
    assert msg.startswith("The Azure VM agent is not running")
    assert fields2["WAAGENT_DOCTOR_EVENT"] == "cycle.done"
    assert fields2["WAAGENT_DOCTOR_UNIT"] == "x.service"
    assert fields2["PRIORITY"] == "6"
    assert "duration=0.5" in msg2


def test_console_when_not_under_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without JOURNAL_STREAM/INVOCATION_ID the console renderer is chosen."""
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    assert doctor_logging.configure() == "console"


def test_field_names_are_sanitized() -> None:
    """Field names are upper-case letters, digits and underscores."""
    assert doctor_logging.field_name("moved-to") == "WAAGENT_DOCTOR_MOVED_TO"
    assert doctor_logging.field_name("MESSAGE_ID") == "MESSAGE_ID"


def _state() -> State:
    s = State()
    s.open_findings = {"agent.hung": opened(Finding.of("agent.hung"), 100.0)}
    s.record(ActionRecord(action="restart_agent", result="applied", at=1e9, code="agent.hung"))
    s.record(ActionRecord(action="restart_agent", result="failed", at=1e9, code="agent.hung"))
    s.last_cycle = CycleRecord(at=1e9, duration=0.25, status="critical", findings=1)
    return s


def test_metrics_textfile(tmp_path: Path) -> None:
    """The textfile parses and carries open findings, action counters, cycle gauges."""
    out = tmp_path / "doctor.prom"
    metrics.write(str(out), _state())
    fams = {f.name: f for f in text_string_to_metric_families(out.read_text())}
    open_samples = {s.labels["code"]: s.value for s in fams["waagent_doctor_finding_open"].samples}
    assert open_samples["agent.hung"] == 1.0 and open_samples["agent.not_running"] == 0.0
    acts = {
        (s.labels["action"], s.labels["result"]): s.value
        for s in fams["waagent_doctor_actions"].samples
        if s.name.endswith("_total")
    }
    assert acts == {("restart_agent", "applied"): 1.0, ("restart_agent", "failed"): 1.0}
    assert fams["waagent_doctor_cycle_duration_seconds"].samples[0].value == 0.25
    assert [p.name for p in tmp_path.iterdir()] == ["doctor.prom"]


def test_status_budget_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """status --json shows open findings and the restart budget left."""
    s = _state()
    doc = build(s, Settings(), 1e9 + 60)
    assert doc["actions"]["budget"]["restart_agent"] == {
        "per_hour": 3,
        "used_last_hour": 2,
        "left": 1,
    }
    path = tmp_path / "state.json"
    statemod.save(path, s)
    assert (
        status_command(as_json=True, state_path=str(path), config_path=str(tmp_path / "none.toml"))
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert [f["code"] for f in out["open_findings"]] == ["agent.hung"]
    assert status_command(as_json=False, state_path=str(path)) == 0
    assert "Agent restarts:" in capsys.readouterr().out
    assert status_command(as_json=False, state_path=str(tmp_path / "missing.json")) == 3
