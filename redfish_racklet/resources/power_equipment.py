"""The busbar as power equipment: /redfish/v1/PowerEquipment/ElectricalBuses/Busbar.

The rack's supply feeds one 5 V DC busbar; each tray takes its power through a rail
switched by the agent. In Redfish terms the busbar is a PowerDistribution of
EquipmentType ``Bus`` (an electrical bus, served in the ``ElectricalBuses``
collection) and each rail is an Outlet (``Outlets/UnitN``) of type ``BusConnection``.

An Outlet is the rail itself: ``#Outlet.PowerControl`` switches it through the agent
("outlet:On|Off|PowerCycle": On goes through the budget and the stagger, Off cuts at
once), whatever the unit's OS is doing — where ``ComputerSystem.Reset`` is about the
computer. ``PowerOnDelaySeconds`` and ``PowerRestorePolicy`` are the unit's 'outlet'
setting, which the agent applies at every power-on and at start.
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from ..messages import message
from ..privileges import declare
from ..web import (RedfishView, StrictNumber, action_parameter, check_if_match, check_patch, collection, json_body,
                   json_response, odata_id, render)
from . import sensors
from .common import action_info, agent_command, not_found, odata_type, store

blp = Blueprint("power_equipment", __name__, description="The busbar and its rails")

ROOT = "/redfish/v1/PowerEquipment"
BUSES = f"{ROOT}/ElectricalBuses"
BUSBAR_ID = "Busbar"
BUSBAR = f"{BUSES}/{BUSBAR_ID}"
ACTION = "Outlet.PowerControl"
POWER_CONTROL_STATES = ("On", "Off", "PowerCycle")  # Circuit.PowerState
RESTORE_POLICIES = ("AlwaysOn", "AlwaysOff", "LastState")
MAX_ON_DELAY_SECONDS = 600.0
OUTLET_DEFAULTS = {"power_on_delay_seconds": 0.0, "power_restore_policy": "LastState"}


def outlet_setting(uid: str) -> dict:
    return dict(OUTLET_DEFAULTS, **store().settings(uid).get("outlet", {}))


def outlet_power_state(unit: dict) -> str:
    """The rail: Off, PoweringOn (booting, or waiting for its turn), else On (a unit that
    is shutting down still has its rail on)."""
    state = unit["power_state"]
    return state if state in ("Off", "PoweringOn") else "On"


def _unit(outlet_id: str) -> dict:
    unit = store().unit(outlet_id)
    if unit is None:
        raise not_found("Outlet", outlet_id)
    return unit


def _bus(bus_id: str) -> None:
    if bus_id != BUSBAR_ID:
        raise not_found("PowerDistribution", bus_id)


def busbar_doc() -> dict:
    return {
        "@odata.id": BUSBAR,
        "@odata.type": odata_type("PowerDistribution"),
        "Id": BUSBAR_ID,
        "Name": "Busbar",
        "Description": "The rack's 5 V DC busbar: the supply feeds it, one switched rail per tray",
        "EquipmentType": "Bus",
        "Manufacturer": "Racklet",
        "Model": "Racklet busbar",
        "Status": {"State": "Enabled", "Health": "OK"},
        "Outlets": {"@odata.id": f"{BUSBAR}/Outlets"},
        "Metrics": {"@odata.id": f"{BUSBAR}/Metrics"},
        "Links": {
            "Chassis": [odata_id("Chassis", sensors.RACK_ID)],
            "Chassis@odata.count": 1,
            "ManagedBy": [odata_id("Managers", "RMC")],
            "ManagedBy@odata.count": 1,
        },
    }


def busbar_metrics_doc() -> dict:
    doc = {
        "@odata.id": f"{BUSBAR}/Metrics",
        "@odata.type": odata_type("PowerDistributionMetrics"),
        "Id": "Metrics",
        "Name": "Busbar metrics",
        "PowerWatts": sensors.excerpt(sensors.RACK_ID, "Power"),
        "EnergykWh": sensors.energy_kwh_excerpt(sensors.RACK_ID),
    }
    if "Temperature" in sensors.specs(sensors.RACK_ID):
        doc["TemperatureCelsius"] = sensors.excerpt(sensors.RACK_ID, "Temperature")
    return doc


def outlet_doc(unit: dict) -> dict:
    uid = unit["id"]
    base = f"{BUSBAR}/Outlets/{uid}"
    setting = outlet_setting(uid)
    return {
        "@odata.id": base,
        "@odata.type": odata_type("Outlet"),
        "Id": uid,
        "Name": f"Rail of slot {unit['slot']} ({uid})",
        "OutletType": "BusConnection",
        "VoltageType": "DC",
        "NominalVoltage": "DC5V",
        "PowerState": outlet_power_state(unit),
        "PowerEnabled": unit["present"],  # an empty slot's rail stays off
        "PowerOnDelaySeconds": setting["power_on_delay_seconds"],
        "PowerRestorePolicy": setting["power_restore_policy"],
        "PowerWatts": sensors.excerpt(uid, "Power"),
        "Voltage": sensors.excerpt(uid, "Voltage"),
        "CurrentAmps": sensors.excerpt(uid, "Current"),
        "EnergykWh": sensors.energy_kwh_excerpt(uid),
        "Status": {"State": "Enabled" if unit["present"] else "Disabled", "Health": "OK"},
        "Links": {"Chassis": [odata_id("Chassis", uid)], "Chassis@odata.count": 1},
        "Actions": {
            f"#{ACTION}": {
                "target": f"{base}/Actions/{ACTION}",
                "PowerState@Redfish.AllowableValues": list(POWER_CONTROL_STATES),
                "@Redfish.ActionInfo": f"{base}/PowerControlActionInfo",
            }
        },
    }


class OutletPatch(Schema):
    PowerOnDelaySeconds = StrictNumber(required=False, validate=validate.Range(
        min=0, max=MAX_ON_DELAY_SECONDS, error="range"))
    PowerRestorePolicy = fields.String(required=False, validate=validate.OneOf(RESTORE_POLICIES, error="list"),
                                       error_messages={"invalid": "type", "null": "type"})


# -- routes -----------------------------------------------------------------------------

@blp.route(ROOT)
class PowerEquipment(RedfishView):
    entity = "PowerEquipment"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        return {
            "@odata.id": ROOT,
            "@odata.type": odata_type("PowerEquipment"),
            "Id": "PowerEquipment",
            "Name": "Power equipment",
            "Status": {"State": "Enabled", "Health": "OK"},
            "ElectricalBuses": {"@odata.id": BUSES},
            "Links": {"ManagedBy": [odata_id("Managers", "RMC")], "ManagedBy@odata.count": 1},
        }


@blp.route(BUSES)
class ElectricalBuses(RedfishView):
    entity = "PowerDistributionCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        return collection("PowerDistributionCollection", "Electrical buses", BUSES, [BUSBAR])


@blp.route(f"{BUSES}/<bus_id>")
class ElectricalBus(RedfishView):
    entity = "PowerDistribution"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, bus_id):
        _bus(bus_id)
        return busbar_doc()


@blp.route(f"{BUSES}/<bus_id>/Metrics")
class ElectricalBusMetrics(RedfishView):
    entity = "PowerDistributionMetrics"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, bus_id):
        _bus(bus_id)
        return busbar_metrics_doc()


@blp.route(f"{BUSES}/<bus_id>/Outlets")
class Outlets(RedfishView):
    entity = "OutletCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, bus_id):
        _bus(bus_id)
        base = f"{BUSBAR}/Outlets"
        return collection("OutletCollection", "Busbar rails", base, [f"{base}/{u['id']}" for u in store().units()])


@blp.route(f"{BUSES}/<bus_id>/Outlets/<outlet_id>")
class Outlet(RedfishView):
    entity = "Outlet"
    privileges = declare(entity, "GET", "PATCH")
    cacheable = True

    def get(self, bus_id, outlet_id):
        _bus(bus_id)
        return outlet_doc(_unit(outlet_id))

    def patch(self, bus_id, outlet_id):
        _bus(bus_id)
        current = outlet_doc(_unit(outlet_id))
        check_if_match(current)
        changes = check_patch(json_body(), OutletPatch(), current)
        with store().tx():  # read-modify-write of the one 'outlet' setting: no lost update
            setting = outlet_setting(outlet_id)
            if "PowerOnDelaySeconds" in changes:
                setting["power_on_delay_seconds"] = changes["PowerOnDelaySeconds"]
            if "PowerRestorePolicy" in changes:
                setting["power_restore_policy"] = changes["PowerRestorePolicy"]
            store().set_setting(outlet_id, "outlet", setting)
        return render(outlet_doc(_unit(outlet_id)))


@blp.route(f"{BUSES}/<bus_id>/Outlets/<outlet_id>/PowerControlActionInfo")
class PowerControlActionInfo(RedfishView):
    entity = "ActionInfo"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, bus_id, outlet_id):
        _bus(bus_id)
        _unit(outlet_id)
        return action_info(f"{BUSBAR}/Outlets/{outlet_id}/PowerControlActionInfo", "Power Control Action Info",
                           "PowerState", POWER_CONTROL_STATES)


@blp.route(f"{BUSES}/<bus_id>/Outlets/<outlet_id>/Actions/{ACTION}")
class PowerControl(RedfishView):
    entity = "Outlet"  # an action: its Outlet's POST
    privileges = declare(entity, "POST")

    def post(self, bus_id, outlet_id):
        _bus(bus_id)
        _unit(outlet_id)
        state = action_parameter(json_body(), ACTION, "PowerState", POWER_CONTROL_STATES)
        agent_command(outlet_id, "outlet", "PowerState", state, "rail")
        return json_response({"@Message.ExtendedInfo": [message("Success")]})
