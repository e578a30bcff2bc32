"""The read cache of GETs with query options ($expand, $select, $top/$skip, only).

``RedfishView._cached_query`` (web.py) reuses the rendered body of such a GET until the
next write to the store, per caller. These tests show that it is really used (an
in-process app over a live server's store, counting renders), that every kind of write
shows at once in the next answer (a PATCH, a power change and a sensor reading by the
agent), that bodies which depend on the request (the Host header) are not reused, and
that a caller never gets a body rendered for another role.
"""

from __future__ import annotations

import base64
import uuid

import pytest

from redfish_racklet.app import create_app
from redfish_racklet.resources import sensors, systems

from .conftest import module_server, sim, wait_for

ACCOUNTS = "/redfish/v1/AccountService/Accounts"
EXPAND = "/redfish/v1/Systems?$expand=."
RESET = "/redfish/v1/Systems/{}/Actions/ComputerSystem.Reset"
TEMPERATURE = "/redfish/v1/Chassis/Unit1/Sensors/Temperature"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """A server of this module's own: the tests change asset tags, power and heat."""
    yield from module_server(tmp_path_factory, "readcache")


def member(doc: dict, uri: str) -> dict:
    return next(m for m in doc["Members"] if m["@odata.id"] == uri)


def test_expanded_bodies_are_reused_until_a_write(srv, monkeypatch):
    """In process, over the live server's store: a second identical $expand renders no
    view; a write to the store (here by the live server) makes the next one render again."""
    app = create_app({"STATE_DIR": str(srv.state_dir)})
    calls = []
    real = systems.System.get
    monkeypatch.setattr(systems.System, "get", lambda self, **kw: calls.append(kw) or real(self, **kw))
    auth = {"Authorization": "Basic " + base64.b64encode(f"admin:{srv.password}".encode()).decode()}
    c = app.test_client()

    def reused() -> bool:  # retried: the agent's sampling may write between the two reads
        calls.clear()
        first = c.get(EXPAND, headers=auth)
        n = len(calls)
        second = c.get(EXPAND, headers=auth)
        assert first.status_code == second.status_code == 200
        return n > 0 and len(calls) == n and first.data == second.data
    wait_for(reused, "a second $expand served from the cache")
    tag = "cache-" + uuid.uuid4().hex[:8]
    r = srv.client().patch(srv.url + "/redfish/v1/Systems/Unit1", json={"AssetTag": tag})
    assert r.status_code == 200, r.text
    calls.clear()
    doc = c.get(EXPAND, headers=auth).get_json()
    assert calls, "the write did not invalidate the cached body"
    assert member(doc, "/redfish/v1/Systems/Unit1")["AssetTag"] == tag


def test_every_write_shows_at_once(srv):
    """A PATCH, a power change and a sensor reading: the next query answer shows each."""
    c = srv.client()

    def get(uri):
        r = c.get(srv.url + uri)
        assert r.status_code == 200, r.text
        return r.json()
    for _ in range(4):  # warm the cache of every worker thread we reach
        get(EXPAND), get("/redfish/v1/Systems/Unit1?$select=AssetTag")
    tag = "tag-" + uuid.uuid4().hex[:8]
    assert c.patch(srv.url + "/redfish/v1/Systems/Unit1", json={"AssetTag": tag}).status_code == 200
    assert member(get(EXPAND), "/redfish/v1/Systems/Unit1")["AssetTag"] == tag
    assert get("/redfish/v1/Systems/Unit1?$select=AssetTag")["AssetTag"] == tag
    # power: the agent switches the rail and writes what it observed
    unit2 = "/redfish/v1/Systems/Unit2"
    before = member(get(EXPAND), unit2)["PowerState"]
    reset = "ForceOff" if before == "On" else "On"
    assert c.post(srv.url + RESET.format("Unit2"), json={"ResetType": reset}).status_code in (200, 202, 204)
    def switched():
        state = get(unit2)["PowerState"]
        return state if state in ("On", "Off") and state != before else None
    after = wait_for(switched, "the power change")
    assert member(get(EXPAND), unit2)["PowerState"] == after
    # a sensor reading written by the agent: the board jumps by 60 °C at once
    expand = "/redfish/v1/Chassis/Unit1/Sensors?$expand=."
    cold = member(get(expand), TEMPERATURE)["Reading"]
    sim(srv, "heat", "Unit1", "60")
    try:
        wait_for(lambda: get(TEMPERATURE)["Reading"] > cold + 40, "the hot reading")
        assert member(get(expand), TEMPERATURE)["Reading"] > cold + 40
    finally:
        sim(srv, "heat", "Unit1", "0")


def test_bodies_that_name_the_host_are_not_reused(srv):
    """The root's $expand inlines the EventService, whose ServerSentEventUri names the Host
    the client asked: not cacheable, so each Host gets its own."""
    c = srv.client()
    seen = {}
    for _ in range(3):
        for host in ("localhost", "127.0.0.1"):
            r = c.get(srv.url + "/redfish/v1?$expand=.", headers={"Host": f"{host}:{srv.port}"})
            assert r.status_code == 200, r.text
            seen.setdefault(host, set()).add(r.json()["EventService"]["ServerSentEventUri"])
    for host, uris in seen.items():
        assert len(uris) == 1 and host in next(iter(uris)), seen


def test_roles_do_not_leak(srv):
    """An Administrator's $expand inlines what a ReadOnly user may not read; asked in turn,
    each always gets its own, and a role change shows at once."""
    name, password = "viewer-" + uuid.uuid4().hex[:6], "viewer-password-1"
    admin = srv.client()
    r = admin.post(srv.url + ACCOUNTS, json={"UserName": name, "Password": password, "RoleId": "ReadOnly"})
    assert r.status_code == 201, r.text
    account = r.headers["Location"]
    viewer = srv.client(auth=(name, password))
    uri, inner = "/redfish/v1/CertificateService?$expand=.", "CertificateLocations"
    assert viewer.get(srv.url + "/redfish/v1/CertificateService/CertificateLocations").status_code == 403
    admin_own = admin.get(srv.url + "/redfish/v1/CertificateService/CertificateLocations").json()
    for _ in range(4):
        as_admin = admin.get(srv.url + uri).json()
        as_viewer = viewer.get(srv.url + uri).json()
        assert as_admin[inner] == admin_own
        assert set(as_viewer[inner]) == {"@odata.id"}  # left as a link: not readable
    assert admin.patch(srv.url + account, json={"RoleId": "Administrator"}).status_code == 200
    assert viewer.get(srv.url + uri).json()[inner] == admin_own
    admin.delete(srv.url + account)


def test_the_views_these_tests_use_are_cacheable():
    """Else the tests above would pass without exercising the cache."""
    assert systems.Systems.cacheable and systems.System.cacheable
    assert all(getattr(cls, "cacheable", False) for cls in vars(sensors).values()
               if isinstance(cls, type) and cls.__module__ == sensors.__name__ and hasattr(cls, "get"))
