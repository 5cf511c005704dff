"""sd_notify(3) over the NOTIFY_SOCKET datagram socket, without libsystemd.

Written on plain sockets so `Type=notify` works whether or not python-systemd is installed.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Optional


def _address(env_value: str) -> Optional[str]:
    """The socket address: a path, or an abstract name (`@name` -> NUL + name)."""
    # NOTIFY_SOCKET=/run/systemd/notify  or  NOTIFY_SOCKET=@/org/freedesktop/systemd1/notify
    if env_value.startswith("@"):
        return "\0" + env_value[1:]
    if env_value.startswith("/"):
        return env_value
    return None


class Notifier:
    """Sends state lines to the service manager; a no-op when not started by one."""

    def __init__(self, environ: Optional[Mapping[str, str]] = None) -> None:
        env = os.environ if environ is None else environ
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_seconds = _watchdog_seconds(env)
        self._sock: Optional[socket.socket] = None

    @property
    def enabled(self) -> bool:
        """True when a service manager listens."""
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send `KEY=value` lines as one datagram; False when nobody listens or it failed."""
        if self.address is None or not lines:
            return False
        payload = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(payload, self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        """READY=1 with the first status line."""
        return self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        """STATUS=<one line>."""
        return self.send(f"STATUS={status}")

    def watchdog(self) -> bool:
        """WATCHDOG=1: the main loop is alive (only when WatchdogSec= asks for it)."""
        if self.watchdog_seconds is None:
            return False
        return self.send("WATCHDOG=1")

    def stopping(self, status: str = "stopping") -> bool:
        """STOPPING=1 before a clean exit."""
        return self.send("STOPPING=1", f"STATUS={status}")

    def reloading(self) -> bool:
        """RELOADING=1 while the configuration is reloaded."""
        return self.send("RELOADING=1")

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_seconds(env: Mapping[str, str]) -> Optional[float]:
    """WatchdogSec= as seconds, when it is meant for this process (WATCHDOG_PID)."""
    # WATCHDOG_USEC=30000000  WATCHDOG_PID=1234
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000
