"""The newest goal state is found in both generations and parsed safely, on the agent's files."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from waagent_doctor.paths import InputError, Root
from waagent_doctor.probes import goalstate

WA = Path(__file__).resolve().parents[1] / "data" / "walinuxagent" / "var_lib_waagent"
HIBERNATE = WA / "history_example" / "hibernate_goal_state_1"
LIB = Path("var/lib/waagent")


def _copy(src: Path, root: Path, guest_rel: str) -> None:
    dest = root / guest_rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def test_history_prefers_newer_vm_settings(tmp_path: Path) -> None:
    """The agent uses VmSettings.json when it is newer than ExtensionsConfig.xml (ticks)."""
    folder = f"{LIB}/history/2025-06-20T23-39-17__1"
    for name in ("GoalState.xml", "ExtensionsConfig.xml", "VmSettings.json"):
        _copy(HIBERNATE / name, tmp_path, f"{folder}/{name}")
    gs = goalstate.read(Root(tmp_path))
    assert gs is not None
    assert gs.source == "/var/lib/waagent/history/2025-06-20T23-39-17__1/VmSettings.json"
    assert gs.generation == "history"
    assert gs.incarnation == "1"
    # ExtensionsConfig.xml says seqNo 4 for CustomScript, the newer VmSettings.json says 5.
    cse = gs.plugin("microsoft.azure.extensions.customscript")
    assert cse is not None and cse.seq_no == 5 and cse.version == "2.1.13"
    fam = gs.family("Prod")
    assert fam is not None and fam.version == "2.13.1.1"
    assert gs.status_upload_host == "foo-bar.z6.blob.storage.azure.net"
    assert gs.received_at == datetime(2025, 6, 20, 23, 39, 17, tzinfo=timezone.utc)


def test_history_extensions_config_only(tmp_path: Path) -> None:
    """Without VmSettings.json the ExtensionsConfig.xml is the goal state."""
    _copy(
        HIBERNATE / "ExtensionsConfig.xml",
        tmp_path,
        f"{LIB}/history/2025-06-20T23-39-17__1/ExtensionsConfig.xml",
    )
    gs = goalstate.read(Root(tmp_path))
    assert gs is not None and gs.source.endswith("ExtensionsConfig.xml")
    assert [p.name for p in gs.plugins] == [
        "Microsoft.GuestConfiguration.ConfigurationforLinux",
        "Microsoft.Azure.Extensions.CustomScript",
        "Microsoft.CPlat.Core.LinuxHibernateExtension",
    ]
    seqs = {p.name: p.seq_no for p in gs.plugins}
    assert seqs["Microsoft.Azure.Extensions.CustomScript"] == 4
    assert seqs["Microsoft.CPlat.Core.LinuxHibernateExtension"] is None
    assert gs.created_on is not None and gs.created_on.year == 2025


def test_newest_history_folder_wins_and_zips_are_ignored(tmp_path: Path) -> None:
    """The folder with the newest timestamp in its name is used; .zip archives are not read."""
    old = f"{LIB}/history/2025-01-01T00-00-00__1"
    new = f"{LIB}/history/2025-06-20T23-39-17__2-etag_123"
    _copy(WA / "wire_goal_state" / "ext_conf.xml", tmp_path, f"{old}/ExtensionsConfig.xml")
    _copy(HIBERNATE / "ExtensionsConfig.xml", tmp_path, f"{new}/ExtensionsConfig.xml")
    (tmp_path / LIB / "history" / "2026-01-01T00-00-00__9.zip").write_bytes(
        b"PK\x05\x06" + b"\0" * 18
    )
    gs = goalstate.read(Root(tmp_path))
    assert gs is not None and gs.folder == "/" + new
    assert gs.incarnation == "2" and gs.etag == "etag_123"
    assert gs.plugin("OSTCExtensions.ExampleHandlerLinux") is None


def test_legacy_newest_incarnation_and_no_sas(tmp_path: Path) -> None:
    """Legacy ExtensionsConfig.<N>.xml: the highest N wins; only the blob host is exposed."""
    _copy(HIBERNATE / "ExtensionsConfig.xml", tmp_path, f"{LIB}/ExtensionsConfig.2.xml")
    _copy(
        WA / "wire_goal_state" / "ext_conf_redact.xml", tmp_path, f"{LIB}/ExtensionsConfig.10.xml"
    )
    gs = goalstate.read(Root(tmp_path))
    assert gs is not None and gs.generation == "legacy"
    assert gs.source == "/var/lib/waagent/ExtensionsConfig.10.xml"
    assert gs.status_upload_host == "md-z9z999zzzz99.z38.blob.storage.azure.net"
    assert "sig=" not in repr(gs) and "9ZzZZ" not in repr(gs)
    assert gs.plugin("Microsoft.Azure.AzureDefenderForServers.MDE.Linux") is not None


def test_legacy_vm_settings_json(tmp_path: Path) -> None:
    """A legacy VmSettings.<N>.json (HostGAPlugin format) is read when it is the only document."""
    _copy(WA / "hostgaplugin" / "vm_settings.json", tmp_path, f"{LIB}/VmSettings.1.json")
    gs = goalstate.read(Root(tmp_path))
    assert gs is not None
    assert gs.plugin("Microsoft.Azure.Monitor.AzureMonitorLinuxAgent") is not None
    assert gs.status_upload_host == "dcrcl3a0xs.blob.core.windows.net"
    assert {f.name for f in gs.ga_families} == {"Prod", "Test"}


def test_multi_config_plugin(tmp_path: Path) -> None:
    """ExtensionRuntimeSettings mark a multi-config extension."""
    _copy(
        WA / "wire_goal_state" / "multi-config" / "ext_conf_with_multi_config.xml",
        tmp_path,
        f"{LIB}/ExtensionsConfig.1.xml",
    )
    gs = goalstate.read(Root(tmp_path))
    assert gs is not None
    assert any(p.multi_config for p in gs.plugins)


def test_placeholder_only_is_no_goal_state(tmp_path: Path) -> None:
    """A current agent's placeholder GoalState.1.xml holds no goal state."""
    (tmp_path / LIB).mkdir(parents=True)
    (tmp_path / LIB / "GoalState.1.xml").write_text("<xml>empty placeholder file</xml>")
    assert goalstate.read(Root(tmp_path)) is None


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Extensions><Plugins>&lol4;</Plugins></Extensions>"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE x [ <!ENTITY xxe SYSTEM "file:///etc/shadow"> ]>
<Extensions><Plugins>&xxe;</Plugins></Extensions>"""


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (BOMB, "XML refused"),
        (EXTERNAL, "XML refused"),
        ("<Extensions><Plugins>", "not well-formed XML"),
        ("\x00\xff binary junk", "not well-formed XML"),
        ("<GoalState/>", "not an ExtensionsConfig document"),
    ],
)
def test_hostile_or_broken_xml_is_an_input_error(tmp_path: Path, content: str, reason: str) -> None:
    """Billion laughs, external entities and junk give an InputError naming the guest path."""
    (tmp_path / LIB / "history" / "2025-01-01T00-00-00__1").mkdir(parents=True)
    (tmp_path / LIB / "history" / "2025-01-01T00-00-00__1" / "ExtensionsConfig.xml").write_text(
        content, encoding="latin-1"
    )
    with pytest.raises(InputError) as err:
        goalstate.read(Root(tmp_path))
    assert (
        err.value.guest_path
        == "/var/lib/waagent/history/2025-01-01T00-00-00__1/ExtensionsConfig.xml"
    )
    assert reason in err.value.reason


def test_huge_document_is_refused(tmp_path: Path) -> None:
    """A goal-state document over the size cap is refused, not parsed."""
    p = tmp_path / LIB / "ExtensionsConfig.1.xml"
    p.parent.mkdir(parents=True)
    with p.open("wb") as fh:
        fh.write(b"<Extensions>")
        fh.truncate(goalstate.MAX_DOC_BYTES + 10)
    with pytest.raises(InputError, match="larger than"):
        goalstate.read(Root(tmp_path))


def test_ticks() -> None:
    """.NET ticks convert to UTC (the Unix epoch is 621355968000000000 ticks); junk gives None."""
    assert goalstate.ticks_to_time(621355968000000000) == datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert goalstate.ticks_to_time(621355968000000000 + 10_000_000 * 86_400 + 15) == datetime(
        1970, 1, 2, 0, 0, 0, 1, tzinfo=timezone.utc
    )
    assert goalstate.ticks_to_time("junk") is None
    assert goalstate.ticks_to_time(-1) is None
