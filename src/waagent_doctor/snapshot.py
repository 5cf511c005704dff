"""Everything observed in one cycle, probe by probe, each run at most once.

A probe is a function `(host, settings) -> value`. Checks ask the snapshot for the probes they
need; a probe that fails is recorded (its exception kept) and raised again to every check that
asks, so one broken file never stops the other checks.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from waagent_doctor.config import Settings
from waagent_doctor.host import Host

T = TypeVar("T")
Probe = Callable[[Host, Settings], T]


class Snapshot:
    """Memoized probe results of one cycle."""

    def __init__(self, host: Host, settings: Settings) -> None:
        self.host = host
        self.settings = settings
        self._values: dict[Callable[..., Any], Any] = {}
        self._errors: dict[Callable[..., Any], BaseException] = {}

    def get(self, probe: Callable[[Host, Settings], T]) -> T:
        """The probe's value, observed on first use; its exception again if it failed."""
        if probe in self._values:
            return self._values[probe]  # type: ignore[no-any-return]
        if probe in self._errors:
            raise self._errors[probe]
        try:
            value = probe(self.host, self.settings)
        except Exception as exc:
            self._errors[probe] = exc
            raise
        self._values[probe] = value
        return value

    def prime(self, probe: Callable[[Host, Settings], T], value: T) -> None:
        """Record a value observed elsewhere (the daemon's pidfd wait, a test)."""
        self._values[probe] = value
