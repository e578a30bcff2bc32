"""DSP0266 core protocol on a live server: documents, headers, authentication, sessions."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import requests

PUBLIC = ["/redfish", "/redfish/v1", "/redfish/v1/", "/redfish/v1/odata", "/redfish/v1/$metadata"]
PROTECTED = ["/redfish/v1/Systems", "/redfish/v1/Systems/Unit1", "/redfish/v1/Chassis",
             "/redfish/v1/Chassis/Rack", "/redfish/v1/Chassis/Unit1", "/redfish/v1/Managers",
             "/redfish/v1/Managers/RMC", "/redfish/v1/AccountService",
             "/redfish/v1/AccountService/Accounts", "/redfish/v1/AccountService/Roles",
             "/redfish/v1/SessionService", "/redfish/v1/SessionService/Sessions",
             "/redfish/v1/Systems/Unit1/ResetActionInfo", "/redfish/v1/JsonSchemas"]


def walk(server) -> dict[str, dict]:
    """Every resource reachable from the service root, by following @odata.id links."""
    c = server.client()
    seen: dict[str, dict] = {}
    todo = ["/redfish/v1"]
    while todo:
        uri = todo.pop()
        if uri in seen:
            continue
        r = c.get(server.url + uri)
        assert r.status_code == 200, (uri, r.status_code, r.text)
        seen[uri] = r.json()
        stack = [seen[uri]]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "@odata.id" and isinstance(v, str) and v != uri:
                        todo.append(v.split("#")[0])
                    else:
                        stack.append(v)
            elif isinstance(node, list):
                stack.extend(node)
    return seen


def test_version_document_and_root_need_no_auth(server):
    anon = server.anonymous()
    r = anon.get(server.url + "/redfish")
    assert r.status_code == 200 and r.json() == {"v1": "/redfish/v1/"}
    for uri in PUBLIC:
        assert anon.get(server.url + uri).status_code == 200, uri


def test_service_root_contents(server):
    root = server.anonymous().get(server.url + "/redfish/v1").json()
    for key in ("Vendor", "Product", "UUID", "RedfishVersion", "ProtocolFeaturesSupported"):
        assert root[key], key
    assert root["Links"]["Sessions"]["@odata.id"] == "/redfish/v1/SessionService/Sessions"
    assert root["ProtocolFeaturesSupported"]["ExpandQuery"]["MaxLevels"] >= 1


def test_service_uuid_stable_across_restart(fresh_server):
    from .conftest import restart
    srv = fresh_server(workers=1)
    before = srv.anonymous().get(srv.url + "/redfish/v1").json()["UUID"]
    again = restart(srv)
    try:
        assert again.anonymous().get(again.url + "/redfish/v1").json()["UUID"] == before
    finally:
        again.stop()


@pytest.mark.parametrize("uri", PROTECTED)
def test_everything_else_requires_auth(server, uri):
    r = server.anonymous().get(server.url + uri)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    assert r.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith("NoValidSession")
    bad = server.client(auth=("admin", "wrong-password-123")).get(server.url + uri)
    assert bad.status_code == 401
    token = server.anonymous().get(server.url + uri, headers={"X-Auth-Token": "not-a-token"})
    assert token.status_code == 401


def test_every_member_has_a_unique_id_and_headers(server):
    docs = walk(server)
    assert {"/redfish/v1/Systems/Unit1", "/redfish/v1/Chassis/Rack", "/redfish/v1/Managers/RMC"} <= set(docs)
    for uri, doc in docs.items():
        assert doc["@odata.id"].rstrip("/") == uri.rstrip("/")
        assert "@odata.type" in doc
        if "Members" in doc:
            ids = [m["@odata.id"] for m in doc["Members"]]
            assert len(ids) == len(set(ids)) == doc["Members@odata.count"]
            member_ids = [docs[i]["Id"] for i in ids]
            assert len(member_ids) == len(set(member_ids))
    c = server.client()
    r = c.get(server.url + "/redfish/v1/Systems/Unit1")
    assert r.headers["OData-Version"] == "4.0"
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r.headers["ETag"] == r.json()["@odata.etag"]
    assert r.headers["Link"] == "<https://redfish.dmtf.org/schemas/v1/ComputerSystem.v1_27_0.json>; rel=describedby"
    assert set(r.headers["Allow"].split(", ")) == {"GET", "HEAD", "PATCH"}


def test_head_matches_get_without_body(server):
    c = server.client()
    g = c.get(server.url + "/redfish/v1/Chassis/Rack")
    h = c.head(server.url + "/redfish/v1/Chassis/Rack")
    assert h.status_code == 200 and h.content == b""
    assert h.headers["ETag"] == g.headers["ETag"]


def test_trailing_slash_both_work(server):
    c = server.client()
    a = c.get(server.url + "/redfish/v1/Systems", allow_redirects=False)
    b = c.get(server.url + "/redfish/v1/Systems/", allow_redirects=False)
    assert a.status_code == b.status_code == 200 and a.json() == b.json()


def test_if_none_match_gives_304(server):
    c = server.client()
    tag = c.get(server.url + "/redfish/v1/Chassis/Rack").headers["ETag"]
    assert c.get(server.url + "/redfish/v1/Chassis/Rack", headers={"If-None-Match": tag}).status_code == 304


def test_unsupported_method_is_405_with_allow(server):
    c = server.client()
    r = c.delete(server.url + "/redfish/v1/Systems/Unit1")
    assert r.status_code == 405
    assert set(r.headers["Allow"].split(", ")) == {"GET", "HEAD", "PATCH"}
    assert r.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith("OperationNotAllowed")
    r = c.get(server.url + "/redfish/v1/Systems/Unit1/Actions/ComputerSystem.Reset")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"


def test_odata_version_other_than_4_is_refused(server):
    r = server.client().get(server.url + "/redfish/v1/Systems", headers={"OData-Version": "4.1"})
    assert r.status_code == 412


def test_metadata_references_every_served_type_and_the_oem_schema(server):
    anon = server.anonymous()
    r = anon.get(server.url + "/redfish/v1/$metadata")
    assert r.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(r.content)
    ns = {"edmx": "http://docs.oasis-open.org/odata/ns/edmx"}
    included = {inc.get("Namespace") for inc in root.iterfind(".//edmx:Include", ns)}
    for doc in walk(server).values():
        t = doc.get("@odata.type")
        if t:
            assert t.lstrip("#").rsplit(".", 1)[0] in included, t
    local = [ref.get("Uri") for ref in root.iterfind("edmx:Reference", ns) if ref.get("Uri").startswith("/")]
    assert local, "the OEM schema must be referenced by a local URI"
    for uri in local:
        got = anon.get(server.url + uri)
        assert got.status_code == 200
        ET.fromstring(got.content)
    odata = anon.get(server.url + "/redfish/v1/odata").json()
    assert odata["@odata.context"] == "/redfish/v1/$metadata"
    assert {"name": "Service", "kind": "Singleton", "url": "/redfish/v1/"} in odata["value"]


def test_session_login_use_and_logout(server):
    anon = server.anonymous()
    r = anon.post(server.url + "/redfish/v1/SessionService/Sessions",
                  json={"UserName": "admin", "Password": server.password})
    assert r.status_code == 201
    token, location = r.headers["X-Auth-Token"], r.headers["Location"]
    assert location == r.json()["@odata.id"] and r.json()["Password"] is None
    h = {"X-Auth-Token": token}
    assert anon.get(server.url + "/redfish/v1/Systems", headers=h).status_code == 200
    listed = anon.get(server.url + "/redfish/v1/SessionService/Sessions", headers=h).json()
    assert {"@odata.id": location} in listed["Members"]
    assert anon.delete(server.url + location, headers=h).status_code == 204
    assert anon.get(server.url + "/redfish/v1/Systems", headers=h).status_code == 401
    # the token is not kept in the store, only its hash
    db = (server.state_dir / "racklet.db").read_bytes()
    assert token.encode() not in db


def test_session_login_refusals(server):
    anon = server.anonymous()
    uri = server.url + "/redfish/v1/SessionService/Sessions"
    r = anon.post(uri, json={"UserName": "admin", "Password": "not-the-password"})
    assert r.status_code == 401 and "X-Auth-Token" not in r.headers
    r = anon.post(uri, json={"UserName": "nobody", "Password": "not-the-password"})
    assert r.status_code == 401
    r = anon.post(uri, json={"UserName": "admin"})
    assert r.status_code == 400 and r.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith("PropertyMissing")
    r = anon.post(uri, json={"UserName": "admin", "Password": 12})
    assert r.status_code == 400
    assert "12" not in r.text  # a password, even a wrong one, is never echoed


def test_session_timeout_enforced(fresh_server):
    srv = fresh_server(workers=1)
    c = srv.client()
    r = c.patch(srv.url + "/redfish/v1/SessionService", json={"SessionTimeout": 30})
    assert r.status_code == 200 and r.json()["SessionTimeout"] == 30
    tok = srv.anonymous().post(srv.url + "/redfish/v1/SessionService/Sessions",
                               json={"UserName": "admin", "Password": srv.password}).headers["X-Auth-Token"]
    # Age the session in the store instead of waiting: the server must judge by the clock.
    import sqlite3
    import time
    db = sqlite3.connect(srv.state_dir / "racklet.db")
    with db:
        db.execute("UPDATE sessions SET last_used=?", (time.time() - 31,))
    db.close()
    r = srv.anonymous().get(srv.url + "/redfish/v1/Systems", headers={"X-Auth-Token": tok})
    assert r.status_code == 401


def test_basic_auth_wrong_scheme_and_garbage(server):
    anon = server.anonymous()
    for header in ("Basic !!!notbase64", "Bearer abc", "Basic " + "YWRtaW4="):
        r = anon.get(server.url + "/redfish/v1/Systems", headers={"Authorization": header})
        assert r.status_code == 401, header


@pytest.mark.parametrize("old", ["TLSv1", "TLSv1_1"])
def test_tls_below_1_2_is_refused_by_the_server(server, old):
    import socket
    import ssl
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        version = getattr(ssl.TLSVersion, old)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(server.ca)
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer the old version
        ctx.minimum_version = ctx.maximum_version = version
    with pytest.raises(ssl.SSLError) as e:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                pass
    assert e.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION"  # the server's alert, not ours
    assert requests.get(server.url + "/redfish/v1", verify=server.ca).status_code == 200
