"""Helpers every resource module uses: the store, the caller, schema versions, Status."""

from __future__ import annotations

import functools
import uuid

from flask import current_app, g

from ..agent import client
from ..auth import Principal
from ..messages import RedfishError, message
from ..store import Store

# The DMTF schema version each resource type is served with (checked in the tests
# against ../shared/redfish/csdl). $metadata references exactly these.
VERSIONS = {
    "ServiceRoot": "v1_20_0",
    "ComputerSystem": "v1_27_0",
    "Chassis": "v1_28_0",
    "Manager": "v1_24_0",
    "AccountService": "v1_18_1",
    "ManagerAccount": "v1_14_1",
    "Role": "v1_3_3",
    "SessionService": "v1_2_0",
    "Session": "v1_8_0",
    "ActionInfo": "v1_5_0",
    "JsonSchemaFile": "v1_1_5",
    "Sensor": "v1_12_0",
    "Processor": "v1_22_0",
    "Assembly": "v1_6_1",
    "EthernetInterface": "v1_12_4",
    "Storage": "v1_21_0",
    "Drive": "v1_22_0",
    "SimpleStorage": "v1_3_2",
    "ManagerNetworkProtocol": "v1_12_0",
    "Power": "v1_7_3",
    "Thermal": "v1_7_3",
    "PowerSubsystem": "v1_1_3",
    "PowerSupply": "v1_6_0",
    "ThermalSubsystem": "v1_5_0",
    "ThermalMetrics": "v1_3_2",
    "Fan": "v1_6_0",
    "EnvironmentMetrics": "v1_5_0",
    "Control": "v1_7_0",
    "PowerEquipment": "v1_2_3",
    "PowerDistribution": "v1_6_0",
    "PowerDistributionMetrics": "v1_4_0",
    "Outlet": "v1_4_4",
    "LogService": "v1_9_0",
    "LogEntry": "v1_21_0",
    "CertificateService": "v1_2_1",
    "CertificateLocations": "v1_0_4",
    "Certificate": "v1_11_0",
    "EventService": "v1_12_0",
    "EventDestination": "v1_16_0",
    "TaskService": "v1_3_0",
    "Task": "v1_7_4",
    "UpdateService": "v1_17_0",
    "SoftwareInventory": "v1_13_0",
    "TelemetryService": "v1_4_1",
    "MetricDefinition": "v1_3_5",
    "MetricReportDefinition": "v1_4_7",
    "MetricReport": "v1_5_2",
}
COLLECTIONS = ("ComputerSystemCollection", "ChassisCollection", "ManagerCollection",
               "ManagerAccountCollection", "RoleCollection", "SessionCollection",
               "JsonSchemaFileCollection", "SensorCollection",
               "ProcessorCollection", "EthernetInterfaceCollection", "StorageCollection",
               "SimpleStorageCollection", "LogServiceCollection", "LogEntryCollection",
               "PowerSupplyCollection", "FanCollection", "ControlCollection",
               "PowerDistributionCollection", "OutletCollection",
               "CertificateCollection", "EventDestinationCollection",
               "TaskCollection", "SoftwareInventoryCollection", "MetricDefinitionCollection",
               "MetricReportDefinitionCollection", "MetricReportCollection")


def odata_type(name: str) -> str:
    return f"#{name}.{VERSIONS[name]}.{name}"


def store() -> Store:
    return current_app.extensions["racklet_store"]


def state_dir() -> str:
    return current_app.config["STATE_DIR"]


def principal() -> Principal:
    return g.principal


def require_self_or(owner: str, alternatives: list[list[str]]) -> None:
    """ConfigureSelf only reaches the caller's own account or session."""
    p = principal()
    if p.satisfies(alternatives):
        return
    if p.username == owner and "ConfigureSelf" in p.privileges:
        return
    raise RedfishError.of(403, "InsufficientPrivilege")


def not_found(kind: str, name: str) -> RedfishError:
    return RedfishError.of(404, "ResourceNotFound", kind, name)


def action_info(uri: str, name: str, parameter: str, allowable, required: bool = True) -> dict:
    """The ActionInfo of an action whose one parameter is a string from ``allowable``."""
    return {
        "@odata.id": uri,
        "@odata.type": odata_type("ActionInfo"),
        "Id": uri.rsplit("/", 1)[-1],
        "Name": name,
        "Parameters": [{"Name": parameter, "Required": required, "DataType": "String",
                        "AllowableValues": list(allowable)}],
    }


def agent_command(unit_id: str, verb: str, parameter: str, value: str, who: str) -> None:
    """Ask the agent for ``verb:value`` on a unit (a Reset, an outlet switch, a BMC reset)
    and return once it has acted. 503 when the agent does not answer; 409
    ActionParameterValueConflict on the action's ``parameter`` when it refuses, with the
    agent's reason ("The <who> cannot do this now: …")."""
    try:
        result = client.run_command(store(), state_dir(), unit_id, f"{verb}:{value}")
    except client.AgentUnavailable:
        raise RedfishError.of(503, "ServiceTemporarilyUnavailable", 5, headers={"Retry-After": "5"}) from None
    if result["state"] != "done":
        err = message("ActionParameterValueConflict", parameter, value)
        err["Resolution"] = f"The {who} cannot do this now: {result['message']}."
        raise RedfishError(409, [err])


def unit_uuid(unit_id: str) -> str:
    """A stable UUID per unit, derived from the service's own UUID."""
    return _unit_uuid(store().service_uuid(), unit_id)


@functools.lru_cache(maxsize=64)
def _unit_uuid(service_uuid: str, unit_id: str) -> str:
    return str(uuid.uuid5(uuid.UUID(service_uuid), unit_id))


def unit_status(unit: dict) -> dict:
    if not unit["present"]:
        return {"State": "Absent"}
    state = {"On": "Enabled", "PoweringOn": "Starting", "PoweringOff": "Disabled",
             "Off": "Disabled"}[unit["power_state"]]
    return {"State": state, "Health": unit_health(unit["id"])}


def unit_health(unit_id: str) -> str:
    """Critical when the tray's rail/presence lines do not answer (the agent cannot
    switch it); else the worst of its sensors: Warning when one does not answer or is
    past a caution threshold, Critical past a critical one; OK otherwise."""
    if "fault" in store().settings(unit_id):
        return "Critical"
    from .sensors import rollup  # sensors builds on this module
    return rollup(unit_id)
