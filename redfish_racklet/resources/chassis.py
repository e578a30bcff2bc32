"""Chassis: the rack (/redfish/v1/Chassis/Rack) and one tray per unit (Chassis/UnitN)."""

from __future__ import annotations

from flask_smorest import Blueprint

from ..web import LOGIN, RedfishView, collection, odata_id
from .common import not_found, odata_type, store, unit_status

blp = Blueprint("chassis", __name__, description="Rack and trays")

RACK_ID = "Rack"


def rack_doc(units: list[dict]) -> dict:
    return {
        "@odata.id": f"/redfish/v1/Chassis/{RACK_ID}",
        "@odata.type": odata_type("Chassis"),
        "Id": RACK_ID,
        "Name": "Racklet rack",
        "ChassisType": "Rack",
        "Manufacturer": "Racklet",
        "PowerState": "On",
        "Status": {"State": "Enabled", "Health": "OK"},
        "Links": {
            "Contains": [odata_id("Chassis", u["id"]) for u in units],
            "Contains@odata.count": len(units),
            "ManagedBy": [odata_id("Managers", "RMC")],
            "ManagedBy@odata.count": 1,
        },
    }


def tray_doc(unit: dict) -> dict:
    uid = unit["id"]
    info = unit["info"]
    return {
        "@odata.id": f"/redfish/v1/Chassis/{uid}",
        "@odata.type": odata_type("Chassis"),
        "Id": uid,
        "Name": f"Tray {unit['slot']}",
        "ChassisType": "Sled",
        "Manufacturer": info["manufacturer"],
        "Model": info["model"],
        "SerialNumber": info["serial_number"],
        "PowerState": "Off" if unit["power_state"] == "Off" else "On",
        "Status": unit_status(unit),
        "Sensors": odata_id("Chassis", uid, "Sensors"),
        "Location": {"PartLocation": {"ServiceLabel": f"Slot {unit['slot']}", "LocationType": "Slot",
                                      "LocationOrdinalValue": unit["slot"]}},
        "Links": {
            "ContainedBy": odata_id("Chassis", RACK_ID),
            "ComputerSystems": [odata_id("Systems", uid)],
            "ComputerSystems@odata.count": 1,
            "ManagedBy": [odata_id("Managers", "RMC")],
            "ManagedBy@odata.count": 1,
        },
    }


@blp.route("/redfish/v1/Chassis")
class ChassisCollection(RedfishView):
    privileges = {"GET": LOGIN}
    cacheable = True

    def get(self):
        ids = [RACK_ID] + [u["id"] for u in store().units()]
        return collection("ChassisCollection", "Chassis Collection", "/redfish/v1/Chassis",
                          [f"/redfish/v1/Chassis/{i}" for i in ids])


@blp.route("/redfish/v1/Chassis/<chassis_id>")
class Chassis(RedfishView):
    privileges = {"GET": LOGIN}
    cacheable = True

    def get(self, chassis_id):
        if chassis_id == RACK_ID:
            return rack_doc(store().units())
        unit = store().unit(chassis_id)
        if unit is None:
            raise not_found("Chassis", chassis_id)
        return tray_doc(unit)
