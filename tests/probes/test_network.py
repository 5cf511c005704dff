"""The network probe against real fake servers on 127.0.0.1: every mode, proxy, deadline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import pytest

from tests.fakes.servers import LOOPBACK, FakeAzure, proxy_url
from waagent_doctor import config as configmod
from waagent_doctor.config import Settings
from waagent_doctor.host import CommandRunner, Host
from waagent_doctor.paths import Root
from waagent_doctor.probes import network, waagent_conf
from waagent_doctor.probes.network import NetworkReport


def _settings(text: str) -> Settings:
    path = _write(text)
    try:
        return configmod.load(path)
    finally:
        Path(path).unlink()


def _write(text: str) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as fh:
        fh.write(text)
    return fh.name


def _host(root: Path, *, is_root: bool = True) -> Host:
    return Host(Root(root), True, datetime.now(timezone.utc), CommandRunner(), is_root)


def _run(fakes: FakeAzure, root: Path, *, is_root: bool = True, **cfg: object) -> NetworkReport:
    settings = _settings(fakes.config(**cfg))  # type: ignore[arg-type]
    return network.probe(_host(root, is_root=is_root), settings)


@pytest.fixture
def vm(tmp_path: Path) -> Path:
    """An empty guest tree (no waagent.conf, no goal state)."""
    (tmp_path / "etc").mkdir()
    return tmp_path


@pytest.fixture
def fakes() -> Iterator[FakeAzure]:
    """All fakes answering correctly."""
    with FakeAzure() as f:
        yield f


def test_all_endpoints_answer(fakes: FakeAzure, vm: Path) -> None:
    """Every fake answering correctly gives an ok result for each of the four endpoints."""
    report = _run(fakes, vm)
    for name in ("wireserver", "hostgaplugin", "imds", "storage"):
        result = report.get(name)
        assert result is not None and result.ok, result
    assert report.get("proxy") is None
    assert b"Metadata: true" in fakes.servers["imds"].requests[0]


FAILURES = ["refuse", "blackhole", "http500", "wrong_body"]


@pytest.mark.parametrize("mode", FAILURES)
@pytest.mark.parametrize("name", ["wireserver", "hostgaplugin", "imds", "storage"])
def test_each_failure_mode_fails_only_that_endpoint(name: str, mode: str, vm: Path) -> None:
    """A broken endpoint fails with a reason; the others still answer.

    Two modes are healthy by design: any 200 from /health, and an HTTP 500 sent by storage after
    a completed TLS handshake (the path is open; the probe does not speak HTTP to storage).
    """
    healthy = (name, mode) in {("hostgaplugin", "wrong_body"), ("storage", "http500")}
    with FakeAzure({name: mode}) as fakes:
        report = _run(fakes, vm, connect_timeout=0.3, deadline=1.0)
    result = report.get(name)
    assert result is not None and result.ok is healthy
    assert healthy or result.error
    for other in {"wireserver", "hostgaplugin", "imds", "storage"} - {name}:
        res = report.get(other)
        assert res is not None and res.ok, res


def test_transient_failures_are_retried(vm: Path) -> None:
    """A refused or HTTP 500 endpoint is tried again (tenacity); a wrong body is not."""
    with FakeAzure({"wireserver": "http500", "imds": "wrong_body"}) as fakes:
        report = _run(fakes, vm)
        assert len(fakes.servers["wireserver"].requests) == network.MAX_ATTEMPTS
    wire, imds = report.get("wireserver"), report.get("imds")
    assert wire is not None and wire.attempts == network.MAX_ATTEMPTS and wire.status == 500
    assert imds is not None and imds.attempts == 1 and imds.stage == "body"


def test_slow_endpoint_within_timeout_is_ok(vm: Path) -> None:
    """An answer slower than nothing but faster than the timeout counts as reachable."""
    with FakeAzure({"wireserver": "slow"}, delay=0.2) as fakes:
        report = _run(fakes, vm, connect_timeout=1.0, deadline=3.0)
    result = report.get("wireserver")
    assert result is not None and result.ok and result.elapsed >= 0.2


def test_slow_endpoint_past_timeout_fails(vm: Path) -> None:
    """An endpoint slower than the timeout is a failure that says it did not answer."""
    with FakeAzure({"imds": "slow"}, delay=2.0) as fakes:
        report = _run(fakes, vm, connect_timeout=0.2, deadline=1.0)
    result = report.get("imds")
    assert result is not None and not result.ok and "answer" in result.error


def test_everything_blackholed_finishes_within_the_deadline(vm: Path) -> None:
    """Five black-holed endpoints together take about one deadline, not five (concurrency)."""
    modes = dict.fromkeys(("wireserver", "hostgaplugin", "imds", "storage", "proxy"), "blackhole")
    deadline = 1.0
    with FakeAzure(modes) as fakes:
        (vm / "etc" / "waagent.conf").write_text(
            f"HttpProxy.Host={LOOPBACK}\nHttpProxy.Port={fakes.port('proxy')}\n"
        )
        started = time.monotonic()
        report = _run(fakes, vm, connect_timeout=5.0, deadline=deadline)
        took = time.monotonic() - started
    assert took < deadline * 2
    assert len(report.results) == 5
    assert all(not r.ok for r in report.results)


def _proxy_conf(vm: Path, fakes: FakeAzure) -> None:
    (vm / "etc" / "waagent.conf").write_text(
        f"HttpProxy.Host={LOOPBACK}\nHttpProxy.Port={fakes.port('proxy')}\n"
    )


def test_storage_goes_through_the_agents_proxy(vm: Path) -> None:
    """With HttpProxy.Host/Port set, storage is reached through a CONNECT tunnel."""
    with FakeAzure() as fakes:
        _proxy_conf(vm, fakes)
        report = _run(fakes, vm)
        heads = fakes.servers["proxy"].requests
    storage = report.get("storage")
    assert storage is not None and storage.ok
    assert storage.target.proxy is not None
    assert storage.target.proxy.port == fakes.port("proxy")
    assert any(h.startswith(f"CONNECT {LOOPBACK}:".encode()) for h in heads)
    assert report.get("proxy") is not None and report.get("proxy").ok  # type: ignore[union-attr]
    # The agent never sends WireServer traffic through the proxy.
    assert not any(b"comp=versions" in h for h in heads)


@pytest.mark.parametrize("mode", ["refuse", "blackhole", "wrong_body"])
def test_dead_proxy_fails_storage_at_the_proxy_stage(vm: Path, mode: str) -> None:
    """A proxy that does not answer fails the storage probe at the `proxy` stage."""
    with FakeAzure({"proxy": mode}) as fakes:
        _proxy_conf(vm, fakes)
        report = _run(fakes, vm, connect_timeout=0.3, deadline=1.5)
    storage, proxy = report.get("storage"), report.get("proxy")
    assert storage is not None and not storage.ok and storage.stage == "proxy"
    assert proxy is not None and not proxy.ok


def test_proxy_refusing_the_tunnel_fails_storage_at_the_tunnel(vm: Path) -> None:
    """A proxy that answers CONNECT with an error is a storage failure, not a dead proxy."""
    with FakeAzure({"proxy": "http500"}) as fakes:
        _proxy_conf(vm, fakes)
        report = _run(fakes, vm)
    storage = report.get("storage")
    assert storage is not None and not storage.ok and storage.stage == "tunnel"
    assert "HTTP 500" in storage.error


def test_no_proxy_bypasses_the_proxy(vm: Path) -> None:
    """no_proxy naming the storage address sends it direct, as restutil.bypass_proxy does."""
    conf = waagent_conf.WaagentConf("/etc/waagent.conf", False)
    env = {"https_proxy": "http://127.0.0.1:9", "no_proxy": "127.0.0.0/8,example.net"}
    proxy = network.effective_proxy(conf, env, "/proc/1/environ")
    assert proxy.https is not None and proxy.https.port == 9
    assert proxy.for_https("127.0.0.1") is None
    assert proxy.for_https("x.blob.example.net") is None
    assert proxy.for_https("10.1.2.3") == proxy.https


def test_waagent_conf_proxy_wins_over_the_environment() -> None:
    """HttpProxy.Host/Port take precedence over https_proxy (restutil._get_http_proxy)."""
    conf = waagent_conf.parse("HttpProxy.Host=10.0.0.4\nHttpProxy.Port=3128\n")
    proxy = network.effective_proxy(conf, {"https_proxy": "http://10.9.9.9:8080"}, "env")
    assert proxy.https is not None
    assert (proxy.https.host, proxy.https.port) == ("10.0.0.4", 3128)
    assert proxy.https.source.startswith("/etc/waagent.conf:1")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HTTPS_PROXY": "http://10.1.1.1:3128"}, ("10.1.1.1", 3128)),
        ({"https_proxy": "10.1.1.2"}, ("10.1.1.2", 80)),
        ({"http_proxy": "http://10.1.1.3:8080"}, None),
        ({"https_proxy": "http://[bad"}, None),
    ],
)
def test_https_proxy_from_the_environment(
    env: dict[str, str], expected: Optional[tuple[str, int]]
) -> None:
    """Storage (https) uses https_proxy/HTTPS_PROXY only; a bad URL is no proxy."""
    conf = waagent_conf.WaagentConf("/etc/waagent.conf", False)
    https = network.effective_proxy(conf, env, "env").https
    assert (None if https is None else (https.host, https.port)) == expected


def test_storage_host_comes_from_the_newest_goal_state(vm: Path) -> None:
    """Without endpoints.storage, the StatusUploadBlob host of the goal state is probed."""
    folder = vm / "var/lib/waagent/history/2026-01-01T00-00-00__1"
    folder.mkdir(parents=True)
    (folder / "ExtensionsConfig.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?><Extensions><Plugins/><PluginSettings/>'
        '<StatusUploadBlob statusBlobType="BlockBlob">https://127.0.0.1/vhds/x.status?'
        "***REDACTED***</StatusUploadBlob></Extensions>"
    )
    with FakeAzure() as fakes:
        report = _run(fakes, vm, storage=False)
    storage = report.get("storage")
    assert storage is not None and storage.ok
    assert storage.target.host == LOOPBACK
    assert "StatusUploadBlob" in storage.target.source


def test_no_goal_state_means_storage_is_not_probed(fakes: FakeAzure, vm: Path) -> None:
    """With no goal state and no endpoints.storage there is nothing to probe; a note says so."""
    report = _run(fakes, vm, storage=False)
    assert report.get("storage") is None
    assert any("goal state" in n for n in report.notes)


def test_not_root_turns_a_wireserver_failure_into_a_skip(vm: Path) -> None:
    """Not root: a failed WireServer probe may be the agent's firewall, so it is not a failure."""
    with FakeAzure({"wireserver": "refuse", "imds": "refuse"}) as fakes:
        report = _run(fakes, vm, is_root=False)
    wire, imds = report.get("wireserver"), report.get("imds")
    assert wire is not None and wire.skipped == network.NOT_ROOT
    assert imds is not None and not imds.ok and not imds.skipped


def test_wireserver_address_from_the_endpoint_file(vm: Path) -> None:
    """Without endpoints.wireserver the agent's WireServerEndpoint file names the address."""
    lib = vm / "var/lib/waagent"
    lib.mkdir(parents=True)
    (lib / "WireServerEndpoint").write_text("127.0.0.1\n")
    host = _host(vm)
    assert network.wireserver_address(host, Settings()) == (
        "127.0.0.1",
        "/var/lib/waagent/WireServerEndpoint",
    )
    (lib / "WireServerEndpoint").unlink()
    assert network.wireserver_address(host, Settings())[0] == network.DEFAULT_WIRESERVER


def test_proxy_url_helper(fakes: FakeAzure) -> None:
    """The fake proxy URL points at loopback."""
    assert proxy_url(fakes).startswith("http://127.0.0.1:")
