"""codes.py matches a copy of the contract's finding-code table, row for row.

The expectations come from tests/data/contract-codes.md (copied from CONTRACT.md), never from
the program's own output: a changed severity, cause, mode or action fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from waagent_doctor.codes import ACTIONS, CODES

TABLE = Path(__file__).resolve().parent / "data" / "contract-codes.md"


def _rows() -> dict[str, tuple[int, str, str, tuple[str, ...]]]:
    rows: dict[str, tuple[int, str, str, tuple[str, ...]]] = {}
    for line in TABLE.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        code, cause, severity, _when, mode, action = cells
        actions = tuple(re.findall(r"`([a-z_]+)`", action))
        rows[code.strip("`")] = (int(cause), severity, mode, actions)
    return rows


CONTRACT = _rows()


def test_the_copy_holds_the_whole_table() -> None:
    """The copy parses into every row of the contract (34 codes in 2026-12)."""
    assert len(CONTRACT) == 34
    assert "doctor.check_failed" in CONTRACT


def test_no_code_missing_and_none_extra() -> None:
    """The program knows exactly the contract's codes."""
    assert set(CODES) == set(CONTRACT)


@pytest.mark.parametrize("code", sorted(CONTRACT))
def test_each_row(code: str) -> None:
    """Cause, severity, mode and actions of each code are the contract's."""
    cause, severity, mode, actions = CONTRACT[code]
    row = CODES[code]
    assert row.cause == cause
    assert row.severity.value == severity
    assert row.mode.value == mode
    assert row.actions == actions
    assert set(actions) <= set(ACTIONS)
