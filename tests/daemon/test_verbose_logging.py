"""Logs.Verbose edits of waagent.conf: line-preserving, atomic, reverted, operator wins."""

from __future__ import annotations

import os
import random
import signal
import stat
import time
from pathlib import Path

import pytest

from waagent_doctor.actions import verbose_logging as vl
from waagent_doctor.paths import Root
from waagent_doctor.probes import waagent_conf

DATA = Path(__file__).resolve().parent.parent / "data" / "walinuxagent" / "etc" / "waagent_conf"
FLAVOURS = ["generic", "ubuntu", "suse", "mariner"]


def guest(tmp_path: Path, text: str | bytes) -> Root:
    """A guest tree with only /etc/waagent.conf."""
    (tmp_path / "etc").mkdir(parents=True, exist_ok=True)
    conf = tmp_path / "etc" / "waagent.conf"
    if isinstance(text, str):
        conf.write_text(text)
    else:
        conf.write_bytes(text)
    return Root(tmp_path)


def conf_bytes(tmp_path: Path) -> bytes:
    return (tmp_path / "etc" / "waagent.conf").read_bytes()


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_enable_changes_only_the_value(tmp_path: Path, flavour: str) -> None:
    """On the agent's shipped files, exactly one line changes and only its value."""
    original = (DATA / flavour / "waagent.conf").read_bytes()
    root = guest(tmp_path, original)
    rec = vl.enable(root, now=1000.0, hours=24)
    after = conf_bytes(tmp_path)
    before_lines, after_lines = original.split(b"\n"), after.split(b"\n")
    assert len(before_lines) == len(after_lines)
    changed = [(a, b) for a, b in zip(before_lines, after_lines) if a != b]
    assert changed == [(b"Logs.Verbose=n", b"Logs.Verbose=y")]
    assert waagent_conf.parse(after.decode()).switch("Logs.Verbose") is True
    assert rec.original == "n" and rec.original_line == "Logs.Verbose=n"
    assert rec.revert_after == 1000.0 + 24 * 3600


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_revert_restores_the_exact_bytes(tmp_path: Path, flavour: str) -> None:
    """enable then revert gives back the original file byte for byte."""
    original = (DATA / flavour / "waagent.conf").read_bytes()
    root = guest(tmp_path, original)
    rec = vl.enable(root, now=0.0, hours=1)
    assert vl.revert(root, rec).startswith("restored")
    assert conf_bytes(tmp_path) == original


def test_inline_comment_quotes_and_duplicates(tmp_path: Path) -> None:
    """The effective (last) line is edited; its quotes, spacing and comment stay."""
    text = 'Logs.Verbose=y\n# Logs.Verbose=y\nLogs.Verbose = "n"  # quiet please\nOther=1'
    root = guest(tmp_path, text)
    rec = vl.enable(root, now=0.0, hours=1)
    assert conf_bytes(tmp_path).decode() == (
        'Logs.Verbose=y\n# Logs.Verbose=y\nLogs.Verbose = "y"  # quiet please\nOther=1'
    )
    vl.revert(root, rec)
    assert conf_bytes(tmp_path).decode() == text


def test_absent_key_is_appended_then_removed(tmp_path: Path) -> None:
    """No Logs.Verbose line: one is appended, and the revert removes it again."""
    text = "# comment\nExtensions.Enabled=y\n"
    root = guest(tmp_path, text)
    rec = vl.enable(root, now=0.0, hours=1)
    assert conf_bytes(tmp_path).decode() == text + "Logs.Verbose=y\n"
    assert rec.original is None and rec.original_line is None
    assert vl.revert(root, rec).startswith("removed")
    assert conf_bytes(tmp_path).decode() == text


def test_operator_change_is_kept(tmp_path: Path) -> None:
    """If the operator set another value meanwhile, the revert leaves it alone."""
    root = guest(tmp_path, "Logs.Verbose=n\n")
    rec = vl.enable(root, now=0.0, hours=1)
    (tmp_path / "etc" / "waagent.conf").write_text("Logs.Verbose=n # I decide\n")
    assert vl.revert(root, rec).startswith("kept")
    assert conf_bytes(tmp_path) == b"Logs.Verbose=n # I decide\n"


def test_mode_and_owner_are_kept(tmp_path: Path) -> None:
    """Permissions and ownership of the file survive the replacement."""
    root = guest(tmp_path, "Logs.Verbose=n\n")
    conf = tmp_path / "etc" / "waagent.conf"
    conf.chmod(0o640)
    if os.geteuid() == 0:
        os.chown(conf, 1234, 5678)
    before = conf.stat()
    vl.enable(root, now=0.0, hours=1)
    after = conf.stat()
    assert before.st_ino != after.st_ino  # really replaced, not rewritten in place
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)


def test_non_utf8_bytes_survive(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 (a Latin-1 comment) are written back unchanged."""
    raw = b"# caf\xe9\nLogs.Verbose=n\n"
    root = guest(tmp_path, raw)
    rec = vl.enable(root, now=0.0, hours=1)
    assert conf_bytes(tmp_path) == b"# caf\xe9\nLogs.Verbose=y\n"
    vl.revert(root, rec)
    assert conf_bytes(tmp_path) == raw


def test_pending_record_reconciled_after_a_crash(tmp_path: Path) -> None:
    """A plan saved before the edit is kept if the edit landed, dropped if it did not."""
    root = guest(tmp_path, "Logs.Verbose=n\n")
    plan = vl.plan(root, now=0.0, hours=1, code="agent.crash_loop")
    assert vl.reconcile(root, plan) is None
    vl.enable(root, now=0.0, hours=1)
    done = vl.reconcile(root, plan)
    assert done is not None and done.phase == "applied" and done.original == "n"


def test_missing_file_is_an_edit_error(tmp_path: Path) -> None:
    """No waagent.conf: EditError with the path, nothing created."""
    with pytest.raises(vl.EditError, match=r"/etc/waagent\.conf"):
        vl.enable(Root(tmp_path), now=0.0, hours=1)
    assert not (tmp_path / "etc").exists()


def test_sigkill_during_edits_never_leaves_a_partial_file(tmp_path: Path) -> None:
    """A child edits waagent.conf in a loop; SIGKILL it 300 times: always old or new, whole."""
    old = (DATA / "generic" / "waagent.conf").read_bytes()
    new = old.replace(b"Logs.Verbose=n", b"Logs.Verbose=y")
    root = guest(tmp_path, old)
    conf = tmp_path / "etc" / "waagent.conf"
    rng = random.Random(5)  # noqa: S311 - kill timing, not cryptography
    seen: set[bytes] = set()
    for _ in range(300):
        pid = os.fork()
        if pid == 0:  # the child: enable/revert forever
            try:
                while True:
                    rec = vl.enable(root, now=0.0, hours=1)
                    vl.revert(root, rec)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.0, 0.02))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        content = conf.read_bytes()
        assert content in (old, new), "partial or lost waagent.conf"
        seen.add(content)
        if content == new:  # start the next round from the old version, as a revert would
            rec = vl.plan(root, now=0.0, hours=1, code="")
            assert rec.original == "y"
            conf.write_bytes(old)
    assert seen == {old, new}, "the kills never landed between the two states"
    # Leftover temporary files are hidden (dot-named) and removable; nothing else appeared.
    others = {p.name for p in conf.parent.iterdir()} - {"waagent.conf"}
    assert all(n.startswith(".waagent.conf.") and n.endswith(".tmp") for n in others)


@pytest.mark.parametrize(
    "original",
    [
        b"# no final newline, no key\nExtensions.Enabled=y",
        b"",
        b"\n\n",
        b"Extensions.Enabled=y\r\nAutoUpdate.Enabled=y\r\n",
        b"Extensions.Enabled=y\r\nAutoUpdate.Enabled=y",
        b"Extensions.Enabled=y\nLogs.Verbose=n",
        b"Logs.Verbose=n\r\n",
        b'Logs.Verbose = "n"  # quiet',
    ],
    ids=["no-newline", "empty", "blank-lines", "crlf", "crlf-no-newline", "key-last-no-newline",
         "key-crlf", "key-quoted-no-newline"],
)  # fmt: skip
def test_revert_is_byte_exact_for_any_ending(tmp_path: Path, original: bytes) -> None:
    """With or without a final newline (LF or CRLF), with or without the key: enable turns
    verbose logging on, revert gives back the very bytes."""
    root = guest(tmp_path, original)
    rec = vl.enable(root, now=0.0, hours=1)
    assert waagent_conf.parse(conf_bytes(tmp_path).decode()).switch("Logs.Verbose") is True
    vl.revert(root, rec)
    assert conf_bytes(tmp_path) == original


def _xattrs_or_skip(path: Path) -> None:
    try:
        os.setxattr(path, "user.waagent-doctor-test", b"label\x00kept")
    except OSError as exc:
        pytest.skip(f"{path.parent} does not take user.* xattrs: {exc.strerror}")


def test_xattrs_survive_the_replacement(tmp_path: Path) -> None:
    """The replaced waagent.conf keeps the old file's user.* xattrs (the path security.selinux
    takes too), after the edit and after the revert."""
    root = guest(tmp_path, "Logs.Verbose=n\n")
    conf = tmp_path / "etc" / "waagent.conf"
    _xattrs_or_skip(conf)
    inode = conf.stat().st_ino
    rec = vl.enable(root, now=0.0, hours=1)
    assert conf.stat().st_ino != inode
    assert os.getxattr(conf, "user.waagent-doctor-test") == b"label\x00kept"
    vl.revert(root, rec)
    assert os.getxattr(conf, "user.waagent-doctor-test") == b"label\x00kept"
    assert conf_bytes(tmp_path) == b"Logs.Verbose=n\n"
