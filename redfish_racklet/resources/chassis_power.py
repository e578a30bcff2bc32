"""Power of the rack and of each tray: legacy Power, PowerSubsystem, the busbar's supply
(PowerSupplies/Feed) and the Controls (the rack's power limit, the fan's duty).

The budget: each unit reserves its manifest ``max_watts`` while its rail is on or
switching on; the agent refuses a power-on that would take the reserved total above
the rack's power limit (``store().power_limit()``, by default the supply's watts).
The limit is one number with three doors, all checked by ``check_limit``:
Power ``PowerControl[0].PowerLimit.LimitInWatts``, Controls/PowerLimit ``SetPoint``
and EnvironmentMetrics ``PowerLimitWatts.SetPoint`` of Chassis/Rack.

Readings come from ``sensors`` so that Power, PowerSubsystem, EnvironmentMetrics,
Outlets and Sensors show the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flask_smorest import Blueprint
from marshmallow import Schema

from ..messages import RedfishError
from ..privileges import declare
from ..web import (Invalid, RedfishView, StrictNumber, check_if_match, check_patch, check_tree, collection,
                   json_body, odata_id, one_of, render, value_error)
from . import sensors
from .common import not_found, odata_type, store

blp = Blueprint("chassis_power", __name__, description="Power: budget, limit, supply, controls")

RACK_ID = sensors.RACK_ID
FEED_ID = "Feed"                  # the busbar's supply, Chassis/Rack/PowerSubsystem/PowerSupplies/Feed
LIMIT_CONTROL = "PowerLimit"
FAN_CONTROL = "FanDuty"
LIMIT_EXCEPTIONS = ("NoAction",)  # the limit is a budget for power-ons; nothing is cut when exceeded
INTERVAL_MIN = 1                  # PowerMetrics.IntervalInMin: the agent's min/avg/max window


# -- the budget (pure) ------------------------------------------------------------------

def drawing(unit: dict) -> bool:
    """The unit's rail is on or switching on: its max_watts are reserved."""
    return unit["present"] and unit["power_state"] != "Off"


def wanted(unit: dict) -> bool:
    """The unit is drawing or is meant to be on (it may be waiting for budget)."""
    return unit["present"] and (drawing(unit) or unit["desired_power"] == "On")


def max_watts(unit: dict) -> float:
    return float(unit["info"].get("max_watts") or 0.0)


@dataclass(frozen=True)
class Budget:
    capacity: float | None   # the supply's watts
    limit: float | None      # the power limit (the supply's watts unless set lower)
    allocated: float         # reserved by the units drawing
    requested: float         # reserved by the units drawing or meant to be on

    @property
    def available(self) -> float | None:
        """What is left under the limit for more power-ons (never below zero)."""
        return None if self.limit is None else round(max(0.0, self.limit - self.allocated), 3)


def budget(units: list[dict], capacity: float | None, limit: float | None) -> Budget:
    return Budget(capacity=capacity, limit=limit if limit is not None else capacity,
                  allocated=round(sum(max_watts(u) for u in units if drawing(u)), 3),
                  requested=round(sum(max_watts(u) for u in units if wanted(u)), 3))


def supply_watts() -> float | None:
    watts = store().rack_info().get("power_supply_watts")
    return None if watts is None else float(watts)


def rack_budget() -> Budget:
    return budget(store().units(), supply_watts(), store().power_limit())


def unit_budget(unit: dict) -> Budget:
    """A tray's share: its max_watts, reserved while it draws."""
    return budget([unit], max_watts(unit), None)


def check_limit(value) -> float:
    """A new power limit: a number with 0 < watts ≤ the supply's watts."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid("PropertyValueTypeError")
    capacity = supply_watts()
    if not math.isfinite(value) or capacity is None or not 0 < value <= capacity:
        raise Invalid("PropertyValueOutOfRange")
    return float(value)


# -- documents ------------------------------------------------------------------------------

def chassis_unit(chassis_id: str) -> dict | None:
    """The unit of a tray; None for the rack; 404 for anything else."""
    if chassis_id == RACK_ID:
        return None
    unit = store().unit(chassis_id)
    if unit is None:
        raise not_found("Chassis", chassis_id)
    return unit


def enabled(unit: dict | None) -> dict:
    if unit is not None and not unit["present"]:
        return {"State": "Absent"}
    return {"State": "Enabled", "Health": "OK"}


def _budget_of(unit: dict | None) -> Budget:
    return rack_budget() if unit is None else unit_budget(unit)


def power_doc(chassis_id: str) -> dict:
    unit = chassis_unit(chassis_id)
    base = f"/redfish/v1/Chassis/{chassis_id}/Power"
    b = _budget_of(unit)
    stats = sensors.interval(chassis_id)
    spec = sensors.specs(chassis_id)["Voltage"]
    rack = unit is None
    control = {
        "@odata.id": f"{base}#/PowerControl/0",
        "MemberId": "0",
        "Name": "Busbar power" if rack else f"{chassis_id} rail power",
        "PowerConsumedWatts": sensors.value(chassis_id, "Power"),
        "PowerCapacityWatts": b.capacity,
        "PowerAllocatedWatts": b.allocated,
        "PowerRequestedWatts": b.requested,
        "PowerMetrics": {"IntervalInMin": INTERVAL_MIN, "MinConsumedWatts": stats["power_min"],
                         "AverageConsumedWatts": stats["power_avg"], "MaxConsumedWatts": stats["power_max"]},
        # A tray has no limit of its own (null: no capping); the rack's is the budget's.
        "PowerLimit": {"LimitInWatts": b.limit if rack else None, "LimitException": LIMIT_EXCEPTIONS[0]},
        "RelatedItem": [odata_id("Chassis", chassis_id)],
        "RelatedItem@odata.count": 1,
        "Status": sensors.status(chassis_id, "Power"),  # Warning when its power monitor is silent
    }
    if rack:
        control["PowerAvailableWatts"] = b.available
    voltage = {
        "@odata.id": f"{base}#/Voltages/0",
        "MemberId": "0",
        "Name": "Busbar voltage" if rack else f"{chassis_id} rail voltage",
        "ReadingVolts": sensors.value(chassis_id, "Voltage"),
        "PhysicalContext": spec.context,
        **sensors.legacy_thresholds(spec),
        "RelatedItem": [odata_id("Chassis", chassis_id)],
        "RelatedItem@odata.count": 1,
        "Status": sensors.status(chassis_id, "Voltage"),
    }
    doc = {
        "@odata.id": base,
        "@odata.type": odata_type("Power"),
        "Id": "Power",
        "Name": "Rack power" if rack else f"{chassis_id} power",
        "PowerControl": [control],
        "PowerControl@odata.count": 1,
        "Voltages": [voltage],
        "Voltages@odata.count": 1,
    }
    if rack:
        doc["PowerSupplies"] = [{
            "@odata.id": f"{base}#/PowerSupplies/0",
            "MemberId": "0",
            "Name": "Busbar supply",
            "PowerCapacityWatts": b.capacity,
            "LastPowerOutputWatts": sensors.value(RACK_ID, "Power"),
            "RelatedItem": [odata_id("Chassis", RACK_ID)],
            "RelatedItem@odata.count": 1,
            "Status": enabled(None),
        }]
        doc["PowerSupplies@odata.count"] = 1
    return doc


def power_subsystem_doc(chassis_id: str) -> dict:
    unit = chassis_unit(chassis_id)
    base = f"/redfish/v1/Chassis/{chassis_id}/PowerSubsystem"
    b = _budget_of(unit)
    doc = {
        "@odata.id": base,
        "@odata.type": odata_type("PowerSubsystem"),
        "Id": "PowerSubsystem",
        "Name": "Rack power subsystem" if unit is None else f"{chassis_id} power subsystem",
        "CapacityWatts": b.capacity,
        "Allocation": {"AllocatedWatts": b.allocated, "RequestedWatts": b.requested},
        "Status": enabled(unit),
    }
    if unit is None:
        doc["PowerSupplies"] = {"@odata.id": f"{base}/PowerSupplies"}
    return doc


def feed_doc() -> dict:
    return {
        "@odata.id": f"/redfish/v1/Chassis/{RACK_ID}/PowerSubsystem/PowerSupplies/{FEED_ID}",
        "@odata.type": odata_type("PowerSupply"),
        "Id": FEED_ID,
        "Name": "Busbar supply",
        "Description": "The supply that feeds the busbar, and through it every tray's rail",
        "PowerCapacityWatts": supply_watts(),
        "OutputNominalVoltageType": "DC5V",
        "Status": enabled(None),
        "Links": {"PoweringChassis": [odata_id("Chassis", RACK_ID)], "PoweringChassis@odata.count": 1},
    }


def controls_of(chassis_id: str) -> list[str]:
    if chassis_unit(chassis_id) is not None:
        return []  # a tray has no control of its own: its rail is switched at its Outlet
    return [LIMIT_CONTROL] + ([FAN_CONTROL] if sensors.rack_has_fan() else [])


def limit_control_doc() -> dict:
    b = rack_budget()
    return {
        "@odata.id": f"/redfish/v1/Chassis/{RACK_ID}/Controls/{LIMIT_CONTROL}",
        "@odata.type": odata_type("Control"),
        "Id": LIMIT_CONTROL,
        "Name": "Rack power limit",
        "Description": "The budget for power-ons: the sum of max_watts of the units drawing stays at or "
                       "below it",
        "ControlType": "Power",
        "ControlMode": "Automatic",
        "SetPointType": "Single",
        "Implementation": "Programmable",
        "SetPoint": b.limit,
        "SetPointUnits": "W",
        "DefaultSetPoint": b.capacity,
        "AllowableMax": b.capacity,
        "Sensor": sensors.excerpt(RACK_ID, "Power"),
        "PhysicalContext": "Chassis",
        "RelatedItem": [odata_id("Chassis", RACK_ID)],
        "RelatedItem@odata.count": 1,
        "Status": enabled(None),
    }


def fan_control_doc() -> dict:
    raw = store().readings(RACK_ID).get("fan_duty")
    duty = None if raw is None or raw["value"] is None else round(raw["value"], 1)
    return {
        "@odata.id": f"/redfish/v1/Chassis/{RACK_ID}/Controls/{FAN_CONTROL}",
        "@odata.type": odata_type("Control"),
        "Id": FAN_CONTROL,
        "Name": "Rack fan duty",
        "Description": "The fan's PWM duty, set by the agent's fan curve from the rack air temperature",
        "ControlType": "DutyCycle",
        "ControlMode": "Automatic",
        "SetPointType": "Single",
        "Implementation": "Monitored",
        "SetPoint": duty,
        "SetPointUnits": "%",
        "AllowableMin": 0,
        "AllowableMax": 100,
        "Sensor": sensors.excerpt(RACK_ID, sensors.FAN_ID),
        "PhysicalContext": "Fan",
        "RelatedItem": [{"@odata.id": f"/redfish/v1/Chassis/{RACK_ID}/ThermalSubsystem/Fans/{sensors.FAN_ID}"}],
        "RelatedItem@odata.count": 1,
        "Status": {"State": "Enabled", "Health": "OK" if duty is not None else "Warning"},
    }


# -- routes -----------------------------------------------------------------------------------

@blp.route("/redfish/v1/Chassis/<chassis_id>/Power")
class Power(RedfishView):
    entity = "Power"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, chassis_id):
        return power_doc(chassis_id)


# The privilege registry maps PATCH of Power, Control and EnvironmentMetrics to ConfigureManager.
@blp.route(f"/redfish/v1/Chassis/{RACK_ID}/Power")
class RackPower(RedfishView):
    entity = "Power"
    privileges = declare(entity, "GET", "PATCH")
    cacheable = True

    def get(self):
        return power_doc(RACK_ID)

    def patch(self):
        current = power_doc(RACK_ID)
        check_if_match(current)
        limit = {"LimitInWatts": check_limit, "LimitException": one_of(LIMIT_EXCEPTIONS)}
        changes = check_tree(json_body(), {"PowerControl": [{"PowerLimit": limit}]}, current)
        new = changes.get("PowerControl", [{}])[0].get("PowerLimit", {})
        if "LimitInWatts" in new:
            store().set_power_limit(new["LimitInWatts"])
        return render(power_doc(RACK_ID))


@blp.route("/redfish/v1/Chassis/<chassis_id>/PowerSubsystem")
class PowerSubsystem(RedfishView):
    entity = "PowerSubsystem"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, chassis_id):
        return power_subsystem_doc(chassis_id)


@blp.route("/redfish/v1/Chassis/<chassis_id>/PowerSubsystem/PowerSupplies")
class PowerSupplies(RedfishView):
    entity = "PowerSupplyCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, chassis_id):
        if chassis_unit(chassis_id) is not None:
            raise not_found("PowerSupplyCollection", chassis_id)
        base = f"/redfish/v1/Chassis/{RACK_ID}/PowerSubsystem/PowerSupplies"
        return collection("PowerSupplyCollection", "Power Supplies", base, [f"{base}/{FEED_ID}"])


@blp.route("/redfish/v1/Chassis/<chassis_id>/PowerSubsystem/PowerSupplies/<supply_id>")
class PowerSupply(RedfishView):
    entity = "PowerSupply"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, chassis_id, supply_id):
        if chassis_unit(chassis_id) is not None or supply_id != FEED_ID:
            raise not_found("PowerSupply", supply_id)
        return feed_doc()


@blp.route("/redfish/v1/Chassis/<chassis_id>/Controls")
class Controls(RedfishView):
    entity = "ControlCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, chassis_id):
        base = f"/redfish/v1/Chassis/{chassis_id}/Controls"
        return collection("ControlCollection", "Controls", base, [f"{base}/{c}" for c in controls_of(chassis_id)])


@blp.route("/redfish/v1/Chassis/<chassis_id>/Controls/<control_id>")
class Control(RedfishView):
    entity = "Control"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, chassis_id, control_id):
        if control_id not in controls_of(chassis_id):
            raise not_found("Control", control_id)
        return limit_control_doc() if control_id == LIMIT_CONTROL else fan_control_doc()


class LimitControlPatch(Schema):
    SetPoint = StrictNumber(required=False)


@blp.route(f"/redfish/v1/Chassis/{RACK_ID}/Controls/{LIMIT_CONTROL}")
class LimitControl(RedfishView):
    entity = "Control"
    privileges = declare(entity, "GET", "PATCH")
    cacheable = True

    def get(self):
        return limit_control_doc()

    def patch(self):
        current = limit_control_doc()
        check_if_match(current)
        changes = check_patch(json_body(), LimitControlPatch(), current)
        if "SetPoint" in changes:
            set_limit_or_400(changes["SetPoint"], "SetPoint")
        return render(limit_control_doc())


def set_limit_or_400(watts, where: str) -> None:
    """Apply a power limit given by one property (already known to be a number)."""
    try:
        store().set_power_limit(check_limit(watts))
    except Invalid as e:
        raise RedfishError(400, [value_error(e.msg_id, watts, where)]) from None
