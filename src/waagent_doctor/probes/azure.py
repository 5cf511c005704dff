"""Is this an Azure VM? The DMI chassis asset tag says so (the agent's own test, too).

On Azure `/sys/class/dmi/id/chassis_asset_tag` reads `7783-7084-3265-9085-8269-3286-77`
(ASCII for "MSFT AZURE VM"); `assume_azure = true` in the configuration skips the test.
"""

from __future__ import annotations

from dataclasses import dataclass

from waagent_doctor.config import Settings
from waagent_doctor.host import Host
from waagent_doctor.paths import InputError
from waagent_doctor.probes import ProbeSkipped

CHASSIS_ASSET_TAG = "/sys/class/dmi/id/chassis_asset_tag"
AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"


@dataclass(frozen=True)
class AzureIdentity:
    """What the platform says it is: the asset tag read, and whether config assumed Azure."""

    asset_tag: str
    readable: bool
    reason: str
    assumed: bool

    @property
    def is_azure(self) -> bool:
        """True on Azure, or when the configuration says to assume it."""
        return self.assumed or self.asset_tag == AZURE_ASSET_TAG


def probe(host: Host, settings: Settings) -> AzureIdentity:
    """Probe: the DMI chassis asset tag (live only)."""
    if not host.live:
        raise ProbeSkipped("offline: the hardware is not examined")
    if settings.assume_azure:
        return AzureIdentity("", False, "assume_azure = true", True)
    try:
        # 7783-7084-3265-9085-8269-3286-77\n
        tag = host.root.read_text(CHASSIS_ASSET_TAG, 4096).strip()
    except InputError as err:
        return AzureIdentity("", False, err.reason, False)
    return AzureIdentity(tag, True, "", False)
