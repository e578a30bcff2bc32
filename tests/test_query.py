"""OData query options on a live server: $select, $expand/$levels, $top/$skip, only."""

from __future__ import annotations

import pytest


def get(server, uri):
    return server.client().get(server.url + uri)


def test_select_keeps_identity_and_selected(server):
    doc = get(server, "/redfish/v1/Systems/Unit1?$select=PowerState,Status/Health").json()
    assert set(doc) == {"@odata.id", "@odata.type", "@odata.etag", "PowerState", "Status"}
    assert set(doc["Status"]) == {"Health"}


def test_expand_members_and_levels(server):
    full = get(server, "/redfish/v1/Systems?$expand=.").json()
    assert [m["Id"] for m in full["Members"]] == ["Unit1", "Unit2", "Unit3", "Unit4", "Unit5"]
    assert all("PowerState" in m for m in full["Members"])
    # one level: the members' own links stay links
    assert set(full["Members"][0]["Links"]["Chassis"][0]) == {"@odata.id"}
    two = get(server, "/redfish/v1/Chassis/Rack?$expand=~($levels=2)").json()
    tray = two["Links"]["Contains"][0]
    assert tray["Id"] == "Unit1" and tray["Links"]["ComputerSystems"][0]["Id"] == "Unit1"
    dot = get(server, "/redfish/v1/Chassis/Rack?$expand=.").json()
    assert set(dot["Links"]["Contains"][0]) == {"@odata.id"}  # '.' does not follow Links
    star = get(server, "/redfish/v1?$expand=*").json()
    assert star["Systems"]["Members@odata.count"] == 5


def test_expand_on_root_without_login_expands_nothing_private(server):
    doc = server.anonymous().get(server.url + "/redfish/v1?$expand=*($levels=3)").json()
    assert set(doc["Systems"]) == {"@odata.id"}


def test_expand_is_bounded(server):
    r = get(server, "/redfish/v1?$expand=*($levels=3)")
    assert r.status_code == 200
    assert len(r.content) < 512 * 1024
    from redfish_racklet.odata import MAX_LEVELS
    bad = get(server, f"/redfish/v1?$expand=*($levels={MAX_LEVELS + 1})")
    assert bad.status_code == 400


def test_top_skip(server):
    doc = get(server, "/redfish/v1/Systems?$skip=1&$top=2").json()
    assert [m["@odata.id"] for m in doc["Members"]] == ["/redfish/v1/Systems/Unit2", "/redfish/v1/Systems/Unit3"]
    assert doc["Members@odata.count"] == 5
    assert doc["Members@odata.nextLink"] == "/redfish/v1/Systems?$skip=3&$top=2"
    nxt = get(server, doc["Members@odata.nextLink"]).json()
    assert [m["@odata.id"][-5:] for m in nxt["Members"]] == ["Unit4", "Unit5"]
    assert "Members@odata.nextLink" not in nxt


def test_only(server):
    doc = get(server, "/redfish/v1/PowerEquipment/ElectricalBuses?only").json()
    assert doc["Id"] == "Busbar"  # the one member, instead of the collection
    many = get(server, "/redfish/v1/Systems?only").json()
    assert many["Members@odata.count"] == 5  # more than one member: the collection itself
    assert get(server, "/redfish/v1/Systems/Unit1?only").status_code == 400


@pytest.mark.parametrize("query,status", [
    ("$top=-1", 400), ("$top=abc", 400), ("$skip=1.5", 400), ("$expand=Foo", 400),
    ("$select=", 400), ("$select=a,,b", 400), ("only=foo", 400), ("$filter=Id eq 'Unit1'", 501),
    ("$bogus=1", 501), ("unrelated=1", 200), ("$top=1&$top=2", 400),
])
def test_bad_query_values(server, query, status):
    r = get(server, "/redfish/v1/Systems?" + query)
    assert r.status_code == status, r.text
    if status != 200:
        assert r.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].startswith("Base.1.22.")


def test_top_zero_has_no_next_page(server):
    doc = get(server, "/redfish/v1/Systems?$top=0").json()
    assert doc["Members"] == [] and doc["Members@odata.count"] == 5
    assert "Members@odata.nextLink" not in doc  # a client following it would loop
