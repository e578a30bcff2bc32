"""What the API and the agent agree on about firmware: components, ids, URIs, and the checks
a bundle must pass before anything reaches a slot. Pure: no store, no drivers.

Components (each with slots A and B):

- ``rmc``  — the RMC's own software; target ``RMC``; its device is ``Managers/RMC``.
- ``bmc``  — a unit's BMC firmware; target ``UnitN``; device ``Managers/UnitN-BMC``.
- ``boot`` — a unit's boot firmware (Raspberry Pi ``tryboot`` A/B); device ``Systems/UnitN``.

One SoftwareInventory per component slot: ``RMC-A``, ``Unit1-BMC-B``, ``Unit1-Boot-A`` …
"""

from __future__ import annotations

import re

RMC = "RMC"
SLOTS = ("A", "B")
COMPONENTS = ("rmc", "bmc", "boot")
_LABEL = {"rmc": "RMC", "bmc": "BMC", "boot": "Boot"}
_INVENTORY = re.compile(r"^(?:(RMC)|([A-Za-z0-9_]+)-(BMC|Boot))-([AB])$")
INVENTORY = "/redfish/v1/UpdateService/FirmwareInventory"
APPLY_TIMES = ("Immediate", "OnReset")
MAX_IMAGE_BYTES = 512 * 1024 * 1024   # a bundle's payload; the staging area must hold one
SIM_HARDWARE = "racklet-sim"
LINUX_HARDWARE = "raspberrypi"


class Refused(Exception):
    """A bundle that must not be installed on a target: ``key`` is the Update registry
    message (its args are the target's URI and the image), ``reason`` says why in words."""

    def __init__(self, key: str, reason: str):
        super().__init__(reason)
        self.key, self.reason = key, reason


def inventory_id(target: str, component: str, slot: str) -> str:
    return f"{RMC}-{slot}" if component == "rmc" else f"{target}-{_LABEL[component]}-{slot}"


def parse_inventory_id(inv_id: str) -> tuple[str, str, str] | None:
    """(target, component, slot) of an inventory id, or None."""
    m = _INVENTORY.match(inv_id)
    if not m:
        return None
    if m.group(1):
        return RMC, "rmc", m.group(4)
    return m.group(2), m.group(3).lower(), m.group(4)


def inventory_uri(target: str, component: str, slot: str) -> str:
    return f"{INVENTORY}/{inventory_id(target, component, slot)}"


def device_uri(target: str, component: str) -> str:
    if component == "rmc":
        return f"/redfish/v1/Managers/{RMC}"
    if component == "bmc":
        return f"/redfish/v1/Managers/{target}-BMC"
    return f"/redfish/v1/Systems/{target}"


def components_of(unit_ids: list[str]) -> list[tuple[str, str]]:
    """Every (target, component) of a rack with these units, in inventory order."""
    return [(RMC, "rmc")] + [(u, c) for u in unit_ids for c in ("bmc", "boot")]


def resolve_target(uri: str, unit_ids: list[str]) -> tuple[str, str | None] | None:
    """What an UpdateParameters ``Targets`` entry names: (target, component), where the
    component is None for a device with several (a System names its boot firmware; a
    BMC manager its BMC firmware), or None when the URI names nothing updatable."""
    uri = uri.rstrip("/")
    if uri == device_uri(RMC, "rmc"):
        return RMC, "rmc"
    for u in unit_ids:
        if uri == device_uri(u, "bmc"):
            return u, "bmc"
        if uri == device_uri(u, "boot"):
            return u, "boot"
    if uri.startswith(INVENTORY + "/"):
        parsed = parse_inventory_id(uri[len(INVENTORY) + 1:])
        if parsed and (parsed[0] == RMC or parsed[0] in unit_ids):
            return parsed[0], parsed[1]
    return None


def version_key(version: str | None) -> tuple:
    """Orders dotted versions numerically ("1.10.0" after "1.9.2"); other parts as text."""
    if not version:
        return ()
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+_-]", version))


def check(manifest: dict, target: str, component: str, hardware_id: str, active: dict | None,
          floor: int, force: bool = False) -> None:
    """Raise ``Refused`` when the bundle (its verified manifest) must not go to the target.

    ``ForceUpdate`` allows re-installing the same version; it never lowers the floor."""
    uri = device_uri(target, component)
    if manifest["component"] != component:
        raise Refused("UpdateNotApplicable",
                      f"the bundle is {manifest['component']} firmware; {uri} takes {component} firmware")
    if hardware_id not in manifest["compatible"]:
        raise Refused("UpdateNotApplicable",
                      f"the bundle is for {', '.join(manifest['compatible'])}; {uri} is {hardware_id}")
    if manifest["security_version"] < floor:
        raise Refused("UpdateSkippedVersionTooLow",
                      f"security version {manifest['security_version']} is below the rack's floor {floor} "
                      f"for {uri} (rollback refused; ForceUpdate cannot override it)")
    if not force and active and active.get("sha256") == manifest["sha256"]:
        raise Refused("UpdateSkippedSameVersion",
                      f"{uri} already runs version {manifest['version']} (set ForceUpdate to re-install it)")


def image_name(manifest: dict) -> str:
    """How messages name a bundle: its component and version."""
    return f"{manifest['component']}-{manifest['version']}"
