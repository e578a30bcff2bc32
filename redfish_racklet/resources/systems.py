"""ComputerSystem: the compute units (/redfish/v1/Systems/UnitN), their Reset action.

A GET reads the state the agent observed; a Reset asks the agent (the only owner
of the power rails) and answers once the agent has acted or refused.
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from ..agent import client
from ..agent.power import RESET_TYPES
from ..messages import RedfishError, message
from ..web import (CONFIGURE_COMPONENTS, LOGIN, RedfishView, check_if_match, check_patch,
                   collection, json_body, json_response, odata_id, render)
from .common import not_found, odata_type, state_dir, store, unit_status, unit_uuid

blp = Blueprint("systems", __name__, description="Compute units")

RESET_ACTION = "#ComputerSystem.Reset"
ASSET_TAG_MAX = 63


class SystemPatch(Schema):
    AssetTag = fields.String(required=False, validate=validate.Length(max=ASSET_TAG_MAX, error="length"),
                             error_messages={"invalid": "type", "null": "type"})


def _unit(system_id: str) -> dict:
    unit = store().unit(system_id)
    if unit is None:
        raise not_found("ComputerSystem", system_id)
    return unit


def system_doc(unit: dict) -> dict:
    uid = unit["id"]
    base = f"/redfish/v1/Systems/{uid}"
    info = unit["info"]
    return {
        "@odata.id": base,
        "@odata.type": odata_type("ComputerSystem"),
        "Id": uid,
        "Name": info["name"],
        "SystemType": "Physical",
        "Manufacturer": info["manufacturer"],
        "Model": info["model"],
        "SerialNumber": info["serial_number"],
        "AssetTag": unit["asset_tag"],
        "UUID": unit_uuid(uid),
        "PowerState": unit["power_state"],
        "Status": unit_status(unit),
        "Links": {
            "Chassis": [odata_id("Chassis", uid)],
            "Chassis@odata.count": 1,
            "ManagedBy": [odata_id("Managers", "RMC")],
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
    privileges = {"GET": LOGIN}
    cacheable = True

    def get(self):
        return collection("ComputerSystemCollection", "Computer System Collection", "/redfish/v1/Systems",
                          [f"/redfish/v1/Systems/{u['id']}" for u in store().units()])


@blp.route("/redfish/v1/Systems/<system_id>")
class System(RedfishView):
    privileges = {"GET": LOGIN, "PATCH": CONFIGURE_COMPONENTS}
    cacheable = True

    def get(self, system_id):
        return system_doc(_unit(system_id))

    def patch(self, system_id):
        current = system_doc(_unit(system_id))
        check_if_match(current)
        changes = check_patch(json_body(), SystemPatch(), current)
        if "AssetTag" in changes:
            store().set_asset_tag(system_id, changes["AssetTag"])
        return render(system_doc(_unit(system_id)))


@blp.route("/redfish/v1/Systems/<system_id>/ResetActionInfo")
class ResetActionInfo(RedfishView):
    privileges = {"GET": LOGIN}
    cacheable = True

    def get(self, system_id):
        _unit(system_id)
        return {
            "@odata.id": f"/redfish/v1/Systems/{system_id}/ResetActionInfo",
            "@odata.type": odata_type("ActionInfo"),
            "Id": "ResetActionInfo",
            "Name": "Reset Action Info",
            "Parameters": [{"Name": "ResetType", "Required": True, "DataType": "String",
                            "AllowableValues": list(RESET_TYPES)}],
        }


@blp.route("/redfish/v1/Systems/<system_id>/Actions/ComputerSystem.Reset")
class Reset(RedfishView):
    privileges = {"POST": CONFIGURE_COMPONENTS}

    def post(self, system_id):
        _unit(system_id)
        reset_type = _reset_type(json_body())
        try:
            result = client.run_command(store(), state_dir(), system_id, f"reset:{reset_type}")
        except client.AgentUnavailable:
            raise RedfishError.of(503, "ServiceTemporarilyUnavailable", 5,
                                  headers={"Retry-After": "5"}) from None
        if result["state"] != "done":
            err = message("ActionParameterValueConflict", "ResetType", reset_type)
            err["Resolution"] = f"The unit cannot do this now: {result['message']}."
            raise RedfishError(409, [err])
        return json_response({"@Message.ExtendedInfo": [message("Success")]})


def _reset_type(body: dict) -> str:
    action = "ComputerSystem.Reset"
    unknown = [k for k in body if k != "ResetType" and not k.startswith("@")]
    if unknown:
        raise RedfishError.of(400, "ActionParameterUnknown", action, unknown[0])
    if "ResetType" not in body:
        raise RedfishError.of(400, "ActionParameterMissing", action, "ResetType")
    value = body["ResetType"]
    if not isinstance(value, str):
        raise RedfishError.of(400, "ActionParameterValueTypeError", value, "ResetType", action)
    if value not in RESET_TYPES:
        raise RedfishError.of(400, "ActionParameterValueNotInList", value, "ResetType", action)
    return value
