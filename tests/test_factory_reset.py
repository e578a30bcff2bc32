"""Factory reset through the API (Manager.ResetToDefaults) and the CLI, on live servers:
units powered down first, then a new identity, nothing remembered, under 5 s."""

from __future__ import annotations

import subprocess
import time

import requests

from redfish_racklet import auth
from redfish_racklet.store import Store

from .conftest import api_workers, cli, ids, restart, wait_for

RESET = "/redfish/v1/Managers/RMC/Actions/Manager.ResetToDefaults"


def store_of(srv) -> Store:
    return Store(str(srv.state_dir / "racklet.db"))


def remember_things(srv) -> dict:
    """Give the rack some memory a reset must wipe; return what we can check against."""
    c = srv.client()
    token = c.post(srv.url + "/redfish/v1/SessionService/Sessions",
                   json={"UserName": "admin", "Password": srv.password}).headers["X-Auth-Token"]
    st = store_of(srv)
    st.add_account("student", auth.hash_password("student-password-1"), "Operator")
    st.set_setting("Unit1", "led", "Lit")
    st.set_setting("Unit2", "boot", {"target": "Pxe", "enabled": "Continuous", "mode": "UEFI", "uri": ""})
    st.set_asset_tag("Unit3", "desk-7")
    st.set_power_limit(40.0)
    return {"token": token, "uuid": st.service_uuid(), "ca": (srv.state_dir / "ca.pem").read_bytes(),
            "cert": (srv.state_dir / "server.pem").read_bytes()}


def served_by_new_ca(srv, old_workers: set[int], workers: int) -> requests.Session:
    """A session that verifies with the new CA, once every old worker has been replaced
    (while they are, a connection may be reset, as during any manager reset)."""
    wait_for(lambda: len(now := api_workers(srv)) == workers and not now & old_workers,
             "the API workers replaced")
    s = requests.Session()
    s.verify, s.trust_env = srv.ca, False
    assert s.get(srv.url + "/redfish/v1", timeout=5).status_code == 200
    return s


def check_forgotten(srv, before: dict) -> None:
    st = store_of(srv)
    assert [a["username"] for a in st.accounts()] == ["admin"]
    assert st.service_uuid() != before["uuid"]
    assert (srv.state_dir / "ca.pem").read_bytes() != before["ca"]
    assert (srv.state_dir / "server.pem").read_bytes() != before["cert"]
    assert all(st.settings(u) == {} for u in ("Unit1", "Unit2", "Unit3"))
    assert st.unit("Unit3")["asset_tag"] == "" and st.power_limit() is None
    assert {u["desired_power"] for u in st.units()} == {"Off"}
    assert st.sessions(time.time()) == []
    messages = [e["message_id"].rsplit(".", 1)[1] for e in st.log_entries()]
    assert messages[-1] == "ManagerReset" and "ResourcePoweredOn" not in messages


def test_reset_to_defaults_through_the_api(fresh_server):
    srv = fresh_server()
    before = remember_things(srv)
    old_password = srv.password
    c = srv.client()
    workers = api_workers(srv)
    r = c.post(srv.url + RESET, json={"ResetType": "ResetAll"})  # its time: bench/bench_reset.py
    assert r.status_code == 200, r.text
    check_forgotten(srv, before)
    new_password = (srv.state_dir / "admin-password").read_text().strip()
    assert new_password != old_password and auth.password_problem(new_password) is None
    s = served_by_new_ca(srv, workers, len(workers))
    # every unit was powered down, and stays down
    s.auth = ("admin", new_password)
    systems = s.get(srv.url + "/redfish/v1/Systems?$expand=.").json()["Members"]
    assert {m["PowerState"] for m in systems} == {"Off"}
    # nobody gets in with what they had before
    assert s.get(srv.url + "/redfish/v1/Systems", auth=("admin", old_password)).status_code == 401
    assert s.get(srv.url + "/redfish/v1/Systems", auth=("student", "student-password-1")).status_code == 401
    s.auth = None
    assert s.get(srv.url + "/redfish/v1/Systems", headers={"X-Auth-Token": before["token"]}).status_code == 401


def test_reset_to_defaults_bad_input_changes_nothing(fresh_server):
    srv = fresh_server(workers=1)
    st = store_of(srv)
    st.add_account("operator", auth.hash_password("operator-password-1"), "Operator")
    uuid = st.service_uuid()
    c = srv.client()
    for body, status, msg in (({"ResetType": "PreserveNetwork"}, 400, "ActionParameterValueNotInList"),
                              ({}, 400, "ActionParameterMissing"),
                              ({"ResetType": "ResetAll", "Now": True}, 400, "ActionParameterUnknown"),
                              ({"ResetType": 1}, 400, "ActionParameterValueTypeError")):
        r = c.post(srv.url + RESET, json=body)
        assert r.status_code == status and ids(r) == [msg], (body, r.text)
    r = srv.client(auth=("operator", "operator-password-1")).post(srv.url + RESET, json={"ResetType": "ResetAll"})
    assert r.status_code == 403 and ids(r) == ["InsufficientPrivilege"]
    r = c.post(srv.url + "/redfish/v1/Managers/Unit1-BMC/Actions/Manager.ResetToDefaults",
               json={"ResetType": "ResetAll"})
    assert r.status_code == 404
    assert st.service_uuid() == uuid and len(st.accounts()) == 2
    assert c.get(srv.url + "/redfish/v1/Managers/RMC/ResetToDefaultsActionInfo").json()["Parameters"][0][
        "AllowableValues"] == ["ResetAll"]


def test_factory_reset_cli_online_and_offline(fresh_server):
    srv = fresh_server(workers=1)
    before = remember_things(srv)
    args = cli() + ["factory-reset", "--state-dir", str(srv.state_dir)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "--yes" in r.stderr  # no confirmation, no reset
    assert store_of(srv).service_uuid() == before["uuid"]
    r = subprocess.run(args + ["--yes"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "admin-password" in r.stdout
    check_forgotten(srv, before)
    # offline: no agent, nothing to power down
    srv.password = (srv.state_dir / "admin-password").read_text().strip()
    srv.stop()
    again = remember_things_offline(srv)
    r = subprocess.run(args + ["--yes"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [a["username"] for a in store_of(srv).accounts()] == ["admin"]
    assert store_of(srv).service_uuid() != again
    srv.password = (srv.state_dir / "admin-password").read_text().strip()
    up = restart(srv)
    c = up.client(auth=("admin", up.password))
    assert c.get(up.url + "/redfish/v1/Systems").status_code == 200  # the new password and CA work
    up.stop()


def remember_things_offline(srv) -> str:
    st = store_of(srv)
    st.add_account("student", auth.hash_password("student-password-1"), "Operator")
    return st.service_uuid()
