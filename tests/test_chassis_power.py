"""Chassis power and thermal on a live server: the budget and PowerLimit, the LED, the
legacy Power/Thermal beside PowerSubsystem, ThermalSubsystem, EnvironmentMetrics,
Controls and Sensors — every view of a reading showing the same number."""

from __future__ import annotations

import json

import pytest

from redfish_racklet.auth import hash_password
from redfish_racklet.store import Store

from .conftest import TEST_MANIFEST, ids, module_server, shared_or_skip, wait_for

CHASSIS = "/redfish/v1/Chassis"
UNITS = ("Unit1", "Unit2", "Unit3", "Unit4")  # present in the test manifest; Unit5 is an empty tray
MAX_WATTS = 7.0        # the manifest default per unit
SUPPLY_WATTS = 60.0    # the manifest default supply
RESET = "/redfish/v1/Systems/{}/Actions/ComputerSystem.Reset"
DEADLINE = 15.0


# The test rack, sampled once a second: time to read a dozen views between two sweeps.
MANIFEST = TEST_MANIFEST.replace("sample_seconds: 0.2", "sample_seconds: 1.0")


@pytest.fixture(scope="module")
def rack(tmp_path_factory):
    """A server of this module's own: these tests change the power limit and the LEDs."""
    assert MANIFEST != TEST_MANIFEST
    yield from module_server(tmp_path_factory, "chassis-power", manifest_text=MANIFEST)


_CLIENTS: dict = {}


def get(srv, path: str) -> dict:
    """GET as admin over one kept-alive connection per server."""
    c = _CLIENTS.get(srv.port) or _CLIENTS.setdefault(srv.port, srv.client())
    r = c.get(srv.url + path)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def db(srv) -> Store:
    return Store(str(srv.state_dir / "racklet.db"))






def snapshot(srv, paths: list[str], stamp: str) -> dict[str, dict]:
    """GET ``paths`` between two reads of an energy Sensor (``stamp``) that agree: no
    sampling sweep landed in between, so every document shows the same sweep."""
    c = srv.client()

    def attempt():
        before = c.get(srv.url + stamp).json()
        docs = {p: c.get(srv.url + p).json() for p in paths}
        after = c.get(srv.url + stamp).json()
        same = (before["Reading"], before.get("ReadingTime")) == (after["Reading"], after.get("ReadingTime"))
        return docs if same else None

    return wait_for(attempt, "a quiet moment between two sampling sweeps")


def wait_for_rack_readings(srv) -> None:
    """The agent writes the busbar's readings (readings('Rack')); wait, bounded, for them."""
    wait_for(lambda: get(srv, f"{CHASSIS}/Rack/Sensors/Power")["Reading"] is not None,
             "the agent's readings of the busbar (readings('Rack'))")


def systems_states(srv) -> dict[str, str]:
    return {u: get(srv, f"/redfish/v1/Systems/{u}")["PowerState"] for u in UNITS + ("Unit5",)}


def wait_for_state(srv, unit: str, wanted: str) -> None:
    wait_for(lambda: get(srv, f"/redfish/v1/Systems/{unit}")["PowerState"] == wanted, f"{unit} {wanted}")


# -- enums: every value served is one the DMTF schema lists ------------------------------

def _enum(file: str, definition: str) -> set:
    path = shared_or_skip("redfish", "json-schema", file)
    return set(json.loads(path.read_text())["definitions"][definition]["enum"])


def enums() -> dict[str, set]:
    """Property name -> allowed values, for the properties these resources serve."""
    return {
        "ChassisType": _enum("Chassis.v1_28_0.json", "ChassisType"),
        "IndicatorLED": _enum("Resource.json", "IndicatorLED"),
        "PowerState": _enum("Resource.json", "PowerState"),
        "State": _enum("Resource.json", "State"),
        "Health": _enum("Resource.json", "Health"),
        "PhysicalContext": _enum("PhysicalContext.json", "PhysicalContext"),
        "ReadingType": _enum("Sensor.v1_12_0.json", "ReadingType"),
        "Implementation": _enum("Sensor.v1_12_0.json", "ImplementationType")
        | _enum("Control.v1_7_0.json", "ImplementationType"),
        "Activation": _enum("Sensor.v1_12_0.json", "ThresholdActivation"),
        "ControlType": _enum("Control.v1_7_0.json", "ControlType"),
        "ControlMode": _enum("Control.v1_7_0.json", "ControlMode"),
        "SetPointType": _enum("Control.v1_7_0.json", "SetPointType"),
        "LimitException": _enum("Power.v1_7_3.json", "PowerLimitException"),
        "ReadingUnits": _enum("Thermal.v1_7_3.json", "ReadingUnits") | {"W", "V", "A", "Cel", "J", "kW.h", "%"},
        "OutputNominalVoltageType": _enum("Circuit.json", "NominalVoltageType"),
        "NominalVoltage": _enum("Circuit.json", "NominalVoltageType"),
        "EquipmentType": _enum("PowerDistribution.v1_6_0.json", "PowerEquipmentType"),
        "OutletType": _enum("Outlet.json", "ReceptacleType"),
        "VoltageType": _enum("Outlet.v1_4_4.json", "VoltageType"),
        "PowerRestorePolicy": _enum("Circuit.json", "PowerRestorePolicyTypes"),
    }


def check_enums(doc, allowed: dict[str, set], where: str = "") -> int:
    """Every enum-valued property anywhere in ``doc`` holds an allowed value; returns how many."""
    n = 0
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in allowed and isinstance(value, str):
                assert value in allowed[key], f"{where}/{key}: {value!r}"
                n += 1
            n += check_enums(value, allowed, f"{where}/{key}")
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            n += check_enums(item, allowed, f"{where}/{i}")
    return n


def chassis_tree(srv, chassis_id: str) -> dict[str, dict]:
    base = f"{CHASSIS}/{chassis_id}"
    paths = [base, f"{base}/Power", f"{base}/Thermal", f"{base}/PowerSubsystem", f"{base}/ThermalSubsystem",
             f"{base}/ThermalSubsystem/ThermalMetrics", f"{base}/EnvironmentMetrics", f"{base}/Controls",
             f"{base}/Sensors"]
    docs = {p: get(srv, p) for p in paths}
    for coll in (f"{base}/Sensors", f"{base}/Controls"):
        for m in docs[coll]["Members"]:
            docs[m["@odata.id"]] = get(srv, m["@odata.id"])
    return docs


def test_every_chassis_link_resolves_to_its_type(rack):
    types = {"Power": "Power", "Thermal": "Thermal", "PowerSubsystem": "PowerSubsystem",
             "ThermalSubsystem": "ThermalSubsystem", "EnvironmentMetrics": "EnvironmentMetrics",
             "Sensors": "SensorCollection", "Controls": "ControlCollection"}
    for cid in ("Rack",) + UNITS + ("Unit5",):
        doc = get(rack, f"{CHASSIS}/{cid}")
        for prop, type_name in types.items():
            target = get(rack, doc[prop]["@odata.id"])
            assert target["@odata.type"].lstrip("#").split(".")[0] == type_name, (cid, prop)
    rack_doc = get(rack, f"{CHASSIS}/Rack")
    assert rack_doc["ChassisType"] == "Rack" and rack_doc["PowerState"] == "On"
    assert "IndicatorLED" not in rack_doc and "LocationIndicatorActive" not in rack_doc  # the rack has no LED
    assert rack_doc["Links"]["ManagedBy"] == [{"@odata.id": "/redfish/v1/Managers/RMC"}]
    assert rack_doc["Links"]["PowerDistribution"]["@odata.id"].endswith("/ElectricalBuses/Busbar")
    assert len(rack_doc["Links"]["ComputerSystems"]) == 5
    supply = get(rack, f"{CHASSIS}/Rack/PowerSubsystem/PowerSupplies")
    assert [m["@odata.id"].rsplit("/", 1)[1] for m in supply["Members"]] == ["Feed"]
    feed = get(rack, supply["Members"][0]["@odata.id"])
    assert feed["PowerCapacityWatts"] == SUPPLY_WATTS and feed["OutputNominalVoltageType"] == "DC5V"

    tray = get(rack, f"{CHASSIS}/Unit1")
    assert tray["ChassisType"] == "Sled"
    assert tray["Links"]["ManagedBy"] == [{"@odata.id": "/redfish/v1/Managers/Unit1-BMC"}]
    outlet = {"@odata.id": "/redfish/v1/PowerEquipment/ElectricalBuses/Busbar/Outlets/Unit1"}
    assert tray["Links"]["PoweredBy"] == [outlet] and tray["Links"]["PowerOutlets"] == [outlet]
    assert tray["PartNumber"] == "SC0194" and tray["SKU"] == "SC0194"
    assert tray["MaxPowerWatts"] == MAX_WATTS
    assert tray["PowerState"] == "On" and tray["IndicatorLED"] in ("Off", "Lit", "Blinking")
    absent = get(rack, f"{CHASSIS}/Unit5")
    assert absent["Status"]["State"] == "Absent" and absent["PowerState"] == "Off"


def test_enum_values_are_in_the_dmtf_schemas(rack):
    wait_for_rack_readings(rack)
    allowed = enums()
    checked = 0
    for cid in ("Rack", "Unit1", "Unit5"):
        for path, doc in chassis_tree(rack, cid).items():
            checked += check_enums(doc, allowed, path)
    assert checked > 100


def test_unknown_chassis_and_parts_are_404(rack):
    c = rack.client()
    for path in (f"{CHASSIS}/Unit9/Power", f"{CHASSIS}/Unit9/Thermal", f"{CHASSIS}/Unit9/EnvironmentMetrics",
                 f"{CHASSIS}/Unit9/Controls", f"{CHASSIS}/Unit1/PowerSubsystem/PowerSupplies",
                 f"{CHASSIS}/Rack/PowerSubsystem/PowerSupplies/PSU2", f"{CHASSIS}/Unit1/ThermalSubsystem/Fans",
                 f"{CHASSIS}/Rack/ThermalSubsystem/Fans/Fan2", f"{CHASSIS}/Rack/Controls/Nope",
                 f"{CHASSIS}/Unit1/Controls/PowerLimit", f"{CHASSIS}/Rack/Sensors/Humidity"):
        assert c.get(rack.url + path).status_code == 404, path


# -- the LED ---------------------------------------------------------------------------------

def test_led_set_on_the_chassis_is_the_units_setting(rack):
    c = rack.client()
    uri = rack.url + f"{CHASSIS}/Unit2"
    try:
        for body, led, active in (({"IndicatorLED": "Blinking"}, "Blinking", True),
                                  ({"LocationIndicatorActive": False}, "Off", False),
                                  ({"LocationIndicatorActive": True}, "Lit", True),
                                  ({"IndicatorLED": "Off", "LocationIndicatorActive": False}, "Off", False),
                                  ({"IndicatorLED": "Lit"}, "Lit", True)):
            r = c.patch(uri, json=body)
            assert r.status_code == 200, r.text
            assert (r.json()["IndicatorLED"], r.json()["LocationIndicatorActive"]) == (led, active)
            assert db(rack).settings("Unit2")["led"] == led
            system = get(rack, "/redfish/v1/Systems/Unit2")
            if "IndicatorLED" in system:  # the ComputerSystem shows the same LED
                assert (system["IndicatorLED"], system["LocationIndicatorActive"]) == (led, active)
        # ...and what is set elsewhere (the System, i.e. the setting) shows on the Chassis.
        db(rack).set_setting("Unit2", "led", "Blinking")
        doc = get(rack, f"{CHASSIS}/Unit2")
        assert (doc["IndicatorLED"], doc["LocationIndicatorActive"]) == ("Blinking", True)
    finally:
        db(rack).set_setting("Unit2", "led", "Off")


def test_asset_tag_is_shared_with_the_system(rack):
    c = rack.client()
    try:
        r = c.patch(rack.url + f"{CHASSIS}/Unit3", json={"AssetTag": "lab-3"})
        assert r.status_code == 200 and r.json()["AssetTag"] == "lab-3"
        assert get(rack, "/redfish/v1/Systems/Unit3")["AssetTag"] == "lab-3"
    finally:
        c.patch(rack.url + f"{CHASSIS}/Unit3", json={"AssetTag": ""})


@pytest.mark.parametrize("body,msg_id", [
    ({"IndicatorLED": "On"}, "PropertyValueNotInList"),
    ({"IndicatorLED": "Unknown"}, "PropertyValueNotInList"),
    ({"IndicatorLED": 1}, "PropertyValueTypeError"),
    ({"IndicatorLED": None}, "PropertyValueTypeError"),
    ({"LocationIndicatorActive": "true"}, "PropertyValueTypeError"),
    ({"LocationIndicatorActive": 1}, "PropertyValueTypeError"),
    ({"LocationIndicatorActive": None}, "PropertyValueTypeError"),
    ({"IndicatorLED": "Lit", "LocationIndicatorActive": False}, "PropertyValueConflict"),
    ({"IndicatorLED": "Off", "LocationIndicatorActive": True}, "PropertyValueConflict"),
    ({"AssetTag": "x" * 64}, "StringValueTooLong"),
    ({"AssetTag": 7}, "PropertyValueTypeError"),
    ({"PowerState": "Off"}, "PropertyNotWritable"),
    ({"ChassisType": "Rack"}, "PropertyNotWritable"),
    ({"Bogus": 1}, "PropertyUnknown"),
    ({"IndicatorLED": "Lit", "AssetTag": "new", "Bogus": 1}, "PropertyUnknown"),  # nothing applied
    ({}, "NoOperation"),
])
def test_bad_tray_patch_changes_nothing(rack, body, msg_id):
    c = rack.client()
    before = get(rack, f"{CHASSIS}/Unit1")
    r = c.patch(rack.url + f"{CHASSIS}/Unit1", json=body)
    assert r.status_code == 400, r.text
    assert msg_id in ids(r)
    after = get(rack, f"{CHASSIS}/Unit1")
    for key in ("IndicatorLED", "LocationIndicatorActive", "AssetTag"):
        assert after[key] == before[key], key
    assert db(rack).settings("Unit1").get("led", "Off") == before["IndicatorLED"]


def test_rack_chassis_takes_no_patch_and_etags_are_checked(rack):
    c = rack.client()
    r = c.patch(rack.url + f"{CHASSIS}/Rack", json={"IndicatorLED": "Lit"})
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    assert set(c.get(rack.url + f"{CHASSIS}/Rack").headers["Allow"].split(", ")) == {"GET", "HEAD"}
    assert set(c.get(rack.url + f"{CHASSIS}/Unit1").headers["Allow"].split(", ")) == {"GET", "HEAD", "PATCH"}
    r = c.patch(rack.url + f"{CHASSIS}/Unit1", json={"IndicatorLED": "Lit"}, headers={"If-Match": '"stale"'})
    assert r.status_code == 412
    assert get(rack, f"{CHASSIS}/Unit1")["IndicatorLED"] == "Off"


# -- the budget and the power limit ---------------------------------------------------------

LIMIT = {"PowerControl": [{"PowerLimit": {"LimitInWatts": 40}}]}


def limit_body(value) -> dict:
    return {"PowerControl": [{"PowerLimit": {"LimitInWatts": value}}]}


def budget_views(srv) -> dict:
    power = get(srv, f"{CHASSIS}/Rack/Power")["PowerControl"][0]
    subsystem = get(srv, f"{CHASSIS}/Rack/PowerSubsystem")
    control = get(srv, f"{CHASSIS}/Rack/Controls/PowerLimit")
    env = get(srv, f"{CHASSIS}/Rack/EnvironmentMetrics")
    return {"power": power, "subsystem": subsystem, "control": control, "env": env}


def limit_everywhere(srv) -> float:
    v = budget_views(srv)
    limits = {v["power"]["PowerLimit"]["LimitInWatts"], v["control"]["SetPoint"],
              v["env"]["PowerLimitWatts"]["SetPoint"]}
    assert len(limits) == 1, limits
    return limits.pop()


def test_budget_is_max_watts_of_the_units_drawing(rack):
    states = systems_states(rack)
    drawing = [u for u, s in states.items() if s != "Off"]
    v = budget_views(rack)
    p = v["power"]
    assert p["PowerCapacityWatts"] == SUPPLY_WATTS == v["subsystem"]["CapacityWatts"]
    assert p["PowerAllocatedWatts"] == MAX_WATTS * len(drawing) == v["subsystem"]["Allocation"]["AllocatedWatts"]
    assert p["PowerRequestedWatts"] == v["subsystem"]["Allocation"]["RequestedWatts"] >= p["PowerAllocatedWatts"]
    limit = p["PowerLimit"]["LimitInWatts"]
    assert p["PowerAvailableWatts"] == limit - p["PowerAllocatedWatts"]
    assert p["PowerLimit"]["LimitException"] == "NoAction"
    assert p["PowerMetrics"]["IntervalInMin"] == 1
    for uid in UNITS:
        tray = get(rack, f"{CHASSIS}/{uid}/Power")["PowerControl"][0]
        sub = get(rack, f"{CHASSIS}/{uid}/PowerSubsystem")
        assert tray["PowerCapacityWatts"] == MAX_WATTS == sub["CapacityWatts"]
        assert tray["PowerAllocatedWatts"] == sub["Allocation"]["AllocatedWatts"] == (
            MAX_WATTS if states[uid] != "Off" else 0)
        assert "LimitInWatts" in tray["PowerLimit"] and tray["PowerLimit"]["LimitInWatts"] is None

    # A unit switched off gives its share back; switched on, takes it again.
    c = rack.client()
    wait_for_state(rack, "Unit4", "On")
    before = budget_views(rack)["power"]["PowerAllocatedWatts"]
    assert c.post(rack.url + RESET.format("Unit4"), json={"ResetType": "ForceOff"}).status_code == 200
    assert budget_views(rack)["power"]["PowerAllocatedWatts"] == before - MAX_WATTS
    assert get(rack, f"{CHASSIS}/Unit4/PowerSubsystem")["Allocation"]["AllocatedWatts"] == 0
    assert c.post(rack.url + RESET.format("Unit4"), json={"ResetType": "On"}).status_code == 200
    assert budget_views(rack)["power"]["PowerAllocatedWatts"] == before  # reserved from the request on
    wait_for_state(rack, "Unit4", "On")


def test_power_limit_through_each_of_its_three_doors(rack):
    c = rack.client()
    try:
        r = c.patch(rack.url + f"{CHASSIS}/Rack/Power", json=limit_body(40))
        assert r.status_code == 200, r.text
        assert r.json()["PowerControl"][0]["PowerLimit"]["LimitInWatts"] == 40
        assert limit_everywhere(rack) == 40 and db(rack).power_limit() == 40
        allocated = budget_views(rack)["power"]["PowerAllocatedWatts"]
        assert budget_views(rack)["power"]["PowerAvailableWatts"] == max(0, 40 - allocated)

        r = c.patch(rack.url + f"{CHASSIS}/Rack/Controls/PowerLimit", json={"SetPoint": 50.5})
        assert r.status_code == 200 and r.json()["SetPoint"] == 50.5
        assert limit_everywhere(rack) == 50.5

        r = c.patch(rack.url + f"{CHASSIS}/Rack/EnvironmentMetrics", json={"PowerLimitWatts": {"SetPoint": 60}})
        assert r.status_code == 200 and r.json()["PowerLimitWatts"]["SetPoint"] == 60
        assert limit_everywhere(rack) == SUPPLY_WATTS

        r = c.patch(rack.url + f"{CHASSIS}/Rack/Power",
                    json={"PowerControl": [{"@odata.id": f"{CHASSIS}/Rack/Power#/PowerControl/0",
                                            "PowerLimit": {"LimitInWatts": 45, "LimitException": "NoAction"}}]})
        assert r.status_code == 200 and limit_everywhere(rack) == 45
    finally:
        db(rack).set_power_limit(None)
    assert limit_everywhere(rack) == SUPPLY_WATTS


@pytest.mark.parametrize("path,body,msg_id", [
    ("Power", limit_body(0), "PropertyValueOutOfRange"),
    ("Power", limit_body(-5), "PropertyValueOutOfRange"),
    ("Power", limit_body(SUPPLY_WATTS + 0.5), "PropertyValueOutOfRange"),
    ("Power", limit_body(float("inf")), "PropertyValueOutOfRange"),  # Python's JSON reads Infinity
    ("Power", limit_body("40"), "PropertyValueTypeError"),
    ("Power", limit_body(True), "PropertyValueTypeError"),
    ("Power", limit_body(None), "PropertyValueTypeError"),
    ("Power", limit_body([40]), "PropertyValueTypeError"),
    ("Power", {"PowerControl": [{"PowerLimit": {"LimitInWatts": 40, "LimitException": "HardPowerOff"}}]},
     "PropertyValueNotInList"),
    ("Power", {"PowerControl": [{"PowerLimit": {"LimitInWatts": 40, "LimitException": 3}}]},
     "PropertyValueTypeError"),
    ("Power", {"PowerControl": [{"PowerLimit": {"LimitInWatts": 40, "CorrectionInMs": 5}}]}, "PropertyUnknown"),
    ("Power", {"PowerControl": [{"PowerLimit": 40}]}, "PropertyValueTypeError"),
    ("Power", {"PowerControl": {"PowerLimit": {"LimitInWatts": 40}}}, "PropertyValueTypeError"),
    ("Power", {"PowerControl": [{"PowerLimit": {"LimitInWatts": 40}}, {}]}, "PropertyUnknown"),
    ("Power", {"PowerControl": [{"PowerConsumedWatts": 3, "PowerLimit": {"LimitInWatts": 40}}]},
     "PropertyNotWritable"),
    ("Power", dict(LIMIT, Voltages=[]), "PropertyNotWritable"),
    ("Power", dict(LIMIT, Bogus=1), "PropertyUnknown"),
    ("Power", {"PowerControl": [{}]}, "NoOperation"),
    ("Power", {}, "NoOperation"),
    ("Controls/PowerLimit", {"SetPoint": 0}, "PropertyValueOutOfRange"),
    ("Controls/PowerLimit", {"SetPoint": 61}, "PropertyValueOutOfRange"),
    ("Controls/PowerLimit", {"SetPoint": "40"}, "PropertyValueTypeError"),
    ("Controls/PowerLimit", {"SetPoint": 40, "ControlMode": "Manual"}, "PropertyNotWritable"),
    ("Controls/PowerLimit", {"SetPointUnits": "kW"}, "PropertyNotWritable"),
    ("EnvironmentMetrics", {"PowerLimitWatts": {"SetPoint": 100}}, "PropertyValueOutOfRange"),
    ("EnvironmentMetrics", {"PowerLimitWatts": {"SetPoint": False}}, "PropertyValueTypeError"),
    ("EnvironmentMetrics", {"PowerLimitWatts": {"SetPoint": 40, "ControlMode": "Manual"}}, "PropertyNotWritable"),
    ("EnvironmentMetrics", {"PowerLimitWatts": 40}, "PropertyValueTypeError"),
    ("EnvironmentMetrics", {"PowerLimitWatts": {"SetPoint": 40}, "PowerWatts": {}}, "PropertyNotWritable"),
    ("EnvironmentMetrics", {"PowerLimitWatts": {}}, "NoOperation"),
])
def test_bad_power_limit_changes_nothing(rack, path, body, msg_id):
    before = limit_everywhere(rack)
    r = rack.client().patch(rack.url + f"{CHASSIS}/Rack/{path}", data=json.dumps(body),  # allows Infinity
                            headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert msg_id in ids(r)
    assert limit_everywhere(rack) == before
    assert db(rack).power_limit() in (None, before)


def test_trays_have_no_limit_to_patch(rack):
    c = rack.client()
    for path in ("Power", "EnvironmentMetrics"):
        r = c.patch(rack.url + f"{CHASSIS}/Unit1/{path}", json={"Bogus": 1})
        assert r.status_code == 405, path
        assert "PATCH" not in r.headers["Allow"]
    r = c.patch(rack.url + f"{CHASSIS}/Rack/Controls/FanDuty", json={"SetPoint": 50})
    assert r.status_code == 405


def test_limit_refuses_power_on_over_budget(rack):
    """With the limit at the watts already reserved, a unit switched off cannot come back."""
    c = rack.client()
    for uid in UNITS:
        wait_for_state(rack, uid, "On")
    try:
        r = c.patch(rack.url + f"{CHASSIS}/Rack/Power", json=limit_body(MAX_WATTS * len(UNITS)))
        assert r.status_code == 200
        assert budget_views(rack)["power"]["PowerAvailableWatts"] == 0
        assert c.post(rack.url + RESET.format("Unit3"), json={"ResetType": "ForceOff"}).status_code == 200
        assert c.patch(rack.url + f"{CHASSIS}/Rack/Power",
                       json=limit_body(MAX_WATTS * (len(UNITS) - 1))).status_code == 200
        r = c.post(rack.url + RESET.format("Unit3"), json={"ResetType": "On"})
        assert r.status_code == 409, r.text
        assert get(rack, "/redfish/v1/Systems/Unit3")["PowerState"] == "Off"
        assert budget_views(rack)["power"]["PowerAllocatedWatts"] == MAX_WATTS * (len(UNITS) - 1)
    finally:
        db(rack).set_power_limit(None)
    assert c.post(rack.url + RESET.format("Unit3"), json={"ResetType": "On"}).status_code == 200
    wait_for_state(rack, "Unit3", "On")


def test_power_limit_needs_configure_manager(rack):
    """The privilege registry maps PATCH of Power/Control/EnvironmentMetrics to ConfigureManager
    and PATCH of Chassis to ConfigureComponents: an Operator may light an LED, not cap the rack."""
    password = "operator-horse-battery"
    store = db(rack)
    if store.account_by_name("op") is None:
        store.add_account("op", hash_password(password), "Operator")
    op = rack.client(auth=("op", password))
    for path, body in (("Power", LIMIT), ("Controls/PowerLimit", {"SetPoint": 40}),
                       ("EnvironmentMetrics", {"PowerLimitWatts": {"SetPoint": 40}})):
        assert op.patch(rack.url + f"{CHASSIS}/Rack/{path}", json=body).status_code == 403, path
    assert limit_everywhere(rack) == SUPPLY_WATTS
    try:
        assert op.patch(rack.url + f"{CHASSIS}/Unit4", json={"IndicatorLED": "Lit"}).status_code == 200
    finally:
        store.set_setting("Unit4", "led", "Off")


# -- every view of a reading agrees -----------------------------------------------------------

def test_unit_readings_agree_across_every_view(rack):
    for uid in ("Unit1", "Unit2"):
        base = f"{CHASSIS}/{uid}"
        outlet = f"/redfish/v1/PowerEquipment/ElectricalBuses/Busbar/Outlets/{uid}"
        sensor_paths = [f"{base}/Sensors/{s}" for s in ("Power", "Voltage", "Current", "Temperature", "Energy",
                                                          "EnergykWh")]
        docs = snapshot(rack, [f"{base}/Power", f"{base}/Thermal", f"{base}/EnvironmentMetrics",
                               f"{base}/ThermalSubsystem/ThermalMetrics", outlet] + sensor_paths,
                        stamp=f"{base}/Sensors/Energy")
        s = {p.rsplit("/", 1)[1]: docs[p]["Reading"] for p in sensor_paths}
        power = docs[f"{base}/Power"]
        env = docs[f"{base}/EnvironmentMetrics"]
        out = docs[outlet]
        assert s["Power"] is not None and s["Power"] > 1.0  # a running Pi 4
        assert power["PowerControl"][0]["PowerConsumedWatts"] == s["Power"] == env["PowerWatts"]["Reading"] \
            == out["PowerWatts"]["Reading"]
        assert power["Voltages"][0]["ReadingVolts"] == s["Voltage"] == env["Voltage"]["Reading"] \
            == out["Voltage"]["Reading"]
        assert s["Current"] == env["CurrentAmps"]["Reading"] == out["CurrentAmps"]["Reading"]
        assert s["Energy"] == env["EnergyJoules"]["Reading"]
        assert s["EnergykWh"] == env["EnergykWh"]["Reading"] == out["EnergykWh"]["Reading"]
        assert s["EnergykWh"] == pytest.approx(s["Energy"] / 3.6e6, abs=1e-7)  # J rounded to 0.1
        board = docs[f"{base}/Thermal"]["Temperatures"][0]
        assert board["PhysicalContext"] == "SystemBoard" and board["ReadingCelsius"] == s["Temperature"]
        assert env["TemperatureCelsius"]["Reading"] == s["Temperature"]
        summary = docs[f"{base}/ThermalSubsystem/ThermalMetrics"]["TemperatureSummaryCelsius"]
        assert summary["Internal"]["Reading"] == s["Temperature"]
        for prop in ("PowerWatts", "Voltage", "CurrentAmps", "EnergyJoules", "EnergykWh", "TemperatureCelsius"):
            assert env[prop]["DataSourceUri"].startswith(f"{base}/Sensors/")
            assert get(rack, env[prop]["DataSourceUri"])["@odata.type"].startswith("#Sensor.")
        metrics = power["PowerControl"][0]["PowerMetrics"]
        assert metrics["MinConsumedWatts"] <= metrics["AverageConsumedWatts"] <= metrics["MaxConsumedWatts"]
        sensor = docs[f"{base}/Sensors/Power"]
        assert (sensor["LowestIntervalReading"], sensor["AverageReading"], sensor["PeakIntervalReading"]) == (
            metrics["MinConsumedWatts"], metrics["AverageConsumedWatts"], metrics["MaxConsumedWatts"])
        assert sensor["AveragingInterval"] == "PT1M"


def test_thresholds_on_temperature_and_voltage(rack):
    temp = get(rack, f"{CHASSIS}/Unit1/Sensors/Temperature")
    t = {k: v["Reading"] for k, v in temp["Thresholds"].items()}
    assert t["UpperCaution"] < t["UpperCritical"] < t["UpperFatal"]
    assert 80 <= t["UpperCritical"] <= 85  # where a Pi 4 throttles
    assert temp["Thresholds"]["UpperCritical"]["Activation"] == "Increasing"
    volt = get(rack, f"{CHASSIS}/Unit1/Sensors/Voltage")
    v = {k: x["Reading"] for k, x in volt["Thresholds"].items()}
    assert v["LowerCritical"] < v["LowerCaution"] < 5.0 < v["UpperCaution"] < v["UpperCritical"]
    assert v["LowerCaution"] < volt["Reading"] < v["UpperCaution"] and volt["Status"]["Health"] == "OK"
    # The legacy views carry the same limits.
    board = get(rack, f"{CHASSIS}/Unit1/Thermal")["Temperatures"][0]
    assert (board["UpperThresholdNonCritical"], board["UpperThresholdCritical"], board["UpperThresholdFatal"]) == (
        t["UpperCaution"], t["UpperCritical"], t["UpperFatal"])
    rail = get(rack, f"{CHASSIS}/Unit1/Power")["Voltages"][0]
    assert (rail["LowerThresholdCritical"], rail["UpperThresholdCritical"]) == (
        v["LowerCritical"], v["UpperCritical"])


def test_tray_thermal_lists_board_intake_and_cpu(rack):
    temps = get(rack, f"{CHASSIS}/Unit1/Thermal")["Temperatures"]
    assert len(temps) >= 3
    contexts = {t["PhysicalContext"]: t for t in temps}
    assert {"SystemBoard", "Intake", "CPU"} <= set(contexts)
    assert contexts["CPU"]["Status"]["State"] == "Absent" and contexts["CPU"]["ReadingCelsius"] is None
    absent = get(rack, f"{CHASSIS}/Unit5/Thermal")["Temperatures"][0]
    assert absent["Status"] == {"State": "Absent"} and absent["ReadingCelsius"] is None


# -- the rack's own readings (the busbar, the air, the fan) ------------------------------------

def test_rack_sensors_and_busbar_is_the_sum_of_the_rails(rack):
    wait_for_rack_readings(rack)
    coll = get(rack, f"{CHASSIS}/Rack/Sensors")
    names = [m["@odata.id"].rsplit("/", 1)[1] for m in coll["Members"]]
    assert set(names) == {"Power", "Voltage", "Current", "Energy", "EnergykWh", "Temperature", "Fan1"}
    unit_power = [f"{CHASSIS}/{u}/Sensors/Power" for u in UNITS + ("Unit5",)]
    rack_paths = [f"{CHASSIS}/Rack/Sensors/{n}" for n in names]
    docs = snapshot(rack, unit_power + rack_paths + [f"{CHASSIS}/Rack/Power", f"{CHASSIS}/Rack/EnvironmentMetrics",
                                                     "/redfish/v1/PowerEquipment/ElectricalBuses/Busbar/Metrics"],
                    stamp=f"{CHASSIS}/Rack/Sensors/Energy")
    r = {n: docs[f"{CHASSIS}/Rack/Sensors/{n}"] for n in names}
    total = sum(docs[p]["Reading"] or 0.0 for p in unit_power)
    assert r["Power"]["Reading"] == pytest.approx(total, abs=0.003)
    assert r["Power"]["Implementation"] == "Synthesized"
    assert docs[f"{CHASSIS}/Rack/Power"]["PowerControl"][0]["PowerConsumedWatts"] == r["Power"]["Reading"]
    assert docs[f"{CHASSIS}/Rack/Power"]["PowerSupplies"][0]["LastPowerOutputWatts"] == r["Power"]["Reading"]
    env = docs[f"{CHASSIS}/Rack/EnvironmentMetrics"]
    assert env["PowerWatts"]["Reading"] == r["Power"]["Reading"]
    assert env["EnergykWh"]["Reading"] == r["EnergykWh"]["Reading"]
    assert env["TemperatureCelsius"]["Reading"] == r["Temperature"]["Reading"]
    metrics = docs["/redfish/v1/PowerEquipment/ElectricalBuses/Busbar/Metrics"]
    assert metrics["PowerWatts"]["Reading"] == r["Power"]["Reading"]
    assert metrics["EnergykWh"]["Reading"] == r["EnergykWh"]["Reading"]
    assert 4.9 <= r["Voltage"]["Reading"] <= 5.2
    assert 15 <= r["Temperature"]["Reading"] <= 60
    assert r["Temperature"]["ReadingUnits"] == "Cel" and r["Temperature"]["Status"]["Health"] == "OK"
    fan = r["Fan1"]
    assert fan["ReadingType"] == "Percent" and fan["ReadingUnits"] == "%"
    assert 0 <= fan["Reading"] <= 100 and fan["SpeedRPM"] >= 0
    assert env["FanSpeedsPercent"][0]["Reading"] == fan["Reading"]
    assert env["FanSpeedsPercent"][0]["SpeedRPM"] == fan["SpeedRPM"]


def test_fan_in_thermal_and_thermal_subsystem(rack):
    wait_for_rack_readings(rack)
    wait_for(lambda: get(rack, f"{CHASSIS}/Rack/Sensors/Fan1")["SpeedRPM"], "the rack fan to turn")
    ts = get(rack, f"{CHASSIS}/Rack/ThermalSubsystem")
    fans = get(rack, ts["Fans"]["@odata.id"])
    assert [m["@odata.id"].rsplit("/", 1)[1] for m in fans["Members"]] == ["Fan1"]
    docs = snapshot(rack, [fans["Members"][0]["@odata.id"], f"{CHASSIS}/Rack/Thermal",
                           f"{CHASSIS}/Rack/Sensors/Fan1", f"{CHASSIS}/Rack/Controls/FanDuty"],
                    stamp=f"{CHASSIS}/Rack/Sensors/Energy")
    fan = docs[fans["Members"][0]["@odata.id"]]
    sensor = docs[f"{CHASSIS}/Rack/Sensors/Fan1"]
    legacy = docs[f"{CHASSIS}/Rack/Thermal"]["Fans"][0]
    assert fan["SpeedPercent"] == {"DataSourceUri": f"{CHASSIS}/Rack/Sensors/Fan1", "Reading": sensor["Reading"],
                                   "SpeedRPM": sensor["SpeedRPM"]}
    assert legacy["ReadingUnits"] == "RPM" and legacy["Reading"] == sensor["SpeedRPM"]
    assert sensor["Reading"] == pytest.approx(100 * sensor["SpeedRPM"] / legacy["MaxReadingRange"], abs=0.1)
    assert {"@odata.id": f"{CHASSIS}/Unit1"} in fan["Links"]["CoolingChassis"]
    duty = docs[f"{CHASSIS}/Rack/Controls/FanDuty"]
    assert duty["ControlType"] == "DutyCycle" and 0 <= duty["SetPoint"] <= 100
    temps = get(rack, f"{CHASSIS}/Rack/Thermal")["Temperatures"]
    assert len(temps) >= 3 and temps[0]["Name"] == "Rack air"
    assert {t["RelatedItem"][0]["@odata.id"] for t in temps[1:]} == {f"{CHASSIS}/{u}" for u in UNITS + ("Unit5",)}


# -- the pure parts ------------------------------------------------------------------------------

def _unit(uid: str, state: str, desired: str = "On", present: bool = True, watts: float = MAX_WATTS) -> dict:
    return {"id": uid, "present": present, "power_state": state, "desired_power": desired,
            "info": {"max_watts": watts}}


def test_budget_counts_units_drawing_and_waiting():
    from redfish_racklet.resources.chassis_power import budget
    units = [_unit("A", "On"), _unit("B", "PoweringOn"), _unit("C", "PoweringOff", desired="Off"),
             _unit("D", "Off", desired="On"), _unit("E", "Off", desired="Off"),
             _unit("F", "Off", present=False), _unit("G", "On", watts=12.5)]
    b = budget(units, capacity=60.0, limit=None)
    assert (b.capacity, b.limit) == (60.0, 60.0)
    assert b.allocated == 7 + 7 + 7 + 12.5  # the rail is on (or queued) for A, B, C, G
    assert b.requested == b.allocated + 7  # D wants to be on
    assert b.available == 60 - b.allocated
    assert budget(units, 60.0, 20.0).available == 0  # never below zero


@pytest.mark.parametrize("reading,health", [
    (None, "Warning"), (25.0, "OK"), (70.0, "Warning"), (79.9, "Warning"), (80.0, "Critical"), (90.0, "Critical"),
])
def test_health_follows_the_thresholds(reading, health):
    from redfish_racklet.resources import sensors
    assert sensors.health(sensors.UNIT_SENSORS["Temperature"], reading) == health


@pytest.mark.parametrize("volts,health", [(4.6, "Critical"), (4.7, "Warning"), (5.1, "OK"), (5.3, "Warning"),
                                          (5.6, "Critical")])
def test_rail_voltage_health(volts, health):
    from redfish_racklet.resources import sensors
    assert sensors.health(sensors.UNIT_SENSORS["Voltage"], volts) == health


def test_check_tree_reports_every_problem_with_its_path():
    from redfish_racklet.messages import RedfishError
    from redfish_racklet.web import Invalid, check_tree

    def positive(v):
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise Invalid("PropertyValueTypeError")
        if v <= 0:
            raise Invalid("PropertyValueOutOfRange")
        return v

    writable = {"PowerControl": [{"PowerLimit": {"LimitInWatts": positive}}]}
    current = {"PowerControl": [{"MemberId": "0", "PowerLimit": {"LimitInWatts": 5}}], "Id": "Power"}
    assert check_tree({"PowerControl": [{"PowerLimit": {"LimitInWatts": 3}}]}, writable, current) == {
        "PowerControl": [{"PowerLimit": {"LimitInWatts": 3}}]}
    with pytest.raises(RedfishError) as e:
        check_tree({"Id": "x", "Nope": 1, "PowerControl": [{"MemberId": "1", "PowerLimit": {"LimitInWatts": -1}}, {}]},
                   writable, current)
    got = sorted((m["MessageId"].split(".")[-1], m["RelatedProperties"][0]) for m in e.value.messages)
    assert got == [("PropertyNotWritable", "#/Id"), ("PropertyNotWritable", "#/PowerControl/0/MemberId"),
                   ("PropertyUnknown", "#/Nope"), ("PropertyUnknown", "#/PowerControl/1"),
                   ("PropertyValueOutOfRange", "#/PowerControl/0/PowerLimit/LimitInWatts")]
    with pytest.raises(RedfishError) as e:
        check_tree({"@odata.etag": "x", "PowerControl": [{}]}, writable, current)
    assert e.value.messages[0]["MessageId"].endswith("NoOperation")
