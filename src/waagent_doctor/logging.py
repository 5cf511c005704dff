"""structlog setup: the journal (native fields) under systemd, the console otherwise.

Events are names with fields (`log.info("action.applied", action=...)`). In the journal an
UPPER_CASE field is sent as is (MESSAGE_ID, WAAGENT_DOCTOR_CODE...), any other field as
WAAGENT_DOCTOR_<NAME>, and every entry carries SYSLOG_IDENTIFIER=waagent-doctor and PRIORITY.
"""

from __future__ import annotations

import importlib
import logging as stdlib_logging
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Callable, Optional

import structlog

IDENTIFIER = "waagent-doctor"
FIELD_PREFIX = "WAAGENT_DOCTOR_"
# syslog(3) priorities by structlog level name.
PRIORITIES = {"debug": 7, "info": 6, "notice": 5, "warning": 4, "error": 3, "critical": 2}
_FIELD_OK = re.compile(r"[^A-Z0-9_]")
# Longest field value sent to the journal (a stray traceback must not flood it).
MAX_FIELD = 16 * 1024

Sender = Callable[..., Any]


def under_systemd(environ: Optional[Mapping[str, str]] = None) -> bool:
    """True when started by systemd with the journal at hand (JOURNAL_STREAM/INVOCATION_ID)."""
    env = os.environ if environ is None else environ
    return bool(env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"))


def journal_sender() -> Optional[Sender]:
    """systemd.journal.send from python-systemd, when it can be imported."""
    try:
        module = importlib.import_module("systemd.journal")
    except ImportError:
        return None
    send: Optional[Sender] = getattr(module, "send", None)
    return send


def field_name(key: str) -> str:
    """`MESSAGE_ID` stays; `unit` -> WAAGENT_DOCTOR_UNIT; odd characters become `_`."""
    if key.isupper() or key.startswith(FIELD_PREFIX):
        return _FIELD_OK.sub("_", key)
    return FIELD_PREFIX + _FIELD_OK.sub("_", key.upper())


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= MAX_FIELD else text[: MAX_FIELD - 3] + "..."


def journal_fields(event_dict: Mapping[str, Any], level: str) -> dict[str, str]:
    """The journal fields of one event (pure; the renderer sends them)."""
    data = dict(event_dict)
    event = str(data.pop("event", ""))
    message = data.pop("message", None)
    priority = data.pop("priority", None)
    data.pop("level", None)
    data.pop("timestamp", None)
    data.pop("logger", None)
    fields: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        fields[field_name(key)] = _text(value)
    fields.setdefault(FIELD_PREFIX + "EVENT", event)
    if message is None:
        extras = " ".join(f"{k}={v}" for k, v in data.items() if v is not None and not k.isupper())
        message = f"{event} {extras}".strip()
    fields["MESSAGE"] = _text(message)
    fields["PRIORITY"] = str(priority if isinstance(priority, int) else PRIORITIES.get(level, 6))
    fields["SYSLOG_IDENTIFIER"] = IDENTIFIER
    return fields


class JournalRenderer:
    """Last processor: send the event to the journal and drop it from the chain."""

    def __init__(self, send: Sender) -> None:
        self.send = send

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        level = str(event_dict.get("level", method_name))
        fields = journal_fields(event_dict, level)
        message = fields.pop("MESSAGE")
        try:
            self.send(message, **fields)
        except (OSError, ValueError):
            pass
        raise structlog.DropEvent


def _console_priority(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # The journal's priority field means nothing on a console.
    event_dict.pop("priority", None)
    return event_dict


def configure(
    *,
    journal: Optional[bool] = None,
    level: str = "info",
    send: Optional[Sender] = None,
) -> str:
    """Configure structlog; 'journal' or 'console', whichever was chosen.

    journal=None chooses the journal when under systemd and python-systemd imports.
    """
    sender = send
    if sender is None and journal is not False and (journal or under_systemd()):
        sender = journal_sender()
    min_level = getattr(stdlib_logging, level.upper(), stdlib_logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.format_exc_info,
    ]
    if sender is not None:
        processors = [*shared, JournalRenderer(sender)]
        chosen = "journal"
    else:
        processors = [
            *shared,
            _console_priority,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ]
        chosen = "console"
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(min_level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    return chosen
