"""redfishtool (DMTF) drives a live rack unmodified: the service root, Systems list/get and
reset, Chassis power and thermal, Managers, accounts and sessions. (Issue [8]'s list;
redfishtool 1.1.8 hard-codes verify=False for TLS — loopback only here.)"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from .clients import CLIENT_SECONDS, TOOLS, client_env
from .conftest import TEST_MANIFEST, module_server, wait_for


def tool() -> str:
    path = TOOLS / "redfishtool"
    if path.exists():
        return str(path)
    found = shutil.which("redfishtool")
    if found is None:
        pytest.skip("needs redfishtool (DMTF, PyPI redfishtool; in the test extra)")
    return found


@pytest.fixture(scope="module")
def rack(tmp_path_factory):
    yield from module_server(tmp_path_factory, "redfishtool", TEST_MANIFEST)


def rt(srv, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool(), "-r", f"127.0.0.1:{srv.port}", "-u", "admin", "-p", srv.password, "-S", "Always",
                           "-n", *args], capture_output=True, text=True, timeout=CLIENT_SECONDS, env=client_env())


def shown(srv, *args: str) -> dict:
    r = rt(srv, *args)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return json.loads(r.stdout)


def test_service_root_systems_and_chassis(rack):
    root = shown(rack, "root")
    served = rack.get("/redfish/v1").json()
    assert (root["@odata.id"], root["UUID"], root["Systems"]) == ("/redfish/v1", served["UUID"], served["Systems"])
    listed = shown(rack, "Systems", "list")
    assert listed["Members@odata.count"] == rack.get("/redfish/v1/Systems").json()["Members@odata.count"]
    unit1 = shown(rack, "Systems", "-I", "Unit1", "get")
    assert (unit1["Id"], unit1["PowerState"]) == ("Unit1", rack.get("/redfish/v1/Systems/Unit1").json()["PowerState"])
    power = shown(rack, "Chassis", "-I", "Unit1", "Power")
    assert power["@odata.id"] == "/redfish/v1/Chassis/Unit1/Power" and power["PowerControl"]
    thermal = shown(rack, "Chassis", "-I", "Unit1", "Thermal")
    assert {t["Name"] for t in thermal["Temperatures"]} == {
        t["Name"] for t in rack.get("/redfish/v1/Chassis/Unit1/Thermal").json()["Temperatures"]}


def test_reset_off_and_on(rack):
    c = rack.client()
    state = lambda: c.get(rack.url + "/redfish/v1/Systems/Unit2").json()["PowerState"]  # noqa: E731
    assert rt(rack, "Systems", "-I", "Unit2", "reset", "ForceOff").returncode == 0
    wait_for(lambda: state() == "Off", "Unit2 off", timeout=10)
    assert rt(rack, "Systems", "-I", "Unit2", "reset", "On").returncode == 0
    wait_for(lambda: state() == "On", "Unit2 on", timeout=15)
    bad = rt(rack, "Systems", "-I", "Unit2", "reset", "Explode")
    assert bad.returncode != 0 and state() == "On"


def test_managers_accounts_and_sessions(rack):
    managers = shown(rack, "Managers", "list")
    ids = {m["Id"] for m in managers["Members"]}
    assert "RMC" in ids and len(ids) == managers["Members@odata.count"]
    rmc = shown(rack, "Managers", "-I", "RMC", "get")
    assert rmc["ManagerType"] == "RackManager"
    added = shown(rack, "AccountService", "adduser", "student1", "a-long-class-password-1", "ReadOnly")
    assert (added["UserName"], added["RoleId"]) == ("student1", "ReadOnly")
    accounts = shown(rack, "AccountService", "Accounts")
    assert added["@odata.id"] in {m["@odata.id"] for m in accounts["Members"]}
    login = rack.anonymous().post(rack.url + "/redfish/v1/SessionService/Sessions",
                                  json={"UserName": "admin", "Password": rack.password})
    assert login.status_code == 201
    sessions = shown(rack, "SessionService", "Sessions")   # redfishtool itself logs in with Basic
    assert login.headers["Location"] in {m["@odata.id"] for m in sessions["Members"]}
    assert rt(rack, "AccountService", "deleteuser", "student1").returncode == 0
    assert added["@odata.id"] not in {m["@odata.id"] for m in shown(rack, "AccountService", "Accounts")["Members"]}
