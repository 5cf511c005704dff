"""The multi-member .tar.gz writer: entries of unknown size read back by every reader."""

from __future__ import annotations

import gzip
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from waagent_doctor.bundle.archive import TarGzWriter, stored_member


def _write(path: Path) -> dict[str, bytes]:
    content = {
        "b/report.json": b"{}\n",
        "b/var/log/waagent.log": b"".join(b"line %d\n" % i for i in range(200_000)),
        "b/" + "long-folder-name/" * 10 + "file.txt": b"long name",
        "b/empty": b"",
        "b/after": b"x" * 513,
    }
    with path.open("w+b") as fh:
        w = TarGzWriter(fh)
        w.add_bytes("b/report.json", content["b/report.json"], 1_700_000_000)
        entry = w.open_stream("b/var/log/waagent.log", 1_700_000_000)
        data = content["b/var/log/waagent.log"]
        for i in range(0, len(data), 65536):
            entry.write(data[i : i + 65536])
        entry.close()
        long_name = "b/" + "long-folder-name/" * 10 + "file.txt"
        entry = w.open_stream(long_name, 1_700_000_000)
        entry.write(b"long name")
        entry.close()
        w.open_stream("b/empty", 1_700_000_000).close()
        w.add_bytes("b/after", content["b/after"], 1_700_000_000)
        w.close()
    return content


def test_python_tarfile_reads_streamed_entries(tmp_path: Path) -> None:
    """Sizes patched after the data are right, long names survive, modes are 0600."""
    path = tmp_path / "t.tar.gz"
    content = _write(path)
    with tarfile.open(path, "r:gz") as tf:
        got = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}  # type: ignore[union-attr]
        assert all(m.mode == 0o600 for m in tf.getmembers())
    assert got == content
    assert gzip.decompress(path.read_bytes())[-1024:] == b"\0" * 1024


def test_gnu_tar_and_gzip_read_it(tmp_path: Path, allow_subprocess: Any) -> None:
    """gzip -t and GNU tar accept the multi-member stream and extract the same bytes."""
    path = tmp_path / "t.tar.gz"
    content = _write(path)
    out = tmp_path / "x"
    out.mkdir()
    with allow_subprocess("tar", "gzip"):
        subprocess.run(["gzip", "-t", str(path)], check=True)
        subprocess.run(["tar", "-xzf", str(path), "-C", str(out)], check=True)
    for name, data in content.items():
        assert (out / name).read_bytes() == data


def test_stored_member_is_a_valid_gzip_member() -> None:
    """The placeholder member decompresses to its payload with a correct CRC."""
    assert gzip.decompress(stored_member(b"header" * 100)) == b"header" * 100
