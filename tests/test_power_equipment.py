"""The busbar as power equipment on a live server: PowerEquipment → ElectricalBuses/Busbar
→ Outlets/UnitN (one per rail), their settings and their PowerControl action."""

from __future__ import annotations

import json
import time

import pytest

from redfish_racklet.store import Store

from .conftest import ids, module_server, restart, shared_or_skip, wait_for

ROOT = "/redfish/v1/PowerEquipment"
BUSBAR = f"{ROOT}/ElectricalBuses/Busbar"
OUTLETS = f"{BUSBAR}/Outlets"
ACTION = "Actions/Outlet.PowerControl"
UNITS = ("Unit1", "Unit2", "Unit3", "Unit4")
DEADLINE = 15.0


@pytest.fixture(scope="module")
def rack(tmp_path_factory):
    """A server of this module's own: these tests switch rails and change outlet settings."""
    yield from module_server(tmp_path_factory, "power-equipment")


_CLIENTS: dict = {}


def client(srv):
    return _CLIENTS.get(srv.port) or _CLIENTS.setdefault(srv.port, srv.client())


def get(srv, path: str) -> dict:
    r = client(srv).get(srv.url + path)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()




def db(srv) -> Store:
    return Store(str(srv.state_dir / "racklet.db"))




def system_state(srv, uid: str) -> str:
    return get(srv, f"/redfish/v1/Systems/{uid}")["PowerState"]


def outlet_state(srv, uid: str) -> str:
    return get(srv, f"{OUTLETS}/{uid}")["PowerState"]


def power_control(srv, uid: str, body):
    return client(srv).post(srv.url + f"{OUTLETS}/{uid}/{ACTION}", json=body)


def _enum(file: str, definition: str) -> set:
    path = shared_or_skip("redfish", "json-schema", file)
    return set(json.loads(path.read_text())["definitions"][definition]["enum"])


def test_the_tree_from_the_service_root(rack):
    assert get(rack, "/redfish/v1")["PowerEquipment"] == {"@odata.id": ROOT}
    root = get(rack, ROOT)
    assert root["@odata.type"].startswith("#PowerEquipment.")
    buses = get(rack, root["ElectricalBuses"]["@odata.id"])
    assert [m["@odata.id"] for m in buses["Members"]] == [BUSBAR]
    bus = get(rack, BUSBAR)
    assert bus["EquipmentType"] == "Bus" and bus["EquipmentType"] in _enum("PowerDistribution.v1_6_0.json",
                                                                           "PowerEquipmentType")
    assert bus["Links"]["Chassis"] == [{"@odata.id": "/redfish/v1/Chassis/Rack"}]
    metrics = get(rack, bus["Metrics"]["@odata.id"])
    assert metrics["PowerWatts"]["DataSourceUri"] == "/redfish/v1/Chassis/Rack/Sensors/Power"
    outlets = get(rack, bus["Outlets"]["@odata.id"])
    assert [m["@odata.id"].rsplit("/", 1)[1] for m in outlets["Members"]] == list(UNITS) + ["Unit5"]


def test_outlet_shape_and_enums(rack):
    doc = get(rack, f"{OUTLETS}/Unit1")
    assert doc["OutletType"] == "BusConnection" and doc["OutletType"] in _enum("Outlet.json", "ReceptacleType")
    assert doc["VoltageType"] == "DC" and doc["VoltageType"] in _enum("Outlet.v1_4_4.json", "VoltageType")
    assert doc["NominalVoltage"] == "DC5V" and doc["NominalVoltage"] in _enum("Circuit.json", "NominalVoltageType")
    assert doc["PowerRestorePolicy"] in _enum("Circuit.json", "PowerRestorePolicyTypes")
    assert doc["PowerState"] in _enum("Resource.json", "PowerState")
    assert (doc["PowerEnabled"], doc["PowerOnDelaySeconds"], doc["PowerRestorePolicy"]) == (True, 0, "LastState")
    assert doc["Links"]["Chassis"] == [{"@odata.id": "/redfish/v1/Chassis/Unit1"}]
    for prop, sensor in (("PowerWatts", "Power"), ("Voltage", "Voltage"), ("CurrentAmps", "Current"),
                         ("EnergykWh", "EnergykWh")):
        assert doc[prop]["DataSourceUri"] == f"/redfish/v1/Chassis/Unit1/Sensors/{sensor}"
    action = doc["Actions"]["#Outlet.PowerControl"]
    assert action["target"] == f"{OUTLETS}/Unit1/{ACTION}"
    allowed = action["PowerState@Redfish.AllowableValues"]
    assert set(allowed) <= _enum("Circuit.json", "PowerState")
    info = get(rack, action["@Redfish.ActionInfo"])
    assert info["Parameters"] == [{"Name": "PowerState", "Required": True, "DataType": "String",
                                   "AllowableValues": allowed}]
    empty = get(rack, f"{OUTLETS}/Unit5")
    assert (empty["PowerEnabled"], empty["PowerState"], empty["Status"]["State"]) == (False, "Off", "Disabled")
    assert empty["PowerWatts"]["Reading"] is None


def test_unknown_bus_and_outlet_are_404(rack):
    c = client(rack)
    for path in (f"{ROOT}/ElectricalBuses/Other", f"{ROOT}/ElectricalBuses/Other/Outlets", f"{OUTLETS}/Unit9",
                 f"{OUTLETS}/Unit9/PowerControlActionInfo", f"{ROOT}/RackPDUs"):
        assert c.get(rack.url + path).status_code == 404, path
    assert c.post(rack.url + f"{OUTLETS}/Unit9/{ACTION}", json={"PowerState": "On"}).status_code == 404


def test_outlet_power_state_matches_the_system_for_every_unit(rack):
    for uid in UNITS + ("Unit5",):
        def same():
            s = system_state(rack, uid)
            o = outlet_state(rack, uid)
            return s == system_state(rack, uid) and s in ("On", "Off") and (s, o)
        s, o = wait_for(same, f"{uid} at rest")
        assert o == s, uid
        assert get(rack, f"/redfish/v1/Chassis/{uid}")["PowerState"] == s


def test_power_control_switches_the_rail(rack):
    uid = "Unit2"
    wait_for(lambda: system_state(rack, uid) == "On", f"{uid} On")
    r = power_control(rack, uid, {"PowerState": "Off"})
    assert r.status_code == 200, r.text
    assert r.json()["@Message.ExtendedInfo"][0]["MessageId"].endswith(".Success")
    assert outlet_state(rack, uid) == system_state(rack, uid) == "Off"  # cut at once, before the answer
    wait_for(lambda: get(rack, f"/redfish/v1/Chassis/{uid}/Sensors/Power")["Reading"] == 0.0,
             "no power on a cut rail")
    assert get(rack, f"{OUTLETS}/{uid}")["PowerWatts"]["Reading"] == 0.0
    assert power_control(rack, uid, {"PowerState": "Off"}).status_code == 200  # already off: a no-op
    assert outlet_state(rack, uid) == "Off"
    assert power_control(rack, uid, {"PowerState": "On"}).status_code == 200
    assert outlet_state(rack, uid) in ("PoweringOn", "On")
    wait_for(lambda: outlet_state(rack, uid) == system_state(rack, uid) == "On", f"{uid} back On")
    assert power_control(rack, uid, {"PowerState": "PowerCycle"}).status_code == 200
    wait_for(lambda: outlet_state(rack, uid) == system_state(rack, uid) == "On", f"{uid} On after the cycle")


def test_power_control_of_an_empty_slot_is_a_conflict(rack):
    r = power_control(rack, "Unit5", {"PowerState": "On"})
    assert r.status_code == 409 and "ActionParameterValueConflict" in ids(r)
    assert outlet_state(rack, "Unit5") == "Off"


@pytest.mark.parametrize("body,msg_id", [
    ({}, "ActionParameterMissing"),
    ({"PowerState": "Reboot"}, "ActionParameterValueNotInList"),
    ({"PowerState": "on"}, "ActionParameterValueNotInList"),
    ({"PowerState": 1}, "ActionParameterValueTypeError"),
    ({"PowerState": None}, "ActionParameterValueTypeError"),
    ({"PowerState": "Off", "Delay": 3}, "ActionParameterUnknown"),
])
def test_bad_power_control_changes_nothing(rack, body, msg_id):
    wait_for(lambda: system_state(rack, "Unit3") == "On", "Unit3 On")
    r = power_control(rack, "Unit3", body)
    assert r.status_code == 400, r.text
    assert msg_id in ids(r)
    assert outlet_state(rack, "Unit3") == system_state(rack, "Unit3") == "On"


def test_outlet_settings_are_stored_and_used(rack):
    c = client(rack)
    uri = rack.url + f"{OUTLETS}/Unit4"
    try:
        r = c.patch(uri, json={"PowerOnDelaySeconds": 1.5, "PowerRestorePolicy": "AlwaysOn"})
        assert r.status_code == 200, r.text
        assert (r.json()["PowerOnDelaySeconds"], r.json()["PowerRestorePolicy"]) == (1.5, "AlwaysOn")
        assert db(rack).settings("Unit4")["outlet"] == {"power_on_delay_seconds": 1.5,
                                                       "power_restore_policy": "AlwaysOn"}
        r = c.patch(uri, json={"PowerRestorePolicy": "AlwaysOff"})  # one property: the other stays
        assert (r.json()["PowerOnDelaySeconds"], r.json()["PowerRestorePolicy"]) == (1.5, "AlwaysOff")

        # The delay holds the rail off after a power-on request.
        wait_for(lambda: system_state(rack, "Unit3") == "On", "Unit3 On")
        r = c.patch(rack.url + f"{OUTLETS}/Unit3", json={"PowerOnDelaySeconds": 1})
        assert r.status_code == 200
        assert power_control(rack, "Unit3", {"PowerState": "Off"}).status_code == 200
        t0 = time.monotonic()
        assert power_control(rack, "Unit3", {"PowerState": "On"}).status_code == 200
        assert outlet_state(rack, "Unit3") == "PoweringOn"
        wait_for(lambda: system_state(rack, "Unit3") == "On", "Unit3 On after its delay")
        assert time.monotonic() - t0 >= 1.0
    finally:
        for uid in ("Unit3", "Unit4"):
            c.patch(rack.url + f"{OUTLETS}/{uid}",
                    json={"PowerOnDelaySeconds": 0, "PowerRestorePolicy": "LastState"})


def test_system_power_restore_policy_is_its_outlets(rack):
    """ComputerSystem.PowerRestorePolicy (what Ansible and vendor BMCs read) is the one
    setting of the unit's Outlet: a change on either shows on both; a bad one changes nothing."""
    c = client(rack)
    system, outlet = rack.url + "/redfish/v1/Systems/Unit4", rack.url + f"{OUTLETS}/Unit4"
    try:
        assert c.get(system).json()["PowerRestorePolicy"] == c.get(outlet).json()["PowerRestorePolicy"]
        r = c.patch(system, json={"PowerRestorePolicy": "AlwaysOff"})
        assert r.status_code == 200 and r.json()["PowerRestorePolicy"] == "AlwaysOff", r.text
        assert c.get(outlet).json()["PowerRestorePolicy"] == "AlwaysOff"
        assert db(rack).settings("Unit4")["outlet"]["power_restore_policy"] == "AlwaysOff"
        assert c.patch(outlet, json={"PowerRestorePolicy": "AlwaysOn"}).status_code == 200
        assert c.get(system).json()["PowerRestorePolicy"] == "AlwaysOn"
        for bad, msg_id in (("Sometimes", "PropertyValueNotInList"), (None, "PropertyValueTypeError")):
            r = c.patch(system, json={"PowerRestorePolicy": bad, "AssetTag": "not-applied"})
            assert r.status_code == 400 and msg_id in ids(r), r.text
            after = c.get(system).json()
            assert (after["PowerRestorePolicy"], after["AssetTag"]) == ("AlwaysOn", "")
    finally:
        c.patch(outlet, json={"PowerRestorePolicy": "LastState"})


@pytest.mark.parametrize("body,msg_id", [
    ({"PowerOnDelaySeconds": -1}, "PropertyValueOutOfRange"),
    ({"PowerOnDelaySeconds": 601}, "PropertyValueOutOfRange"),
    ({"PowerOnDelaySeconds": "5"}, "PropertyValueTypeError"),
    ({"PowerOnDelaySeconds": True}, "PropertyValueTypeError"),
    ({"PowerOnDelaySeconds": None}, "PropertyValueTypeError"),
    ({"PowerRestorePolicy": "Sometimes"}, "PropertyValueNotInList"),
    ({"PowerRestorePolicy": "alwayson"}, "PropertyValueNotInList"),
    ({"PowerRestorePolicy": 3}, "PropertyValueTypeError"),
    ({"PowerState": "Off"}, "PropertyNotWritable"),
    ({"PowerEnabled": False}, "PropertyNotWritable"),
    ({"NominalVoltage": "DC12V"}, "PropertyNotWritable"),
    ({"PowerOffDelaySeconds": 3}, "PropertyUnknown"),
    ({"PowerOnDelaySeconds": 5, "PowerRestorePolicy": "Never"}, "PropertyValueNotInList"),  # nothing applied
    ({"PowerOnDelaySeconds": 5, "Bogus": 1}, "PropertyUnknown"),
    ({}, "NoOperation"),
])
def test_bad_outlet_patch_changes_nothing(rack, body, msg_id):
    before = get(rack, f"{OUTLETS}/Unit1")
    r = client(rack).patch(rack.url + f"{OUTLETS}/Unit1", json=body)
    assert r.status_code == 400, r.text
    assert msg_id in ids(r)
    after = get(rack, f"{OUTLETS}/Unit1")
    for key in ("PowerOnDelaySeconds", "PowerRestorePolicy", "PowerState"):
        assert after[key] == before[key], key
    assert "outlet" not in db(rack).settings("Unit1")


def test_outlet_patch_checks_the_etag_and_is_not_on_the_collection(rack):
    c = client(rack)
    r = c.patch(rack.url + f"{OUTLETS}/Unit1", json={"PowerOnDelaySeconds": 3}, headers={"If-Match": '"stale"'})
    assert r.status_code == 412
    assert get(rack, f"{OUTLETS}/Unit1")["PowerOnDelaySeconds"] == 0
    assert c.patch(rack.url + OUTLETS, json={"Name": "x"}).status_code == 405
    assert c.patch(rack.url + BUSBAR, json={"Name": "x"}).status_code == 405


def test_power_restore_policy_applies_when_the_rack_restarts(fresh_server):
    srv = fresh_server(workers=1)
    c = srv.client()
    for uid, policy in (("Unit1", "AlwaysOff"), ("Unit2", "AlwaysOn"), ("Unit3", "LastState")):
        assert c.patch(srv.url + f"{OUTLETS}/{uid}", json={"PowerRestorePolicy": policy}).status_code == 200
    for uid in ("Unit2", "Unit3"):  # off when the rack goes down
        assert c.post(srv.url + f"{OUTLETS}/{uid}/{ACTION}", json={"PowerState": "Off"}).status_code == 200
    again = restart(srv)
    try:
        def settled():
            states = {u: get(again, f"{OUTLETS}/{u}")["PowerState"] for u in ("Unit1", "Unit2", "Unit3", "Unit4")}
            return states if all(s in ("On", "Off") for s in states.values()) and states["Unit2"] == "On" else None
        states = wait_for(settled, "the rails restored after the restart")
        assert states == {"Unit1": "Off", "Unit2": "On", "Unit3": "Off", "Unit4": "On"}
    finally:
        again.stop()
