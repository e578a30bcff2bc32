"""Thermal side of the rack and trays: legacy Thermal, ThermalSubsystem with the rack fan
(Fans/Fan1) and ThermalMetrics, and EnvironmentMetrics (a chassis' temperature, power,
energy and fan speed in one place, each linked to its Sensor by DataSourceUri).

Temperatures: each tray's board (TMP102, PhysicalContext SystemBoard); the rack air
(from the fan controller: the rack's own temperature, and every tray's intake).
A Pi 4's SoC temperature is not readable by the rack manager (only the unit's OS
can read it): the trays list it as an Absent reading rather than invent one.
"""

from __future__ import annotations

from flask_smorest import Blueprint

from ..privileges import declare
from ..web import RedfishView, check_if_match, check_tree, collection, json_body, odata_id, render
from . import chassis_power as power
from . import sensors
from .common import not_found, odata_type, store

blp = Blueprint("chassis_thermal", __name__, description="Thermal: temperatures, fan, environment")

RACK_ID = sensors.RACK_ID
FAN_ID = sensors.FAN_ID
FAN_URI = f"/redfish/v1/Chassis/{RACK_ID}/ThermalSubsystem/Fans/{FAN_ID}"


def _temperature(chassis_id: str, member: int, name: str, context: str, source: str,
                 related: list[dict]) -> dict:
    """A legacy Thermal temperature from a Sensor (``source`` chassis, sensor 'Temperature')."""
    spec = sensors.specs(source)["Temperature"]
    return {
        "@odata.id": f"/redfish/v1/Chassis/{chassis_id}/Thermal#/Temperatures/{member}",
        "MemberId": str(member),
        "Name": name,
        "ReadingCelsius": sensors.value(source, "Temperature"),
        "PhysicalContext": context,
        **sensors.legacy_thresholds(spec),
        "RelatedItem": related,
        "RelatedItem@odata.count": len(related),
        "Status": sensors.status(source, "Temperature"),
    }


def thermal_doc(chassis_id: str) -> dict:
    unit = power.chassis_unit(chassis_id)
    fan = sensors.rack_has_fan()
    temps: list[dict] = []
    fans: list[dict] = []
    if unit is None:
        if fan:
            temps.append(_temperature(RACK_ID, 0, "Rack air", "Chassis", RACK_ID, [odata_id("Chassis", RACK_ID)]))
            fans.append(_legacy_fan())
        for u in store().units():
            temps.append(_temperature(RACK_ID, len(temps), f"{u['id']} board", "SystemBoard", u["id"],
                                      [odata_id("Chassis", u["id"])]))
    else:
        uid = unit["id"]
        here = [odata_id("Chassis", uid)]
        temps.append(_temperature(uid, 0, f"{uid} board", "SystemBoard", uid, here))
        if fan:
            temps.append(_temperature(uid, 1, f"{uid} intake (rack air)", "Intake", RACK_ID, here))
        temps.append({
            "@odata.id": f"/redfish/v1/Chassis/{uid}/Thermal#/Temperatures/{len(temps)}",
            "MemberId": str(len(temps)),
            "Name": f"{uid} SoC (read by the unit's OS only)",
            "ReadingCelsius": None,
            "PhysicalContext": "CPU",
            **sensors.legacy_thresholds(sensors.UNIT_SENSORS["Temperature"]),  # where a Pi 4 throttles
            "RelatedItem": [odata_id("Systems", uid)],
            "RelatedItem@odata.count": 1,
            "Status": {"State": "Absent"},
        })
    doc = {
        "@odata.id": f"/redfish/v1/Chassis/{chassis_id}/Thermal",
        "@odata.type": odata_type("Thermal"),
        "Id": "Thermal",
        "Name": "Rack thermal" if unit is None else f"{chassis_id} thermal",
        "Temperatures": temps,
        "Temperatures@odata.count": len(temps),
    }
    if unit is None:
        doc["Fans"] = fans
        doc["Fans@odata.count"] = len(fans)
    return doc


def _legacy_fan() -> dict:
    max_rpm = store().rack_info().get("fan_max_rpm")
    rpm = sensors.fan_rpm()
    return {
        "@odata.id": f"/redfish/v1/Chassis/{RACK_ID}/Thermal#/Fans/0",
        "MemberId": "0",
        "Name": "Rack fan",
        "Reading": None if rpm is None else int(rpm),
        "ReadingUnits": "RPM",
        "MinReadingRange": 0,
        "MaxReadingRange": None if max_rpm is None else int(max_rpm),
        "RelatedItem": [odata_id("Chassis", RACK_ID)],
        "RelatedItem@odata.count": 1,
        "Status": sensors.status(RACK_ID, FAN_ID),
    }


def thermal_subsystem_doc(chassis_id: str) -> dict:
    unit = power.chassis_unit(chassis_id)
    base = f"/redfish/v1/Chassis/{chassis_id}/ThermalSubsystem"
    doc = {
        "@odata.id": base,
        "@odata.type": odata_type("ThermalSubsystem"),
        "Id": "ThermalSubsystem",
        "Name": "Rack thermal subsystem" if unit is None else f"{chassis_id} thermal subsystem",
        "ThermalMetrics": {"@odata.id": f"{base}/ThermalMetrics"},
        "Status": power.enabled(unit),
    }
    if unit is None and sensors.rack_has_fan():
        doc["Fans"] = {"@odata.id": f"{base}/Fans"}
    return doc


def cooled_chassis() -> list[dict]:
    return [odata_id("Chassis", RACK_ID)] + [odata_id("Chassis", u["id"]) for u in store().units()]


def fan_doc() -> dict:
    cooled = cooled_chassis()
    return {
        "@odata.id": FAN_URI,
        "@odata.type": odata_type("Fan"),
        "Id": FAN_ID,
        "Name": "Rack fan",
        "SpeedPercent": sensors.fan_excerpt(),
        "HotPluggable": False,
        "Status": sensors.status(RACK_ID, FAN_ID),
        "Links": {"CoolingChassis": cooled, "CoolingChassis@odata.count": len(cooled)},
    }


def _array_excerpt(chassis_id: str, sensor_id: str, device: str) -> dict:
    return dict(sensors.excerpt(chassis_id, sensor_id), DeviceName=device,
                PhysicalContext=sensors.specs(chassis_id)[sensor_id].context)


def thermal_metrics_doc(chassis_id: str) -> dict:
    unit = power.chassis_unit(chassis_id)
    fan = sensors.rack_has_fan()
    if unit is None:
        summary = {"Internal": sensors.excerpt(RACK_ID, "Temperature")} if fan else {}
        readings = ([_array_excerpt(RACK_ID, "Temperature", "Rack air")] if fan else []) + [
            _array_excerpt(u["id"], "Temperature", f"{u['id']} board") for u in store().units()]
    else:
        summary = {"Internal": sensors.excerpt(chassis_id, "Temperature")}
        if fan:
            summary["Intake"] = sensors.excerpt(RACK_ID, "Temperature")
        readings = [_array_excerpt(chassis_id, "Temperature", f"{chassis_id} board")]
    return {
        "@odata.id": f"/redfish/v1/Chassis/{chassis_id}/ThermalSubsystem/ThermalMetrics",
        "@odata.type": odata_type("ThermalMetrics"),
        "Id": "ThermalMetrics",
        "Name": "Rack thermal metrics" if unit is None else f"{chassis_id} thermal metrics",
        "TemperatureSummaryCelsius": summary,
        "TemperatureReadingsCelsius": readings,
        "TemperatureReadingsCelsius@odata.count": len(readings),
    }


def environment_doc(chassis_id: str) -> dict:
    unit = power.chassis_unit(chassis_id)
    has = sensors.specs(chassis_id)
    doc = {
        "@odata.id": f"/redfish/v1/Chassis/{chassis_id}/EnvironmentMetrics",
        "@odata.type": odata_type("EnvironmentMetrics"),
        "Id": "EnvironmentMetrics",
        "Name": "Rack environment" if unit is None else f"{chassis_id} environment",
        "PowerWatts": sensors.excerpt(chassis_id, "Power"),
        "Voltage": sensors.excerpt(chassis_id, "Voltage"),
        "CurrentAmps": sensors.excerpt(chassis_id, "Current"),
        "EnergyJoules": sensors.excerpt(chassis_id, "Energy"),
        "EnergykWh": sensors.energy_kwh_excerpt(chassis_id),
    }
    if "Temperature" in has:
        doc["TemperatureCelsius"] = sensors.excerpt(chassis_id, "Temperature")
    if unit is None:
        if FAN_ID in has:
            fans = [dict(sensors.fan_excerpt(), DeviceName="Rack fan")]
            doc["FanSpeedsPercent"] = fans
            doc["FanSpeedsPercent@odata.count"] = len(fans)
        b = power.rack_budget()
        doc["PowerLimitWatts"] = {
            "DataSourceUri": f"/redfish/v1/Chassis/{RACK_ID}/Controls/{power.LIMIT_CONTROL}",
            "SetPoint": b.limit,
            "DefaultSetPoint": b.capacity,
            "AllowableMax": b.capacity,
            "ControlMode": "Automatic",
            "Reading": sensors.value(RACK_ID, "Power"),
        }
    return doc


@blp.route("/redfish/v1/Chassis/<chassis_id>/Thermal")
class Thermal(RedfishView):
    entity = "Thermal"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, chassis_id):
        return thermal_doc(chassis_id)


@blp.route("/redfish/v1/Chassis/<chassis_id>/ThermalSubsystem")
class ThermalSubsystem(RedfishView):
    entity = "ThermalSubsystem"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, chassis_id):
        return thermal_subsystem_doc(chassis_id)


@blp.route("/redfish/v1/Chassis/<chassis_id>/ThermalSubsystem/ThermalMetrics")
class ThermalMetrics(RedfishView):
    entity = "ThermalMetrics"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, chassis_id):
        return thermal_metrics_doc(chassis_id)


def _rack_fan_or_404(chassis_id: str, what: str, name: str) -> None:
    if power.chassis_unit(chassis_id) is not None or not sensors.rack_has_fan():
        raise not_found(what, name)


@blp.route("/redfish/v1/Chassis/<chassis_id>/ThermalSubsystem/Fans")
class Fans(RedfishView):
    entity = "FanCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, chassis_id):
        _rack_fan_or_404(chassis_id, "FanCollection", chassis_id)
        base = f"/redfish/v1/Chassis/{RACK_ID}/ThermalSubsystem/Fans"
        return collection("FanCollection", "Fans", base, [FAN_URI])


@blp.route("/redfish/v1/Chassis/<chassis_id>/ThermalSubsystem/Fans/<fan_id>")
class Fan(RedfishView):
    entity = "Fan"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, chassis_id, fan_id):
        _rack_fan_or_404(chassis_id, "Fan", fan_id)
        if fan_id != FAN_ID:
            raise not_found("Fan", fan_id)
        return fan_doc()


@blp.route("/redfish/v1/Chassis/<chassis_id>/EnvironmentMetrics")
class EnvironmentMetrics(RedfishView):
    entity = "EnvironmentMetrics"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, chassis_id):
        return environment_doc(chassis_id)


@blp.route(f"/redfish/v1/Chassis/{RACK_ID}/EnvironmentMetrics")
class RackEnvironmentMetrics(RedfishView):
    entity = "EnvironmentMetrics"
    privileges = declare(entity, "GET", "PATCH", under=("ChassisCollection", "Chassis"))
    cacheable = True

    def get(self):
        return environment_doc(RACK_ID)

    def patch(self):
        current = environment_doc(RACK_ID)
        check_if_match(current)
        changes = check_tree(json_body(), {"PowerLimitWatts": {"SetPoint": power.check_limit}}, current)
        store().set_power_limit(changes["PowerLimitWatts"]["SetPoint"])
        return render(environment_doc(RACK_ID))
