"""Files shipped beside the code: the example configuration and the journal catalog."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from waagent_doctor import codes
from waagent_doctor.config import Settings, load

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "config.toml"
CATALOG = ROOT / "systemd" / "waagent-doctor.catalog"


def _keys(model: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name in type(model).model_fields:
        value = getattr(model, name)
        if hasattr(type(value), "model_fields"):
            out |= _keys(value, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


def _toml_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in data.items():
        out |= _toml_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return out


def test_example_config_is_the_defaults() -> None:
    """examples/config.toml loads and equals the built-in defaults."""
    assert load(str(EXAMPLE)) == Settings()


def test_example_config_names_every_key() -> None:
    """Every configuration key appears in the example, and nothing else."""
    data = tomllib.loads(EXAMPLE.read_text())
    assert _toml_keys(data) == _keys(Settings())


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_catalog", ROOT / "scripts" / "gen-catalog.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_catalog_matches_codes() -> None:
    """systemd/waagent-doctor.catalog is what scripts/gen-catalog.py makes of codes.py."""
    assert CATALOG.read_text(encoding="utf-8") == _generator().render(), (
        "run scripts/gen-catalog.py"
    )


def test_catalog_explains_every_message_id_once() -> None:
    """One entry per finding code, per action, and per doctor event; no ID twice."""
    ids = re.findall(r"^-- ([0-9a-f]{32})$", CATALOG.read_text(), flags=re.MULTILINE)
    wanted = [c.message_id for c in codes.CODES.values()]
    wanted += [a.message_id for a in codes.ACTIONS.values()]
    wanted += [
        codes.MESSAGE_ID_STARTED,
        codes.MESSAGE_ID_CONFIG_REJECTED,
        codes.MESSAGE_ID_GAVE_UP,
        codes.MESSAGE_ID_VERBOSE_REVERTED,
    ]
    assert sorted(ids) == sorted(wanted)
    assert len(set(ids)) == len(ids)
