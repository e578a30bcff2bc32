"""Sensors on a live server: the simulated rack read through the real drivers."""

from __future__ import annotations


from redfish_racklet.drivers import sim_physics as phys

from .conftest import restart, wait_for

SENSORS = ("Power", "Voltage", "Current", "Temperature", "Energy", "EnergykWh")


def sensor(server, unit, name):
    return server.get(f"/redfish/v1/Chassis/{unit}/Sensors/{name}").json()


def test_collection_and_links(server):
    tray = server.get("/redfish/v1/Chassis/Unit1").json()
    coll = server.get(tray["Sensors"]["@odata.id"]).json()
    assert [m["@odata.id"].rsplit("/", 1)[1] for m in coll["Members"]] == list(SENSORS)
    units = {s["ReadingType"]: s["ReadingUnits"] for s in (sensor(server, "Unit1", n) for n in SENSORS)}
    assert units == {"Power": "W", "Voltage": "V", "Current": "A", "Temperature": "Cel",
                     "EnergyJoules": "J", "EnergykWh": "kW.h"}
    joules, kwh = (sensor(server, "Unit1", n)["Reading"] for n in ("Energy", "EnergykWh"))
    assert abs(joules / 3.6e6 - kwh) < 1e-3 + 0.01 * kwh


def test_readings_are_physically_consistent(server):
    p, v, i = (sensor(server, "Unit1", n)["Reading"] for n in ("Power", "Voltage", "Current"))
    assert phys.IDLE_W * 0.95 <= p <= phys.BUSY_W * 1.05  # a running Pi 4
    assert 4.9 <= v <= 5.15
    assert abs(v * i - p) <= 0.02 * p + 0.01  # P = V·I, within the chips' LSBs and the noise
    t = sensor(server, "Unit1", "Temperature")["Reading"]
    assert phys.AMBIENT_C - 1 <= t <= phys.AMBIENT_C + phys.R_THERMAL * phys.BUSY_W
    assert sensor(server, "Unit1", "Power")["Status"] == {"State": "Enabled", "Health": "OK"}


def test_absent_unit_sensors_are_absent(server):
    doc = sensor(server, "Unit5", "Power")
    assert doc["Status"] == {"State": "Absent"} and doc["Reading"] is None


def test_unknown_sensor_and_chassis(server):
    c = server.client()
    assert c.get(server.url + "/redfish/v1/Chassis/Unit1/Sensors/Humidity").status_code == 404
    assert c.get(server.url + "/redfish/v1/Chassis/Unit9/Sensors").status_code == 404
    assert c.get(server.url + "/redfish/v1/Chassis/Rack/Sensors/Humidity").status_code == 404




def test_energy_grows_and_survives_a_restart(fresh_server):
    srv = fresh_server(workers=1)
    first = sensor(srv, "Unit1", "Energy")["Reading"]
    later = wait_for(lambda: (e := sensor(srv, "Unit1", "Energy")["Reading"]) > first and e)
    again = restart(srv)
    try:
        assert sensor(again, "Unit1", "Energy")["Reading"] >= later  # the counter never goes back
    finally:
        again.stop()


def test_power_follows_the_rail(server):
    from .test_power import reset, wait_for_state
    wait_for_state(server, "Unit2", "On")
    assert reset(server, "Unit2", "ForceOff").status_code == 200
    wait_for(lambda: sensor(server, "Unit2", "Power")["Reading"] == 0.0)
    assert reset(server, "Unit2", "On").status_code == 200
    wait_for(lambda: sensor(server, "Unit2", "Power")["Reading"] > 1.0)
    wait_for_state(server, "Unit2", "On")
