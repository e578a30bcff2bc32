"""Pure logic: reset planning, the simulated unit's timing, query parsing, the store."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from redfish_racklet import odata
from redfish_racklet.agent.power import RESET_TYPES, Conflict, plan_reset, power_state
from redfish_racklet.drivers.sim import SimUnit
from redfish_racklet.messages import RedfishError


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_sim_unit_boot_and_shutdown_follow_the_clock():
    clock = Clock()
    u = SimUnit(clock, boot_seconds=4, shutdown_seconds=2)
    assert power_state(u.get(), u.state()) == "Off"
    u.set(True)
    assert power_state(u.get(), u.state()) == "PoweringOn"
    clock.t += 3.99
    assert u.state() == "booting"
    clock.t += 0.02
    assert power_state(u.get(), u.state()) == "On"
    u.request_shutdown()
    assert power_state(u.get(), u.state()) == "PoweringOff"
    clock.t += 2
    assert u.state() == "halted" and u.get()  # halted, rail still on until the agent cuts it
    u.set(False)
    assert power_state(u.get(), u.state()) == "Off"


def test_unplugged_unit_loses_power():
    u = SimUnit(Clock())
    u.set(True)
    u.plug(False)
    assert not u.get() and u.state() == "off" and not u.present()


@pytest.mark.parametrize("reset_type", RESET_TYPES)
def test_absent_units_refuse_every_reset(reset_type):
    with pytest.raises(Conflict):
        plan_reset(reset_type, False, "Off")


@pytest.mark.parametrize("reset_type,state,steps,desired", [
    ("On", "Off", ["rail_on"], "On"),
    ("On", "On", [], "On"),
    ("ForceOn", "PoweringOn", [], "On"),
    ("ForceOff", "On", ["rail_off"], "Off"),
    ("ForceOff", "PoweringOn", ["rail_off"], "Off"),
    ("GracefulShutdown", "On", ["shutdown"], "Off"),
    ("ForceRestart", "On", ["rail_off", "rail_on"], "On"),
    ("ForceRestart", "Off", ["rail_on"], "On"),
    ("PowerCycle", "On", ["rail_off"], "On"),
    ("GracefulRestart", "On", ["shutdown"], "On"),
])
def test_reset_plans(reset_type, state, steps, desired):
    got_steps, _, got_desired = plan_reset(reset_type, True, state)
    assert (got_steps, got_desired) == (steps, desired)


@pytest.mark.parametrize("reset_type", ["ForceOff", "GracefulShutdown"])
def test_off_when_off_conflicts(reset_type):
    with pytest.raises(Conflict, match="already Off"):
        plan_reset(reset_type, True, "Off")


def test_query_parse():
    q = odata.parse(MultiDict({"$select": "A,B/C", "$expand": "*($levels=2)", "$top": "3", "$skip": "1"}))
    assert q.select == [["A"], ["B", "C"]] and q.expand == "*" and q.levels == 2
    assert (q.top, q.skip) == (3, 1)
    assert odata.parse(MultiDict({"x": "1"})).empty
    with pytest.raises(RedfishError) as e:
        odata.parse(MultiDict({"$orderby": "x"}))
    assert e.value.status == 501


def test_select_and_page_are_pure():
    doc = {"@odata.id": "/c", "Members": [{"@odata.id": f"/c/{i}"} for i in range(5)],
           "Members@odata.count": 5, "Name": "c"}
    paged = odata.page(doc, odata.Query(top=2, skip=4))
    assert paged["Members"] == [{"@odata.id": "/c/4"}] and "Members@odata.nextLink" not in paged
    assert doc["Members@odata.count"] == 5 and len(doc["Members"]) == 5
    assert odata.select({"@odata.id": "/x", "A": 1, "B": {"C": 2, "D": 3}}, [["B", "C"]]) == \
        {"@odata.id": "/x", "B": {"C": 2}}


def test_expand_budget_stops_fetching():
    calls = []

    def fetch(uri):
        calls.append(uri)
        return {"@odata.id": uri, "Next": {"@odata.id": uri + "/n"}}

    ex = odata.Expander(fetch)
    ex.budget = 3
    out = ex.expand({"A": {"@odata.id": "/a"}}, "*", 10)
    assert len(calls) == 3
    assert out["A"]["Next"]["Next"]["Next"] == {"@odata.id": "/a/n/n/n"}


def test_sessions_expire_by_idle_time(tmp_path):
    from redfish_racklet.store import Store
    st = Store(str(tmp_path / "s.db"))
    st.create()
    st.add_account("admin", "x", "Administrator")
    sess, token = st.create_session("admin", "127.0.0.1", now=100.0)
    timeout = st.session_timeout()
    assert st.session_by_token(token, now=100.0 + timeout - 1)["id"] == sess["id"]
    assert st.session_by_token(token, now=100.0 + 2 * timeout) is None
    assert st.session(sess["id"]) is None


def test_password_hash_roundtrip():
    from redfish_racklet import auth
    h = auth.hash_password("a-long-password-1")
    assert h.startswith("scrypt$") and "a-long-password-1" not in h
    assert auth.verify_password("a-long-password-1", h)
    assert not auth.verify_password("a-long-password-2", h)
    assert not auth.verify_password("whatever", None)
    assert not auth.verify_password("x", "garbage")


def test_store_read_cache_is_exact(tmp_path):
    """A cached read lives only until the next write, by this or any other connection."""
    from redfish_racklet.store import Store
    a = Store(str(tmp_path / "s.db"))
    a.create()
    b = Store(str(tmp_path / "s.db"))  # another worker process, as far as SQLite knows
    a.upsert_unit("Unit1", 1, {"name": "n"}, True, "On", 1.0)
    assert a.unit("Unit1")["power_state"] == "On"
    assert a.unit("Unit1") is a.unit("Unit1")  # served from the cache
    b.set_observed("Unit1", True, "Off", 2.0)  # written elsewhere
    assert a.unit("Unit1")["power_state"] == "Off"
    a.set_asset_tag("Unit1", "mine")  # written by the same connection
    assert a.unit("Unit1")["asset_tag"] == "mine"
    loads = []
    a.cached("k", lambda: loads.append(1) or len(loads))
    a.cached("k", lambda: loads.append(1) or len(loads))
    assert loads == [1]


def test_store_read_cache_is_bounded(tmp_path):
    from redfish_racklet.store import READ_CACHE_MAX, Store
    st = Store(str(tmp_path / "s.db"))
    st.create()
    st.add_account("admin", "x", "Administrator")
    for i in range(READ_CACHE_MAX * 3):  # unknown tokens, as an attacker would send
        assert st.session_by_token(f"bogus-{i}", now=1.0) is None
    assert len(st._local.cache) <= READ_CACHE_MAX
