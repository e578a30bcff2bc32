"""Managers: the Rack Management Controller running this service (Managers/RMC) and one
BMC per unit (Managers/UnitN-BMC), with their Reset action (their logs: ``log_services``).

The RMC manages the rack chassis and the unit BMCs; each unit BMC manages its unit's
system and tray. A unit BMC is a microcontroller on the SMBus backplane: it has no
network of its own (see ``manager_network``), and its reset is a command to the agent.
Resetting the RMC restarts this service's API workers without dropping the service.
"""

from __future__ import annotations

import datetime as dt
import os
import signal

from flask import request
from flask_smorest import Blueprint

from .. import __version__
from ..agent import FACTORY_RESET, FACTORY_RESET_TIMEOUT, client
from ..messages import RedfishError, message
from ..privileges import declare
from ..web import RedfishView, action_parameter, check_tree, collection, json_body, json_response, odata_id
from .common import action_info, agent_command, not_found, odata_type, state_dir, store, unit_uuid
from .task_service import accepted
from .update_service import active_image, image_links, switch_image

blp = Blueprint("managers", __name__, description="Managers")

RMC_ID = "RMC"
BMC_SUFFIX = "-BMC"
RESET_ACTION = "#Manager.Reset"
RESET_TO_DEFAULTS_ACTION = "#Manager.ResetToDefaults"
RESET_TO_DEFAULTS_TYPES = ("ResetAll",)  # a factory reset (see factory.py); nothing is preserved
# Both restart the manager, as in bmcweb (which maps both to the BMC's reboot): the RMC
# has no harder way to restart its workers than gunicorn's graceful reload.
MANAGER_RESET_TYPES = ("GracefulRestart", "ForceRestart")
DEFAULT_RESET_TYPE = "GracefulRestart"  # the schema lets a Reset omit ResetType


def bmc_id(unit_id: str) -> str:
    return f"{unit_id}{BMC_SUFFIX}"


def manager_unit(manager_id: str) -> dict | None:
    """The unit whose BMC ``manager_id`` is; None for the RMC. 404 for anything else."""
    if manager_id == RMC_ID:
        return None
    unit = store().unit(manager_id[:-len(BMC_SUFFIX)]) if manager_id.endswith(BMC_SUFFIX) else None
    if unit is None:
        raise not_found("Manager", manager_id)
    return unit


def _version(target: str, component: str) -> str | None:
    img = active_image(target, component)
    return img["version"] if img else None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def _reset_action(manager_id: str) -> dict:
    base = f"/redfish/v1/Managers/{manager_id}"
    return {RESET_ACTION: {"target": f"{base}/Actions/Manager.Reset",
                           "ResetType@Redfish.AllowableValues": list(MANAGER_RESET_TYPES),
                           "@Redfish.ActionInfo": f"{base}/ResetActionInfo"}}


def rmc_doc(units: list[dict]) -> dict:
    base = f"/redfish/v1/Managers/{RMC_ID}"
    bmcs = [odata_id("Managers", bmc_id(u["id"])) for u in units]
    return {
        "@odata.id": base,
        "@odata.type": odata_type("Manager"),
        "Id": RMC_ID,
        "Name": "Rack Management Controller",
        "ManagerType": "RackManager",
        "Manufacturer": "Racklet",
        "Model": "redfish-racklet",
        "FirmwareVersion": _version("RMC", "rmc") or __version__,
        "UUID": store().service_uuid(),
        "ServiceEntryPointUUID": store().service_uuid(),
        "DateTime": _now(),
        "DateTimeLocalOffset": "+00:00",
        "Status": {"State": "Enabled", "Health": "OK"},
        "NetworkProtocol": {"@odata.id": f"{base}/NetworkProtocol"},
        "EthernetInterfaces": {"@odata.id": f"{base}/EthernetInterfaces"},
        "LogServices": {"@odata.id": f"{base}/LogServices"},
        "Links": {
            "ManagerForChassis": [odata_id("Chassis", "Rack")],
            "ManagerForChassis@odata.count": 1,
            "ManagerForManagers": bmcs,
            "ManagerForManagers@odata.count": len(bmcs),
            "ManagerInChassis": odata_id("Chassis", "Rack"),
            **image_links("RMC", "rmc"),
        },
        "Actions": dict(_reset_action(RMC_ID), **{RESET_TO_DEFAULTS_ACTION: {
            "target": f"{base}/Actions/Manager.ResetToDefaults",
            "ResetType@Redfish.AllowableValues": list(RESET_TO_DEFAULTS_TYPES),
            "@Redfish.ActionInfo": f"{base}/ResetToDefaultsActionInfo"}}),
    }


def bmc_doc(unit: dict) -> dict:
    uid = unit["id"]
    mid = bmc_id(uid)
    base = f"/redfish/v1/Managers/{mid}"
    bmc = unit["info"].get("bmc", {})
    doc = {
        "@odata.id": base,
        "@odata.type": odata_type("Manager"),
        "Id": mid,
        "Name": f"BMC of {uid}",
        "Description": f"The board management controller on the tray in slot {unit['slot']}",
        "ManagerType": "BMC",
        "Manufacturer": "Racklet",
        "Model": bmc.get("model") or "racklet-bmc",
        "FirmwareVersion": _version(uid, "bmc") or bmc.get("firmware_version"),  # its active slot
        "UUID": unit_uuid(mid),
        "DateTime": _now(),  # the RMC's clock: the BMC keeps none of its own
        "DateTimeLocalOffset": "+00:00",
        "Status": {"State": "Enabled", "Health": "OK"} if unit["present"] else {"State": "Absent"},
        "NetworkProtocol": {"@odata.id": f"{base}/NetworkProtocol"},
        "EthernetInterfaces": {"@odata.id": f"{base}/EthernetInterfaces"},  # the RMC's (manager_network)
        "LogServices": {"@odata.id": f"{base}/LogServices"},
        "Links": {
            "ManagerForServers": [odata_id("Systems", uid)],
            "ManagerForServers@odata.count": 1,
            "ManagerForChassis": [odata_id("Chassis", uid)],
            "ManagerForChassis@odata.count": 1,
            "ManagerInChassis": odata_id("Chassis", uid),
            "ManagedBy": [odata_id("Managers", RMC_ID)],
            "ManagedBy@odata.count": 1,
            **image_links(uid, "bmc"),
        },
        "Actions": _reset_action(mid),
    }
    last_reset = store().settings(uid).get("bmc_reset")
    if last_reset is not None:
        doc["LastResetTime"] = dt.datetime.fromtimestamp(float(last_reset), dt.timezone.utc) \
            .replace(microsecond=0).isoformat()
    return doc


@blp.route("/redfish/v1/Managers")
class Managers(RedfishView):
    entity = "ManagerCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        ids = [RMC_ID] + [bmc_id(u["id"]) for u in store().units()]
        return collection("ManagerCollection", "Manager Collection", "/redfish/v1/Managers",
                          [f"/redfish/v1/Managers/{i}" for i in ids])


@blp.route("/redfish/v1/Managers/<manager_id>")
class Manager(RedfishView):
    """PATCH: only ``Links/ActiveSoftwareImage`` (switch firmware slots by hand: a Task)."""

    entity = "Manager"
    privileges = declare(entity, "GET", "PATCH")  # DateTime: not cacheable

    def get(self, manager_id):
        unit = manager_unit(manager_id)
        return rmc_doc(store().units()) if unit is None else bmc_doc(unit)

    def patch(self, manager_id):
        unit = manager_unit(manager_id)
        cleaned = check_tree(json_body(), {"Links": {"ActiveSoftwareImage": lambda v: v}}, self.get(manager_id))
        target, component = ("RMC", "rmc") if unit is None else (unit["id"], "bmc")
        return accepted(switch_image(target, component, cleaned["Links"]["ActiveSoftwareImage"]))


@blp.route("/redfish/v1/Managers/<manager_id>/ResetActionInfo")
class ResetActionInfo(RedfishView):
    entity = "ActionInfo"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, manager_id):
        manager_unit(manager_id)
        return action_info(f"/redfish/v1/Managers/{manager_id}/ResetActionInfo", "Reset Action Info", "ResetType",
                           MANAGER_RESET_TYPES, required=False)  # the schema lets a Reset omit ResetType


@blp.route("/redfish/v1/Managers/<manager_id>/Actions/Manager.Reset")
class Reset(RedfishView):
    entity = "Manager"  # an action: its Manager's POST
    privileges = declare(entity, "POST")

    def post(self, manager_id):
        unit = manager_unit(manager_id)
        reset_type = action_parameter(json_body(), "Manager.Reset", "ResetType", MANAGER_RESET_TYPES,
                                      default=DEFAULT_RESET_TYPE)
        if unit is None:
            return _restart_workers(reset_type)
        agent_command(unit["id"], "bmc_reset", "ResetType", reset_type, "BMC")
        return json_response({"@Message.ExtendedInfo": [message("Success")]})


def _restart_workers(reset_type: str):
    """Answer first, then ask the gunicorn arbiter (this worker's parent) to reload its
    workers: it starts new ones and lets the old ones finish their requests, keeping
    its listening socket, so the service never stops answering (the schema asks a
    manager that provides the service to answer before it resets)."""
    arbiter = os.getppid()
    if not request.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/") or arbiter <= 1:
        err = message("ActionParameterValueConflict", "ResetType", reset_type)
        err["Resolution"] = "The service does not run under its own gunicorn arbiter; restart it from outside."
        raise RedfishError(409, [err])
    response = json_response({"@Message.ExtendedInfo": [message("Success")]})
    response.call_on_close(lambda: os.kill(arbiter, signal.SIGHUP))
    return response


@blp.route("/redfish/v1/Managers/<manager_id>/ResetToDefaultsActionInfo")
class ResetToDefaultsActionInfo(RedfishView):
    entity = "ActionInfo"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, manager_id):
        if manager_id != RMC_ID:
            raise not_found("Manager", manager_id)
        return action_info(f"/redfish/v1/Managers/{RMC_ID}/ResetToDefaultsActionInfo",
                           "Reset To Defaults Action Info", "ResetType", RESET_TO_DEFAULTS_TYPES)


@blp.route("/redfish/v1/Managers/<manager_id>/Actions/Manager.ResetToDefaults")
class ResetToDefaults(RedfishView):
    """The factory reset of the rack: the agent powers the units down, then forgets
    accounts, sessions, logs and settings and makes new certificates (factory.py). The
    caller's session ends with it; the new admin password is in the state directory."""

    entity = "Manager"  # an action: its Manager's POST
    privileges = declare(entity, "POST")

    def post(self, manager_id):
        if manager_id != RMC_ID:
            raise not_found("Manager", manager_id)
        action_parameter(json_body(), "Manager.ResetToDefaults", "ResetType", RESET_TO_DEFAULTS_TYPES)
        try:
            client.run_command(store(), state_dir(), RMC_ID, FACTORY_RESET, timeout=FACTORY_RESET_TIMEOUT)
        except client.AgentUnavailable:
            raise RedfishError.of(503, "ServiceTemporarilyUnavailable", 5, headers={"Retry-After": "5"}) from None
        return json_response({"@Message.ExtendedInfo": [message("Success")]})
