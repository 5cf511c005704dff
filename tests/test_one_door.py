"""Probes and checks reach guest files only through the Root (DESIGN: one door).

With `--root DIR`, a stray `open()` or `os.path` call would read the rescue VM's own files
instead of the guest's; this test keeps such calls out of probes/ and checks/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "waagent_doctor"
# open( that is not a method (root.open, gzip.open of a Root stream are fine), os.path, the
# glob module, subprocess, and os-level directory/stat calls.
FORBIDDEN = re.compile(
    r"(?<![.\w])open\(|\bos\.path\b|\bglob\.|\bimport glob\b|\bfrom glob\b|\bsubprocess\b"
    r"|\bos\.(listdir|stat|lstat|scandir|walk|open)\("
)
# Live-only reads of the kernel's view of this host's processes: never a guest file, and never
# called offline (the processes probe is live-only).
ALLOWED = {
    ("probes/processes.py", 'Path(f"/proc/{pid}/cmdline").read_bytes()'),
    ("probes/processes.py", 'Path(f"/proc/{pid}/ns/pid").readlink()'),
}
DIRECT_PATH_IO = re.compile(r"Path\([^)]*\)\.(read_bytes|read_text|open|readlink|iterdir)\(")


def _code_lines(path: Path) -> list[tuple[int, str]]:
    out = []
    in_doc = False
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if stripped.count('"""') == 1:
            in_doc = not in_doc
            continue
        if in_doc or stripped.startswith("#") or stripped.startswith('"""'):
            continue
        out.append((n, line.split("  #", 1)[0]))
    return out


@pytest.mark.parametrize(
    "module",
    sorted(p for d in ("probes", "checks") for p in (SRC / d).glob("*.py")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_no_direct_file_or_process_access(module: Path) -> None:
    """No open(), os.path, glob or subprocess in probes/ and checks/: the Root and the runner."""
    rel = f"{module.parent.name}/{module.name}"
    bad = []
    for n, line in _code_lines(module):
        if any(rel == a and snippet in line for a, snippet in ALLOWED):
            continue
        if FORBIDDEN.search(line) or DIRECT_PATH_IO.search(line):
            bad.append(f"{rel}:{n}: {line.strip()}")
    assert not bad, "direct I/O outside the Root:\n" + "\n".join(bad)
