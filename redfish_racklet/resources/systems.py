"""ComputerSystem: the compute units (/redfish/v1/Systems/UnitN), their Reset action,
their identify LED and their boot override.

A GET reads the state the agent observed; a Reset asks the agent (the only owner
of the power rails) and answers once the agent has acted or refused. The LED and
the boot override are desired settings: a PATCH stores them (settings 'led' and
'boot') and the agent applies them. Processors, interfaces and storage of a unit
are in ``system_parts``.
"""

from __future__ import annotations

import re
import urllib.parse

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from ..agent.power import RESET_TYPES
from ..messages import RedfishError, message
from ..privileges import declare
from ..web import (Invalid, RedfishView, StrictBoolean, action_parameter, check_if_match, check_patch, collection,
                   is_annotation, json_body, json_response, odata_id, one_of, render, walk_tree)
from .common import action_info, agent_command, not_found, odata_type, store, unit_status, unit_uuid
from .power_equipment import RESTORE_POLICIES, outlet_setting
from .update_service import active_image

blp = Blueprint("systems", __name__, description="Compute units")

RESET_ACTION = "#ComputerSystem.Reset"
ASSET_TAG_MAX = 63

# The tray's identify LED (setting 'led'). IndicatorLED's "Unknown" is deprecated and
# never settable; LocationIndicatorActive is the same LED seen as a boolean.
LED_STATES = ("Lit", "Blinking", "Off")
LED_DEFAULT = "Off"

# Boot override (setting 'boot'). Targets a Raspberry Pi can boot from: its network
# boot (PXE, or UEFI HTTP boot with the Pi UEFI firmware), a USB or NVMe/SATA disk
# behind USB (Hdd), the SD card, or no override.
BOOT_TARGETS = ("None", "Pxe", "UefiHttp", "Hdd", "SDCard", "Usb")
BOOT_ENABLED = ("Disabled", "Once", "Continuous")
BOOT_MODES = ("UEFI", "Legacy")
BOOT_DEFAULT = {"target": "None", "enabled": "Disabled", "mode": "UEFI", "uri": ""}
# Boot property -> key in the setting. What Boot shows and this does not list
# (UefiTargetBootSourceOverride, which the OCP profile reads) is read-only.
BOOT_KEYS = {"BootSourceOverrideTarget": "target", "BootSourceOverrideEnabled": "enabled",
             "BootSourceOverrideMode": "mode", "HttpBootUri": "uri"}
HTTP_BOOT_URI_MAX = 2048


class SystemPatch(Schema):
    AssetTag = fields.String(required=False, validate=validate.Length(max=ASSET_TAG_MAX, error="length"),
                             error_messages={"invalid": "type", "null": "type"})
    IndicatorLED = fields.String(validate=validate.OneOf(LED_STATES, error="list"),
                                 error_messages={"invalid": "type", "null": "type"})
    LocationIndicatorActive = StrictBoolean()
    # the unit's rail at the agent's start (after a power loss of the RMC): the same
    # setting as the PowerRestorePolicy of the unit's Outlet on the busbar
    PowerRestorePolicy = fields.String(validate=validate.OneOf(RESTORE_POLICIES, error="list"),
                                       error_messages={"invalid": "type", "null": "type"})



def _boot_version(uid: str) -> str | None:
    img = active_image(uid, "boot")
    return img["version"] if img else None

def _unit(system_id: str) -> dict:
    unit = store().unit(system_id)
    if unit is None:
        raise not_found("ComputerSystem", system_id)
    return unit


def led_state(uid: str) -> str:
    return store().settings(uid).get("led", LED_DEFAULT)


def boot_setting(uid: str) -> dict:
    return dict(BOOT_DEFAULT, **store().settings(uid).get("boot", {}))


def parts_status(unit: dict) -> dict:
    """Status of what is built into a unit (CPU, memory, NIC, SD card): there when the
    unit is, whatever its power state (as bmcweb reports inventory)."""
    return {"State": "Enabled", "Health": "OK"} if unit["present"] else {"State": "Absent"}


def boot_doc(boot: dict) -> dict:
    return {
        "BootSourceOverrideTarget": boot["target"],
        "BootSourceOverrideTarget@Redfish.AllowableValues": list(BOOT_TARGETS),
        "BootSourceOverrideEnabled": boot["enabled"],
        "BootSourceOverrideEnabled@Redfish.AllowableValues": list(BOOT_ENABLED),
        "BootSourceOverrideMode": boot["mode"],
        "BootSourceOverrideMode@Redfish.AllowableValues": list(BOOT_MODES),
        "HttpBootUri": boot["uri"] or None,
        "UefiTargetBootSourceOverride": None,
    }


def system_doc(unit: dict) -> dict:
    uid = unit["id"]
    base = f"/redfish/v1/Systems/{uid}"
    info = unit["info"]
    cpu = info.get("processor", {})
    led = led_state(uid)
    return {
        "@odata.id": base,
        "@odata.type": odata_type("ComputerSystem"),
        "Id": uid,
        "Name": info["name"],
        "SystemType": "Physical",
        "Manufacturer": info["manufacturer"],
        "Model": info["model"],
        "SerialNumber": info["serial_number"],
        "PartNumber": info.get("part_number", ""),
        "SKU": info.get("sku", ""),
        "AssetTag": unit["asset_tag"],
        "UUID": unit_uuid(uid),
        "BiosVersion": _boot_version(uid) or info.get("bios_version", ""),  # the active boot slot's
        "PowerState": unit["power_state"],
        "PowerRestorePolicy": outlet_setting(uid)["power_restore_policy"],
        "Status": unit_status(unit),
        "IndicatorLED": led,
        "LocationIndicatorActive": led != "Off",
        "Boot": boot_doc(boot_setting(uid)),
        "ProcessorSummary": {
            "Count": 1,
            "CoreCount": cpu.get("cores"),
            "LogicalProcessorCount": cpu.get("cores"),  # no SMT on the Pi's Cortex cores
            "Model": cpu.get("model"),
            "Status": parts_status(unit),
        },
        "MemorySummary": {"TotalSystemMemoryGiB": info.get("memory_gib"), "Status": parts_status(unit)},
        "Processors": odata_id("Systems", uid, "Processors"),
        "EthernetInterfaces": odata_id("Systems", uid, "EthernetInterfaces"),
        "Storage": odata_id("Systems", uid, "Storage"),
        "SimpleStorage": odata_id("Systems", uid, "SimpleStorage"),
        "LogServices": odata_id("Systems", uid, "LogServices"),
        "Links": {
            "Chassis": [odata_id("Chassis", uid)],
            "Chassis@odata.count": 1,
            "ManagedBy": [odata_id("Managers", f"{uid}-BMC")],
            "ManagedBy@odata.count": 1,
        },
        "Actions": {
            RESET_ACTION: {
                "target": f"{base}/Actions/ComputerSystem.Reset",
                "ResetType@Redfish.AllowableValues": list(RESET_TYPES),
                "@Redfish.ActionInfo": f"{base}/ResetActionInfo",
            }
        },
        "Oem": {"Racklet": {"@odata.type": "#Racklet.v1_0_0.ComputerSystem",
                            "Slot": unit["slot"], "DesiredPowerState": unit["desired_power"]}},
    }


@blp.route("/redfish/v1/Systems")
class Systems(RedfishView):
    entity = "ComputerSystemCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        return collection("ComputerSystemCollection", "Computer System Collection", "/redfish/v1/Systems",
                          [f"/redfish/v1/Systems/{u['id']}" for u in store().units()])


@blp.route("/redfish/v1/Systems/<system_id>")
class System(RedfishView):
    entity = "ComputerSystem"
    privileges = declare(entity, "GET", "PATCH")
    cacheable = True

    def get(self, system_id):
        return system_doc(_unit(system_id))

    def patch(self, system_id):
        current = system_doc(_unit(system_id))
        check_if_match(current)
        changes, led, boot = validate_patch(json_body(), current, boot_setting(system_id))
        with store().tx():  # all or nothing
            if "AssetTag" in changes:
                store().set_asset_tag(system_id, changes["AssetTag"])
            if led is not None:
                store().set_setting(system_id, "led", led)
            if boot is not None:
                store().set_setting(system_id, "boot", boot)
            if "PowerRestorePolicy" in changes:   # read-modify-write of the outlet setting
                outlet = outlet_setting(system_id)
                outlet["power_restore_policy"] = changes["PowerRestorePolicy"]
                store().set_setting(system_id, "outlet", outlet)
        return render(system_doc(_unit(system_id)))


def validate_patch(body: dict, current: dict, stored_boot: dict) -> tuple[dict, str | None, dict | None]:
    """The top-level changes, the new LED state and the new boot setting (None: not
    asked for).

    Every problem, top-level or inside Boot, is reported in one 400; nothing is
    applied unless all of it is valid.
    """
    rest = {k: v for k, v in body.items() if k != "Boot"}
    errors: list[dict] = []
    changes: dict = {}
    if "Boot" not in body or any(not k.startswith("@odata.") for k in rest):
        try:
            changes = check_patch(rest, SystemPatch(), current)
        except RedfishError as e:
            errors += e.messages
    boot = None
    if "Boot" in body:
        try:
            boot = boot_patch(body["Boot"], stored_boot, current["Boot"])
        except RedfishError as e:
            errors += e.messages
    led = None
    if not errors:
        try:
            led = led_change(changes)
        except RedfishError as e:
            errors += e.messages
    if errors:
        raise RedfishError(400, errors)
    if not changes and boot is None:
        raise RedfishError.of(400, "NoOperation")
    return changes, led, boot


def led_change(changes: dict) -> str | None:
    """The LED state asked for by IndicatorLED and/or LocationIndicatorActive."""
    led = changes.get("IndicatorLED")
    active = changes.get("LocationIndicatorActive")
    if led is not None and active is not None and (led != "Off") != active:
        raise RedfishError.of(400, "PropertyValueConflict", "LocationIndicatorActive", "IndicatorLED",
                              related=["#/LocationIndicatorActive", "#/IndicatorLED"])
    if led is not None:
        return led
    if active is not None:
        return "Lit" if active else "Off"
    return None


def boot_patch(value, stored: dict, shown: dict) -> dict | None:
    """The boot setting after applying a PATCH's ``Boot`` object to ``stored``
    (``shown``: Boot as served, which tells read-only from unknown properties).

    None when the object holds nothing to change (annotations, echoed back from a GET,
    are ignored). Raises a 400 listing every problem, each named by its path ("Boot/X").
    """
    errors: list[dict] = []
    asked = walk_tree({"Boot": value}, {"Boot": BOOT_WRITABLE}, {"Boot": shown}, errors,
                      ignored=is_annotation).get("Boot", {})
    new = dict(stored, **{BOOT_KEYS[k]: v for k, v in asked.items()})
    if not errors and new["target"] == "UefiHttp" and not new["uri"]:
        if "HttpBootUri" in asked:  # clearing the URI the target needs
            errors.append(message("PropertyValueConflict", "Boot/HttpBootUri", "Boot/BootSourceOverrideTarget",
                                  related=["#/Boot/HttpBootUri"]))
        else:  # UEFI HTTP boot from here needs a URI: ask for it in the request
            errors.append(message("PropertyMissing", "Boot/HttpBootUri", related=["#/Boot/HttpBootUri"]))
    if errors:
        raise RedfishError(400, errors)
    return new if asked else None


def check_http_boot_uri(value) -> str:
    """A leaf check of ``walk_tree``: the URI to store ("" clears it)."""
    problem = http_boot_uri_problem(value)
    if problem is not None:
        raise Invalid(problem, limit=HTTP_BOOT_URI_MAX)
    return value or ""


BOOT_WRITABLE = {"BootSourceOverrideTarget": one_of(BOOT_TARGETS),
                 "BootSourceOverrideEnabled": one_of(BOOT_ENABLED),
                 "BootSourceOverrideMode": one_of(BOOT_MODES),
                 "HttpBootUri": check_http_boot_uri}


_URI_FORBIDDEN = re.compile(r"[\x00-\x20\x7f<>\"{}|\\^`]")


def http_boot_uri_problem(uri) -> str | None:
    """The Base message id refusing ``uri`` as an HttpBootUri, or None if it is fine.

    null or "" clears the URI. A string that is not an absolute URI (no scheme, bad
    characters, a bad port) or an https URI without a host is malformed: the right type
    in the wrong format, so PropertyValueFormatError. A well-formed URI of another
    scheme (http://, tftp://, ftp://, file://) has a valid format but a value this
    service refuses by policy (the boot image must come over TLS), so
    PropertyValueIncorrect ("not acceptable for the property"), not a format error.
    """
    if uri is None or uri == "":
        return None
    if not isinstance(uri, str):
        return "PropertyValueTypeError"
    if len(uri) > HTTP_BOOT_URI_MAX:
        return "StringValueTooLong"
    try:
        parts = urllib.parse.urlsplit(uri)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        return "PropertyValueFormatError"
    if _URI_FORBIDDEN.search(uri) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", parts.scheme or "-"):
        return "PropertyValueFormatError"
    if parts.scheme.lower() != "https":
        return "PropertyValueIncorrect"
    if not parts.hostname:
        return "PropertyValueFormatError"
    return None


@blp.route("/redfish/v1/Systems/<system_id>/ResetActionInfo")
class ResetActionInfo(RedfishView):
    entity = "ActionInfo"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, system_id):
        _unit(system_id)
        return action_info(f"/redfish/v1/Systems/{system_id}/ResetActionInfo", "Reset Action Info", "ResetType",
                           RESET_TYPES)


@blp.route("/redfish/v1/Systems/<system_id>/Actions/ComputerSystem.Reset")
class Reset(RedfishView):
    entity = "ComputerSystem"  # an action: its system's POST
    privileges = declare(entity, "POST")

    def post(self, system_id):
        _unit(system_id)
        reset_type = action_parameter(json_body(), "ComputerSystem.Reset", "ResetType", RESET_TYPES)
        agent_command(system_id, "reset", "ResetType", reset_type, "unit")
        return json_response({"@Message.ExtendedInfo": [message("Success")]})
