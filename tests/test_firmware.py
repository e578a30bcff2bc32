"""What the API and the agent agree on about firmware (redfish_racklet/firmware.py): ids,
URIs, targets, versions, and the checks a verified bundle must pass for a target."""

from __future__ import annotations

import pytest

from redfish_racklet import firmware

UNITS = ["Unit1", "Unit2"]
BOOT = {"component": "boot", "compatible": ["racklet-sim"], "version": "1.2.0", "security_version": 3,
        "size": 10, "sha256": "ab" * 32, "key_id": "cd" * 8}


@pytest.mark.parametrize("target, component, slot, inv", [
    ("RMC", "rmc", "A", "RMC-A"), ("Unit1", "bmc", "B", "Unit1-BMC-B"), ("Unit2", "boot", "A", "Unit2-Boot-A")])
def test_inventory_ids_round_trip(target, component, slot, inv):
    assert firmware.inventory_id(target, component, slot) == inv
    assert firmware.parse_inventory_id(inv) == (target, component, slot)


@pytest.mark.parametrize("bad", ["RMC-C", "RMC", "Unit1-Boot", "Unit1-bios-A", "Unit1-BMC-a", "", "../RMC-A",
                                 "Unit1-BMC-A/x"])
def test_bad_inventory_ids(bad):
    assert firmware.parse_inventory_id(bad) is None


def test_targets_resolve_devices_and_slots():
    inv = firmware.INVENTORY
    assert firmware.resolve_target("/redfish/v1/Managers/RMC", UNITS) == ("RMC", "rmc")
    assert firmware.resolve_target("/redfish/v1/Managers/Unit2-BMC/", UNITS) == ("Unit2", "bmc")
    assert firmware.resolve_target("/redfish/v1/Systems/Unit1", UNITS) == ("Unit1", "boot")
    assert firmware.resolve_target(f"{inv}/Unit1-Boot-B", UNITS) == ("Unit1", "boot")
    for nothing in ("/redfish/v1/Systems/Unit9", "/redfish/v1/Chassis/Unit1", f"{inv}/Unit9-BMC-A",
                    "/redfish/v1/Managers/Unit1", "https://evil/redfish/v1/Systems/Unit1", ""):
        assert firmware.resolve_target(nothing, UNITS) is None, nothing


def test_components_of_a_rack():
    assert firmware.components_of(UNITS) == [("RMC", "rmc"), ("Unit1", "bmc"), ("Unit1", "boot"),
                                             ("Unit2", "bmc"), ("Unit2", "boot")]


def test_versions_order_numerically():
    ordered = ["", "0.9", "1.2.0", "1.9.2", "1.10.0", "2.0.0"]
    keys = [firmware.version_key(v) for v in ordered]
    assert keys == sorted(keys)
    assert firmware.version_key("1.10.0") > firmware.version_key("1.9.9")


def test_a_matching_bundle_passes():
    assert firmware.check(BOOT, "Unit1", "boot", "racklet-sim", {"sha256": "00" * 32}, floor=3) is None


@pytest.mark.parametrize("change, args, key", [
    ({"component": "bmc"}, {}, "UpdateNotApplicable"),
    ({"compatible": ["raspberrypi-5"]}, {}, "UpdateNotApplicable"),
    ({"security_version": 2}, {}, "UpdateSkippedVersionTooLow"),
    ({"security_version": 2}, {"force": True}, "UpdateSkippedVersionTooLow"),   # ForceUpdate never lowers the floor
    ({}, {"active": {"sha256": "ab" * 32}}, "UpdateSkippedSameVersion"),
])
def test_refusals_name_the_update_registry_message(change, args, key):
    manifest = dict(BOOT, **change)
    active = args.get("active", {"sha256": "00" * 32})
    with pytest.raises(firmware.Refused) as e:
        firmware.check(manifest, "Unit1", "boot", "racklet-sim", active, floor=3, force=args.get("force", False))
    assert e.value.key == key
    assert "/redfish/v1/Systems/Unit1" in e.value.reason


def test_force_update_reinstalls_the_same_image():
    assert firmware.check(BOOT, "Unit1", "boot", "racklet-sim", {"sha256": BOOT["sha256"]}, floor=0,
                          force=True) is None
