"""The launcher (/usr/bin/waagent-doctor): which bundled site folders each Python gets."""

from __future__ import annotations

import importlib.util
import platform
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.packaging.conftest import ROOT

LAUNCHER = ROOT / "packaging" / "launcher.py"


def _load() -> ModuleType:
    # packaging/ is no Python package (the name belongs to PyPI's `packaging`): load by path.
    spec = importlib.util.spec_from_file_location("wd_launcher", LAUNCHER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


launcher = _load()


def make_site(libdir: Path, *names: str) -> None:
    for name in names:
        (libdir / "site" / name).mkdir(parents=True)


@pytest.mark.parametrize(
    ("version", "machine", "first"),
    [
        ((3, 9), "x86_64", "cp39-x86_64"),
        ((3, 10), "x86_64", "cp310-x86_64"),
        ((3, 11), "amd64", "cp311-x86_64"),
        ((3, 12), "aarch64", "cp312-aarch64"),
        ((3, 13), "arm64", "cp313-aarch64"),
    ],
)
def test_each_python_gets_its_own_slice_then_abi3_then_common(
    tmp_path: Path, version: tuple[int, int], machine: str, first: str
) -> None:
    arch = first.split("-")[1]
    make_site(tmp_path, "common", f"abi3-{arch}", first, "cp38-x86_64", "cp314-aarch64")
    paths = launcher.site_paths(tmp_path, version, machine)
    assert [Path(p).name for p in paths] == [first, f"abi3-{arch}", "common"]
    assert all(Path(p).is_absolute() for p in paths)


def test_a_python_without_a_slice_is_refused_with_what_there_is(tmp_path: Path) -> None:
    make_site(tmp_path, "common", "abi3-x86_64", "cp39-x86_64", "cp313-x86_64")
    with pytest.raises(ValueError, match=r"Python 3\.8 on x86_64.*cp313-x86_64, cp39-x86_64"):
        launcher.site_paths(tmp_path, (3, 8), "x86_64")
    with pytest.raises(ValueError, match=r"Python 3\.12 on aarch64"):
        launcher.site_paths(tmp_path, (3, 12), "aarch64")


def test_missing_libraries_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bundled libraries are missing"):
        launcher.site_paths(tmp_path / "nowhere", (3, 11), "x86_64")


def test_libdir_follows_the_script_even_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    script = tmp_path / "usr" / "bin" / "waagent-doctor"
    script.write_text("")
    link = tmp_path / "elsewhere"
    link.symlink_to(script)
    expected = tmp_path.resolve() / "usr" / "lib" / "waagent-doctor"
    assert launcher.default_libdir(str(script)) == expected
    assert launcher.default_libdir(str(link)) == expected


def test_the_launcher_runs_the_selected_code_isolated(
    tmp_path: Path, allow_subprocess: object
) -> None:
    """Run as a program: the slice for this interpreter comes first, PYTHONPATH is ignored."""
    tag = launcher.slice_names(sys.version_info[:2], platform.machine())[0]
    make_site(tmp_path / "usr/lib/waagent-doctor", "common", tag)
    pkg = tmp_path / "usr/lib/waagent-doctor/site/common/waagent_doctor"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    # A stand-in CLI that reports where it runs from.
    (pkg / "cli.py").write_text(
        "import sys\ndef entry():\n    print('\\n'.join(sys.path[:2]))\n    sys.exit(7)\n"
    )
    (tmp_path / "usr/bin").mkdir()
    script = tmp_path / "usr/bin/waagent-doctor"
    script.write_text(LAUNCHER.read_text())
    with allow_subprocess(Path(sys.executable).name):  # type: ignore[operator]
        res = subprocess.run(
            [sys.executable, "-I", str(script)],
            capture_output=True,
            text=True,
            check=False,
            env={"PYTHONPATH": "/nonexistent-injected"},
        )
    assert res.returncode == 7, res.stderr
    site = tmp_path.resolve() / "usr/lib/waagent-doctor/site"
    assert res.stdout.split() == [str(site / tag), str(site / "common")]
