"""Chassis: the rack (/redfish/v1/Chassis/Rack) and one tray per unit (Chassis/UnitN).

A tray's identify LED is the unit setting 'led' (Off/Lit/Blinking), shown both as the
deprecated ``IndicatorLED`` (still read by Ansible, sushy, redfishtool) and as
``LocationIndicatorActive``; both are writable on a tray, and the ComputerSystem of
the unit shows the same setting. The rack has no LED of its own (the manifest gives
it none), so Chassis/Rack shows neither property and takes no PATCH.
"""

from __future__ import annotations

from flask_smorest import Blueprint

from ..messages import RedfishError
from ..privileges import declare
from ..web import RedfishView, check_if_match, check_patch, collection, json_body, odata_id, render
from . import sensors
from .common import not_found, odata_type, store, unit_status
from .systems import SystemPatch, led_change, led_state

blp = Blueprint("chassis", __name__, description="Rack and trays")

RACK_ID = sensors.RACK_ID


def _links(*parts: str) -> list[dict]:
    return [odata_id(*parts)]


def _subresources(chassis_id: str) -> dict:
    base = f"/redfish/v1/Chassis/{chassis_id}"
    return {name: {"@odata.id": f"{base}/{name}"} for name in
            ("Power", "Thermal", "PowerSubsystem", "ThermalSubsystem", "EnvironmentMetrics", "Sensors",
             "Controls")}


def _outlet(uid: str) -> dict:
    return {"@odata.id": f"/redfish/v1/PowerEquipment/ElectricalBuses/Busbar/Outlets/{uid}"}


def rack_doc(units: list[dict]) -> dict:
    info = store().rack_info()
    systems = [odata_id("Systems", u["id"]) for u in units]
    links = {
        "Contains": [odata_id("Chassis", u["id"]) for u in units],
        "Contains@odata.count": len(units),
        "ComputerSystems": systems,  # the rack wholly contains every unit
        "ComputerSystems@odata.count": len(systems),
        "ManagedBy": _links("Managers", "RMC"),
        "ManagedBy@odata.count": 1,
        "ManagersInChassis": _links("Managers", "RMC"),
        "ManagersInChassis@odata.count": 1,
        # Its supply and fan are in its own PowerSubsystem and ThermalSubsystem, so no
        # Links.PowerSupplies/Fans (nor the deprecated PoweredBy/CooledBy).
        "PowerDistribution": {"@odata.id": "/redfish/v1/PowerEquipment/ElectricalBuses/Busbar"},
    }
    doc = {
        "@odata.id": f"/redfish/v1/Chassis/{RACK_ID}",
        "@odata.type": odata_type("Chassis"),
        "Id": RACK_ID,
        "Name": info.get("name") or "Racklet rack",
        "ChassisType": "Rack",
        "Manufacturer": "Racklet",
        "PowerState": "On",  # the busbar is live while this service runs on the RMC
        "Status": {"State": "Enabled", "Health": "OK"},
        **_subresources(RACK_ID),
        "Links": links,
    }
    if info.get("power_supply_watts") is not None:
        doc["MaxPowerWatts"] = float(info["power_supply_watts"])
    return doc


def tray_doc(unit: dict) -> dict:
    uid = unit["id"]
    info = unit["info"]
    mode = led_state(uid)
    links = {
        "ContainedBy": odata_id("Chassis", RACK_ID),
        "ComputerSystems": _links("Systems", uid),
        "ComputerSystems@odata.count": 1,
        "ManagedBy": _links("Managers", f"{uid}-BMC"),
        "ManagedBy@odata.count": 1,
        "ManagersInChassis": _links("Managers", f"{uid}-BMC"),
        "ManagersInChassis@odata.count": 1,
        "PoweredBy": [_outlet(uid)],  # deprecated (for PowerOutlets) but still read by clients
        "PoweredBy@odata.count": 1,
        "PowerOutlets": [_outlet(uid)],
        "PowerOutlets@odata.count": 1,
    }
    doc = {
        "@odata.id": f"/redfish/v1/Chassis/{uid}",
        "@odata.type": odata_type("Chassis"),
        "Id": uid,
        "Name": f"Tray {unit['slot']}",
        "ChassisType": "Sled",
        "Manufacturer": info["manufacturer"],
        "Model": info["model"],
        "SerialNumber": info["serial_number"],
        "AssetTag": unit["asset_tag"],
        "PowerState": "Off" if unit["power_state"] == "Off" else "On",
        "IndicatorLED": mode,
        "LocationIndicatorActive": mode != "Off",
        "Status": unit_status(unit),
        "HotPluggable": True,
        "Location": {"PartLocation": {"ServiceLabel": f"Slot {unit['slot']}", "LocationType": "Slot",
                                      "LocationOrdinalValue": unit["slot"]}},
        **_subresources(uid),
        "Assembly": {"@odata.id": f"/redfish/v1/Chassis/{uid}/Assembly"},   # its board's FRU data
        "Links": links,
    }
    for key, prop in (("part_number", "PartNumber"), ("sku", "SKU")):
        if info.get(key):
            doc[prop] = info[key]
    if info.get("max_watts") is not None:
        doc["MaxPowerWatts"] = float(info["max_watts"])
    if sensors.rack_has_fan():
        doc["ThermalManagedByParent"] = True  # the rack fan cools it (so no Links.Fans here)
    return doc


def _tray(chassis_id: str) -> dict:
    unit = store().unit(chassis_id)
    if unit is None:
        raise not_found("Chassis", chassis_id)
    return unit


@blp.route("/redfish/v1/Chassis")
class ChassisCollection(RedfishView):
    entity = "ChassisCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        ids = [RACK_ID] + [u["id"] for u in store().units()]
        return collection("ChassisCollection", "Chassis Collection", "/redfish/v1/Chassis",
                          [f"/redfish/v1/Chassis/{i}" for i in ids])


@blp.route(f"/redfish/v1/Chassis/{RACK_ID}")
class Rack(RedfishView):
    entity = "Chassis"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        return rack_doc(store().units())


@blp.route("/redfish/v1/Chassis/<chassis_id>")
class Chassis(RedfishView):
    entity = "Chassis"
    privileges = declare(entity, "GET", "PATCH")
    cacheable = True

    def get(self, chassis_id):
        if chassis_id == RACK_ID:  # only reached through $expand or a direct call
            return rack_doc(store().units())
        return tray_doc(_tray(chassis_id))

    def patch(self, chassis_id):
        if chassis_id == RACK_ID:  # the Rack's own rule has no PATCH: the router fell through to here
            raise RedfishError.of(405, "OperationNotAllowed", headers={"Allow": "GET, HEAD"})
        unit = _tray(chassis_id)
        current = tray_doc(unit)
        check_if_match(current)
        changes = check_patch(json_body(), SystemPatch(), current)
        # The LED and the asset tag are the unit's: the same properties, setting and rule as its system's.
        mode = led_change(changes) or led_state(chassis_id)
        with store().tx():  # all or nothing
            if "AssetTag" in changes:
                store().set_asset_tag(chassis_id, changes["AssetTag"])
            if mode != led_state(chassis_id):
                store().set_setting(chassis_id, "led", mode)
        return render(tray_doc(_tray(chassis_id)))
