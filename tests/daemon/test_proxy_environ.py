"""The agent's proxy when its /proc/PID/environ is unreadable, as under the hardened unit.

The unit's CapabilityBoundingSet has no CAP_SYS_PTRACE, and reading another root process's
environ needs it (EACCES). Here a child runs the probe under `setpriv --bounding-set` with the
unit's exact set, next to a running stand-in agent: it must fall back to the agent unit's
Environment= instead of concluding that the agent uses no proxy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.checks.live_support import StandIn

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
UNIT_FILE = ROOT / "systemd" / "waagent-doctor.service"
# The stand-in's own environment and its unit's Environment= name different proxies, so the
# answer says where it came from.
PROCESS_PROXY = "http://127.0.0.1:3128"
UNIT_PROXY = "http://127.0.0.1:8181"

CHILD = """
import json, sys
from datetime import datetime, timezone
from waagent_doctor.config import Settings
from waagent_doctor.host import CommandRunner, Host
from waagent_doctor.paths import Root
from waagent_doctor.probes import network, processes, waagent_conf
host = Host(Root(sys.argv[1]), True, datetime.now(timezone.utc), CommandRunner(), True)
settings = Settings(agent_unit="walinuxagent.service")
daemon = processes.probe(host, settings).daemon
proxy = network.agent_proxy(host, settings, waagent_conf.parse(""))
https = proxy.https
print(json.dumps({
    "pid": daemon.pid if daemon else 0,
    "environ": processes.proxy_environ(daemon.pid) if daemon else None,
    "https": None if https is None else [https.host, https.port, https.source],
}))
"""


def unit_capabilities() -> str:
    """The shipped unit's CapabilityBoundingSet, in setpriv's words (-all,+dac_override,...)."""
    text = UNIT_FILE.read_text()
    m = re.search(r"^CapabilityBoundingSet=(.*)$", text, re.MULTILINE)
    assert m is not None, "the unit has no CapabilityBoundingSet"
    caps = [c.lower().removeprefix("cap_") for c in m.group(1).split()]
    return ",".join(["-all", *(f"+{c}" for c in caps)])


@pytest.fixture
def guest(tmp_path: Path) -> Path:
    """A Debian guest whose agent unit sets https_proxy in Environment=."""
    root = tmp_path / "guest"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text("ID=debian\n")
    unit = root / "lib" / "systemd" / "system" / "walinuxagent.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(
        f'[Service]\nExecStart=/usr/sbin/waagent -daemon\nEnvironment="https_proxy={UNIT_PROXY}"\n'
    )
    return root


def probe(guest: Path, allow: Any, *prefix: str) -> dict[str, Any]:
    """Run the probe in a child (optionally under a prefix such as setpriv); its answer."""
    argv = [*prefix, sys.executable, "-c", CHILD, str(guest)]
    names = [Path(sys.executable).name, *(Path(p).name for p in prefix[:1])]
    with allow(*names):
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the unit's capabilities are root's")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) not installed")
def test_unreadable_environ_falls_back_to_the_unit(guest: Path, allow_subprocess: Any) -> None:
    """With the unit's capabilities the environ is unreadable and the unit's proxy is used;
    with all of root's, the running process's own environment wins."""
    agent = StandIn(guest, allow_subprocess, https_proxy=PROCESS_PROXY)
    try:
        full = probe(guest, allow_subprocess)
        assert full["pid"] == agent.proc.pid, "another stand-in agent runs on this machine"
        assert full["environ"] == {"https_proxy": PROCESS_PROXY}
        assert full["https"] == ["127.0.0.1", 3128, f"/proc/{agent.proc.pid}/environ "
                                 f"(https_proxy={PROCESS_PROXY})"]  # fmt: skip
        setpriv = shutil.which("setpriv") or "setpriv"
        caps = unit_capabilities()
        hardened = probe(guest, allow_subprocess, setpriv, "--bounding-set", caps, "--")
        assert hardened["pid"] == agent.proc.pid
        assert hardened["environ"] is None, "environ readable without CAP_SYS_PTRACE?"
        host, port, source = hardened["https"]
        assert (host, port) == ("127.0.0.1", 8181)
        assert source.startswith("/lib/systemd/system/walinuxagent.service:3"), source
    finally:
        agent.stop()
