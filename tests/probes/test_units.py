"""The agent's unit read from disk like systemd: search path, masking, drop-ins, grammar."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from tests.conftest import DATA
from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.paths import Root
from waagent_doctor.probes import units

SYSTEMD = DATA / "walinuxagent" / "systemd"
UBUNTU_UNIT = SYSTEMD / "ubuntu" / "walinuxagent.service"
REDHAT_UNIT = SYSTEMD / "redhat" / "waagent.service"
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)

DEBIAN_LIKE = """[Unit]
Description=Azure Linux Agent
ConditionVirtualization=microsoft

[Service]
ExecStart=/usr/sbin/waagent -daemon

[Install]
WantedBy=multi-user.target
"""


def put(root: Path, guest: str, text: str) -> Path:
    """Write a guest file under the fake root."""
    p = root / guest.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first line that starts with needle."""
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith(needle):
            return n
    raise AssertionError(f"{needle!r} not in {path}")


def os_release(root: Path, ident: str, like: str = "") -> None:
    """A minimal /etc/os-release."""
    put(root, "/etc/os-release", f"ID={ident}\n" + (f"ID_LIKE={like}\n" if like else ""))


# -- grammar -----------------------------------------------------------------------------------


def test_parse_skips_comment_lines_with_hash_and_semicolon() -> None:
    """A Restart= inside a comment line is no assignment."""
    got = units.parse_unit_text(
        "[Service]\n# Restart=always\n; Restart=always\n  #Restart=on-failure\nType=simple\n", "/u"
    )
    assert [(a.key, a.value) for a in got] == [("Type", "simple")]


def test_parse_joins_backslash_continuations_and_keeps_first_line_number() -> None:
    """A trailing backslash continues the value on the next line (comments inside skipped)."""
    text = "[Service]\nExecStart=/usr/bin/python3 -u \\\n# note\n    /usr/sbin/waagent -daemon\n"
    (a,) = units.parse_unit_text(text, "/u")
    assert a.key == "ExecStart" and a.line == 2
    assert a.value.split() == ["/usr/bin/python3", "-u", "/usr/sbin/waagent", "-daemon"]


def test_parse_records_section_and_empty_assignment() -> None:
    """`Restart=` is an assignment of the empty string in its section."""
    got = units.parse_unit_text("[Unit]\nRestart=always\n[Service]\nRestart=\n", "/u")
    assert [(a.section, a.key, a.value, a.line) for a in got] == [
        ("Unit", "Restart", "always", 2),
        ("Service", "Restart", "", 4),
    ]


# -- loading -----------------------------------------------------------------------------------


def test_real_ubuntu_unit_restart_always_with_its_line(tmp_path: Path) -> None:
    """The agent's shipped Ubuntu unit: Restart=always, located to its line."""
    dst = tmp_path / "lib/systemd/system"
    dst.mkdir(parents=True)
    shutil.copy(UBUNTU_UNIT, dst)
    unit = units.load_unit(Root(tmp_path), "walinuxagent.service")
    assert unit is not None and not unit.masked
    assert unit.restart_value == "always"
    assert unit.restart is not None
    line = line_of(UBUNTU_UNIT, "Restart=")
    assert unit.restart.source == f"/lib/systemd/system/walinuxagent.service:{line}"
    assert unit.exec_program == "/usr/bin/python3"
    assert "/usr/sbin/waagent" in unit.exec_argv


def test_real_redhat_unit_has_restart_sec(tmp_path: Path) -> None:
    """RestartSec=5 of the RHEL unit is exposed with its value."""
    put(tmp_path, "/usr/lib/systemd/system/waagent.service", REDHAT_UNIT.read_text())
    unit = units.load_unit(Root(tmp_path), "waagent.service")
    assert unit is not None and unit.restart_sec is not None
    assert unit.restart_sec.value == "5"


def test_unit_without_restart_has_default_no(tmp_path: Path) -> None:
    """The Debian package's unit has no Restart=: unset, effective `no`."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", DEBIAN_LIKE)
    unit = units.load_unit(Root(tmp_path), "walinuxagent.service")
    assert unit is not None
    assert unit.restart is None and unit.restart_value == "no"


def test_dropin_adds_restart_always(tmp_path: Path) -> None:
    """A drop-in in /etc gives a unit without Restart= its Restart=always."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", DEBIAN_LIKE)
    put(
        tmp_path,
        "/etc/systemd/system/walinuxagent.service.d/50-restart.conf",
        "[Service]\nRestart=always\n",
    )
    unit = units.load_unit(Root(tmp_path), "walinuxagent.service")
    assert unit is not None
    assert unit.restart_value == "always"
    assert unit.restart is not None
    assert unit.restart.source == "/etc/systemd/system/walinuxagent.service.d/50-restart.conf:2"
    assert unit.dropins == ("/etc/systemd/system/walinuxagent.service.d/50-restart.conf",)


def test_later_dropin_wins_by_file_name_not_by_directory(tmp_path: Path) -> None:
    """Drop-ins apply in lexical order of name across directories: 90-no beats 10-always."""
    put(tmp_path, "/usr/lib/systemd/system/waagent.service", REDHAT_UNIT.read_text())
    put(tmp_path, "/etc/systemd/system/waagent.service.d/10-a.conf", "[Service]\nRestart=always\n")
    put(tmp_path, "/usr/lib/systemd/system/waagent.service.d/90-b.conf", "[Service]\nRestart=no\n")
    unit = units.load_unit(Root(tmp_path), "waagent.service")
    assert unit is not None
    assert unit.restart_value == "no"
    assert unit.restart is not None
    assert unit.restart.source == "/usr/lib/systemd/system/waagent.service.d/90-b.conf:2"


def test_same_name_dropin_in_etc_shadows_the_vendor_one(tmp_path: Path) -> None:
    """/etc/.../x.conf replaces /usr/lib/.../x.conf of the same name entirely."""
    put(tmp_path, "/usr/lib/systemd/system/waagent.service", DEBIAN_LIKE)
    put(tmp_path, "/usr/lib/systemd/system/waagent.service.d/r.conf", "[Service]\nRestart=always\n")
    put(tmp_path, "/etc/systemd/system/waagent.service.d/r.conf", "[Service]\nCPUQuota=50%\n")
    unit = units.load_unit(Root(tmp_path), "waagent.service")
    assert unit is not None
    assert unit.restart is None
    assert unit.dropins == ("/etc/systemd/system/waagent.service.d/r.conf",)


def test_dropin_masked_by_dev_null_link_does_not_apply(tmp_path: Path) -> None:
    """A same-named drop-in linked to /dev/null in /etc masks the vendor drop-in."""
    put(tmp_path, "/usr/lib/systemd/system/waagent.service", DEBIAN_LIKE)
    put(tmp_path, "/usr/lib/systemd/system/waagent.service.d/r.conf", "[Service]\nRestart=always\n")
    d = tmp_path / "etc/systemd/system/waagent.service.d"
    d.mkdir(parents=True)
    os.symlink("/dev/null", d / "r.conf")
    unit = units.load_unit(Root(tmp_path), "waagent.service")
    assert unit is not None and unit.restart is None and unit.dropins == ()


def test_empty_assignment_in_dropin_resets_to_no(tmp_path: Path) -> None:
    """`Restart=` in a drop-in resets the fragment's Restart=always."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", UBUNTU_UNIT.read_text())
    put(tmp_path, "/etc/systemd/system/walinuxagent.service.d/z.conf", "[Service]\nRestart=\n")
    unit = units.load_unit(Root(tmp_path), "walinuxagent.service")
    assert unit is not None and unit.restart is not None
    assert unit.restart.value == "" and unit.restart_value == "no"


def test_etc_copy_of_the_whole_unit_replaces_the_vendor_fragment(tmp_path: Path) -> None:
    """An /etc unit of the same name is the fragment; the vendor file is not read at all."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", UBUNTU_UNIT.read_text())
    put(tmp_path, "/etc/systemd/system/walinuxagent.service", DEBIAN_LIKE)
    unit = units.load_unit(Root(tmp_path), "walinuxagent.service")
    assert unit is not None
    assert unit.fragment == "/etc/systemd/system/walinuxagent.service"
    assert unit.restart is None


def test_type_wide_service_dropin_applies(tmp_path: Path) -> None:
    """`service.d/*.conf` drop-ins apply to every service, the agent's too."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", DEBIAN_LIKE)
    put(tmp_path, "/etc/systemd/system/service.d/restart.conf", "[Service]\nRestart=on-failure\n")
    unit = units.load_unit(Root(tmp_path), "walinuxagent.service")
    assert unit is not None and unit.restart_value == "on-failure"


def test_value_with_trailing_comment_is_invalid_and_ignored(tmp_path: Path) -> None:
    """systemd has no inline comments: `Restart=always # x` is invalid and ignored."""
    put(
        tmp_path,
        "/lib/systemd/system/walinuxagent.service",
        DEBIAN_LIKE.replace("[Service]\n", "[Service]\nRestart=always # keep it up\n"),
    )
    unit = units.load_unit(Root(tmp_path), "walinuxagent.service")
    assert unit is not None and unit.restart is None
    assert any("always # keep it up" in note for note in unit.ignored)


def test_restart_in_another_section_does_not_count(tmp_path: Path) -> None:
    """Restart= under [Unit] or [Install] is not the service's Restart=."""
    put(
        tmp_path,
        "/lib/systemd/system/walinuxagent.service",
        DEBIAN_LIKE.replace("[Install]\n", "[Install]\nRestart=always\n"),
    )
    unit = units.load_unit(Root(tmp_path), "walinuxagent.service")
    assert unit is not None and unit.restart is None


def test_masked_by_link_to_dev_null(tmp_path: Path) -> None:
    """/etc/systemd/system/<unit> -> /dev/null masks the vendor unit."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", UBUNTU_UNIT.read_text())
    etc = tmp_path / "etc/systemd/system"
    etc.mkdir(parents=True)
    os.symlink("/dev/null", etc / "walinuxagent.service")
    unit = units.load_unit(Root(tmp_path), "walinuxagent.service")
    assert unit is not None and unit.masked
    assert unit.fragment == "/etc/systemd/system/walinuxagent.service"
    assert unit.masked_by is not None and "/dev/null" in unit.masked_by


def test_masked_by_empty_file(tmp_path: Path) -> None:
    """An empty unit file is masked too (systemd.unit(5))."""
    put(tmp_path, "/etc/systemd/system/waagent.service", "")
    unit = units.load_unit(Root(tmp_path), "waagent.service")
    assert unit is not None and unit.masked


def test_merged_usr_reads_each_dropin_once(tmp_path: Path) -> None:
    """With /lib -> usr/lib the same directory is found twice but read once."""
    put(tmp_path, "/usr/lib/systemd/system/walinuxagent.service", DEBIAN_LIKE)
    put(
        tmp_path,
        "/usr/lib/systemd/system/walinuxagent.service.d/10-x.conf",
        "[Service]\nEnvironment=A=1\n",
    )
    os.symlink("usr/lib", tmp_path / "lib")
    unit = units.load_unit(Root(tmp_path), "walinuxagent.service")
    assert unit is not None
    assert unit.fragment == "/usr/lib/systemd/system/walinuxagent.service"
    assert len(unit.dropins) == 1 and len(unit.environment) == 1


def test_not_found_anywhere(tmp_path: Path) -> None:
    """No fragment on the search path: None."""
    assert units.load_unit(Root(tmp_path), "waagent.service") is None


def test_environment_is_exposed_for_the_proxy_probe(tmp_path: Path) -> None:
    """Environment= with quotes, a reset, and EnvironmentFile= (optional `-`) are all readable."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", DEBIAN_LIKE)
    put(
        tmp_path,
        "/etc/systemd/system/walinuxagent.service.d/proxy.conf",
        "[Service]\nEnvironment=OLD=1\nEnvironment=\n"
        'Environment="http_proxy=http://10.0.0.9:3128" "https_proxy=http://10.0.0.9:3128"\n'
        "EnvironmentFile=-/etc/default/walinuxagent\n",
    )
    put(tmp_path, "/etc/default/walinuxagent", '# proxy\nno_proxy="168.63.129.16"\n')
    unit = units.load_unit(Root(tmp_path), "walinuxagent.service")
    assert unit is not None
    env = unit.env()
    assert env == {
        "http_proxy": "http://10.0.0.9:3128",
        "https_proxy": "http://10.0.0.9:3128",
    }
    assert (
        unit.env_source("http_proxy") == "/etc/systemd/system/walinuxagent.service.d/proxy.conf:4"
    )
    assert units.read_environment_files(Root(tmp_path), unit) == {"no_proxy": "168.63.129.16"}


def test_unreadable_dropin_is_recorded_not_raised(tmp_path: Path) -> None:
    """A FIFO named like a drop-in is reported as unreadable; the rest still loads."""
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", UBUNTU_UNIT.read_text())
    d = tmp_path / "etc/systemd/system/walinuxagent.service.d"
    d.mkdir(parents=True)
    os.mkfifo(d / "50-fifo.conf")
    unit = units.load_unit(Root(tmp_path), "walinuxagent.service")
    assert unit is not None and unit.restart_value == "always"
    assert [u.guest_path for u in unit.unreadable] == [
        "/etc/systemd/system/walinuxagent.service.d/50-fifo.conf"
    ]


# -- the probe ---------------------------------------------------------------------------------


def test_probe_uses_the_distro_name_and_finds_binaries(tmp_path: Path) -> None:
    """Ubuntu -> walinuxagent.service; /usr/sbin/waagent found; no disable file."""
    os_release(tmp_path, "ubuntu", "debian")
    put(tmp_path, "/lib/systemd/system/walinuxagent.service", UBUNTU_UNIT.read_text())
    put(tmp_path, "/usr/sbin/waagent", "#!/usr/bin/python3\n")
    put(tmp_path, "/usr/bin/python3", "")
    got = units.probe(Host.offline(str(tmp_path), NOW), Settings())
    assert got.unit_name == "walinuxagent.service"
    assert got.unit is not None and got.unit.name == "walinuxagent.service"
    assert got.binaries == ("/usr/sbin/waagent",)
    assert got.exec_program_present is True
    assert got.disable_file is None


def test_probe_falls_back_to_the_other_known_name(tmp_path: Path) -> None:
    """An upstream waagent.service on Debian is still the agent's unit, with a note."""
    os_release(tmp_path, "debian")
    put(tmp_path, "/usr/lib/systemd/system/waagent.service", REDHAT_UNIT.read_text())
    got = units.probe(Host.offline(str(tmp_path), NOW), Settings())
    assert got.unit_name == "walinuxagent.service"
    assert got.unit is not None and got.unit.name == "waagent.service"
    assert got.names_tried == ("walinuxagent.service", "waagent.service")
    assert got.notes


def test_probe_config_override_tries_only_that_name(tmp_path: Path) -> None:
    """settings.agent_unit names the unit; no fallback."""
    os_release(tmp_path, "rhel", "fedora")
    put(tmp_path, "/usr/lib/systemd/system/waagent.service", REDHAT_UNIT.read_text())
    got = units.probe(Host.offline(str(tmp_path), NOW), Settings(agent_unit="custom-agent.service"))
    assert got.unit is None and got.names_tried == ("custom-agent.service",)


def test_probe_sees_the_disable_file_with_its_mtime(tmp_path: Path) -> None:
    """disable_agent is reported with its modification time."""
    p = put(tmp_path, "/var/lib/waagent/disable_agent", "")
    os.utime(p, (1_700_000_000, 1_700_000_000))
    got = units.probe(Host.offline(str(tmp_path), NOW), Settings())
    assert got.disable_file is not None
    assert got.disable_file.path == "/var/lib/waagent/disable_agent"
    assert got.disable_file.mtime == 1_700_000_000
