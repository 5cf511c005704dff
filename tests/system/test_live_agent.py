"""Live `check` against a real systemd: Debian's waagent unit running a stand-in agent.

The stand-in (/usr/sbin/waagent, tests/data/standin/waagent) looks like the agent to the doctor:
`python3 -u /usr/sbin/waagent -daemon` with a `-run-exthandlers` child. The fake Azure endpoints
run inside the container too (it has only loopback), and `check --json` runs there as root.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import DATA
from tests.system.testbed import Testbed, wait_for

UNIT = "walinuxagent.service"
DROPIN = f"/run/systemd/system/{UNIT}.d/50-standin.conf"
CONFIG = "/run/wd-test/config.toml"
FAKES_UNIT = "wd-fakes.service"
PORTS = "/run/wd-fakes.json"
LIVE_AGENT_CODES = {
    "agent.not_running",
    "agent.exthandler.not_running",
    "agent.hung",
    "agent.crash_loop",
}


def _dropin(*service_lines: str) -> str:
    # The Debian unit says ConditionVirtualization=microsoft: an empty value resets it.
    head = ["[Unit]", "ConditionVirtualization=", "StartLimitIntervalSec=0", "[Service]"]
    return "\n".join([*head, *service_lines]) + "\n"


@pytest.fixture
def tb(testbed_clean: Testbed) -> Iterator[Testbed]:
    """The container with the stand-in agent installed as /usr/sbin/waagent."""
    testbed_clean.write_file("/usr/sbin/waagent", (DATA / "standin" / "waagent").read_text(), 0o755)
    testbed_clean.run(["rm", "-f", "/var/log/waagent.log"])
    yield testbed_clean
    testbed_clean.run(["pkill", "-CONT", "-f", "/usr/sbin/waagent"], check=False)
    testbed_clean.systemctl("unmask", UNIT, check=False)
    testbed_clean.systemctl("stop", UNIT, FAKES_UNIT, check=False)
    testbed_clean.systemctl("reset-failed", check=False)


def _agent(tb: Testbed, *service_lines: str, start: bool = True) -> None:
    tb.write_file(DROPIN, _dropin(*service_lines))
    tb.daemon_reload()
    if start:
        tb.systemctl("start", UNIT)


def _children_running(tb: Testbed) -> bool:
    out = tb.run(["pgrep", "-f", "waagent -run-exthandlers"], check=False).stdout
    return bool(out.strip())


def _fakes(tb: Testbed, *modes: str) -> dict[str, int]:
    """Start the fake endpoints inside the container; their ports."""
    tb.systemctl("stop", FAKES_UNIT, check=False)
    tb.run(["rm", "-f", PORTS])
    tb.run(
        [
            "systemd-run", f"--unit={FAKES_UNIT}", "--collect", "--service-type=exec",
            "--property=WorkingDirectory=/src", f"--property=StandardOutput=file:{PORTS}",
            "--setenv=PYTHONPATH=/src", "--setenv=PYTHONDONTWRITEBYTECODE=1",
            "/opt/wd-venv/bin/python", "-m", "tests.fakes", *modes,
        ]
    )  # fmt: skip
    text = wait_for(lambda: tb.exists(PORTS) and tb.read_file(PORTS).strip(), 10, what="ports")
    return {k: int(v) for k, v in json.loads(str(text)).items()}


def _config(ports: dict[str, int], extra: str = "", deadline: float = 2.0) -> str:
    return (
        "assume_azure = true\n"
        f"{extra}\n"
        "[endpoints]\n"
        'wireserver = "127.0.0.1"\n'
        f"wireserver_port = {ports['wireserver']}\n"
        f"hostgaplugin_port = {ports['hostgaplugin']}\n"
        'imds = "127.0.0.1"\n'
        f"imds_port = {ports['imds']}\n"
        'storage = "127.0.0.1"\n'
        f"storage_port = {ports['storage']}\n"
        "connect_timeout_seconds = 0.5\n"
        f"deadline_seconds = {deadline}\n"
    )


def _check(tb: Testbed, config: str) -> tuple[dict[str, Any], float]:
    tb.write_file(CONFIG, config)
    started = time.monotonic()
    res = tb.python("-m", "waagent_doctor", "check", "--json", "--config", CONFIG, check=False)
    took = time.monotonic() - started
    assert res.returncode in (0, 1, 2), res.stderr
    return json.loads(res.stdout), took


def _codes(report: dict[str, Any]) -> set[str]:
    return {f["code"] for f in report["findings"]}


def _thresholds(**values: float) -> str:
    return "[thresholds]\nsample_seconds = 0.1\n" + "".join(
        f"{k} = {v}\n" for k, v in values.items()
    )


def test_running_agent_raises_no_live_agent_code(tb: Testbed) -> None:
    """The stand-in runs with its child and writes its log: no live agent finding."""
    _agent(tb, "Environment=STANDIN_PERIOD=0.5")
    wait_for(lambda: _children_running(tb), 10, what="exthandler child")
    report, _ = _check(tb, _config(_fakes(tb), _thresholds()))
    assert report["mode"] == "live"
    assert _codes(report) & LIVE_AGENT_CODES == set()
    assert _codes(report) & {c for c in _codes(report) if c.startswith("network.")} == set()
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert status["agent_running"] == "ok" and status["agent_hung"] == "ok"


def test_real_debian_unit_is_what_systemd_reads(tb: Testbed) -> None:
    """The unit comes from Debian's waagent package: its FragmentPath, no Restart=."""
    _agent(tb)
    shown = tb.show(UNIT, "FragmentPath", "Restart", "DropInPaths")
    assert shown["FragmentPath"] == "/lib/systemd/system/walinuxagent.service"
    assert shown["Restart"] == "no"
    report, _ = _check(tb, _config(_fakes(tb), _thresholds()))
    assert "agent.autorestart.missing" in _codes(report)


def test_stopped_agent_is_not_running(tb: Testbed) -> None:
    """`systemctl stop`: agent.not_running, with the unit state as evidence."""
    _agent(tb)
    tb.systemctl("stop", UNIT)
    report, _ = _check(tb, _config(_fakes(tb), _thresholds()))
    assert _codes(report) & LIVE_AGENT_CODES == {"agent.not_running"}
    finding = next(f for f in report["findings"] if f["code"] == "agent.not_running")
    assert any("ActiveState=inactive" in e["detail"] for e in finding["evidence"])


def test_killed_agent_is_not_running(tb: Testbed) -> None:
    """SIGKILL of the daemon (no Restart=): failed, Result=signal, agent.not_running."""
    _agent(tb)
    wait_for(lambda: _children_running(tb), 10, what="exthandler child")
    tb.systemctl("kill", "--signal=SIGKILL", UNIT)
    wait_for(lambda: tb.prop(UNIT, "ActiveState") == "failed", 10, what="failed")
    report, _ = _check(tb, _config(_fakes(tb), _thresholds()))
    assert _codes(report) & LIVE_AGENT_CODES == {"agent.not_running"}
    finding = next(f for f in report["findings"] if f["code"] == "agent.not_running")
    assert any("Result=signal" in e["detail"] for e in finding["evidence"])


def test_masked_agent_is_not_running(tb: Testbed) -> None:
    """A masked unit: agent.not_running, and the evidence says it is masked."""
    _agent(tb, start=False)
    tb.systemctl("mask", "--runtime", UNIT)
    report, _ = _check(tb, _config(_fakes(tb), _thresholds()))
    assert _codes(report) & LIVE_AGENT_CODES == {"agent.not_running"}
    finding = next(f for f in report["findings"] if f["code"] == "agent.not_running")
    assert any("masked" in e["detail"] for e in finding["evidence"])


def test_daemon_without_child_is_exthandler_not_running(tb: Testbed) -> None:
    """The daemon runs but no `-run-exthandlers` child, past a zero grace."""
    _agent(tb, "Environment=STANDIN_NO_CHILD=1")
    wait_for(lambda: tb.main_pid(UNIT), 10, what="MainPID")
    ports = _fakes(tb)
    report, _ = _check(tb, _config(ports, _thresholds(exthandler_grace_seconds=0)))
    assert _codes(report) & LIVE_AGENT_CODES == {"agent.exthandler.not_running"}
    config = _config(ports, _thresholds(exthandler_grace_seconds=3600))
    report, _ = _check(tb, config)
    assert _codes(report) & LIVE_AGENT_CODES == set()


def test_stopped_processes_are_hung(tb: Testbed) -> None:
    """SIGSTOP daemon and child; nothing written past agent_hung_minutes: agent.hung."""
    _agent(tb, "Environment=STANDIN_PERIOD=0.2")
    wait_for(lambda: _children_running(tb), 10, what="exthandler child")
    ports = _fakes(tb)
    tb.run(["pkill", "-STOP", "-f", "/usr/sbin/waagent"])
    time.sleep(3.5)
    report, _ = _check(tb, _config(ports, _thresholds(agent_hung_minutes=0.05)))
    assert _codes(report) & LIVE_AGENT_CODES == {"agent.hung"}
    finding = next(f for f in report["findings"] if f["code"] == "agent.hung")
    assert any("stopped" in e["detail"] for e in finding["evidence"])
    tb.run(["pkill", "-CONT", "-f", "/usr/sbin/waagent"])
    time.sleep(1.0)
    report, _ = _check(tb, _config(ports, _thresholds(agent_hung_minutes=0.05)))
    assert "agent.hung" not in _codes(report)


def test_crash_looping_agent(tb: Testbed) -> None:
    """Restart=always with a daemon that exits at once: NRestarts grows, agent.crash_loop."""
    _agent(tb, "Environment=STANDIN_EXIT=1", "Restart=always", "RestartSec=200ms")
    wait_for(lambda: int(tb.prop(UNIT, "NRestarts") or 0) >= 3, 20, what="NRestarts >= 3")
    report, _ = _check(tb, _config(_fakes(tb), _thresholds()))
    assert "agent.crash_loop" in _codes(report)
    assert "agent.hung" not in _codes(report)


def test_crash_loop_systemd_gave_up_on(tb: Testbed) -> None:
    """Start limit reached while auto-restarting: failed (Result=exit-code in systemd 252,
    not start-limit-hit), NRestarts=3: agent.crash_loop and agent.not_running."""
    tb.write_file(
        DROPIN,
        "[Unit]\nConditionVirtualization=\nStartLimitIntervalSec=60\nStartLimitBurst=3\n"
        "[Service]\nEnvironment=STANDIN_EXIT=1\nRestart=always\nRestartSec=100ms\n",
    )
    tb.daemon_reload()
    tb.systemctl("start", UNIT, check=False)
    wait_for(lambda: tb.prop(UNIT, "ActiveState") == "failed", 20, what="gave up")
    assert tb.prop(UNIT, "NRestarts") == "3"
    report, _ = _check(tb, _config(_fakes(tb), _thresholds()))
    assert {"agent.crash_loop", "agent.not_running"} <= _codes(report)


def test_blackholed_endpoints_finish_within_the_deadline(tb: Testbed) -> None:
    """Every endpoint black-holed: four network codes, and check ends within 2x the deadline."""
    _agent(tb)
    ports = _fakes(
        tb, "wireserver=blackhole", "hostgaplugin=blackhole", "imds=blackhole", "storage=blackhole"
    )
    deadline = 2.0
    report, took = _check(tb, _config(ports, _thresholds(), deadline=deadline))
    assert {c for c in _codes(report) if c.startswith("network.")} == {
        "network.wireserver.unreachable",
        "network.hostgaplugin.unreachable",
        "network.imds.unreachable",
        "network.storage.unreachable",
    }
    assert took < deadline * 2


def test_agent_environment_proxy_is_used(tb: Testbed) -> None:
    """https_proxy in the agent unit's Environment= (read from /proc/PID/environ) is used."""
    ports = _fakes(tb, "proxy=blackhole")
    _agent(tb, f"Environment=https_proxy=http://127.0.0.1:{ports['proxy']}")
    wait_for(lambda: tb.main_pid(UNIT), 10, what="MainPID")
    report, _ = _check(tb, _config(ports, _thresholds()))
    network_codes = {c for c in _codes(report) if c.startswith("network.")}
    assert network_codes == {"network.proxy.unreachable"}
    finding = next(f for f in report["findings"] if f["code"] == "network.proxy.unreachable")
    assert any("/proc/" in e["source"] for e in finding["evidence"])


def test_container_has_only_loopback(tb: Testbed) -> None:
    """The testbed's network namespace has no interface but lo: nothing can leave it."""
    names = set(tb.run(["ls", "/sys/class/net"]).stdout.split())
    assert names == {"lo"}
