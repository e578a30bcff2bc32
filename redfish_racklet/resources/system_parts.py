"""What a compute unit is built of, under Systems/UnitN: Processors, EthernetInterfaces,
Storage (with its Drive) and SimpleStorage.

All of it comes from the unit's static facts (``info``, from the manifest or the
tray's EEPROM) plus its observed presence and power state. SimpleStorage repeats the
SD card in the older, flatter shape because OpenStack Ironic's inspection reads it.
"""

from __future__ import annotations

from flask_smorest import Blueprint

from ..privileges import declare
from ..web import RedfishView, collection, odata_id
from .common import not_found, odata_type, store
from .systems import parts_status

blp = Blueprint("system_parts", __name__, description="Processors, interfaces and storage of a unit")

CPU_ID = "CPU0"
NIC_ID = "eth0"  # the Pi's on-board Gigabit Ethernet, as its OS names it
NIC_SPEED_MBPS = 1000
STORAGE_ID = "1"
DRIVE_ID = "Drive0"
GIB = 1024 ** 3

# InstructionSet -> ProcessorArchitecture (both enums from Processor.v1_22_0)
ARCHITECTURE = {"x86": "x86", "x86-64": "x86", "IA-64": "IA-64", "ARM-A32": "ARM", "ARM-A64": "ARM",
                "MIPS32": "MIPS", "MIPS64": "MIPS", "PowerISA": "Power", "RV32": "RISC-V", "RV64": "RISC-V"}

# The manifest's storage media -> (Drive.MediaType, Drive.Protocol). Flash is "SSD" in
# Redfish (MediaType has only HDD, SSD, SMR). Protocol has no value for an SD card
# (its bus is neither eMMC nor USB), so the drive of an SD card leaves it out rather
# than name a bus it does not use; an eMMC module and a USB stick have theirs.
MEDIA = {
    "SDCard": ("SSD", None),
    "eMMC": ("SSD", "eMMC"),
    "USB": ("SSD", "USB"),
    "SSD": ("SSD", None),
    "HDD": ("HDD", None),
}


def _unit(system_id: str) -> dict:
    unit = store().unit(system_id)
    if unit is None:
        raise not_found("ComputerSystem", system_id)
    return unit


def _member(kind: str, wanted: str, member_id: str) -> None:
    if member_id != wanted:
        raise not_found(kind, member_id)


# -- Processors ---------------------------------------------------------------------

def processor_doc(unit: dict) -> dict:
    uid = unit["id"]
    cpu = unit["info"].get("processor", {})
    isa = cpu.get("instruction_set")
    return {
        "@odata.id": f"/redfish/v1/Systems/{uid}/Processors/{CPU_ID}",
        "@odata.type": odata_type("Processor"),
        "Id": CPU_ID,
        "Name": "Processor",
        "ProcessorType": "CPU",
        "ProcessorArchitecture": ARCHITECTURE.get(isa),
        "InstructionSet": isa,
        "Manufacturer": cpu.get("manufacturer"),
        "Model": cpu.get("model"),
        "TotalCores": cpu.get("cores"),
        "TotalThreads": cpu.get("cores"),  # one thread per core: Cortex-A cores have no SMT
        "MaxSpeedMHz": cpu.get("max_speed_mhz"),
        "Socket": "SoC",
        "Status": parts_status(unit),
    }


@blp.route("/redfish/v1/Systems/<system_id>/Processors")
class Processors(RedfishView):
    entity = "ProcessorCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, system_id):
        _unit(system_id)
        base = f"/redfish/v1/Systems/{system_id}/Processors"
        return collection("ProcessorCollection", "Processor Collection", base, [f"{base}/{CPU_ID}"])


@blp.route("/redfish/v1/Systems/<system_id>/Processors/<processor_id>")
class Processor(RedfishView):
    entity = "Processor"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, system_id, processor_id):
        unit = _unit(system_id)
        _member("Processor", CPU_ID, processor_id)
        return processor_doc(unit)


# -- EthernetInterfaces -------------------------------------------------------------

def nic_doc(unit: dict) -> dict:
    """The unit's on-board NIC. The link is up while the unit runs; what its OS has
    configured on it (host name, addresses) is not known to the rack, so those are
    null or empty rather than guessed."""
    uid = unit["id"]
    mac = unit["info"].get("mac_address") or None
    up = unit["present"] and unit["power_state"] == "On"
    return {
        "@odata.id": f"/redfish/v1/Systems/{uid}/EthernetInterfaces/{NIC_ID}",
        "@odata.type": odata_type("EthernetInterface"),
        "Id": NIC_ID,
        "Name": "Ethernet interface",
        "Description": "The unit's on-board Gigabit Ethernet",
        "EthernetInterfaceType": "Physical",
        "MACAddress": mac,
        "PermanentMACAddress": mac,
        "InterfaceEnabled": unit["present"],
        "LinkStatus": "LinkUp" if up else ("LinkDown" if unit["present"] else "NoLink"),
        "SpeedMbps": NIC_SPEED_MBPS if up else None,
        "FullDuplex": True if up else None,
        "HostName": None,
        "FQDN": None,
        "NameServers": [],
        "IPv4Addresses": [],
        "IPv6Addresses": [],
        "Status": parts_status(unit),
        "Links": {"Chassis": odata_id("Chassis", uid)},
    }


@blp.route("/redfish/v1/Systems/<system_id>/EthernetInterfaces")
class EthernetInterfaces(RedfishView):
    entity = "EthernetInterfaceCollection"
    privileges = declare(entity, "GET", under=("ComputerSystemCollection", "ComputerSystem"))
    cacheable = True

    def get(self, system_id):
        _unit(system_id)
        base = f"/redfish/v1/Systems/{system_id}/EthernetInterfaces"
        return collection("EthernetInterfaceCollection", "Ethernet Interface Collection", base,
                          [f"{base}/{NIC_ID}"])


@blp.route("/redfish/v1/Systems/<system_id>/EthernetInterfaces/<interface_id>")
class EthernetInterface(RedfishView):
    entity = "EthernetInterface"
    privileges = declare(entity, "GET", under=("ComputerSystemCollection", "ComputerSystem",
                                               "EthernetInterfaceCollection"))
    cacheable = True

    def get(self, system_id, interface_id):
        unit = _unit(system_id)
        _member("EthernetInterface", NIC_ID, interface_id)
        return nic_doc(unit)


# -- Storage and its drive ------------------------------------------------------------

def _storage(unit: dict) -> dict:
    st = unit["info"].get("storage", {})
    media_type, protocol = MEDIA.get(st.get("media"), (None, None))
    capacity = st.get("capacity_gib")
    return {"model": st.get("model"), "media_type": media_type, "protocol": protocol,
            "bytes": None if capacity is None else int(capacity * GIB)}


def storage_doc(unit: dict) -> dict:
    uid = unit["id"]
    base = f"/redfish/v1/Systems/{uid}/Storage/{STORAGE_ID}"
    return {
        "@odata.id": base,
        "@odata.type": odata_type("Storage"),
        "Id": STORAGE_ID,
        "Name": "Local storage",
        "Description": "The unit's boot medium",
        "Drives": [{"@odata.id": f"{base}/Drives/{DRIVE_ID}"}],
        "Drives@odata.count": 1,
        "Status": parts_status(unit),
    }


def drive_doc(unit: dict) -> dict:
    uid = unit["id"]
    st = _storage(unit)
    doc = {
        "@odata.id": f"/redfish/v1/Systems/{uid}/Storage/{STORAGE_ID}/Drives/{DRIVE_ID}",
        "@odata.type": odata_type("Drive"),
        "Id": DRIVE_ID,
        "Name": st["model"] or "Drive",
        "Model": st["model"],
        "MediaType": st["media_type"],
        "CapacityBytes": st["bytes"],
        "Status": parts_status(unit),
        "Links": {"Chassis": odata_id("Chassis", uid)},
    }
    if st["protocol"]:
        doc["Protocol"] = st["protocol"]
    return doc


@blp.route("/redfish/v1/Systems/<system_id>/Storage")
class StorageCollection(RedfishView):
    entity = "StorageCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, system_id):
        _unit(system_id)
        base = f"/redfish/v1/Systems/{system_id}/Storage"
        return collection("StorageCollection", "Storage Collection", base, [f"{base}/{STORAGE_ID}"])


@blp.route("/redfish/v1/Systems/<system_id>/Storage/<storage_id>")
class Storage(RedfishView):
    entity = "Storage"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, system_id, storage_id):
        unit = _unit(system_id)
        _member("Storage", STORAGE_ID, storage_id)
        return storage_doc(unit)


@blp.route("/redfish/v1/Systems/<system_id>/Storage/<storage_id>/Drives/<drive_id>")
class Drive(RedfishView):
    entity = "Drive"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, system_id, storage_id, drive_id):
        unit = _unit(system_id)
        _member("Storage", STORAGE_ID, storage_id)
        _member("Drive", DRIVE_ID, drive_id)
        return drive_doc(unit)


# -- SimpleStorage (what Ironic's inspection reads) ------------------------------------

def simple_storage_doc(unit: dict) -> dict:
    uid = unit["id"]
    st = _storage(unit)
    return {
        "@odata.id": f"/redfish/v1/Systems/{uid}/SimpleStorage/{STORAGE_ID}",
        "@odata.type": odata_type("SimpleStorage"),
        "Id": STORAGE_ID,
        "Name": "Local storage",
        "Description": "The unit's boot medium",
        "Devices": [{"Name": st["model"] or "Drive", "Model": st["model"], "CapacityBytes": st["bytes"],
                     "Status": parts_status(unit)}],
        "Status": parts_status(unit),
    }


@blp.route("/redfish/v1/Systems/<system_id>/SimpleStorage")
class SimpleStorageCollection(RedfishView):
    entity = "SimpleStorageCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, system_id):
        _unit(system_id)
        base = f"/redfish/v1/Systems/{system_id}/SimpleStorage"
        return collection("SimpleStorageCollection", "Simple Storage Collection", base,
                          [f"{base}/{STORAGE_ID}"])


@blp.route("/redfish/v1/Systems/<system_id>/SimpleStorage/<storage_id>")
class SimpleStorage(RedfishView):
    entity = "SimpleStorage"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, system_id, storage_id):
        unit = _unit(system_id)
        _member("SimpleStorage", STORAGE_ID, storage_id)
        return simple_storage_doc(unit)
