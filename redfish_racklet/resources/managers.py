"""Managers: the Rack Management Controller running this service (Managers/RMC)."""

from __future__ import annotations

import datetime as dt

from flask_smorest import Blueprint

from .. import __version__
from ..web import LOGIN, RedfishView, collection, odata_id
from .common import not_found, odata_type, store

blp = Blueprint("managers", __name__, description="Managers")

RMC_ID = "RMC"


@blp.route("/redfish/v1/Managers")
class Managers(RedfishView):
    privileges = {"GET": LOGIN}
    cacheable = True

    def get(self):
        return collection("ManagerCollection", "Manager Collection", "/redfish/v1/Managers",
                          [f"/redfish/v1/Managers/{RMC_ID}"])


@blp.route("/redfish/v1/Managers/<manager_id>")
class Manager(RedfishView):
    privileges = {"GET": LOGIN}

    def get(self, manager_id):
        if manager_id != RMC_ID:
            raise not_found("Manager", manager_id)
        units = store().units()
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        return {
            "@odata.id": f"/redfish/v1/Managers/{RMC_ID}",
            "@odata.type": odata_type("Manager"),
            "Id": RMC_ID,
            "Name": "Rack Management Controller",
            "ManagerType": "RackManager",
            "Manufacturer": "Racklet",
            "Model": "redfish-racklet",
            "FirmwareVersion": __version__,
            "UUID": store().service_uuid(),
            "ServiceEntryPointUUID": store().service_uuid(),
            "DateTime": now.isoformat(),
            "DateTimeLocalOffset": "+00:00",
            "Status": {"State": "Enabled", "Health": "OK"},
            "Links": {
                "ManagerForChassis": [odata_id("Chassis", "Rack")] + [odata_id("Chassis", u["id"]) for u in units],
                "ManagerForChassis@odata.count": len(units) + 1,
                "ManagerForServers": [odata_id("Systems", u["id"]) for u in units],
                "ManagerForServers@odata.count": len(units),
                "ManagerInChassis": odata_id("Chassis", "Rack"),
            },
        }
