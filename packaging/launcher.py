#!/usr/bin/python3 -I
"""waagent-doctor launcher: put the bundled libraries for this Python on sys.path, then run.

Installed as /usr/bin/waagent-doctor by the .deb and .rpm. The packages carry the Python
dependencies the distributions lack (pydantic 2 and its compiled pydantic-core, ...) under
/usr/lib/waagent-doctor/site/: `common` holds pure-Python code, `abi3-<machine>` code built for
the stable ABI, `cp3X-<machine>` code built for one CPython version. The distribution's own
python3 runs it; systemd-python comes from its python3-systemd package. `-I` keeps the caller's
PYTHONPATH and user site-packages out of a program that runs as root.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from pathlib import Path

# platform.machine() spellings -> the manylinux names the slices are built for.
_MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
EXIT_CANNOT_RUN = 3


def slice_names(version: Sequence[int], machine: str) -> list[str]:
    """The site folders this interpreter needs, most specific first."""
    arch = _MACHINES.get(machine.lower(), machine.lower())
    return [f"cp{version[0]}{version[1]}-{arch}", f"abi3-{arch}", "common"]


def site_paths(libdir: Path, version: Sequence[int], machine: str) -> list[str]:
    """The site folders under LIBDIR for VERSION on MACHINE; ValueError says what is missing."""
    site = libdir / "site"
    wanted = slice_names(version, machine)
    try:
        present = sorted(p.name for p in site.iterdir())
    except OSError as exc:
        raise ValueError(f"the bundled libraries are missing ({site}: {exc.strerror})") from None
    if wanted[0] not in present:
        have = ", ".join(n for n in present if n.startswith("cp")) or "none"
        raise ValueError(
            f"no bundled libraries for Python {version[0]}.{version[1]} on {machine} "
            f"(this package has: {have})"
        )
    return [str(site / n) for n in wanted if n in present]


def default_libdir(script: str) -> Path:
    """lib/waagent-doctor next to SCRIPT's bin folder (so an unpacked payload runs too)."""
    return Path(script).resolve().parent.parent / "lib" / "waagent-doctor"


def main() -> None:
    """Select the site folders, then hand over to waagent_doctor.cli.entry()."""
    try:
        paths = site_paths(default_libdir(__file__), sys.version_info[:2], platform.machine())
    except ValueError as exc:
        sys.stderr.write(f"waagent-doctor: {exc}\n")
        raise SystemExit(EXIT_CANNOT_RUN) from None
    sys.path[0:0] = paths
    from waagent_doctor.cli import entry

    entry()


if __name__ == "__main__":
    main()
