"""Fake Azure endpoints as real servers on 127.0.0.1, each with failure modes.

WireServer (`GET /?comp=versions`), HostGAPlugin (`GET /health`), IMDS (`GET /metadata/instance`
with `Metadata: true`), Azure Storage (TLS, a self-signed test certificate) and an HTTP CONNECT
proxy that only tunnels to loopback. Modes: ok, refuse (a closed port), blackhole (accept, never
answer), slow (answer after `delay` seconds), http500, wrong_body. Standard library only, so the
same servers run inside the system-test container (`python -m tests.fakes`).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Callable, Optional

DATA = Path(__file__).resolve().parents[1] / "data"
VERSIONS_XML = (DATA / "walinuxagent" / "wire" / "version_info.xml").read_bytes()
IMDS_JSON = (DATA / "walinuxagent" / "imds" / "valid.json").read_bytes()
TLS_CERT = DATA / "tls" / "test-only.crt"
TLS_KEY = DATA / "tls" / "test-only.key"
LOOPBACK = "127.0.0.1"
MODES = ("ok", "refuse", "blackhole", "slow", "http500", "wrong_body")
_READ_TIMEOUT = 5.0


def closed_port() -> int:
    """A loopback port with nothing listening (connect is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _response(status: int, body: bytes, ctype: str = "text/plain") -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Status')}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _read_head(conn: socket.socket) -> bytes:
    data = b""
    conn.settimeout(_READ_TIMEOUT)
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


class FakeServer:
    """A TCP server on 127.0.0.1 with an ephemeral port; `mode` can change at any time."""

    name = "fake"

    def __init__(self, mode: str = "ok", delay: float = 2.0) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.delay = delay
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._sock: Optional[socket.socket] = None
        self._port = 0
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle --
    def start(self) -> FakeServer:
        """Listen (or, for `refuse`, reserve a closed port) and serve in a daemon thread."""
        if self.mode == "refuse":
            self._port = closed_port()
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, 0))
        sock.listen(64)
        sock.settimeout(0.2)
        self._sock = sock
        self._port = int(sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection."""
        self._stop.set()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept() at once on Linux
            except OSError:
                pass
            self._sock.close()
        for c in self._held:
            try:
                c.close()
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(2)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port clients connect to."""
        return self._port

    # -- serving --
    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.mode == "blackhole":
                self._held.append(conn)  # accept and never answer
                continue
            threading.Thread(target=self._handle_safely, args=(conn,), daemon=True).start()

    def _handle_safely(self, conn: socket.socket) -> None:
        try:
            if self.mode == "slow":
                time.sleep(self.delay)
            self.handle(conn)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def handle(self, conn: socket.socket) -> None:
        """Answer one connection (HTTP by default)."""
        head = _read_head(conn)
        self.requests.append(head)
        if self.mode == "http500":
            conn.sendall(_response(500, b"Internal Server Error"))
            return
        if self.mode == "wrong_body":
            conn.sendall(_response(200, b"<html>captive portal</html>", "text/html"))
            return
        conn.sendall(self.answer(head))

    def answer(self, head: bytes) -> bytes:
        """The correct answer to a request."""
        return _response(200, b"")


class FakeWireServer(FakeServer):
    """GET /?comp=versions -> the Versions XML of the agent's test data."""

    name = "wireserver"

    def answer(self, head: bytes) -> bytes:
        if head.startswith(b"GET /?comp=versions "):
            return _response(200, VERSIONS_XML, "text/xml")
        return _response(404, b"")


class FakeHostGAPlugin(FakeServer):
    """GET /health -> 200."""

    name = "hostgaplugin"

    def answer(self, head: bytes) -> bytes:
        return _response(200 if head.startswith(b"GET /health ") else 404, b"")


class FakeImds(FakeServer):
    """GET /metadata/instance with `Metadata: true` -> the agent's sample instance JSON."""

    name = "imds"

    def answer(self, head: bytes) -> bytes:
        if not head.startswith(b"GET /metadata/instance?"):
            return _response(404, b"")
        if b"\r\nmetadata: true" not in head.lower():
            return _response(400, b'{"error": "Required metadata header not specified"}')
        return _response(200, IMDS_JSON, "application/json")


class FakeStorage(FakeServer):
    """A TLS server (self-signed test certificate); `wrong_body` speaks plain HTTP instead."""

    name = "storage"

    def __init__(self, mode: str = "ok", delay: float = 2.0) -> None:
        super().__init__(mode, delay)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(TLS_CERT), str(TLS_KEY))

    def handle(self, conn: socket.socket) -> None:
        if self.mode == "wrong_body":
            conn.settimeout(_READ_TIMEOUT)
            conn.recv(4096)
            conn.sendall(_response(400, b"plain HTTP, not TLS"))
            return
        conn.settimeout(_READ_TIMEOUT)
        with self.ctx.wrap_socket(conn, server_side=True) as tls:
            self.requests.append(b"TLS handshake")
            if self.mode == "http500":
                tls.sendall(_response(500, b""))
                return
            try:
                tls.recv(4096)
            except (OSError, ssl.SSLError):
                return


class FakeProxy(FakeServer):
    """An HTTP proxy: CONNECT tunnels to loopback only; `OPTIONS *` -> 200; others 403."""

    name = "proxy"

    def handle(self, conn: socket.socket) -> None:
        head = _read_head(conn)
        self.requests.append(head)
        if self.mode == "http500":
            conn.sendall(_response(500, b""))
            return
        if self.mode == "wrong_body":
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
            return
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "CONNECT":
            self._tunnel(conn, parts[1])
            return
        conn.sendall(_response(200 if parts[:1] == ["OPTIONS"] else 403, b""))

    def _tunnel(self, conn: socket.socket, hostport: str) -> None:
        host, _, port = hostport.rpartition(":")
        host = host.strip("[]")
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback or not port.isdigit():
            conn.sendall(_response(403, b"this test proxy tunnels to loopback only"))
            return
        try:
            upstream = socket.create_connection((host, int(port)), timeout=_READ_TIMEOUT)
        except OSError:
            conn.sendall(_response(502, b""))
            return
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        _pipe(conn, upstream)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    def copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    a.settimeout(_READ_TIMEOUT)
    b.settimeout(_READ_TIMEOUT)
    other = threading.Thread(target=copy, args=(b, a), daemon=True)
    other.start()
    copy(a, b)
    other.join(_READ_TIMEOUT)
    b.close()


KINDS: dict[str, Callable[..., FakeServer]] = {
    "wireserver": FakeWireServer,
    "hostgaplugin": FakeHostGAPlugin,
    "imds": FakeImds,
    "storage": FakeStorage,
    "proxy": FakeProxy,
}


class FakeAzure:
    """All five fakes at once; `config()` gives the TOML that points the doctor at them."""

    def __init__(self, modes: Optional[dict[str, str]] = None, delay: float = 2.0) -> None:
        modes = modes or {}
        self.servers = {k: cls(modes.get(k, "ok"), delay) for k, cls in KINDS.items()}

    def start(self) -> FakeAzure:
        """Start every server."""
        for s in self.servers.values():
            s.start()
        return self

    def stop(self) -> None:
        """Stop every server."""
        for s in self.servers.values():
            s.stop()

    def __enter__(self) -> FakeAzure:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def port(self, name: str) -> int:
        """The port of one fake."""
        return self.servers[name].port

    def ports(self) -> dict[str, int]:
        """Every fake's port by name."""
        return {k: s.port for k, s in self.servers.items()}

    def config(
        self,
        *,
        connect_timeout: float = 0.5,
        deadline: float = 3.0,
        storage: bool = True,
        extra: str = "",
    ) -> str:
        """A waagent-doctor config.toml aiming every endpoint at these fakes on 127.0.0.1."""
        lines = [
            "assume_azure = true",
            extra,
            "[endpoints]",
            f'wireserver = "{LOOPBACK}"',
            f"wireserver_port = {self.port('wireserver')}",
            f"hostgaplugin_port = {self.port('hostgaplugin')}",
            f'imds = "{LOOPBACK}"',
            f"imds_port = {self.port('imds')}",
            f"connect_timeout_seconds = {connect_timeout}",
            f"deadline_seconds = {deadline}",
        ]
        lines.append(f"storage_port = {self.port('storage')}")
        if storage:
            lines.append(f'storage = "{LOOPBACK}"')
        return "\n".join(lines) + "\n"


def proxy_url(fakes: FakeAzure) -> str:
    """http_proxy-style URL of the fake proxy."""
    return f"http://{LOOPBACK}:{fakes.port('proxy')}"


def dump_ports(fakes: FakeAzure) -> str:
    """The ports as one JSON line (what `python -m tests.fakes` prints)."""
    return json.dumps(fakes.ports())
