"""The rack behaving as hardware, through the real server: a hand at the rack
(`redfish-racklet sim`), the power budget, failing sensors — seen over Redfish."""

from __future__ import annotations

import subprocess

from .conftest import cli, sim, wait_for

BUDGET_MANIFEST = """\
rack: {name: Budget rack, driver: sim, seed: 5, tick_seconds: 0.05, sample_seconds: 0.2,
       power_supply_watts: 15, power_on_stagger_seconds: 0.2}
units:
  - {id: Unit1, slot: 1, sim: {boot_seconds: 0.2, shutdown_seconds: 0.2}}
  - {id: Unit2, slot: 2, sim: {boot_seconds: 0.2, shutdown_seconds: 0.2}}
  - {id: Unit3, slot: 3, sim: {boot_seconds: 0.2, shutdown_seconds: 0.2}}
"""






def test_unplug_and_plug_are_seen_at_once(fresh_server):
    srv = fresh_server()
    c = srv.client()
    assert c.get(srv.url + "/redfish/v1/Systems/Unit2").json()["PowerState"] == "On"
    r = sim(srv, "unplug", "Unit2")
    assert r.returncode == 0, r.stderr
    # The agent acts before it answers: the very next GET shows the empty tray.
    chassis = c.get(srv.url + "/redfish/v1/Chassis/Unit2").json()
    system = c.get(srv.url + "/redfish/v1/Systems/Unit2").json()
    assert chassis["Status"]["State"] == "Absent" and system["Status"]["State"] == "Absent"
    assert system["PowerState"] == "Off"
    assert system["Oem"]["Racklet"]["DesiredPowerState"] == "On"  # kept for when it comes back
    # the rest of the rack keeps running
    others = [c.get(srv.url + f"/redfish/v1/Systems/Unit{i}").json()["PowerState"] for i in (1, 3, 4)]
    assert others == ["On", "On", "On"]
    # a reset of the empty tray is refused and changes nothing
    r = c.post(srv.url + "/redfish/v1/Systems/Unit2/Actions/ComputerSystem.Reset", json={"ResetType": "On"})
    assert r.status_code == 409
    assert sim(srv, "plug", "Unit2").returncode == 0
    on = wait_for(lambda: c.get(srv.url + "/redfish/v1/Systems/Unit2").json()["PowerState"] == "On")
    assert on
    assert c.get(srv.url + "/redfish/v1/Chassis/Unit2").json()["Status"]["State"] != "Absent"


def test_sim_command_errors(fresh_server, tmp_path):
    srv = fresh_server()
    bad = [("unplug", "Unit9"), ("load", "Unit1", "2"), ("load", "Unit1", "lots"), ("fail", "Unit1", "wheel"),
           ("load", "Unit1")]
    for args in bad:
        r = sim(srv, *args, check=False)
        assert r.returncode != 0 and r.stderr.strip(), args
    r = subprocess.run(cli() + ["sim", "--state-dir", str(tmp_path / "nothing"), "plug", "Unit1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "no running agent" in r.stderr


def test_load_and_failing_sensor_through_redfish(fresh_server):
    srv = fresh_server()
    c = srv.client()
    base = srv.url + "/redfish/v1/Chassis/Unit1/Sensors"

    def watts():
        return c.get(base + "/Power").json()["Reading"]

    idle = wait_for(lambda: (w := watts()) is not None and w < 4 and w)
    assert idle, "an idle Pi 4 draws about 2.7 W"
    assert sim(srv, "load", "Unit1", "1").returncode == 0
    busy = wait_for(lambda: (w := watts()) is not None and w > 6 and w)
    assert busy, "a busy Pi 4 draws 6-7 W"
    assert sim(srv, "fail", "Unit1", "power").returncode == 0
    failed = wait_for(lambda: c.get(base + "/Power").json()["Status"].get("Health") not in (None, "OK"))
    assert failed
    doc = c.get(base + "/Power").json()
    assert doc["Reading"] is None
    for uri in ("/redfish/v1/Chassis/Unit1", "/redfish/v1/Systems/Unit1"):  # the roll-up
        assert c.get(srv.url + uri).json()["Status"]["Health"] == "Warning"
    assert c.get(srv.url + "/redfish/v1/Chassis/Unit2").json()["Status"]["Health"] == "OK"
    assert c.get(base + "/Temperature").json()["Reading"] is not None  # the other part still answers
    assert sim(srv, "heal", "Unit1", "power").returncode == 0
    assert wait_for(lambda: c.get(base + "/Power").json()["Status"].get("Health") == "OK")
    assert c.get(srv.url + "/redfish/v1/Systems/Unit1").json()["Status"]["Health"] == "OK"
    log = srv.log.read_text()
    assert log.count("power sensor unavailable") == 1 and "power sensor back" in log


def test_power_budget_refuses_a_power_on_over_the_limit(fresh_server):
    """15 W feeds two units reserving 7 W each, not three."""
    srv = fresh_server(manifest_text=BUDGET_MANIFEST)
    c = srv.client()
    states = {i: c.get(srv.url + f"/redfish/v1/Systems/Unit{i}").json()["PowerState"] for i in (1, 2, 3)}
    assert states == {1: "On", 2: "On", 3: "Off"}
    reset = "/redfish/v1/Systems/Unit{}/Actions/ComputerSystem.Reset"
    r = c.post(srv.url + reset.format(3), json={"ResetType": "On"})
    assert r.status_code == 409
    info = r.json()["error"]["@Message.ExtendedInfo"][0]
    assert info["MessageId"].endswith("ActionParameterValueConflict") and "power limit" in info["Resolution"]
    assert c.get(srv.url + "/redfish/v1/Systems/Unit3").json()["PowerState"] == "Off"
    assert c.post(srv.url + reset.format(1), json={"ResetType": "ForceOff"}).status_code == 200
    assert c.post(srv.url + reset.format(3), json={"ResetType": "On"}).status_code == 200
    assert wait_for(lambda: c.get(srv.url + "/redfish/v1/Systems/Unit3").json()["PowerState"] == "On")
