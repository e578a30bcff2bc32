"""ServiceRoot (/redfish/v1) and the version document (/redfish). Both need no login."""

from __future__ import annotations

from flask_smorest import Blueprint

from .. import __version__, odata
from ..privileges import declare, exception
from ..web import RedfishView, json_response, odata_id
from .common import odata_type, store

blp = Blueprint("service_root", __name__, description="Service root")

REDFISH_VERSION = "1.20.0"


@blp.route("/redfish")
class VersionDocument(RedfishView):
    entity = None  # not a registry entity: see privileges.EXCEPTIONS
    privileges = {"GET": exception("/redfish", "GET")}

    def get(self):
        return json_response({"v1": "/redfish/v1/"})


@blp.route("/redfish/v1")
class ServiceRoot(RedfishView):
    entity = "ServiceRoot"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        return service_root_doc()


def service_root_doc() -> dict:
    """The ServiceRoot; its links are also what the OData service document lists."""
    return {
        "@odata.id": "/redfish/v1",
        "@odata.type": odata_type("ServiceRoot"),
        "Id": "RootService",
        "Name": "Racklet Redfish Service",
        "RedfishVersion": REDFISH_VERSION,
        "UUID": store().service_uuid(),
        "Vendor": "Racklet",
        "Product": f"redfish-racklet {__version__}",
        "ProtocolFeaturesSupported": odata.PROTOCOL_FEATURES,
        "Systems": odata_id("Systems"),
        "Chassis": odata_id("Chassis"),
        "Managers": odata_id("Managers"),
        "PowerEquipment": odata_id("PowerEquipment"),
        "AccountService": odata_id("AccountService"),
        "SessionService": odata_id("SessionService"),
        "CertificateService": odata_id("CertificateService"),
        "EventService": odata_id("EventService"),
        "Tasks": odata_id("TaskService"),
        "UpdateService": odata_id("UpdateService"),
        "TelemetryService": odata_id("TelemetryService"),
        "JsonSchemas": odata_id("JsonSchemas"),
        "Links": {"Sessions": odata_id("SessionService", "Sessions")},
    }
