"""Event logs (Managers/RMC, Managers/UnitN-BMC and Systems/UnitN LogServices/EventLog)
on a live server, with entries the agent writes as the rack changes; and the unit BMCs'
EthernetInterfaces (the RMC's, through which they are reached)."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest

from redfish_racklet import odata
from redfish_racklet.store import LOG_MAX

from .conftest import ids, sim, wait_for

RMC_LOG = "/redfish/v1/Managers/RMC/LogServices/EventLog"
EVENT = "ResourceEvent.1.4.3."


def bmc_log(unit: str) -> str:
    return f"/redfish/v1/Managers/{unit}-BMC/LogServices/EventLog"


def system_log(unit: str) -> str:
    return f"/redfish/v1/Systems/{unit}/LogServices/EventLog"








def entries(c, srv, log: str) -> list[dict]:
    doc = c.get(srv.url + log + "/Entries").json()
    assert doc["Members@odata.count"] == len(doc["Members"])
    return doc["Members"]


def clear(c, srv, log: str) -> None:
    r = c.post(srv.url + log + "/Actions/LogService.ClearLog", json={})
    assert r.status_code == 200, r.text


def write_entries(srv, units: list[str]) -> None:
    """Entries as the agent writes them (its own Log class), one per unit given."""
    from redfish_racklet.agent.events import Log
    from redfish_racklet.store import Store
    log = Log(Store(str(srv.state_dir / "racklet.db")))
    for uid in units:
        where = f"/redfish/v1/Chassis/{uid or 'Rack'}/Sensors/Temperature"
        log.write("ResourceStatusChangedWarning", [where, "Warning"], where, uid)


def without_etags(doc):
    if isinstance(doc, dict):
        return {k: without_etags(v) for k, v in doc.items() if k != "@odata.etag"}
    if isinstance(doc, list):
        return [without_etags(v) for v in doc]
    return doc


# -- the services ------------------------------------------------------------------------

@pytest.mark.parametrize("log,owner", [(RMC_LOG, None), (bmc_log("Unit1"), "Unit1"),
                                       (system_log("Unit1"), "Unit1"), (bmc_log("Unit5"), "Unit5")])
def test_log_service_shape(server, log, owner):
    c = server.client()
    services = log.rsplit("/", 1)[0]
    coll = c.get(server.url + services).json()
    assert coll["@odata.type"] == "#LogServiceCollection.LogServiceCollection"
    assert coll["Members"] == [{"@odata.id": log}] and coll["Members@odata.count"] == 1
    r = c.get(server.url + log)
    assert r.status_code == 200 and r.headers["Link"].startswith("<https://redfish.dmtf.org/schemas/v1/LogService.")
    doc = r.json()
    assert doc["@odata.type"] == "#LogService.v1_9_0.LogService"
    assert (doc["Id"], doc["LogEntryType"], doc["OverWritePolicy"], doc["ServiceEnabled"]) == \
        ("EventLog", "Event", "WrapsWhenFull", True)
    assert doc["MaxNumberOfRecords"] == LOG_MAX
    assert doc["Status"] == {"State": "Enabled", "Health": "OK"}
    now = dt.datetime.fromisoformat(doc["DateTime"])
    assert abs(now.timestamp() - time.time()) < 5 and doc["DateTimeLocalOffset"] == "+00:00"
    assert doc["Entries"] == {"@odata.id": log + "/Entries"}
    assert (owner or "whole rack") in doc["Description"]
    action = doc["Actions"]["#LogService.ClearLog"]
    assert action["target"] == log + "/Actions/LogService.ClearLog"
    info = c.get(server.url + action["@Redfish.ActionInfo"]).json()
    assert info["@odata.type"].startswith("#ActionInfo.")
    assert info["Parameters"] == [{"Name": "LogEntriesETag", "Required": False, "DataType": "String"}]
    r = c.get(server.url + action["target"])
    assert r.status_code == 405 and r.headers["Allow"] == "POST"


def test_links_to_the_logs(server):
    c = server.client()
    for uri in ("/redfish/v1/Managers/RMC", "/redfish/v1/Managers/Unit2-BMC", "/redfish/v1/Systems/Unit2"):
        doc = c.get(server.url + uri).json()
        assert doc["LogServices"] == {"@odata.id": uri + "/LogServices"}
        assert c.get(server.url + uri + "/LogServices").status_code == 200


# -- entries the rack writes ----------------------------------------------------------------

def test_unplug_plug_and_power_are_logged(fresh_server):
    srv = fresh_server()
    c = srv.client()
    clear(c, srv, RMC_LOG)
    t0 = time.time()
    sim(srv, "unplug", "Unit2")  # the agent acts before it answers
    sim(srv, "plug", "Unit2")
    wanted = ["ResourceRemoved", "ResourcePoweredOff", "ResourceCreated", "ResourcePoweredOn"]
    assert wait_for(lambda: [e["MessageId"] for e in entries(c, srv, bmc_log("Unit2"))] ==
                    [EVENT + m for m in wanted])
    unit2 = entries(c, srv, bmc_log("Unit2"))
    removed, off, created, on = unit2
    chassis, system = "/redfish/v1/Chassis/Unit2", "/redfish/v1/Systems/Unit2"
    assert removed["Links"]["OriginOfCondition"] == {"@odata.id": chassis}
    assert created["Links"]["OriginOfCondition"] == {"@odata.id": chassis}
    assert (removed["MessageArgs"], removed["Message"]) == ([], "The resource was removed successfully.")
    assert off["Links"]["OriginOfCondition"] == {"@odata.id": system}
    assert (off["MessageArgs"], off["Message"]) == ([system], f"The resource '{system}' has powered off.")
    assert on["Message"] == f"The resource '{system}' has powered on."
    for e in unit2:
        assert (e["EntryType"], e["Severity"]) == ("Event", "OK")
        assert e["@odata.type"] == "#LogEntry.v1_21_0.LogEntry"
        created_at = dt.datetime.fromisoformat(e["Created"])
        assert created_at.utcoffset() is not None and e["EventTimestamp"] == e["Created"]
        assert t0 - 2 <= created_at.timestamp() <= time.time() + 1
        assert e["@odata.id"] == f"{bmc_log('Unit2')}/Entries/{e['Id']}"
        # each entry is also a resource of its own, the same as in the collection
        assert without_etags(c.get(srv.url + e["@odata.id"]).json()) == e
    # the system's log is the same entries, under its own URIs
    assert [dict(e, **{"@odata.id": e["@odata.id"].replace(system_log("Unit2"), bmc_log("Unit2"))})
            for e in entries(c, srv, system_log("Unit2"))] == unit2
    # the rack's log has them too; Unit1's has none of them
    assert [e["Id"] for e in entries(c, srv, RMC_LOG)][-4:] == [e["Id"] for e in unit2]
    assert not {e["Id"] for e in unit2} & {e["Id"] for e in entries(c, srv, bmc_log("Unit1"))}


def test_reset_and_bmc_reset_are_logged(fresh_server):
    srv = fresh_server()
    c = srv.client()
    clear(c, srv, RMC_LOG)
    reset = srv.url + "/redfish/v1/Systems/Unit3/Actions/ComputerSystem.Reset"
    assert c.post(reset, json={"ResetType": "ForceOff"}).status_code == 200
    off = wait_for(lambda: entries(c, srv, system_log("Unit3")))
    assert [e["MessageId"] for e in off] == [EVENT + "ResourcePoweredOff"]
    assert off[0]["Links"]["OriginOfCondition"] == {"@odata.id": "/redfish/v1/Systems/Unit3"}
    assert c.post(reset, json={"ResetType": "On"}).status_code == 200
    assert wait_for(lambda: len(entries(c, srv, system_log("Unit3"))) == 2)
    assert entries(c, srv, system_log("Unit3"))[1]["MessageId"] == EVENT + "ResourcePoweredOn"
    r = c.post(srv.url + "/redfish/v1/Managers/Unit1-BMC/Actions/Manager.Reset", json={"ResetType": "ForceRestart"})
    assert r.status_code == 200
    bmc = wait_for(lambda: entries(c, srv, bmc_log("Unit1")))
    assert [e["MessageId"] for e in bmc] == ["ManagerEvent.1.0.0.ManagerReset"]
    assert bmc[0]["MessageArgs"] == ["Unit1-BMC", "ForceRestart"]
    assert bmc[0]["Links"]["OriginOfCondition"] == {"@odata.id": "/redfish/v1/Managers/Unit1-BMC"}
    assert [e["MessageId"].split(".")[-1] for e in entries(c, srv, RMC_LOG)] == \
        ["LogCleared", "ResourcePoweredOff", "ResourcePoweredOn", "ManagerReset"]


def test_sensor_health_is_logged_with_its_severity(fresh_server):
    srv = fresh_server()
    c = srv.client()
    clear(c, srv, RMC_LOG)
    sim(srv, "fail", "Unit4", "power")
    warn = wait_for(lambda: entries(c, srv, bmc_log("Unit4")))
    assert [(e["MessageId"], e["Severity"]) for e in warn] == [(EVENT + "ResourceStatusChangedWarning", "Warning")]
    sensor = warn[0]["Links"]["OriginOfCondition"]["@odata.id"]
    assert sensor.startswith("/redfish/v1/Chassis/Unit4/Sensors/") and c.get(srv.url + sensor).status_code == 200
    assert warn[0]["MessageArgs"] == [sensor, "Warning"]
    sim(srv, "heal", "Unit4", "power")
    healed = wait_for(lambda: len(entries(c, srv, bmc_log("Unit4"))) == 2 and entries(c, srv, bmc_log("Unit4")))
    assert (healed[1]["MessageId"], healed[1]["Severity"]) == (EVENT + "ResourceStatusChangedOK", "OK")


# -- paging ----------------------------------------------------------------------------------

def test_paging_agrees_with_the_generic_paging(fresh_server):
    srv = fresh_server()
    c = srv.client()
    clear(c, srv, RMC_LOG)
    units = ["Unit1", "Unit2", ""] * 8  # 24 entries (8 of Unit1) after the clear's own entry: 25
    write_entries(srv, units)
    full = c.get(srv.url + RMC_LOG + "/Entries").json()
    assert full["Members@odata.count"] == 25 and "Members@odata.nextLink" not in full
    assert [int(m["Id"]) for m in full["Members"]] == sorted(int(m["Id"]) for m in full["Members"])
    for top, skip in ((10, None), (10, 10), (10, 20), (None, 5), (5, 0), (100, None), (3, 30), (None, 25), (25, 0)):
        query = "&".join(f"${k}={v}" for k, v in (("top", top), ("skip", skip)) if v is not None)
        r = c.get(srv.url + RMC_LOG + "/Entries?" + query)
        assert r.status_code == 200
        got = r.json()
        expected = odata.page(without_etags(full), odata.Query(top=top, skip=skip))
        assert without_etags(got) == expected, query
        assert got["Members@odata.count"] == 25
    # a client following nextLink gets every entry once, in order
    seen, uri = [], RMC_LOG + "/Entries?$top=10"
    while uri:
        page = c.get(srv.url + uri).json()
        seen += [m["Id"] for m in page["Members"]]
        uri = page.get("Members@odata.nextLink")
    assert seen == [m["Id"] for m in full["Members"]]
    # a unit's log pages over that unit's entries only
    page = c.get(srv.url + bmc_log("Unit1") + "/Entries?$skip=2&$top=4").json()
    assert page["Members@odata.count"] == 8 and len(page["Members"]) == 4
    assert page["Members@odata.nextLink"] == bmc_log("Unit1") + "/Entries?$skip=6&$top=4"
    assert all(m["@odata.id"].startswith(bmc_log("Unit1") + "/Entries/") for m in page["Members"])
    unit1 = [m["Id"] for m in entries(c, srv, system_log("Unit1"))]
    assert [m["Id"] for m in page["Members"]] == unit1[2:6]
    # the other query options still apply to the page
    sel = c.get(srv.url + RMC_LOG + "/Entries?$top=2&$select=Name").json()
    assert sel["Name"] == "Log Entry Collection" and "Members" not in sel
    assert c.head(srv.url + RMC_LOG + "/Entries?$top=2").status_code == 200
    one = c.get(srv.url + RMC_LOG + "/Entries?$top=1&$skip=24&only").json()  # 'only' as the generic paging has it
    assert one["Members@odata.count"] == 25


@pytest.mark.parametrize("query,status,msg_id", [
    ("$top=x", 400, "QueryParameterValueTypeError"),
    ("$skip=-1", 400, "QueryParameterValueTypeError"),
    ("$top=10001", 400, "QueryParameterOutOfRange"),
    ("$filter=Severity eq 'OK'", 501, "QueryParameterUnsupported"),
])
def test_bad_paging(server, query, status, msg_id):
    r = server.get(RMC_LOG + "/Entries?" + query)
    assert r.status_code == status and ids(r) == [msg_id]
    r = server.get(RMC_LOG + "?$top=1")  # a LogService is not a collection
    assert r.status_code == 400 and ids(r) == ["QueryNotSupportedOnResource"]


# -- ClearLog ----------------------------------------------------------------------------------

def counts(c, srv) -> dict[str, int]:
    return {u: c.get(srv.url + bmc_log(u) + "/Entries").json()["Members@odata.count"]
            for u in ("Unit1", "Unit2", "Unit3")} | \
        {"rack": c.get(srv.url + RMC_LOG + "/Entries").json()["Members@odata.count"]}


def test_clear_log(fresh_server):
    srv = fresh_server()
    c = srv.client()
    clear(c, srv, RMC_LOG)  # leaves one entry: the clear itself
    first = entries(c, srv, RMC_LOG)
    assert [(e["MessageId"], e["MessageArgs"]) for e in first] == [("LogService.1.1.0.LogCleared", [RMC_LOG])]
    write_entries(srv, ["Unit1", "Unit2", "Unit3", "", "Unit1", "Unit2", "Unit3", ""])
    assert counts(c, srv) == {"Unit1": 2, "Unit2": 2, "Unit3": 2, "rack": 9}
    # a unit BMC's log: that unit's entries only
    r = c.post(srv.url + bmc_log("Unit2") + "/Actions/LogService.ClearLog", json={})
    assert r.status_code == 200 and r.json()["@Message.ExtendedInfo"][0]["MessageId"].endswith(".Success")
    assert counts(c, srv) == {"Unit1": 2, "Unit2": 1, "Unit3": 2, "rack": 8}
    assert entries(c, srv, bmc_log("Unit2"))[0]["MessageArgs"] == [bmc_log("Unit2")]
    # a system's log, with no body at all
    r = c.post(srv.url + system_log("Unit1") + "/Actions/LogService.ClearLog")
    assert r.status_code == 200, r.text
    assert counts(c, srv) == {"Unit1": 1, "Unit2": 1, "Unit3": 2, "rack": 7}
    # with the Entries' current ETag
    etag = c.get(srv.url + system_log("Unit3") + "/Entries").headers["ETag"]
    r = c.post(srv.url + system_log("Unit3") + "/Actions/LogService.ClearLog", json={"LogEntriesETag": etag})
    assert r.status_code == 200, r.text
    assert counts(c, srv) == {"Unit1": 1, "Unit2": 1, "Unit3": 1, "rack": 6}
    # the RMC's: everything
    clear(c, srv, RMC_LOG)
    assert counts(c, srv) == {"Unit1": 0, "Unit2": 0, "Unit3": 0, "rack": 1}
    cleared = c.get(srv.url + RMC_LOG + "/Entries").json()
    assert [m["MessageId"] for m in cleared["Members"]] == ["LogService.1.1.0.LogCleared"]
    # the log goes on after a clear
    write_entries(srv, ["Unit1"])
    assert counts(c, srv) == {"Unit1": 1, "Unit2": 0, "Unit3": 0, "rack": 2}


@pytest.mark.parametrize("kw,status,msg_id", [
    ({"json": {"Bogus": 1}}, 400, "ActionParameterUnknown"),
    ({"json": {"LogEntriesETag": '"x"', "Force": True}}, 400, "ActionParameterUnknown"),
    ({"json": {"LogEntriesETag": 5}}, 400, "ActionParameterValueTypeError"),
    ({"json": {"LogEntriesETag": '"0123456789abcdef01234567"'}}, 428, "PreconditionFailed"),
    ({"data": "{", "headers": {"Content-Type": "application/json"}}, 400, "MalformedJSON"),
    ({"data": "[]", "headers": {"Content-Type": "application/json"}}, 400, "UnrecognizedRequestBody"),
    ({"data": "x=1", "headers": {"Content-Type": "text/plain"}}, 415, "HeaderInvalid"),
])
@pytest.mark.parametrize("log", [RMC_LOG, bmc_log("Unit1"), system_log("Unit1")])
def test_bad_clear_log_clears_nothing(server, log, kw, status, msg_id):
    c = server.client()
    write_entries(server, ["Unit1", ""])
    before = c.get(server.url + RMC_LOG + "/Entries").json()["Members@odata.count"]
    r = c.post(server.url + log + "/Actions/LogService.ClearLog", **kw)
    assert r.status_code == status and ids(r) == [msg_id]
    assert c.get(server.url + RMC_LOG + "/Entries").json()["Members@odata.count"] >= before


def test_clear_log_privileges(fresh_server):
    from redfish_racklet import auth
    from redfish_racklet.store import Store
    srv = fresh_server(workers=1)
    st = Store(str(srv.state_dir / "racklet.db"))
    st.add_account("viewer", auth.hash_password("viewer-password-1"), "ReadOnly")
    st.add_account("operator", auth.hash_password("operator-password-1"), "Operator")
    write_entries(srv, ["Unit1", "Unit2", ""])
    before = counts(srv.client(), srv)
    viewer = srv.client(auth=("viewer", "viewer-password-1"))
    operator = srv.client(auth=("operator", "operator-password-1"))
    for log in (RMC_LOG, bmc_log("Unit1"), system_log("Unit1")):
        assert viewer.get(srv.url + log + "/Entries").status_code == 200
        r = viewer.post(srv.url + log + "/Actions/LogService.ClearLog", json={})
        assert r.status_code == 403 and ids(r) == ["InsufficientPrivilege"], log
    # ConfigureManager for a manager's log; ConfigureComponents for a system's (the registry)
    for log in (RMC_LOG, bmc_log("Unit1")):
        r = operator.post(srv.url + log + "/Actions/LogService.ClearLog", json={})
        assert r.status_code == 403 and ids(r) == ["InsufficientPrivilege"], log
    assert counts(srv.client(), srv) == before
    for user in (viewer, operator):  # a BMC's interfaces (the RMC's) are the manager's to refuse
        for nic in ethernet_names()[:1]:
            r = user.patch(srv.url + f"/redfish/v1/Managers/Unit1-BMC/EthernetInterfaces/{nic}", json={"HostName": "x"})
            assert r.status_code == 403 and ids(r) == ["InsufficientPrivilege"]
    assert operator.post(srv.url + system_log("Unit2") + "/Actions/LogService.ClearLog", json={}).status_code == 200
    assert counts(srv.client(), srv) == dict(before, Unit2=1, rack=before["rack"] - before["Unit2"] + 1)


# -- not found ----------------------------------------------------------------------------------

def test_not_found(server):
    c = server.client()
    write_entries(server, ["Unit2"])
    unit2 = entries(c, server, bmc_log("Unit2"))[-1]["Id"]
    assert c.get(server.url + f"{RMC_LOG}/Entries/{unit2}").status_code == 200
    assert c.get(server.url + f"{system_log('Unit2')}/Entries/{unit2}").status_code == 200
    for uri in (f"{bmc_log('Unit1')}/Entries/{unit2}",  # another unit's entry
                f"{system_log('Unit1')}/Entries/{unit2}",
                f"{RMC_LOG}/Entries/0{unit2}", f"{RMC_LOG}/Entries/999999999", f"{RMC_LOG}/Entries/abc",
                f"{RMC_LOG}/Entries/-1", f"{RMC_LOG}/Entries/99999999999999999999999",
                f"{RMC_LOG}/Entries/\u00b2", f"{RMC_LOG}/Entries/{unit2}.0", f"{RMC_LOG}/Entries/ {unit2}",
                "/redfish/v1/Managers/RMC/LogServices/SEL", "/redfish/v1/Managers/RMC/LogServices/SEL/Entries",
                "/redfish/v1/Systems/Unit1/LogServices/Dump/ClearLogActionInfo",
                "/redfish/v1/Managers/Unit9-BMC/LogServices", "/redfish/v1/Managers/Unit9-BMC/LogServices/EventLog",
                "/redfish/v1/Systems/Unit9/LogServices", "/redfish/v1/Systems/Unit9/LogServices/EventLog/Entries",
                "/redfish/v1/Systems/Unit9/LogServices/EventLog/Entries?$top=1"):
        r = c.get(server.url + uri)
        assert r.status_code == 404 and ids(r) == ["ResourceNotFound"], uri
    r = c.post(server.url + "/redfish/v1/Managers/Unit9-BMC/LogServices/EventLog/Actions/LogService.ClearLog",
               json={})
    assert r.status_code == 404


def test_logs_need_a_login(server):
    anon = server.anonymous()
    for uri in (RMC_LOG, RMC_LOG + "/Entries", system_log("Unit1") + "/Entries?$top=1"):
        assert anon.get(server.url + uri).status_code == 401
    assert anon.post(server.url + RMC_LOG + "/Actions/LogService.ClearLog", json={}).status_code == 401


# -- the unit BMCs' Ethernet interfaces: the RMC's --------------------------------------------

def ethernet_names() -> list[str]:
    return sorted(n for n in os.listdir("/sys/class/net")
                  if open(f"/sys/class/net/{n}/type").read().strip() == "1")


def test_bmc_ethernet_interfaces_are_the_rmcs(server):
    c = server.client()
    names = ethernet_names()
    if not names:
        pytest.skip("this machine has no Ethernet interface")
    rmc = "/redfish/v1/Managers/RMC/EthernetInterfaces"
    for unit in ("Unit1", "Unit5"):  # an empty tray's BMC too: the interfaces are the RMC's
        base = f"/redfish/v1/Managers/{unit}-BMC/EthernetInterfaces"
        assert c.get(server.url + f"/redfish/v1/Managers/{unit}-BMC").json()["EthernetInterfaces"] == \
            {"@odata.id": base}
        coll = c.get(server.url + base).json()
        assert coll["Members"] == [{"@odata.id": f"{base}/{n}"} for n in names]
        for name in names:
            doc = without_etags(c.get(server.url + f"{base}/{name}").json())
            assert doc["@odata.id"] == f"{base}/{name}" and doc["Id"] == name
            assert "reached over SMBus through the RMC" in doc["Description"] and name in doc["Description"]
            theirs = without_etags(c.get(server.url + f"{rmc}/{name}").json())
            assert "Description" not in theirs
            same = ("MACAddress", "MTUSize", "InterfaceEnabled", "LinkStatus", "IPv4Addresses", "HostName", "FQDN",
                    "NameServers", "EthernetInterfaceType", "Status")
            assert {k: doc[k] for k in same} == {k: theirs[k] for k in same}
        for other in ("lo", "nosuch0"):
            r = c.get(server.url + f"{base}/{other}")
            assert r.status_code == 404 and ids(r) == ["ResourceNotFound"]
    r = c.get(server.url + "/redfish/v1/Managers/Unit9-BMC/EthernetInterfaces")
    assert r.status_code == 404


def test_every_manager_answers_built_interface_uris(server):
    """As DMTF redfish-utilities does: Managers/<id>/EthernetInterfaces/<nic> for each
    manager and each member of its collection."""
    c = server.client()
    managers = [m["@odata.id"].rsplit("/", 1)[1] for m in c.get(server.url + "/redfish/v1/Managers").json()["Members"]]
    assert len(managers) == 6
    for manager in managers:
        doc = c.get(server.url + f"/redfish/v1/Managers/{manager}").json()
        assert "EthernetInterfaces" in doc, manager
        members = c.get(server.url + doc["EthernetInterfaces"]["@odata.id"]).json()["Members"]
        for nic in (m["@odata.id"].rsplit("/", 1)[1] for m in members):
            r = c.get(server.url + f"/redfish/v1/Managers/{manager}/EthernetInterfaces/{nic}")
            assert r.status_code == 200 and r.json()["Id"] == nic


@pytest.mark.parametrize("body,msg_ids", [
    ({"HostName": "x"}, ["PropertyNotWritable"]),
    ({"IPv4StaticAddresses": [{"Address": "10.0.0.9"}], "Bogus": 1}, ["PropertyNotWritable", "PropertyUnknown"]),
    ({"InterfaceEnabled": False, "Description": "mine"}, ["PropertyNotWritable", "PropertyNotWritable"]),
    ({}, ["NoOperation"]),
])
def test_bmc_ethernet_interface_cannot_be_changed(server, body, msg_ids):
    names = ethernet_names()
    if not names:
        pytest.skip("this machine has no Ethernet interface")
    c = server.client()
    uri = server.url + f"/redfish/v1/Managers/Unit2-BMC/EthernetInterfaces/{names[0]}"
    before = c.get(uri).json()
    r = c.patch(uri, json=body)
    assert r.status_code == 400 and sorted(ids(r)) == msg_ids
    assert c.get(uri).json() == before
