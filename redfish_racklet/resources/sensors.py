"""Sensors (Chassis/<id>/Sensors): every reading of the rack, one Sensor resource each.

A tray (Chassis/UnitN) has its rail's power, voltage, current and energy (its INA2xx)
and its board temperature (its TMP102). The rack (Chassis/Rack) has the busbar's power,
voltage, current and energy (synthesized by the agent from the rails), the rack air
temperature and the fan (both from the fan controller).

This module is the one place a reading becomes a number on the wire: every other view
of the same reading (legacy Power/Thermal, EnvironmentMetrics, Outlets, Controls) calls
``value``/``excerpt`` here, so they can never disagree with the Sensor.
"""

from __future__ import annotations

import time

from flask_smorest import Blueprint

from ..privileges import declare
from ..web import RedfishView, collection
from .common import not_found, odata_type, store

blp = Blueprint("sensors", __name__, description="Sensors")

from ..sensor_specs import (AVERAGING_INTERVAL, FAN_ID, JOULES_PER_KWH, LEGACY_THRESHOLDS, RACK_ID,  # noqa: F401
                            RACK_SENSORS, SENSORS, UNIT_SENSORS, Spec, _SEVERITY, convert)

_FAN_PARTS = ("Temperature", FAN_ID)  # measured by the fan controller: only with a fan


def rack_has_fan() -> bool:
    return bool(store().rack_info().get("fan"))


def specs(chassis_id: str) -> dict[str, Spec]:
    """The sensors of a chassis (404 for an unknown one)."""
    if chassis_id == RACK_ID:
        if rack_has_fan():
            return RACK_SENSORS
        return {k: v for k, v in RACK_SENSORS.items() if k not in _FAN_PARTS}
    if store().unit(chassis_id) is None:
        raise not_found("Chassis", chassis_id)
    return UNIT_SENSORS


def _present(chassis_id: str) -> bool:
    if chassis_id == RACK_ID:
        return True
    unit = store().unit(chassis_id)
    return unit is not None and unit["present"]


def _raw(chassis_id: str, kind: str) -> dict | None:
    return store().readings(chassis_id).get(kind)


def _convert(spec: Spec, raw: float | None) -> float | None:
    return convert(spec, raw, store().rack_info().get("fan_max_rpm"))


def value(chassis_id: str, sensor_id: str) -> float | None:
    """The reading of a sensor as every view shows it; None when it does not answer."""
    spec = specs(chassis_id).get(sensor_id)
    if spec is None or not _present(chassis_id):
        return None
    raw = _raw(chassis_id, spec.kind)
    return _convert(spec, None if raw is None else raw["value"])


def interval(chassis_id: str) -> dict[str, float | None]:
    """Minimum, average and maximum power over the last minute (the Power sensor's)."""
    spec = specs(chassis_id)["Power"]
    out = {}
    for key in ("power_min", "power_avg", "power_max"):
        raw = _raw(chassis_id, key) if _present(chassis_id) else None
        out[key] = _convert(spec, None if raw is None else raw["value"])
    return out


def fan_rpm() -> float | None:
    raw = _raw(RACK_ID, "fan_rpm")
    return None if raw is None or raw["value"] is None else round(raw["value"])


def uri(chassis_id: str, sensor_id: str) -> str:
    return f"/redfish/v1/Chassis/{chassis_id}/Sensors/{sensor_id}"


def excerpt(chassis_id: str, sensor_id: str) -> dict:
    """A SensorExcerpt (and its kin: power, voltage, current): the reading with a link to its Sensor."""
    return {"DataSourceUri": uri(chassis_id, sensor_id), "Reading": value(chassis_id, sensor_id)}


def fan_excerpt() -> dict:
    """The rack fan as a SensorFanExcerpt: percent of its rated speed, and RPM."""
    return dict(excerpt(RACK_ID, FAN_ID), SpeedRPM=fan_rpm())


def energy_kwh_excerpt(chassis_id: str) -> dict:
    """A SensorEnergykWhExcerpt: the energy counter in kWh (it never resets: Lifetime too)."""
    doc = excerpt(chassis_id, "EnergykWh")
    doc["LifetimeReading"] = doc["Reading"]
    return doc


def thresholds(spec: Spec) -> dict:
    return {name: {"Reading": reading, "Activation": "Increasing" if name.startswith("Upper") else "Decreasing"}
            for name, reading in spec.thresholds}


def legacy_thresholds(spec: Spec) -> dict:
    """The same limits as the legacy Power/Thermal properties (UpperThresholdCritical…)."""
    return {LEGACY_THRESHOLDS[name]: reading for name, reading in spec.thresholds}


def health(spec: Spec, reading: float | None) -> str:
    """OK, or Warning/Critical when the reading is past a threshold; Warning when silent."""
    if reading is None:
        return "Warning"  # the sensor does not answer
    worst = "OK"
    for name, limit in spec.thresholds:
        crossed = reading >= limit if name.startswith("Upper") else reading <= limit
        if crossed:
            level = _SEVERITY[name.removeprefix("Upper").removeprefix("Lower")]
            if level == "Critical" or worst == "OK":
                worst = level
    return worst


def rollup(chassis_id: str) -> str:
    """The worst health of a chassis' sensors (what its Status.Health rolls up)."""
    order = {"OK": 0, "Warning": 1, "Critical": 2}
    worst = "OK"
    for sensor_id, spec in specs(chassis_id).items():
        h = health(spec, value(chassis_id, sensor_id))
        if order[h] > order[worst]:
            worst = h
    return worst


def status(chassis_id: str, sensor_id: str) -> dict:
    """Status of a sensor: Absent with its tray, else Enabled with the health of its reading."""
    if not _present(chassis_id):
        return {"State": "Absent"}
    return {"State": "Enabled", "Health": health(specs(chassis_id)[sensor_id], value(chassis_id, sensor_id))}


def _timestamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))


def sensor_doc(chassis_id: str, sensor_id: str) -> dict:
    spec = specs(chassis_id)[sensor_id]
    reading = value(chassis_id, sensor_id)
    owner = "Rack" if chassis_id == RACK_ID else chassis_id
    doc = {
        "@odata.id": uri(chassis_id, sensor_id),
        "@odata.type": odata_type("Sensor"),
        "Id": sensor_id,
        "Name": f"{owner} {spec.name}",
        "ReadingType": spec.reading_type,
        "ReadingUnits": spec.units,
        "PhysicalContext": spec.context,
        "Implementation": spec.implementation,
        "Reading": reading,
        "Status": status(chassis_id, sensor_id),
    }
    raw = _raw(chassis_id, spec.kind)
    if raw is not None and _present(chassis_id):
        doc["ReadingTime"] = _timestamp(raw["updated"])
    if spec.thresholds:
        doc["Thresholds"] = thresholds(spec)
    if spec.interval:
        stats = interval(chassis_id)
        doc.update({"AverageReading": stats["power_avg"], "AveragingInterval": AVERAGING_INTERVAL,
                    "LowestIntervalReading": stats["power_min"], "PeakIntervalReading": stats["power_max"]})
    if sensor_id == FAN_ID:
        doc["SpeedRPM"] = fan_rpm()
        doc["ReadingRangeMin"], doc["ReadingRangeMax"] = 0, 100
        doc["RelatedItem"] = [{"@odata.id": f"/redfish/v1/Chassis/{RACK_ID}/ThermalSubsystem/Fans/{FAN_ID}"}]
        doc["RelatedItem@odata.count"] = 1
    return doc


@blp.route("/redfish/v1/Chassis/<chassis_id>/Sensors")
class Sensors(RedfishView):
    entity = "SensorCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, chassis_id):
        base = f"/redfish/v1/Chassis/{chassis_id}/Sensors"
        return collection("SensorCollection", "Sensors", base, [f"{base}/{s}" for s in specs(chassis_id)])


@blp.route("/redfish/v1/Chassis/<chassis_id>/Sensors/<sensor_id>")
class Sensor(RedfishView):
    entity = "Sensor"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, chassis_id, sensor_id):
        if sensor_id not in specs(chassis_id):
            raise not_found("Sensor", sensor_id)
        return sensor_doc(chassis_id, sensor_id)
