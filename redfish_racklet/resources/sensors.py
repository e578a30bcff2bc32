"""Sensors of a tray (Chassis/UnitN/Sensors): power, voltage, current, temperature and
energy of the unit, as the agent last sampled them through the real drivers."""

from __future__ import annotations

import time

from flask_smorest import Blueprint

from ..web import LOGIN, RedfishView, collection
from .common import not_found, odata_type, store

blp = Blueprint("sensors", __name__, description="Sensors")

# id: (store kind, ReadingType, ReadingUnits, PhysicalContext, digits)
SENSORS = {
    "Power": ("power", "Power", "W", "PowerSupply", 3),
    "Voltage": ("voltage", "Voltage", "V", "PowerSupply", 3),
    "Current": ("current", "Current", "A", "PowerSupply", 4),
    "Temperature": ("temperature", "Temperature", "Cel", "SystemBoard", 2),
    "Energy": ("energy", "EnergyJoules", "J", "PowerSupply", 1),
}


def _unit(chassis_id: str) -> dict:
    unit = store().unit(chassis_id)
    if unit is None:
        raise not_found("Chassis", chassis_id)
    return unit


def sensor_doc(unit: dict, sensor_id: str, reading: dict | None) -> dict:
    kind, rtype, units, context, digits = SENSORS[sensor_id]
    value = None if reading is None else reading["value"]
    if not unit["present"]:
        status = {"State": "Absent"}
        value = None
    elif value is None:
        status = {"State": "Enabled", "Health": "Warning"}  # the sensor does not answer
    else:
        status = {"State": "Enabled", "Health": "OK"}
    doc = {
        "@odata.id": f"/redfish/v1/Chassis/{unit['id']}/Sensors/{sensor_id}",
        "@odata.type": odata_type("Sensor"),
        "Id": sensor_id,
        "Name": f"{unit['id']} {sensor_id.lower()}",
        "ReadingType": rtype,
        "ReadingUnits": units,
        "PhysicalContext": context,
        "Reading": None if value is None else round(value, digits),
        "Status": status,
    }
    if reading is not None:
        doc["ReadingTime"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(reading["updated"]))
    return doc


@blp.route("/redfish/v1/Chassis/<chassis_id>/Sensors")
class Sensors(RedfishView):
    privileges = {"GET": LOGIN}
    cacheable = True

    def get(self, chassis_id):
        uid = _unit(chassis_id)["id"]
        base = f"/redfish/v1/Chassis/{uid}/Sensors"
        return collection("SensorCollection", "Sensors", base, [f"{base}/{s}" for s in SENSORS])


@blp.route("/redfish/v1/Chassis/<chassis_id>/Sensors/<sensor_id>")
class Sensor(RedfishView):
    privileges = {"GET": LOGIN}
    cacheable = True

    def get(self, chassis_id, sensor_id):
        unit = _unit(chassis_id)
        if sensor_id not in SENSORS:
            raise not_found("Sensor", sensor_id)
        return sensor_doc(unit, sensor_id, store().readings(unit["id"]).get(SENSORS[sensor_id][0]))
