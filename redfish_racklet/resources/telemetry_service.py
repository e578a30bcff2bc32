"""TelemetryService: MetricDefinitions, MetricReportDefinitions (built-in and user-made),
MetricReports (made by the agent: ``telemetry.Reporter``).

- ``MetricDefinitions/<Sensor id>``: what each reportable reading is (units, type, which
  MetricProperties carry it).
- ``MetricReportDefinitions``: POST a Periodic definition (Schedule.RecurrenceInterval
  PT5S..P1D, ReportActions, ReportUpdates Overwrite or AppendWrapsWhenFull with
  AppendLimit, Metrics with MetricProperties naming Sensor readings, CollectionFunction
  Average/Minimum/Maximum over PT1M for Power); PATCH MetricReportDefinitionEnabled,
  Schedule, ReportActions; DELETE a user's one. Built-in: ``PowerAndEnergy`` (every
  minute, with an event) and ``PowerHistory`` (a minute's average power per unit and for
  the busbar, the last 1440 values: the rack's bounded power history).
- ``MetricReports/<definition id>``: the latest report (or the appended history).
"""

from __future__ import annotations

import re
import time

from flask_smorest import Blueprint

from .. import telemetry
from ..messages import RedfishError, message
from ..privileges import declare
from ..sensor_specs import RACK_ID, RACK_SENSORS, UNIT_SENSORS
from ..web import RedfishView, collection, json_body, json_response, value_error, with_etag
from .common import not_found, odata_type, store

blp = Blueprint("telemetry_service", __name__, description="Telemetry: metric definitions and reports")

MAX_USER_DEFINITIONS = 16
DEF_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
NAME_MAX = 128
CREATE_KEYS = {"Id", "Name", "MetricReportDefinitionType", "Schedule", "ReportActions", "ReportUpdates",
               "AppendLimit", "Metrics", "MetricReportDefinitionEnabled", "Description"}
READ_ONLY = {"Status", "MetricReport", "Links", "Actions", "Wildcards", "MetricProperties", "Keys"}


def chassis_ids() -> list[str]:
    return [u["id"] for u in store().units()]


def definition_doc(def_id: str, d: dict) -> dict:
    s = d["settings"]
    doc = {
        "@odata.id": f"{telemetry.DEFINITIONS}/{def_id}",
        "@odata.type": odata_type("MetricReportDefinition"),
        "Id": def_id,
        "Name": s["name"],
        "MetricReportDefinitionType": "Periodic",
        "MetricReportDefinitionEnabled": s.get("enabled", True),
        "Schedule": {"RecurrenceInterval": telemetry.duration(s["interval"])},
        "ReportActions": s["actions"],
        "ReportUpdates": s["updates"],
        "Metrics": [dict({"MetricId": m["id"], "MetricProperties": m["properties"]},
                         **({"CollectionFunction": m["function"], "CollectionDuration": "PT1M",
                             "CollectionTimeScope": "Interval"} if m.get("function") else {}))
                    for m in s["metrics"]],
        "MetricReport": {"@odata.id": f"{telemetry.REPORTS}/{def_id}"},
        "Status": {"State": "Enabled" if s.get("enabled", True) else "Disabled", "Health": "OK"},
    }
    if s["updates"] == "AppendWrapsWhenFull":
        doc["AppendLimit"] = s.get("append_limit") or telemetry.MAX_APPEND
    return doc


def metric_definition_doc(sensor_id: str) -> dict:
    spec = UNIT_SENSORS.get(sensor_id) or RACK_SENSORS[sensor_id]
    chassis = [c for c in chassis_ids() if sensor_id in UNIT_SENSORS] + \
        ([RACK_ID] if sensor_id in RACK_SENSORS else [])
    return {
        "@odata.id": f"{telemetry.METRIC_DEFINITIONS}/{sensor_id}",
        "@odata.type": odata_type("MetricDefinition"),
        "Id": sensor_id,
        "Name": f"{spec.reading_type} readings",
        "MetricType": "Counter" if spec.kind == "energy" else "Numeric",
        "MetricDataType": "Decimal",
        "Units": spec.units,
        "Implementation": spec.implementation,
        "PhysicalContext": spec.context,
        "MetricProperties": [f"/redfish/v1/Chassis/{c}/Sensors/{sensor_id}#/Reading" for c in chassis],
    }


# -- checks of a new definition or a change --------------------------------------------------

def _interval(schedule, errors: list) -> int | None:
    if not isinstance(schedule, dict) or set(schedule) - {"RecurrenceInterval"}:
        errors.append(value_error("PropertyValueTypeError", schedule, "Schedule"))
        return None
    seconds = telemetry.parse_duration(schedule.get("RecurrenceInterval"))
    if seconds is None:
        errors.append(value_error("PropertyValueFormatError", schedule.get("RecurrenceInterval"),
                                  "Schedule/RecurrenceInterval"))
    elif not telemetry.MIN_INTERVAL <= seconds <= telemetry.MAX_INTERVAL:
        errors.append(value_error("PropertyValueOutOfRange", schedule.get("RecurrenceInterval"),
                                  "Schedule/RecurrenceInterval"))
    else:
        return seconds
    return None


def _actions(value, errors: list) -> list | None:
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        errors.append(value_error("PropertyValueTypeError", value, "ReportActions"))
        return None
    bad = [a for a in value if a not in telemetry.ACTIONS]
    for a in bad:
        errors.append(value_error("PropertyValueNotInList", a, "ReportActions"))
    return None if bad else sorted(set(value), key=telemetry.ACTIONS.index)


def _metrics(value, errors: list) -> list | None:
    if not isinstance(value, list) or not value or not all(isinstance(m, dict) for m in value):
        errors.append(value_error("PropertyValueTypeError", value, "Metrics"))
        return None
    ids = chassis_ids()
    out, count = [], 0
    for i, m in enumerate(value):
        at = f"Metrics/{i}"
        for k in m:
            if k not in ("MetricId", "MetricProperties", "CollectionFunction", "CollectionDuration"):
                errors.append(message("PropertyUnknown", f"{at}/{k}"))
        props = m.get("MetricProperties")
        if not isinstance(props, list) or not props or not all(isinstance(p, str) for p in props):
            errors.append(value_error("PropertyValueTypeError", props, f"{at}/MetricProperties"))
            continue
        count += len(props)
        for p in props:
            if telemetry.parse_property(p, ids) is None:
                errors.append(value_error("PropertyValueIncorrect", p, f"{at}/MetricProperties"))
        mid = m.get("MetricId", f"Metric{i}")
        if not isinstance(mid, str) or not DEF_ID.match(mid):
            errors.append(value_error("PropertyValueFormatError", mid, f"{at}/MetricId"))
        function = m.get("CollectionFunction")
        if function is not None:
            if function not in telemetry.FUNCTIONS:
                errors.append(value_error("PropertyValueNotInList", function, f"{at}/CollectionFunction"))
            elif any(not p.endswith("/Sensors/Power#/Reading") for p in props):
                errors.append(message("PropertyValueConflict", f"{at}/CollectionFunction", f"{at}/MetricProperties"))
            if m.get("CollectionDuration", "PT1M") != "PT1M":
                errors.append(value_error("PropertyValueNotInList", m.get("CollectionDuration"),
                                          f"{at}/CollectionDuration"))
        out.append({"id": mid, "properties": props, "function": function})
    if count > telemetry.MAX_PROPERTIES:
        errors.append(message("ArraySizeTooLong", "Metrics/MetricProperties", telemetry.MAX_PROPERTIES))
    return out


def create_settings(body: dict) -> tuple[str, dict]:
    errors: list = []
    for k in body:
        if k.startswith("@"):
            continue
        if k in READ_ONLY:
            errors.append(message("PropertyNotWritable", k))
        elif k not in CREATE_KEYS:
            errors.append(message("PropertyUnknown", k))
    for required in ("Id", "Schedule", "Metrics"):
        if required not in body:
            errors.append(message("PropertyMissing", required))
    def_id = body.get("Id")
    if "Id" in body and (not isinstance(def_id, str) or not DEF_ID.match(def_id)):
        errors.append(value_error("PropertyValueFormatError", def_id, "Id"))
    name = body.get("Name", def_id)
    if not isinstance(name, str) or len(name) > NAME_MAX:
        errors.append(value_error("PropertyValueTypeError", name, "Name"))
    kind = body.get("MetricReportDefinitionType", "Periodic")
    if kind != "Periodic":
        errors.append(value_error("PropertyValueNotInList", kind, "MetricReportDefinitionType"))
    interval = _interval(body["Schedule"], errors) if "Schedule" in body else None
    actions = _actions(body.get("ReportActions", ["LogToMetricReportsCollection"]), errors)
    updates = body.get("ReportUpdates", "Overwrite")
    if updates not in telemetry.UPDATES:
        errors.append(value_error("PropertyValueNotInList", updates, "ReportUpdates"))
    limit = body.get("AppendLimit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                              or not 1 <= limit <= telemetry.MAX_APPEND):
        errors.append(value_error("PropertyValueOutOfRange", limit, "AppendLimit"))
    enabled = body.get("MetricReportDefinitionEnabled", True)
    if not isinstance(enabled, bool):
        errors.append(value_error("PropertyValueTypeError", enabled, "MetricReportDefinitionEnabled"))
    metrics = _metrics(body["Metrics"], errors) if "Metrics" in body else None
    if errors:
        raise RedfishError(400, errors)
    return def_id, {"name": name, "interval": interval, "actions": actions, "updates": updates,
                    "append_limit": limit if updates == "AppendWrapsWhenFull" else None,
                    "enabled": enabled, "metrics": metrics}


def _definition(def_id: str) -> dict:
    d = store().report_definitions().get(def_id)
    if d is None:
        raise not_found("MetricReportDefinition", def_id)
    return d


# -- routes ----------------------------------------------------------------------------------------

@blp.route(telemetry.SERVICE)
class TelemetryService(RedfishView):
    entity = "TelemetryService"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        return {
            "@odata.id": telemetry.SERVICE,
            "@odata.type": odata_type("TelemetryService"),
            "Id": "TelemetryService",
            "Name": "Telemetry Service",
            "ServiceEnabled": True,
            "Status": {"State": "Enabled", "Health": "OK"},
            "MinCollectionInterval": telemetry.duration(telemetry.MIN_INTERVAL),
            "SupportedCollectionFunctions": list(telemetry.FUNCTIONS),
            "MaxReports": MAX_USER_DEFINITIONS + len(telemetry.builtin_definitions([])),
            "MetricDefinitions": {"@odata.id": telemetry.METRIC_DEFINITIONS},
            "MetricReportDefinitions": {"@odata.id": telemetry.DEFINITIONS},
            "MetricReports": {"@odata.id": telemetry.REPORTS},
        }


@blp.route(telemetry.METRIC_DEFINITIONS)
class MetricDefinitions(RedfishView):
    entity = "MetricDefinitionCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        ids = sorted(telemetry.REPORTABLE)
        return collection("MetricDefinitionCollection", "Metric Definitions", telemetry.METRIC_DEFINITIONS,
                          [f"{telemetry.METRIC_DEFINITIONS}/{i}" for i in ids])


@blp.route(f"{telemetry.METRIC_DEFINITIONS}/<sensor_id>")
class MetricDefinition(RedfishView):
    entity = "MetricDefinition"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, sensor_id):
        if sensor_id not in telemetry.REPORTABLE:
            raise not_found("MetricDefinition", sensor_id)
        return metric_definition_doc(sensor_id)


@blp.route(telemetry.DEFINITIONS)
class MetricReportDefinitions(RedfishView):
    entity = "MetricReportDefinitionCollection"
    privileges = declare(entity, "GET", "POST")
    cacheable = True

    def get(self):
        return collection("MetricReportDefinitionCollection", "Metric Report Definitions", telemetry.DEFINITIONS,
                          [f"{telemetry.DEFINITIONS}/{i}" for i in store().report_definitions()])

    def post(self):
        def_id, settings = create_settings(json_body())
        if def_id in store().report_definitions():
            raise RedfishError.of(409, "ResourceAlreadyExists", "MetricReportDefinition", "Id", def_id)
        if not store().add_report_definition(def_id, settings, time.time(), MAX_USER_DEFINITIONS):
            raise RedfishError.of(400, "CreateLimitReachedForResource")
        doc = with_etag(definition_doc(def_id, store().report_definitions()[def_id]))
        return json_response(doc, 201, {"Location": doc["@odata.id"]})


@blp.route(f"{telemetry.DEFINITIONS}/<def_id>")
class MetricReportDefinition(RedfishView):
    entity = "MetricReportDefinition"
    privileges = declare(entity, "GET", "PATCH", "DELETE")
    cacheable = True

    def get(self, def_id):
        return definition_doc(def_id, _definition(def_id))

    def patch(self, def_id):
        d = _definition(def_id)
        body = {k: v for k, v in json_body().items() if not k.startswith("@odata.")}
        if not body:
            raise RedfishError.of(400, "NoOperation")
        current = definition_doc(def_id, d)
        settings, errors = dict(d["settings"]), []
        for key, value in body.items():
            if key == "MetricReportDefinitionEnabled":
                if isinstance(value, bool):
                    settings["enabled"] = value
                else:
                    errors.append(value_error("PropertyValueTypeError", value, key))
            elif key == "Schedule":
                settings["interval"] = _interval(value, errors)
            elif key == "ReportActions":
                settings["actions"] = _actions(value, errors)
            else:
                errors.append(message("PropertyNotWritable" if key in current else "PropertyUnknown", key))
        if errors:
            raise RedfishError(400, errors)
        store().change_report_definition(def_id, settings)
        return json_response(with_etag(definition_doc(def_id, store().report_definitions()[def_id])))

    def delete(self, def_id):
        d = _definition(def_id)
        if d["builtin"]:
            raise RedfishError.of(405, "ResourceCannotBeDeleted", headers={"Allow": "GET, PATCH"})
        store().delete_report_definition(def_id)
        return json_response({"@Message.ExtendedInfo": [message("Success")]})


@blp.route(telemetry.REPORTS)
class MetricReports(RedfishView):
    entity = "MetricReportCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        return collection("MetricReportCollection", "Metric Reports", telemetry.REPORTS,
                          [f"{telemetry.REPORTS}/{i}" for i in store().metric_reports()])


@blp.route(f"{telemetry.REPORTS}/<report_id>")
class MetricReport(RedfishView):
    entity = "MetricReport"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, report_id):
        report = store().metric_reports().get(report_id)
        if report is None:
            raise not_found("MetricReport", report_id)
        return report["body"]
