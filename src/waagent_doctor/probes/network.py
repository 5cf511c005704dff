"""The Azure endpoints the agent talks to, reached the way the agent reaches them.

WireServer (`GET /?comp=versions` -> `<Versions>`), HostGAPlugin (`GET /health`), IMDS
(`GET /metadata/instance?api-version=2021-02-01`, `Metadata: true`) go direct, as in the agent
(restutil `use_proxy=False`); Azure Storage (a TLS handshake with the StatusUploadBlob host) goes
through the agent's proxy with CONNECT when one applies. Every target runs in its own daemon
thread under one overall deadline, so a black-holed endpoint costs at most the deadline; a
resolver stuck past it is abandoned (daemon threads never hold up the program's exit).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from typing import Callable, Optional
from urllib.parse import urlsplit

import defusedxml
import defusedxml.ElementTree as DET
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.paths import WIRESERVER_ENDPOINT_FILE, InputError
from waagent_doctor.probes import ProbeSkipped, processes, waagent_conf

DEFAULT_WIRESERVER = "168.63.129.16"
IMDS_PATH = "/metadata/instance?api-version=2021-02-01"
MAX_ATTEMPTS = 3
MAX_RESPONSE_BYTES = 256 * 1024
USER_AGENT = "waagent-doctor"
# The agent retries these statuses (restutil.RETRY_CODES).
RETRY_STATUSES = frozenset({205, 206, 403, 429, 500, 501, 502, 503, 504, 507})
WIRESERVER, HOSTGAPLUGIN, IMDS, STORAGE, PROXY = (
    "wireserver",
    "hostgaplugin",
    "imds",
    "storage",
    "proxy",
)
NOT_ROOT = (
    "not running as root: the agent's firewall (OS.EnableFirewall) lets only root reach the "
    "WireServer, so this failure may be false"
)


class ProbeFailure(Exception):
    """One attempt failed; `stage` says where (resolve, connect, proxy, tls, http, body)."""

    def __init__(self, stage: str, reason: str, status: Optional[int] = None) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason
        self.status = status


class Transient(ProbeFailure):
    """A failure worth another attempt: refused, reset, timed out, a retryable status."""


@dataclass(frozen=True)
class ProxyEndpoint:
    """A proxy the agent would use, and where that setting comes from."""

    host: str
    port: int
    source: str

    @property
    def address(self) -> str:
        """host:port."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class EffectiveProxy:
    """The agent's proxy for http and https URLs, and its no_proxy list (restutil's rules)."""

    http: Optional[ProxyEndpoint] = None
    https: Optional[ProxyEndpoint] = None
    no_proxy: tuple[str, ...] = ()
    no_proxy_source: str = ""

    def bypass(self, host: str) -> bool:
        """restutil.bypass_proxy: an IP in a no_proxy CIDR or equal, a name ending in an entry."""
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return any(e and host.lower().endswith(e.lower()) for e in self.no_proxy)
        for entry in self.no_proxy:
            try:
                if addr in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        return False

    def for_https(self, host: str) -> Optional[ProxyEndpoint]:
        """The proxy a TLS connection to host goes through, or None (direct)."""
        return None if self.https is None or self.bypass(host) else self.https

    @property
    def any(self) -> Optional[ProxyEndpoint]:
        """The proxy to probe for reachability: the https one, else the http one."""
        return self.https or self.http


@dataclass(frozen=True)
class Target:
    """One endpoint to probe: where, how, and where its address comes from."""

    name: str
    host: str
    port: int
    kind: str  # "http" (a GET), "tls" (a handshake), "proxy" (any HTTP answer)
    source: str
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    proxy: Optional[ProxyEndpoint] = None
    needs_root: bool = False

    @property
    def url(self) -> str:
        """How the target is named in evidence."""
        if self.kind == "tls":
            return f"tls://{self.host}:{self.port}"
        return f"http://{_hostport(self.host, self.port)}{self.path}"


@dataclass(frozen=True)
class EndpointResult:
    """What one target did: ok, or failed at a stage with a reason, or skipped with a reason."""

    target: Target
    ok: bool
    skipped: str = ""
    stage: str = ""
    error: str = ""
    status: Optional[int] = None
    attempts: int = 0
    elapsed: float = 0.0

    def describe(self) -> str:
        """One line for evidence."""
        via = f" via proxy {self.target.proxy.address}" if self.target.proxy else ""
        if self.skipped:
            return f"{self.target.url}{via}: not probed: {self.skipped}"
        if self.ok:
            return f"{self.target.url}{via}: ok in {self.elapsed:.2f}s"
        tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        return f"{self.target.url}{via}: {self.error} ({self.stage}; {tries}, {self.elapsed:.2f}s)"


@dataclass(frozen=True)
class NetworkReport:
    """Every endpoint probed this cycle, the proxy in effect, and the time it took."""

    results: tuple[EndpointResult, ...]
    proxy: EffectiveProxy
    deadline_seconds: float
    elapsed: float
    is_root: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    def get(self, name: str) -> Optional[EndpointResult]:
        """The result for a target name (wireserver, hostgaplugin, imds, storage, proxy)."""
        for r in self.results:
            if r.target.name == name:
                return r
        return None


# --- the agent's proxy -----------------------------------------------------------------------


def _proxy_from_url(url: str, source: str) -> Optional[ProxyEndpoint]:
    # http_proxy=http://10.0.0.4:3128 (restutil._parse_url; port defaults to 80)
    text = url.strip()
    if not text:
        return None
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    default = 443 if parts.scheme.lower() == "https" else 80
    return ProxyEndpoint(parts.hostname, port or default, source)


def effective_proxy(
    conf: waagent_conf.WaagentConf, env: dict[str, str], env_source: str
) -> EffectiveProxy:
    """restutil._get_http_proxy: HttpProxy.Host/Port win; else https_proxy/HTTPS_PROXY etc."""
    no_proxy_raw = env.get("no_proxy") or env.get("NO_PROXY") or ""
    no_proxy = tuple(e for e in no_proxy_raw.replace(" ", "").split(",") if e)
    host = conf.get("HttpProxy.Host")
    if host:
        port_text = conf.get("HttpProxy.Port") or ""
        port = int(port_text) if port_text.isdigit() else 80
        src = f"{conf.where('HttpProxy.Host')} (HttpProxy.Host={host}, HttpProxy.Port={port})"
        ep = ProxyEndpoint(host, port, src)
        return EffectiveProxy(ep, ep, no_proxy, env_source if no_proxy else "")

    def pick(names: tuple[str, str]) -> Optional[ProxyEndpoint]:
        for name in names:
            if name in env:
                return _proxy_from_url(env[name], f"{env_source} ({name}={env[name]})")
        return None

    return EffectiveProxy(
        pick(("http_proxy", "HTTP_PROXY")),
        pick(("https_proxy", "HTTPS_PROXY")),
        no_proxy,
        env_source if no_proxy else "",
    )


def _unit_environment(host: Host, settings: Settings) -> Optional[tuple[dict[str, str], str]]:
    """Proxy variables of the agent unit's Environment= and EnvironmentFile= (files win)."""
    from waagent_doctor.probes import units

    try:
        unit = units.probe(host, settings).unit
    except InputError:
        return None
    if unit is None:
        return None
    env = unit.env()
    env.update(units.read_environment_files(host.root, unit))
    wanted = {k: v for k, v in env.items() if k in processes.PROXY_VARIABLES}
    if not wanted:
        return None
    sources = sorted({unit.env_source(k) or f"{unit.name} EnvironmentFile=" for k in wanted})
    return wanted, ", ".join(sources)


def agent_proxy(host: Host, settings: Settings, conf: waagent_conf.WaagentConf) -> EffectiveProxy:
    """The running agent's environment when readable, else its unit's; waagent.conf first."""
    env: Optional[dict[str, str]] = None
    source = ""
    try:
        daemon = processes.probe(host, settings).daemon
    except ProbeSkipped:
        daemon = None
    if daemon is not None:
        env = processes.proxy_environ(daemon.pid)
        source = f"/proc/{daemon.pid}/environ"
    if env is None:
        # Not running, or its environ unreadable (EACCES without CAP_SYS_PTRACE): the unit's
        # Environment=/EnvironmentFile= is what systemd gave it.
        env, source = {}, ""
        unit_env = _unit_environment(host, settings)
        if unit_env is not None:
            env, source = unit_env
    return effective_proxy(conf, env, source)


# --- targets ---------------------------------------------------------------------------------


def wireserver_address(host: Host, settings: Settings) -> tuple[str, str]:
    """(address, source): settings, else /var/lib/waagent/WireServerEndpoint, else the default."""
    if settings.endpoints.wireserver:
        return settings.endpoints.wireserver, "endpoints.wireserver"
    try:
        # /var/lib/waagent/WireServerEndpoint -> 168.63.129.16
        text = host.root.read_text(WIRESERVER_ENDPOINT_FILE, 4096).strip()
    except InputError:
        text = ""
    if text:
        return text, WIRESERVER_ENDPOINT_FILE
    return DEFAULT_WIRESERVER, "default"


def storage_address(host: Host, settings: Settings) -> tuple[Optional[str], str]:
    """(host, source): settings, else the StatusUploadBlob host of the newest goal state."""
    if settings.endpoints.storage:
        return settings.endpoints.storage, "endpoints.storage"
    from waagent_doctor.probes import goalstate

    try:
        gs = goalstate.probe(host, settings)
    except InputError as err:
        return None, f"the goal state could not be read: {err}"
    if gs is None:
        return None, "no goal state on disk"
    if not gs.status_upload_host:
        return None, f"{gs.source} names no StatusUploadBlob"
    return gs.status_upload_host, f"{gs.source} (StatusUploadBlob)"


def targets(host: Host, settings: Settings, proxy: EffectiveProxy) -> tuple[list[Target], str]:
    """Every target of this host; the second value says why storage has none, if it has none."""
    ep = settings.endpoints
    ws, ws_src = wireserver_address(host, settings)
    out = [
        Target(WIRESERVER, ws, ep.wireserver_port, "http", ws_src, "/?comp=versions",
               needs_root=True),
        Target(HOSTGAPLUGIN, ws, ep.hostgaplugin_port, "http", ws_src, "/health",
               needs_root=True),
        Target(IMDS, ep.imds, ep.imds_port, "http", "endpoints.imds", IMDS_PATH,
               (("Metadata", "true"),)),
    ]  # fmt: skip
    storage, storage_src = storage_address(host, settings)
    no_storage = ""
    if storage:
        out.append(
            Target(STORAGE, storage, ep.storage_port, "tls", storage_src,
                   proxy=proxy.for_https(storage))
        )  # fmt: skip
    else:
        no_storage = storage_src
    chosen = proxy.any
    if chosen is not None:
        out.append(Target(PROXY, chosen.host, chosen.port, "proxy", chosen.source, "*"))
    return out, no_storage


# --- one attempt -----------------------------------------------------------------------------


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Clock:
    """The overall deadline and the connect timeout: every socket wait is bounded by both."""

    def __init__(self, deadline: float, connect_timeout: float) -> None:
        self.deadline = deadline
        self.connect_timeout = connect_timeout

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def step(self, stage: str) -> float:
        """The timeout for the next wait; a Transient failure once the deadline has passed."""
        left = self.remaining()
        if left <= 0:
            raise ProbeFailure(stage, "deadline reached")
        return min(self.connect_timeout, left)


def _connect(host: str, port: int, clock: _Clock, stage: str = "connect") -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Transient("resolve", f"cannot resolve {host}: {exc.strerror}") from exc
    last: Optional[OSError] = None
    for family, kind, proto, _, addr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(clock.step(stage))
            sock.connect(addr)
            return sock
        except socket.timeout as exc:
            sock.close()
            raise Transient(stage, f"connect timed out after {clock.connect_timeout:g}s") from exc
        except OSError as exc:
            sock.close()
            last = exc
    reason = last.strerror if last is not None and last.strerror else str(last)
    raise Transient(stage, f"connect failed: {reason.lower()}")


def _recv_until(
    sock: socket.socket, clock: _Clock, stage: str, done: Callable[[bytes], bool]
) -> bytes:
    """Read until done(data), EOF, MAX_RESPONSE_BYTES, or a timeout (each wait bounded)."""
    data = b""
    while not done(data) and len(data) < MAX_RESPONSE_BYTES:
        sock.settimeout(clock.step(stage))
        try:
            chunk = sock.recv(65536)
        except socket.timeout as exc:
            what = "no answer" if not data else "answer stalled"
            raise Transient(stage, f"{what} within {clock.connect_timeout:g}s") from exc
        except OSError as exc:
            raise Transient(
                stage, f"connection error: {(exc.strerror or str(exc)).lower()}"
            ) from exc
        if not chunk:
            break
        data += chunk
    return data


def _headers_done(data: bytes) -> bool:
    return b"\r\n\r\n" in data


def _status_of(head: bytes, stage: str) -> int:
    # HTTP/1.1 200 OK
    line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProbeFailure(stage, f"not an HTTP answer: {line[:60]!r}")
    return int(parts[1])


def _response_done(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value.strip())
    return False


def _request(host: str, path: str, headers: tuple[tuple[str, str], ...], method: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"User-Agent: {USER_AGENT}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines += ["Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _check_body(target: Target, body: bytes) -> None:
    """The answer each endpoint must give: Versions XML, an IMDS JSON object."""
    if target.name == WIRESERVER:
        try:
            root = DET.fromstring(body, forbid_dtd=True)
        except (ET.ParseError, defusedxml.DefusedXmlException, ValueError) as exc:
            raise ProbeFailure("body", f"not the Versions XML: {exc}") from exc
        if root.tag.rsplit("}", 1)[-1] != "Versions":
            raise ProbeFailure("body", f"not the Versions XML: root element <{root.tag}>")
    elif target.name == IMDS:
        try:
            doc = json.loads(body.decode("utf-8", "replace"))
        except ValueError as exc:
            raise ProbeFailure("body", "not the instance metadata JSON") from exc
        if not isinstance(doc, dict) or "compute" not in doc:
            raise ProbeFailure("body", "not the instance metadata JSON (no compute)")


def _http_get(target: Target, clock: _Clock) -> int:
    with _connect(target.host, target.port, clock) as sock:
        sock.settimeout(clock.step("http"))
        sock.sendall(_request(_hostport(target.host, target.port), target.path,
                              target.headers, "GET"))  # fmt: skip
        data = _recv_until(sock, clock, "http", _response_done)
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise Transient("http", "connection closed before a full answer")
    status = _status_of(head, "http")
    if status in RETRY_STATUSES:
        raise Transient("http", f"HTTP {status}", status)
    if not 200 <= status < 300:
        raise ProbeFailure("http", f"HTTP {status}", status)
    _check_body(target, body)
    return status


def _proxy_answer(target: Target, clock: _Clock) -> int:
    """A proxy is reachable when it gives any HTTP answer to `OPTIONS *`."""
    with _connect(target.host, target.port, clock) as sock:
        sock.settimeout(clock.step("proxy"))
        sock.sendall(_request(_hostport(target.host, target.port), "*", (), "OPTIONS"))
        data = _recv_until(sock, clock, "proxy", _headers_done)
    if not data:
        raise Transient("proxy", "the proxy closed the connection without an answer")
    return _status_of(data, "proxy")


def _tls(target: Target, clock: _Clock) -> int:
    """A TLS handshake with the storage host, through a CONNECT tunnel when a proxy applies.

    The certificate is not verified: this asks whether the path is open, and the doctor must
    not fail a VM whose CA store differs from the agent's.
    """
    proxy = target.proxy
    if proxy is not None:
        sock = _connect(proxy.host, proxy.port, clock, "proxy")
        try:
            hp = _hostport(target.host, target.port)
            sock.settimeout(clock.step("proxy"))
            sock.sendall(f"CONNECT {hp} HTTP/1.1\r\nHost: {hp}\r\n\r\n".encode("latin-1"))
            # HTTP/1.1 200 Connection established
            head = _recv_until(sock, clock, "proxy", _headers_done)
            if not head:
                raise Transient("proxy", "the proxy closed the connection without an answer")
            status = _status_of(head, "proxy")
            if status != 200:
                raise Transient("tunnel", f"the proxy answered CONNECT with HTTP {status}", status)
        except BaseException:
            sock.close()
            raise
    else:
        sock = _connect(target.host, target.port, clock)
    # No CA store is loaded (it is not used, and loading it costs about 1 MiB per cycle).
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        sock.settimeout(clock.step("tls"))
        with ctx.wrap_socket(sock, server_hostname=target.host) as tls:
            tls.settimeout(clock.step("tls"))
    except socket.timeout as exc:
        raise Transient("tls", f"TLS handshake timed out after {clock.connect_timeout:g}s") from exc
    except ssl.SSLError as exc:
        raise ProbeFailure("tls", f"TLS handshake failed: {exc.reason or exc}") from exc
    except OSError as exc:
        raise Transient(
            "tls", f"TLS handshake failed: {(exc.strerror or str(exc)).lower()}"
        ) from exc
    finally:
        sock.close()
    return 0


_KINDS: dict[str, Callable[[Target, _Clock], int]] = {
    "http": _http_get,
    "tls": _tls,
    "proxy": _proxy_answer,
}


def probe_target(target: Target, deadline: float, connect_timeout: float) -> EndpointResult:
    """Probe one target with retries (tenacity) until it answers or the deadline passes."""
    clock = _Clock(deadline, connect_timeout)
    started = time.monotonic()
    attempts = 0

    def wait(state: RetryCallState) -> float:
        # 0.1 s, 0.2 s, ... but never past the deadline.
        backoff = 0.1 * (2.0 ** (state.attempt_number - 1))
        return max(0.0, min(backoff, clock.remaining() - 0.05))

    def stop(state: RetryCallState) -> bool:
        return state.attempt_number >= MAX_ATTEMPTS or clock.remaining() <= 0.05

    retrying = Retrying(
        stop=stop,
        wait=wait,
        retry=retry_if_exception_type(Transient),
        reraise=True,
    )

    def once() -> int:
        nonlocal attempts
        attempts += 1
        return _KINDS[target.kind](target, clock)

    try:
        status = retrying(once)
    except ProbeFailure as exc:
        return EndpointResult(target, False, stage=exc.stage, error=exc.reason,
                              status=exc.status, attempts=attempts,
                              elapsed=time.monotonic() - started)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - one broken target must not stop the others
        return EndpointResult(target, False, stage="internal", error=f"{type(exc).__name__}: {exc}",
                              attempts=attempts, elapsed=time.monotonic() - started)  # fmt: skip
    return EndpointResult(target, True, status=status or None, attempts=attempts,
                          elapsed=time.monotonic() - started)  # fmt: skip


def run_all(
    all_targets: list[Target], deadline_seconds: float, connect_timeout: float
) -> tuple[list[EndpointResult], float]:
    """Probe every target concurrently; a target still running at the deadline is a failure."""
    started = time.monotonic()
    deadline = started + deadline_seconds
    results: dict[int, EndpointResult] = {}
    lock = threading.Lock()
    finished = threading.Condition(lock)

    def work(index: int, target: Target) -> None:
        result = probe_target(target, deadline, connect_timeout)
        with finished:
            results[index] = result
            finished.notify_all()

    for i, t in enumerate(all_targets):
        threading.Thread(target=work, args=(i, t), name=f"probe-{t.name}", daemon=True).start()
    # A little slack past the deadline lets a worker report its own "deadline reached".
    with finished:
        finished.wait_for(lambda: len(results) == len(all_targets), deadline_seconds + 0.25)
        done = dict(results)
    out = []
    for i, t in enumerate(all_targets):
        out.append(
            done.get(i)
            or EndpointResult(
                t,
                False,
                stage="deadline",
                error=f"no answer within the {deadline_seconds:g}s deadline",
                attempts=1,
                elapsed=time.monotonic() - started,
            )
        )
    return out, time.monotonic() - started


def probe(host: Host, settings: Settings) -> NetworkReport:
    """Probe: every endpoint the agent needs, concurrently, within endpoints.deadline_seconds."""
    if not host.live:
        raise ProbeSkipped("offline: the network is not probed")
    try:
        conf = waagent_conf.read(host.root)
    except InputError:
        conf = waagent_conf.WaagentConf(path="/etc/waagent.conf", present=False)
    proxy = agent_proxy(host, settings, conf)
    all_targets, no_storage = targets(host, settings, proxy)
    ep = settings.endpoints
    results, elapsed = run_all(all_targets, ep.deadline_seconds, ep.connect_timeout_seconds)
    final = []
    for r in results:
        # Not root: a failure to reach the WireServer may be the agent's own firewall.
        if r.target.needs_root and not r.ok and not host.is_root_user:
            r = replace(r, skipped=NOT_ROOT)
        final.append(r)
    notes = (f"storage not probed: {no_storage}",) if no_storage else ()
    return NetworkReport(
        tuple(final), proxy, ep.deadline_seconds, elapsed, host.is_root_user, notes
    )
