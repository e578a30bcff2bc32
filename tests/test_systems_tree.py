"""Systems/UnitN beyond power: inventory (processor, memory, NIC, storage), the identify
LED and the boot override, against the DMTF schemas, with every kind of bad PATCH."""

from __future__ import annotations

import json

import pytest

from redfish_racklet.resources import system_parts, systems
from redfish_racklet.store import Store

from .conftest import ids, shared_or_skip, wait_for

UNIT = "Unit2"
SYSTEM = f"/redfish/v1/Systems/{UNIT}"




def store_of(server) -> Store:
    return Store(str(server.state_dir / "racklet.db"))


def schema(name: str) -> dict:
    return json.loads(shared_or_skip("redfish", "json-schema", f"{name}.json").read_text())["definitions"]




@pytest.fixture
def client(server):
    """An admin client; the unit's LED and boot override are put back afterwards."""
    c = server.client()
    yield c
    st = store_of(server)
    st.set_setting(UNIT, "led", "Off")
    st.set_setting(UNIT, "boot", systems.BOOT_DEFAULT)


@pytest.fixture
def unchanged(server, client):
    """After a refused PATCH: the resource and the unit's settings did not move."""
    before = client.get(server.url + SYSTEM).json()
    settings = store_of(server).settings(UNIT)
    yield client
    after = client.get(server.url + SYSTEM).json()
    for key in ("AssetTag", "IndicatorLED", "LocationIndicatorActive", "Boot"):
        assert after[key] == before[key], key
    assert store_of(server).settings(UNIT) == settings


# -- what the service serves is in the DMTF schemas ------------------------------------

def test_enums_served_are_in_the_dmtf_schemas():
    cs = schema("ComputerSystem.v1_27_0")
    assert set(systems.BOOT_TARGETS) <= set(schema("ComputerSystem")["BootSource"]["enum"])
    assert set(systems.BOOT_ENABLED) == set(cs["BootSourceOverrideEnabled"]["enum"])
    assert set(systems.BOOT_MODES) == set(cs["BootSourceOverrideMode"]["enum"])
    assert set(systems.LED_STATES) == set(cs["IndicatorLED"]["enum"]) - {"Unknown"}
    proc = schema("Processor.v1_22_0")
    assert set(system_parts.ARCHITECTURE) <= set(proc["InstructionSet"]["enum"])
    assert set(system_parts.ARCHITECTURE.values()) <= set(proc["ProcessorArchitecture"]["enum"])
    media = {m for m, _ in system_parts.MEDIA.values()}
    assert media <= set(schema("Drive.v1_22_0")["MediaType"]["enum"])
    protocols = {p for _, p in system_parts.MEDIA.values()} - {None}
    assert protocols <= set(schema("Protocol")["Protocol"]["enum"])


def test_system_shape(server):
    doc = server.get("/redfish/v1/Systems/Unit1").json()
    assert doc["PartNumber"] == doc["SKU"] == "SC0194" and doc["BiosVersion"] == "2024-04-15"
    assert doc["IndicatorLED"] in systems.LED_STATES and isinstance(doc["LocationIndicatorActive"], bool)
    assert doc["Links"]["ManagedBy"] == [{"@odata.id": "/redfish/v1/Managers/Unit1-BMC"}]
    assert doc["Links"]["Chassis"] == [{"@odata.id": "/redfish/v1/Chassis/Unit1"}]
    boot = doc["Boot"]
    assert boot["BootSourceOverrideTarget@Redfish.AllowableValues"] == \
        ["None", "Pxe", "UefiHttp", "Hdd", "SDCard", "Usb"]
    assert boot["BootSourceOverrideEnabled@Redfish.AllowableValues"] == ["Disabled", "Once", "Continuous"]
    assert set(boot) >= {"BootSourceOverrideTarget", "BootSourceOverrideEnabled", "BootSourceOverrideMode",
                         "HttpBootUri", "UefiTargetBootSourceOverride"}
    assert doc["ProcessorSummary"] == {"Count": 1, "CoreCount": 4, "LogicalProcessorCount": 4,
                                       "Model": "Broadcom BCM2711 (Cortex-A72)",
                                       "Status": {"State": "Enabled", "Health": "OK"}}
    assert doc["MemorySummary"]["TotalSystemMemoryGiB"] == 4
    for link in ("Processors", "EthernetInterfaces", "Storage", "SimpleStorage"):
        assert doc[link] == {"@odata.id": f"/redfish/v1/Systems/Unit1/{link}"}
        assert server.get(doc[link]["@odata.id"]).json()["Members@odata.count"] == 1


def test_processor_nic_and_storage(server):
    c = server.client()
    base = server.url + "/redfish/v1/Systems/Unit1"
    cpu = c.get(base + "/Processors/CPU0").json()
    assert (cpu["ProcessorType"], cpu["ProcessorArchitecture"], cpu["InstructionSet"]) == ("CPU", "ARM", "ARM-A64")
    assert (cpu["TotalCores"], cpu["TotalThreads"], cpu["MaxSpeedMHz"]) == (4, 4, 1500)
    assert cpu["Manufacturer"] == "Broadcom" and cpu["Status"]["State"] == "Enabled"

    wait_for(lambda: c.get(base).json()["PowerState"] == "On")
    nic = c.get(base + "/EthernetInterfaces/eth0").json()
    assert nic["MACAddress"] == nic["PermanentMACAddress"] == "02:52:4b:00:07:01"  # seed 7, slot 1
    assert (nic["LinkStatus"], nic["SpeedMbps"], nic["InterfaceEnabled"]) == ("LinkUp", 1000, True)

    storage = c.get(base + "/Storage/1").json()
    drive = c.get(server.url + storage["Drives"][0]["@odata.id"]).json()
    assert (drive["MediaType"], drive["CapacityBytes"]) == ("SSD", 32 * 1024 ** 3)
    assert "Protocol" not in drive  # Redfish has no SD protocol; nothing is better than a wrong one
    simple = c.get(base + "/SimpleStorage/1").json()
    assert simple["Devices"][0]["CapacityBytes"] == 32 * 1024 ** 3

    for uri in ("/Processors/CPU1", "/EthernetInterfaces/eth1", "/Storage/2", "/Storage/1/Drives/Drive1",
                "/SimpleStorage/2"):
        r = c.get(base + uri)
        assert r.status_code == 404 and ids(r) == ["ResourceNotFound"], uri
    r = c.get(server.url + "/redfish/v1/Systems/Unit9/Processors")
    assert r.status_code == 404


def test_nic_link_follows_power(server):
    c = server.client()
    base = server.url + "/redfish/v1/Systems/Unit3"
    wait_for(lambda: c.get(base).json()["PowerState"] == "On")
    reset = base + "/Actions/ComputerSystem.Reset"
    assert c.post(reset, json={"ResetType": "ForceOff"}).status_code == 200
    try:
        nic = c.get(base + "/EthernetInterfaces/eth0").json()
        assert (nic["LinkStatus"], nic["SpeedMbps"]) == ("LinkDown", None)
        assert nic["Status"]["State"] == "Enabled"  # still there (Ironic inspects units that are off)
    finally:
        assert c.post(reset, json={"ResetType": "On"}).status_code == 200
        wait_for(lambda: c.get(base).json()["PowerState"] == "On")


def test_absent_unit_parts_are_absent(server):
    c = server.client()
    base = server.url + "/redfish/v1/Systems/Unit5"
    assert c.get(base).json()["Status"] == {"State": "Absent"}
    for uri in ("/Processors/CPU0", "/EthernetInterfaces/eth0", "/Storage/1", "/Storage/1/Drives/Drive0",
                "/SimpleStorage/1"):
        assert c.get(base + uri).json()["Status"] == {"State": "Absent"}, uri
    assert c.get(base + "/EthernetInterfaces/eth0").json()["LinkStatus"] == "NoLink"


# -- the identify LED ------------------------------------------------------------------

def test_led_both_ways_and_in_settings(server, client):
    url = server.url + SYSTEM
    r = client.patch(url, json={"IndicatorLED": "Lit"})
    assert r.status_code == 200 and (r.json()["IndicatorLED"], r.json()["LocationIndicatorActive"]) == ("Lit", True)
    assert store_of(server).settings(UNIT)["led"] == "Lit"
    r = client.patch(url, json={"LocationIndicatorActive": False})
    assert (r.json()["IndicatorLED"], r.json()["LocationIndicatorActive"]) == ("Off", False)
    assert store_of(server).settings(UNIT)["led"] == "Off"
    r = client.patch(url, json={"LocationIndicatorActive": True})
    assert r.json()["IndicatorLED"] == "Lit"
    r = client.patch(url, json={"IndicatorLED": "Blinking", "LocationIndicatorActive": True})
    assert (r.json()["IndicatorLED"], r.json()["LocationIndicatorActive"]) == ("Blinking", True)
    # the other way: what the settings hold is what the system shows
    store_of(server).set_setting(UNIT, "led", "Off")
    doc = client.get(url).json()
    assert (doc["IndicatorLED"], doc["LocationIndicatorActive"]) == ("Off", False)
    store_of(server).set_setting(UNIT, "led", "Blinking")
    assert client.get(url).json()["LocationIndicatorActive"] is True


# -- the boot override -------------------------------------------------------------------

def test_boot_continuous_and_once_are_kept(server, client):
    url = server.url + SYSTEM
    r = client.patch(url, json={"Boot": {"BootSourceOverrideTarget": "Pxe",
                                         "BootSourceOverrideEnabled": "Continuous"}})
    assert r.status_code == 200
    assert (r.json()["Boot"]["BootSourceOverrideTarget"], r.json()["Boot"]["BootSourceOverrideEnabled"]) == \
        ("Pxe", "Continuous")
    assert store_of(server).settings(UNIT)["boot"] == {"target": "Pxe", "enabled": "Continuous",
                                                       "mode": "UEFI", "uri": ""}
    # a partial Boot keeps the rest
    r = client.patch(url, json={"Boot": {"BootSourceOverrideMode": "Legacy"}})
    assert store_of(server).settings(UNIT)["boot"] == {"target": "Pxe", "enabled": "Continuous",
                                                       "mode": "Legacy", "uri": ""}
    # annotations echoed back from a GET are ignored, not refused
    boot = dict(client.get(url).json()["Boot"])
    boot = {k: v for k, v in boot.items() if "@" in k}
    boot["BootSourceOverrideTarget"] = "Usb"
    assert client.patch(url, json={"Boot": boot}).json()["Boot"]["BootSourceOverrideTarget"] == "Usb"

    # Once is kept until the unit has booted, then the agent clears it
    r = client.patch(url, json={"Boot": {"BootSourceOverrideTarget": "Hdd", "BootSourceOverrideEnabled": "Once",
                                         "BootSourceOverrideMode": "UEFI"}})
    assert r.json()["Boot"]["BootSourceOverrideEnabled"] == "Once"
    assert client.get(url).json()["Boot"]["BootSourceOverrideEnabled"] == "Once"
    wait_for(lambda: client.get(url).json()["PowerState"] == "On")
    assert client.post(url + "/Actions/ComputerSystem.Reset", json={"ResetType": "ForceRestart"}).status_code == 200
    wait_for(lambda: client.get(url).json()["Boot"]["BootSourceOverrideEnabled"] == "Disabled")
    assert client.get(url).json()["Boot"]["BootSourceOverrideTarget"] == "Hdd"
    wait_for(lambda: client.get(url).json()["PowerState"] == "On")


def test_http_boot_uri_https_only(server, client):
    url = server.url + SYSTEM
    r = client.patch(url, json={"Boot": {"BootSourceOverrideTarget": "UefiHttp",
                                         "HttpBootUri": "https://boot.example/efi/boot.efi"}})
    assert r.status_code == 200, r.text
    assert r.json()["Boot"]["HttpBootUri"] == "https://boot.example/efi/boot.efi"
    assert store_of(server).settings(UNIT)["boot"]["uri"] == "https://boot.example/efi/boot.efi"
    # the stored URI serves a later UefiHttp target
    client.patch(url, json={"Boot": {"BootSourceOverrideTarget": "Pxe"}})
    assert client.patch(url, json={"Boot": {"BootSourceOverrideTarget": "UefiHttp"}}).status_code == 200
    # moving away from UefiHttp and clearing the URI in one request is fine
    r = client.patch(url, json={"Boot": {"BootSourceOverrideTarget": "None", "HttpBootUri": None}})
    assert r.status_code == 200 and r.json()["Boot"]["HttpBootUri"] is None


@pytest.mark.parametrize("uri,msg_id", [
    ("http://boot.example/boot.efi", "PropertyValueIncorrect"),
    ("HTTP://boot.example/boot.efi", "PropertyValueIncorrect"),
    ("tftp://10.0.0.1/boot.efi", "PropertyValueIncorrect"),
    ("ftp://boot.example/boot.efi", "PropertyValueIncorrect"),
    ("file:///boot.efi", "PropertyValueIncorrect"),
    ("not a uri", "PropertyValueFormatError"),
    ("boot.example/boot.efi", "PropertyValueFormatError"),
    ("https://", "PropertyValueFormatError"),
    ("https//boot.example/x", "PropertyValueFormatError"),
    ("https://boot example/x", "PropertyValueFormatError"),
    ("https://boot.example:99999/x", "PropertyValueFormatError"),
    ("https://[::1/x", "PropertyValueFormatError"),
    (42, "PropertyValueTypeError"),
    (["https://boot.example/x"], "PropertyValueTypeError"),
    ("https://boot.example/" + "a" * 2048, "StringValueTooLong"),
])
def test_bad_http_boot_uri(server, unchanged, uri, msg_id):
    r = unchanged.patch(server.url + SYSTEM, json={"Boot": {"BootSourceOverrideTarget": "UefiHttp",
                                                            "HttpBootUri": uri}})
    assert r.status_code == 400 and ids(r) == [msg_id], r.text


def test_uefi_http_needs_a_uri(server, unchanged):
    url = server.url + SYSTEM
    r = unchanged.patch(url, json={"Boot": {"BootSourceOverrideTarget": "UefiHttp"}})
    assert r.status_code == 400 and ids(r) == ["PropertyMissing"]
    assert "Boot/HttpBootUri" in r.json()["error"]["@Message.ExtendedInfo"][0]["Message"]
    r = unchanged.patch(url, json={"Boot": {"BootSourceOverrideTarget": "UefiHttp", "HttpBootUri": ""}})
    assert r.status_code == 400 and ids(r) == ["PropertyValueConflict"]


def test_clearing_the_uri_of_a_uefi_http_target_conflicts(server, client):
    url = server.url + SYSTEM
    assert client.patch(url, json={"Boot": {"BootSourceOverrideTarget": "UefiHttp",
                                            "HttpBootUri": "https://boot.example/a.efi"}}).status_code == 200
    for empty in (None, ""):
        r = client.patch(url, json={"Boot": {"HttpBootUri": empty}})
        assert r.status_code == 400 and ids(r) == ["PropertyValueConflict"]
    assert client.get(url).json()["Boot"]["HttpBootUri"] == "https://boot.example/a.efi"


@pytest.mark.parametrize("body,msg_ids", [
    ({"Boot": {"Bogus": 1}}, ["PropertyUnknown"]),
    ({"Boot": {"BootNext": "0001"}}, ["PropertyUnknown"]),
    ({"Boot": {"UefiTargetBootSourceOverride": "PciRoot(0x0)"}}, ["PropertyNotWritable"]),
    ({"Boot": {"BootSourceOverrideTarget": "Cd"}}, ["PropertyValueNotInList"]),
    ({"Boot": {"BootSourceOverrideTarget": "pxe"}}, ["PropertyValueNotInList"]),
    ({"Boot": {"BootSourceOverrideTarget": None}}, ["PropertyValueTypeError"]),
    ({"Boot": {"BootSourceOverrideEnabled": "Always"}}, ["PropertyValueNotInList"]),
    ({"Boot": {"BootSourceOverrideEnabled": True}}, ["PropertyValueTypeError"]),
    ({"Boot": {"BootSourceOverrideMode": "BIOS"}}, ["PropertyValueNotInList"]),
    ({"Boot": {"BootSourceOverrideMode": 1}}, ["PropertyValueTypeError"]),
    ({"Boot": "Pxe"}, ["PropertyValueTypeError"]),
    ({"Boot": ["Pxe"]}, ["PropertyValueTypeError"]),
    ({"Boot": None}, ["PropertyValueTypeError"]),
    ({"IndicatorLED": "Unknown"}, ["PropertyValueNotInList"]),
    ({"IndicatorLED": "On"}, ["PropertyValueNotInList"]),
    ({"IndicatorLED": True}, ["PropertyValueTypeError"]),
    ({"LocationIndicatorActive": 1}, ["PropertyValueTypeError"]),
    ({"LocationIndicatorActive": "true"}, ["PropertyValueTypeError"]),
    ({"LocationIndicatorActive": None}, ["PropertyValueTypeError"]),
    ({"IndicatorLED": "Off", "LocationIndicatorActive": True}, ["PropertyValueConflict"]),
    ({"PartNumber": "x"}, ["PropertyNotWritable"]),
    ({"ProcessorSummary": {"Count": 2}}, ["PropertyNotWritable"]),
    # one bad part refuses the whole request, and every problem is listed
    ({"IndicatorLED": "Lit", "Boot": {"BootSourceOverrideTarget": "Pxe", "Bogus": 1}}, ["PropertyUnknown"]),
    ({"Bogus": 1, "Boot": {"BootSourceOverrideTarget": "Floppy", "BootSourceOverrideMode": 3}},
     ["PropertyUnknown", "PropertyValueNotInList", "PropertyValueTypeError"]),
    ({"Boot": {}}, ["NoOperation"]),
    ({"Boot": {"BootSourceOverrideTarget@Redfish.AllowableValues": []}}, ["NoOperation"]),
])
def test_bad_patch_changes_nothing(server, unchanged, body, msg_ids):
    r = unchanged.patch(server.url + SYSTEM, json=body)
    assert r.status_code == 400, r.text
    assert sorted(ids(r)) == sorted(msg_ids)
    assert "Traceback" not in r.text


def test_nested_errors_name_their_path(server, unchanged):
    r = unchanged.patch(server.url + SYSTEM, json={"Boot": {"Bogus": 1}})
    info = r.json()["error"]["@Message.ExtendedInfo"][0]
    assert info["MessageArgs"] == ["Boot/Bogus"] and info["RelatedProperties"] == ["#/Boot/Bogus"]


def test_privileges(fresh_server):
    from redfish_racklet import auth
    srv = fresh_server(workers=1)
    st = store_of(srv)
    st.add_account("viewer", auth.hash_password("viewer-password-1"), "ReadOnly")
    st.add_account("operator", auth.hash_password("operator-password-1"), "Operator")
    url = srv.url + "/redfish/v1/Systems/Unit1"
    ro = srv.client(auth=("viewer", "viewer-password-1"))
    for body in ({"IndicatorLED": "Lit"}, {"LocationIndicatorActive": True},
                 {"Boot": {"BootSourceOverrideTarget": "Pxe"}}):
        r = ro.patch(url, json=body)
        assert r.status_code == 403 and ids(r) == ["InsufficientPrivilege"]
    assert "led" not in st.settings("Unit1") and "boot" not in st.settings("Unit1")
    # ConfigureComponents is enough for a system: an Operator may
    op = srv.client(auth=("operator", "operator-password-1"))
    r = op.patch(url, json={"IndicatorLED": "Blinking", "Boot": {"BootSourceOverrideTarget": "Pxe"}})
    assert r.status_code == 200
    assert st.settings("Unit1")["led"] == "Blinking" and st.settings("Unit1")["boot"]["target"] == "Pxe"


# -- pure functions ------------------------------------------------------------------------

@pytest.mark.parametrize("uri,expected", [
    (None, None), ("", None), ("https://h/x", None), ("https://10.0.0.1:8443/b.efi", None),
    ("https://[fd00::1]/b.efi", None), ("http://h/x", "PropertyValueIncorrect"),
    ("tftp://h/x", "PropertyValueIncorrect"), ("x", "PropertyValueFormatError"),
    ("https:///x", "PropertyValueFormatError"), (1.5, "PropertyValueTypeError"),
])
def test_http_boot_uri_problem(uri, expected):
    assert systems.http_boot_uri_problem(uri) == expected
