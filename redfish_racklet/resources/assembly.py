"""A tray's Assembly (/redfish/v1/Chassis/UnitN/Assembly): the board the tray carries, as
its FRU facts say — read from the tray's HAT ID EEPROM on a real rack, from the manifest
otherwise.

This is what DMTF's ``rf_assembly.py info`` and inventory tools read. The rack itself
has no FRU memory, so Chassis/Rack has no Assembly. The EEPROM is not offered for
download or upload (no ``BinaryDataURI``): it is written once, when the tray is made,
with the HAT tools, and a management network is no place to rewrite it.
"""

from __future__ import annotations

from flask_smorest import Blueprint

from ..privileges import declare
from ..web import RedfishView
from .common import not_found, odata_type, store, unit_status

blp = Blueprint("assembly", __name__, description="The board in each tray (FRU data)")

BOARD_MEMBER = "0"


def assembly_uri(uid: str) -> str:
    return f"/redfish/v1/Chassis/{uid}/Assembly"


def assembly_doc(unit: dict) -> dict:
    uid, info = unit["id"], unit["info"]
    base = assembly_uri(uid)
    board = {
        "@odata.id": f"{base}#/Assemblies/{BOARD_MEMBER}",
        "MemberId": BOARD_MEMBER,
        "Name": info["model"],
        "Description": f"The compute board in tray {unit['slot']}",
        "PhysicalContext": "SystemBoard",
        "Vendor": info["manufacturer"],
        "Model": info["model"],
        "SerialNumber": info["serial_number"],
        "Replaceable": True,   # the tray slides out while the rack runs
        "Location": {"PartLocation": {"ServiceLabel": f"Slot {unit['slot']}", "LocationType": "Slot",
                                      "LocationOrdinalValue": unit["slot"]}},
        "Status": unit_status(unit),
    }
    for key, prop in (("part_number", "PartNumber"), ("sku", "SKU")):
        if info.get(key):
            board[prop] = info[key]
    return {
        "@odata.id": base,
        "@odata.type": odata_type("Assembly"),
        "Id": "Assembly",
        "Name": f"Assembly of tray {unit['slot']}",
        "Assemblies": [board],
        "Assemblies@odata.count": 1,
    }


@blp.route("/redfish/v1/Chassis/<chassis_id>/Assembly")
class Assembly(RedfishView):
    entity = "Assembly"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, chassis_id):
        """The tray's board: vendor, model, serial and part number, slot, status."""
        unit = store().unit(chassis_id)
        if unit is None:
            raise not_found("Assembly", f"{chassis_id}/Assembly")
        return assembly_doc(unit)
