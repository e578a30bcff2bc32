"""sushy — the Redfish library of OpenStack Ironic and Metal3 — drives a live rack unmodified:
connect with a session, list and read systems, power state and reset, boot source and mode
overrides, the system's inventory, managers, chassis and their thermal readings, and the
firmware inventory. (Issue [8] lists the clients; this is sushy's part.)"""

from __future__ import annotations

import pytest

from .conftest import ADMIN_PASSWORD, TEST_MANIFEST, start_server, wait_for

sushy = pytest.importorskip("sushy", reason="needs sushy (pip install sushy; in the test extra)")


@pytest.fixture(scope="module")
def rack(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("sushy"), TEST_MANIFEST)
    root = sushy.Sushy(srv.url + "/redfish/v1", username="admin", password=ADMIN_PASSWORD, verify=srv.ca)
    yield srv, root
    srv.stop()


def test_connect_and_list_what_the_service_root_links(rack):
    srv, root = rack
    service = srv.get("/redfish/v1").json()
    assert root.uuid == service["UUID"] and root.redfish_version == service["RedfishVersion"]
    systems = srv.get("/redfish/v1/Systems").json()["Members"]
    assert set(root.get_system_collection().members_identities) == {m["@odata.id"] for m in systems}
    managers = srv.get("/redfish/v1/Managers").json()["Members"]
    assert set(root.get_manager_collection().members_identities) == {m["@odata.id"] for m in managers}
    chassis = srv.get("/redfish/v1/Chassis").json()["Members"]
    assert set(root.get_chassis_collection().members_identities) == {m["@odata.id"] for m in chassis}


def test_power_state_and_reset(rack):
    srv, root = rack
    system = root.get_system("/redfish/v1/Systems/Unit2")
    assert system.power_state == sushy.POWER_STATE_ON
    allowed = system.get_allowed_reset_system_values()
    assert {sushy.RESET_ON, sushy.RESET_FORCE_OFF, sushy.RESET_GRACEFUL_RESTART} <= allowed

    system.reset_system(sushy.RESET_FORCE_OFF)

    def state():
        system.refresh()
        return system.power_state
    wait_for(lambda: state() == sushy.POWER_STATE_OFF, "Unit2 off, as sushy sees it", timeout=10)
    assert srv.get("/redfish/v1/Systems/Unit2").json()["PowerState"] == "Off"
    system.reset_system(sushy.RESET_ON)
    wait_for(lambda: state() == sushy.POWER_STATE_ON, "Unit2 on again", timeout=15)


def test_boot_source_and_mode_override(rack):
    srv, root = rack
    system = root.get_system("/redfish/v1/Systems/Unit3")
    assert sushy.BOOT_SOURCE_TARGET_PXE in system.get_allowed_system_boot_source_values()

    system.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_PXE, enabled=sushy.BOOT_SOURCE_ENABLED_ONCE,
                                   mode=sushy.BOOT_SOURCE_MODE_UEFI)
    system.refresh()
    assert (system.boot.target, system.boot.enabled, system.boot.mode) == (
        sushy.BOOT_SOURCE_TARGET_PXE, sushy.BOOT_SOURCE_ENABLED_ONCE, sushy.BOOT_SOURCE_MODE_UEFI)
    boot = srv.get("/redfish/v1/Systems/Unit3").json()["Boot"]
    assert (boot["BootSourceOverrideTarget"], boot["BootSourceOverrideEnabled"]) == ("Pxe", "Once")
    system.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_NONE, enabled=sushy.BOOT_SOURCE_ENABLED_DISABLED)
    system.refresh()
    assert system.boot.target == sushy.BOOT_SOURCE_TARGET_NONE


def test_the_inventory_ironic_inspects(rack):
    srv, root = rack
    system = root.get_system("/redfish/v1/Systems/Unit1")
    doc = srv.get("/redfish/v1/Systems/Unit1").json()
    assert system.bios_version == doc["BiosVersion"]
    assert system.processors.summary.count == doc["ProcessorSummary"]["CoreCount"] or \
        system.processors.summary.count == doc["ProcessorSummary"]["Count"]
    assert system.memory_summary.size_gib == doc["MemorySummary"]["TotalSystemMemoryGiB"]
    nics = srv.get("/redfish/v1/Systems/Unit1/EthernetInterfaces/eth0").json()
    assert nics["MACAddress"].lower() in system.ethernet_interfaces.summary
    assert system.simple_storage.disks_sizes_bytes and all(b > 0 for b in system.simple_storage.disks_sizes_bytes)


def test_managers_chassis_thermal_and_firmware(rack):
    srv, root = rack
    rmc = root.get_manager("/redfish/v1/Managers/RMC")
    assert rmc.manager_type == sushy.MANAGER_TYPE_RACK_MANAGER
    assert rmc.firmware_version == srv.get("/redfish/v1/Managers/RMC").json()["FirmwareVersion"]
    tray = root.get_chassis("/redfish/v1/Chassis/Unit1")
    temps = {t.name: t.reading_celsius for t in tray.thermal.temperatures}
    served = {t["Name"] for t in srv.get("/redfish/v1/Chassis/Unit1/Thermal").json()["Temperatures"]}
    assert set(temps) == served and isinstance(temps["Unit1 board"], float)
    firmware = {x.identity: x.version for x in root.get_update_service().firmware_inventory.get_members()}
    members = srv.get("/redfish/v1/UpdateService/FirmwareInventory").json()["Members"]
    assert set(firmware) == {m["@odata.id"].rsplit("/", 1)[1] for m in members}
    assert firmware["RMC-A"] == rmc.firmware_version
