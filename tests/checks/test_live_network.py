"""Live network checks against fake endpoints on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.checks.live_support import codes, live_host, run, settings_from, systemctl_runner
from tests.fakes.servers import LOOPBACK, FakeAzure

NETWORK = {
    "network_live_wireserver",
    "network_live_hostgaplugin",
    "network_live_imds",
    "network_live_storage",
    "network_live_proxy",
}


def _check(tmp_path: Path, fakes: FakeAzure, allow: Any, **cfg: Any) -> Any:
    settings = settings_from(fakes.config(**cfg), tmp_path)
    host = live_host(tmp_path, systemctl_runner(tmp_path, None))
    with allow("systemctl", "sh"):
        return run(host, settings, NETWORK)


def test_healthy_network_has_no_finding(tmp_path: Path, allow_subprocess: Any) -> None:
    """All endpoints answer: every network check ok, the proxy check skipped."""
    with FakeAzure() as fakes:
        report = _check(tmp_path, fakes, allow_subprocess)
    assert codes(report) == set()
    status = {c.name: c.status.value for c in report.checks}
    assert status["network_live_proxy"] == "skipped"
    assert status["network_live_wireserver"] == "ok"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("wireserver", "network.wireserver.unreachable"),
        ("hostgaplugin", "network.hostgaplugin.unreachable"),
        ("imds", "network.imds.unreachable"),
        ("storage", "network.storage.unreachable"),
    ],
)
def test_blackholed_endpoint_raises_its_code(
    tmp_path: Path, allow_subprocess: Any, name: str, code: str
) -> None:
    """One black-holed endpoint raises exactly its own code."""
    with FakeAzure({name: "blackhole"}) as fakes:
        report = _check(tmp_path, fakes, allow_subprocess, connect_timeout=0.3, deadline=1.0)
    assert codes(report) == {code}


def test_dead_proxy_is_the_finding_not_storage(tmp_path: Path, allow_subprocess: Any) -> None:
    """Storage behind a black-holed proxy: network.proxy.unreachable only (the specific code)."""
    with FakeAzure({"proxy": "blackhole"}) as fakes:
        (tmp_path / "etc").mkdir()
        (tmp_path / "etc" / "waagent.conf").write_text(
            f"HttpProxy.Host={LOOPBACK}\nHttpProxy.Port={fakes.port('proxy')}\n"
        )
        report = _check(tmp_path, fakes, allow_subprocess, connect_timeout=0.3, deadline=1.0)
    assert codes(report) == {"network.proxy.unreachable"}
    proxy = next(f for f in report.findings if f.code == "network.proxy.unreachable")
    assert any(e.source.startswith("/etc/waagent.conf:1") for e in proxy.evidence)


def test_whole_check_finishes_within_the_deadline(tmp_path: Path, allow_subprocess: Any) -> None:
    """Everything black-holed: the network checks together finish well within 2x deadline."""
    modes = dict.fromkeys(("wireserver", "hostgaplugin", "imds", "storage"), "blackhole")
    deadline = 1.5
    with FakeAzure(modes) as fakes:
        started = time.monotonic()
        report = _check(tmp_path, fakes, allow_subprocess, connect_timeout=10, deadline=deadline)
        took = time.monotonic() - started
    assert took < deadline * 2
    assert len(codes(report)) == 4


def test_not_azure_skips_the_network(tmp_path: Path, allow_subprocess: Any) -> None:
    """Off Azure (assume_azure false, no Azure asset tag) nothing is probed."""
    with FakeAzure({"wireserver": "refuse"}) as fakes:
        text = fakes.config().replace("assume_azure = true", "assume_azure = false")
        settings = settings_from(text, tmp_path)
        host = live_host(tmp_path, systemctl_runner(tmp_path, None))
        with allow_subprocess("systemctl", "sh"):
            report = run(host, settings, NETWORK | {"azure_host"})
        assert fakes.servers["imds"].requests == []
    assert codes(report) == {"host.not_azure"}
