"""Read the agent log (/var/log/waagent.log and its rotations) into typed records, from the end.

Cost does not grow with the log: the live log is read backwards in 64 KiB blocks and reading
stops at the first agent record older than the look-back window; older rotations are opened
only while the window still reaches into them (a rotation last written before the window
starts is skipped by its mtime; a .gz is streamed forward, its blocks before the window only
counted). Lines are capped at 64 KiB, records at 16 KiB of text, and the window at 10,000
records / 4 MiB of text (the newest are kept; VERBOSE records are left out). A line longer
than 1 MiB (a sparse hole, a run of NULs) or 4 MiB without a record start (binary junk) ends
the scan of that file; 64 MiB is the most read (or decompressed) from one file.

Evidence names the guest path and a line number when it is cheap to know: reading backwards,
lines are numbered only when the part of the file before the oldest line read is at most
8 MiB (counting its newlines is then bounded); otherwise the source is a byte offset,
`/var/log/waagent.log@offset 12345`. Lines of a .gz rotation are always numbered (it is read
forward), counting lines of the decompressed text.

Times: agent 2.2.47+ writes UTC with a `Z`; older agents and extensions wrote the VM's local
time without a zone. Those are taken as UTC (the Azure images' default time zone).
"""

from __future__ import annotations

import bisect
import gzip
import os
import re
import sys
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import BinaryIO, Callable, Optional, Protocol

from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.paths import AGENT_LOG, LOG_DIR, InputError, Root

BLOCK = 64 * 1024
GZ_BLOCK = 256 * 1024  # decompressed bytes per step of a .gz rotation
MAX_LINE = 64 * 1024  # bytes of one line kept; the rest of a longer line is dropped
MAX_LINE_SCAN = 1024 * 1024  # reading backwards, a longer line ends the scan of the file
JUNK_RUN = 4 * 1024 * 1024  # this many bytes without a record start end the scan of a file
MAX_RECORD_TEXT = 16 * 1024  # characters of one record (first line and continuation lines)
MAX_RECORDS = 10_000  # records kept in one window (the newest)
MAX_TEXT = 4 * 1024 * 1024  # characters kept in one window (the newest)
MAX_SCAN_BYTES = 64 * 1024 * 1024  # bytes read (or decompressed) per file, at most
LINE_COUNT_MAX = 8 * 1024 * 1024  # count lines only when the unread head is at most this
TAIL_SCAN = 1024 * 1024  # newest_record_time looks at most this far back in one file

# 2019-11-27T22:22:48.123985Z ...   (agent 2.2.46 and later, UTC)
# 2021/03/30 19:35:35.971742 ...    (older agents, and extensions without fraction)
_HEAD = re.compile(
    r"(\d{4})([-/])(\d{2})[-/](\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z?)(?: |$)"
)
# Regexes after tests_e2e/tests/lib/agent_log.py of the agent, applied to what follows the time.
# newer: "VERBOSE ExtHandler ExtHandler Report vm agent status"
_NEWER = re.compile(
    r"(VERBOSE|INFO|WARNING|ERROR) (\S+) (Daemon|ExtHandler|LogCollector|Firewall|\[\S+\])"
    r"(?: (.*))?$",
    re.DOTALL,
)
# 2.2.46: "INFO ExtHandler Wire server endpoint:168.63.129.16"; older (slash time):
# "INFO Daemon Azure Linux Agent Version:2.2.45", "INFO [Microsoft.X-1.0] Target handler state"
_NO_THREAD = re.compile(
    r"(VERBOSE|INFO|WARNING|ERROR) (Daemon|ExtHandler|\[\S+\])(?: (.*))?$", re.DOTALL
)
# oldest: "WARNING Disabling guest agent in accordance with ovf-env.xml"
_LEVEL_ONLY = re.compile(r"(VERBOSE|INFO|WARNING|ERROR)(?: (.*))?$", re.DOTALL)
# extension: "[Microsoft.Azure.Monitor.AzureMonitorLinuxAgent-1.7.0] cwd is /var/lib/waagent/..."
_EXTENSION = re.compile(r"(?:(\[[^\]]+\]) )?(.*)$", re.DOTALL)

# The date of a record start, in bytes: "2025-01-01T..." or "2025/01/01 ..."
_DATE_B = re.compile(rb"(\d{4})[-/](\d{2})[-/](\d{2})[T ]\d{2}:\d{2}:\d{2}")

# waagent.log.1, waagent.log.2.gz
_NUMBERED = re.compile(r"waagent\.log\.(\d+)(\.gz)?$")
# waagent.log-2025-01-01-1735689600.gz (the agent's dateformat), waagent.log-20250101[.gz]
_DATEEXT = re.compile(r"waagent\.log-(\d{4})-?(\d{2})-?(\d{2})(?:-(\d+))?(\.gz)?$")


# -- records ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogRecord:
    """One record of the agent log: a timestamped line and its continuation lines."""

    __slots__ = ("level", "line", "message", "offset", "path", "prefix", "thread", "when")

    when: datetime  # UTC
    level: str  # VERBOSE, INFO, WARNING, ERROR; "" for an extension's own line
    thread: str  # "" in formats older than 2.2.47
    prefix: str  # Daemon, ExtHandler, LogCollector, [Publisher.Type-ver] or ""
    message: str  # the first line's message, then continuation lines after "\n"
    path: str  # guest path of the file it was read from
    offset: int  # byte offset of its first line (of the decompressed text for .gz)
    line: Optional[int]  # 1-based line number, when known

    @property
    def source(self) -> str:
        """Evidence source: /var/log/waagent.log:812, or /var/log/waagent.log@offset 12345."""
        if self.line is not None:
            return f"{self.path}:{self.line}"
        return f"{self.path}@offset {self.offset}"

    @property
    def headline(self) -> str:
        """The message's first line."""
        return self.message.split("\n", 1)[0]

    @property
    def is_agent(self) -> bool:
        """True for a line the agent wrote (it has a level); False for an extension's line."""
        return self.level != ""

    def excerpt(self, limit: int = 300) -> str:
        """The record as one printable line, cut at limit characters (evidence detail)."""
        head = " ".join(p for p in (self.level, self.thread, self.prefix) if p)
        text = f"{self.when.strftime('%Y-%m-%dT%H:%M:%S.%fZ')} {head} {self.message}"
        text = _UNPRINTABLE.sub(" ", text.replace("\n", " | ").replace("\x00", ""))
        return text if len(text) <= limit else text[: limit - 3] + "..."


_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# (when, level, thread, prefix, message) of a record's first line
_Head = tuple[datetime, str, str, str, str]


def parse_head(text: str) -> Optional[_Head]:
    """Parse a record's first line: (when, level, thread, prefix, message); None if not one."""
    m = _HEAD.match(text)
    if m is None:
        return None
    y, sep, mo, d, h, mi, s, frac, zulu = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        when = datetime(
            int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=timezone.utc
        )
    except ValueError:
        return None
    rest = text[m.end() :]
    if sep == "-" and zulu:
        n = _NEWER.match(rest)
        if n is not None:
            return when, n.group(1), n.group(2), n.group(3), n.group(4) or ""
    n = _NO_THREAD.match(rest)
    if n is not None:
        return when, n.group(1), "", n.group(2), n.group(3) or ""
    n = _LEVEL_ONLY.match(rest)
    if n is not None:
        return when, n.group(1), "", "", n.group(2) or ""
    e = _EXTENSION.match(rest)
    prefix, message = (e.group(1) or "", e.group(2)) if e is not None else ("", rest)
    return when, "", "", prefix, message


def _decode(raw: bytes) -> str:
    # Lines after an unclean shutdown often start with a run of NULs.
    return raw.lstrip(b"\x00").rstrip(b"\r").decode("utf-8", "replace")


def _join(head: str, tail: list[str]) -> str:
    text = "\n".join([head, *tail]) if tail else head
    return text if len(text) <= MAX_RECORD_TEXT else text[:MAX_RECORD_TEXT]


def parse_bytes(data: bytes, path: str = AGENT_LOG) -> list[LogRecord]:
    """Parse a whole (small) log text forward into records; lines without a time continue one."""
    records: list[LogRecord] = []
    for lines, head, offset, lineno in _group_forward(_lines_of(data)):
        records.append(_record(head, lines, path, offset, lineno))
    return records


def _lines_of(data: bytes) -> Iterator[tuple[int, bytes]]:
    offset = 0
    for raw in data.split(b"\n"):
        yield offset, raw[:MAX_LINE]
        offset += len(raw) + 1


def _record(
    head: _Head,
    tail: list[str],
    path: str,
    offset: int,
    line: Optional[int],
) -> LogRecord:
    when, level, thread, prefix, message = head
    return LogRecord(
        when=when,
        level=sys.intern(level),
        thread=sys.intern(thread),
        prefix=sys.intern(prefix),
        message=_join(message, tail),
        path=path,
        offset=offset,
        line=line,
    )


def _group_forward(
    lines: Iterator[tuple[int, Optional[bytes]]],
) -> Iterator[tuple[list[str], _Head, int, int]]:
    """Group forward lines into (continuation lines, head, offset, line number) per record.

    A line given as None belongs to a record the caller skips: it ends the current record.
    """
    cur: Optional[_Head] = None
    cur_off = 0
    cur_line = 0
    tail: list[str] = []
    size = 0
    lineno = 0
    for offset, raw in lines:
        lineno += 1
        if raw is None:
            if cur is not None:
                yield _trim_tail(tail), cur, cur_off, cur_line
            cur = None
            continue
        text = _decode(raw)
        head = parse_head(text) if text[:1].isdigit() else None
        if head is None:
            if cur is not None and size < MAX_RECORD_TEXT:
                tail.append(text)
                size += len(text) + 1
            continue
        if cur is not None:
            yield _trim_tail(tail), cur, cur_off, cur_line
        cur, cur_off, cur_line, tail, size = head, offset, lineno, [], len(head[4])
    if cur is not None:
        yield _trim_tail(tail), cur, cur_off, cur_line


def _trim_tail(tail: list[str]) -> list[str]:
    # A file ending in "\n" yields one empty last piece; it is not part of the record.
    while tail and tail[-1] == "":
        tail.pop()
    return tail


# -- reading a file backwards ----------------------------------------------------------------------
class _Seekable(Protocol):
    """What the backward reader needs of a file: an open guest file or _Blocks."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def read(self, size: int = -1, /) -> bytes: ...


class _Blocks:
    """Consecutive byte blocks read like one file (the kept tail of a .gz, never joined)."""

    def __init__(self, blocks: list[bytes]) -> None:
        self.blocks = blocks
        self.starts: list[int] = []
        total = 0
        for b in blocks:
            self.starts.append(total)
            total += len(b)
        self.size = total
        self.pos = 0

    def seek(self, offset: int, whence: int = 0, /) -> int:
        self.pos = offset
        return offset

    def read(self, size: int = -1, /) -> bytes:
        end = self.size if size < 0 else min(self.size, self.pos + size)
        parts = []
        i = max(bisect.bisect_right(self.starts, self.pos) - 1, 0)
        while self.pos < end and i < len(self.blocks):
            block, base = self.blocks[i], self.starts[i]
            piece = block[self.pos - base : end - base]
            parts.append(piece)
            self.pos += len(piece)
            i += 1
        return b"".join(parts)


class _ScanStop(Exception):
    """The backward scan met a line longer than MAX_LINE_SCAN: the rest is not a log."""


def _lines_backward(fh: _Seekable, size: int, budget: int) -> Iterator[tuple[int, bytes]]:
    """Yield (offset, line) from the last line to the first, each cut at MAX_LINE bytes.

    Leading NULs of a line are dropped before it is cut: after an unclean shutdown the agent
    goes on writing right after a run of NULs (or a sparse hole), and the record there must
    not be lost. A line longer than MAX_LINE_SCAN, or reading more than budget bytes, yields
    what is known of the current line and then raises _ScanStop.
    """
    pos = size
    carry = b""  # the line that starts at or before pos, leading NULs dropped, cut at MAX_LINE
    carry_len = 0  # the true length of that line so far
    first = True
    read = 0
    while pos > 0:
        n = min(BLOCK, pos)
        pos -= n
        fh.seek(pos)
        chunk = fh.read(n)
        read += n
        if len(chunk) != n:  # the file shrank under us
            return
        cut = chunk.rfind(b"\n")
        if cut < 0:
            carry = (chunk + carry).lstrip(b"\x00")[:MAX_LINE]
            carry_len += n
            if carry_len > MAX_LINE_SCAN or read > budget:
                yield pos, carry
                raise _ScanStop
            continue
        # The bytes after the last newline of this chunk begin the carried line.
        line = (chunk[cut + 1 :] + carry).lstrip(b"\x00")[:MAX_LINE]
        if not (first and carry_len + n - cut - 1 == 0):
            yield pos + cut + 1, line
        first = False
        parts = chunk[:cut].split(b"\n")
        off = pos + cut
        for part in reversed(parts[1:]):
            off -= len(part)
            yield off, part.lstrip(b"\x00")[:MAX_LINE]
            off -= 1
        carry = parts[0].lstrip(b"\x00")[:MAX_LINE]
        carry_len = len(parts[0])
        if read > budget:
            raise _ScanStop
    if carry_len or not first:
        yield 0, carry


@dataclass
class _Budget:
    """What one window may still keep."""

    records: int = MAX_RECORDS
    text: int = MAX_TEXT

    def take(self, text: int) -> bool:
        """Count one record of `text` characters; False when it no longer fits."""
        if self.records < 1 or self.text < text:
            return False
        self.records -= 1
        self.text -= text
        return True


@dataclass
class _FileResult:
    records: list[LogRecord] = field(default_factory=list)  # oldest first
    older_seen: bool = False  # an agent record older than the window was met: stop here
    capped: bool = False  # the window caps dropped older records: stop here
    bytes_read: int = 0
    note: str = ""


def _count_newlines(fh: _Seekable, end: int) -> int:
    fh.seek(0)
    left = end
    count = 0
    while left > 0:
        chunk = fh.read(min(1024 * 1024, left))
        if not chunk:
            break
        count += chunk.count(b"\n")
        left -= len(chunk)
    return count


def _scan_backward(
    fh: _Seekable,
    path: str,
    size: int,
    start: datetime,
    end: datetime,
    budget: _Budget,
    keep_verbose: bool,
    base: tuple[int, int] = (0, 0),
) -> _FileResult:
    """Records of one plain file inside [start, end], reading from its end.

    base: (byte offset, lines) that come before fh's text (a .gz's skipped part).
    """
    out = _FileResult()
    # (head, continuation lines, offset, index of its first line counted from the end)
    found: list[tuple[_Head, list[str], int, int]] = []
    # Continuation lines (newest first) of a record not yet met; past the record cap the newest
    # are dropped, so the lines right after the record's first line are the ones kept.
    pending: deque[str] = deque()
    pending_size = 0
    k = 0  # lines seen, from the end
    lo = size  # offset of the oldest line seen
    since_head = 0  # bytes since the last record start
    try:
        for offset, line in _lines_backward(fh, size, MAX_SCAN_BYTES):
            k += 1
            since_head += lo - offset
            lo = offset
            text = _decode(line)
            head = parse_head(text) if text[:1].isdigit() else None
            if head is None:
                pending.append(text)
                pending_size += len(text) + 1
                while pending_size > MAX_RECORD_TEXT and len(pending) > 1:
                    pending_size -= len(pending.popleft()) + 1
                if since_head > JUNK_RUN:
                    out.note = "stopped at a long run without records"
                    break
                continue
            since_head = 0
            tail = _trim_tail(list(reversed(pending)))
            pending.clear()
            pending_size = 0
            when = head[0]
            if when < start:
                if head[1]:  # an agent record older than the window: done
                    out.older_seen = True
                    break
                continue
            if when > end or (head[1] == "VERBOSE" and not keep_verbose):
                continue
            if not budget.take(len(head[4]) + sum(len(t) + 1 for t in tail)):
                out.note = "window cap reached; older records not read"
                out.capped = True
                break
            found.append((head, tail, offset, k))
    except _ScanStop:
        out.note = "stopped at an over-long line or the byte cap"
    out.bytes_read = size - lo
    before = _count_newlines(fh, lo) if lo <= LINE_COUNT_MAX else None
    for head, tail, offset, idx in reversed(found):
        line_no = None if before is None else base[1] + before + 1 + (k - idx)
        out.records.append(_record(head, tail, path, base[0] + offset, line_no))
    return out


# -- reading a .gz rotation forward ---------------------------------------------------------------
def _record_date(raw: bytes) -> Optional[bytes]:
    """b"YYYY-MM-DD" when raw starts a record, else None."""
    m = _DATE_B.match(raw)
    return None if m is None else m.group(1) + b"-" + m.group(2) + b"-" + m.group(3)


def _gzip_blocks(read: Callable[[int], bytes], limit: int) -> Iterator[bytes]:
    """Decompressed text in blocks that end on a line end (the last one may not).

    A stream that breaks off (a truncated or corrupt .gz) still yields what was decompressed
    before the error, then raises it.
    """
    carry = b""
    total = 0
    pending: list[bytes] = []
    pending_size = 0
    failure: Optional[BaseException] = None
    while total < limit:
        try:
            chunk = read(BLOCK)
        except (OSError, EOFError, zlib.error) as exc:
            failure = exc
            break
        if not chunk:
            break
        total += len(chunk)
        pending.append(chunk)
        pending_size += len(chunk)
        if pending_size < GZ_BLOCK:
            continue
        data = carry + b"".join(pending)
        pending, pending_size = [], 0
        cut = data.rfind(b"\n")
        if cut < 0:
            # One line longer than the block: keep its head, drop the rest of it.
            carry = data[:MAX_LINE]
            continue
        yield data[: cut + 1]
        carry = data[cut + 1 :]
    rest = carry + b"".join(pending)
    if rest:
        yield rest
    if failure is not None:
        raise failure


def _last_date(block: bytes) -> Optional[bytes]:
    """The date of the last record start within the last 4 KiB of a block."""
    end = len(block) - 1 if block.endswith(b"\n") else len(block)
    floor = max(0, end - 4096)
    while end > floor:
        nl = block.rfind(b"\n", floor, end)
        found = _record_date(block[nl + 1 : end].lstrip(b"\x00"))
        if found is not None:
            return found
        if nl < 0:
            break
        end = nl
    return None


def _scan_gzip(
    fh: BinaryIO,
    path: str,
    start: datetime,
    end: datetime,
    budget: _Budget,
    keep_verbose: bool,
) -> tuple[_FileResult, Optional[InputError]]:
    """Records of a .gz rotation inside [start, end]; memory bounded (the newest are kept).

    The text must be decompressed from its start. Blocks whose last record is dated before
    the window's first day are only counted (newlines). The rest is kept in a ring of at most
    the window's remaining text cap (the newest part), which is then read backwards like a
    plain file, so only what fits the window is parsed.
    """
    first_day = start.strftime("%Y-%m-%d").encode()
    gz = gzip.GzipFile(fileobj=fh, mode="rb")
    consumed = 0
    err: Optional[InputError] = None

    def read(n: int) -> bytes:
        nonlocal consumed
        data = gz.read(n)
        consumed += len(data)
        return data

    ring: deque[bytes] = deque()
    ring_bytes = 0
    cap = max(budget.text, 0) + GZ_BLOCK
    offset = 0  # bytes before the ring
    lines = 0  # lines before the ring
    skipped_old = False
    dropped = False
    try:
        for block in _gzip_blocks(read, MAX_SCAN_BYTES):
            if not ring:
                last = _last_date(block)
                if last is not None and last < first_day:
                    offset += len(block)
                    lines += block.count(b"\n")
                    skipped_old = True
                    continue
            ring.append(block)
            ring_bytes += len(block)
            while ring_bytes - len(ring[0]) >= cap:
                old = ring.popleft()
                ring_bytes -= len(old)
                offset += len(old)
                lines += old.count(b"\n")
                dropped = True
    except (OSError, EOFError, zlib.error) as exc:
        err = InputError(path, f"not a readable gzip file: {exc}")
    text = _Blocks(list(ring))
    ring.clear()
    out = _scan_backward(text, path, text.size, start, end, budget, keep_verbose, (offset, lines))
    out.older_seen = out.older_seen or skipped_old
    if dropped and not out.older_seen:
        out.capped = True
        out.note = "window cap reached; older records not kept"
    if consumed >= MAX_SCAN_BYTES:
        out.note = "stopped at the byte cap"
    out.bytes_read = consumed
    return out, err


# -- the window ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogFile:
    """One log file the scan considered: how much of it was read, and why it stopped."""

    path: str
    size: int
    bytes_read: int
    compressed: bool
    note: str = ""


@dataclass(frozen=True)
class LogWindow:
    """The agent log records inside [start, end], oldest first, and how they were read.

    `present` is False when /var/log/waagent.log does not exist. `errors` holds the files that
    could not be read (a FIFO, a broken .gz); they never hide the other files.
    """

    start: datetime
    end: datetime
    records: tuple[LogRecord, ...]
    files: tuple[LogFile, ...]
    errors: tuple[InputError, ...]
    present: bool
    truncated: bool = False  # the caps kept only the newest records of the window

    @property
    def newest(self) -> Optional[LogRecord]:
        """The newest agent record of the window, or None."""
        for rec in reversed(self.records):
            if rec.is_agent:
                return rec
        return None


def rotations(root: Root) -> list[str]:
    """Guest paths of the rotated agent logs, newest first (by their names).

    dateext names (the agent's own logrotate file) sort before numbered ones: a VM that
    switched schemes kept its numbered files from before.
    """
    keyed: list[tuple[tuple[int, int, int], str]] = []
    for name in root.listdir(LOG_DIR):
        m = _NUMBERED.match(name)
        if m is not None:
            keyed.append(((1, int(m.group(1)), 0), name))
            continue
        d = _DATEEXT.match(name)
        if d is not None:
            day = int(d.group(1) + d.group(2) + d.group(3))
            keyed.append(((0, -day, -int(d.group(4) or 0)), name))
    return [f"{LOG_DIR}/{name}" for _, name in sorted(keyed)]


def read_window(
    root: Root, start: datetime, end: datetime, *, keep_verbose: bool = False
) -> LogWindow:
    """The agent log records inside [start, end], reading no more than the window needs.

    VERBOSE records (what Logs.Verbose=y adds, many per second) are left out unless asked
    for: no check reads them, and they would crowd the window's caps.
    """
    budget = _Budget()
    per_file: list[list[LogRecord]] = []  # newest file first
    files: list[LogFile] = []
    errors: list[InputError] = []
    present = True
    truncated = False
    try:
        paths = [AGENT_LOG, *rotations(root)]
    except InputError as exc:
        errors.append(exc)
        paths = [AGENT_LOG]
    for path in paths:
        compressed = path.endswith(".gz")
        try:
            info = root.stat(path)
            if info is not None and path != AGENT_LOG and info.mtime < start.timestamp():
                # Last written before the window starts: it and every older one hold nothing.
                files.append(LogFile(path, info.size, 0, compressed, "older than the window"))
                break
            with root.open(path) as fh:
                size = os.fstat(fh.fileno()).st_size
                if compressed:
                    res, err = _scan_gzip(fh, path, start, end, budget, keep_verbose)
                    if err is not None:
                        errors.append(err)
                else:
                    res = _scan_backward(fh, path, size, start, end, budget, keep_verbose)
        except InputError as exc:
            if exc.missing and path == AGENT_LOG:
                present = False
            elif not exc.missing:
                errors.append(exc)
            continue
        except OSError as exc:
            errors.append(InputError(path, exc.strerror or str(exc)))
            continue
        per_file.append(res.records)
        files.append(LogFile(path, size, res.bytes_read, compressed, res.note))
        truncated = truncated or res.capped
        if res.older_seen or res.capped:
            break
    records = [rec for recs in reversed(per_file) for rec in recs]
    return LogWindow(
        start=start,
        end=end,
        records=tuple(records),
        files=tuple(files),
        errors=tuple(errors),
        present=present,
        truncated=truncated,
    )


def probe(host: Host, settings: Settings) -> LogWindow:
    """Probe: the agent log records of the look-back window before host.as_of."""
    start = host.as_of - timedelta(hours=settings.thresholds.lookback_hours)
    return read_window(host.root, start, host.as_of)


def newest_record_time(root: Root) -> Optional[datetime]:
    """The time of the newest agent record in /var/log/waagent.log (or its newest rotation).

    Only the tail is read (at most TAIL_SCAN bytes of a plain file). The last agent record
    in file order wins; an extension's line (local time) counts only when there is no other.
    """
    try:
        paths = [AGENT_LOG, *rotations(root)[:1]]
    except InputError:
        paths = [AGENT_LOG]
    for path in paths:
        try:
            with root.open(path) as fh:
                if path.endswith(".gz"):
                    when = _newest_in_gzip(fh)
                else:
                    when = _newest_backward(fh, os.fstat(fh.fileno()).st_size)
        except (InputError, OSError, EOFError, zlib.error):
            continue
        if when is not None:
            return when
    return None


def _newest_backward(fh: BinaryIO, size: int) -> Optional[datetime]:
    fallback: Optional[datetime] = None
    try:
        for offset, line in _lines_backward(fh, size, TAIL_SCAN):
            text = _decode(line)
            head = parse_head(text) if text[:1].isdigit() else None
            if head is not None:
                if head[1]:
                    return head[0]
                fallback = fallback or head[0]
            if size - offset > TAIL_SCAN:
                break
    except _ScanStop:
        pass
    return fallback


def _newest_in_gzip(fh: BinaryIO) -> Optional[datetime]:
    """The newest record time of a .gz: decompress it, then look at its last lines only."""
    gz = gzip.GzipFile(fileobj=fh, mode="rb")
    tail = b""
    try:
        for block in _gzip_blocks(gz.read, MAX_SCAN_BYTES):
            tail = (tail + block)[-2 * GZ_BLOCK :]
    except (OSError, EOFError, zlib.error):
        pass  # a truncated rotation: its readable part still tells
    fallback: Optional[datetime] = None
    for raw in reversed(tail.split(b"\n")):
        text = _decode(raw[:MAX_LINE])
        head = parse_head(text) if text[:1].isdigit() else None
        if head is not None:
            if head[1]:
                return head[0]
            fallback = fallback or head[0]
    return fallback


# -- incremental reading (the daemon) ------------------------------------------------------------
@dataclass(frozen=True)
class LogCursor:
    """Where the daemon stopped reading the agent log: file identity and byte offset.

    `line` counts the lines before `offset` when the file was read from its start, else None.
    A fresh cursor (inode 0) reads the live log from its start. Kept in state.json through
    as_dict()/from_dict().
    """

    dev: int = 0
    inode: int = 0
    offset: int = 0
    line: Optional[int] = 0

    def as_dict(self) -> dict[str, Optional[int]]:
        """The cursor as JSON-ready values."""
        return {"dev": self.dev, "inode": self.inode, "offset": self.offset, "line": self.line}

    @classmethod
    def from_dict(cls, data: object) -> LogCursor:
        """A cursor from state.json; anything malformed gives a fresh cursor."""
        if not isinstance(data, dict):
            return cls()
        vals = [data.get(k) for k in ("dev", "inode", "offset")]
        ints = [v for v in vals if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
        if len(ints) != 3:
            return cls()
        line = data.get("line")
        if isinstance(line, bool) or not (line is None or (isinstance(line, int) and line >= 0)):
            line = None
        return cls(ints[0], ints[1], ints[2], line)


def cursor_at_end(root: Root) -> LogCursor:
    """A cursor at the live log's current end: the next read_new returns only new records."""
    try:
        with root.open(AGENT_LOG) as fh:
            st = os.fstat(fh.fileno())
    except InputError:
        return LogCursor()
    return LogCursor(st.st_dev, st.st_ino, st.st_size, None)


def read_new(
    root: Root,
    cursor: Optional[LogCursor],
    max_bytes: int = 4 * 1024 * 1024,
    *,
    keep_verbose: bool = False,
) -> tuple[tuple[LogRecord, ...], LogCursor]:
    """Records appended to the live log since the cursor, and the cursor after them.

    A cursor of None starts at the current end (nothing is returned). After a rotation the
    rest of the old file is read first while it is still a plain file (waagent.log.1 or a
    dateext name), then the new file from its start; after a truncation (copytruncate) the
    file is read from its start. At most about max_bytes are read per call; when more
    follows, the last record (which may still get continuation lines) waits for the next
    call. VERBOSE records are left out unless keep_verbose (as in read_window). Raises
    InputError when the live log is not a readable regular file.
    """
    if cursor is None:
        return (), cursor_at_end(root)
    try:
        fh = root.open(AGENT_LOG)
    except InputError as exc:
        if exc.missing:
            return (), LogCursor()
        raise
    records: list[LogRecord] = []
    with fh:
        st = os.fstat(fh.fileno())
        budget = max(max_bytes, 1)
        same = (st.st_dev, st.st_ino) == (cursor.dev, cursor.inode)
        if same and cursor.offset <= st.st_size:
            start, line = cursor.offset, cursor.line
        elif same or cursor.inode == 0:
            start, line = 0, 0  # truncated in place, or a fresh cursor
        else:
            old = _rotated_tail(root, cursor, budget)
            if old is not None:
                recs, used, unfinished = old
                records.extend(recs)
                if unfinished is not None:
                    if not keep_verbose:
                        records = [r for r in records if r.level != "VERBOSE"]
                    return tuple(records), unfinished
                budget = max(budget - used, 1)
            start, line = 0, 0
        recs, cur = _read_from(fh, AGENT_LOG, st, start, line, budget)
        records.extend(recs)
    if not keep_verbose:
        records = [r for r in records if r.level != "VERBOSE"]
    return tuple(records), cur


def _rotated_tail(
    root: Root, cursor: LogCursor, budget: int
) -> Optional[tuple[list[LogRecord], int, Optional[LogCursor]]]:
    """Finish the file the cursor was in, if it was renamed to a plain rotation."""
    for path in rotations(root)[:3]:
        if path.endswith(".gz"):
            continue
        try:
            with root.open(path) as fh:
                st = os.fstat(fh.fileno())
                if (st.st_dev, st.st_ino) != (cursor.dev, cursor.inode):
                    continue
                if cursor.offset > st.st_size:
                    return [], 0, None
                recs, cur = _read_from(fh, path, st, cursor.offset, cursor.line, budget)
                done = cur.offset >= st.st_size
                return recs, cur.offset - cursor.offset, None if done else cur
        except InputError:
            continue
    return None


def _read_from(
    fh: BinaryIO,
    path: str,
    st: os.stat_result,
    start: int,
    line: Optional[int],
    max_bytes: int,
) -> tuple[list[LogRecord], LogCursor]:
    """Complete records from start; the cursor lands after the last record returned."""
    fh.seek(start)
    data = fh.read(max_bytes)
    cut = data.rfind(b"\n")
    if cut < 0:
        if len(data) < max_bytes:
            # A line still being written: wait for its newline.
            return [], LogCursor(st.st_dev, st.st_ino, start, line)
        cut = len(data) - 1  # a line longer than max_bytes: consume it
    data = data[: cut + 1]
    more = start + len(data) < st.st_size
    groups = list(_group_forward(_lines_of(data[:-1] if data.endswith(b"\n") else data)))
    consumed = len(data)
    if more and len(groups) > 1:
        # More follows: the last record may still get continuation lines; read it next time.
        consumed = groups.pop()[2]
    records = [
        _record(head, tail, path, start + off, None if line is None else line + ln)
        for tail, head, off, ln in groups
    ]
    new_line = None if line is None else line + data[:consumed].count(b"\n")
    return records, LogCursor(st.st_dev, st.st_ino, start + consumed, new_line)
