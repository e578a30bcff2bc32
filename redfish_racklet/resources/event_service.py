"""EventService and its push subscriptions (EventDestination); delivery is the agent's
(``agent/delivery.py``); ``ServerSentEventUri`` names the SSE listener (``sse.py``), a process of
its own on its own port, while it runs.

- ``/redfish/v1/EventService``: retry settings (PATCH), what can be subscribed to, and
  ``SubmitTestEvent``, which writes its event to the journal like any other event.
- ``/redfish/v1/EventService/Subscriptions``: POST creates a subscription (https only,
  at most ``MAX_SUBSCRIPTIONS``); a member can be PATCHed (Context, DeliveryRetryPolicy,
  HttpHeaders, ``Status/State: Enabled`` to resume) and DELETEd, by ConfigureManager or by
  its owner (ConfigureSelf), as the privilege registry says. HttpHeaders are write-only.
"""

from __future__ import annotations

import datetime as dt
import re
import time

from flask import request
from flask_smorest import Blueprint

from .. import sse, telemetry
from ..agent import delivery, events
from ..messages import RedfishError, message
from ..privileges import declare
from ..web import (RedfishView, collection, json_body, json_response, value_error, with_etag)
from .common import not_found, odata_type, principal, require_self_or, store
from .systems import http_boot_uri_problem

blp = Blueprint("event_service", __name__, description="Event service and push subscriptions")

SERVICE = "/redfish/v1/EventService"
SUBSCRIPTIONS = f"{SERVICE}/Subscriptions"
SUBMIT = "EventService.SubmitTestEvent"
RESUME = "EventDestination.ResumeSubscription"
MAX_SUBSCRIPTIONS = 16
RETRY_ATTEMPTS_RANGE = (0, 10)
RETRY_INTERVAL_RANGE = (1, 3600)
REGISTRY_PREFIXES = sorted({registry.split(".")[0] for registry, _ in events.MESSAGES})
RETRY_POLICIES = ("TerminateAfterRetries", "SuspendRetries", "RetryForever", "RetryForeverWithBackoff")
SEVERITIES = ("OK", "Warning", "Critical")
CONTEXT_MAX = 256
MAX_HEADERS = 16
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
HEADER_VALUE = re.compile(r"[\x20-\x7e\t]{0,1024}")
FORBIDDEN_HEADERS = {"content-type", "content-length", "host", "transfer-encoding", "connection"}
# A new subscription's read-only properties (PropertyNotWritable, not PropertyUnknown).
READ_ONLY = {"Id", "Name", "Description", "Status", "Actions", "EventTypes", "MessageIds", "Severities",
             "SubordinateResources", "IncludeOriginOfCondition", "SendHeartbeat", "VerifyCertificate",
             "Certificates", "ClientCertificates", "ExcludeMessageIds", "ExcludeRegistryPrefixes",
             "HeartbeatIntervalMinutes", "OEMProtocol", "OEMSubscriptionType",
             "SNMP", "SyslogFilters", "BackupDestinations"}


def retry_settings() -> tuple[int, int]:
    return delivery.retry_settings(store())


# -- documents ----------------------------------------------------------------------------

def service_doc() -> dict:
    attempts, interval = retry_settings()
    doc = {
        "@odata.id": SERVICE,
        "@odata.type": odata_type("EventService"),
        "Id": "EventService",
        "Name": "Event Service",
        "ServiceEnabled": True,
        "Status": {"State": "Enabled", "Health": "OK"},
        "DeliveryRetryAttempts": attempts,
        "DeliveryRetryIntervalSeconds": interval,
        "EventFormatTypes": ["Event", "MetricReport"],
        "RegistryPrefixes": REGISTRY_PREFIXES,
        "ResourceTypes": list(events.JOURNAL_RESOURCE_TYPES),
        "SubordinateResourcesSupported": False,
        "Subscriptions": {"@odata.id": SUBSCRIPTIONS},
        "Actions": {f"#{SUBMIT}": {"target": f"{SERVICE}/Actions/{SUBMIT}"}},
    }
    port = store().get_meta(sse.PORT_META)
    if port:   # the SSE listener runs (a process of its own, on its own port: see sse.py)
        doc["ServerSentEventUri"] = sse.uri(sse.host_name(request.host) or "127.0.0.1", int(port))
        doc["SSEFilterPropertiesSupported"] = {p: True for p in sse.FILTER_PROPERTIES}
    return doc


def stream_doc(sub: dict) -> dict:
    """The EventDestination of an open SSE stream: what it filters, whose it is; DELETE
    ends the stream."""
    s = sub["settings"]
    return {
        "@odata.id": f"{SUBSCRIPTIONS}/{sub['id']}",
        "@odata.type": odata_type("EventDestination"),
        "Id": str(sub["id"]),
        "Name": f"Server-Sent Event stream {sub['id']}",
        "Destination": s["destination"],
        "Context": s["context"],
        "Protocol": "Redfish",
        "SubscriptionType": "SSE",
        "EventFormatType": "Event",
        "SubordinateResources": False,
        "Status": {"State": "Enabled", "Health": "OK"},
    }


def destination_doc(sub: dict) -> dict:
    if sub["settings"].get("sse"):
        return stream_doc(sub)
    s = sub["settings"]
    uri = f"{SUBSCRIPTIONS}/{sub['id']}"
    return {
        "@odata.id": uri,
        "@odata.type": odata_type("EventDestination"),
        "Id": str(sub["id"]),
        "Name": f"Event Subscription {sub['id']}",
        "Destination": s["destination"],
        "Context": s.get("context"),
        "Protocol": "Redfish",
        "SubscriptionType": "RedfishEvent",
        "EventFormatType": s.get("format", "Event"),
        "MetricReportDefinitions": [{"@odata.id": d} for d in s.get("report_definitions", [])],
        "RegistryPrefixes": s.get("registry_prefixes", []),
        "ResourceTypes": s.get("resource_types", []),
        "OriginResources": [{"@odata.id": o} for o in s.get("origin_resources", [])],
        "OriginResources@odata.count": len(s.get("origin_resources", [])),
        "SubordinateResources": False,
        "HttpHeaders": [],  # write-only: never shown
        "DeliveryRetryPolicy": s.get("policy", "SuspendRetries"),
        "Status": {"State": sub["state"], "Health": "OK" if sub["state"] == "Enabled" else "Warning"},
        "Actions": {f"#{RESUME}": {"target": f"{uri}/Actions/{RESUME}"}},
    }


# -- checks ---------------------------------------------------------------------------------

def _string_list(value, allowed, where: str, errors: list) -> list | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(value_error("PropertyValueTypeError", value, where))
        return None
    bad = [v for v in value if v not in allowed]
    for v in bad:
        errors.append(value_error("PropertyValueNotInList", v, where))
    return None if bad else sorted(set(value))


def _headers(value, errors: list) -> list | None:
    if not isinstance(value, list) or len(value) > MAX_HEADERS or \
            not all(isinstance(h, dict) for h in value):
        errors.append(value_error("PropertyValueTypeError", "<hidden>", "HttpHeaders"))
        return None
    out = []
    for h in value:
        for k, v in h.items():
            if not isinstance(v, str):
                errors.append(value_error("PropertyValueTypeError", "<hidden>", "HttpHeaders"))
                return None
            if not HEADER_NAME.fullmatch(k) or not HEADER_VALUE.fullmatch(v) or k.lower() in FORBIDDEN_HEADERS:
                errors.append(value_error("PropertyValueFormatError", "<hidden>", "HttpHeaders"))
                return None
            out.append({k: v})
    return out


def _context(value, errors: list):
    if value is not None and not isinstance(value, str):
        errors.append(value_error("PropertyValueTypeError", value, "Context"))
    elif isinstance(value, str) and len(value) > CONTEXT_MAX:
        errors.append(value_error("StringValueTooLong", value, "Context", CONTEXT_MAX))
    return value


def _policy(value, errors: list):
    if not isinstance(value, str):
        errors.append(value_error("PropertyValueTypeError", value, "DeliveryRetryPolicy"))
    elif value not in RETRY_POLICIES:
        errors.append(value_error("PropertyValueNotInList", value, "DeliveryRetryPolicy"))
    return value


def _fixed(value, allowed: str, where: str, errors: list) -> None:
    if not isinstance(value, str):
        errors.append(value_error("PropertyValueTypeError", value, where))
    elif value != allowed:
        errors.append(value_error("PropertyValueNotInList", value, where))


def create_settings(body: dict) -> dict:
    body = {k: v for k, v in body.items() if not k.startswith("@odata.")}
    missing = [k for k in ("Destination", "Protocol") if k not in body]
    if missing:
        raise RedfishError(400, [message("PropertyMissing", k, related=[f"#/{k}"]) for k in missing])
    errors: list[dict] = []
    out: dict = {"registry_prefixes": [], "resource_types": [], "origin_resources": [], "headers": [],
                 "policy": "SuspendRetries", "context": None}
    for key, value in body.items():
        if key == "Destination":
            problem = {None: "PropertyValueTypeError", "": "PropertyValueFormatError"}.get(
                value, None) if value in (None, "") else http_boot_uri_problem(value)
            if problem:
                errors.append(value_error(problem, value, key, 2048))
            out["destination"] = value
        elif key == "Protocol":
            _fixed(value, "Redfish", key, errors)
        elif key == "SubscriptionType":
            _fixed(value, "RedfishEvent", key, errors)
        elif key == "EventFormatType":
            if value not in ("Event", "MetricReport"):
                errors.append(value_error("PropertyValueNotInList", value, key))
            out["format"] = value
        elif key == "MetricReportDefinitions":
            prefix = telemetry.DEFINITIONS + "/"
            if not isinstance(value, list) or len(value) > 64 or not all(
                    isinstance(o, dict) and set(o) == {"@odata.id"} and isinstance(o["@odata.id"], str)
                    and o["@odata.id"].startswith(prefix) and len(o["@odata.id"]) <= 256 for o in value):
                errors.append(value_error("PropertyValueTypeError", value, key))
            else:
                out["report_definitions"] = sorted({o["@odata.id"].rstrip("/") for o in value})
        elif key == "Context":
            out["context"] = _context(value, errors)
        elif key == "RegistryPrefixes":
            out["registry_prefixes"] = _string_list(value, REGISTRY_PREFIXES, key, errors)
        elif key == "ResourceTypes":
            out["resource_types"] = _string_list(value, list(events.JOURNAL_RESOURCE_TYPES), key, errors)
        elif key == "OriginResources":
            if not isinstance(value, list) or len(value) > 64 or not all(
                    isinstance(o, dict) and set(o) == {"@odata.id"} and isinstance(o["@odata.id"], str)
                    and o["@odata.id"].startswith("/redfish/v1/") and len(o["@odata.id"]) <= 512 for o in value):
                errors.append(value_error("PropertyValueTypeError", value, key))
            else:
                out["origin_resources"] = sorted({o["@odata.id"].rstrip("/") for o in value})
        elif key == "HttpHeaders":
            out["headers"] = _headers(value, errors)
        elif key == "DeliveryRetryPolicy":
            out["policy"] = _policy(value, errors)
        else:
            errors.append(message("PropertyNotWritable" if key in READ_ONLY else "PropertyUnknown", key,
                                  related=[f"#/{key}"]))
    if errors:
        raise RedfishError(400, errors)
    return out


def _subscription(sub_id: str) -> dict:
    sub = store().subscription(int(sub_id)) if re.fullmatch(r"[1-9][0-9]{0,17}", sub_id) else None
    if sub is None:
        raise not_found("EventDestination", sub_id)
    return sub


# -- routes -----------------------------------------------------------------------------------

@blp.route(SERVICE)
class EventService(RedfishView):
    entity = "EventService"
    privileges = declare(entity, "GET", "PATCH")  # ServerSentEventUri names the Host asked: not cacheable

    def get(self):
        return service_doc()

    def patch(self):
        body = {k: v for k, v in json_body().items() if not k.startswith("@odata.")}
        if not body:
            raise RedfishError.of(400, "NoOperation")
        current = service_doc()
        errors, changes = [], {}
        ranges = {"DeliveryRetryAttempts": ("event_retry_attempts", RETRY_ATTEMPTS_RANGE),
                  "DeliveryRetryIntervalSeconds": ("event_retry_interval", RETRY_INTERVAL_RANGE)}
        for key, value in body.items():
            if key not in ranges:
                errors.append(message("PropertyNotWritable" if key in current else "PropertyUnknown", key,
                                      related=[f"#/{key}"]))
            elif not isinstance(value, int) or isinstance(value, bool):
                errors.append(value_error("PropertyValueTypeError", value, key))
            elif not ranges[key][1][0] <= value <= ranges[key][1][1]:
                errors.append(value_error("PropertyValueOutOfRange", value, key))
            else:
                changes[ranges[key][0]] = str(value)
        if errors:
            raise RedfishError(400, errors)
        for k, v in changes.items():
            store().set_meta(k, v)
        return json_response(with_etag(service_doc()))


@blp.route(f"{SERVICE}/Actions/{SUBMIT}")
class SubmitTestEvent(RedfishView):
    entity = "EventService"  # an action: its resource's POST
    privileges = declare(entity, "POST")

    def post(self):
        body = json_body()
        params = {"MessageId": str, "Message": str, "MessageArgs": list, "OriginOfCondition": str,
                  "Severity": str, "MessageSeverity": str, "EventTimestamp": str, "EventId": str,
                  "EventGroupId": int}
        for k in body:
            if k not in params and not k.startswith("@"):
                raise RedfishError.of(400, "ActionParameterUnknown", SUBMIT, k)
        if "MessageId" not in body:
            raise RedfishError.of(400, "ActionParameterMissing", SUBMIT, "MessageId")
        for k, t in params.items():
            v = body.get(k)
            if k in body and (not isinstance(v, t) or isinstance(v, bool) or
                              (t is list and not all(isinstance(a, str) for a in v))):
                raise RedfishError.of(400, "ActionParameterValueTypeError", v, k, SUBMIT)
        mid = body["MessageId"]
        if not re.fullmatch(r"[A-Za-z0-9]+\.\d+\.\d+(\.\d+)?\.[A-Za-z0-9]+", mid) or len(mid) > 128:
            raise RedfishError.of(400, "ActionParameterValueFormatError", mid, "MessageId", SUBMIT)
        severity = body.get("Severity", body.get("MessageSeverity", "OK"))
        if severity not in SEVERITIES:
            raise RedfishError.of(400, "ActionParameterValueNotInList", severity, "Severity", SUBMIT)
        origin = body.get("OriginOfCondition", "").rstrip("/")
        if origin and (not origin.startswith("/redfish/v1") or len(origin) > 512):
            raise RedfishError.of(400, "ActionParameterValueFormatError", origin, "OriginOfCondition", SUBMIT)
        if "EventTimestamp" in body:
            try:
                dt.datetime.fromisoformat(body["EventTimestamp"].replace("Z", "+00:00"))
            except ValueError:
                raise RedfishError.of(400, "ActionParameterValueFormatError", body["EventTimestamp"],
                                      "EventTimestamp", SUBMIT) from None
        args = body.get("MessageArgs", [])
        text = body.get("Message", "Test event.")
        if len(args) > 16 or any(len(a) > 256 for a in args) or len(text) > 1024:
            raise RedfishError.of(400, "ActionParameterValueError", "MessageArgs" if len(text) <= 1024
                                  else "Message", SUBMIT)
        store().add_log("", severity, mid, args, text, origin, time.time())
        return json_response({"@Message.ExtendedInfo": [message("Success")]})


@blp.route(SUBSCRIPTIONS)
class Subscriptions(RedfishView):
    entity = "EventDestinationCollection"
    privileges = declare(entity, "GET", "POST")
    cacheable = True

    def get(self):
        return collection("EventDestinationCollection", "Event Subscriptions", SUBSCRIPTIONS,
                          [f"{SUBSCRIPTIONS}/{s['id']}" for s in store().subscriptions()])

    def post(self):
        settings = create_settings(json_body())
        new_id = store().add_subscription(principal().username, settings, time.time(), MAX_SUBSCRIPTIONS)
        if new_id is None:
            raise RedfishError.of(400, "CreateLimitReachedForResource")
        doc = with_etag(destination_doc(store().subscription(new_id)))
        return json_response(doc, 201, {"Location": doc["@odata.id"], "ETag": doc["@odata.etag"]})


@blp.route(f"{SUBSCRIPTIONS}/<sub_id>")
class Subscription(RedfishView):
    entity = "EventDestination"
    privileges = declare(entity, "GET", "PATCH", "DELETE")
    cacheable = True

    def get(self, sub_id):
        return destination_doc(_subscription(sub_id))

    def patch(self, sub_id):
        sub = _subscription(sub_id)
        require_self_or(sub["owner"], [["ConfigureManager"]])
        body = {k: v for k, v in json_body().items() if not k.startswith("@odata.")}
        if sub["settings"].get("sse"):   # a stream's filter is fixed when it opens
            raise RedfishError(400, [message("PropertyNotWritable", k, related=[f"#/{k}"]) for k in body] or
                               [message("NoOperation")])
        if not body:
            raise RedfishError.of(400, "NoOperation")
        current = destination_doc(sub)
        errors: list[dict] = []
        settings, state = dict(sub["settings"]), None
        for key, value in body.items():
            if key == "Context":
                settings["context"] = _context(value, errors)
            elif key == "DeliveryRetryPolicy":
                settings["policy"] = _policy(value, errors)
            elif key == "HttpHeaders":
                settings["headers"] = _headers(value, errors)
            elif key == "Status" and isinstance(value, dict) and set(value) == {"State"}:
                if value["State"] not in ("Enabled",):
                    errors.append(value_error("PropertyValueNotInList", value["State"], "Status/State"))
                state = "Enabled"
            else:
                errors.append(message("PropertyNotWritable" if key in current else "PropertyUnknown", key,
                                      related=[f"#/{key}"]))
        if errors:
            raise RedfishError(400, errors)
        if not store().change_subscription(sub["id"], settings, state):
            raise not_found("EventDestination", sub_id)
        return json_response(with_etag(destination_doc(store().subscription(sub["id"]))))

    def delete(self, sub_id):
        sub = _subscription(sub_id)
        require_self_or(sub["owner"], [["ConfigureManager"]])
        store().delete_subscription(sub["id"])
        return json_response({"@Message.ExtendedInfo": [message("Success")]})


@blp.route(f"{SUBSCRIPTIONS}/<sub_id>/Actions/{RESUME}")
class ResumeSubscription(RedfishView):
    entity = "EventDestination"  # an action: its resource's POST
    privileges = declare(entity, "POST")

    def post(self, sub_id):
        sub = _subscription(sub_id)
        require_self_or(sub["owner"], [["ConfigureManager"]])
        body = json_body() if request.get_data(cache=True).strip() else {}
        unknown = [k for k in body if not k.startswith("@")]
        if unknown:
            raise RedfishError.of(400, "ActionParameterUnknown", RESUME, unknown[0])
        store().change_subscription(sub["id"], state="Enabled")
        return json_response({"@Message.ExtendedInfo": [message("Success")]})
