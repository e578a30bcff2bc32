"""Every bad input gets the right status and Base message, and changes nothing."""

from __future__ import annotations

import json

import pytest

from .conftest import ids

SYSTEM = "/redfish/v1/Systems/Unit2"
RESET = SYSTEM + "/Actions/ComputerSystem.Reset"




def assert_error(r, status: int, msg_id: str):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error"]["code"].startswith("Base.1.22.")
    assert any(i.split(".")[-1] == msg_id for i in ids(r)), ids(r)
    assert "Traceback" not in r.text


@pytest.fixture
def unchanged(server):
    """Snapshot a resource before a bad request; check after that it did not move."""
    c = server.client()

    def snap(uri=SYSTEM):
        return c.get(server.url + uri).json()

    before = snap()
    yield c
    after = snap()
    for key in ("AssetTag", "PowerState", "Oem"):
        assert after[key] == before[key], key


@pytest.mark.parametrize("body,msg_id", [
    ({"Bogus": 1}, "PropertyUnknown"),
    ({"PowerState": "Off"}, "PropertyNotWritable"),
    ({"Id": "Other"}, "PropertyNotWritable"),
    ({"AssetTag": 5}, "PropertyValueTypeError"),
    ({"AssetTag": None}, "PropertyValueTypeError"),
    ({"AssetTag": ["a"]}, "PropertyValueTypeError"),
    ({"AssetTag": "x" * 64}, "StringValueTooLong"),
    ({"AssetTag": "ok", "Bogus": 1}, "PropertyUnknown"),  # one bad property: nothing applied
    ({"@odata.id": "/x"}, "NoOperation"),
    ({}, "NoOperation"),
])
def test_bad_patch(server, unchanged, body, msg_id):
    r = unchanged.patch(server.url + SYSTEM, json=body)
    assert_error(r, 400, msg_id)


def test_patch_reports_all_bad_properties(server, unchanged):
    r = unchanged.patch(server.url + SYSTEM, json={"Bogus": 1, "PowerState": "On", "AssetTag": 3})
    assert r.status_code == 400
    assert sorted(i.split(".")[-1] for i in ids(r)) == ["PropertyNotWritable", "PropertyUnknown",
                                                         "PropertyValueTypeError"]


def test_malformed_json(server, unchanged):
    r = unchanged.patch(server.url + SYSTEM, data=b'{"AssetTag": ', headers={"Content-Type": "application/json"})
    assert_error(r, 400, "MalformedJSON")
    r = unchanged.patch(server.url + SYSTEM, data=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert_error(r, 400, "MalformedJSON")
    r = unchanged.patch(server.url + SYSTEM, data=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert_error(r, 400, "UnrecognizedRequestBody")


def test_wrong_content_type(server, unchanged):
    r = unchanged.patch(server.url + SYSTEM, data=json.dumps({"AssetTag": "a"}),
                        headers={"Content-Type": "text/plain"})
    assert_error(r, 415, "HeaderInvalid")
    r = unchanged.post(server.url + RESET, data="ResetType=ForceOff",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error(r, 415, "HeaderInvalid")


def test_body_over_limit(server, unchanged):
    big = json.dumps({"AssetTag": "a" * (1024 * 1024 + 10)})
    r = unchanged.patch(server.url + SYSTEM, data=big, headers={"Content-Type": "application/json"})
    assert_error(r, 413, "PayloadTooLarge")


def test_if_match(server):
    c = server.client()
    tag = c.get(server.url + SYSTEM).headers["ETag"]
    r = c.patch(server.url + SYSTEM, json={"AssetTag": "stale"}, headers={"If-Match": '"not-the-etag"'})
    assert_error(r, 412, "PreconditionFailed")
    assert c.get(server.url + SYSTEM).json()["AssetTag"] != "stale"
    r = c.patch(server.url + SYSTEM, json={"AssetTag": "rack-2"}, headers={"If-Match": tag})
    assert r.status_code == 200 and r.json()["AssetTag"] == "rack-2"
    assert r.headers["ETag"] != tag
    # the old tag is now stale
    r = c.patch(server.url + SYSTEM, json={"AssetTag": "again"}, headers={"If-Match": tag})
    assert_error(r, 412, "PreconditionFailed")
    assert c.get(server.url + SYSTEM).json()["AssetTag"] == "rack-2"


@pytest.mark.parametrize("body,status,msg_id", [
    ({"ResetType": "Explode"}, 400, "ActionParameterValueNotInList"),
    ({"ResetType": 1}, 400, "ActionParameterValueTypeError"),
    ({}, 400, "ActionParameterMissing"),
    ({"ResetType": "On", "Extra": 1}, 400, "ActionParameterUnknown"),
    ({"ResetType": "Nmi"}, 400, "ActionParameterValueNotInList"),
])
def test_bad_reset(server, unchanged, body, status, msg_id):
    assert_error(unchanged.post(server.url + RESET, json=body), status, msg_id)


def test_unknown_resources(server):
    c = server.client()
    assert_error(c.get(server.url + "/redfish/v1/Systems/Unit9"), 404, "ResourceNotFound")
    assert_error(c.get(server.url + "/redfish/v1/Chassis/Nope"), 404, "ResourceNotFound")
    assert_error(c.get(server.url + "/redfish/v1/Nothing/Here"), 404, "InvalidURI")
    assert_error(c.post(server.url + "/redfish/v1/Systems/Unit9/Actions/ComputerSystem.Reset",
                        json={"ResetType": "On"}), 404, "ResourceNotFound")
    assert_error(c.patch(server.url + "/redfish/v1/Systems/Unit9", json={"AssetTag": "x"}),
                 404, "ResourceNotFound")


def test_reset_absent_unit_conflicts(server):
    c = server.client()
    before = c.get(server.url + "/redfish/v1/Systems/Unit5").json()
    assert before["Status"]["State"] == "Absent"
    for reset_type in ("On", "ForceOff", "ForceRestart"):
        r = c.post(server.url + "/redfish/v1/Systems/Unit5/Actions/ComputerSystem.Reset",
                   json={"ResetType": reset_type})
        assert_error(r, 409, "ActionParameterValueConflict")
        assert "absent" in r.json()["error"]["@Message.ExtendedInfo"][0]["Resolution"]
    after = c.get(server.url + "/redfish/v1/Systems/Unit5").json()
    assert after["PowerState"] == before["PowerState"] == "Off"
    assert after["Oem"] == before["Oem"]


def test_readonly_sessions_cannot_be_seen_by_anonymous(server):
    r = server.anonymous().delete(server.url + "/redfish/v1/SessionService/Sessions/abc")
    assert_error(r, 401, "NoValidSession")


def test_bad_session_timeout(server):
    c = server.client()
    before = c.get(server.url + "/redfish/v1/SessionService").json()["SessionTimeout"]
    for value, msg in ((5, "PropertyValueOutOfRange"), ("60", "PropertyValueTypeError"),
                       (60.5, "PropertyValueTypeError"), (True, "PropertyValueTypeError")):
        assert_error(c.patch(server.url + "/redfish/v1/SessionService", json={"SessionTimeout": value}),
                     400, msg)
    assert c.get(server.url + "/redfish/v1/SessionService").json()["SessionTimeout"] == before
