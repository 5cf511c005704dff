"""The built .deb and .rpm, checked without installing: contents, modes, dependencies,
scriptlets, lintian, rpmlint, the unit, the man page, and the .rpm's payload run on this host."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.conftest import MACHINES, ROOT, Built, project_version

PYTHONS = ("39", "310", "311", "312", "313")
SHIPPED = (
    "usr/bin/waagent-doctor",
    "usr/lib/systemd/catalog/waagent-doctor.catalog",
    "etc/waagent-doctor/config.toml",
    "usr/share/man/man8/waagent-doctor.8.gz",
    "usr/lib/waagent-doctor/site/common/waagent_doctor/cli.py",
    "usr/lib/waagent-doctor/site/common/pydantic/__init__.py",
)


def run(*cmd: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    if check and res.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return res  # type: ignore[no-any-return]


def deb_listing(deb: Path) -> dict[str, tuple[str, str]]:
    """path -> (mode string, owner) from dpkg-deb -c."""
    out: dict[str, tuple[str, str]] = {}
    # drwx------ root/root         0 2026-11-26 14:14 ./var/lib/waagent-doctor/
    for line in run("dpkg-deb", "-c", str(deb)).stdout.splitlines():
        parts = line.split(None, 5)
        path = parts[5].split(" -> ")[0].removeprefix("./").rstrip("/")
        out[path] = (parts[0], parts[1])
    return out


def rpm_query(rpm: Path, *args: str) -> str:
    return run("rpm", "-qp", *args, str(rpm)).stdout


# --- .deb ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(MACHINES))
def test_deb_contents_and_modes(packages: Built, host_tools: None, arch: str) -> None:
    files = deb_listing(packages.deb[arch])
    machine = MACHINES[arch]
    for path in (*SHIPPED, "lib/systemd/system/waagent-doctor.service"):
        assert path in files, path
    assert files["usr/bin/waagent-doctor"] == ("-rwxr-xr-x", "root/root")
    assert files["var/lib/waagent-doctor"] == ("drwx------", "root/root")
    assert all(owner == "root/root" for _, owner in files.values())
    for py in PYTHONS:
        so = f"usr/lib/waagent-doctor/site/cp{py}-{machine}/pydantic_core/"
        assert any(p.startswith(so) and p.endswith(".so") for p in files), so
    assert f"usr/lib/waagent-doctor/site/abi3-{machine}/psutil/__init__.py" in files
    # One architecture per package, no byte-code from the build host, nothing from the tests.
    other = next(m for m in MACHINES.values() if m != machine)
    assert not [p for p in files if other in p or "__pycache__" in p or p.endswith(".pyc")]
    assert not [p for p in files if "tests/" in p]
    for doc in ("copyright", "changelog.gz", "changelog.Debian.gz"):
        assert f"usr/share/doc/waagent-doctor/{doc}" in files


@pytest.mark.parametrize("arch", sorted(MACHINES))
def test_deb_control_depends_and_conffiles(packages: Built, host_tools: None, arch: str) -> None:
    deb = str(packages.deb[arch])

    def field(name: str) -> str:
        return run("dpkg-deb", "-f", deb, name).stdout.strip()

    assert field("Version") == packages.deb_version()
    assert field("Architecture") == arch
    depends = [d.strip() for d in field("Depends").split(",")]
    assert "python3 (>= 3.9)" in depends
    assert "python3-systemd" in depends
    assert not [d for d in depends if "pydantic" in d]  # carried, not depended on
    conffiles = run("dpkg-deb", "-I", deb, "conffiles").stdout.split()
    assert conffiles == ["/etc/waagent-doctor/config.toml"]


def test_deb_maintainer_scripts(packages: Built, host_tools: None, tmp_path: Path) -> None:
    run("dpkg-deb", "-e", str(packages.deb["amd64"]), str(tmp_path / "DEBIAN"))
    scripts = {n: (tmp_path / "DEBIAN" / n).read_text() for n in ("postinst", "prerm", "postrm")}
    for name in scripts:
        run("sh", "-n", str(tmp_path / "DEBIAN" / name))  # dash parses it
    post, prerm, postrm = scripts["postinst"], scripts["prerm"], scripts["postrm"]
    assert "deb-systemd-helper enable" in post and "action=start" in post
    assert "action=restart" in post  # upgrade: $2 is the old version
    assert "journalctl --update-catalog" in post
    assert '"$1" = remove' in prerm and "deb-systemd-invoke stop" in prerm
    assert "rm -rf /var/lib/waagent-doctor" in postrm.split('if [ "$1" = purge ]')[1]


def test_lintian_has_no_errors_or_warnings(packages: Built, host_tools: None) -> None:
    res = run("lintian", "--pedantic", "-I", *map(str, packages.deb.values()), check=False)
    tags = [line for line in res.stdout.splitlines() if re.match(r"^[EWX]: ", line)]
    assert res.returncode == 0 and not tags, res.stdout + res.stderr
    # Every override still matches something (a stale override hides nothing, but misleads).
    assert "unused-override" not in res.stdout, res.stdout


def test_changelogs_follow_the_version(packages: Built, host_tools: None, tmp_path: Path) -> None:
    version = project_version()
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d\d-\d\d$",
                     (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)  # fmt: skip
    run("dpkg-deb", "-x", str(packages.deb["amd64"]), str(tmp_path))
    deb_log = gzip.decompress(
        (tmp_path / "usr/share/doc/waagent-doctor/changelog.Debian.gz").read_bytes()
    ).decode()
    assert deb_log.startswith(f"waagent-doctor ({packages.deb_version()}) ")
    rpm_log = rpm_query(packages.rpm["amd64"], "--changelog")
    assert f"- {version}-{packages.release}" in rpm_log.splitlines()[0]


# --- .rpm ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(MACHINES))
def test_rpm_contents_requires_and_config(packages: Built, host_tools: None, arch: str) -> None:
    rpm = packages.rpm[arch]
    machine = MACHINES[arch]
    assert rpm_query(rpm, "--qf", "%{ARCH}") == machine
    files = dict(
        line.split(" ", 1)[::-1]
        for line in rpm_query(rpm, "--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]").splitlines()
    )
    for path in (*SHIPPED, "usr/lib/systemd/system/waagent-doctor.service"):
        assert "/" + path in files, path
    assert files["/usr/bin/waagent-doctor"] == "-rwxr-xr-x"
    assert files["/var/lib/waagent-doctor"] == "drwx------"
    assert "/usr/share/licenses/waagent-doctor/LICENSE" in files
    assert not [p for p in files if "__pycache__" in p]
    assert rpm_query(rpm, "--configfiles").split() == ["/etc/waagent-doctor/config.toml"]
    # %config(noreplace): a changed file is kept on upgrade.
    flags = rpm_query(rpm, "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]")
    assert "/etc/waagent-doctor/config.toml cn" in flags
    requires = rpm_query(rpm, "--requires").splitlines()
    assert "python3 >= 3.9" in requires and "python3-systemd" in requires
    assert not [r for r in requires if "pydantic" in r or "python3.11dist" in r]
    assert not [p for p in rpm_query(rpm, "--provides").splitlines() if "pydantic" in p]


def test_rpm_scriptlets(packages: Built, host_tools: None) -> None:
    scripts = rpm_query(packages.rpm["amd64"], "--scripts")
    post = scripts.split("postinstall scriptlet")[1].split("preuninstall scriptlet")[0]
    preun = scripts.split("preuninstall scriptlet")[1].split("postuninstall scriptlet")[0]
    postun = scripts.split("postuninstall scriptlet")[1]
    assert "systemctl --no-reload preset waagent-doctor.service" in post
    assert "systemctl start waagent-doctor.service" in post
    assert "journalctl --update-catalog" in post and "journalctl --update-catalog" in postun
    assert "disable --now waagent-doctor.service" in preun
    assert "try-restart waagent-doctor.service" in postun
    assert not re.search(r"%\{|%systemd|%journal", scripts)  # every macro expanded


def test_rpmlint_is_clean(packages: Built, host_tools: None) -> None:
    if run("sh", "-c", "command -v rpmlint", check=False).returncode != 0:
        pytest.fail("rpmlint is not installed: scripts/install-host-deps.sh installs it")
    cfg = ROOT / "packaging" / "rpm" / "rpmlint.toml"
    res = run("rpmlint", "-c", str(cfg), *map(str, packages.rpm.values()), check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"\b0 errors, 0 warnings\b", res.stdout), res.stdout


def test_rpm_payload_runs_on_this_python(packages: Built, host_tools: None, tmp_path: Path) -> None:
    """The command from the unpacked payload runs on this machine's own /usr/bin/python3."""
    arch = next(a for a, m in MACHINES.items() if Path(f"/lib/{m}-linux-gnu").is_dir())
    payload = tmp_path / "root"
    payload.mkdir()
    run("sh", "-c", 'rpm2cpio "$1" | cpio -idm --quiet', "sh", str(packages.rpm[arch]),
        cwd=payload)  # fmt: skip
    cmd = payload / "usr/bin/waagent-doctor"
    assert cmd.read_text().startswith("#!/usr/bin/python3 -I\n")
    version = run(str(cmd), "--version").stdout.strip()
    assert version == f"waagent-doctor {project_version()}"
    guest = tmp_path / "guest"
    guest.mkdir()
    res = run(str(cmd), "check", "--json", "--root", str(guest), check=False)
    assert res.returncode in (0, 1, 2), res.stderr
    report = json.loads(res.stdout)
    assert report["schema"] == "waagent-doctor/report/1" and report["mode"] == "offline"


# --- the man page (the unit is verified where it is installed: test_install.py) ---


def test_manpage_is_current_and_documents_every_option(host_tools: None) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    res = run(sys.executable, str(ROOT / "packaging" / "build.py"), "man")
    committed = (ROOT / "docs" / "waagent-doctor.8").read_text()
    assert committed == res.stdout, (
        "docs/waagent-doctor.8 is out of date: packaging/build.py man > docs/waagent-doctor.8"
    )
    from waagent_doctor.cli import build_parser

    parser = build_parser()
    options = {o for a in parser._actions for o in a.option_strings}
    for sub in parser._subparsers._group_actions[0].choices.values():  # type: ignore[union-attr]
        options |= {o for a in sub._actions for o in a.option_strings}
    for opt in options - {"-h", "--help"}:
        assert opt.replace("-", "\\-") in committed, opt
    groff = run("groff", "-man", "-Tutf8", "-ww", "-z", str(ROOT / "docs" / "waagent-doctor.8"))
    assert groff.stderr == ""
