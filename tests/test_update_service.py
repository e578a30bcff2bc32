"""UpdateService as a live server shows it: the service document, the inventory, the
settings only an Administrator may change (signing keys, automatic updates, certificate
checks), and switching a manager's firmware slot by hand (Links.ActiveSoftwareImage)."""

from __future__ import annotations

import json
import subprocess

import pytest

from redfish_racklet import bundle

from .conftest import TEST_MANIFEST, cli, ids, start_server, wait_for

SERVICE = "/redfish/v1/UpdateService"
INVENTORY = f"{SERVICE}/FirmwareInventory"
PUSH = f"{SERVICE}/update-multipart"
OPERATOR = ("operator", "operator-password-long-enough")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("updates")
    server = start_server(tmp, TEST_MANIFEST.replace("sample_seconds: 0.2}",
                                                     "sample_seconds: 0.2, update_trial_seconds: 5}"))
    r = server.client().post(server.url + "/redfish/v1/AccountService/Accounts",
                             json={"UserName": OPERATOR[0], "Password": OPERATOR[1], "RoleId": "Operator"})
    assert r.status_code == 201, r.text
    server.tmp = tmp
    yield server
    server.stop()


def keypair(tmp, name: str) -> tuple[str, str]:
    """(public PEM, key id) of a new key written to tmp/name/."""
    subprocess.run(cli() + ["bundle", "keygen", "--out", str(tmp / name)], check=True, capture_output=True)
    pem = (tmp / name / "signing-key.pub.pem").read_text()
    return pem, bundle.key_id(bundle.load_public_key(pem))


def make_bundle(tmp, key: str, name: str, component: str, version: str, sv: int, payload: bytes) -> str:
    (tmp / f"{name}.bin").write_bytes(payload)
    out = tmp / f"{name}.rkb"
    run = lambda *a: subprocess.run(cli() + ["bundle", *a], check=True, capture_output=True)  # noqa: E731
    run("create", str(tmp / f"{name}.bin"), "--out", str(out), "--component", component, "--compatible",
        "racklet-sim", "--version", version, "--security-version", str(sv))
    run("sign", str(out), "--key", str(tmp / key / "signing-key.pem"))
    return str(out)


def push(srv, path: str, target: str, **params):
    with open(path, "rb") as f:
        return srv.client().post(srv.url + PUSH, files={
            "UpdateParameters": (None, json.dumps({"Targets": [target], **params}), "application/json"),
            "UpdateFile": ("bundle.rkb", f, "application/octet-stream")})


def finished(srv, task_uri: str) -> dict:
    c = srv.client()
    return wait_for(lambda: (lambda d: d if d["TaskState"] in ("Completed", "Exception") else None)(
        c.get(srv.url + task_uri).json()), f"task {task_uri}", timeout=30)


def test_the_service_document(srv):
    doc = srv.get(SERVICE).json()
    assert doc["MultipartHttpPushUri"] == PUSH
    assert doc["MaxImageSizeBytes"] >= 256 * 1024 * 1024
    assert doc["Actions"]["#UpdateService.SimpleUpdate"]["TransferProtocol@Redfish.AllowableValues"] == ["HTTPS"]
    assert doc["VerifyRemoteServerCertificate"] is True
    assert doc["Oem"]["Racklet"]["AutomaticUpdates"]["Enabled"] is False
    assert srv.get("/redfish/v1").json()["UpdateService"] == {"@odata.id": SERVICE}
    assert srv.get("/redfish/v1").json()["Tasks"] == {"@odata.id": "/redfish/v1/TaskService"}


def test_one_inventory_member_per_component_slot(srv):
    units = [m["@odata.id"].rsplit("/", 1)[1] for m in srv.get("/redfish/v1/Systems").json()["Members"]]
    members = {m["@odata.id"].rsplit("/", 1)[1] for m in srv.get(INVENTORY).json()["Members"]}
    want = {f"RMC-{s}" for s in "AB"} | {f"{u}-{c}-{s}" for u in units for c in ("BMC", "Boot") for s in "AB"}
    assert members == want
    a, b = srv.get(f"{INVENTORY}/Unit1-Boot-A").json(), srv.get(f"{INVENTORY}/Unit1-Boot-B").json()
    assert (a["Active"], a["WriteProtected"], a["Status"]["State"]) == (True, True, "Enabled")
    assert (b["Active"], b["WriteProtected"], b["Status"]["State"]) == (False, False, "Absent")
    assert a["RelatedItem"] == [{"@odata.id": "/redfish/v1/Systems/Unit1"}]
    assert srv.get("/redfish/v1/Systems/Unit1").json()["BiosVersion"] == a["Version"]
    assert srv.get(f"{INVENTORY}/Unit9-Boot-A").status_code == 404
    assert srv.get(f"{INVENTORY}/Unit1-Boot-C").status_code == 404


def test_signing_keys_refuse_bad_input_and_change_nothing(srv):
    pem, _ = keypair(srv.tmp, "k-bad")
    c = srv.client()
    before = c.get(srv.url + SERVICE).json()["Oem"]["Racklet"]["SigningKeys"]
    cases = [
        ([{"PublicKey": "not a key"}], "PropertyValueFormatError"),
        ([{"PublicKey": pem, "KeyId": "0" * 16}], "PropertyNotWritable"),
        ([{"PublicKey": pem, "Colour": "blue"}], "PropertyUnknown"),
        ([{"Comment": "no key"}], "PropertyMissing"),
        ([{"PublicKey": pem, "Comment": "x" * 300}], "StringValueTooLong"),
        ([{"PublicKey": 7}], "PropertyValueTypeError"),
        ("a string", "PropertyValueTypeError"),
        ([{"PublicKey": pem}] * 17, "ArraySizeTooLong"),
    ]
    for keys, msg in cases:
        r = c.patch(srv.url + SERVICE, json={"Oem": {"Racklet": {"SigningKeys": keys}}})
        assert r.status_code == 400 and msg in ids(r), (keys, r.text)
    rsa = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
                         capture_output=True, text=True)
    if rsa.returncode == 0:
        pub = subprocess.run(["openssl", "pkey", "-pubout"], input=rsa.stdout, capture_output=True, text=True).stdout
        r = c.patch(srv.url + SERVICE, json={"Oem": {"Racklet": {"SigningKeys": [{"PublicKey": pub}]}}})
        assert r.status_code == 400 and ids(r) == ["PropertyValueFormatError"]
    assert c.get(srv.url + SERVICE).json()["Oem"]["Racklet"]["SigningKeys"] == before


def test_only_an_administrator_changes_what_the_rack_trusts(srv):
    pem, kid = keypair(srv.tmp, "k-op")
    op = srv.client(auth=OPERATOR)
    for body in ({"Oem": {"Racklet": {"SigningKeys": [{"PublicKey": pem}]}}},
                 {"Oem": {"Racklet": {"AutomaticUpdates": {"FeedURI": "https://127.0.0.1:9/feed.json"}}}},
                 {"VerifyRemoteServerCertificate": False}):
        r = op.patch(srv.url + SERVICE, json=body)
        assert r.status_code == 403 and ids(r) == ["InsufficientPrivilege"], body
    assert op.patch(srv.url + SERVICE, json={"VerifyRemoteServerCertificate": True}).status_code == 200
    doc = srv.get(SERVICE).json()
    assert kid not in [k["KeyId"] for k in doc["Oem"]["Racklet"]["SigningKeys"]]
    assert doc["Oem"]["Racklet"]["AutomaticUpdates"]["FeedURI"] is None
    assert doc["VerifyRemoteServerCertificate"] is True
    ro = srv.client(auth=None)
    assert ro.patch(srv.url + SERVICE, json={"VerifyRemoteServerCertificate": True}).status_code == 401


def test_keys_over_the_api_and_the_cli_are_one_list(srv):
    pem, kid = keypair(srv.tmp, "k-api")
    c = srv.client()
    keys = c.get(srv.url + SERVICE).json()["Oem"]["Racklet"]["SigningKeys"]
    body = [{"PublicKey": k["PublicKey"], "Comment": k["Comment"]} for k in keys] + [
        {"PublicKey": pem, "Comment": "api"}, {"PublicKey": pem, "Comment": "twice"}]
    r = c.patch(srv.url + SERVICE, json={"Oem": {"Racklet": {"SigningKeys": body}}})
    assert r.status_code == 200, r.text
    shown = {k["KeyId"]: k for k in r.json()["Oem"]["Racklet"]["SigningKeys"]}
    assert shown[kid]["Comment"] == "api" and len(shown) == len(keys) + 1   # the same key once
    listed = subprocess.run(cli() + ["keys", "list", "--state-dir", str(srv.state_dir)],
                            capture_output=True, text=True, check=True).stdout
    assert kid in listed
    pem2, kid2 = keypair(srv.tmp, "k-cli")
    subprocess.run(cli() + ["keys", "add", str(srv.tmp / "k-cli" / "signing-key.pub.pem"), "--comment", "cli",
                            "--state-dir", str(srv.state_dir)], check=True, capture_output=True)
    assert kid2 in [k["KeyId"] for k in srv.get(SERVICE).json()["Oem"]["Racklet"]["SigningKeys"]]
    r = subprocess.run(cli() + ["keys", "remove", kid2, "--state-dir", str(srv.state_dir)], capture_output=True)
    assert r.returncode == 0
    assert kid2 not in [k["KeyId"] for k in srv.get(SERVICE).json()["Oem"]["Racklet"]["SigningKeys"]]
    again = subprocess.run(cli() + ["keys", "remove", kid2, "--state-dir", str(srv.state_dir)],
                           capture_output=True, text=True)
    assert again.returncode == 1 and "no trusted key" in again.stderr


def test_automatic_update_settings(srv):
    c = srv.client()
    cases = [({"Enabled": True}, "PropertyValueConflict"),
             ({"FeedURI": "http://127.0.0.1/feed.json"}, "PropertyValueFormatError"),
             ({"FeedURI": "ftp://127.0.0.1/feed.json"}, "PropertyValueFormatError"),
             ({"IntervalSeconds": 5}, "PropertyValueOutOfRange"),
             ({"IntervalSeconds": "often"}, "PropertyValueTypeError"),
             ({"ApplyTime": "Later"}, "PropertyValueNotInList"),
             ({"Enabled": "yes"}, "PropertyValueTypeError"),
             ({"Colour": 1}, "PropertyUnknown")]
    for body, msg in cases:
        r = c.patch(srv.url + SERVICE, json={"Oem": {"Racklet": {"AutomaticUpdates": body}}})
        assert r.status_code == 400 and msg in ids(r), (body, r.text)
    auto = c.get(srv.url + SERVICE).json()["Oem"]["Racklet"]["AutomaticUpdates"]
    assert auto == {"Enabled": False, "FeedURI": None, "IntervalSeconds": 3600, "ApplyTime": "OnReset"}
    r = c.patch(srv.url + SERVICE, json={"Oem": {"Racklet": {"AutomaticUpdates": {
        "FeedURI": "https://127.0.0.1:9/feed.json", "IntervalSeconds": 600}}}})
    assert r.status_code == 200
    assert r.json()["Oem"]["Racklet"]["AutomaticUpdates"] == {
        "Enabled": False, "FeedURI": "https://127.0.0.1:9/feed.json", "IntervalSeconds": 600, "ApplyTime": "OnReset"}


def test_switching_a_bmc_slot_by_hand(srv):
    c = srv.client()
    pem, _ = keypair(srv.tmp, "k-switch")
    subprocess.run(cli() + ["keys", "add", str(srv.tmp / "k-switch" / "signing-key.pub.pem"),
                            "--state-dir", str(srv.state_dir)], check=True, capture_output=True)
    mgr = srv.url + "/redfish/v1/Managers/Unit3-BMC"
    links = c.get(mgr).json()["Links"]
    assert links["ActiveSoftwareImage"] == {"@odata.id": f"{INVENTORY}/Unit3-BMC-A"}
    # slot B is empty: nothing to switch to
    r = c.patch(mgr, json={"Links": {"ActiveSoftwareImage": {"@odata.id": f"{INVENTORY}/Unit3-BMC-B"}}})
    assert r.status_code == 409 and ids(r) == ["ActionParameterValueConflict"]
    # another device's slot is not this manager's image
    r = c.patch(mgr, json={"Links": {"ActiveSoftwareImage": {"@odata.id": f"{INVENTORY}/Unit2-BMC-A"}}})
    assert r.status_code == 400 and ids(r) == ["PropertyValueIncorrect"]
    # an update with security version 0 leaves the floor at 0: switching back is allowed
    path = make_bundle(srv.tmp, "k-switch", "bmc-sv0", "bmc", "1.5.0", 0, b"bmc 1.5.0\n")
    r = push(srv, path, "/redfish/v1/Managers/Unit3-BMC")
    assert r.status_code == 202, r.text
    assert finished(srv, r.headers["Location"])["TaskState"] == "Completed"
    assert c.get(mgr).json()["FirmwareVersion"] == "1.5.0"
    r = c.patch(mgr, json={"Links": {"ActiveSoftwareImage": {"@odata.id": f"{INVENTORY}/Unit3-BMC-A"}}})
    assert r.status_code == 202, r.text
    assert finished(srv, r.headers["Location"])["TaskState"] == "Completed"
    assert c.get(mgr).json()["Links"]["ActiveSoftwareImage"] == {"@odata.id": f"{INVENTORY}/Unit3-BMC-A"}
    # security version 2 raises the floor once it runs: slot A (version 0) is then out of reach
    path = make_bundle(srv.tmp, "k-switch", "bmc-sv2", "bmc", "1.6.0", 2, b"bmc 1.6.0\n")
    r = push(srv, path, "/redfish/v1/Managers/Unit3-BMC")
    assert finished(srv, r.headers["Location"])["TaskState"] == "Completed"
    inv_b = c.get(srv.url + f"{INVENTORY}/Unit3-BMC-B").json()
    assert inv_b["Oem"]["Racklet"]["SecurityVersionFloor"] == 2 and inv_b["LowestSupportedVersion"] == "1.6.0"
    r = c.post(srv.url + f"{INVENTORY}/Unit3-BMC-A/Actions/SoftwareInventory.Activate", json={})
    assert r.status_code == 409 and "rollback" in r.json()["error"]["message"]
    assert c.get(mgr).json()["FirmwareVersion"] == "1.6.0"


def test_update_progress_reaches_the_event_log(srv):
    c = srv.client()
    pem, _ = keypair(srv.tmp, "k-log")
    subprocess.run(cli() + ["keys", "add", str(srv.tmp / "k-log" / "signing-key.pub.pem"),
                            "--state-dir", str(srv.state_dir)], check=True, capture_output=True)
    path = make_bundle(srv.tmp, "k-log", "bmc-log", "bmc", "1.7.0", 2, b"bmc 1.7.0 for the log\n")
    r = push(srv, path, "/redfish/v1/Managers/Unit2-BMC")
    assert r.status_code == 202, r.text
    task = finished(srv, r.headers["Location"])
    assert task["TaskState"] == "Completed"
    entries = c.get(srv.url + "/redfish/v1/Managers/RMC/LogServices/EventLog/Entries").json()["Members"]
    mine = [e for e in entries if e.get("Links", {}).get("OriginOfCondition", {}).get("@odata.id") == task["@odata.id"]]
    got = [e["MessageId"].split(".", 1)[0] + "." + e["MessageId"].rsplit(".", 1)[1] for e in mine]
    assert got == ["TaskEvent.TaskStarted", "Update.TransferringToComponent", "Update.VerifyingAtComponent",
                   "Update.ApplyingOnComponent", "Update.UpdateSuccessful", "TaskEvent.TaskCompletedOK"]
    assert [m["MessageId"] for m in task["Messages"]] == [e["MessageId"] for e in mine]
