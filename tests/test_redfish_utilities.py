"""DMTF redfish-utilities against a live rack, each checked for what it printed and for what
changed on the rack: rf_power_reset.py, rf_boot_override.py, rf_sensor_list.py,
rf_sys_inventory.py, rf_manager_config.py, rf_accounts.py (issue [8]; rf_update.py,
rf_event_service.py, rf_logs.py and rf_firmware_inventory.py have their own tests)."""

from __future__ import annotations

import pytest

from .clients import dmtf_script, run_dmtf
from .conftest import TEST_MANIFEST, start_server, wait_for


@pytest.fixture(scope="module")
def rack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("redfish-utilities")
    srv = start_server(tmp, TEST_MANIFEST)
    srv.tmp = tmp
    yield srv
    srv.stop()


def run(srv, script: str, *args: str) -> str:
    r = run_dmtf(srv, dmtf_script(script), *args, cwd=srv.tmp)
    assert r.returncode == 0, (script, args, r.stdout, r.stderr)
    return r.stdout


def test_rf_power_reset(rack):
    c = rack.client()
    state = lambda: c.get(rack.url + "/redfish/v1/Systems/Unit2").json()["PowerState"]  # noqa: E731
    assert "Resetting the system" in run(rack, "rf_power_reset.py", "-s", "Unit2", "-t", "ForceOff")
    wait_for(lambda: state() == "Off", "Unit2 off", timeout=10)
    run(rack, "rf_power_reset.py", "-s", "Unit2", "-t", "On")
    wait_for(lambda: state() == "On", "Unit2 on", timeout=15)


def test_rf_boot_override(rack):
    info = run(rack, "rf_boot_override.py", "-s", "Unit3", "-info")
    assert "Allowable Values: None, Pxe, UefiHttp, Hdd, SDCard, Usb" in info
    run(rack, "rf_boot_override.py", "-s", "Unit3", "-t", "Pxe")
    boot = rack.get("/redfish/v1/Systems/Unit3").json()["Boot"]
    assert boot["BootSourceOverrideTarget"] == "Pxe" and boot["BootSourceOverrideEnabled"] in ("Once", "Continuous")
    assert "Target: Pxe" in run(rack, "rf_boot_override.py", "-s", "Unit3", "-info")
    run(rack, "rf_boot_override.py", "-s", "Unit3", "-t", "None")
    assert rack.get("/redfish/v1/Systems/Unit3").json()["Boot"]["BootSourceOverrideTarget"] == "None"


def test_rf_sensor_list_and_rf_sys_inventory(rack):
    sensors = run(rack, "rf_sensor_list.py")
    for sid in ("Power", "Temperature", "Voltage"):
        name = rack.get(f"/redfish/v1/Chassis/Unit1/Sensors/{sid}").json()["Name"]
        assert name in sensors, name
    inventory = run(rack, "rf_sys_inventory.py")
    for unit in ("Unit1", "Unit4", "Unit5"):
        assert f"'{unit}' Inventory" in inventory
    assert "Not Present" in inventory   # the empty tray, Unit5


def test_rf_manager_config(rack):
    out = run(rack, "rf_manager_config.py", "-m", "RMC", "info")
    rmc = rack.get("/redfish/v1/Managers/RMC").json()
    assert "ManagerType: RackManager" in out and f"FirmwareVersion: {rmc['FirmwareVersion']}" in out


def test_rf_accounts(rack):
    assert "Adding new user 'student2'" in run(rack, "rf_accounts.py", "-add", "student2", "a-long-class-password-2",
                                                 "ReadOnly")
    accounts = rack.client().get(rack.url + "/redfish/v1/AccountService/Accounts?$expand=.").json()["Members"]
    assert ("student2", "ReadOnly") in {(a["UserName"], a["RoleId"]) for a in accounts}
    assert "student2" in run(rack, "rf_accounts.py")
    run(rack, "rf_accounts.py", "-delete", "student2")
    accounts = rack.client().get(rack.url + "/redfish/v1/AccountService/Accounts?$expand=.").json()["Members"]
    assert "student2" not in {a["UserName"] for a in accounts}


def test_rf_assembly(rack):
    """A tray's Assembly is its board's FRU data, the same the tray's Chassis shows."""
    tray = rack.get("/redfish/v1/Chassis/Unit1").json()
    uri = tray["Assembly"]["@odata.id"]
    board = rack.get(uri).json()["Assemblies"][0]
    assert (board["Vendor"], board["Model"], board["SerialNumber"]) == \
        (tray["Manufacturer"], tray["Model"], tray["SerialNumber"])
    info = run(rack, "rf_assembly.py", "-a", uri, "info")
    for value in (board["Model"], board["SerialNumber"], board["PartNumber"]):
        assert value in info, (value, info)
    # the rack has no FRU memory, a tray that is not there has none
    for missing in ("/redfish/v1/Chassis/Rack/Assembly", "/redfish/v1/Chassis/Unit9/Assembly"):
        r = rack.get(missing)
        assert r.status_code == 404 and r.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith(
            "ResourceNotFound"), missing
