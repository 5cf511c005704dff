"""Read /etc/waagent.conf with the agent's own grammar (azurelinuxagent/common/conf.py).

A line counts only if it does not start with `#` and has `=`; key = left part stripped
(case-sensitive); value = text before the first `#`, stripped of spaces and double quotes, then of
whitespace (in that order: a CRLF line keeps its closing quote);
later duplicates win; `None` means unset; switches compare lower-cased y/n.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.paths import WAAGENT_CONF, InputError, Root

# The agent's defaults for the keys the doctor reads (conf.py __SWITCH_OPTIONS__ etc.).
DEFAULTS: dict[str, str] = {
    "Logs.Verbose": "n",
    "Extensions.Enabled": "y",
    "AutoUpdate.Enabled": "y",
    "HttpProxy.Host": "",
    "HttpProxy.Port": "",
    "Lib.Dir": "/var/lib/waagent",
    "Extension.LogDir": "/var/log/azure",
    "OS.EnableFirewall": "n",
}


@dataclass(frozen=True)
class ConfValue:
    """A key's effective value and the line that set it."""

    value: Optional[str]
    line: int


@dataclass(frozen=True)
class WaagentConf:
    """The agent's effective configuration; `present` False when the file does not exist."""

    path: str
    present: bool
    values: dict[str, ConfValue] = field(default_factory=dict)

    def get(self, key: str) -> Optional[str]:
        """The effective value, the agent's default when unset, None for `None`."""
        cv = self.values.get(key)
        if cv is None:
            return DEFAULTS.get(key)
        return cv.value

    def switch(self, key: str, default: Optional[bool] = None) -> Optional[bool]:
        """y/n in any case; anything else (or unset) is the default, as in the agent."""
        cv = self.values.get(key)
        if cv is not None and cv.value is not None:
            low = cv.value.lower()
            if low == "y":
                return True
            if low == "n":
                return False
        if default is not None:
            return default
        d = DEFAULTS.get(key)
        return None if d is None else d == "y"

    def where(self, key: str) -> str:
        """Evidence source for a key: /etc/waagent.conf:LINE, or the file when unset."""
        cv = self.values.get(key)
        return f"{self.path}:{cv.line}" if cv is not None else self.path


def parse(text: str, path: str = WAAGENT_CONF) -> WaagentConf:
    """Parse waagent.conf text exactly as the agent does."""
    values: dict[str, ConfValue] = {}
    for lineno, line in enumerate(text.split("\n"), start=1):
        # conf.py: `if not line.startswith("#") and "=" in line`
        if line.startswith("#") or "=" not in line:
            continue
        key, _, rest = line.partition("=")
        key = key.strip()
        # conf.py: `parts[1].split('#')[0].strip("\" ").strip()`: quotes and spaces first,
        # then whitespace. `Logs.Verbose=y # comment` -> "y"; but a CRLF line
        # `Extensions.Enabled="n"\r` -> 'n"' (the \r shields the closing quote), which the
        # agent does not read as "n": its switch falls back to the default.
        value = rest.split("#", 1)[0].strip('" ').strip()
        values[key] = ConfValue(None if value == "None" else value, lineno)
    return WaagentConf(path=path, present=True, values=values)


def read(root: Root, path: str = WAAGENT_CONF) -> WaagentConf:
    """The guest's waagent.conf; absent (all defaults) when the file does not exist."""
    try:
        text = root.read_text(path, 1024 * 1024)
    except InputError as err:
        if err.missing:
            return WaagentConf(path=path, present=False)
        raise
    return parse(text, path)


def probe(host: Host, settings: Settings) -> WaagentConf:
    """Probe: the agent's configuration file."""
    return read(host.root)
