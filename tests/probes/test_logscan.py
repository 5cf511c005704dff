"""The agent log scanner: every historical format, rotations, windows, junk, and bounded cost."""

from __future__ import annotations

import gzip
import os
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import DATA
from waagent_doctor.paths import Root
from waagent_doctor.probes import logscan
from waagent_doctor.probes.logscan import LogCursor, parse_bytes, read_new, read_window

FIXTURE = DATA / "walinuxagent" / "logs" / "waagent.log.examples_from_agent_log_py.log"
AS_OF = datetime(2025, 9, 6, 12, 0, 0, tzinfo=timezone.utc)
DAY = timedelta(hours=24)


def fixture_lines() -> list[str]:
    return FIXTURE.read_text().splitlines()


def line_with(marker: str) -> str:
    """The fixture line that contains marker."""
    return next(line for line in fixture_lines() if marker in line)


def at(when: datetime, line: str) -> str:
    """A real agent line with its timestamp replaced by `when` (same format)."""
    stamp, rest = line.split(" ", 1)
    if "T" in stamp:
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + " " + rest
    # "2021/03/30 19:35:35.971742 INFO ..." (two tokens of time)
    rest = rest.split(" ", 1)[1]
    return when.strftime("%Y/%m/%d %H:%M:%S.%f") + " " + rest


def info(when: datetime, msg: str) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + f" INFO ExtHandler ExtHandler {msg}"


def guest(tmp_path: Path) -> Path:
    (tmp_path / "var" / "log").mkdir(parents=True)
    return tmp_path


def write_log(root: Path, lines: list[str], name: str = "waagent.log") -> Path:
    path = root / "var" / "log" / name
    data = ("\n".join(lines) + "\n").encode()
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def test_every_fixture_line_is_one_record() -> None:
    """Each of the agent's example lines, in every historical format, parses to one record."""
    records = parse_bytes(FIXTURE.read_bytes(), "/var/log/waagent.log")
    assert len(records) == len(fixture_lines())
    assert [r.line for r in records] == list(range(1, len(records) + 1))
    assert all(r.when.tzinfo is timezone.utc for r in records)


@pytest.mark.parametrize(
    ("marker", "level", "thread", "prefix", "message"),
    [
        # newer: time, level, thread, prefix
        (
            "Report vm agent status",
            "VERBOSE",
            "ExtHandler",
            "ExtHandler",
            "Report vm agent status",
        ),
        (
            "SendHostPluginHeartbeat: [HttpError]",
            "WARNING",
            "MonitorHandler",
            "ExtHandler",
            "Error in SendHostPluginHeartbeat",
        ),
        (
            "Target handler state: enabled",
            "INFO",
            "ExtHandler",
            "[Microsoft.Azure.Security.Monitoring.AzureSecurityLinuxAgent-2.14.64]",
            "Target handler state",
        ),
        ("MainThread LogCollector", "WARNING", "MainThread", "LogCollector", "Fetch failed"),
        # 2.2.46: ISO time, no thread
        ("Wire server endpoint", "INFO", "", "ExtHandler", "Wire server endpoint:168.63.129.16"),
        # older: slash time, level, prefix
        ("Version:2.2.45", "INFO", "", "Daemon", "Azure Linux Agent Version:2.2.45"),
        # oldest: slash time, level, no prefix
        ("Disabling guest agent", "WARNING", "", "", "Disabling guest agent in accordance"),
        # extension lines: no level
        ("started to handle", "", "", "", "Azure Monitoring Agent for Linux started"),
        (
            "cwd is",
            "",
            "",
            "[Microsoft.Azure.Monitor.AzureMonitorLinuxAgent-1.7.0]",
            "cwd is /var/lib/waagent",
        ),
    ],
)
def test_formats(marker: str, level: str, thread: str, prefix: str, message: str) -> None:
    """Level, thread and prefix come apart as the agent's own e2e parser splits them."""
    (rec,) = parse_bytes(line_with(marker).encode())
    assert (rec.level, rec.thread, rec.prefix) == (level, thread, prefix)
    assert rec.message.startswith(message)


def test_times_are_utc_with_microseconds() -> None:
    """ISO and slash times both parse; a time without a fraction has microsecond 0."""
    iso, slash, ext = parse_bytes(
        (
            line_with("Report vm agent status")
            + "\n"
            + line_with("Version:2.2.45")
            + "\n"
            + line_with("started to handle")
        ).encode()
    )
    assert iso.when == datetime(2019, 11, 27, 22, 22, 48, 123985, tzinfo=timezone.utc)
    assert slash.when == datetime(2021, 3, 30, 19, 35, 35, 971742, tzinfo=timezone.utc)
    assert ext.when == datetime(2021, 3, 30, 19, 45, 31, tzinfo=timezone.utc)
    assert not ext.is_agent


def test_continuation_lines_belong_to_the_previous_record() -> None:
    """A traceback's lines without a time are part of the record before them."""
    t = AS_OF - timedelta(minutes=5)
    text = "\n".join(
        [
            info(t, "Daemon ended with exception -- Sleep 15 seconds and restart daemon"),
            "Traceback (most recent call last):",
            '  File "/usr/lib/python3/dist-packages/azurelinuxagent/daemon/main.py", line 82',
            "OSError: [Errno 28] No space left on device",
            "",
            info(t + timedelta(seconds=15), "Run daemon"),
        ]
    )
    first, second = parse_bytes(text.encode())
    assert first.headline.startswith("Daemon ended with exception")
    assert first.message.splitlines()[1:] == [
        "Traceback (most recent call last):",
        '  File "/usr/lib/python3/dist-packages/azurelinuxagent/daemon/main.py", line 82',
        "OSError: [Errno 28] No space left on device",
    ]
    assert (first.line, second.line) == (1, 6)
    assert "|" in first.excerpt() and "\n" not in first.excerpt()


def test_window_reads_backwards_and_keeps_only_the_window(tmp_path: Path) -> None:
    """Records older than the window are not returned, and the old head of the file is not read."""
    root = guest(tmp_path)
    old = [info(AS_OF - timedelta(days=3, seconds=i), f"old {i}") for i in range(20000, 0, -1)]
    fresh = [
        at(AS_OF - timedelta(hours=2), line_with("Connection reset by peer -- 6 attempts")),
        "  a continuation line of that record",
        info(AS_OF - timedelta(hours=1), "Fetching the goal state recovered from previous errors."),
    ]
    path = write_log(root, old + fresh)
    window = read_window(Root(root), AS_OF - DAY, AS_OF)
    assert [r.headline[:30] for r in window.records] == [
        "Error fetching the goal state:",
        "Fetching the goal state recove",
    ]
    assert window.records[0].message.endswith("a continuation line of that record")
    (f,) = window.files
    assert f.bytes_read < path.stat().st_size / 10
    # The file is small: line numbers are counted and name the real lines.
    assert window.records[0].source == f"/var/log/waagent.log:{len(old) + 1}"
    assert window.records[1].line == len(old) + 3
    assert path.read_text().splitlines()[len(old) + 2].endswith("previous errors.")


def test_records_after_as_of_are_left_out(tmp_path: Path) -> None:
    """--as-of in the past: newer records are not in the window."""
    root = guest(tmp_path)
    write_log(root, [info(AS_OF - timedelta(hours=1), "before"), info(AS_OF + DAY, "after")])
    window = read_window(Root(root), AS_OF - DAY, AS_OF)
    assert [r.message for r in window.records] == ["before"]


def test_window_boundaries_are_inclusive(tmp_path: Path) -> None:
    """A record exactly at the window start or at as_of is inside; a microsecond earlier is not."""
    root = guest(tmp_path)
    start = AS_OF - DAY
    write_log(
        root,
        [
            info(start - timedelta(microseconds=1), "just before"),
            info(start, "at start"),
            info(AS_OF, "at end"),
        ],
    )
    window = read_window(Root(root), start, AS_OF)
    assert [r.message for r in window.records] == ["at start", "at end"]


@pytest.mark.parametrize(
    "names",
    [
        ("waagent.log.1", "waagent.log.2.gz", "waagent.log.3.gz"),
        (
            "waagent.log-2025-09-06-1757160000",
            "waagent.log-2025-09-06-1757116800.gz",
            "waagent.log-20250905.gz",
        ),
    ],
)
def test_rotations_plain_gzip_and_dateext(tmp_path: Path, names: tuple[str, str, str]) -> None:
    """The window reaches back through a plain rotation and two .gz ones, oldest first."""
    root = guest(tmp_path)
    h = timedelta(hours=1)
    write_log(root, [info(AS_OF - 4 * h, "live")])
    write_log(root, [info(AS_OF - 8 * h, "rotation 1")], names[0])
    write_log(root, [info(AS_OF - 12 * h, "rotation 2")], names[1])
    write_log(root, [info(AS_OF - 40 * h, "too old"), info(AS_OF - 20 * h, "rot 3")], names[2])
    window = read_window(Root(root), AS_OF - DAY, AS_OF)
    assert [r.message for r in window.records] == ["rot 3", "rotation 2", "rotation 1", "live"]
    gz = next(r for r in window.records if r.message == "rotation 2")
    assert gz.source == f"/var/log/{names[1]}:1"
    assert not window.errors


def test_rotation_order_by_name(tmp_path: Path) -> None:
    """dateext names sort newest first, then numbered ones by number."""
    names = [
        "waagent.log.10.gz",
        "waagent.log.2.gz",
        "waagent.log.1",
        "waagent.log-20250101",
        "waagent.log-2025-01-02-1735776000.gz",
        "waagent.log.bak",
        "waagent.log",
    ]
    root_dir = guest(tmp_path)
    for n in names:
        (root_dir / "var" / "log" / n).write_bytes(b"")
    assert [p.rsplit("/", 1)[1] for p in logscan.rotations(Root(root_dir))] == [
        "waagent.log-2025-01-02-1735776000.gz",
        "waagent.log-20250101",
        "waagent.log.1",
        "waagent.log.2.gz",
        "waagent.log.10.gz",
    ]


def test_stops_at_the_first_rotation_that_is_older(tmp_path: Path) -> None:
    """Once a record older than the window is met, older rotations are not opened."""
    root = guest(tmp_path)
    write_log(root, [info(AS_OF - DAY - timedelta(hours=1), "old"), info(AS_OF, "new")])
    # Not a gzip: reading it would be an error.
    (root / "var" / "log" / "waagent.log.1.gz").write_bytes(b"not gzip")
    window = read_window(Root(root), AS_OF - DAY, AS_OF)
    assert [r.message for r in window.records] == ["new"]
    assert not window.errors
    assert [f.path for f in window.files] == ["/var/log/waagent.log"]


def test_gzip_last_written_before_the_window_is_skipped_by_mtime(tmp_path: Path) -> None:
    """A rotation whose mtime is older than the window start is not opened."""
    root = guest(tmp_path)
    write_log(root, [info(AS_OF - timedelta(hours=1), "new")])
    broken = root / "var" / "log" / "waagent.log.1.gz"
    broken.write_bytes(b"not gzip")
    old = (AS_OF - 2 * DAY).timestamp()
    os.utime(broken, (old, old))
    window = read_window(Root(root), AS_OF - DAY, AS_OF)
    assert not window.errors
    assert window.files[-1].note == "older than the window"


def test_broken_gzip_is_recorded_and_does_not_hide_the_live_log(tmp_path: Path) -> None:
    """A corrupt .gz rotation is an error of that file only."""
    root = guest(tmp_path)
    write_log(root, [info(AS_OF - timedelta(hours=1), "live")])
    (root / "var" / "log" / "waagent.log.1.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    window = read_window(Root(root), AS_OF - DAY, AS_OF)
    assert [r.message for r in window.records] == ["live"]
    (err,) = window.errors
    assert err.guest_path == "/var/log/waagent.log.1.gz"


def test_truncated_gzip_keeps_what_was_readable(tmp_path: Path) -> None:
    """A .gz cut short gives its readable records and an error."""
    root = guest(tmp_path)
    lines = [info(AS_OF - timedelta(hours=5, seconds=i), f"r{i}" + "x" * 200) for i in range(2000)]
    data = gzip.compress(("\n".join(reversed(lines)) + "\n").encode())
    (root / "var" / "log" / "waagent.log.1.gz").write_bytes(data[: len(data) // 2])
    window = read_window(Root(root), AS_OF - DAY, AS_OF)
    assert window.records and len(window.records) < 2000
    assert window.errors[0].guest_path == "/var/log/waagent.log.1.gz"
    assert not window.present


def test_binary_junk_nuls_and_invalid_utf8_do_not_crash(tmp_path: Path) -> None:
    """Junk between records is skipped; a record after a NUL run (unclean shutdown) is kept."""
    root = guest(tmp_path)
    path = root / "var" / "log" / "waagent.log"
    t = AS_OF - timedelta(hours=1)
    path.write_bytes(
        info(t, "before junk").encode()
        + b"\n"
        + os.urandom(300_000)
        + b"\n\xff\xfe invalid utf-8 \xc3\x28\n"
        + b"x" * 500_000  # a 500 kB line
        + b"\n"
        + b"\x00" * 100_000
        + info(t + timedelta(minutes=1), "after NULs \xe9").encode("latin-1")
        + b"\n"
    )
    window = read_window(Root(root), AS_OF - DAY, AS_OF)
    messages = [r.headline for r in window.records]
    assert messages[0] == "before junk"
    assert messages[-1] == "after NULs \ufffd"
    assert all(len(r.message) <= logscan.MAX_RECORD_TEXT for r in window.records)


def test_sparse_2gb_log_is_read_from_the_end(tmp_path: Path) -> None:
    """A 2 GB log (a sparse hole, then records) is read from its end with little memory."""
    root = guest(tmp_path)
    path = root / "var" / "log" / "waagent.log"
    size = 2 * 1024**3
    with path.open("wb") as fh:
        fh.truncate(size)
        fh.seek(size)
        fh.write(
            (
                "\n".join(info(AS_OF - timedelta(minutes=10 - i), f"record {i}") for i in range(10))
                + "\n"
            ).encode()
        )
    tracemalloc.start()
    try:
        window = read_window(Root(root), AS_OF - DAY, AS_OF)
        when = logscan.newest_record_time(Root(root))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r.message for r in window.records] == [f"record {i}" for i in range(10)]
    assert window.records[0].source.startswith("/var/log/waagent.log@offset ")
    assert window.files[0].bytes_read < 8 * 1024 * 1024
    assert when == AS_OF - timedelta(minutes=1)
    assert peak < 16 * 1024 * 1024


def test_window_caps_keep_the_newest(tmp_path: Path) -> None:
    """More records than the cap: the newest are kept and the window says it is truncated."""
    root = guest(tmp_path)
    n = logscan.MAX_RECORDS + 500
    lines = [info(AS_OF - timedelta(seconds=n - i), f"r{i}") for i in range(n)]
    write_log(root, lines)
    window = read_window(Root(root), AS_OF - DAY, AS_OF)
    assert len(window.records) == logscan.MAX_RECORDS
    assert window.records[-1].message == f"r{n - 1}"
    assert window.truncated


def test_fifo_in_place_of_the_log_is_an_error_not_a_hang(tmp_path: Path) -> None:
    """A FIFO at /var/log/waagent.log is refused at once (O_NONBLOCK) and recorded."""
    root = guest(tmp_path)
    os.mkfifo(root / "var" / "log" / "waagent.log")
    window = read_window(Root(root), AS_OF - DAY, AS_OF)
    (err,) = window.errors
    assert "fifo" in err.reason
    assert logscan.newest_record_time(Root(root)) is None


def test_symlink_out_of_the_root_is_never_followed(tmp_path: Path) -> None:
    """waagent.log -> a host file outside the tree reads nothing from the host."""
    outside = tmp_path / "host-secret.log"
    outside.write_text(info(AS_OF, "host secret") + "\n")
    root = guest(tmp_path / "guest")
    os.symlink(str(outside), root / "var" / "log" / "waagent.log")
    os.symlink("../../../../../host-secret.log", root / "var" / "log" / "waagent.log.1")
    window = read_window(Root(root), AS_OF - DAY, AS_OF)
    assert not window.records
    assert not window.present
    assert logscan.newest_record_time(Root(root)) is None


def test_missing_log_is_absent_not_an_error(tmp_path: Path) -> None:
    """No waagent.log at all: present is False and nothing is an error."""
    window = read_window(Root(guest(tmp_path)), AS_OF - DAY, AS_OF)
    assert (window.present, window.records, window.errors) == (False, (), ())


def test_newest_record_time_ignores_a_trailing_extension_line(tmp_path: Path) -> None:
    """The newest agent record wins over an extension's own line written after it."""
    root = guest(tmp_path)
    t = AS_OF - timedelta(hours=3)
    write_log(
        root,
        [
            info(t, "agent"),
            at(AS_OF + timedelta(hours=5), line_with("started to handle")),
            "continuation",
        ],
    )
    assert logscan.newest_record_time(Root(root)) == t


def test_newest_record_time_falls_back_to_the_newest_rotation(tmp_path: Path) -> None:
    """Right after a rotation the live log is empty; the time comes from waagent.log.1."""
    root = guest(tmp_path)
    (root / "var" / "log" / "waagent.log").write_bytes(b"")
    write_log(root, [info(AS_OF, "last before rotation")], "waagent.log.1")
    assert logscan.newest_record_time(Root(root)) == AS_OF


# -- incremental reading -----------------------------------------------------------------------
def append(path: Path, lines: list[str]) -> None:
    with path.open("ab") as fh:
        fh.write(("\n".join(lines) + "\n").encode())


def test_read_new_returns_only_what_was_appended(tmp_path: Path) -> None:
    """A cursor at the end returns nothing; appended records come next, with line numbers."""
    root = guest(tmp_path)
    path = write_log(root, [info(AS_OF, "old 1"), info(AS_OF, "old 2")])
    recs, cur = read_new(Root(root), None)
    assert recs == ()
    append(path, [info(AS_OF, "new 1"), "  continuation", info(AS_OF, "new 2")])
    recs, cur = read_new(Root(root), cur)
    assert [r.headline for r in recs] == ["new 1", "new 2"]
    assert recs[0].message == "new 1\n  continuation"
    recs, cur = read_new(Root(root), cur)
    assert recs == ()
    # From a fresh cursor the whole file is read and lines are numbered.
    recs, cur = read_new(Root(root), LogCursor())
    assert [r.line for r in recs] == [1, 2, 3, 5]
    assert cur.line == 5
    assert LogCursor.from_dict(cur.as_dict()) == cur


def test_read_new_waits_for_a_partial_line(tmp_path: Path) -> None:
    """A line still being written (no newline yet) is read once it is complete."""
    root = guest(tmp_path)
    path = write_log(root, [info(AS_OF, "a")])
    _, cur = read_new(Root(root), LogCursor())
    with path.open("ab") as fh:
        fh.write(info(AS_OF, "half").encode())
    recs, cur2 = read_new(Root(root), cur)
    assert recs == () and cur2 == cur
    with path.open("ab") as fh:
        fh.write(b" done\n")
    recs, _ = read_new(Root(root), cur2)
    assert [r.message for r in recs] == ["half done"]


def test_read_new_bounded_per_call(tmp_path: Path) -> None:
    """max_bytes bounds each call; successive calls return every record once, in order."""
    root = guest(tmp_path)
    write_log(root, [info(AS_OF, f"r{i}") for i in range(1000)])
    seen: list[str] = []
    cur = LogCursor()
    for _ in range(200):
        recs, cur = read_new(Root(root), cur, max_bytes=4096)
        seen.extend(r.message for r in recs)
        if not recs:
            break
    assert seen == [f"r{i}" for i in range(1000)]


def test_read_new_after_rotation_finishes_the_old_file(tmp_path: Path) -> None:
    """logrotate renames the log: the rest of the old file comes first, then the new file."""
    root = guest(tmp_path)
    path = write_log(root, [info(AS_OF, "a")])
    _, cur = read_new(Root(root), LogCursor())
    append(path, [info(AS_OF, "b")])
    path.rename(root / "var" / "log" / "waagent.log-2025-09-06-1757160000")
    write_log(root, [info(AS_OF, "c")])
    recs, cur = read_new(Root(root), cur)
    assert [(r.message, r.path) for r in recs] == [
        ("b", "/var/log/waagent.log-2025-09-06-1757160000"),
        ("c", "/var/log/waagent.log"),
    ]
    assert cur.offset == path.stat().st_size


def test_read_new_after_copytruncate_starts_over(tmp_path: Path) -> None:
    """The same file truncated in place is read again from its start."""
    root = guest(tmp_path)
    path = write_log(root, [info(AS_OF, "a"), info(AS_OF, "b")])
    _, cur = read_new(Root(root), LogCursor())
    path.write_bytes(b"")
    append(path, [info(AS_OF, "fresh")])
    recs, _ = read_new(Root(root), cur)
    assert [r.message for r in recs] == ["fresh"]


def test_cursor_from_bad_state_is_fresh() -> None:
    """A malformed cursor from state.json gives a fresh cursor, never an exception."""
    assert LogCursor.from_dict({"dev": "x"}) == LogCursor()
    assert LogCursor.from_dict(None) == LogCursor()
    assert LogCursor.from_dict({"dev": 1, "inode": 2, "offset": 3, "line": True}).line is None


def test_verbose_records_are_left_out_unless_asked_for(tmp_path: Path) -> None:
    """VERBOSE records end the record before them but are kept only with keep_verbose."""
    root = guest(tmp_path)
    t = AS_OF - timedelta(hours=1)
    lines = [
        info(t, "info 1"),
        at(t, line_with("Report vm agent status")),
        "  verbose continuation",
        info(t, "info 2"),
    ]
    write_log(root, lines)
    write_log(root, lines, "waagent.log.1.gz")
    for keep, expected in ((False, ["info 1", "info 2"]), (True, ["info 1", "Report", "info 2"])):
        window = read_window(Root(root), AS_OF - DAY, AS_OF, keep_verbose=keep)
        got = [r.headline.split(" vm")[0] for r in window.records]
        assert got == expected * 2
        assert all("continuation" not in r.message for r in window.records if r.level == "INFO")


def test_gzip_line_numbers_after_skipped_blocks(tmp_path: Path) -> None:
    """Blocks before the window are only counted, yet line numbers stay exact."""
    root = guest(tmp_path)
    old = [info(AS_OF - timedelta(days=5), f"old {i} " + "y" * 100) for i in range(20000)]
    new = [info(AS_OF - timedelta(hours=2), "new"), "  more", "x" * 100_000, info(AS_OF, "last")]
    write_log(root, [*old, *new], "waagent.log.1.gz")
    window = read_window(Root(root), AS_OF - DAY, AS_OF)
    first, last = window.records
    assert (first.line, last.line) == (20001, 20004)
    # Past the record cap the lines nearest the first line are kept.
    assert first.message.startswith("new\n  more")
    assert len(first.message) <= logscan.MAX_RECORD_TEXT
    assert window.files[0].bytes_read > 2_000_000


def test_read_new_leaves_out_verbose_like_the_window(tmp_path: Path) -> None:
    """read_new drops VERBOSE records unless keep_verbose, as read_window does."""
    root = guest(tmp_path)
    write_log(root, [info(AS_OF, "a"), at(AS_OF, line_with("Report vm agent status"))])
    recs, _ = read_new(Root(root), LogCursor())
    assert [r.level for r in recs] == ["INFO"]
    recs, _ = read_new(Root(root), LogCursor(), keep_verbose=True)
    assert [r.level for r in recs] == ["INFO", "VERBOSE"]


def test_newest_record_time_from_a_gzip_rotation(tmp_path: Path) -> None:
    """The agent's logrotate compresses at once: the newest time may come from a .gz."""
    root = guest(tmp_path)
    (root / "var" / "log" / "waagent.log").write_bytes(b"")
    lines = [info(AS_OF - timedelta(seconds=50000 - i), f"r{i}") for i in range(50000)]
    write_log(root, [*lines, "  continuation"], "waagent.log-2025-09-06-1757160000.gz")
    assert logscan.newest_record_time(Root(root)) == AS_OF - timedelta(seconds=1)
