"""The Root keeps every read inside the guest tree and refuses what is not a regular file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from waagent_doctor.paths import InputError, Root


def test_absolute_symlink_resolves_inside_the_root(tmp_path: Path) -> None:
    """/etc/x -> /usr/lib/x reads the guest's /usr/lib/x, not the host's."""
    (tmp_path / "usr" / "lib").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "x").write_text("guest")
    (tmp_path / "etc").mkdir()
    os.symlink("/usr/lib/x", tmp_path / "etc" / "x")
    assert Root(tmp_path).read_text("/etc/x") == "guest"


def test_symlink_escaping_with_dotdot_stays_inside(tmp_path: Path) -> None:
    """../../../../etc/passwd from inside the tree cannot climb above the root."""
    guest = tmp_path / "guest"
    (guest / "var" / "log").mkdir(parents=True)
    (tmp_path / "secret").write_text("host secret")
    os.symlink("../../../secret", guest / "var" / "log" / "waagent.log")
    with pytest.raises(InputError) as exc:
        Root(guest).read_text("/var/log/waagent.log")
    assert exc.value.missing


def test_merged_usr_directory_link(tmp_path: Path) -> None:
    """/lib -> usr/lib (merged /usr) resolves like on the guest."""
    (tmp_path / "usr" / "lib" / "systemd").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "systemd" / "u").write_text("unit")
    os.symlink("usr/lib", tmp_path / "lib")
    assert Root(tmp_path).read_text("/lib/systemd/u") == "unit"
    assert Root(tmp_path).listdir("/lib/systemd") == ["u"]


def test_symlink_loop_is_an_input_error(tmp_path: Path) -> None:
    """A link loop is reported, not followed forever."""
    os.symlink("/b", tmp_path / "a")
    os.symlink("/a", tmp_path / "b")
    with pytest.raises(InputError, match="symbolic links"):
        Root(tmp_path).read_text("/a")


def test_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    """A FIFO where a file is expected is refused at once (no writer would hang a plain open)."""
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(InputError, match="fifo"):
        Root(tmp_path).read_text("/pipe")


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    """A structured file over the limit is refused without reading it whole."""
    big = tmp_path / "big.json"
    with big.open("wb") as fh:
        fh.truncate(50 * 1024 * 1024)
    with pytest.raises(InputError, match="larger than"):
        Root(tmp_path).read_bytes("/big.json", max_bytes=1024)


def test_permission_denied_is_an_input_error(tmp_path: Path) -> None:
    """An unreadable file gives an InputError naming the guest path (checked as nobody)."""
    f = tmp_path / "locked"
    f.write_text("x")
    f.chmod(0)
    tmp_path.chmod(0o755)
    pid = os.fork()
    if pid == 0:  # child: drop to nobody when root, so DAC applies
        code = 1
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            Root(tmp_path).read_text("/locked")
        except InputError as exc:
            code = 0 if exc.guest_path == "/locked" and not exc.missing else 2
        except BaseException:  # noqa: BLE001 - the child must always reach _exit
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_walk_does_not_follow_links(tmp_path: Path) -> None:
    """walk lists regular files only and never enters a linked directory."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    os.symlink("/", tmp_path / "d" / "loop")
    assert list(Root(tmp_path).walk("/d")) == ["/d/f"]
