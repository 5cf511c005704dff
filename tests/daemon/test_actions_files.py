"""The file side of actions: bundles kept newest-first, the autorestart drop-in idempotent."""

from __future__ import annotations

import stat
from datetime import datetime, timezone
from pathlib import Path

from waagent_doctor.actions import ActionEnv, DaemonPaths, autorestart, collect_logs
from waagent_doctor.config import Actions, Settings
from waagent_doctor.host import Host
from waagent_doctor.state import State


def test_collect_logs_writes_private_bundles_and_keeps_the_newest(tmp_path: Path) -> None:
    """Bundles land in a 0700 folder; after four, only bundles_keep = 3 remain."""
    guest = tmp_path / "guest"
    (guest / "etc").mkdir(parents=True)
    (guest / "etc" / "waagent.conf").write_text("Logs.Verbose=n\n")
    (guest / "var" / "log").mkdir(parents=True)
    record = "2026-01-01T00:00:00.000000Z INFO Daemon Daemon x\n"
    (guest / "var" / "log" / "waagent.log").write_text(record)
    bundles = tmp_path / "lib" / "bundles"
    env = ActionEnv(
        host=Host.offline(str(guest), datetime.now(timezone.utc)),
        settings=Settings(actions=Actions(bundles_keep=3)),
        unit="walinuxagent.service",
        paths=DaemonPaths(bundles=str(bundles)),
        state=State(),
        code="agent.crash_loop",
    )
    made = []
    for _ in range(4):
        out = collect_logs.apply(env)
        assert out.ok, out.detail
        assert out.bundle is not None and out.bundle.size > 0
        made.append(Path(out.bundle.path))
    assert stat.S_IMODE(bundles.stat().st_mode) == 0o700
    left = collect_logs.bundles(bundles)
    assert len(left) == 3
    assert set(left) == set(made[1:])
    assert [p.name for p in bundles.iterdir() if p.name.startswith(".")] == []


def test_autorestart_dropin_is_idempotent(tmp_path: Path) -> None:
    """The drop-in is written once with Restart=always; writing it again changes nothing."""
    path, changed = autorestart.write_dropin(str(tmp_path), "walinuxagent.service", 5)
    assert changed
    assert path == tmp_path / "walinuxagent.service.d" / autorestart.DROPIN_NAME
    text = path.read_text()
    assert "[Service]\nRestart=always\nRestartSec=5\n" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert autorestart.write_dropin(str(tmp_path), "walinuxagent.service", 5) == (path, False)
