"""OData documents ($metadata, the service document) and the schemas the service publishes.

$metadata references the DMTF CSDL of every type served (by its public URI) and the
project's own OEM schema (by a local URI, served here from ``schemas/``).
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from flask import Response
from flask_smorest import Blueprint

from ..manifest import schema_file
from ..privileges import declare, exception
from ..web import RedfishView, collection
from .common import COLLECTIONS, VERSIONS, not_found, odata_type
from .service_root import service_root_doc

blp = Blueprint("metadata", __name__, description="OData metadata and schemas")

OEM_CSDL = "Racklet_v1.xml"
OEM_JSON = "Racklet.v1_0_0.json"
OEM_NAMESPACES = ("Racklet", "Racklet.v1_0_0")
SCHEMA_URI = "/redfish/v1/Schemas"

# Types referenced but not served as resources of their own.
_SUPPORT = {"Resource": ("Resource", "Resource.v1_23_0"), "Message": ("Message", "Message.v1_3_0"),
            "RedfishExtensions": ("RedfishExtensions.v1_0_0",)}


def _references() -> list[tuple[str, tuple[str, ...]]]:
    refs = [(f"http://redfish.dmtf.org/schemas/v1/{name}_v1.xml", (name, f"{name}.{ver}"))
            for name, ver in VERSIONS.items()]
    refs += [(f"http://redfish.dmtf.org/schemas/v1/{name}_v1.xml", (name,)) for name in COLLECTIONS]
    refs += [(f"http://redfish.dmtf.org/schemas/v1/{name}_v1.xml", ns) for name, ns in _SUPPORT.items()]
    refs.append((f"{SCHEMA_URI}/{OEM_CSDL}", OEM_NAMESPACES))
    return refs


def metadata_xml() -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">']
    for uri, namespaces in _references():
        out.append(f"  <edmx:Reference Uri={quoteattr(uri)}>")
        out += [f"    <edmx:Include Namespace={quoteattr(ns)}/>" for ns in namespaces]
        out.append("  </edmx:Reference>")
    out += ["  <edmx:DataServices>",
            '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">',
            f'      <EntityContainer Name="Service" Extends="ServiceRoot.{VERSIONS["ServiceRoot"]}.ServiceContainer"/>',
            "    </Schema>", "  </edmx:DataServices>", "</edmx:Edmx>", ""]
    return "\n".join(out)


@blp.route("/redfish/v1/$metadata")
class Metadata(RedfishView):
    entity = None  # not a registry entity: see privileges.EXCEPTIONS
    privileges = {"GET": exception("/redfish/v1/$metadata", "GET")}

    def get(self):
        return Response(metadata_xml(), content_type="application/xml; charset=utf-8")


@blp.route("/redfish/v1/odata")
class ServiceDocument(RedfishView):
    entity = None  # not a registry entity: see privileges.EXCEPTIONS
    privileges = {"GET": exception("/redfish/v1/odata", "GET")}

    def get(self):
        return service_document(service_root_doc())


def service_document(root: dict) -> dict:
    """The service root and every resource it links, top level or in its Links."""
    links = [(name, value["@odata.id"]) for doc in (root, root.get("Links", {}))
             for name, value in doc.items() if isinstance(value, dict) and set(value) == {"@odata.id"}]
    return {
        "@odata.context": "/redfish/v1/$metadata",
        "value": [{"name": "Service", "kind": "Singleton", "url": "/redfish/v1/"}]
        + [{"name": name, "kind": "Singleton", "url": url} for name, url in links],
    }


@blp.route(f"{SCHEMA_URI}/<name>")
class SchemaFile(RedfishView):
    entity = None  # a file, not a registry entity: see privileges.EXCEPTIONS
    privileges = {"GET": exception(f"{SCHEMA_URI}/<name>", "GET")}

    def get(self, name):
        if name == OEM_CSDL:
            return Response(schema_file(name).read_bytes(), content_type="application/xml; charset=utf-8")
        if name == OEM_JSON:
            return Response(schema_file(name).read_bytes(), content_type="application/json; charset=utf-8")
        raise not_found("Schema", name)


@blp.route("/redfish/v1/JsonSchemas")
class JsonSchemas(RedfishView):
    entity = "JsonSchemaFileCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        return collection("JsonSchemaFileCollection", "JSON Schema File Collection",
                          "/redfish/v1/JsonSchemas", ["/redfish/v1/JsonSchemas/Racklet"])


@blp.route("/redfish/v1/JsonSchemas/<schema_id>")
class JsonSchema(RedfishView):
    entity = "JsonSchemaFile"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, schema_id):
        if schema_id != "Racklet":
            raise not_found("JsonSchemaFile", schema_id)
        return {
            "@odata.id": "/redfish/v1/JsonSchemas/Racklet",
            "@odata.type": odata_type("JsonSchemaFile"),
            "Id": "Racklet",
            "Name": "Racklet OEM schema",
            "Description": "The Oem.Racklet extensions of this service",
            "Languages": ["en"],
            "Schema": "#Racklet.v1_0_0",
            "Location": [{"Language": "en", "Uri": f"{SCHEMA_URI}/{OEM_JSON}"}],
            "Location@odata.count": 1,
        }
