"""A check that crashes: stdout stays one contract report, the crash is a finding."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import planned_subprocess

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "broken-vm"

# A check registered next to the real ones that raises with a multi-line message.
_PROGRAM = """
import sys
from waagent_doctor.checks import all_checks, check
all_checks()

@check("zz_boom")
def boom(ctx):
    raise RuntimeError("first line\\nsecond line")

from waagent_doctor import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    with planned_subprocess(Path(sys.executable).name):
        return subprocess.run(
            [sys.executable, "-c", _PROGRAM, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def test_crashing_check_keeps_stdout_one_report_and_raises_check_failed() -> None:
    """stdout parses as one report; the check is `error`; doctor.check_failed names it."""
    proc = _run("check", "--json", "--root", str(EXAMPLE))
    report = json.loads(proc.stdout)  # the whole of stdout: nothing printed ahead of it
    assert report["schema"] == "waagent-doctor/report/1"
    row = next(c for c in report["checks"] if c["name"] == "zz_boom")
    assert row["status"] == "error"
    assert "\n" not in row["reason"] and "RuntimeError" in row["reason"]
    failed = [f for f in report["findings"] if f["code"] == "doctor.check_failed"]
    assert len(failed) == 1
    assert failed[0]["severity"] == "warning" and failed[0]["cause"] == 0
    assert any("zz_boom" in ev["source"] for ev in failed[0]["evidence"])
    assert "Traceback" not in proc.stdout
    assert "zz_boom" in proc.stderr  # the diagnostic goes to stderr


def test_crash_alone_is_not_ok(tmp_path: Path) -> None:
    """On an empty tree a crash makes the report a warning (exit 1), never ok."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").write_text("ID=debian\n")
    proc = _run("check", "--json", "--root", str(tmp_path))
    report = json.loads(proc.stdout)
    assert report["status"] != "ok"
    assert "doctor.check_failed" in {f["code"] for f in report["findings"]}
