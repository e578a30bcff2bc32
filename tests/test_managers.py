"""Managers: the RMC and one BMC per unit; network protocol and the RMC's interfaces as
the running Linux system has them; Reset of both kinds; privileges."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest
import requests

from redfish_racklet.resources import manager_network as mn
from redfish_racklet.resources.managers import MANAGER_RESET_TYPES

from .conftest import api_workers, children, ids, shared_or_skip, wait_for

RMC = "/redfish/v1/Managers/RMC"






# -- the list and the shapes ------------------------------------------------------------

def test_one_bmc_per_unit(server):
    c = server.client()
    units = [m["@odata.id"].rsplit("/", 1)[1] for m in c.get(server.url + "/redfish/v1/Systems").json()["Members"]]
    managers = [m["@odata.id"] for m in c.get(server.url + "/redfish/v1/Managers").json()["Members"]]
    assert managers == [RMC] + [f"/redfish/v1/Managers/{u}-BMC" for u in units]
    assert len(units) == 5
    rmc = c.get(server.url + RMC).json()
    assert rmc["Links"]["ManagerForManagers"] == [{"@odata.id": m} for m in managers[1:]]


def test_rmc_shape(server):
    doc = server.get(RMC).json()
    assert doc["ManagerType"] == "RackManager" and doc["ServiceEntryPointUUID"] == doc["UUID"]
    for link in ("NetworkProtocol", "EthernetInterfaces", "LogServices"):
        assert doc[link] == {"@odata.id": f"{RMC}/{link}"}
    action = doc["Actions"]["#Manager.Reset"]
    assert action["target"] == f"{RMC}/Actions/Manager.Reset"
    assert action["ResetType@Redfish.AllowableValues"] == ["GracefulRestart", "ForceRestart"]
    info = server.get(action["@Redfish.ActionInfo"]).json()
    assert info["Parameters"][0]["AllowableValues"] == ["GracefulRestart", "ForceRestart"]
    logs = server.get(f"{RMC}/LogServices").json()  # the event log itself: test_log_services
    assert logs["@odata.type"] == "#LogServiceCollection.LogServiceCollection"
    assert logs["Members"] == [{"@odata.id": f"{RMC}/LogServices/EventLog"}]


def test_bmc_shape(server):
    c = server.client()
    doc = c.get(server.url + "/redfish/v1/Managers/Unit1-BMC").json()
    assert (doc["ManagerType"], doc["Model"]) == ("BMC", "racklet-bmc")
    assert doc["Status"] == {"State": "Enabled", "Health": "OK"}
    service_uuid = c.get(server.url + "/redfish/v1").json()["UUID"]
    assert doc["UUID"] == str(uuid.uuid5(uuid.UUID(service_uuid), "Unit1-BMC"))
    assert doc["UUID"] != c.get(server.url + "/redfish/v1/Systems/Unit1").json()["UUID"]
    assert "ServiceEntryPointUUID" not in doc  # it does not provide this service
    assert doc["Links"]["ManagerForServers"] == [{"@odata.id": "/redfish/v1/Systems/Unit1"}]
    assert doc["Links"]["ManagerForChassis"] == [{"@odata.id": "/redfish/v1/Chassis/Unit1"}]
    assert doc["Links"]["ManagerInChassis"] == {"@odata.id": "/redfish/v1/Chassis/Unit1"}
    assert doc["Links"]["ManagedBy"] == [{"@odata.id": RMC}]
    dt.datetime.fromisoformat(doc["DateTime"])
    # SMBus only: every network protocol off; its EthernetInterfaces are the RMC's, through
    # which it is reached (test_log_services)
    assert doc["EthernetInterfaces"] == {"@odata.id": "/redfish/v1/Managers/Unit1-BMC/EthernetInterfaces"}
    r = c.get(server.url + "/redfish/v1/Managers/Unit1-BMC/EthernetInterfaces")
    assert r.status_code == 200 and r.json()["Members@odata.count"] == len(ethernet_names())
    proto = c.get(server.url + doc["NetworkProtocol"]["@odata.id"]).json()
    assert not any(v["ProtocolEnabled"] for k, v in proto.items() if isinstance(v, dict) and "ProtocolEnabled" in v)
    assert c.get(server.url + doc["LogServices"]["@odata.id"]).json()["Members"] == [
        {"@odata.id": "/redfish/v1/Managers/Unit1-BMC/LogServices/EventLog"}]
    absent = c.get(server.url + "/redfish/v1/Managers/Unit5-BMC").json()
    assert absent["Status"] == {"State": "Absent"}
    for bad in ("Unit9-BMC", "Unit1", "BMC", "-BMC", "rmc"):
        r = c.get(server.url + f"/redfish/v1/Managers/{bad}")
        assert r.status_code == 404 and ids(r) == ["ResourceNotFound"], bad


def test_manager_enums_are_in_the_dmtf_schema():
    js = shared_or_skip("redfish", "json-schema")
    resource = json.loads((js / "Resource.json").read_text())["definitions"]
    assert set(MANAGER_RESET_TYPES) <= set(resource["ResetType"]["enum"])
    eth = json.loads((js / "EthernetInterface.v1_12_4.json").read_text())["definitions"]
    assert {"LinkUp", "LinkDown", "NoLink"} == set(eth["LinkStatus"]["enum"])
    ip = json.loads((js / "IPAddresses.v1_1_5.json").read_text())["definitions"]
    assert {"LinkLocal", "Static", "DHCPv6", "SLAAC"} <= set(ip["IPv6AddressOrigin"]["enum"])
    assert {"Preferred", "Deprecated", "Tentative", "Failed"} == set(ip["AddressState"]["enum"])


# -- NetworkProtocol ---------------------------------------------------------------------

def test_network_protocol(server):
    c = server.client()
    doc = c.get(server.url + f"{RMC}/NetworkProtocol").json()
    assert doc["HostName"] == socket.gethostname().split(".")[0]
    assert doc["FQDN"].split(".")[0] == doc["HostName"]
    assert doc["HTTPS"] == {"ProtocolEnabled": True, "Port": server.port,
                            "Certificates": {"@odata.id": f"{RMC}/NetworkProtocol/HTTPS/Certificates"}}
    assert doc["HTTP"]["ProtocolEnabled"] is False and doc["IPMI"]["ProtocolEnabled"] is False


@pytest.mark.parametrize("uri", [f"{RMC}/NetworkProtocol", "/redfish/v1/Managers/Unit1-BMC/NetworkProtocol"])
@pytest.mark.parametrize("body,msg_ids", [
    ({"HostName": "other"}, ["PropertyNotWritable"]),
    ({"HTTPS": {"Port": 8443}}, ["PropertyNotWritable"]),
    ({"HTTP": {"ProtocolEnabled": True}}, ["PropertyNotWritable"]),
    ({"SSH": {"ProtocolEnabled": True}}, ["PropertyNotWritable"]),
    ({"SSDP": {"ProtocolEnabled": False}}, ["PropertyNotWritable"]),
    ({"Bogus": 1, "FQDN": "x.example"}, ["PropertyNotWritable", "PropertyUnknown"]),
    ({}, ["NoOperation"]),
])
def test_network_protocol_cannot_be_changed(server, uri, body, msg_ids):
    c = server.client()
    before = c.get(server.url + uri).json()
    r = c.patch(server.url + uri, json=body)
    assert r.status_code == 400 and sorted(ids(r)) == msg_ids
    assert c.get(server.url + uri).json() == before


# -- the RMC's Ethernet interfaces, from the running system ----------------------------------

def ethernet_names() -> list[str]:
    return sorted(n for n in os.listdir("/sys/class/net")
                  if open(f"/sys/class/net/{n}/type").read().strip() == "1")


def ip_json() -> dict:
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip to compare with")
    out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True).stdout
    return {i["ifname"]: i for i in json.loads(out)}


def test_rmc_interfaces_are_the_systems(server):
    c = server.client()
    coll = c.get(server.url + f"{RMC}/EthernetInterfaces").json()
    names = [m["@odata.id"].rsplit("/", 1)[1] for m in coll["Members"]]
    assert names == ethernet_names() and "lo" not in names
    if not names:
        pytest.skip("this machine has no Ethernet interface")
    ip = ip_json()
    for name in names:
        doc = c.get(server.url + f"{RMC}/EthernetInterfaces/{name}").json()
        assert doc["MACAddress"] == ip[name]["address"].lower()
        assert doc["MTUSize"] == ip[name]["mtu"]
        assert doc["InterfaceEnabled"] == ("UP" in ip[name]["flags"])
        v4 = [(a["local"], a["prefixlen"]) for a in ip[name].get("addr_info", []) if a["family"] == "inet"]
        got = [(a["Address"], sum(bin(int(o)).count("1") for o in a["SubnetMask"].split(".")))
               for a in doc["IPv4Addresses"]]
        assert set(got) <= set(v4) and (bool(got) == bool(v4))  # the primary address only
        if got:
            assert "Gateway" in doc["IPv4Addresses"][0]
        v6 = {(a["local"], a["prefixlen"]) for a in ip[name].get("addr_info", []) if a["family"] == "inet6"}
        assert {(a["Address"], a["PrefixLength"]) for a in doc["IPv6Addresses"]} == v6
        assert doc["HostName"] == socket.gethostname().split(".")[0]
    for other in ("lo", "nosuch0"):  # only Ethernet interfaces that exist
        r = c.get(server.url + f"{RMC}/EthernetInterfaces/{other}")
        assert r.status_code == 404 and ids(r) == ["ResourceNotFound"]


def test_rmc_interface_cannot_be_changed(server):
    c = server.client()
    names = ethernet_names()
    if not names:
        pytest.skip("this machine has no Ethernet interface")
    uri = server.url + f"{RMC}/EthernetInterfaces/{names[0]}"
    r = c.patch(uri, json={"IPv4Addresses": [{"Address": "10.0.0.9"}], "HostName": "x", "Bogus": 1})
    assert r.status_code == 400 and sorted(ids(r)) == ["PropertyNotWritable", "PropertyNotWritable",
                                                       "PropertyUnknown"]


IF_INET6 = """\
fd000000000000000000000000000002 04 40 00 80     eth0
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
20010db8000000000000000000000042 04 80 00 00     eth0
20010db8000000010a0027fffe000001 04 40 00 00     eth0
20010db8000000010000000000000007 04 40 00 20     eth0
20010db8000000010000000000000008 04 40 00 c0     eth0
20010db8000000010000000000000009 04 40 00 88     eth0
00000000000000000000000000000001 01 80 10 80       lo
fe800000000000000000000000000001 05 40 20 80    wlan0
"""

ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
wlan0\t00000000\t0101A8C0\t0001\t0\t0\t600\t00000000\t0\t0\t0
"""

IPV6_ROUTE = """\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
"""


def test_parsers_on_fixed_text():
    got = mn.parse_if_inet6(IF_INET6)
    assert set(got) == {"eth0", "wlan0"}
    assert got["eth0"] == [
        {"Address": "fd00::2", "PrefixLength": 64, "AddressOrigin": "Static", "AddressState": "Preferred"},
        {"Address": "fe80::fc:ff:fe00:1", "PrefixLength": 64, "AddressOrigin": "LinkLocal",
         "AddressState": "Preferred"},
        {"Address": "2001:db8::42", "PrefixLength": 128, "AddressOrigin": "DHCPv6", "AddressState": "Preferred"},
        {"Address": "2001:db8:0:1:a00:27ff:fe00:1", "PrefixLength": 64, "AddressOrigin": "SLAAC",
         "AddressState": "Preferred"},
        {"Address": "2001:db8:0:1::7", "PrefixLength": 64, "AddressOrigin": "SLAAC", "AddressState": "Deprecated"},
        {"Address": "2001:db8:0:1::8", "PrefixLength": 64, "AddressOrigin": "Static", "AddressState": "Tentative"},
        {"Address": "2001:db8:0:1::9", "PrefixLength": 64, "AddressOrigin": "Static", "AddressState": "Failed"},
    ]
    # only a default route that is up and goes through a gateway
    assert mn.parse_route(ROUTE) == {"eth0": "192.0.2.1"}
    assert mn.parse_ipv6_route(IPV6_ROUTE) == {"eth0": "fd00::1"}
    assert mn.parse_resolv_conf("# comment\nnameserver 10.0.0.53\nsearch example\nnameserver fe80::1%eth0\n"
                                "nameserver bogus\nnameserver\n") == ["10.0.0.53", "fe80::1%eth0"]
    assert mn.parse_if_inet6("") == {} and mn.parse_route("") == {} and mn.parse_ipv6_route("junk\n") == {}


@pytest.mark.parametrize("admin_up,operstate,carrier,expected", [
    (True, "up", "1", "LinkUp"), (True, "down", "0", "LinkDown"), (True, "unknown", "1", "LinkUp"),
    (True, "unknown", None, "LinkDown"), (True, "lowerlayerdown", "0", "LinkDown"),
    (False, "down", None, "NoLink"),
])
def test_link_status(admin_up, operstate, carrier, expected):
    assert mn.link_status(admin_up, operstate, carrier) == expected


def test_read_interface_from_fixed_files(tmp_path):
    """A fake /sys/class/net and /proc: what a Pi with a cable and DHCP would show."""
    net = tmp_path / "sys"
    for name, kind, extra in (("eth0", "1", {"speed": "1000", "carrier": "1", "operstate": "up", "flags": "0x1003"}),
                              ("lo", "772", {"flags": "0x9"}), ("can0", "280", {"flags": "0x0"}),
                              ("veth1", "1", {"flags": "0x1002", "operstate": "down"})):
        d = net / name
        d.mkdir(parents=True)
        (d / "type").write_text(kind + "\n")
        (d / "address").write_text("DC:A6:32:01:02:03\n")
        (d / "mtu").write_text("1500\n")
        for k, v in extra.items():
            (d / k).write_text(v + "\n")
    (net / "eth0" / "device").mkdir()
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "net" / "route").write_text(ROUTE)
    (proc / "net" / "if_inet6").write_text(IF_INET6)
    (proc / "net" / "ipv6_route").write_text(IPV6_ROUTE)
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")
    assert mn.interface_names(str(net)) == ["eth0", "veth1"]
    facts = mn.read_interface("eth0", str(net), str(proc), str(resolv),
                              ipv4=lambda n: ("192.0.2.10", "255.255.255.0"))
    doc = mn.interface_doc("RMC", facts, "rack", "rack.example")
    assert doc["@odata.id"] == "/redfish/v1/Managers/RMC/EthernetInterfaces/eth0"
    assert (doc["MACAddress"], doc["SpeedMbps"], doc["MTUSize"], doc["LinkStatus"]) == \
        ("dc:a6:32:01:02:03", 1000, 1500, "LinkUp")
    assert (doc["EthernetInterfaceType"], doc["InterfaceEnabled"]) == ("Physical", True)
    assert doc["IPv4Addresses"] == [{"Address": "192.0.2.10", "SubnetMask": "255.255.255.0",
                                     "AddressOrigin": None, "Gateway": "192.0.2.1"}]
    assert doc["IPv6DefaultGateway"] == "fd00::1" and len(doc["IPv6Addresses"]) == 7
    assert doc["NameServers"] == ["192.0.2.53"] and (doc["HostName"], doc["FQDN"]) == ("rack", "rack.example")
    veth = mn.interface_doc("RMC", mn.read_interface("veth1", str(net), str(proc), str(resolv),
                                                     ipv4=lambda n: ("169.254.3.4", "255.255.0.0")), "r", "r")
    assert (veth["EthernetInterfaceType"], veth["InterfaceEnabled"], veth["LinkStatus"], veth["SpeedMbps"]) == \
        ("Virtual", False, "NoLink", None)
    assert veth["IPv4Addresses"] == [{"Address": "169.254.3.4", "SubnetMask": "255.255.0.0",
                                      "AddressOrigin": "IPv4LinkLocal", "Gateway": None}]
    assert veth["Status"]["State"] == "Disabled"


# -- Reset -----------------------------------------------------------------------------

def test_bmc_reset(server):
    c = server.client()
    url = server.url + "/redfish/v1/Managers/Unit1-BMC"
    t0 = time.time()
    for reset_type in ("ForceRestart", "GracefulRestart", None):
        body = {} if reset_type is None else {"ResetType": reset_type}  # no type: GracefulRestart
        r = c.post(url + "/Actions/Manager.Reset", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["@Message.ExtendedInfo"][0]["MessageId"].endswith(".Success")
        last = dt.datetime.fromisoformat(c.get(url).json()["LastResetTime"]).timestamp()
        assert t0 - 1 <= last <= time.time() + 1
    assert "LastResetTime" not in c.get(server.url + "/redfish/v1/Managers/Unit2-BMC").json()


@pytest.mark.parametrize("body,status,msg_id", [
    ({"ResetType": "On"}, 400, "ActionParameterValueNotInList"),
    ({"ResetType": "ForceOff"}, 400, "ActionParameterValueNotInList"),
    ({"ResetType": 3}, 400, "ActionParameterValueTypeError"),
    ({"ResetType": "ForceRestart", "Now": True}, 400, "ActionParameterUnknown"),
])
@pytest.mark.parametrize("manager", ["RMC", "Unit2-BMC"])
def test_bad_manager_reset(server, manager, body, status, msg_id):
    c = server.client()
    url = server.url + f"/redfish/v1/Managers/{manager}"
    r = c.post(url + "/Actions/Manager.Reset", json=body)
    assert r.status_code == status and ids(r) == [msg_id]
    assert "LastResetTime" not in c.get(url).json()


def test_absent_bmc_cannot_be_reset(server):
    c = server.client()
    r = c.post(server.url + "/redfish/v1/Managers/Unit5-BMC/Actions/Manager.Reset", json={"ResetType": "ForceRestart"})
    assert r.status_code == 409 and ids(r) == ["ActionParameterValueConflict"]
    assert "absent" in r.json()["error"]["@Message.ExtendedInfo"][0]["Resolution"]
    assert "LastResetTime" not in c.get(server.url + "/redfish/v1/Managers/Unit5-BMC").json()
    r = c.post(server.url + "/redfish/v1/Managers/Unit9-BMC/Actions/Manager.Reset", json={"ResetType": "ForceRestart"})
    assert r.status_code == 404




def restart_rmc_and_watch(srv) -> tuple[set[int], list]:
    """GracefulRestart the RMC; poll on new connections until both workers are new ones.
    Returns the agent's pid and what each poll got (a status code or the exception)."""
    agent = {p for p, cmd in children(srv.proc.pid).items() if " agent " in cmd + " "}
    workers = api_workers(srv)
    assert len(agent) == 1 and len(workers) == 2
    r = srv.client().post(srv.url + f"{RMC}/Actions/Manager.Reset", json={"ResetType": "GracefulRestart"})
    assert r.status_code == 200 and r.json()["@Message.ExtendedInfo"][0]["MessageId"].endswith(".Success")
    answers: list = []

    def replaced():
        try:
            with requests.Session() as s:  # a new connection each time: any worker may take it
                s.verify, s.trust_env, s.auth = srv.ca, False, ("admin", srv.password)
                answers.append(s.get(srv.url + RMC, timeout=10).status_code)
        except requests.ConnectionError as e:
            answers.append(e)
        now = api_workers(srv)
        return len(now) == 2 and not (now & workers)

    wait_for(replaced, timeout=30)
    return agent, answers


def test_rmc_restart_replaces_the_workers(fresh_server):
    srv = fresh_server(workers=2)
    agent, answers = restart_rmc_and_watch(srv)
    assert 200 in answers
    assert srv.get(RMC).status_code == 200  # the new workers serve
    assert agent <= set(children(srv.proc.pid))  # the agent was not restarted
    assert srv.proc.poll() is None


def test_rmc_restart_leaves_the_rack_running(fresh_server):
    """A manager reset restarts the management service, never the hosts. (Connections in
    flight may be reset meanwhile, as on any BMC that reboots: clients reconnect.)"""
    srv = fresh_server(workers=2)
    before = {s["Id"]: s["PowerState"] for s in srv.get("/redfish/v1/Systems?$expand=.").json()["Members"]}
    restart_rmc_and_watch(srv)
    after = {s["Id"]: s["PowerState"] for s in srv.get("/redfish/v1/Systems?$expand=.").json()["Members"]}
    assert after == before and "On" in after.values()


def test_privileges(fresh_server):
    from redfish_racklet import auth
    from redfish_racklet.store import Store
    srv = fresh_server(workers=1)
    st = Store(str(srv.state_dir / "racklet.db"))
    st.add_account("viewer", auth.hash_password("viewer-password-1"), "ReadOnly")
    st.add_account("operator", auth.hash_password("operator-password-1"), "Operator")
    workers = set(children(srv.proc.pid))
    for user in (("viewer", "viewer-password-1"), ("operator", "operator-password-1")):
        c = srv.client(auth=user)
        assert c.get(srv.url + RMC).status_code == 200
        for manager in ("RMC", "Unit1-BMC"):
            r = c.post(srv.url + f"/redfish/v1/Managers/{manager}/Actions/Manager.Reset",
                       json={"ResetType": "GracefulRestart"})
            assert r.status_code == 403 and ids(r) == ["InsufficientPrivilege"], (user, manager)
            r = c.patch(srv.url + f"/redfish/v1/Managers/{manager}/NetworkProtocol", json={"HostName": "x"})
            assert r.status_code == 403 and ids(r) == ["InsufficientPrivilege"]
        names = ethernet_names()
        if names:
            r = c.patch(srv.url + f"{RMC}/EthernetInterfaces/{names[0]}", json={"HostName": "x"})
            assert r.status_code == 403
    assert "bmc_reset" not in st.settings("Unit1")
    assert set(children(srv.proc.pid)) == workers  # nothing was restarted
