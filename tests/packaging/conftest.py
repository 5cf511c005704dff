"""Fixtures for the package tests: the built .deb and .rpm, and a testbed to install them in.

`packages` takes the packages from dist/ when they are newer than everything they are made
of (after `make deb rpm`), and otherwise builds them with packaging/build.py into a session
folder (the wheels it downloads from PyPI at build time are cached in build/packaging/wheels).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import planned_subprocess

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "packaging" / "build.py"
DIST = ROOT / "dist"
# What the packages are made of: newer than a package in dist/ means that package is stale.
INPUTS = (
    ROOT / "src" / "waagent_doctor",
    ROOT / "packaging",
    ROOT / "systemd",
    ROOT / "examples" / "config.toml",
    ROOT / "CHANGELOG.md",
    ROOT / "LICENSE",
)
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
REQUIRE_ENV = "WAAGENT_DOCTOR_REQUIRE_SYSTEM"


def project_version() -> str:
    """__version__ as packaging/build.py reads it."""
    text = (ROOT / "src" / "waagent_doctor" / "__init__.py").read_text(encoding="utf-8")
    m = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.MULTILINE)
    assert m, "no __version__"
    return m.group(1)


def host_arch() -> str:
    """The Debian architecture of this machine (amd64 or arm64)."""
    machine = platform.machine()
    for arch, m in MACHINES.items():
        if m == machine:
            return arch
    pytest.skip(f"no packages are built for {machine}")


@dataclasses.dataclass(frozen=True)
class Built:
    """The packages of one build: deb[arch] and rpm[arch] (Debian architecture names)."""

    version: str
    release: str
    deb: dict[str, Path]
    rpm: dict[str, Path]

    def deb_version(self) -> str:
        return f"{self.version}-{self.release}"


def expected(out: Path, version: str, release: str) -> Built:
    """Where packaging/build.py puts the packages of VERSION-RELEASE."""
    return Built(
        version,
        release,
        {a: out / f"waagent-doctor_{version}-{release}_{a}.deb" for a in MACHINES},
        {a: out / f"waagent-doctor-{version}-{release}.{m}.rpm" for a, m in MACHINES.items()},
    )


def _newest_input() -> float:
    newest = 0.0
    for top in INPUTS:
        paths = [top] if top.is_file() else list(top.rglob("*")) if top.is_dir() else []
        for p in paths:
            if p.is_file() and "__pycache__" not in p.parts:
                newest = max(newest, p.stat().st_mtime)
    return newest


def build_packages(
    out: Path, release: str = "1", arches: str = "amd64,arm64", what: str = "all"
) -> Built:
    """Run packaging/build.py; fail the test with its reason when it cannot build."""
    for tool in ("dpkg-deb", "rpmbuild"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: scripts/install-host-deps.sh installs it (as root)")
    cmd = [sys.executable, str(BUILD), what, "--arch", arches, "--release", release]
    with planned_subprocess(Path(sys.executable).name):
        res = subprocess.run(
            [*cmd, "--out", str(out)], capture_output=True, text=True, check=False, timeout=900
        )
    if res.returncode != 0:
        pytest.fail(f"packaging/build.py failed:\n{res.stderr[-3000:]}", pytrace=False)
    return expected(out, project_version(), release)


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Release 1 of both packages for both architectures (fresh dist/ or built now)."""
    version = project_version()
    in_dist = expected(DIST, version, "1")
    files = [*in_dist.deb.values(), *in_dist.rpm.values()]
    if all(f.is_file() for f in files):
        oldest = min(f.stat().st_mtime for f in files)
        if oldest >= _newest_input():
            return in_dist
    return build_packages(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def upgrade_packages(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Release 2 of the same version, for this machine: the build, not the source, is newer."""
    out = tmp_path_factory.mktemp("dist2")
    return build_packages(out, release="2", arches=host_arch(), what="deb")


@pytest.fixture
def host_tools(allow_subprocess: object) -> Iterator[None]:
    """Static package checks run dpkg-deb, rpm, lintian, rpmlint, ... on the host."""
    tools = (
        "dpkg-deb", "rpm", "rpm2cpio", "cpio", "lintian", "rpmlint", "systemd-analyze", "sh",
        "python3", Path(sys.executable).name, "groff", "waagent-doctor",
    )  # fmt: skip
    with planned_subprocess(*tools):
        yield


def require_system() -> bool:
    """Whether CI asked for the system tests to fail rather than skip."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes")
