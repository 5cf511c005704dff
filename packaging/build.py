#!/usr/bin/env python3
"""Build the waagent-doctor .deb and .rpm into dist/ (`make deb`, `make rpm`).

Why this shape: the packages must run on the distribution's own python3 (3.9 to 3.13: RHEL 9,
Ubuntu 22.04/24.04, Debian 12) with nothing fetched at install time, and pydantic 2 (with its
compiled pydantic-core) is in none of them. So the build downloads, from PyPI, the wheels of
packaging/requirements.lock for every CPython 3.9-3.13 x manylinux2014 x86_64/aarch64, unpacks
them into /usr/lib/waagent-doctor/site/{common,abi3-<machine>,cp3X-<machine>}/ and the launcher
/usr/bin/waagent-doctor (packaging/launcher.py) puts the folders for the running interpreter on
sys.path. Unpacked folders (not a zip/pex) because a pex needs a writable cache at run time,
which the hardened unit (ProtectSystem=strict) does not give, and plain files are what dpkg/rpm
can verify. systemd-python comes from the distribution's python3-systemd.

Usage: packaging/build.py {deb,rpm,all,man} [--arch amd64,arm64] [--release N] [--out DIR]
Run it with the project's venv python (it needs pip, and `man` imports the CLI).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gzip
import hashlib
import io
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "packaging"
NAME = "waagent-doctor"
PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
# Debian architecture -> machine (uname -m, RPM architecture, manylinux platform suffix).
ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}
MANYLINUX = "manylinux2014"
MAINTAINER = os.environ.get(
    "WAAGENT_DOCTOR_MAINTAINER", "waagent-doctor maintainers <maintainers@waagent-doctor.example>"
)
SUMMARY = "Diagnose and heal the Azure Linux VM agent and the VM backup extension"
DESCRIPTION = """\
waagent-doctor finds out why Azure VM backups fail with "Could not communicate
with the VM agent for snapshot status - Snapshot VM sub-task timed out". It
watches the Azure VM agent (WALinuxAgent) and the backup extension
(VMSnapshotLinux), names which of the four causes applies (network access, the
VM agent, the backup extension, snapshot conditions inside the VM) with
evidence, records every finding in the journal, heals what it can within a
budget, and bundles redacted logs for a support ticket.

The package carries the Python libraries the distribution lacks (pydantic 2
and others) for CPython 3.9 to 3.13; it runs on the distribution's python3."""

# Every vendored distribution: (SPDX licence, Debian licence name, copyright). The build
# refuses a wheel missing here, so a new dependency cannot ship without its licence reviewed.
VENDORED = {
    "annotated-types": ("MIT", "Expat", "2022 the annotated-types contributors"),
    "defusedxml": ("PSF-2.0", "PSF-2", "2013-2017 Christian Heimes"),
    "prometheus-client": (
        "Apache-2.0 AND BSD-2-Clause",
        "Apache-2.0 and BSD-2-clause",
        "2015 The Prometheus Authors",
    ),
    "psutil": ("BSD-3-Clause", "BSD-3-clause", "2009 Jay Loden, Dave Daeschler, Giampaolo Rodola"),
    "pydantic": (
        "MIT",
        "Expat",
        "2017 to present Pydantic Services Inc. and individual contributors",
    ),
    "pydantic-core": ("MIT", "Expat", "2022 Samuel Colvin"),
    "structlog": (
        "MIT OR Apache-2.0",
        "Expat or Apache-2.0",
        "2013 Hynek Schlawack and the structlog contributors",
    ),
    "tenacity": ("Apache-2.0", "Apache-2.0", "2016 Julien Danjou and the tenacity contributors"),
    "tomli": ("MIT", "Expat", "2021 Taneli Hukkinen"),
    "typing-extensions": ("PSF-2.0", "PSF-2", "2001-2024 Python Software Foundation"),
    "typing-inspection": ("MIT", "Expat", "2025 to present Pydantic Services Inc."),
}


class BuildError(Exception):
    """The packages cannot be built; the message says why."""


def log(msg: str) -> None:
    """Progress on stderr."""
    sys.stderr.write(f"build: {msg}\n")


# --- version and changelog -----------------------------------------------------------------------


def read_version() -> str:
    """__version__ from src/waagent_doctor/__init__.py, the one source of truth."""
    # __version__ = "0.1.0"
    text = (ROOT / "src" / "waagent_doctor" / "__init__.py").read_text(encoding="utf-8")
    m = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.MULTILINE)
    if not m:
        raise BuildError("no __version__ in src/waagent_doctor/__init__.py")
    return m.group(1)


def package_version(version: str) -> str:
    """A Python version as Debian/RPM order it: 1.0rc1 -> 1.0~rc1 (sorts before 1.0)."""
    return re.sub(r"(\d)\.?(a|b|rc|dev)(\d*)$", r"\1~\2\3", version)


@dataclasses.dataclass(frozen=True)
class Release:
    """One `## [X.Y.Z] - YYYY-MM-DD` section of CHANGELOG.md."""

    version: str
    date: dt.date
    entries: tuple[str, ...]  # "Added: text" (one bullet, joined lines)


def changelog_releases(text: str) -> list[Release]:
    """The released sections of a Keep a Changelog file, newest first."""
    releases: list[Release] = []
    # ## [0.1.0] - 2026-11-26
    head = re.compile(r"^## \[([^\]]+)\] - (\d{4}-\d{2}-\d{2})\s*$")
    cur: Optional[tuple[str, dt.date]] = None
    kind = ""
    entries: list[str] = []

    def close() -> None:
        if cur is not None:
            releases.append(Release(cur[0], cur[1], tuple(entries)))

    for line in text.splitlines():
        if line.startswith("## "):
            close()
            entries = []
            m = head.match(line)
            cur = (m.group(1), dt.date.fromisoformat(m.group(2))) if m else None
        elif cur is None:
            continue
        elif line.startswith("### "):
            kind = line[4:].strip()
        elif line.startswith("- "):
            entries.append(f"{kind}: {line[2:].strip()}" if kind else line[2:].strip())
        elif line.startswith("  ") and entries:
            entries[-1] += " " + line.strip()
    close()
    return releases


def release_for(version: str) -> tuple[Release, list[Release]]:
    """The CHANGELOG.md section of VERSION (required) and every release."""
    releases = changelog_releases((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    for r in releases:
        if r.version == version:
            return r, releases
    raise BuildError(f"CHANGELOG.md has no '## [{version}] - YYYY-MM-DD' section")


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    words, lines, cur = text.split(), [], first
    for w in words:
        if len(cur) + len(w) + 1 > width and cur.strip() not in ("", first.strip()):
            lines.append(cur.rstrip())
            cur = rest
        cur += w + " "
    lines.append(cur.rstrip())
    return lines


def debian_changelog(releases: list[Release], newest_deb_version: str) -> str:
    """changelog.Debian from CHANGELOG.md; the newest entry carries this build's revision."""
    out: list[str] = []
    for i, r in enumerate(releases):
        ver = newest_deb_version if i == 0 else f"{package_version(r.version)}-1"
        out.append(f"{NAME} ({ver}) unstable; urgency=medium\n")
        for e in r.entries or ("Release.",):
            out.extend(_wrap(e, 78, "  * ", "    "))
        when = dt.datetime(r.date.year, r.date.month, r.date.day, tzinfo=dt.timezone.utc)
        out.append(f"\n -- {MAINTAINER}  {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}\n")
    return "\n".join(out)


def rpm_changelog(releases: list[Release], newest_release: str) -> str:
    """%changelog from CHANGELOG.md."""
    out: list[str] = []
    for i, r in enumerate(releases):
        rel = newest_release if i == 0 else "1"
        out.append(
            f"* {r.date.strftime('%a %b %d %Y')} {MAINTAINER} - {package_version(r.version)}-{rel}"
        )
        for e in r.entries or ("Release.",):
            out.extend(_wrap(e.replace("%", "%%"), 78, "- ", "  "))
        out.append("")
    return "\n".join(out)


# --- vendored wheels ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Wheel:
    """A wheel file and the parts of its name that matter here."""

    path: Path
    dist: str  # normalised: pydantic-core
    version: str
    abi: str  # cp311, abi3, none
    platform: str  # any, manylinux...

    @classmethod
    def from_path(cls, path: Path) -> Wheel:
        # pydantic_core-2.46.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
        parts = path.name[: -len(".whl")].split("-")
        if len(parts) not in (5, 6):
            raise BuildError(f"not a wheel file name: {path.name}")
        dist = re.sub(r"[-_.]+", "-", parts[0]).lower()
        return cls(path, dist, parts[1], parts[-2], parts[-1])

    def folder(self, pyver: str, machine: str) -> str:
        """The site folder it belongs in: common, abi3-<machine> or cp3X-<machine>."""
        if self.platform == "any":
            return "common"
        if self.abi == "abi3":
            return f"abi3-{machine}"
        return f"cp{pyver.replace('.', '')}-{machine}"


def lock_requirements(pyver: str, machine: str) -> list[str]:
    """requirements.lock's pins that apply to CPython PYVER on Linux MACHINE (markers evaluated)."""
    from packaging.markers import Marker
    from packaging.requirements import Requirement

    env = {
        "python_version": pyver,
        "python_full_version": f"{pyver}.0",
        "platform_machine": machine,
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    pins: list[str] = []
    for raw in (PKG / "requirements.lock").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is not None and not Marker(str(req.marker)).evaluate(env):
            continue
        spec = str(req.specifier)
        if not spec.startswith("=="):
            raise BuildError(f"requirements.lock: not pinned with ==: {line}")
        pins.append(f"{req.name}{spec}")
    return pins


def download(pyver: str, machine: str, cache: Path) -> list[Wheel]:
    """The wheels for one interpreter and machine, from PyPI (cached under CACHE)."""
    pins = lock_requirements(pyver, machine)
    key = hashlib.sha256("\n".join([pyver, machine, MANYLINUX, *pins]).encode()).hexdigest()[:16]
    dest = cache / f"cp{pyver.replace('.', '')}-{machine}-{key}"
    done = dest / ".complete"
    if not done.exists():
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        cmd = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", "--implementation", "cp", "--python-version", pyver,
            "--platform", f"{MANYLINUX}_{machine}", "--dest", str(tmp), *pins,
        ]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            tail = "\n".join(res.stderr.strip().splitlines()[-5:])
            raise BuildError(f"pip download for CPython {pyver} {machine} failed:\n{tail}")
        (tmp / ".complete").write_text("\n".join(pins) + "\n", encoding="utf-8")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    wheels = [Wheel.from_path(p) for p in sorted(dest.glob("*.whl"))]
    pinned = {re.sub(r"[-_.]+", "-", p.split("==")[0]).lower(): p.split("==")[1] for p in pins}
    for w in wheels:
        if pinned.get(w.dist) != w.version:
            raise BuildError(f"{w.path.name}: not pinned in packaging/requirements.lock")
        if w.dist not in VENDORED:
            raise BuildError(f"{w.dist}: no licence entry in VENDORED (packaging/build.py)")
    missing = set(pinned) - {w.dist for w in wheels}
    if missing:
        raise BuildError(f"CPython {pyver} {machine}: no wheel for {', '.join(sorted(missing))}")
    return wheels


def unpack_wheel(wheel: Path, dest: Path) -> None:
    """Install a wheel the simple way: its purelib/platlib content goes into DEST."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir():
                continue
            parts = name.split("/")
            if ".." in parts or name.startswith("/"):
                raise BuildError(f"{wheel.name}: unsafe member {name}")
            if parts[0].endswith(".data"):
                # x.data/purelib/... and x.data/platlib/... install like the root; the rest
                # (scripts, headers, data) is not needed by an imported library.
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)


def vendor(site: Path, machine: str, cache: Path) -> dict[str, str]:
    """Fill SITE with every interpreter's libraries; returns {dist: version} shipped."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        per_py = dict(zip(PYTHONS, pool.map(lambda v: download(v, machine, cache), PYTHONS)))
    placed: dict[str, str] = {}  # site folder/wheel file name -> (placed once)
    shipped: dict[str, str] = {}
    for pyver, wheels in per_py.items():
        for w in wheels:
            folder = w.folder(pyver, machine)
            if shipped.setdefault(w.dist, w.version) != w.version:
                raise BuildError(f"{w.dist}: two versions across interpreters")
            key = f"{folder}/{w.path.name}"
            if key in placed:
                continue
            placed[key] = w.dist
            unpack_wheel(w.path, site / folder)
    return shipped


# --- staging ------------------------------------------------------------------------------------


def _copy(src: Path, dst: Path, mode: int = 0o644) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    dst.chmod(mode)


def _gzip(data: bytes, dst: Path) -> None:
    """gzip -9n: no name, no time stamp (reproducible, and what lintian asks for)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as gz:
        gz.write(data)
    dst.write_bytes(buf.getvalue())
    dst.chmod(0o644)


def normalise_modes(tree: Path) -> None:
    """Folders 0755, files 0644 (0755 when executable); what dpkg/rpm then record."""
    for path in tree.rglob("*"):
        st = path.lstat()
        if stat.S_ISDIR(st.st_mode):
            path.chmod(0o755)
        elif stat.S_ISREG(st.st_mode):
            path.chmod(0o755 if st.st_mode & 0o100 else 0o644)


@dataclasses.dataclass(frozen=True)
class Sources:
    """The files a package is made of that other parts of the project own."""

    unit: Path
    catalog: Path
    config: Path

    def check(self) -> None:
        missing = [str(p) for p in (self.unit, self.catalog, self.config) if not p.is_file()]
        if missing:
            raise BuildError("missing: " + ", ".join(missing))


def copyright_text(shipped: dict[str, str]) -> str:
    """A machine-readable copyright file: the project, then each vendored library."""
    out = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
        f"Upstream-Name: {NAME}",
        "Comment: The package carries, under /usr/lib/waagent-doctor/site/, the Python",
        " libraries listed below, unmodified from their wheels on PyPI; each one's own",
        " licence and notice files are in its *.dist-info folder there. pydantic-core also",
        " links Rust crates, listed in its *.dist-info/sboms, under MIT and/or Apache-2.0.",
        " No file of the Azure agent (WALinuxAgent) is shipped.",
        "",
        "Files: *",
        "Copyright: 2026 The waagent-doctor authors",
        "License: Apache-2.0",
        "",
    ]
    for dist in sorted(shipped):
        _, deb_licence, holder = VENDORED[dist]
        mod = dist.replace("-", "_")
        out += [
            # pydantic* also matches pydantic_core*: its own, later paragraph wins (DEP-5).
            f"Files: usr/lib/waagent-doctor/site/*/{mod}*",
            f"Copyright: {holder}",
            f"License: {deb_licence}",
            f"Comment: {dist} {shipped[dist]}",
            "",
        ]
    licences = {
        "Apache-2.0": "On Debian systems, the full text of the Apache License, Version 2.0 is in"
        " /usr/share/common-licenses/Apache-2.0; on RPM systems in"
        " /usr/share/licenses/waagent-doctor/LICENSE.",
        "Expat": "The MIT (Expat) licence; full text in each library's dist-info licence file.",
        "BSD-2-clause": "Full text in prometheus_client's dist-info licence files.",
        "BSD-3-clause": "Full text in psutil's dist-info LICENSE file.",
        "PSF-2": "The Python Software Foundation License Version 2; full text in the library's"
        " dist-info LICENSE file.",
    }
    for name, text in licences.items():
        out += [f"License: {name}", *_wrap(text, 78, " ", " "), ""]
    return "\n".join(out)


def stage(
    tree: Path,
    *,
    machine: str,
    unitdir: str,
    cache: Path,
    sources: Sources,
    manpage: str,
) -> dict[str, str]:
    """The installed file tree, shared by the .deb and the .rpm; returns the vendored set."""
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    lib = tree / "usr/lib/waagent-doctor"
    shipped = vendor(lib / "site", machine, cache)
    shutil.copytree(
        ROOT / "src" / "waagent_doctor",
        lib / "site/common/waagent_doctor",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"),
    )
    normalise_modes(tree)
    link_duplicate_slices(lib / "site")
    _copy(PKG / "launcher.py", tree / "usr/bin/waagent-doctor", 0o755)
    _copy(sources.unit, tree / unitdir.lstrip("/") / "waagent-doctor.service")
    _copy(sources.catalog, tree / "usr/lib/systemd/catalog/waagent-doctor.catalog")
    _copy(sources.config, tree / "etc/waagent-doctor/config.toml")
    state = tree / "var/lib/waagent-doctor"
    state.mkdir(parents=True)
    state.chmod(0o700)
    _gzip(manpage.encode("utf-8"), tree / "usr/share/man/man8/waagent-doctor.8.gz")
    for d in ("usr", "usr/bin", "usr/lib", "usr/share", "etc", "etc/waagent-doctor", "var",
              "var/lib"):  # fmt: skip
        (tree / d).chmod(0o755)
    return shipped


def link_duplicate_slices(site: Path) -> int:
    """Replace files in cpXY-* folders that equal the same file of the first such folder (the
    Python parts of pydantic-core) by relative symbolic links; returns the bytes saved."""
    slices = sorted((d for d in site.iterdir() if d.name.startswith("cp")),
                    key=lambda d: int(d.name.split("-")[0][2:]))  # fmt: skip
    saved = 0
    for other in slices[1:]:
        for path in sorted(p for p in other.rglob("*") if p.is_file() and not p.is_symlink()):
            rel = path.relative_to(other)
            first = slices[0] / rel
            if first.is_file() and first.read_bytes() == path.read_bytes():
                saved += path.stat().st_size
                path.unlink()
                path.symlink_to(os.path.relpath(first, path.parent))
    return saved


def dir_size_kib(tree: Path) -> int:
    """Installed-Size: the sum of the files' sizes in KiB (as dpkg-gencontrol counts)."""
    total = 0
    for path in tree.rglob("*"):
        st = path.lstat()
        total += 1 if stat.S_ISDIR(st.st_mode) else (st.st_size + 1023) // 1024
    return total


# --- .deb ---------------------------------------------------------------------------------------


def build_deb(
    arch: str, *, version: str, release: str, out: Path, work: Path, sources: Sources
) -> Path:
    """dist/waagent-doctor_<version>-<release>_<arch>.deb, assembled with dpkg-deb."""
    machine = ARCHES[arch]
    rel, releases = release_for(version)
    debver = f"{package_version(version)}-{release}"
    tree = work / f"deb-{arch}"
    shipped = stage(
        tree,
        machine=machine,
        unitdir="/lib/systemd/system",
        cache=work / "wheels",
        sources=sources,
        manpage=render_manpage(version, rel.date),
    )
    doc = tree / "usr/share/doc" / NAME
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(copyright_text(shipped), encoding="utf-8")
    _gzip((ROOT / "CHANGELOG.md").read_bytes(), doc / "changelog.gz")
    _gzip(debian_changelog(releases, debver).encode("utf-8"), doc / "changelog.Debian.gz")
    overrides = PKG / "deb" / "lintian-overrides"
    if overrides.is_file():
        _copy(overrides, tree / "usr/share/lintian/overrides" / NAME)
    normalise_modes(tree / "usr/share")
    (tree / "var/lib/waagent-doctor").chmod(0o700)

    control = tree / "DEBIAN"
    control.mkdir()
    description = "\n".join(
        " " + (line if line.strip() else ".") for line in DESCRIPTION.splitlines()
    )
    depends = [
        "python3 (>= 3.9)",
        "python3-systemd",
        "libc6 (>= 2.17)",
        "libgcc-s1",
    ]
    fields = {
        "Package": NAME,
        "Version": debver,
        "Architecture": arch,
        "Maintainer": MAINTAINER,
        "Installed-Size": str(dir_size_kib(tree)),
        "Depends": ", ".join(depends),
        "Section": "admin",
        "Priority": "optional",
        "Description": f"{SUMMARY}\n{description}",
    }
    (control / "control").write_text(
        "".join(f"{k}: {v}\n" for k, v in fields.items()), encoding="utf-8"
    )
    (control / "conffiles").write_text("/etc/waagent-doctor/config.toml\n", encoding="utf-8")
    for script in ("postinst", "prerm", "postrm"):
        _copy(PKG / "deb" / script, control / script, 0o755)
    sums = []
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()):
        rel_path = path.relative_to(tree).as_posix()
        if rel_path.startswith("DEBIAN/"):
            continue
        sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {rel_path}\n")  # noqa: S324 - dpkg's format
    (control / "md5sums").write_text("".join(sums), encoding="utf-8")
    for f in ("control", "conffiles", "md5sums"):
        (control / f).chmod(0o644)
    control.chmod(0o755)

    out.mkdir(parents=True, exist_ok=True)
    deb = out / f"{NAME}_{debver}_{arch}.deb"
    _run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(tree), str(deb)])
    return deb


# --- .rpm ---------------------------------------------------------------------------------------


def build_rpm(
    arch: str, *, version: str, release: str, out: Path, work: Path, sources: Sources
) -> Path:
    """dist/waagent-doctor-<version>-<release>.<machine>.rpm, built with rpmbuild."""
    if shutil.which("rpmbuild") is None:
        raise BuildError("rpmbuild not found: apt-get install rpm")
    machine = ARCHES[arch]
    rel, releases = release_for(version)
    tree = work / f"rpm-{arch}"
    shipped = stage(
        tree,
        machine=machine,
        unitdir="/usr/lib/systemd/system",
        cache=work / "wheels",
        sources=sources,
        manpage=render_manpage(version, rel.date),
    )
    _copy(PKG / "rpm" / "waagent-doctor.preset",
          tree / "usr/lib/systemd/system-preset/50-waagent-doctor.preset")  # fmt: skip
    lic = tree / "usr/share/licenses" / NAME
    _copy(ROOT / "LICENSE", lic / "LICENSE")
    (lic / "COPYRIGHT").write_text(copyright_text(shipped), encoding="utf-8")
    _copy(ROOT / "CHANGELOG.md", tree / "usr/share/doc" / NAME / "CHANGELOG.md")
    normalise_modes(tree / "usr/share")
    normalise_modes(tree / "usr/lib/systemd")

    spdx = {VENDORED[d][0] for d in shipped} | {"Apache-2.0"}
    licence = " AND ".join(sorted(f"({x})" if " " in x else x for x in spdx))
    spec_in = (PKG / "rpm" / "waagent-doctor.spec").read_text(encoding="utf-8")
    spec = work / f"rpm-{arch}.spec"
    spec.write_text(
        spec_in.rstrip("\n") + "\n\n%changelog\n" + rpm_changelog(releases, release),
        encoding="utf-8",
    )
    top = work / f"rpmbuild-{arch}"
    shutil.rmtree(top, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    rpmver = package_version(version)
    _run(
        [
            "rpmbuild", "-bb", "--quiet", "--target", machine,
            "--define", f"wd_macros {PKG / 'rpm' / 'macros.systemd'}",
            "--define", f"_topdir {top}",
            "--define", f"_rpmdir {out}",
            "--define", "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
            "--define", f"wd_version {rpmver}",
            "--define", f"wd_release {release}",
            "--define", f"wd_license {licence}",
            "--define", f"wd_summary {SUMMARY}",
            "--define", f"wd_stagedir {tree}",
            "--define", f"wd_packager {MAINTAINER}",
            str(spec),
        ]
    )  # fmt: skip
    return out / f"{NAME}-{rpmver}-{release}.{machine}.rpm"


def _run(cmd: list[str]) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BuildError(f"{cmd[0]} failed ({res.returncode}):\n{res.stdout}{res.stderr}")


# --- man page -----------------------------------------------------------------------------------


def _roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def _options(parser: argparse.ArgumentParser) -> Iterable[tuple[str, str]]:
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        names = ", ".join(action.option_strings)
        if action.metavar is not None or action.nargs != 0:
            names += f" {action.metavar or action.dest.upper()}"
        yield names, action.help or ""


def render_manpage(version: str, date: dt.date) -> str:
    """waagent-doctor(8), with the commands and options taken from the CLI's own parser."""
    sys.path.insert(0, str(ROOT / "src"))
    from waagent_doctor.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help or "" for c in sub._choices_actions}
    out = [
        f'.TH WAAGENT\\-DOCTOR 8 "{date.isoformat()}" "waagent\\-doctor {_roff(version)}"'
        ' "System Administration"',
        ".SH NAME",
        "waagent\\-doctor \\- diagnose and heal the Azure Linux VM agent and the VM backup"
        " extension",
        ".SH SYNOPSIS",
    ]
    for name, cmd in sub.choices.items():
        opts = " ".join(f"[{_roff(n)}]" for n, _ in _options(cmd) if not n.startswith("-h"))
        out += [".B waagent\\-doctor", f"{_roff(name)} {opts}".rstrip(), ".br"]
    out += [".B waagent\\-doctor", "\\-\\-collect\\-logs [\\-\\-output PATH] [\\-\\-root DIR]",
            ".br", ".B waagent\\-doctor", "\\-\\-version"]  # fmt: skip
    out += [
        ".SH DESCRIPTION",
        ".B waagent\\-doctor",
        "finds out why Azure VM backups fail with",
        "\\fICould not communicate with the VM agent for snapshot status \\- Snapshot VM"
        " sub\\-task timed out\\fR.",
        "It watches the Azure VM agent (WALinuxAgent) and the backup extension",
        "(Microsoft.Azure.RecoveryServices.VMSnapshotLinux) and names which of the four causes",
        "applies, with evidence: 1 network access (WireServer, HostGAPlugin, Azure Storage,",
        "IMDS, proxy), 2 the VM agent, 3 the backup extension, 4 snapshot conditions inside",
        "the VM (CPU, memory, disk, DHCP, filesystem freeze). Cause 0 is anything else.",
        ".PP",
        "As a service",
        "(\\fBwaagent\\-doctor.service\\fR)",
        "it runs a cycle every",
        ".I interval_seconds,",
        "writes each finding raised or cleared and each action applied, failed or skipped to",
        "the journal, and heals what it can within a budget: it restarts the agent, installs",
        "an auto\\-restart drop\\-in for the agent's unit, turns the agent's verbose logging on",
        "and back off, collects support bundles, and (opt\\-in) reloads the backup extension.",
        ".SH COMMANDS",
    ]
    for name, cmd in sub.choices.items():
        out += [".TP", f".B {_roff(name)}", _roff(helps.get(name, ""))]
        for opt, text in _options(cmd):
            if opt.startswith("-h"):
                continue
            out += [".RS", ".TP", f".B {_roff(opt)}", _roff(text), ".RE"]
    out += [".SH OPTIONS"]
    for opt, text in _options(parser):
        out += [".TP", f".B {_roff(opt)}", _roff(text)]
    out += [
        ".TP",
        ".B \\-\\-collect\\-logs",
        "the same as the",
        ".B collect\\-logs",
        "command: write a redacted support bundle and print its path as the last line.",
        ".SH EXIT STATUS",
        "For",
        ".BR check :",
        "0 no finding above info; 1 the worst finding is a warning; 2 the worst finding is",
        "critical; 3 the program could not run (bad arguments or configuration, internal error),",
        "with a one\\-line reason on standard error.",
        ".SH FILES",
        ".TP",
        ".I /etc/waagent\\-doctor/config.toml",
        "The configuration (TOML; every key optional). An unknown or invalid key stops the",
        "program with a message naming it. Endpoints, thresholds and each automatic action",
        "can be set there; the installed file lists them with their defaults.",
        ".TP",
        ".I /var/lib/waagent\\-doctor/state.json",
        "Findings, action history and log offsets of the service.",
        ".TP",
        ".I /var/lib/waagent\\-doctor/bundles/",
        "Support bundles written by the service (mode 0700).",
        ".TP",
        ".I /usr/lib/systemd/catalog/waagent\\-doctor.catalog",
        "The journal message catalog: explains every MESSAGE_ID with",
        '.BR "journalctl \\-x" .',
        ".TP",
        ".I /usr/lib/waagent\\-doctor/",
        "The Python libraries the package carries, for CPython 3.9 to 3.13.",
        ".SH JOURNAL",
        "Every entry carries SYSLOG_IDENTIFIER=waagent\\-doctor and PRIORITY. Each finding and",
        "action entry carries MESSAGE_ID, WAAGENT_DOCTOR_EVENT (finding.raised, finding.cleared,",
        "action.applied, action.failed, action.skipped), WAAGENT_DOCTOR_CODE,",
        "WAAGENT_DOCTOR_CAUSE and, where it applies, WAAGENT_DOCTOR_ACTION. A finding that",
        "stays open is not logged again every cycle.",
        ".SH EXAMPLES",
        ".TP",
        ".B waagent\\-doctor check",
        "Diagnose this VM once.",
        ".TP",
        ".B waagent\\-doctor check \\-\\-root /mnt/rescue \\-\\-json",
        "Diagnose an OS disk mounted on a rescue VM, reading files only.",
        ".TP",
        ".B journalctl \\-u waagent\\-doctor \\-x",
        "What the service found and did, with the catalog's explanations.",
        ".TP",
        ".B journalctl WAAGENT_DOCTOR_EVENT=finding.raised WAAGENT_DOCTOR_CAUSE=1",
        "The network findings.",
        ".SH SEE ALSO",
        ".BR journalctl (1),",
        ".BR systemctl (1),",
        ".BR systemd.journal\\-fields (7)",
        "",
    ]
    return "\n".join(out)


# --- command line -------------------------------------------------------------------------------


def main(argv: Optional[list[str]] = None) -> int:
    """Build what ARGV asks for; print the paths of the packages written."""
    p = argparse.ArgumentParser(prog="packaging/build.py", description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["deb", "rpm", "all", "man"])
    p.add_argument("--arch", default="amd64,arm64", help="Debian architectures (amd64,arm64)")
    p.add_argument("--release", default="1", help="package revision / RPM release (default 1)")
    p.add_argument("--out", default=str(ROOT / "dist"), help="where packages go (dist/)")
    p.add_argument("--work", default=str(ROOT / "build" / "packaging"), help="scratch folder")
    p.add_argument("--unit", default=str(ROOT / "systemd" / "waagent-doctor.service"))
    p.add_argument("--catalog", default=str(ROOT / "systemd" / "waagent-doctor.catalog"))
    p.add_argument("--config", default=str(ROOT / "examples" / "config.toml"))
    args = p.parse_args(argv)
    try:
        version = read_version()
        if args.what == "man":
            rel, _ = release_for(version)
            sys.stdout.write(render_manpage(version, rel.date))
            return 0
        if not re.fullmatch(r"[0-9][0-9A-Za-z.+~]*", args.release):
            raise BuildError(f"--release: not a package revision: {args.release}")
        arches = [a for a in args.arch.split(",") if a]
        for a in arches:
            if a not in ARCHES:
                raise BuildError(f"--arch: {a} (known: {', '.join(ARCHES)})")
        sources = Sources(Path(args.unit), Path(args.catalog), Path(args.config))
        sources.check()
        out, work = Path(args.out).resolve(), Path(args.work).resolve()
        kinds = ["deb", "rpm"] if args.what == "all" else [args.what]
        for kind in kinds:
            builder = build_deb if kind == "deb" else build_rpm
            for a in arches:
                path = builder(
                    a, version=version, release=args.release, out=out, work=work, sources=sources
                )
                log(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
                sys.stdout.write(f"{path}\n")
    except BuildError as exc:
        sys.stderr.write(f"build: error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
