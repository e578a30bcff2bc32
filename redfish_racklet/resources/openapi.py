"""The service's OpenAPI document, served at ``/redfish/v1/openapi.yaml`` (DSP0266 names this
URI, and lists it among those that need no authentication).

flask-smorest builds the document from the registered blueprints. The views themselves carry
little documentation (their privileges, their Redfish entity, sometimes a docstring), so the
apispec plugin ``RackletDocs`` below completes every operation as flask-smorest registers it:
a summary and description, tags, the path parameters described, the security it needs, a
request body for PATCH and POST, the success responses and the Redfish error responses. It
only describes: no route's behaviour changes. ``create_app`` passes the plugin to the ``Api``
(``spec_kwargs={"extra_plugins": [...]}``) and uses ``RackletApi`` so that flask-smorest's own
error responses carry the Redfish error body (``RedfishErrorSchema``).

The YAML is made once per process (the routes do not change while it runs).
"""

from __future__ import annotations

import copy

import marshmallow as ma
from apispec import BasePlugin
from apispec.yaml_utils import dict_to_yaml
from flask import Response, current_app
from flask_smorest import Api, Blueprint

from ..privileges import exception
from ..web import RedfishView

blp = Blueprint("openapi", __name__, description="This OpenAPI document")

URI = "/redfish/v1/openapi.yaml"
YAML_TYPE = "application/yaml; charset=utf-8"

# -- the Redfish error body ------------------------------------------------------------


class MessageSchema(ma.Schema):
    """One entry of ``@Message.ExtendedInfo`` (DMTF Message; it may carry more of its properties)."""

    class Meta:
        unknown = ma.INCLUDE

    MessageId = ma.fields.String(required=True, metadata={
        "description": "Registry, version and message key, e.g. Base.1.19.PropertyValueNotInList"})
    Message = ma.fields.String(metadata={"description": "The message, for a person"})
    MessageArgs = ma.fields.List(ma.fields.String(), metadata={"description": "The values in the message"})
    MessageSeverity = ma.fields.String(metadata={"description": "OK, Warning or Critical"})
    Severity = ma.fields.String(metadata={"description": "Deprecated twin of MessageSeverity"})
    Resolution = ma.fields.String(metadata={"description": "What to do about it"})
    RelatedProperties = ma.fields.List(ma.fields.String(),
                                       metadata={"description": "JSON pointers of the properties concerned"})


class RedfishErrorBodySchema(ma.Schema):
    """The ``error`` object of a Redfish error response."""

    code = ma.fields.String(required=True, metadata={"description": "A MessageId, e.g. Base.1.19.GeneralError"})
    message = ma.fields.String(required=True, metadata={"description": "The message of that MessageId"})
    extended_info = ma.fields.List(ma.fields.Nested(MessageSchema), data_key="@Message.ExtendedInfo",
                                   metadata={"description": "The messages that say what went wrong"})


class RedfishErrorSchema(ma.Schema):
    """Every 4xx and 5xx answer of the service (DSP0266 "Error responses")."""

    error = ma.fields.Nested(RedfishErrorBodySchema, required=True)


class RackletApi(Api):
    """flask-smorest's Api whose documented error responses are Redfish-shaped."""

    ERROR_SCHEMA = RedfishErrorSchema
    DEFAULT_ERROR_RESPONSE_NAME = None  # each operation lists its error statuses instead


# -- what the document says beyond the views -------------------------------------------

SECURITY_SCHEMES = {
    "basicAuth": {"type": "http", "scheme": "basic",
                  "description": "HTTP Basic with an account's UserName and Password."},
    "sessionToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                     "description": "A session's token: POST UserName and Password to "
                                    "/redfish/v1/SessionService/Sessions; the answer's X-Auth-Token header."},
    "clientCertificate": {"type": "mutualTLS",
                          "description": "A TLS client certificate from `redfish-racklet cert issue NAME`: "
                                         "the request runs as account NAME."},
}
SECURITY = [{"basicAuth": []}, {"sessionToken": []}, {"clientCertificate": []}]

SPEC_OPTIONS = {
    "info": {"description": (
        "The Redfish service of a Racklet rack (DSP0266). Every GET also answers HEAD (the same "
        "headers, no body). Resources are JSON (DMTF Redfish schemas, see /redfish/v1/$metadata); "
        "errors are Redfish error bodies. Writes may send If-Match with the resource's ETag.")},
    "security": SECURITY,
}

# Statuses any request may get, and those only requests with a body or a login get.
_ERRORS_ALWAYS = (404, 405, 412, 500, 503)
_ERRORS_LOGIN = (401, 403)
_ERRORS_WRITE = (400, 409, 415)
_STATUS_NAMES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                 405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 412: "PRECONDITION_FAILED",
                 415: "UNSUPPORTED_MEDIA_TYPE", 500: "INTERNAL_SERVER_ERROR",
                 503: "SERVICE_UNAVAILABLE"}

# What a GET answers when it is not JSON, by route.
_GET_TYPES = {
    "/redfish/v1/$metadata": ("application/xml",),
    "/redfish/v1/Schemas/<name>": ("application/xml", "application/json"),
    URI: ("application/yaml",),
    "/": ("text/html",),
    "/static/<name>": ("text/javascript", "text/css"),
}

# Path parameters whose meaning the name alone does not say.
_PARAMS = {
    "name": "The file name",
    "system_id": "A compute unit's Id, e.g. Unit1 (see /redfish/v1/Systems)",
    "chassis_id": "A chassis Id: Rack, or a tray such as Unit1 (see /redfish/v1/Chassis)",
    "manager_id": "A manager Id: RMC (this service) or a unit's BMC such as Unit1-BMC (see /redfish/v1/Managers)",
    "account_id": "An account's Id (see /redfish/v1/AccountService/Accounts)",
    "session_id": "A session's Id (see /redfish/v1/SessionService/Sessions)",
}


def _patch_schemas() -> dict[str, type[ma.Schema] | None]:
    """The PATCH bodies the code checks, whole, against a marshmallow schema of its writable
    properties (bodies.check_patch), by endpoint; any other body is documented as an object.
    Precise bodies let a fuzzer (tests/test_fuzz_api.py) send the real properties."""
    from . import account_service, chassis_power, manager_network, power_equipment, session_service, systems
    nothing = getattr(manager_network, "NothingWritable", None)
    return {"chassis_power.LimitControl": getattr(chassis_power, "LimitControlPatch", None),
            "power_equipment.Outlet": getattr(power_equipment, "OutletPatch", None),
            "session_service.SessionService": getattr(session_service, "SessionServicePatch", None),
            "account_service.AccountService": getattr(account_service, "AccountServicePatch", None),
            "chassis.Chassis": getattr(systems, "SystemPatch", None),
            "systems.System": _system_patch(systems),
            "manager_network.NetworkProtocol": nothing,
            "manager_network.EthernetInterface": nothing}


def _system_patch(systems) -> type[ma.Schema] | None:
    """A System's PATCH: SystemPatch's flat properties, and Boot (checked by systems.BOOT_WRITABLE)."""
    flat, boot = getattr(systems, "SystemPatch", None), getattr(systems, "BOOT_WRITABLE", None)
    if flat is None or boot is None:
        return None
    return type("ComputerSystemPatch", (flat,), {"Boot": ma.fields.Dict(metadata={
        "description": "Boot override: " + ", ".join(boot)})})


def _words(identifier: str) -> str:
    """"system_id" -> "system"; "LogService.ClearLog" stays."""
    return identifier.removesuffix("_id").replace("_", " ")


class RackletDocs(BasePlugin):
    """Completes each operation from its Flask rule and view class (see the module doc)."""

    def __init__(self, app):
        super().__init__()
        self.app = app

    def init_spec(self, spec):
        super().init_spec(spec)
        self.spec = spec
        for name, scheme in SECURITY_SCHEMES.items():
            spec.components.security_scheme(name, scheme)

    def path_helper(self, path=None, operations=None, parameters=None, rule=None, **kwargs):
        """Describe the path parameters FlaskPlugin found (it runs first); keep the path."""
        for param in parameters or ():
            if isinstance(param, dict) and param.get("in") == "path" and "description" not in param:
                name = param["name"]
                param["description"] = _PARAMS.get(name, f"The {_words(name)}'s Id (the last segment of its @odata.id)")
        return None

    def operation_helper(self, path=None, operations=None, rule=None, **kwargs):
        if rule is None or operations is None:
            return
        view = getattr(self.app.view_functions.get(rule.endpoint), "view_class", None)
        privileges = getattr(view, "privileges", {})
        entity = getattr(view, "entity", None)
        for method, op in operations.items():
            public = privileges.get(method.upper(), ()) is None
            self._complete(rule, method, op, view, entity, public)
        if "get" in operations and "head" not in operations:
            operations["head"] = self._head(operations["get"])

    def _complete(self, rule, method: str, op: dict, view, entity: str | None, public: bool) -> None:
        action = "/Actions/" in rule.rule
        kind = ("action" if action else "create" if method == "post" else method)
        what = entity or (view.__name__ if view else rule.endpoint)
        if action:
            what = rule.rule.rsplit("/", 1)[-1]
        if "summary" not in op:
            op["summary"] = {"get": f"Read the {what}", "patch": f"Change the {what}",
                             "delete": f"Delete the {what}", "action": f"Run the {what} action",
                             "create": f"Create a member of the {what}", "put": f"Replace the {what}"}.get(kind, what)
        if "description" not in op:
            op["description"] = self._description(view, entity, method, public)
        if public:
            op["security"] = []
        if method in ("patch", "post", "put") and "requestBody" not in op:
            op["requestBody"] = self._body(rule, method, action)
        responses = op.setdefault("responses", {})
        for status, response in self._successes(rule, method, kind).items():
            responses.setdefault(status, response)
        codes = list(_ERRORS_ALWAYS) + ([] if public else list(_ERRORS_LOGIN))
        if method in ("patch", "post", "put", "delete"):
            codes += _ERRORS_WRITE
        for code in sorted(codes):
            responses.setdefault(str(code), _STATUS_NAMES[code])

    @staticmethod
    def _description(view, entity: str | None, method: str, public: bool) -> str:
        """The view's docstring (else its DMTF schema), then who may call it."""
        if view is not None and view.__doc__:
            text = " ".join(view.__doc__.split())
        elif entity:
            text = f"A Redfish {entity} (DMTF schema: https://redfish.dmtf.org/schemas/v1/{entity}.json)."
        else:
            text = ""
        needed = getattr(view, "privileges", {}).get(method.upper())
        if public:
            who = "No login needed."
        elif needed:
            who = "Needs the privilege " + " or ".join(" and ".join(alt) for alt in needed) + "."
        else:
            who = ""
        return " ".join(part for part in (text, who) if part)

    def _body(self, rule, method: str, action: bool) -> dict:
        if rule.rule.endswith("/update-multipart"):
            return {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "properties": {
                    "UpdateParameters": {"type": "object", "description": "JSON: Targets, @Redfish.OperationApplyTime"},
                    "UpdateFile": {"type": "string", "format": "binary", "description": "The signed bundle"}},
                "required": ["UpdateParameters", "UpdateFile"]}}}}
        schema = _patch_schemas().get(rule.endpoint) if method == "patch" else None
        if schema is not None:
            name = schema.__name__
            if name not in self.spec.components.schemas:
                self.spec.components.schema(name, schema=schema)  # via the marshmallow plugin
            body_schema = {"$ref": f"#/components/schemas/{name}"}
        else:
            body_schema = {"type": "object", "description": (
                "The action's parameters" if action else
                "The properties to change" if method == "patch" else "The new member's properties")}
        return {"required": True, "content": {"application/json": {"schema": body_schema}}}

    @staticmethod
    def _successes(rule, method: str, kind: str) -> dict:
        json_object = {"application/json": {"schema": {"type": "object"}}}
        if method == "get":
            types = _GET_TYPES.get(rule.rule)
            content = {t: {"schema": {"type": "string"}} for t in types} if types else json_object
            return {"200": {"description": "The resource", "content": content}}
        if kind == "create":
            return {"201": {"description": "Created: the new member (its URI in Location)", "content": json_object}}
        if kind == "action":
            return {"200": {"description": "Done; the body says how it went", "content": json_object},
                    "202": {"description": "Accepted: a task monitor URI in Location", "content": json_object},
                    "204": {"description": "Done"}}
        if kind == "delete":
            return {"204": {"description": "Deleted"}}
        return {"200": {"description": "Changed: the resource as it is now", "content": json_object},
                "204": {"description": "Changed"}}

    @staticmethod
    def _head(get: dict) -> dict:
        head = copy.deepcopy({k: v for k, v in get.items() if k not in ("responses", "summary", "operationId")})
        head["summary"] = f"{get.get('summary', 'Read')} (headers only)"
        head["responses"] = {status: ({"description": r["description"]} if isinstance(r, dict) else r)
                             for status, r in get.get("responses", {}).items()}
        return head


def spec_kwargs(app) -> dict:
    """The ``spec_kwargs`` of the app's ``RackletApi``."""
    return {"extra_plugins": [RackletDocs(app)], **SPEC_OPTIONS}


_TOP_ORDER = ("openapi", "info", "security", "tags", "paths", "components")


def document() -> bytes:
    """This app's OpenAPI document as YAML, made on first use and kept."""
    cache = current_app.extensions.setdefault("racklet_openapi", {})
    if "yaml" not in cache:
        api = current_app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
        spec = api.spec.to_dict()
        head = {key: spec.pop(key) for key in _TOP_ORDER if key in spec}  # reads top-down
        cache["yaml"] = dict_to_yaml({**head, **spec}, {"sort_keys": False, "allow_unicode": True}).encode()
    return cache["yaml"]


@blp.route(URI)
class OpenApiDocument(RedfishView):
    """The OpenAPI 3.1 document of this service (this file). Whatever the Accept header asks,
    the answer is YAML: there is one representation, as for $metadata."""

    entity = None  # not a registry entity: see privileges.EXCEPTIONS
    privileges = {"GET": exception(URI, "GET")}

    def get(self):
        return Response(document(), content_type=YAML_TYPE)
