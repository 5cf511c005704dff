"""waagent.conf is read with the agent's own grammar, on the agent's real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from waagent_doctor.paths import InputError, Root
from waagent_doctor.probes import waagent_conf

CONFS = Path(__file__).resolve().parents[1] / "data" / "walinuxagent" / "etc" / "waagent_conf"


def _tree(tmp_path: Path, text: str) -> Root:
    (tmp_path / "etc").mkdir(parents=True, exist_ok=True)
    (tmp_path / "etc" / "waagent.conf").write_text(text)
    return Root(tmp_path)


def test_agent_test_file_edge_cases() -> None:
    """The agent's own parser test file: EOL comments cut values, spaces kept inside."""
    conf = waagent_conf.parse((CONFS / "test_waagent.conf").read_text())
    assert conf.get("FauxKey1") == "Value1"
    assert conf.get("FauxKey2") == "Value2 Value2"
    assert conf.get("FauxKey3") == "delalloc,rw,noatime,nobarrier,users,mode=777"
    assert conf.get("Provisioning.SshHostKeyPairType") == "rsa"
    assert conf.get("Provisioning.DecodeCustomData") == "n"
    assert conf.get("") == "Value0"
    assert conf.switch("Extensions.Enabled") is True


@pytest.mark.parametrize("distro", ["generic", "ubuntu", "suse", "mariner"])
def test_shipped_confs_have_extensions_on_and_verbose_off(distro: str) -> None:
    """Every shipped waagent.conf enables extensions and leaves verbose logging off."""
    conf = waagent_conf.parse((CONFS / distro / "waagent.conf").read_text())
    assert conf.switch("Extensions.Enabled") is True
    assert conf.switch("Logs.Verbose") is False
    assert conf.switch("AutoUpdate.Enabled") is True


def test_commented_key_is_not_a_value(tmp_path: Path) -> None:
    """A key in a comment is ignored; the agent's default stands."""
    conf = waagent_conf.read(_tree(tmp_path, "# Extensions.Enabled=n\n"))
    assert conf.switch("Extensions.Enabled") is True
    assert "Extensions.Enabled" not in conf.values


def test_indented_comment_is_a_line_with_an_empty_value(tmp_path: Path) -> None:
    """Like the agent: only a line *starting* with # is a comment; ' #K=v' cuts at #."""
    conf = waagent_conf.read(_tree(tmp_path, " # Extensions.Enabled=n\n"))
    assert conf.switch("Extensions.Enabled") is True


def test_later_duplicate_wins_and_case_of_switch_is_ignored(tmp_path: Path) -> None:
    """Later duplicates overwrite; Y/N in any case; the line number follows the winner."""
    conf = waagent_conf.read(_tree(tmp_path, "Extensions.Enabled=y\nExtensions.Enabled=N\n"))
    assert conf.switch("Extensions.Enabled") is False
    assert conf.where("Extensions.Enabled") == "/etc/waagent.conf:2"


def test_quotes_and_none(tmp_path: Path) -> None:
    """Double quotes and spaces are stripped; single quotes kept; None means unset."""
    text = "HttpProxy.Host=\"proxy.corp\"\nHttpProxy.Port=None\nX='a'\n"
    conf = waagent_conf.read(_tree(tmp_path, text))
    assert conf.get("HttpProxy.Host") == "proxy.corp"
    assert conf.get("HttpProxy.Port") is None
    assert conf.get("X") == "'a'"


def test_unknown_switch_value_falls_back_to_default(tmp_path: Path) -> None:
    """Extensions.Enabled=maybe is not n: the agent keeps its default (y)."""
    conf = waagent_conf.read(_tree(tmp_path, "Extensions.Enabled=maybe\n"))
    assert conf.switch("Extensions.Enabled") is True


def test_missing_file_is_absent_not_an_error(tmp_path: Path) -> None:
    """No /etc/waagent.conf: present is False, defaults apply."""
    conf = waagent_conf.read(Root(tmp_path))
    assert conf.present is False
    assert conf.switch("Extensions.Enabled") is True


def test_binary_junk_does_not_crash(tmp_path: Path) -> None:
    """Invalid UTF-8 and NUL bytes are read, not raised."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "waagent.conf").write_bytes(b"\xff\xfe\x00junk\nLogs.Verbose=y\n\x80")
    conf = waagent_conf.read(Root(tmp_path))
    assert conf.switch("Logs.Verbose") is True


def test_directory_in_place_of_file_is_an_input_error(tmp_path: Path) -> None:
    """A directory where the file should be is unreadable, with the guest path."""
    (tmp_path / "etc" / "waagent.conf").mkdir(parents=True)
    with pytest.raises(InputError) as exc:
        waagent_conf.read(Root(tmp_path))
    assert exc.value.guest_path == "/etc/waagent.conf"


@pytest.mark.parametrize(
    ("line", "value", "switch"),
    [
        ('Extensions.Enabled="n"\r', 'n"', True),  # CRLF shields the closing quote
        ("Extensions.Enabled=n\r", "n", False),  # plain CRLF: whitespace stripped last
        ('Extensions.Enabled=" n "', "n", False),
        ("Extensions.Enabled=\tn\t", "n", False),  # tab is whitespace, stripped last
        ("Extensions.Enabled='n'", "'n'", True),  # single quotes are kept
    ],
)
def test_values_are_trimmed_as_the_agent_trims_them(line: str, value: str, switch: bool) -> None:
    """conf.py trims `.strip('" ').strip()`: quotes and spaces, then whitespace, in that order."""
    conf = waagent_conf.parse(f"# head\r\n{line}\nLogs.Verbose=n\n")
    assert conf.get("Extensions.Enabled") == value
    assert conf.switch("Extensions.Enabled") is switch
