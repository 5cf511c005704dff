"""Checks judge a snapshot: one module per check, each registered with `@check`.

A check is `rule(ctx) -> None`: it calls `ctx.raise_(code, evidence)` for each finding and
`ctx.error(...)`/`ctx.unreadable(...)` when an input is at fault. Modules in this package are
imported on first use, so adding a check is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Optional

from waagent_doctor.codes import CODES, Mode
from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.model import Evidence, Finding
from waagent_doctor.paths import InputError
from waagent_doctor.snapshot import Snapshot


@dataclass
class Context:
    """What a check sees and how it answers."""

    snap: Snapshot
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: Optional[str] = None
    unreadable_inputs: list[InputError] = field(default_factory=list)

    @property
    def host(self) -> Host:
        """The host of this cycle."""
        return self.snap.host

    @property
    def settings(self) -> Settings:
        """The configuration of this cycle."""
        return self.snap.settings

    def raise_(self, code: str, evidence: list[Evidence] | tuple[Evidence, ...] = ()) -> None:
        """Raise a finding; live-only codes are refused offline (a programming error)."""
        row = CODES[code]
        if row.mode is Mode.LIVE and not self.host.live:
            raise AssertionError(f"{code} is live-only but was raised offline")
        self.findings.append(Finding.of(code, evidence))

    def error(self, reason: str) -> None:
        """The check could not give a full answer."""
        self.errors.append(reason)

    def unreadable(self, err: InputError) -> None:
        """An input file is at fault: input.unreadable plus a check error naming it."""
        self.unreadable_inputs.append(err)
        self.errors.append(f"{err.guest_path}: {err.reason}")

    def skip(self, reason: str) -> None:
        """The check does not apply here."""
        self.skipped = reason


Rule = Callable[[Context], None]


@dataclass(frozen=True)
class CheckSpec:
    """A registered check."""

    name: str
    rule: Rule
    live_only: bool
    order: int


_REGISTRY: dict[str, CheckSpec] = {}
_loaded = False


def check(name: str, *, live_only: bool = False, order: int = 50) -> Callable[[Rule], Rule]:
    """Register a check under a stable name (the `checks[].name` of the report)."""

    def register(rule: Rule) -> Rule:
        if name in _REGISTRY and _REGISTRY[name].rule is not rule:
            raise ValueError(f"check {name!r} registered twice")
        _REGISTRY[name] = CheckSpec(name, rule, live_only, order)
        return rule

    return register


def all_checks() -> list[CheckSpec]:
    """Every check, in a stable order (order, then name)."""
    global _loaded
    if not _loaded:
        for mod in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{mod.name}")
        _loaded = True
    return sorted(_REGISTRY.values(), key=lambda c: (c.order, c.name))
