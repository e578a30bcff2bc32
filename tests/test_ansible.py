"""Ansible's community.general Redfish modules against live racks, as real
``ansible-playbook`` runs (issue: Ansible).

Each test runs one of the playbooks users are shown (tests/ansible/*.yml and
deploy/ansible/fleet.yml, quoted in docs/ansible.md), lets the playbook write what the
modules returned to a JSON file, and compares that, and the rack's state afterwards,
with what the service itself says over plain HTTPS. TLS is always verified against the
rack's own CA (``validate_certs: true`` and ``ca_path``, community.general >= 11).

- rack_report.yml (redfish_info, read only): units, boot settings, chassis, power,
  thermals, managers, firmware inventory, accounts, sessions;
- power_and_boot.yml (redfish_command): force off, on, graceful restart, one-time PXE
  boot, blinking tray LED;
- accounts.yml (redfish_command, redfish_config, redfish_info): session login and
  logout, add / update password and role / enable / disable / delete accounts, lockout
  threshold, session timeout;
- firmware_update.yml (redfish_command, redfish_info): a multipart push of a signed
  bundle, followed to the end of its task;
- deploy/ansible/fleet.yml on two racks at once: power a unit off everywhere, make sure
  an operator account exists, clear the logs, and the fleet report.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .clients import client_env
from .conftest import ROOT, TEST_MANIFEST, Server, cli, module_server, wait_for, wait_until_settled
from .test_update_clients import Bundle, assert_new_version_active, slots

PLAYBOOKS = ROOT / "tests" / "ansible"
FLEET = ROOT / "deploy" / "ansible" / "fleet.yml"
DOC = ROOT / "docs" / "ansible.md"
PLAYBOOK_SECONDS = 120.0
ACCOUNTS = "/redfish/v1/AccountService/Accounts"
EVENT_LOG = "/redfish/v1/Managers/RMC/LogServices/EventLog/Entries"


# --- running ansible-playbook -----------------------------------------------------------------

def ansible_playbook() -> Path:
    path = Path(sys.executable).parent / "ansible-playbook"
    if not path.exists():
        pytest.skip("ansible-playbook is not installed: pip install 'ansible>=12,<13'")
    return path


def ansible_env(tmp: Path) -> dict[str, str]:
    """No proxies, a UTF-8 locale (ansible-core refuses others), and every file Ansible
    writes kept inside the test's directory."""
    env = client_env()
    home = tmp / "ansible-home"
    env.update(LC_ALL="C.UTF-8", ANSIBLE_HOME=str(home), ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
               ANSIBLE_REMOTE_TMP=str(home / "remote-tmp"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="0")
    env.pop("ANSIBLE_CONFIG", None)
    return env


def run_playbook(playbook: Path, tmp: Path, extra_vars: dict, inventory: Path | None = None) -> None:
    """Run ``playbook`` with ``extra_vars`` (as a JSON file: passwords stay off the
    command line), on ``localhost`` unless an inventory is given; fail with its output."""
    tmp.mkdir(parents=True, exist_ok=True)
    vars_file = tmp / f"{playbook.stem}-vars.json"
    vars_file.write_text(json.dumps(extra_vars))
    vars_file.chmod(0o600)
    if inventory is None:
        target = ["-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"]
    else:
        target = ["-i", str(inventory)]
    r = subprocess.run([str(ansible_playbook()), *target, "-e", f"@{vars_file}", str(playbook)],
                       capture_output=True, text=True, timeout=PLAYBOOK_SECONDS, cwd=tmp, env=ansible_env(tmp))
    assert r.returncode == 0, f"{playbook.name} failed:\n{r.stdout[-6000:]}\n{r.stderr[-3000:]}"


def rack_vars(server: Server) -> dict:
    return {"rack_baseuri": f"127.0.0.1:{server.port}", "rack_username": "admin",
            "rack_password": server.password, "rack_ca": server.ca}


# --- what the service says ---------------------------------------------------------------------

def members(server: Server, path: str) -> list[dict]:
    r = server.client().get(server.url + path + "?$expand=.")
    assert r.status_code == 200, r.text
    return r.json()["Members"]


def by_id(entries: list) -> dict[str, dict]:
    """redfish_info lists per-resource results as [{"system_uri": URI}, {...}] pairs: by the
    Id at the end of the URI."""
    return {next(iter(where.values())).rsplit("/", 1)[1]: doc for where, doc in entries}


def log_entries(server: Server) -> set[tuple]:
    return {(e["Id"], e["Created"], e["MessageId"], tuple(e.get("MessageArgs", [])))
            for e in members(server, EVENT_LOG)}


def can_log_in(server: Server, user: str, password: str) -> bool:
    r = server.client(auth=(user, password)).get(server.url + "/redfish/v1/SessionService")
    assert r.status_code in (200, 401), r.text
    return r.status_code == 200


def account(server: Server, name: str) -> dict | None:
    return next((a for a in members(server, ACCOUNTS) if a["UserName"] == name), None)


def add_account(server: Server, name: str, password: str, role: str, enabled: bool = True) -> None:
    r = server.client().post(server.url + ACCOUNTS, json={"UserName": name, "Password": password,
                                                          "RoleId": role, "Enabled": enabled})
    assert r.status_code == 201, r.text


# --- racks ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rack(tmp_path_factory):
    """A rack of the module's own: the playbooks here change power, accounts, firmware."""
    yield from module_server(tmp_path_factory, "ansible", TEST_MANIFEST)


def racklet(*args: str, cwd: Path) -> None:
    r = subprocess.run(cli() + list(args), capture_output=True, text=True, timeout=60, cwd=cwd)
    assert r.returncode == 0, r.stderr


# --- the tests -----------------------------------------------------------------------------------

def test_rack_report_matches_what_the_service_says(server, tmp_path):
    ansible_playbook()
    wait_until_settled(server)    # no unit left powering on or off by an earlier test
    c = server.client()
    login = c.post(server.url + "/redfish/v1/SessionService/Sessions",
                   json={"UserName": "admin", "Password": server.password})
    assert login.status_code == 201, login.text
    try:
        run_playbook(PLAYBOOKS / "rack_report.yml", tmp_path,
                     {**rack_vars(server), "report_file": str(tmp_path / "report.json")})
    finally:
        c.delete(server.url + login.headers["Location"])
    report = json.loads((tmp_path / "report.json").read_text())

    systems = {s["Id"]: s for s in members(server, "/redfish/v1/Systems")}
    assert {k: v["PowerState"] for k, v in by_id(report["system"]["entries"]).items()} == \
        {k: v["PowerState"] for k, v in systems.items()}
    assert {k: v.get("BiosVersion") for k, v in by_id(report["system"]["entries"]).items()} == \
        {k: v.get("BiosVersion") for k, v in systems.items()}
    assert {k: v["BootSourceOverrideTarget"] for k, v in by_id(report["boot_override"]["entries"]).items()} == \
        {k: v["Boot"]["BootSourceOverrideTarget"] for k, v in systems.items()}

    chassis = members(server, "/redfish/v1/Chassis")
    assert [c["Id"] for c in report["chassis"]["entries"]] == [c["Id"] for c in chassis]
    controls = [pc for ch in chassis
                for pc in server.get(ch["Power"]["@odata.id"]).json()["PowerControl"]]
    assert {(e["Name"], e["PowerCapacityWatts"]) for e in report["chassis_power"]["entries"]} == \
        {(pc["Name"], pc["PowerCapacityWatts"]) for pc in controls}
    temperatures = [t for ch in chassis
                    for t in server.get(ch["Thermal"]["@odata.id"]).json()["Temperatures"]]
    assert {(e["Name"], e["UpperThresholdCritical"]) for e in report["thermals"]["entries"]} == \
        {(t["Name"], t["UpperThresholdCritical"]) for t in temperatures}

    managers = {m["Id"]: m["FirmwareVersion"] for m in members(server, "/redfish/v1/Managers")}
    assert {k: v["FirmwareVersion"] for k, v in by_id(report["manager"]["entries"]).items()} == managers
    inventory = {f["Id"]: f["Version"] for f in members(server, "/redfish/v1/UpdateService/FirmwareInventory")}
    assert {f["Id"]: f["Version"] for f in report["firmware"]["entries"]} == inventory
    accounts = {(a["UserName"], a["RoleId"]) for a in members(server, ACCOUNTS)}
    assert {(u["UserName"], u["RoleId"]) for u in report["user"]["entries"]} == accounts
    assert login.headers["Location"].rsplit("/", 1)[1] in {s["Id"] for s in report["session"]["entries"]}


def test_power_and_boot_playbook_powers_restarts_and_sets_a_one_time_boot(rack, tmp_path):
    ansible_playbook()
    unit = "Unit2"
    before = log_entries(rack)
    run_playbook(PLAYBOOKS / "power_and_boot.yml", tmp_path,
                 {**rack_vars(rack), "unit": unit, "boot_target": "Pxe",
                  "results_file": str(tmp_path / "results.json")})
    results = json.loads((tmp_path / "results.json").read_text())
    assert all(results[step]["changed"] for step in ("power_off", "power_on", "restart", "one_time_boot", "led"))

    system = f"/redfish/v1/Systems/{unit}"

    def power_events() -> list[str] | None:
        """The unit's power events since the playbook began, once the restart's power-on is in."""
        new = sorted(log_entries(rack) - before, key=lambda e: (e[1], int(e[0])))
        events = [e[2].rsplit(".", 1)[1] for e in new if system in e[3]]
        return events if events.count("ResourcePoweredOn") >= 2 else None
    events = wait_for(power_events, "the restart's power-on in the event log", timeout=20)
    assert events[0] == "ResourcePoweredOff", events
    wait_for(lambda: rack.get(system).json()["PowerState"] == "On", f"{unit} on after the restart")

    # The restart's boot used the one-time override, which then turned itself off.
    boot = rack.get(system).json()["Boot"]
    assert (boot["BootSourceOverrideTarget"], boot["BootSourceOverrideEnabled"]) == ("Pxe", "Disabled")
    assert rack.get(f"/redfish/v1/Chassis/{unit}").json()["IndicatorLED"] == "Blinking"


def test_accounts_playbook_creates_updates_disables_and_deletes_accounts(rack, tmp_path):
    ansible_playbook()
    add_account(rack, "operator", "an-old-operator-password", "ReadOnly", enabled=False)
    add_account(rack, "suspended", "a-suspended-password", "ReadOnly")
    add_account(rack, "leaver", "a-leaver-password", "Operator")
    wanted = [{"name": "operator", "password": "a-new-operator-password", "role": "Operator"},
              {"name": "student", "password": "a-student-password", "role": "ReadOnly"}]
    run_playbook(PLAYBOOKS / "accounts.yml", tmp_path,
                 {**rack_vars(rack), "rack_accounts": wanted, "suspended_accounts": ["suspended"],
                  "removed_accounts": ["leaver"], "lockout_threshold": 7, "session_timeout": 600,
                  "results_file": str(tmp_path / "results.json")})
    results = json.loads((tmp_path / "results.json").read_text())

    assert results["added"] == [False, True]    # operator existed, student did not
    for want in wanted:
        got = account(rack, want["name"])
        assert (got["RoleId"], got["Enabled"]) == (want["role"], True), got
        assert can_log_in(rack, want["name"], want["password"])
    assert not can_log_in(rack, "operator", "an-old-operator-password")
    assert account(rack, "suspended")["Enabled"] is False
    assert account(rack, "leaver") is None and results["deleted"] == [True]

    assert rack.get("/redfish/v1/AccountService").json()["AccountLockoutThreshold"] == 7
    assert rack.get("/redfish/v1/SessionService").json()["SessionTimeout"] == 600
    session_id = results["session_uri"].rsplit("/", 1)[1]
    assert session_id in {s["Id"] for s in results["sessions"]}
    assert rack.get(results["session_uri"]).status_code == 404   # logged out


def test_firmware_update_playbook_pushes_a_signed_bundle(rack, tmp_path):
    ansible_playbook()
    racklet("bundle", "keygen", "--out", str(tmp_path / "keys"), cwd=tmp_path)
    racklet("keys", "add", str(tmp_path / "keys" / "signing-key.pub.pem"), "--state-dir", str(rack.state_dir),
            "--comment", "ansible test", cwd=tmp_path)
    payload = tmp_path / "bmc.bin"
    payload.write_bytes(b"racklet-sim bmc firmware from ansible\n" + os.urandom(4096))
    version = "2.5.0"
    bundle_file = tmp_path / f"bmc-{version}.rkb"
    racklet("bundle", "create", str(payload), "--out", str(bundle_file), "--component", "bmc",
            "--compatible", "racklet-sim", "--version", version, "--security-version", "1", cwd=tmp_path)
    racklet("bundle", "sign", str(bundle_file), "--key", str(tmp_path / "keys" / "signing-key.pem"), cwd=tmp_path)
    before = slots(rack, "Unit1-BMC")

    run_playbook(PLAYBOOKS / "firmware_update.yml", tmp_path,
                 {**rack_vars(rack), "bundle_file": str(bundle_file),
                  "update_targets": ["/redfish/v1/Managers/Unit1-BMC"],
                  "results_file": str(tmp_path / "results.json")})
    results = json.loads((tmp_path / "results.json").read_text())

    assert re.fullmatch(r"/redfish/v1/TaskService/TaskMonitors/\d+", results["push"]["handle"]), results["push"]
    assert results["update"]["status"] == "Completed"
    assert "UpdateSuccessful" in [m["MessageId"].rsplit(".", 1)[1] for m in results["update"]["messages"]]
    assert_new_version_active(rack, "Unit1-BMC", before,
                              Bundle(bundle_file, version, hashlib.sha256(payload.read_bytes()).hexdigest()))
    inventory = {f["Id"]: f["Version"] for f in members(rack, "/redfish/v1/UpdateService/FirmwareInventory")}
    assert {f["Id"]: f["Version"] for f in results["inventory"]} == inventory


def test_fleet_playbook_manages_two_racks(rack, fresh_server, tmp_path):
    ansible_playbook()
    racks = {"rack-a": rack, "rack-b": fresh_server()}
    # The example inventory, its hosts replaced by the two racks (and their admin account)
    example = yaml.safe_load((FLEET.parent / "inventory.example.yml").read_text())
    example["racks"]["hosts"] = {name: {"rmc_baseuri": f"127.0.0.1:{srv.port}", "rmc_ca": srv.ca,
                                        "rmc_username": "admin"} for name, srv in racks.items()}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump(example))
    passwords = {name: srv.password for name, srv in racks.items()}   # as the vault would hold them
    old_logs = {name: log_entries(srv) for name, srv in racks.items()}
    assert all(old_logs.values())
    operator = {"name": "fleet-operator", "password": "a-fleet-operator-password", "role": "Operator"}
    report_file = tmp_path / "fleet-report.json"

    run_playbook(FLEET, tmp_path, {"power_unit": "Unit3", "power_state": "Off", "clear_logs": True,
                                   "operator_account": operator, "fleet_report": str(report_file),
                                   "vault_rmc_passwords": passwords},
                 inventory=inventory)
    report = json.loads(report_file.read_text())

    assert sorted(report) == sorted(racks)
    for name, srv in racks.items():
        systems = {s["Id"]: s["PowerState"] for s in members(srv, "/redfish/v1/Systems")}
        assert systems["Unit3"] == "Off"
        assert report[name]["units"] == systems
        got = account(srv, operator["name"])
        assert (got["RoleId"], got["Enabled"]) == (operator["role"], True)
        assert can_log_in(srv, operator["name"], operator["password"])
        assert not log_entries(srv) & old_logs[name]      # every entry from before is gone
        assert report[name]["name"] == srv.get("/redfish/v1/Chassis/Rack").json()["Name"]
        assert report[name]["firmware"] == {f["Id"]: f["Version"] for f in
                                            members(srv, "/redfish/v1/UpdateService/FirmwareInventory")}
        chassis = members(srv, "/redfish/v1/Chassis")
        controls = {pc["Name"] for ch in chassis for pc in srv.get(ch["Power"]["@odata.id"]).json()["PowerControl"]}
        sensors = {t["Name"] for ch in chassis for t in srv.get(ch["Thermal"]["@odata.id"]).json()["Temperatures"]}
        assert report[name]["power_watts"] and set(report[name]["power_watts"]) <= controls
        assert report[name]["temperatures_celsius"] and set(report[name]["temperatures_celsius"]) <= sensors


def test_every_yaml_block_of_the_docs_is_from_a_playbook_the_suite_runs():
    """docs/ansible.md shows the playbooks; its snippets must be the files, verbatim."""
    sources = [p.read_text() for p in [*sorted(PLAYBOOKS.glob("*.yml")), FLEET,
                                        FLEET.parent / "inventory.example.yml"]]
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/ansible.md shows no playbook"
    for block in blocks:
        assert any(block in text for text in sources), f"not an excerpt of a playbook:\n{block}"
