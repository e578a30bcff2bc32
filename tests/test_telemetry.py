"""TelemetryService on a live rack: the built-in reports (power and energy, the power
history), user-made MetricReportDefinitions and their refusals, and reports delivered as
events (push with EventFormatType MetricReport, SSE with the MetricReport filter)."""

from __future__ import annotations

import json

import pytest

from redfish_racklet import telemetry

from .conftest import TEST_MANIFEST, ids, start_server, wait_for
from .test_events_push import Receiver, make_cert
from .test_sse import Client

SERVICE = "/redfish/v1/TelemetryService"
DEFS = f"{SERVICE}/MetricReportDefinitions"
REPORTS = f"{SERVICE}/MetricReports"
POWER1 = "/redfish/v1/Chassis/Unit1/Sensors/Power#/Reading"
RACK_ENERGY = "/redfish/v1/Chassis/Rack/Sensors/Energy#/Reading"
OPERATOR = ("operator", "operator-password-long-enough")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("telemetry")
    server = start_server(tmp, TEST_MANIFEST)
    c = server.client()
    assert c.post(server.url + "/redfish/v1/AccountService/Accounts",
                  json={"UserName": OPERATOR[0], "Password": OPERATOR[1], "RoleId": "Operator"}).status_code == 201
    cert, key = make_cert(tmp)
    (server.state_dir / "event-trust.pem").write_bytes(cert.read_bytes())
    server.receiver = Receiver(cert, key)
    yield server
    server.receiver.close()
    server.stop()


def definition(def_id: str, **extra) -> dict:
    return {"Id": def_id, "Schedule": {"RecurrenceInterval": "PT1S"},
            "Metrics": [{"MetricId": "Unit1Power", "MetricProperties": [POWER1]},
                        {"MetricId": "RackEnergy", "MetricProperties": [RACK_ENERGY]}], **extra}


def report(c, srv, def_id: str, at_least: int = 1) -> dict:
    def ready():
        r = c.get(srv.url + f"{REPORTS}/{def_id}")
        return r.json() if r.status_code == 200 and int(r.json()["ReportSequence"]) >= at_least else None
    return wait_for(ready, f"report {def_id} #{at_least}", timeout=20)


def test_the_service_and_its_built_in_reports(srv):
    c = srv.client()
    doc = c.get(srv.url + SERVICE).json()
    assert doc["ServiceEnabled"] and set(doc["SupportedCollectionFunctions"]) == {"Average", "Minimum", "Maximum"}
    assert srv.get("/redfish/v1").json()["TelemetryService"] == {"@odata.id": SERVICE}
    members = {m["@odata.id"].rsplit("/", 1)[1] for m in c.get(srv.url + DEFS).json()["Members"]}
    assert {"PowerAndEnergy", "PowerHistory"} <= members
    history = c.get(srv.url + f"{DEFS}/PowerHistory").json()
    assert (history["ReportUpdates"], history["AppendLimit"]) == ("AppendWrapsWhenFull", 1440)
    assert all(m["CollectionFunction"] == "Average" and m["CollectionDuration"] == "PT1M" for m in history["Metrics"])
    rep = report(c, srv, "PowerAndEnergy")   # made at the first sweep
    props = {v["MetricProperty"] for v in rep["MetricValues"]}
    assert "/redfish/v1/Chassis/Rack/Sensors/Power#/Reading" in props and POWER1 in props
    assert not any("/Unit5/" in p for p in props)   # the empty tray reports nothing
    power = c.get(srv.url + "/redfish/v1/TelemetryService/MetricDefinitions/Power").json()
    assert power["Units"] == "W" and POWER1 in power["MetricProperties"]
    energy = c.get(srv.url + "/redfish/v1/TelemetryService/MetricDefinitions/Energy").json()
    assert energy["MetricType"] == "Counter" and energy["Units"] == "J"


def test_a_user_definition_reports_the_sensors_and_appends_within_its_limit(srv):
    c = srv.client()
    r = c.post(srv.url + DEFS, json=definition("Fast", ReportUpdates="AppendWrapsWhenFull", AppendLimit=4))
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"{DEFS}/Fast"
    first = report(c, srv, "Fast")
    assert {v["MetricId"] for v in first["MetricValues"]} == {"Unit1Power", "RackEnergy"}
    sensor = c.get(srv.url + "/redfish/v1/Chassis/Unit1/Sensors/Power").json()["Reading"]
    value = float(next(v for v in first["MetricValues"] if v["MetricId"] == "Unit1Power")["MetricValue"])
    assert abs(value - sensor) < 0.5    # a Pi 4 idles near 2.7-3.1 W; both are the same unit's rail
    later = report(c, srv, "Fast", at_least=3)
    assert len(later["MetricValues"]) == 4                          # AppendLimit
    stamps = [v["Timestamp"] for v in later["MetricValues"]]
    assert stamps == sorted(stamps) and len(set(stamps)) == 2       # the last two periods, oldest first
    energies = [float(v["MetricValue"]) for v in later["MetricValues"] if v["MetricId"] == "RackEnergy"]
    assert energies == sorted(energies)                             # a counter
    # disabled: no new report
    assert c.patch(srv.url + f"{DEFS}/Fast", json={"MetricReportDefinitionEnabled": False}).status_code == 200
    stopped = int(c.get(srv.url + f"{REPORTS}/Fast").json()["ReportSequence"])
    c.post(srv.url + DEFS, json=definition("Marker"))               # a report one period later proves time passed
    report(c, srv, "Marker", at_least=2)
    assert int(c.get(srv.url + f"{REPORTS}/Fast").json()["ReportSequence"]) <= stopped + 1
    assert c.delete(srv.url + f"{DEFS}/Fast").status_code == 200
    assert c.get(srv.url + f"{REPORTS}/Fast").status_code == 404
    assert c.delete(srv.url + f"{DEFS}/Marker").status_code == 200


@pytest.mark.parametrize("body, msg", [
    (definition("Bad1", Schedule={"RecurrenceInterval": "every minute"}), "PropertyValueFormatError"),
    (definition("Bad2", Schedule={"RecurrenceInterval": "PT0S"}), "PropertyValueOutOfRange"),
    (definition("Bad3", Schedule={"RecurrenceInterval": "P2D"}), "PropertyValueOutOfRange"),
    (definition("Bad4", ReportActions=["SendEmail"]), "PropertyValueNotInList"),
    (definition("Bad5", ReportUpdates="NewReport"), "PropertyValueNotInList"),
    (definition("Bad6", AppendLimit=0, ReportUpdates="AppendWrapsWhenFull"), "PropertyValueOutOfRange"),
    (definition("Bad7", MetricReportDefinitionType="OnChange"), "PropertyValueNotInList"),
    (definition("Bad8", Colour="blue"), "PropertyUnknown"),
    (definition("Bad9", Status={"State": "Enabled"}), "PropertyNotWritable"),
    ({**definition("BadA"), "Metrics": [{"MetricProperties": ["/redfish/v1/Chassis/Unit9/Sensors/Power#/Reading"]}]},
     "PropertyValueIncorrect"),
    ({**definition("BadB"), "Metrics": [{"MetricProperties": ["/redfish/v1/Systems/Unit1#/PowerState"]}]},
     "PropertyValueIncorrect"),
    ({**definition("BadC"), "Metrics": [{"MetricProperties": ["/redfish/v1/Chassis/Unit1/Sensors/Voltage#/Reading"],
                                         "CollectionFunction": "Average"}]}, "PropertyValueConflict"),
    ({**definition("BadD"), "Metrics": []}, "PropertyValueTypeError"),
    ({"Schedule": {"RecurrenceInterval": "PT1S"}, "Metrics": [{"MetricProperties": [POWER1]}]}, "PropertyMissing"),
    (definition("has space"), "PropertyValueFormatError"),
])
def test_bad_definitions_are_refused_and_create_nothing(srv, body, msg):
    c = srv.client()
    before = c.get(srv.url + DEFS).json()["Members"]
    r = c.post(srv.url + DEFS, json=body)
    assert r.status_code == 400 and msg in ids(r), r.text
    assert c.get(srv.url + DEFS).json()["Members"] == before


def test_conflicts_caps_and_privileges(srv):
    c = srv.client()
    assert c.post(srv.url + DEFS, json=definition("Twice")).status_code == 201
    r = c.post(srv.url + DEFS, json=definition("Twice"))
    assert r.status_code == 409 and ids(r) == ["ResourceAlreadyExists"]
    r = c.delete(srv.url + f"{DEFS}/PowerHistory")
    assert r.status_code == 405 and ids(r) == ["ResourceCannotBeDeleted"]
    r = c.patch(srv.url + f"{DEFS}/Twice", json={"Metrics": []})
    assert r.status_code == 400 and ids(r) == ["PropertyNotWritable"]
    op = srv.client(auth=OPERATOR)
    r = op.post(srv.url + DEFS, json=definition("ByOperator"))
    assert r.status_code == 403 and ids(r) == ["InsufficientPrivilege"]
    assert op.get(srv.url + f"{REPORTS}/PowerAndEnergy").status_code == 200   # Login may read
    made = [f"Cap{i}" for i in range(15)]
    for name in made:
        assert c.post(srv.url + DEFS, json=definition(name, MetricReportDefinitionEnabled=False)).status_code == 201
    r = c.post(srv.url + DEFS, json=definition("OneTooMany"))
    assert r.status_code == 400 and ids(r) == ["CreateLimitReachedForResource"]
    for name in made + ["Twice"]:
        assert c.delete(srv.url + f"{DEFS}/{name}").status_code == 200


def test_reports_reach_subscribers_as_metric_reports(srv):
    c = srv.client()
    sub = c.post(srv.url + "/redfish/v1/EventService/Subscriptions", json={
        "Destination": srv.receiver.url, "Protocol": "Redfish", "EventFormatType": "MetricReport",
        "Context": "telemetry", "MetricReportDefinitions": [{"@odata.id": f"{DEFS}/Pushed"}]})
    assert sub.status_code == 201, sub.text
    assert c.get(srv.url + sub.headers["Location"]).json()["EventFormatType"] == "MetricReport"
    stream = Client(srv, query="$filter=EventFormatType%20eq%20'MetricReport'")
    try:
        assert c.post(srv.url + DEFS, json=definition("Pushed", ReportActions=[
            "LogToMetricReportsCollection", "RedfishEvent"])).status_code == 201
        pushed = wait_for(lambda: [e for e in list(srv.receiver.events) if e.get("Id") == "Pushed"],
                          "a pushed MetricReport", timeout=20)[0]
        assert pushed["@odata.type"].startswith("#MetricReport.") and pushed["Context"] == "telemetry"
        assert {v["MetricId"] for v in pushed["MetricValues"]} == {"Unit1Power", "RackEnergy"}
        assert not [e for e in srv.receiver.events if "Events" in e]   # only reports, no Events
        _, doc = stream.event(timeout=20)
        assert doc["@odata.type"].startswith("#MetricReport.") and doc["MetricReportDefinition"]["@odata.id"] in (
            f"{DEFS}/Pushed", f"{DEFS}/PowerAndEnergy")
    finally:
        stream.close()
        c.delete(srv.url + sub.headers["Location"])
        c.delete(srv.url + f"{DEFS}/Pushed")
    entries = c.get(srv.url + "/redfish/v1/Managers/RMC/LogServices/EventLog/Entries").json()["Members"]
    created = [e for e in entries if e["MessageId"] == "Telemetry.1.1.1.TelemetryDataCreated"]
    assert created and created[-1]["MessageArgs"][1] == "MetricReport"


def test_durations_round_trip():
    for text, seconds in (("PT1S", 1), ("PT1M", 60), ("PT1H30M", 5400), ("P1D", 86400), ("P1DT2S", 86402)):
        assert telemetry.parse_duration(text) == seconds
        assert telemetry.parse_duration(telemetry.duration(seconds)) == seconds
    for bad in ("", "P", "PT", "1S", "PT1.5S", "P1W", None, 60):
        assert telemetry.parse_duration(bad) is None, bad
    assert json.dumps(telemetry.builtin_definitions(["Unit1"]))   # plain data
