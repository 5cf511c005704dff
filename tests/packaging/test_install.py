"""The packages installed in the systemd-nspawn testbed (a fresh Debian 12, systemd as PID 1).

One container for the module; the tests run in order, as an operator would: install the .deb
with a loopback-only configuration in place before the service first starts, see the first
cycle in the journal, use the command, upgrade, remove, purge; then the .rpm's scriptlets
(Debian's rpm, --nodeps) under the same systemd.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.packaging.conftest import Built, host_arch, require_system
from tests.system.testbed import (
    Testbed,
    TestbedUnavailable,
    ensure_rootfs,
    unavailable_reason,
    wait_for,
)

pytestmark = pytest.mark.system

UNIT = "waagent-doctor.service"
CONFIG = "/etc/waagent-doctor/config.toml"
# Every endpoint on loopback, on a port nothing listens on: the probes are refused at once and
# the first cycle raises network findings. assume_azure: the container is no Azure VM.
TEST_CONFIG = """\
# tests/packaging: put in place before the package is installed
interval_seconds = 5
dry_run = true
assume_azure = true

[endpoints]
wireserver = "127.0.0.1"
wireserver_port = 9
hostgaplugin_port = 9
imds = "127.0.0.1"
imds_port = 9
storage = "127.0.0.1"
storage_port = 9
connect_timeout_seconds = 1.0
deadline_seconds = 3.0
"""
DPKG = ["env", "DEBIAN_FRONTEND=noninteractive", "dpkg", "--force-confdef", "--force-confold"]
CONTRACT_FIELDS = (
    "MESSAGE_ID", "PRIORITY", "SYSLOG_IDENTIFIER", "WAAGENT_DOCTOR_EVENT",
    "WAAGENT_DOCTOR_CODE", "WAAGENT_DOCTOR_CAUSE",
)  # fmt: skip
CONTRACT_EVENTS = ("finding.", "action.")
STATE: dict[str, Any] = {}  # what earlier steps saw, for later ones


@pytest.fixture(scope="module")
def box(
    packages: Built, upgrade_packages: Built, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Testbed]:
    """A container of its own (packages change it for good) with the packages at /pkgs."""
    arch = host_arch()
    pkgs = tmp_path_factory.mktemp("pkgs")
    for f in (packages.deb[arch], upgrade_packages.deb[arch], packages.rpm[arch]):
        shutil.copy2(f, pkgs / f.name)
    reason = unavailable_reason()
    try:
        if reason:
            raise TestbedUnavailable(reason)
        tb = Testbed.start(ensure_rootfs(), ro_binds={pkgs: "/pkgs"})
    except TestbedUnavailable as exc:
        if require_system():
            pytest.fail(f"system testbed required but unavailable: {exc}")
        pytest.skip(f"system testbed unavailable: {exc}")
    try:
        yield tb
    finally:
        tb.stop()


@pytest.fixture(autouse=True)
def _host_tools(allow_any_subprocess: None) -> None:
    """Driving the container runs nsenter and friends."""


def active(tb: Testbed) -> str:
    return tb.prop(UNIT, "ActiveState")


def doctor_entries(tb: Testbed) -> list[dict[str, Any]]:
    # The contract's events; the daemon may log others (started, stopping) with fewer fields.
    entries = tb.journal("SYSLOG_IDENTIFIER=waagent-doctor")
    return [e for e in entries if e.get("WAAGENT_DOCTOR_EVENT", "").startswith(CONTRACT_EVENTS)]


def test_deb_install_enables_and_starts_with_the_admins_config(
    box: Testbed, packages: Built
) -> None:
    box.run(["mkdir", "-p", "/etc/waagent-doctor"])
    box.write_file(CONFIG, TEST_CONFIG)
    deb = f"/pkgs/{packages.deb[host_arch()].name}"
    box.run([*DPKG, "-i", deb], timeout=120)
    assert box.read_file(CONFIG) == TEST_CONFIG  # the admin's file wins, without a prompt
    assert box.run(["systemctl", "is-enabled", UNIT]).stdout.strip() == "enabled"
    wait_for(lambda: active(box) == "active", 30, what="waagent-doctor.service active")
    assert box.run(["stat", "-c", "%a", "/var/lib/waagent-doctor"]).stdout.strip() == "700"
    which = box.run(["sh", "-c", "command -v waagent-doctor"]).stdout.strip()
    assert which == "/usr/bin/waagent-doctor"
    # postinst compiled the bundled libraries for this python3 (the unit's /usr is read-only).
    pyc = box.run(["find", "/usr/lib/waagent-doctor/site/common/pydantic", "-name", "*.pyc"])
    assert pyc.stdout.strip()


def test_first_cycle_is_in_the_journal_with_the_contract_fields(box: Testbed) -> None:
    entries = wait_for(lambda: doctor_entries(box), 60, what="a waagent-doctor journal event")
    for e in entries:
        missing = [f for f in CONTRACT_FIELDS if f not in e]
        assert not missing, (missing, e)
        assert re.fullmatch(r"[0-9a-f]{32}", e["MESSAGE_ID"]), e["MESSAGE_ID"]
        assert e["WAAGENT_DOCTOR_CAUSE"] in {"0", "1", "2", "3", "4"}
        assert e.get("_SYSTEMD_UNIT") == UNIT
    raised = {e["WAAGENT_DOCTOR_CODE"]: e for e in entries
              if e["WAAGENT_DOCTOR_EVENT"] == "finding.raised"}  # fmt: skip
    # Nothing listens on 127.0.0.1:9, so the WireServer cannot be reached.
    assert "network.wireserver.unreachable" in raised, sorted(raised)
    STATE["message_id"] = raised["network.wireserver.unreachable"]["MESSAGE_ID"]


def test_journalctl_x_shows_the_catalog_text(box: Testbed) -> None:
    message_id = STATE.get("message_id") or pytest.fail("no finding entry from the step before")
    catalog = box.read_file("/usr/lib/systemd/catalog/waagent-doctor.catalog")
    # -- 8471e0ca174d4bd5ac1a12d16ca3606a
    # Subject: The VM cannot reach the Azure WireServer (network.wireserver.unreachable)
    block = catalog.split(f"-- {message_id}\n", 1)[1]
    subject = re.search(r"^Subject: (.+)$", block, re.MULTILINE)
    assert subject, block[:200]
    out = box.run(["journalctl", "-x", "--no-pager", f"MESSAGE_ID={message_id}"]).stdout
    assert subject.group(1) in out, out[-2000:]
    listed = box.run(["journalctl", "--list-catalog", "--no-pager"]).stdout
    assert message_id in listed


def test_check_runs_from_the_installed_path(box: Testbed, packages: Built) -> None:
    version = box.run(["/usr/bin/waagent-doctor", "--version"]).stdout.strip()
    assert version == f"waagent-doctor {packages.version}"
    res = box.run(["/usr/bin/waagent-doctor", "check", "--json", "--config", CONFIG],
                  check=False, timeout=120)  # fmt: skip
    assert res.returncode in (0, 1, 2), res.stderr
    report = json.loads(res.stdout)
    assert report["schema"] == "waagent-doctor/report/1" and report["mode"] == "live"
    assert "network.wireserver.unreachable" in {f["code"] for f in report["findings"]}


def test_unit_verifies_and_security_exposure(box: Testbed) -> None:
    unit = box.run(["systemctl", "show", "-P", "FragmentPath", UNIT]).stdout.strip()
    res = box.run(["systemd-analyze", "verify", "--man=no", unit], check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    out = box.run(["systemd-analyze", "security", "--no-pager", UNIT], check=False).stdout
    # → Overall exposure level for waagent-doctor.service: 4.4 OK 🙂
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", out)
    assert m, out[-1000:]
    score = float(m.group(1))
    print(f"systemd-analyze security {UNIT}: {score} {m.group(2)}")
    assert score < 5.0, out


def test_upgrade_keeps_a_changed_config_and_restarts(box: Testbed, upgrade_packages: Built) -> None:
    changed = TEST_CONFIG.replace("interval_seconds = 5", "interval_seconds = 7")
    changed += "# changed by the administrator\n"
    box.write_file(CONFIG, changed)
    before = box.main_pid(UNIT)
    deb = f"/pkgs/{upgrade_packages.deb[host_arch()].name}"
    box.run([*DPKG, "-i", deb], timeout=120)
    installed = box.run(["dpkg-query", "-W", "-f", "${Version}", "waagent-doctor"]).stdout
    assert installed == upgrade_packages.deb_version()
    assert box.read_file(CONFIG) == changed
    wait_for(lambda: active(box) == "active" and box.main_pid(UNIT) not in (0, before), 30,
             what="restarted after the upgrade")  # fmt: skip


def test_remove_stops_it_and_keeps_state_and_config(box: Testbed) -> None:
    box.run(["dpkg", "-r", "waagent-doctor"], timeout=120)
    assert active(box) in ("inactive", "failed")
    assert box.prop(UNIT, "LoadState") == "not-found"
    assert not box.exists("/usr/bin/waagent-doctor")
    assert not box.exists("/usr/lib/waagent-doctor")  # the .pyc files went with it
    assert box.exists("/var/lib/waagent-doctor")
    assert box.exists(CONFIG)


def test_purge_leaves_nothing_behind(box: Testbed) -> None:
    box.run(["dpkg", "-P", "waagent-doctor"], timeout=120)
    status = box.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "waagent-doctor"],
                     check=False).stdout  # fmt: skip
    assert status.strip() in ("", "un", "pn")
    where = ["/etc", "/usr", "/var", "/run"]
    find = ["find", *where, "-xdev", "-name", "*waagent-doctor*", "-not", "-path", "/var/log/*"]
    left = box.run(find, check=False).stdout.split()
    assert left == [], left


def test_rpm_scriptlets_run_under_systemd(box: Testbed, packages: Built) -> None:
    if box.run(["sh", "-c", "command -v rpm"], check=False).returncode != 0:
        pytest.fail("no rpm in the testbed: scripts/build-testbed-rootfs.sh must include it")
    rpm = f"/pkgs/{packages.rpm[host_arch()].name}"
    box.run(["mkdir", "-p", "/etc/waagent-doctor"])
    box.write_file(CONFIG, TEST_CONFIG)
    box.run(["rpm", "-i", "--nodeps", rpm], timeout=120)
    # %post: preset (enable), start; the admin's file is kept, the package's beside it.
    assert box.run(["systemctl", "is-enabled", UNIT]).stdout.strip() == "enabled"
    wait_for(lambda: active(box) == "active", 30, what="started by %post")
    assert box.read_file(CONFIG) == TEST_CONFIG
    assert box.exists(CONFIG + ".rpmnew")
    assert box.run(["/usr/bin/waagent-doctor", "--version"]).returncode == 0
    assert box.run(["stat", "-c", "%a", "/var/lib/waagent-doctor"]).stdout.strip() == "700"
    # %preun: stop and disable; the files go, the .pyc files %post wrote too.
    box.run(["rpm", "-e", "--nodeps", "waagent-doctor"], timeout=120)
    assert active(box) in ("inactive", "failed")
    assert box.run(["systemctl", "is-enabled", UNIT], check=False).stdout.strip() != "enabled"
    assert not box.exists("/usr/bin/waagent-doctor")
    assert not box.exists("/usr/lib/waagent-doctor")
