"""DMTF redfish-utilities against the events and logs of a live rack: ``rf_event_service.py``
(info, subscribe, unsubscribe) with a real HTTPS subscriber, and ``rf_logs.py`` (read a
manager's and a system's log, page it, clear it)."""

from __future__ import annotations

import pytest

from .clients import dmtf_script, run_dmtf
from .conftest import sim, wait_for
from .test_events_push import Receiver, make_cert

SUBS = "/redfish/v1/EventService/Subscriptions"


@pytest.fixture
def rig(fresh_server, tmp_path):
    srv = fresh_server()
    cert, key = make_cert(tmp_path)
    (srv.state_dir / "event-trust.pem").write_bytes(cert.read_bytes())
    receiver = Receiver(cert, key)
    yield srv, receiver
    receiver.close()


def test_rf_event_service_subscribes_and_the_unplug_arrives(rig, tmp_path):
    srv, receiver = rig
    tool = dmtf_script("rf_event_service.py")
    r = run_dmtf(srv, tool, "subscribe", "--destination", receiver.url, "--context", "classroom-3",
                 "--registries", "ResourceEvent", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    c = srv.client()
    subs = c.get(srv.url + SUBS).json()["Members"]
    assert len(subs) == 1
    sub = c.get(srv.url + subs[0]["@odata.id"]).json()
    assert (sub["Destination"], sub["Context"], sub["RegistryPrefixes"]) == (receiver.url, "classroom-3",
                                                                          ["ResourceEvent"])
    assert sub["Id"] in r.stdout   # the tool prints where the subscription lives

    info = run_dmtf(srv, tool, "info", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert receiver.url in info.stdout and "classroom-3" in info.stdout

    sim(srv, "unplug", "Unit3")
    try:
        rec = wait_for(lambda: next((x for x in receiver.records() if x["MessageId"].endswith("ResourceRemoved")),
                                    None), "the unplug event at the subscriber", timeout=15)
    finally:
        sim(srv, "plug", "Unit3")
    assert rec["OriginOfCondition"]["@odata.id"].endswith("/Unit3") and rec["Context"] == "classroom-3"
    assert all(x["MessageId"].startswith("ResourceEvent.") for x in receiver.records())  # the filter held

    gone = run_dmtf(srv, tool, "unsubscribe", "--id", sub["Id"], cwd=tmp_path)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert c.get(srv.url + SUBS).json()["Members"] == []


def test_rf_event_service_refuses_a_plain_http_destination(rig, tmp_path):
    srv, _ = rig
    r = run_dmtf(srv, dmtf_script("rf_event_service.py"), "subscribe", "--destination",
                 "http://127.0.0.1:9/events", cwd=tmp_path)
    assert r.returncode != 0 and "400" in r.stdout + r.stderr
    assert srv.client().get(srv.url + SUBS).json()["Members"] == []


def test_rf_logs_reads_pages_and_clears_the_rack_log(rig, tmp_path):
    srv, _ = rig
    tool = dmtf_script("rf_logs.py")
    c = srv.client()
    for unit in ("Unit2", "Unit3"):         # two more entries we know the words of
        sim(srv, "unplug", unit)
        sim(srv, "plug", unit)
    entries = c.get(srv.url + "/redfish/v1/Managers/RMC/LogServices/EventLog/Entries").json()["Members"]
    assert len(entries) >= 4

    r = run_dmtf(srv, tool, "--manager", "RMC", "--log", "EventLog", "--details", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    for e in entries:
        assert e["Message"] in r.stdout, e["Message"]

    page = run_dmtf(srv, tool, "--manager", "RMC", "--log", "EventLog", "--max", "2", cwd=tmp_path)
    assert page.returncode == 0, page.stderr
    shown = [e for e in entries if e["Message"] in page.stdout]
    assert 1 <= len(shown) <= 2   # one message text may be shared by two entries

    unit = run_dmtf(srv, tool, "--system", "Unit2", "--log", "EventLog", cwd=tmp_path)
    assert unit.returncode == 0, unit.stderr
    mine = c.get(srv.url + "/redfish/v1/Systems/Unit2/LogServices/EventLog/Entries").json()["Members"]
    assert mine and all(e["Message"] in unit.stdout for e in mine)
    assert not any("Unit3" in e["Message"] and e["Message"] in unit.stdout for e in entries
                   if e["Message"] not in {m["Message"] for m in mine})

    cleared = run_dmtf(srv, tool, "--manager", "RMC", "--log", "EventLog", "--clear", cwd=tmp_path)
    assert cleared.returncode == 0, cleared.stdout + cleared.stderr
    left = c.get(srv.url + "/redfish/v1/Managers/RMC/LogServices/EventLog/Entries").json()["Members"]
    assert [e["MessageId"].rsplit(".", 1)[1] for e in left] == ["LogCleared"]
