"""The verdict: the one open finding that best explains why backups fail (docs/verdict.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Optional

from waagent_doctor.model import Finding

Pred = Callable[[Finding, Finding], bool]

_GOAL_STATE_WORDS = ("goal state", "goalstate", "attempts made")


def _text(f: Finding) -> str:
    return " ".join(f"{e.source} {e.detail}" for e in f.evidence).lower()


def always(cause: Finding, effect: Finding) -> bool:
    """The cause alone makes the consequence certain (e.g. Extensions.Enabled=n)."""
    return True


def goal_state_fetch_failed(cause: Finding, effect: Finding) -> bool:
    """The agent's log shows a failed goal-state fetch, in the cause's or the effect's evidence."""
    return any(w in _text(cause) or w in _text(effect) for w in _GOAL_STATE_WORDS)


@dataclass(frozen=True)
class Edge:
    cause: str
    effect: str
    holds: Pred
    why: str


_NET_ROOTS = ("network.wireserver.unreachable", "network.firewall.blocked")
_AGENT_DOWN = (
    "agent.not_running",
    "agent.hung",
    "agent.exthandler.not_running",
    "agent.disabled_by_file",
    "agent.crash_loop",
)

EDGES: tuple[Edge, ...] = (
    *(
        Edge(r, e, goal_state_fetch_failed, "the agent cannot fetch the goal state")
        for r in _NET_ROOTS
        for e in ("extension.vmsnapshot.stuck", "agent.crash_loop", "backup.repeated_failures")
    ),
    Edge("network.firewall.blocked", "network.wireserver.unreachable", always, "the rule drops it"),
    Edge(
        "network.firewall.blocked", "network.hostgaplugin.unreachable", always, "the rule drops it"
    ),
    Edge(
        "network.wireserver.unreachable",
        "network.hostgaplugin.unreachable",
        always,
        "same endpoint address",
    ),
    *(
        Edge(a, "extension.vmsnapshot.stuck", always, "no exthandler runs the extension")
        for a in _AGENT_DOWN
    ),
    Edge("agent.extensions.disabled", "extension.vmsnapshot.not_installed", always, "never runs"),
    Edge("agent.extensions.disabled", "extension.vmsnapshot.stuck", always, "never runs"),
    *(
        Edge(r, e, always, "a loaded VM freezes late or not at all")
        for r in ("resources.cpu.high", "resources.memory.high")
        for e in ("snapshot.freeze.failed", "snapshot.command_too_late")
    ),
    *(
        Edge(r, "backup.repeated_failures", always, "every snapshot upload fails")
        for r in ("network.storage.unreachable", "network.storage.proxy_bypassed")
    ),
    *(
        Edge(r, "backup.repeated_failures", always, "every backup run fails the same way")
        for r in (
            "snapshot.freeze.failed",
            "snapshot.command_too_late",
            "extension.vmsnapshot.failed",
        )
    ),
)


@dataclass(frozen=True)
class Verdict:
    cause: int
    code: str
    summary: str
    explains: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "cause": self.cause,
            "code": self.code,
            "summary": self.summary,
            "explains": list(self.explains),
        }


def _explained(root: Finding, by_code: dict[str, Finding], seen: set[str]) -> list[str]:
    out: list[str] = []
    for edge in EDGES:
        if edge.cause != root.code or edge.effect not in by_code or edge.effect in seen:
            continue
        effect = by_code[edge.effect]
        if edge.holds(root, effect):
            seen.add(edge.effect)
            out.append(edge.effect)
            out.extend(_explained(effect, by_code, seen))
    return out


def compute(findings: Sequence[Finding]) -> Optional[Verdict]:
    """None when no finding is above info; else the most upstream explaining finding."""
    open_ = [f for f in findings if f.severity.rank > 0]
    if not open_:
        return None
    by_code = {f.code: f for f in open_}
    explains = {f.code: _explained(f, by_code, {f.code}) for f in open_}
    explained_by_other = {c for root, cs in explains.items() for c in cs if c != root}

    def key(f: Finding) -> tuple[int, int, int, int, str]:
        return (
            -f.severity.rank,
            1 if f.code in explained_by_other else 0,
            -len(explains[f.code]),
            f.cause if f.cause else 9,
            f.code,
        )

    root = min(open_, key=key)
    summary = f"Backups fail because: {root.title}."
    if explains[root.code]:
        summary += " This likely also explains " + ", ".join(explains[root.code]) + "."
    return Verdict(root.cause, root.code, summary, tuple(explains[root.code]))
