"""The configuration: contract keys with defaults; a bad key stops with its name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from waagent_doctor import config
from waagent_doctor.config import ConfigError, load


def test_defaults_match_the_contract() -> None:
    """Every contract key exists with the contract's default."""
    s = config.Settings()
    assert s.interval_seconds == 60
    assert s.dry_run is False
    assert s.assume_azure is False
    assert s.endpoints.wireserver == ""
    assert s.endpoints.wireserver_port == 80
    assert s.endpoints.hostgaplugin_port == 32526
    assert s.endpoints.imds == "169.254.169.254"
    assert s.endpoints.imds_port == 80
    a = s.actions
    assert (a.restart_agent, a.enable_autorestart, a.enable_verbose_logging) == (True,) * 3
    assert a.collect_logs is True
    assert a.reload_extension is False
    assert a.restart_agent_per_hour == 3
    assert s.thresholds.min_vmsnapshot_version == "1.0.91.0"


def test_toml_file_loads(tmp_path: Path) -> None:
    """A TOML file with sections loads into the model."""
    f = tmp_path / "c.toml"
    f.write_text('interval_seconds = 1\n[endpoints]\nwireserver = "127.0.0.1"\n')
    s = config.load(str(f))
    assert s.interval_seconds == 1
    assert s.endpoints.wireserver == "127.0.0.1"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("interval_seconds = 0\n", "interval_seconds"),
        ('interval_seconds = "60"\n', "interval_seconds"),
        ("dry_run = 1\n", "dry_run"),
        ("[actions]\nrestart_agnt = true\n", "actions.restart_agnt"),
        ("[endpoints]\nwireserver_port = 70000\n", "endpoints.wireserver_port"),
        ("[thresholds]\nmin_vmsnapshot_version = 'latest'\n", "thresholds.min_vmsnapshot_version"),
        ("bogus = 1\n", "bogus"),
    ],
)
def test_bad_key_is_named(tmp_path: Path, text: str, key: str) -> None:
    """An invalid or unknown key stops loading with a message naming it."""
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(config.ConfigError) as exc:
        config.load(str(f))
    assert f"'{key}'" in str(exc.value)
    assert str(f) in str(exc.value)


def test_invalid_toml_is_an_error(tmp_path: Path) -> None:
    """Broken TOML is refused, never silently replaced by defaults."""
    f = tmp_path / "c.toml"
    f.write_text("interval_seconds = = 3\n")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(str(f))


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    """--config naming a missing file is an error; the default path may be absent."""
    with pytest.raises(config.ConfigError, match="no such file"):
        config.load(str(tmp_path / "nope.toml"))


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e300"])
@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("thresholds", "lookback_hours"),
        ("thresholds", "agent_hung_minutes"),
        ("actions", "verbose_logging_hours"),
    ],
)
def test_unbounded_numbers_are_refused_naming_the_key(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    """inf, nan and 1e300 never reach a time computation: load refuses them by key."""
    path = tmp_path / "config.toml"
    path.write_text(f"[{section}]\n{key} = {value}\n")
    with pytest.raises(ConfigError) as exc:
        load(str(path))
    assert f"{section}.{key}" in str(exc.value)


def test_config_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """A FIFO as --config: refused at once (opened non-blocking), naming the file."""
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as exc:
        load(str(fifo))
    assert str(fifo) in str(exc.value) and "not a regular file" in str(exc.value)


@pytest.mark.parametrize(
    ("target", "words"), [("/dev/zero", "not a regular file"), (".", "directory")]
)
def test_config_device_or_directory_is_refused(tmp_path: Path, target: str, words: str) -> None:
    """A device or a directory as --config: refused, naming it."""
    path = str(tmp_path) if target == "." else target
    with pytest.raises(ConfigError) as exc:
        load(path)
    assert words in str(exc.value)


def test_huge_config_is_refused_reading_at_most_the_cap(tmp_path: Path) -> None:
    """A config larger than the cap (a sparse 4 GiB file) is refused by size, not read."""
    path = tmp_path / "config.toml"
    with path.open("wb") as f:
        f.truncate(4 * 1024**3)
    with pytest.raises(ConfigError) as exc:
        load(str(path))
    assert "too large" in str(exc.value)


def test_deeply_nested_config_is_refused(tmp_path: Path) -> None:
    """Nesting deeper than the parser's recursion: a TOML error naming the file."""
    path = tmp_path / "config.toml"
    depth = 200_000
    path.write_text("x = " + "[" * depth + "]" * depth + "\n")
    with pytest.raises(ConfigError) as exc:
        load(str(path))
    assert str(path) in str(exc.value)
