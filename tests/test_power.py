"""The command path end to end: API -> agent -> simulated rail -> store -> any worker."""

from __future__ import annotations

import time

import requests

RESET = "/redfish/v1/Systems/{}/Actions/ComputerSystem.Reset"


def power_state_seen_by_fresh_connections(server, unit: str, n: int = 12) -> set[str]:
    """PowerState as seen over n new TLS connections (spread over the workers)."""
    states = set()
    for _ in range(n):
        with requests.Session() as s:
            s.verify, s.trust_env = server.ca, False
            s.auth = ("admin", server.password)
            states.add(s.get(f"{server.url}/redfish/v1/Systems/{unit}").json()["PowerState"])
    return states


def wait_for_state(server, unit: str, wanted: str, timeout: float = 10.0) -> float:
    """Poll (bounded) until the unit reports ``wanted``; returns the time it took."""
    c = server.client()
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if c.get(f"{server.url}/redfish/v1/Systems/{unit}").json()["PowerState"] == wanted:
            return time.monotonic() - t0
        time.sleep(0.02)
    raise AssertionError(f"{unit} did not reach {wanted} in {timeout} s")


def reset(server, unit: str, reset_type: str) -> requests.Response:
    return server.client().post(server.url + RESET.format(unit), json={"ResetType": reset_type})


def test_units_boot_at_start(server):
    for unit in ("Unit1", "Unit2", "Unit3", "Unit4"):
        wait_for_state(server, unit, "On")
    doc = server.get("/redfish/v1/Systems/Unit1").json()
    assert doc["Status"] == {"State": "Enabled", "Health": "OK"}
    assert doc["Oem"]["Racklet"]["DesiredPowerState"] == "On"


def test_force_off_then_on_seen_by_every_worker(server):
    wait_for_state(server, "Unit3", "On")
    r = reset(server, "Unit3", "ForceOff")
    assert r.status_code == 200
    assert r.json()["@Message.ExtendedInfo"][0]["MessageId"].endswith(".Success")
    # The agent acted before the API answered: every worker sees it at once.
    assert power_state_seen_by_fresh_connections(server, "Unit3") == {"Off"}
    assert server.get("/redfish/v1/Systems/Unit3").json()["Oem"]["Racklet"]["DesiredPowerState"] == "Off"
    assert server.get("/redfish/v1/Chassis/Unit3").json()["PowerState"] == "Off"

    # Already off: refused, nothing changes.
    for again in ("ForceOff", "GracefulShutdown"):
        r = reset(server, "Unit3", again)
        assert r.status_code == 409
        assert r.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith("ActionParameterValueConflict")
    assert power_state_seen_by_fresh_connections(server, "Unit3", 3) == {"Off"}

    assert reset(server, "Unit3", "On").status_code == 200
    assert power_state_seen_by_fresh_connections(server, "Unit3") <= {"PoweringOn", "On"}
    wait_for_state(server, "Unit3", "On")


def test_graceful_shutdown_goes_through_powering_off(server):
    wait_for_state(server, "Unit4", "On")
    assert reset(server, "Unit4", "GracefulShutdown").status_code == 200
    assert server.get("/redfish/v1/Systems/Unit4").json()["PowerState"] == "PoweringOff"
    wait_for_state(server, "Unit4", "Off")
    assert reset(server, "Unit4", "On").status_code == 200
    wait_for_state(server, "Unit4", "On")


def test_restarts_and_power_cycle_end_on(server):
    for reset_type in ("ForceRestart", "GracefulRestart", "PowerCycle"):
        wait_for_state(server, "Unit1", "On")
        assert reset(server, "Unit1", reset_type).status_code == 200
        wait_for_state(server, "Unit1", "On")
    # A restart of a unit that is off powers it on, as a power button would.
    assert reset(server, "Unit1", "ForceOff").status_code == 200
    assert reset(server, "Unit1", "ForceRestart").status_code == 200
    wait_for_state(server, "Unit1", "On")


def test_on_when_on_is_idempotent(server):
    wait_for_state(server, "Unit2", "On")
    assert reset(server, "Unit2", "On").status_code == 200
    assert server.get("/redfish/v1/Systems/Unit2").json()["PowerState"] == "On"


def test_operator_may_reset_readonly_may_not(fresh_server):
    srv = fresh_server(workers=1)
    from redfish_racklet import auth
    from redfish_racklet.store import Store
    st = Store(str(srv.state_dir / "racklet.db"))
    st.add_account("viewer", auth.hash_password("viewer-password-1"), "ReadOnly")
    st.add_account("operator", auth.hash_password("operator-password-1"), "Operator")
    ro = srv.client(auth=("viewer", "viewer-password-1"))
    wait_for_state(srv, "Unit1", "On")
    r = ro.post(srv.url + RESET.format("Unit1"), json={"ResetType": "ForceOff"})
    assert r.status_code == 403
    assert r.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith("InsufficientPrivilege")
    assert ro.patch(srv.url + "/redfish/v1/Systems/Unit1", json={"AssetTag": "x"}).status_code == 403
    assert ro.get(srv.url + "/redfish/v1/Systems/Unit1").json()["PowerState"] == "On"
    op = srv.client(auth=("operator", "operator-password-1"))
    assert op.post(srv.url + RESET.format("Unit1"), json={"ResetType": "ForceOff"}).status_code == 200
    assert ro.get(srv.url + "/redfish/v1/Systems/Unit1").json()["PowerState"] == "Off"
    # accounts: a ReadOnly user sees its own account, not the admin's
    assert ro.get(srv.url + "/redfish/v1/AccountService/Accounts/2").status_code == 200
    assert ro.get(srv.url + "/redfish/v1/AccountService/Accounts/1").status_code == 403


def test_desired_state_survives_restart(fresh_server):
    from .conftest import restart
    srv = fresh_server(workers=1)
    wait_for_state(srv, "Unit1", "On")
    assert reset(srv, "Unit2", "ForceOff").status_code == 200
    again = restart(srv)
    try:
        wait_for_state(again, "Unit1", "On")  # the agent restored the others
        assert again.get("/redfish/v1/Systems/Unit2").json()["PowerState"] == "Off"
    finally:
        again.stop()
