"""enable_verbose_logging: Logs.Verbose=y in /etc/waagent.conf, reverted on its own later.

The edit keeps every other byte of the file (comments, order, inline comments, quotes), its
permissions and its owner, and replaces the file atomically: a reader (or a doctor killed
mid-way) sees the old file or the new one, never a mix. The original value is recorded so
the revert puts it back, unless the operator changed the key in the meantime.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, Optional

from waagent_doctor.actions import ActionEnv, Outcome
from waagent_doctor.actions.restart_agent import current, restart
from waagent_doctor.paths import WAAGENT_CONF, InputError, Root
from waagent_doctor.probes import waagent_conf
from waagent_doctor.state import VerboseLogging, write_atomic

KEY = "Logs.Verbose"
ON = "y"
MAX_CONF_BYTES = 1024 * 1024
# `Logs.Verbose = "n"  # comment` -> ('Logs.Verbose ', ' "', 'n', '"  ', '# comment')
_VALUE = re.compile(r'([ \t"]*)(.*?)([ \t\r"]*)$', re.DOTALL)


class EditError(Exception):
    """The file could not be read or written; the message says why."""


def _read(root: Root, guest: str) -> tuple[str, os.stat_result, str]:
    """The file's text (bytes kept exactly), its stat, and the host path to replace."""
    try:
        raw = root.read_bytes(guest, MAX_CONF_BYTES)
    except InputError as exc:
        raise EditError(f"{guest}: {exc.reason}") from None
    host = os.path.realpath(root.path(guest))
    try:
        st = Path(host).stat()
    except OSError as exc:
        raise EditError(f"{guest}: {exc.strerror or exc}") from None
    return raw.decode("utf-8", "surrogateescape"), st, host


def _write(host: str, text: str, st: os.stat_result) -> None:
    try:
        write_atomic(
            host,
            text.encode("utf-8", "surrogateescape"),
            mode=st.st_mode & 0o7777,
            owner=(st.st_uid, st.st_gid),
        )
    except OSError as exc:
        raise EditError(f"{host}: {exc.strerror or exc}") from None


def _core(line: str) -> str:
    """The value token of a `Key=value # comment` line."""
    rest = line.partition("=")[2].partition("#")[0]
    m = _VALUE.match(rest)
    return m.group(2) if m else rest


def set_line_value(line: str, value: str) -> str:
    """Replace the value token of `Key=value # comment`, keeping spaces, quotes, comment."""
    left, _, rest = line.partition("=")
    body, sharp, comment = rest.partition("#")
    m = _VALUE.match(body)
    lead, trail = (m.group(1), m.group(3)) if m else ("", "")
    return f"{left}={lead}{value}{trail}{sharp}{comment}"


def set_key(text: str, key: str, value: str) -> tuple[str, Optional[str], Optional[str]]:
    """The text with key=value; the key's original effective value and line (None if absent)."""
    conf = waagent_conf.parse(text)
    found = conf.values.get(key)
    lines = text.split("\n")
    if found is None:
        # Appended as a new last line that the revert can take out again to the byte: after
        # a "\n", and ending with a newline (of the file's kind) only if the file's last line
        # did: "A=1" -> "A=1\nLogs.Verbose=y"; "A=1\r\n" -> "A=1\r\nLogs.Verbose=y\r\n".
        if text == "":
            return f"{key}={value}\n", None, None
        if not text.endswith("\n"):
            return f"{text}\n{key}={value}", None, None
        newline = "\r\n" if text.endswith("\r\n") else "\n"
        return f"{text}{key}={value}{newline}", None, None
    original_line = lines[found.line - 1]
    lines[found.line - 1] = set_line_value(original_line, value)
    return "\n".join(lines), found.value if found.value is not None else "None", original_line


def _record(
    phase: Literal["pending", "applied"],
    guest: str,
    original: tuple[Optional[str], Optional[str]],
    *,
    now: float,
    hours: float,
    code: str,
) -> VerboseLogging:
    """The record of an edit: the key's original value and line, and when it reverts."""
    return VerboseLogging(
        phase=phase,
        path=guest,
        original=original[0],
        original_line=original[1],
        value=ON,
        applied_at=now,
        revert_after=now + hours * 3600.0,
        code=code,
    )


def enable(
    root: Root, *, now: float, hours: float, code: str = "", guest: str = WAAGENT_CONF
) -> VerboseLogging:
    """Set Logs.Verbose=y and return the applied record; EditError when it did not take."""
    text, st, host = _read(root, guest)
    new_text, original, original_line = set_key(text, KEY, ON)
    if new_text != text:
        _write(host, new_text, st)
    check_text, _, _ = _read(root, guest)
    if waagent_conf.parse(check_text).switch(KEY) is not True:
        raise EditError(f"{guest}: {KEY} is not y after the edit")
    return _record("applied", guest, (original, original_line), now=now, hours=hours, code=code)


def plan(
    root: Root, *, now: float, hours: float, code: str, guest: str = WAAGENT_CONF
) -> VerboseLogging:
    """The record of the edit about to be made (phase pending), saved before the edit."""
    text, _, _ = _read(root, guest)
    _, original, original_line = set_key(text, KEY, ON)
    return _record("pending", guest, (original, original_line), now=now, hours=hours, code=code)


def reconcile(root: Root, record: VerboseLogging) -> Optional[VerboseLogging]:
    """After a restart: a pending record whose edit landed is applied; one that did not, gone."""
    if record.phase == "applied":
        return record
    try:
        text, _, _ = _read(root, record.path)
    except EditError:
        return None
    current_value = waagent_conf.parse(text).values.get(record.key)
    if current_value is not None and (current_value.value or "").lower() == record.value:
        return record.model_copy(update={"phase": "applied"})
    return None


def revert(root: Root, record: VerboseLogging) -> str:
    """Put the original value back, unless the operator changed the key since; say which."""
    text, st, host = _read(root, record.path)
    conf = waagent_conf.parse(text)
    found = conf.values.get(record.key)
    if found is None or found.value is None or found.value.lower() != record.value:
        now_value = "absent" if found is None else found.value
        return f"kept the operator's value ({record.key} is {now_value}, not {record.value})"
    lines = text.split("\n")
    if record.original_line is None:
        del lines[found.line - 1]
        what = f"removed {record.key}={record.value} (the key was absent)"
    else:
        lines[found.line - 1] = set_line_value(lines[found.line - 1], _core(record.original_line))
        what = f"restored {record.key}={record.original}"
    _write(host, "\n".join(lines), st)
    return what


def apply(env: ActionEnv) -> Outcome:
    """Record the plan, edit waagent.conf, verify it, then restart a running agent to apply it."""
    root = env.host.root
    now = env.host.as_of.timestamp()
    hours = env.settings.actions.verbose_logging_hours
    try:
        env.state.verbose_logging = plan(root, now=now, hours=hours, code=env.code)
        env.persist()
        record = enable(root, now=now, hours=hours, code=env.code)
    except EditError as exc:
        env.state.verbose_logging = None
        env.persist()
        return Outcome(False, str(exc))
    env.state.verbose_logging = record
    env.persist()
    before = current(env.runner, env.unit)
    if before is None or not before.active:
        state = "not running" if before is None else before.active_state
        return Outcome(
            True,
            f"{KEY}=y in {record.path} (was {record.original or 'unset'}); the agent is "
            f"{state}: it applies at its next start",
            verbose=record,
        )
    restarted = restart(env, "try-restart")
    detail = f"{KEY}=y in {record.path} (was {record.original or 'unset'}); {restarted.detail}"
    # The file changed (the action's effect); a failed restart is reported in the detail.
    return Outcome(True, detail, verbose=record)


def revert_and_apply(env: ActionEnv, record: VerboseLogging) -> str:
    """Revert the edit and restart a running agent so that it takes effect; what was done."""
    what = revert(env.host.root, record)
    if what.startswith("kept"):
        return what
    before = current(env.runner, env.unit)
    if before is not None and before.active:
        what += "; " + restart(env, "try-restart").detail
    return what
