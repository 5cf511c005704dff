"""A streaming .tar.gz writer whose entries may be of unknown size, in flat memory.

A tar header states the entry's size before its data, but redaction changes sizes, and a gzip
stream cannot be rewritten in place. The way out (RFC 1952 allows a file of several gzip
members; gzip, GNU tar and Python's tarfile read them as one stream): the header of a
streamed entry is written as its own small *stored* (uncompressed) gzip member holding a
placeholder, the data follows in a new member, and once the size is known the placeholder
member is rewritten in place: same length, new header, new CRC. No temporary copy, one pass.
Compression runs in a worker thread (zlib releases the GIL) while the caller redacts.
"""

from __future__ import annotations

import queue
import struct
import tarfile
import threading
import zlib
from dataclasses import dataclass
from typing import IO, Callable, Optional, Union

BLOCK = 512
RECORD = 20 * BLOCK
_QUEUE_DEPTH = 3  # batches in flight between the caller and the compressor: bounded memory
# Data is handed to the compressor in batches this large: each handoff costs the worker a
# wait for the GIL, so fewer, larger handoffs keep it busy.
_BATCH = 1024 * 1024

# 1f8b, deflate, no flags, mtime 0, no extra flags, OS unknown (RFC 1952 section 2.3).
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


class ArchiveError(Exception):
    """Writing the archive failed (disk full, I/O error); `cause` is the original error."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def stored_member(payload: bytes) -> bytes:
    """A complete gzip member holding payload in one stored (uncompressed) deflate block."""
    if len(payload) > 0xFFFF:
        raise ValueError("stored block larger than 65535 bytes")
    block = b"\x01" + struct.pack("<HH", len(payload), len(payload) ^ 0xFFFF)
    trailer = struct.pack("<II", zlib.crc32(payload) & 0xFFFFFFFF, len(payload))
    return _GZIP_HEADER + block + payload + trailer


def tar_header(name: str, size: int, mtime: int, mode: int = 0o600) -> bytes:
    """A PAX tar header for a regular file (long or non-ASCII names get a pax record)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = mode
    info.uname = info.gname = "root"
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


@dataclass
class _Slot:
    """Where a placeholder header member sits in the file (set by the worker)."""

    offset: int = -1


# Commands from the caller to the compressing worker, in order.
@dataclass(frozen=True)
class _Data:
    data: bytes


@dataclass(frozen=True)
class _Header:
    """Finish the current gzip member, then write a stored member at a remembered offset."""

    slot: _Slot
    payload: bytes


@dataclass(frozen=True)
class _Patch:
    """Rewrite a stored member in place (same length) once the entry's size is known."""

    slot: _Slot
    payload: bytes


@dataclass(frozen=True)
class _Close:
    pass


_Cmd = Union[_Data, _Header, _Patch, _Close]


class TarGzWriter:
    """Writes tar entries into a seekable binary file as a multi-member gzip stream."""

    def __init__(
        self,
        fileobj: IO[bytes],
        *,
        level: int = 6,
        on_written: Optional[Callable[[int], None]] = None,
    ) -> None:
        self._f = fileobj
        self._level = level
        self._on_written = on_written
        self._q: queue.Queue[_Cmd] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._error: Optional[BaseException] = None
        self._tar_bytes = 0  # uncompressed tar stream length so far
        self._batch = bytearray()
        self._thread = threading.Thread(target=self._work, name="bundle-gzip", daemon=True)
        self._thread.start()
        self._closed = False

    # -- worker ---------------------------------------------------------------------------
    def _work(self) -> None:
        comp = zlib.compressobj(self._level, zlib.DEFLATED, 31)
        dirty = False
        try:
            while True:
                cmd = self._q.get()
                if isinstance(cmd, _Data):
                    self._write(comp.compress(cmd.data))
                    dirty = True
                elif isinstance(cmd, _Header):
                    if dirty:
                        self._write(comp.flush())
                        comp = zlib.compressobj(self._level, zlib.DEFLATED, 31)
                        dirty = False
                    cmd.slot.offset = self._f.tell()
                    self._write(stored_member(cmd.payload))
                elif isinstance(cmd, _Patch):
                    end = self._f.tell()
                    self._f.seek(cmd.slot.offset)
                    self._f.write(stored_member(cmd.payload))
                    self._f.seek(end)
                else:
                    self._write(comp.flush())
                    self._f.flush()
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._error = exc
            # Keep draining so the caller never blocks on a full queue.
            while True:
                try:
                    if isinstance(self._q.get(timeout=0.2), _Close):
                        return
                except queue.Empty:
                    if self._closed:
                        return

    def _write(self, data: bytes) -> None:
        if data:
            self._f.write(data)
            if self._on_written is not None:
                self._on_written(len(data))

    # -- caller side ----------------------------------------------------------------------
    def _put(self, cmd: _Cmd) -> None:
        if self._error is not None:
            raise ArchiveError(self._error)
        if self._batch and not isinstance(cmd, _Data):
            self._flush_batch()
        self._q.put(cmd)

    def _flush_batch(self) -> None:
        data, self._batch = bytes(self._batch), bytearray()
        self._q.put(_Data(data))

    def _data(self, data: bytes) -> None:
        if data:
            self._tar_bytes += len(data)
            self._batch += data
            if len(self._batch) >= _BATCH:
                if self._error is not None:
                    raise ArchiveError(self._error)
                self._flush_batch()

    def _pad(self, size: int) -> None:
        rest = size % BLOCK
        if rest:
            self._data(b"\0" * (BLOCK - rest))

    def add_bytes(self, name: str, data: bytes, mtime: int, mode: int = 0o600) -> None:
        """Add an entry whose content is in memory."""
        self._data(tar_header(name, len(data), mtime, mode))
        self._data(data)
        self._pad(len(data))

    def open_stream(self, name: str, mtime: int, mode: int = 0o600) -> StreamEntry:
        """Start an entry whose size is learnt only at its end; write, then close it."""
        placeholder = tar_header(name, 0, mtime, mode)
        slot = _Slot()
        self._tar_bytes += len(placeholder)
        self._put(_Header(slot, placeholder))
        return StreamEntry(self, name, mtime, mode, slot, len(placeholder))

    def _finish_stream(self, entry: StreamEntry) -> None:
        header = tar_header(entry.name, entry.size, entry.mtime, entry.mode)
        if len(header) != entry.header_len:
            raise RuntimeError(f"tar header of {entry.name} changed length")
        self._pad(entry.size)
        self._put(_Patch(entry.slot, header))

    def close(self) -> None:
        """End the archive (two zero blocks, padded to a record) and wait for the worker."""
        end = 2 * BLOCK
        total = self._tar_bytes + end
        end += (-total) % RECORD
        self._data(b"\0" * end)
        self._put(_Close())
        self._closed = True
        self._thread.join()
        if self._error is not None:
            raise ArchiveError(self._error)

    def abort(self) -> None:
        """Stop the worker without finishing the archive (the caller deletes the file)."""
        self._closed = True
        try:
            self._q.put(_Close(), timeout=5)
        except queue.Full:
            pass
        self._thread.join(timeout=10)

    @property
    def uncompressed_bytes(self) -> int:
        """Length of the tar stream written so far."""
        return self._tar_bytes


class StreamEntry:
    """An entry being streamed: `write` chunks, then `close` to fix its header."""

    def __init__(
        self, writer: TarGzWriter, name: str, mtime: int, mode: int, slot: _Slot, header_len: int
    ) -> None:
        self.name = name
        self.mtime = mtime
        self.mode = mode
        self.slot = slot
        self.header_len = header_len
        self.size = 0
        self._w = writer

    def write(self, data: bytes) -> None:
        """Append data to the entry."""
        if data:
            self.size += len(data)
            self._w._data(data)

    def close(self) -> None:
        """Finish the entry: padding, then the real header over the placeholder."""
        self._w._finish_stream(self)
