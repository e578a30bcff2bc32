"""Telemetry: MetricReportDefinitions, and the MetricReports the agent makes of them.

Shared by the API (``resources/telemetry_service.py``: documents and the checks of a
new definition) and the agent (``Reporter``: a periodic report from each sweep).

A definition names Sensor readings as MetricProperties
(``/redfish/v1/Chassis/Unit1/Sensors/Power#/Reading``); each report holds their values
as the Sensors show them (``sensor_specs.convert``). For Power, a metric may ask for
the ``Average``, ``Minimum`` or ``Maximum`` over the last minute (``CollectionDuration``
PT1M: the agent's PowerMetrics window). ``ReportUpdates``: ``Overwrite`` keeps the latest
report; ``AppendWrapsWhenFull`` appends every period's values up to ``AppendLimit`` and
then drops the oldest — that is the rack's bounded power history
(``MetricReports/PowerHistory``). ``ReportActions``: ``LogToMetricReportsCollection`` (the
report is kept) and ``RedfishEvent`` (a Telemetry ``TelemetryDataCreated`` event goes
through the event journal; subscribers that asked for EventFormatType ``MetricReport``
get the report itself).
"""

from __future__ import annotations

import datetime as dt
import re

from .sensor_specs import RACK_ID, RACK_SENSORS, UNIT_SENSORS

SERVICE = "/redfish/v1/TelemetryService"
DEFINITIONS = f"{SERVICE}/MetricReportDefinitions"
REPORTS = f"{SERVICE}/MetricReports"
METRIC_DEFINITIONS = f"{SERVICE}/MetricDefinitions"
ACTIONS = ("LogToMetricReportsCollection", "RedfishEvent")
UPDATES = ("Overwrite", "AppendWrapsWhenFull")
FUNCTIONS = {"Average": "power_avg", "Minimum": "power_min", "Maximum": "power_max"}
MIN_INTERVAL, MAX_INTERVAL = 1, 86400   # no report faster than a second (nor than the sampling)
MAX_APPEND = 2000
MAX_PROPERTIES = 64
PROPERTY = re.compile(r"^/redfish/v1/Chassis/([A-Za-z0-9_]+)/Sensors/([A-Za-z0-9_]+)#/Reading$")
DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
REPORTABLE = {k for k in UNIT_SENSORS} | {k for k in RACK_SENSORS if k != "Fan1"}


def parse_duration(text: str) -> int | None:
    """Seconds of an ISO 8601 duration of days, hours, minutes and seconds ('PT1M'), or None."""
    m = DURATION.match(text) if isinstance(text, str) else None
    if not m or text in ("P", "PT") or text.endswith("T"):
        return None
    d, h, mi, s = (int(x or 0) for x in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def duration(seconds: int) -> str:
    d, rest = divmod(int(seconds), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    out = "P" + (f"{d}D" if d else "")
    time = (f"{h}H" if h else "") + (f"{m}M" if m else "") + (f"{s}S" if s else "")
    return out + ("T" + time if time or not d else "")


def parse_property(uri: str, chassis_ids: list[str]) -> tuple[str, str] | None:
    """(chassis id, sensor id) of a MetricProperty this rack can report, or None."""
    m = PROPERTY.match(uri) if isinstance(uri, str) else None
    if not m:
        return None
    cid, sid = m.groups()
    table = RACK_SENSORS if cid == RACK_ID else UNIT_SENSORS
    if (cid != RACK_ID and cid not in chassis_ids) or sid not in table or sid == "Fan1":
        return None
    return cid, sid


def builtin_definitions(unit_ids: list[str]) -> dict[str, dict]:
    """The definitions every rack has: a power and energy report every minute (and an
    event), and the power history (a minute's average per unit and for the busbar, the
    last 1440 values)."""
    chassis = unit_ids + [RACK_ID]
    return {
        "PowerAndEnergy": {
            "name": "Power and energy of every unit and the busbar", "interval": 60,
            "actions": list(ACTIONS), "updates": "Overwrite", "append_limit": None, "enabled": True,
            "metrics": [{"id": f"{c}{s}", "properties": [f"/redfish/v1/Chassis/{c}/Sensors/{s}#/Reading"],
                         "function": None} for c in chassis for s in ("Power", "Energy")]},
        "PowerHistory": {
            "name": "Power history: one minute's average per unit and for the busbar", "interval": 60,
            "actions": ["LogToMetricReportsCollection"], "updates": "AppendWrapsWhenFull", "append_limit": 1440,
            "enabled": True,
            "metrics": [{"id": f"{c}PowerAverage", "properties": [f"/redfish/v1/Chassis/{c}/Sensors/Power#/Reading"],
                         "function": "Average"} for c in chassis]},
    }


REPORT_CREATED = "TelemetryDataCreated"   # the Telemetry registry message of a new report


def report_of(entry: dict) -> str | None:
    """The MetricReport id a journal entry announces (a TelemetryDataCreated), or None."""
    if not entry["message_id"].endswith("." + REPORT_CREATED) or not entry["origin"].startswith(REPORTS + "/"):
        return None
    return entry["origin"][len(REPORTS) + 1:]


def definition_uri(report_id: str) -> str:
    return f"{DEFINITIONS}/{report_id}"


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).replace(microsecond=0).isoformat()


def report_values(settings: dict, readings: dict[str, dict], now: float, fan_max_rpm: float | None = None
                  ) -> list[dict]:
    """This period's MetricValues of a definition, from a sweep {chassis: {kind: value}}
    (a unit that is absent or a sensor that does not answer gives no value)."""
    from .sensor_specs import convert
    out = []
    stamp = iso(now)
    for metric in settings["metrics"]:
        for uri in metric["properties"]:
            m = PROPERTY.match(uri)
            if not m:
                continue
            cid, sid = m.groups()
            spec = (RACK_SENSORS if cid == RACK_ID else UNIT_SENSORS).get(sid)
            r = readings.get(cid)
            if spec is None or r is None:
                continue
            kind = FUNCTIONS.get(metric.get("function")) if spec.kind == "power" and metric.get("function") \
                else spec.kind
            value = convert(spec, r.get(kind), fan_max_rpm)
            if value is None:
                continue
            out.append({"MetricId": metric["id"], "MetricValue": repr(float(value)), "Timestamp": stamp,
                        "MetricProperty": uri})
    return out


def report_doc(def_id: str, settings: dict, values: list[dict], now: float, sequence: int) -> dict:
    return {
        "@odata.id": f"{REPORTS}/{def_id}",
        "@odata.type": "#MetricReport.v1_5_2.MetricReport",   # resources/common.py VERSIONS
        "Id": def_id,
        "Name": settings["name"],
        "Timestamp": iso(now),
        "ReportSequence": str(sequence),
        "MetricReportDefinition": {"@odata.id": f"{DEFINITIONS}/{def_id}"},
        "MetricValues": values,
    }


class Reporter:
    """The agent's side: after each sweep, the reports that are due (``tick``)."""

    def __init__(self, store, log, wall):
        self.store, self.log, self.wall = store, log, wall
        self.last: dict[str, float] = {}

    def start(self, unit_ids: list[str]) -> None:
        for def_id, settings in builtin_definitions(unit_ids).items():
            self.store.ensure_report_definition(def_id, settings, self.wall())
        for def_id, report in self.store.metric_reports().items():
            self.last[def_id] = report["updated"]   # a restart does not make every report at once

    def tick(self, sweep: dict[str, dict], fan_max_rpm: float | None = None) -> None:
        now = self.wall()
        for def_id, d in self.store.report_definitions().items():
            s = d["settings"]
            if not s.get("enabled", True) or now - self.last.get(def_id, 0.0) < s["interval"]:
                continue
            self.last[def_id] = now
            self._make(def_id, s, sweep, now, fan_max_rpm)

    def _make(self, def_id: str, s: dict, sweep: dict, now: float, fan_max_rpm) -> None:
        values = report_values(s, sweep, now, fan_max_rpm)
        old = self.store.metric_report(def_id)
        sequence = int(old["body"].get("ReportSequence", "0")) + 1 if old else 1
        if s["updates"] == "AppendWrapsWhenFull" and old:
            values = (old["body"].get("MetricValues", []) + values)[-(s.get("append_limit") or MAX_APPEND):]
        body = report_doc(def_id, s, values, now, sequence)
        if "LogToMetricReportsCollection" in s["actions"] or "RedfishEvent" in s["actions"]:
            self.store.put_metric_report(def_id, body, now)
        if "RedfishEvent" in s["actions"]:
            self.log.write("TelemetryDataCreated", [f"{REPORTS}/{def_id}", "MetricReport"], f"{REPORTS}/{def_id}")
