"""`waagent-doctor --collect-logs`: a redacted support bundle, streamed into one .tar.gz.

Library entry point for the daemon's `collect_logs` action:

    result = build_bundle(host, settings, output=DOCTOR_BUNDLES, report=report)
    result.path  # the archive: <output>/waagent-doctor-<hostname>-<UTC time>.tar.gz

It raises BundleError (one-line reason) when no archive could be written (no space, output
not writable...) and leaves no partial file behind; anything else that goes wrong (a file,
a command, the diagnosis) is recorded in manifest.json and the bundle is still produced.
"""

from __future__ import annotations

import bz2
import errno
import fnmatch
import json
import lzma
import os
import posixpath
import socket
import stat
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Optional

from waagent_doctor import __version__
from waagent_doctor.bundle import spec
from waagent_doctor.bundle.archive import ArchiveError, TarGzWriter
from waagent_doctor.bundle.redact import StreamRedactor, redact_bytes
from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.model import Report, utc_text
from waagent_doctor.paths import DOCTOR_BUNDLES, InputError, Root

MANIFEST_SCHEMA = "waagent-doctor/bundle-manifest/1"
# The CLI's default output folder: sos's choice too, survives reboots unlike /tmp, and kept
# apart from the daemon's folder whose rotation must not delete an operator's bundle.
CLI_DEFAULT_DIR = "/var/tmp/waagent-doctor"  # noqa: S108 - vetted by _private_dir: ours, 0700
EXIT_FAILED = 3
_MAX_WALK = 20_000
_SPACE_CHECK_EVERY = 4 * spec.MIB


class BundleError(Exception):
    """No bundle could be written; the message is the one-line reason."""


@dataclass(frozen=True)
class BundleResult:
    """What build_bundle wrote."""

    path: str
    archive_bytes: int
    files_taken: int
    files_skipped: int
    files_truncated: int
    redactions: int
    uncompressed_bytes: int
    elapsed_seconds: float
    report_included: bool
    deadline_hit: bool


@dataclass
class _Entry:
    """One manifest row: a file, a zip member or a command, taken or skipped."""

    guest_path: str
    kind: str = "file"
    archive_path: Optional[str] = None
    size: Optional[int] = None
    taken: int = 0
    source_bytes: int = 0
    truncated: bool = False
    reason: str = ""
    redactions: int = 0
    priority: int = spec.P_STATE
    link_target: Optional[str] = None
    skipped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "guest_path": self.guest_path,
            "kind": self.kind,
            "status": "skipped" if self.skipped else ("truncated" if self.truncated else "taken"),
            "archive_path": self.archive_path,
            "size": self.size,
            "bytes_taken": self.taken,
            "source_bytes": self.source_bytes,
            "truncated": self.truncated,
            "reason": self.reason,
            "redactions": self.redactions,
            "priority": self.priority,
        }
        if self.link_target:
            row["link_target"] = self.link_target
        row.update(self.extra)
        return row


@dataclass
class _Item:
    """A planned guest file."""

    guest: str
    real: str
    priority: int
    is_log: bool
    size: int
    mtime: float
    kind: str = "file"  # file | compressed | zip


class _Deadline(Exception):
    """The run's time is up."""


class _Run:
    """State of one bundle build: the writer, the budget, the clock and the manifest."""

    def __init__(
        self,
        host: Host,
        settings: Settings,
        writer: TarGzWriter,
        top: str,
        hostname: str,
        deadline: float,
        progress: Optional[Callable[[str], None]],
        exclude_dir: str,
    ) -> None:
        self.host = host
        self.root = host.root
        self.settings = settings
        self.writer = writer
        self.top = top
        self.hostname = hostname
        self.deadline = deadline
        self.progress = progress
        self.exclude_dir = exclude_dir
        self.max_file = int(settings.bundle.max_file_mib * spec.MIB)
        self.max_total = int(settings.bundle.max_total_mib * spec.MIB)
        self.used = 0
        self.entries: list[_Entry] = []
        self.names: set[str] = set()
        self.skipped: set[str] = set()
        self.deadline_hit = False

    # -- helpers ----------------------------------------------------------------------------
    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            self.deadline_hit = True
            raise _Deadline

    def name_for(self, guest: str) -> str:
        name = f"{self.top}/{guest.lstrip('/')}"
        while name in self.names:
            name += ".dup"
        self.names.add(name)
        return name

    def skip(self, guest: str, reason: str, kind: str = "file", **extra: Any) -> None:
        if guest in self.skipped:
            return
        self.skipped.add(guest)
        e = _Entry(guest_path=guest, kind=kind, skipped=True, reason=reason)
        e.extra.update(extra)
        self.entries.append(e)

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)

    # -- writing ----------------------------------------------------------------------------
    def add_memory(self, name: str, data: bytes, mtime: float) -> tuple[int, int]:
        """Redact and add in-memory content; returns (bytes written, redactions)."""
        out, count = redact_bytes(data)
        self.writer.add_bytes(name, out, int(mtime))
        self.used += len(out)
        return len(out), count

    def add_stream(
        self, name: str, chunks: Iterator[bytes], mtime: float, start: int
    ) -> tuple[int, int, bool]:
        """Redact chunks into a streamed entry; output before `start` is dropped.

        Returns (bytes written, redactions, cut short by the deadline).
        """
        redactor = StreamRedactor(start=start)
        entry = self.writer.open_stream(name, int(mtime))
        late = False
        try:
            for chunk in chunks:
                entry.write(redactor.feed(chunk))
                if time.monotonic() > self.deadline:
                    late = self.deadline_hit = True
                    break
            entry.write(redactor.finish())
        finally:
            entry.close()
        self.used += entry.size
        return entry.size, redactor.count, late

    def take_source(
        self,
        entry: _Entry,
        name: str,
        total: int,
        mtime: float,
        opener: Callable[[int], Iterator[bytes]],
        is_log: bool,
    ) -> None:
        """Take the tail of a source of `total` bytes within the per-file and total caps."""
        self.check_time()
        remaining = self.max_total - self.used
        take = min(total, self.max_file)
        reason = "larger than the per-file cap: tail kept" if take < total else ""
        if take > remaining:
            if is_log and remaining >= spec.MIN_PARTIAL_BYTES:
                take = remaining
                reason = "total cap reached: tail kept"
            else:
                entry.skipped = True
                entry.reason = f"total cap of {self.max_total // spec.MIB} MiB reached"
                self.entries.append(entry)
                return
        offset = total - take
        read_from = max(0, offset - spec.TAIL_PRIME_BYTES) if offset else 0
        entry.archive_path = name
        entry.size = total
        entry.source_bytes = take
        if offset == 0 and take <= spec.SMALL_FILE_BYTES:
            data = b"".join(opener(0))[:total]
            entry.taken, entry.redactions = self.add_memory(name, data, mtime)
            late = False
        else:
            entry.taken, entry.redactions, late = self.add_stream(
                name, opener(read_from), mtime, offset - read_from
            )
        if late:
            reason = "run deadline reached while reading: cut short"
        entry.truncated = bool(reason)
        entry.reason = reason
        self.entries.append(entry)


# -- reading sources ----------------------------------------------------------------------
def _file_chunks(root: Root, guest: str, start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end) of a regular guest file, in chunks."""
    with root.open(guest) as fh:
        fh.seek(start)
        left = end - start
        while left > 0:
            chunk = fh.read(min(spec.CHUNK_BYTES, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def _skip_then(chunks: Iterator[bytes], skip: int, limit: int) -> Iterator[bytes]:
    """Drop the first `skip` bytes, then yield at most `limit` more."""
    for chunk in chunks:
        if skip:
            if len(chunk) <= skip:
                skip -= len(chunk)
                continue
            chunk = chunk[skip:]
            skip = 0
        if len(chunk) >= limit:
            yield chunk[:limit]
            return
        limit -= len(chunk)
        yield chunk


def _inflate(raw: Iterator[bytes], suffix: str) -> Iterator[bytes]:
    """Decompress a .gz/.xz/.bz2 stream (several members too) in bounded pieces."""
    if suffix == ".gz":
        d = zlib.decompressobj(31)
        for data in raw:
            while data:
                out = d.decompress(data, spec.CHUNK_BYTES)
                if out:
                    yield out
                if d.eof:
                    data = d.unused_data
                    d = zlib.decompressobj(31)
                    if data.strip(b"\0") == b"":
                        return
                else:
                    data = d.unconsumed_tail
        return
    make: Callable[[], Any] = lzma.LZMADecompressor if suffix == ".xz" else bz2.BZ2Decompressor
    dx = make()
    for data in raw:
        while True:
            out = dx.decompress(data, spec.CHUNK_BYTES)
            data = b""
            if out:
                yield out
            if dx.eof:
                data = dx.unused_data
                dx = make()
                if not data:
                    break
                continue
            if dx.needs_input:
                break


def _hostname(host: Host) -> str:
    name = ""
    if host.live:
        name = socket.gethostname()
    else:
        try:
            name = host.root.read_text("/etc/hostname", 4096).strip().splitlines()[0]
        except (InputError, IndexError):
            name = ""
    clean = "".join(c for c in name.split(".")[0] if c.isalnum() or c == "-")[:63]
    return clean or "offline"


# -- planning -----------------------------------------------------------------------------
def _walk(root: Root, top: str, run: _Run) -> Iterator[str]:
    """Guest paths below a folder; symlinked folders are not entered."""
    stack = [top]
    seen = 0
    while stack:
        cur = stack.pop()
        try:
            names = root.listdir(cur)
        except InputError as exc:
            run.skip(cur, f"folder not readable: {exc.reason}", kind="dir")
            continue
        for name in reversed(names):
            g = posixpath.join(cur, name)
            seen += 1
            if seen > _MAX_WALK:
                run.skip(top, f"more than {_MAX_WALK} entries: the rest not listed", kind="dir")
                return
            try:
                linked = root.resolve(g) != g
            except InputError:
                linked = True
            if not linked and root.is_dir(g):
                stack.append(g)
            else:
                yield g


def _expand(root: Root, pattern: str, run: _Run) -> Iterator[str]:
    """Guest paths matching a spec pattern (`*` in a component, `**` at the end)."""
    parts = pattern.strip("/").split("/")

    def go(cur: str, i: int) -> Iterator[str]:
        if i == len(parts):
            yield cur
            return
        comp = parts[i]
        if comp == "**":
            yield from _walk(root, cur, run)
            return
        if not any(c in comp for c in "*?["):
            yield from go(posixpath.join(cur, comp), i + 1)
            return
        try:
            names = root.listdir(cur)
        except InputError:
            return
        for name in names:
            if fnmatch.fnmatchcase(name, comp):
                yield from go(posixpath.join(cur, name), i + 1)

    yield from go("/", 0)


def _plan_one(root: Root, guest: str, priority: int, is_log: bool, run: _Run) -> Optional[_Item]:
    """Vet one guest path against the policy; an item to take, or None (recorded if due)."""
    why = spec.denied(guest)
    try:
        real = root.resolve(guest)
    except InputError as exc:
        run.skip(guest, exc.reason)
        return None
    target = real if real != guest else None
    try:
        info = root.stat(guest)
    except InputError as exc:
        run.skip(guest, f"not readable: {exc.reason}")
        return None
    if info is None:
        if target:
            run.skip(guest, f"dangling symbolic link to {real}", link_target=real)
        return None
    why = why or spec.denied(real)
    if why:
        run.skip(guest, why)
        return None
    if info.is_dir:
        return None
    if target and not spec.allowed(real):
        run.skip(guest, "symbolic link out of the collected paths: not followed", link_target=real)
        return None
    if not info.is_file:
        run.skip(guest, "not a regular file (FIFO, socket or device): never opened")
        return None
    if run.exclude_dir and str(root.path(real)).startswith(run.exclude_dir + "/"):
        run.skip(guest, "inside the bundle's output folder")
        return None
    kind = "file"
    lower = guest.lower()
    if lower.endswith(spec.COMPRESSED_SUFFIXES):
        kind = "compressed"
    elif lower.endswith(spec.UNSUPPORTED_SUFFIXES):
        run.skip(guest, "compressed or archive format not handled: not collected")
        return None
    return _Item(guest, real, priority, is_log, info.size, info.mtime, kind)


def _plan(run: _Run) -> list[_Item]:
    """Every guest file to take, must-have first, newest first within a priority."""
    root = run.root
    items: dict[str, _Item] = {}
    reals: set[str] = set()

    def add(guest: str, priority: int, is_log: bool, kind: str = "") -> None:
        if guest in items or guest in reals:
            return
        item = _plan_one(root, guest, priority, is_log, run)
        if item is not None and item.real not in reals:
            item.kind = kind or item.kind
            items[guest] = item
            reals.add(item.real)

    for take in spec.TAKE:
        for guest in _expand(root, take.pattern, run):
            add(guest, take.priority, take.is_log)
    # Goal-state history: newest entries first, the rest only if the caps allow.
    try:
        names = [n for n in root.listdir(spec.HISTORY_DIR) if "__" in n]
    except InputError as exc:
        run.skip(spec.HISTORY_DIR, f"not readable: {exc.reason}", kind="dir")
        names = []
    keep = run.settings.bundle.history_folders
    for rank, name in enumerate(sorted(names, reverse=True)):
        priority = spec.P_STATE if rank < keep else spec.P_EXTRA
        g = f"{spec.HISTORY_DIR}/{name}"
        if name.endswith(".zip"):
            add(g, priority, False, kind="zip")
        elif root.is_dir(g) and root.resolve(g) == g:
            for child in root.listdir(g):
                add(f"{g}/{child}", priority, False)
    order = sorted(items.values(), key=lambda i: (i.priority, -i.mtime, i.guest))
    return order


# -- taking -------------------------------------------------------------------------------
def _take_file(run: _Run, item: _Item) -> None:
    entry = _Entry(item.guest, priority=item.priority, link_target=None)
    if item.real != item.guest:
        entry.link_target = item.real
    size = item.size
    try:
        run.take_source(
            entry,
            run.name_for(item.guest),
            size,
            item.mtime,
            lambda start: _file_chunks(run.root, item.real, start, size),
            item.is_log,
        )
    except InputError as exc:
        _failed(run, entry, exc.reason)


def _take_compressed(run: _Run, item: _Item) -> None:
    """A rotated log: decompressed twice (count, then tail), stored redacted as plain text."""
    entry = _Entry(item.guest, kind="decompressed", priority=item.priority)
    suffix = posixpath.splitext(item.guest.lower())[1]
    if item.size > run.max_total:
        run.skip(item.guest, "compressed file larger than the total cap: not collected")
        return

    def raw(start: int = 0) -> Iterator[bytes]:
        return _file_chunks(run.root, item.real, start, item.size)

    total = 0
    corrupt = ""
    bound = spec.MAX_INFLATE_RATIO * max(item.size, spec.MIB)
    try:
        for chunk in _inflate(raw(), suffix):
            total += len(chunk)
            run.check_time()
            if total > bound:
                run.skip(item.guest, f"decompresses to more than {bound // spec.MIB} MiB: skipped")
                return
    except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
        corrupt = f"corrupt after {total} bytes ({type(exc).__name__})"
    except InputError as exc:
        _failed(run, entry, exc.reason)
        return
    plain = item.guest[: -len(suffix)]
    name = run.name_for(plain)

    def opener(start: int) -> Iterator[bytes]:
        def gen() -> Iterator[bytes]:
            try:
                yield from _inflate(raw(), suffix)
            except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError):
                return

        return _skip_then(gen(), start, total - start)

    try:
        run.take_source(entry, name, total, item.mtime, opener, item.is_log)
    except InputError as exc:
        _failed(run, entry, exc.reason)
        return
    entry.extra["compressed_size"] = item.size
    if corrupt:
        entry.reason = (entry.reason + "; " if entry.reason else "") + corrupt


def _take_zip(run: _Run, item: _Item) -> None:
    """A history zip: each member redacted and stored under <zip name>/<member>."""
    try:
        fh = run.root.open(item.real)
    except InputError as exc:
        run.skip(item.guest, f"not readable: {exc.reason}", kind="zip")
        return
    with fh:
        try:
            zf = zipfile.ZipFile(fh)
            infos = zf.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            run.skip(item.guest, f"not a readable zip: {exc}", kind="zip")
            return
        for info in infos:
            if info.is_dir():
                continue
            member = info.filename
            guest = f"{item.guest}/{member}"
            parts = member.split("/")
            if member.startswith("/") or ".." in parts or "" in parts:
                run.skip(guest, "unsafe member name in zip", kind="zip-member")
                continue
            why = spec.denied(member)
            if why:
                run.skip(guest, why, kind="zip-member")
                continue
            entry = _Entry(guest, kind="zip-member", priority=item.priority)
            mtime = time.mktime((*info.date_time, 0, 0, -1))
            size = info.file_size

            def opener(
                start: int, info: zipfile.ZipInfo = info, size: int = size
            ) -> Iterator[bytes]:
                def gen() -> Iterator[bytes]:
                    with zf.open(info) as m:
                        while True:
                            chunk = m.read(spec.CHUNK_BYTES)
                            if not chunk:
                                return
                            yield chunk

                return _skip_then(gen(), start, size - start)

            try:
                run.take_source(entry, run.name_for(guest), size, mtime, opener, False)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as exc:
                _failed(run, entry, f"zip member not readable: {exc}")


def _failed(run: _Run, entry: _Entry, reason: str) -> None:
    """A source failed; if its entry was already started the archive holds what was read."""
    if entry.archive_path is None:
        entry.skipped = True
    entry.reason = reason
    if entry not in run.entries:
        run.entries.append(entry)


def _agent_unit(host: Host, settings: Settings) -> str:
    from waagent_doctor.distro import read_os_release, row_for

    if settings.agent_unit:
        return settings.agent_unit
    try:
        return row_for(read_os_release(host.root)).agent_unit
    except Exception:  # noqa: BLE001 - a broken os-release must not stop the bundle
        return "waagent.service"


def _take_commands(run: _Run) -> None:
    """Live only: each command bounded by its timeout and by the run's deadline."""
    runner = run.host.runner
    if not run.host.live or runner is None:
        return
    agent = _agent_unit(run.host, run.settings)
    results: dict[str, bool] = {}
    for cmd in spec.COMMANDS:
        if cmd.fallback_for and results.get(cmd.fallback_for, False):
            continue
        argv = [a.replace("{agent}", agent) for a in cmd.argv]
        guest = "$ " + " ".join(argv)
        left = run.deadline - time.monotonic()
        if left <= 1:
            run.deadline_hit = True
            run.skip(guest, "run deadline reached", kind="command")
            continue
        if run.used >= run.max_total:
            run.skip(guest, "total cap reached", kind="command")
            continue
        run.say(f"running {' '.join(argv)}")
        began = time.monotonic()
        res = runner.run(
            argv,
            timeout=min(run.settings.bundle.command_timeout_seconds, left),
            max_output=spec.COMMAND_MAX_BYTES,
        )
        results[cmd.name] = res.ok
        status = "timed out" if res.timed_out else f"exit status {res.returncode}"
        text = f"$ {' '.join(argv)}\n{res.stdout}"
        if res.stderr:
            text += f"\n--- stderr ---\n{res.stderr}"
        text += f"\n--- {status} ---\n"
        data = text.encode("utf-8", "replace")[: max(0, run.max_total - run.used)]
        name = run.name_for(f"/commands/{cmd.name}.txt")
        taken, count = run.add_memory(name, data, time.time())
        e = _Entry(guest, kind="command", archive_path=name, size=len(data), taken=taken)
        e.source_bytes, e.redactions = len(data), count
        e.reason = "" if res.ok else status
        e.extra.update(
            {
                "returncode": res.returncode,
                "timed_out": res.timed_out,
                "seconds": round(time.monotonic() - began, 3),
            }
        )
        run.entries.append(e)


# -- the output file ----------------------------------------------------------------------
def _private_dir(path: str) -> str:
    """Create (0700) or vet a folder the bundle may live in: ours, a real folder, private."""
    folder = Path(path)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = folder.lstat()
    except OSError as exc:
        raise BundleError(f"cannot create output folder {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise BundleError(f"output folder {path} is not a folder (a symbolic link?)")
    if st.st_uid != os.geteuid():
        raise BundleError(f"output folder {path} belongs to another user")
    if stat.S_IMODE(st.st_mode) & 0o077:
        folder.chmod(0o700)
    return path


def _free_bytes(folder: str) -> tuple[int, int]:
    """(free bytes for us, bytes to keep free) on the filesystem of folder."""
    sv = os.statvfs(folder)
    free = sv.f_bavail * sv.f_frsize
    size = sv.f_blocks * sv.f_frsize
    reserve = int(min(spec.RESERVE_BYTES, spec.RESERVE_FRACTION * size))
    return free, reserve


def _space_error(folder: str) -> BundleError:
    return BundleError(f"no space left on the filesystem of {folder}: bundle removed")


def build_bundle(
    host: Host,
    settings: Settings,
    *,
    output: str = DOCTOR_BUNDLES,
    report: Optional[Report] = None,
    report_error: Optional[str] = None,
    output_file: Optional[str] = None,
    private_dir: bool = True,
    notes: tuple[str, ...] = (),
    progress: Optional[Callable[[str], None]] = None,
) -> BundleResult:
    """Write a support bundle of the host into the folder `output` (or output_file); its result.

    `report` is the diagnosis to include as report.json (the daemon passes its own; when it
    is None, `report_error` says why). `private_dir` creates `output` 0700 and refuses a
    folder that is not ours (a link, another user's). Raises BundleError, leaving nothing
    behind, when no archive could be written; everything else ends up in manifest.json.
    """
    began = time.monotonic()
    now = datetime.now(timezone.utc)
    deadline = began + settings.bundle.deadline_seconds
    hostname = _hostname(host)
    base = f"waagent-doctor-{hostname}-{now.strftime('%Y%m%dT%H%M%SZ')}"
    if output_file:
        target = Path(output_file).absolute()
        where = target.parent
    else:
        where = Path(_private_dir(output) if private_dir else output).absolute()
        target = where / f"{base}.tar.gz"
    if not where.is_dir():
        raise BundleError(f"output folder {where} does not exist")
    folder, final = str(where), str(target)
    tmp = str(where / f".{base}.partial-{os.getpid()}")
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(tmp, flags | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        raise BundleError(f"cannot write in {folder}: {exc.strerror}") from None
    fh: IO[bytes] = os.fdopen(fd, "w+b", buffering=spec.MIB)
    written = [0, 0]  # compressed bytes, bytes at the last free-space check

    def on_written(n: int) -> None:
        written[0] += n
        if written[0] - written[1] >= _SPACE_CHECK_EVERY:
            written[1] = written[0]
            free, reserve = _free_bytes(folder)
            if free < reserve:
                raise OSError(errno.ENOSPC, "below the free-space reserve")

    writer: Optional[TarGzWriter] = None
    ok = False
    # The compressor thread waits for the GIL after each batch; a shorter switch interval
    # (restored at the end) keeps it busy while this thread redacts.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(min(switch, spec.SWITCH_INTERVAL))
    try:
        writer = TarGzWriter(fh, level=spec.GZIP_LEVEL, on_written=on_written)
        run = _Run(host, settings, writer, base, hostname, deadline, progress, folder)
        items = _plan(run)
        planned = sum(min(i.size, run.max_file) for i in items)
        need = int(min(planned, run.max_total) * spec.ESTIMATED_RATIO) + spec.MIB
        free, reserve = _free_bytes(folder)
        if free - reserve < need:
            raise BundleError(
                f"not enough free space in {folder}: about {need // spec.MIB + 1} MiB needed, "
                f"{max(0, free - reserve) // spec.MIB} MiB available "
                f"(keeping {reserve // spec.MIB} MiB free)"
            )
        report_ok = _add_report(run, report, report_error, now)
        deferred_commands = True
        for item in items:
            if deferred_commands and item.priority > spec.P_MUST:
                _take_commands(run)
                deferred_commands = False
            try:
                run.check_time()
            except _Deadline:
                run.skip(item.guest, "run deadline reached: not collected")
                continue
            run.say(f"[{len(run.entries) + 1}/{len(items)}] {item.guest}")
            try:
                if item.kind == "zip":
                    _take_zip(run, item)
                elif item.kind == "compressed":
                    _take_compressed(run, item)
                else:
                    _take_file(run, item)
            except _Deadline:
                run.skip(item.guest, "run deadline reached: not collected")
            except (ArchiveError, BundleError):
                raise
            except Exception as exc:  # noqa: BLE001 - one bad file must not sink the bundle
                run.skip(item.guest, f"internal error: {type(exc).__name__}: {exc}")
        if deferred_commands:
            _take_commands(run)
        _add_manifest(run, now, began, report_ok, notes)
        writer.close()
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        final = _publish(tmp, final, explicit=bool(output_file))
        ok = True
        taken = [e for e in run.entries if not e.skipped]
        return BundleResult(
            path=final,
            archive_bytes=Path(final).stat().st_size,
            files_taken=len(taken),
            files_skipped=sum(1 for e in run.entries if e.skipped),
            files_truncated=sum(1 for e in taken if e.truncated),
            redactions=sum(e.redactions for e in run.entries),
            uncompressed_bytes=writer.uncompressed_bytes,
            elapsed_seconds=round(time.monotonic() - began, 3),
            report_included=report_ok,
            deadline_hit=run.deadline_hit,
        )
    except ArchiveError as exc:
        cause = exc.cause
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _space_error(folder) from None
        raise BundleError(f"cannot write the bundle in {folder}: {cause}") from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _space_error(folder) from None
        raise BundleError(f"cannot write the bundle in {folder}: {exc.strerror or exc}") from None
    finally:
        sys.setswitchinterval(switch)
        if not ok:
            if writer is not None:
                writer.abort()
            try:
                fh.close()
            except OSError:
                pass
            try:
                Path(tmp).unlink()
            except OSError:
                pass


def _publish(tmp: str, final: str, *, explicit: bool) -> str:
    """Rename the finished archive to its name; never overwrite another bundle by accident."""
    if explicit:
        Path(tmp).replace(final)
        return final
    stem, n = final[: -len(".tar.gz")], 1
    while True:
        try:
            os.link(tmp, final)
        except FileExistsError:
            n += 1
            final = f"{stem}-{n}.tar.gz"
            continue
        Path(tmp).unlink()
        return final


def _add_report(run: _Run, report: Optional[Report], error: Optional[str], now: datetime) -> bool:
    """report.json, or report-error.txt saying why there is none."""
    if report is not None:
        try:
            data = (json.dumps(report.to_json_dict(), indent=2) + "\n").encode()
            name = run.name_for("/report.json")
            taken, count = run.add_memory(name, data, now.timestamp())
            e = _Entry("report.json", kind="report", archive_path=name, size=len(data))
            e.taken, e.source_bytes, e.redactions = taken, len(data), count
            e.priority = spec.P_REPORT
            run.entries.append(e)
            return True
        except Exception as exc:  # noqa: BLE001 - a report that cannot be serialised
            error = f"report could not be written: {type(exc).__name__}: {exc}"
    text = f"No diagnosis in this bundle: {error or 'not run'}\n".encode()
    name = run.name_for("/report-error.txt")
    taken, count = run.add_memory(name, text, now.timestamp())
    e = _Entry("report-error.txt", kind="report", archive_path=name, size=len(text), taken=taken)
    e.source_bytes, e.redactions, e.priority = len(text), count, spec.P_REPORT
    run.entries.append(e)
    return False


def _add_manifest(
    run: _Run, now: datetime, began: float, report_ok: bool, notes: tuple[str, ...]
) -> None:
    """manifest.json: every file taken or skipped and why; written last, outside the caps."""
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "generated_at": utc_text(now),
        "doctor_version": __version__,
        "mode": run.host.mode,
        "root": None if run.host.live else str(run.root.base),
        "hostname": run.hostname,
        "caps": {
            "max_file_bytes": run.max_file,
            "max_total_bytes": run.max_total,
            "deadline_seconds": run.settings.bundle.deadline_seconds,
            "command_timeout_seconds": run.settings.bundle.command_timeout_seconds,
        },
        "report_included": report_ok,
        "notes": list(notes),
        "totals": {
            "files_taken": sum(1 for e in run.entries if not e.skipped),
            "files_skipped": sum(1 for e in run.entries if e.skipped),
            "files_truncated": sum(1 for e in run.entries if e.truncated and not e.skipped),
            "bytes_taken": run.used,
            "redactions": sum(e.redactions for e in run.entries),
        },
        "deadline_hit": run.deadline_hit,
        "elapsed_seconds": round(time.monotonic() - began, 3),
        "entries": [e.to_json() for e in run.entries],
    }
    data = (json.dumps(manifest, indent=2) + "\n").encode()
    out, _ = redact_bytes(data)
    run.writer.add_bytes(run.name_for("/manifest.json"), out, int(now.timestamp()))


# -- the command line ---------------------------------------------------------------------
def _diagnose(host: Host, settings: Settings, timeout: float) -> tuple[Optional[Report], str]:
    """Run `check`'s diagnosis in a thread bounded in time; never raises."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            from waagent_doctor.engine import diagnose

            box["report"] = diagnose(host, settings)
        except BaseException as exc:  # noqa: BLE001 - the bundle goes on without it
            box["error"] = f"diagnosis failed: {type(exc).__name__}: {exc}"

    t = threading.Thread(target=work, name="bundle-diagnosis", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return None, f"diagnosis did not finish within {timeout:.0f} s"
    return box.get("report"), box.get("error", "")


def _offline_host(root_dir: str) -> tuple[Host, str]:
    """The offline host; its clock is the newest agent log record when that can be read."""
    note = ""
    when: Optional[datetime] = None
    try:
        from waagent_doctor.engine import offline_as_of

        when = offline_as_of(root_dir)
    except Exception as exc:  # noqa: BLE001 - a broken log must not stop the bundle
        note = f"as-of time not found in the agent log: {type(exc).__name__}: {exc}"
    return Host.offline(root_dir, when or datetime.now(timezone.utc)), note


def _resolve_output(output: Optional[str]) -> tuple[str, Optional[str], bool]:
    """(folder, explicit file or None, make the folder private)."""
    if not output:
        if os.geteuid() == 0:
            return CLI_DEFAULT_DIR, None, True
        return f"{CLI_DEFAULT_DIR}-{os.geteuid()}", None, True
    if Path(output).is_dir():
        return output, None, False
    if output.endswith((".tar.gz", ".tgz")):
        return str(Path(output).absolute().parent), output, False
    return output, None, True


def _say(text: str) -> None:
    """One line on stderr."""
    sys.stderr.write(f"waagent-doctor: {text}\n")
    sys.stderr.flush()


def collect_logs_command(output: Optional[str], root: Optional[str], config: Optional[str]) -> int:
    """`waagent-doctor --collect-logs [--output PATH] [--root DIR]`: print the archive's path."""
    from waagent_doctor import config as configmod

    notes: list[str] = []
    try:
        settings = configmod.load(config)
    except Exception as exc:  # noqa: BLE001 - a broken configuration must not stop the bundle
        notes.append(f"configuration not used ({exc}); defaults applied")
        settings = Settings()
    if root:
        if not Path(root).is_dir():
            _say(f"collect-logs: --root: not a directory: {root}")
            return EXIT_FAILED
        host, note = _offline_host(root)
        if note:
            notes.append(note)
    else:
        host = Host.live_host()
    tty = sys.stderr.isatty()

    progress = _say
    if tty:
        progress("diagnosing")
    report, error = _diagnose(
        host, settings, settings.bundle.deadline_seconds * spec.DIAGNOSIS_SHARE
    )
    folder, out_file, private = _resolve_output(output)
    try:
        result = build_bundle(
            host,
            settings,
            output=folder,
            report=report,
            report_error=error or None,
            output_file=out_file,
            private_dir=private,
            notes=tuple(notes),
            progress=progress if tty else None,
        )
    except BundleError as exc:
        _say(f"collect-logs: {exc}")
        return EXIT_FAILED
    if tty:
        progress(
            f"{result.files_taken} files, {result.redactions} values redacted, "
            f"{result.archive_bytes // 1024} KiB in {result.elapsed_seconds:.1f} s"
        )
    sys.stdout.write(result.path + "\n")
    sys.stdout.flush()
    return 0


__all__ = [
    "CLI_DEFAULT_DIR",
    "DOCTOR_BUNDLES",
    "BundleError",
    "BundleResult",
    "build_bundle",
    "collect_logs_command",
]
