"""Attacks on firmware updates, and faults in the middle of them, against live servers.

Every refusal is checked twice: by the Redfish answer (status, MessageIds, an
``error.message`` that names the reason) and by the absence of any effect (the target's
FirmwareInventory, the sha256 of every file in its slot directory, an empty staging
area, no new task). Faults (firmware that never comes up, ``OnReset``, activation by
hand, kill -9 of the API workers or of the agent, a full staging disk) are judged by
what the rack shows afterwards: the old slot active and intact, the unit running.

Bundles are encoded here from the format described in ``bundle.py``'s docstring, not
with its functions, so a mistake in the service's encoder cannot cancel itself out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .conftest import (ADMIN_PASSWORD, TEST_MANIFEST, Server, api_workers, children, cli, free_port, ids,
                       restart, start_server, wait_for, wait_until_settled, wait_until_up)

TRIAL_SECONDS = 3.0
MANIFEST = TEST_MANIFEST.replace("sample_seconds: 0.2}",
                                 f"sample_seconds: 0.2, update_trial_seconds: {TRIAL_SECONDS:g}}}")
TASK_MARGIN = 12.0                 # seconds a task may take beyond the trial on a busy 2-core machine
MIB = 1 << 20
STREAM_LIMIT = 64 * MIB            # the most an "endless" upload sends before the test gives up on the server
BIG_MIB = 96                       # a bundle large enough to be caught in the middle of its transfer
IO_TIMEOUT = 20.0

SERVICE = "/redfish/v1/UpdateService"
PUSH = f"{SERVICE}/update-multipart"
SIMPLE = f"{SERVICE}/Actions/UpdateService.SimpleUpdate"
INVENTORY = f"{SERVICE}/FirmwareInventory"
TASKS = "/redfish/v1/TaskService/Tasks"
UNIT1 = "/redfish/v1/Systems/Unit1"
BMC1 = "/redfish/v1/Managers/Unit1-BMC"
ENDED = ("Completed", "Exception", "Killed", "Cancelled")
FLOOR = 5                          # the security version the shared rack's Unit1 BMC runs

HARDWARE = "racklet-sim"
HANG = b"racklet-sim:hang"         # drivers/sim.py: firmware holding this never comes up
MAGIC = b"RKLTBNDL"
PREFIX = struct.Struct(">8sB3sI")
SIGNATURE_SIZE = 64
UNSIGNED_KEY_ID = "0" * 16
BOUNDARY = "racklet-faults-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


# --- bundles, encoded by the documented format ---------------------------------------------------

class Signer:
    """An Ed25519 key as a firmware author holds it: the private key, its key id, its PEM."""

    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        public = self.private.public_key()
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]
        self.public_pem = public.public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@dataclass(frozen=True)
class Spec:
    """What a bundle's header says of its payload, but for the size, digest and key."""

    component: str = "boot"
    version: str = "2.0.0"
    security_version: int = 1
    compatible: tuple[str, ...] = (HARDWARE,)


def payload_of(size: int, seed: str) -> bytes:
    """Deterministic bytes that do not repeat (a repeated pattern could hide an offset bug)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def head_of(spec: Spec, size: int, sha256: str, signer: Signer | None, *, key_id: str | None = None,
            signed: bool = True) -> bytes:
    """Prefix, JSON header and signature: everything before the payload."""
    kid = key_id or (signer.key_id if signer else UNSIGNED_KEY_ID)
    header = {"component": spec.component, "compatible": list(spec.compatible), "version": spec.version,
              "security_version": spec.security_version, "size": size, "sha256": sha256, "key_id": kid}
    raw = json.dumps(header, separators=(",", ":")).encode()
    head = PREFIX.pack(MAGIC, 1, b"\0\0\0", len(raw)) + raw
    signature = signer.private.sign(head) if signer and signed else bytes(SIGNATURE_SIZE)
    return head + signature


def make_bundle(payload: bytes, signer: Signer | None, spec: Spec = Spec(), **head_options) -> bytes:
    return head_of(spec, len(payload), hashlib.sha256(payload).hexdigest(), signer, **head_options) + payload


def head_length(bundle: bytes) -> int:
    """Bytes of prefix and header: where the signature starts."""
    return PREFIX.size + PREFIX.unpack_from(bundle)[3]


def flip(data: bytes, offset: int) -> bytes:
    """The same bytes with the lowest bit of one byte inverted."""
    return data[:offset] + bytes([data[offset] ^ 1]) + data[offset + 1:]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PAYLOAD = payload_of(64 * 1024, "boot-2.0.0")
BMC_PAYLOAD = payload_of(16 * 1024, "bmc")


# --- the bundles of the attacks (each a function of the trusted signer and a stranger) ------------

def unsigned(signer: Signer, stranger: Signer) -> bytes:
    return make_bundle(PAYLOAD, None)


def empty_signature(signer: Signer, stranger: Signer) -> bytes:
    return make_bundle(PAYLOAD, signer, signed=False)


def untrusted_key(signer: Signer, stranger: Signer) -> bytes:
    return make_bundle(PAYLOAD, stranger)


def flipped_signature(signer: Signer, stranger: Signer) -> bytes:
    good = make_bundle(PAYLOAD, signer)
    return flip(good, head_length(good) + 17)


def flipped_header(signer: Signer, stranger: Signer) -> bytes:
    """The version "2.0.0" becomes "3.0.0": still a valid header, no longer the signed one."""
    good = make_bundle(PAYLOAD, signer)
    return flip(good, good.index(b'"version":"2.0.0"') + len(b'"version":"'))


def flipped_payload(signer: Signer, stranger: Signer) -> bytes:
    good = make_bundle(PAYLOAD, signer)
    return flip(good, len(good) - len(PAYLOAD) // 2)


def cut_in_header(signer: Signer, stranger: Signer) -> bytes:
    good = make_bundle(PAYLOAD, signer)
    return good[:head_length(good) - 20]


def cut_in_signature(signer: Signer, stranger: Signer) -> bytes:
    good = make_bundle(PAYLOAD, signer)
    return good[:head_length(good) + SIGNATURE_SIZE // 2]


def cut_in_payload(signer: Signer, stranger: Signer) -> bytes:
    return make_bundle(PAYLOAD, signer)[:-1000]


def trailing_garbage(signer: Signer, stranger: Signer) -> bytes:
    return make_bundle(PAYLOAD, signer) + b"garbage after the payload"


def declared_too_large(signer: Signer, stranger: Signer) -> bytes:
    """A signed header declaring 1 TiB: refused when the header is read, before any payload."""
    return head_of(Spec(), 1 << 40, sha256(PAYLOAD), signer) + PAYLOAD


# name: (bundle, the reason word in error.message, other words it must hold)
ATTACKS: dict[str, tuple[Callable[[Signer, Signer], bytes], str, tuple[str, ...]]] = {
    "unsigned": (unsigned, "unsigned", ("not signed",)),
    "empty signature": (empty_signature, "unsigned", ("signature is empty",)),
    "untrusted key": (untrusted_key, "untrusted", ("not among the trusted",)),
    "flipped signature byte": (flipped_signature, "signature", ("does not match",)),
    "flipped header byte": (flipped_header, "signature", ("does not match",)),
    "flipped payload byte": (flipped_payload, "digest", ("sha256",)),
    "cut in header": (cut_in_header, "truncated", ("header",)),
    "cut in signature": (cut_in_signature, "truncated", ("signature",)),
    "cut in payload": (cut_in_payload, "truncated", ("payload bytes",)),
    "trailing garbage": (trailing_garbage, "oversize", ("trailing data",)),
    "declared too large": (declared_too_large, "oversize", ("at most",)),
}


# --- the rack under test ------------------------------------------------------------------------

@dataclass
class Rack:
    """A live server whose trusted signing key is ``signer``'s; ``installed`` is the bundle
    its Unit1 BMC runs (from slot B), when the fixture installed one."""

    server: Server
    signer: Signer
    installed: bytes | None = None


def trust(server: Server, signer: Signer) -> None:
    """Make ``signer``'s key the rack's only trusted signing key (as the Administrator)."""
    body = {"Oem": {"Racklet": {"SigningKeys": [{"PublicKey": signer.public_pem, "Comment": "tests"}]}}}
    r = server.client().patch(server.url + SERVICE, json=body, timeout=IO_TIMEOUT)
    assert r.status_code == 200, r.text


def push(server: Server, bundle: bytes | None, params: dict | str | None = None,
         auth: tuple[str, str] = ("admin", ADMIN_PASSWORD)) -> requests.Response:
    """POST the multipart push: an UpdateParameters part (JSON, or raw text) and an UpdateFile part."""
    files = {}
    if params is not None:
        text = params if isinstance(params, str) else json.dumps(params)
        files["UpdateParameters"] = (None, text, "application/json")
    if bundle is not None:
        files["UpdateFile"] = ("bundle.rkb", bundle, "application/octet-stream")
    return server.client(auth).post(server.url + PUSH, files=files, timeout=IO_TIMEOUT)


def wait_task(server: Server, monitor: str, states: tuple[str, ...], timeout: float) -> dict:
    """Poll a task monitor until its task is in one of ``states``; the Task."""
    client = server.client()

    def reached() -> dict | None:
        doc = client.get(server.url + monitor, timeout=IO_TIMEOUT).json()
        return doc if doc["TaskState"] in states else None
    return wait_for(reached, f"task {monitor} in {states}", timeout)


def task_ids(task: dict) -> list[str]:
    """The short MessageIds of a Task's messages, in order."""
    return [m["MessageId"].split(".")[-1] for m in task["Messages"]]


def install(server: Server, bundle: bytes, device: str) -> dict:
    """Push ``bundle`` to ``device`` Immediate and wait for it to be the running firmware."""
    r = push(server, bundle, {"Targets": [device]})
    assert r.status_code == 202, r.text
    task = wait_task(server, r.headers["Location"], ENDED, TRIAL_SECONDS + TASK_MARGIN)
    assert task["TaskState"] == "Completed", task
    return task


def assert_refused(r: requests.Response | Answer, status: int, message_id: str, *words: str) -> None:
    """A Redfish error with this status and MessageId whose error.message holds ``words``."""
    assert r.status_code == status, r.text
    assert message_id in ids(r), r.text
    text = r.json()["error"]["message"]
    for word in words:
        assert word in text, text


def post_json(server: Server, path: str, body: dict,
              auth: tuple[str, str] = ("admin", ADMIN_PASSWORD)) -> requests.Response:
    return server.client(auth).post(server.url + path, json=body, timeout=IO_TIMEOUT)


def add_account(server: Server, name: str, role: str) -> tuple[str, str]:
    password = f"{name}-password-for-tests"
    r = post_json(server, "/redfish/v1/AccountService/Accounts",
                  {"UserName": name, "Password": password, "RoleId": role})
    assert r.status_code == 201, r.text
    return name, password


def power_state(server: Server, unit: str) -> str | None:
    r = server.get(f"/redfish/v1/Systems/{unit}", timeout=IO_TIMEOUT)
    return r.json()["PowerState"] if r.status_code == 200 else None


def wait_running(server: Server, unit: str) -> None:
    """The unit is On again (bounded); a fallback or a restart power-cycles it."""
    wait_for(lambda: power_state(server, unit) == "On", f"{unit} On", 20)


# --- what must not change -----------------------------------------------------------------------

LABELS = {"boot": "Boot", "bmc": "BMC"}
IMAGE_OF_A = {"boot": "partition2.img", "bmc": "A"}


@dataclass(frozen=True)
class Snapshot:
    """What a refused update must leave as it was: the target's inventory (per slot:
    Version, Sha256, Active, Staged, SecurityVersionFloor), the sha256 of every file in its
    slot directory (partial files included), the staging area's names, the task count."""

    inventory: dict
    disk: dict
    staging: list
    tasks: int


def staging_dir(server: Server) -> Path:
    """The staging area as the server sees it (inside its mount namespace, if it has one)."""
    return server.staging_view if isinstance(server, ConfinedServer) else server.state_dir / "staging"


def inventory_of(server: Server, target: str, component: str) -> dict:
    out = {}
    for slot in "AB":
        r = server.get(f"{INVENTORY}/{target}-{LABELS[component]}-{slot}", timeout=IO_TIMEOUT)
        assert r.status_code == 200, r.text
        doc = r.json()
        oem = doc["Oem"]["Racklet"]
        out[slot] = {"Version": doc["Version"], "Sha256": oem["Sha256"], "Active": doc["Active"],
                     "Staged": doc["Staged"], "Trial": oem["OnTrial"], "Floor": oem["SecurityVersionFloor"],
                     "State": doc["Status"]["State"]}
    return out


def disk_of(server: Server, target: str, component: str) -> dict[str, str]:
    root = server.state_dir / "firmware" / target / component
    return {p.name: sha256(p.read_bytes()) for p in sorted(root.iterdir()) if p.is_file()}


def staging_of(server: Server) -> list[str]:
    path = staging_dir(server)
    return sorted(os.listdir(path)) if path.exists() else []


def task_count(server: Server) -> int:
    return server.get(TASKS, timeout=IO_TIMEOUT).json()["Members@odata.count"]


def snapshot(server: Server, target: str = "Unit1", component: str = "boot") -> Snapshot:
    return Snapshot(inventory_of(server, target, component), disk_of(server, target, component),
                    staging_of(server), task_count(server))


def assert_unchanged(server: Server, before: Snapshot, target: str = "Unit1", component: str = "boot") -> None:
    after = snapshot(server, target, component)
    assert after.inventory == before.inventory
    assert after.disk == before.disk
    assert after.staging == [] and before.staging == []
    assert after.tasks == before.tasks


# --- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def stranger() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def rack(tmp_path_factory, signer) -> Iterator[Rack]:
    """One server for every refusal (they change nothing): Unit1's BMC runs a bundle of
    security version FLOOR from slot B, so its floor is FLOOR."""
    assert "update_trial_seconds" in MANIFEST
    server = start_server(tmp_path_factory.mktemp("faults"), MANIFEST)
    try:
        trust(server, signer)
        installed = make_bundle(BMC_PAYLOAD, signer, Spec("bmc", "2.0.0", FLOOR))
        install(server, installed, BMC1)
        yield Rack(server, signer, installed)
    finally:
        server.stop()


@pytest.fixture
def keyed(fresh_server, signer) -> Rack:
    """A server of its own (for tests that change slots), trusting ``signer``."""
    server = fresh_server(manifest_text=MANIFEST)
    trust(server, signer)
    return Rack(server, signer)


@pytest.fixture
def updated(keyed) -> Rack:
    """A server of its own whose Unit1 BMC runs a new bundle (slot B) of the factory
    image's security version, 0: the floor stays 0."""
    installed = make_bundle(BMC_PAYLOAD, keyed.signer, Spec("bmc", "2.0.0", 0))
    install(keyed.server, installed, BMC1)
    return replace(keyed, installed=installed)


# --- 1. attacks on the push: refused before anything reaches a slot -----------------------------

@pytest.mark.parametrize("name", list(ATTACKS))
def test_bad_bundle_is_refused_and_changes_nothing(rack, stranger, name):
    build, reason, words = ATTACKS[name]
    before = snapshot(rack.server)
    r = push(rack.server, build(rack.signer, stranger), {"Targets": [UNIT1]})
    assert_refused(r, 400, "VerificationFailed", f"({reason})", *words)
    assert_unchanged(rack.server, before)


def test_the_good_bundle_of_the_attacks_is_accepted(keyed):
    """The control of the table above: unaltered, the same bundle installs."""
    task = install(keyed.server, make_bundle(PAYLOAD, keyed.signer), UNIT1)
    assert task_ids(task)[-2:] == ["UpdateSuccessful", "TaskCompletedOK"]
    inventory = inventory_of(keyed.server, "Unit1", "boot")
    assert inventory["B"]["Active"] and inventory["B"]["Sha256"] == sha256(PAYLOAD)


def test_endless_upload_is_cut_short_without_reading_it_all(rack):
    """A chunked upload that goes on past the declared size: the answer comes while the
    client is still sending, long before STREAM_LIMIT, and nothing is kept."""
    before = snapshot(rack.server)
    bundle = make_bundle(PAYLOAD, rack.signer)
    answer = stream_push(rack.server, endless_body(bundle, {"Targets": [UNIT1]}, STREAM_LIMIT))
    assert_refused(answer, 400, "VerificationFailed", "(oversize)", "trailing data")
    assert answer.sent < STREAM_LIMIT // 4, f"the server read {answer.sent} bytes of an endless upload"
    assert rack.server.get("/redfish/v1", timeout=IO_TIMEOUT).status_code == 200
    assert_unchanged(rack.server, before)


def test_declared_content_length_too_large_is_refused_unread(rack):
    before = snapshot(rack.server)
    answer = stream_push(rack.server, iter([multipart_preamble({"Targets": [UNIT1]})]),
                         content_length=4 << 30)
    assert_refused(answer, 413, "PayloadTooLarge")
    assert_unchanged(rack.server, before)


@pytest.mark.parametrize("name, spec, params, status, message_id, words", [
    ("bmc bundle to a System", Spec("bmc"), {"Targets": [UNIT1]}, 400, "UpdateNotApplicable",
     ("bmc firmware", UNIT1, "boot firmware")),
    ("other hardware", Spec(compatible=("raspberrypi-5",)), {"Targets": [UNIT1]}, 400, "UpdateNotApplicable",
     ("raspberrypi-5", HARDWARE)),
])
def test_bundle_for_another_device_is_refused(rack, name, spec, params, status, message_id, words):
    before = snapshot(rack.server)
    r = push(rack.server, make_bundle(PAYLOAD, rack.signer, spec), params)
    assert_refused(r, status, message_id, *words)
    assert_unchanged(rack.server, before)


def test_bundle_for_no_device_of_the_rack_is_refused(keyed):
    """No Targets: the service looks for devices the bundle fits, and finds none. (A server
    of its own: a failure here may leave a staged bundle behind.)"""
    before = snapshot(keyed.server)
    r = push(keyed.server, make_bundle(PAYLOAD, keyed.signer, Spec(compatible=("raspberrypi-5",))), {})
    assert_refused(r, 400, "NoTargetsDetermined", "no device of this rack", "raspberrypi-5")
    assert_unchanged(keyed.server, before)


@pytest.mark.parametrize("force", [False, True])
def test_rollback_below_the_floor_is_refused(rack, force):
    """Unit1's BMC runs security version FLOOR; a newer-looking version with a lower
    security version is refused, ForceUpdate or not."""
    before = snapshot(rack.server, "Unit1", "bmc")
    assert before.inventory["B"]["Active"] and before.inventory["B"]["Floor"] == FLOOR
    old = make_bundle(payload_of(4096, "rollback"), rack.signer, Spec("bmc", "9.0.0", FLOOR - 1))
    r = push(rack.server, old, {"Targets": [BMC1], "ForceUpdate": force})
    assert_refused(r, 400, "UpdateSkippedVersionTooLow", f"security version {FLOOR - 1}", f"floor {FLOOR}")
    assert_unchanged(rack.server, before, "Unit1", "bmc")


def test_same_version_is_skipped_without_force(rack):
    before = snapshot(rack.server, "Unit1", "bmc")
    r = push(rack.server, rack.installed, {"Targets": [BMC1]})
    assert_refused(r, 400, "UpdateSkippedSameVersion", "already runs version 2.0.0", "ForceUpdate")
    assert_unchanged(rack.server, before, "Unit1", "bmc")


def test_same_version_is_reinstalled_with_force(updated):
    server = updated.server
    before = inventory_of(server, "Unit1", "bmc")
    assert before["B"]["Active"] and not before["A"]["Active"]
    r = push(server, updated.installed, {"Targets": [BMC1], "ForceUpdate": True})
    assert r.status_code == 202, r.text
    task = wait_task(server, r.headers["Location"], ENDED, TRIAL_SECONDS + TASK_MARGIN)
    assert task["TaskState"] == "Completed", task
    after = inventory_of(server, "Unit1", "bmc")
    assert after["A"]["Active"] and not after["B"]["Active"]
    assert after["A"]["Sha256"] == after["B"]["Sha256"] == sha256(BMC_PAYLOAD)


@pytest.mark.parametrize("name, body, content_type", [
    ("no closing boundary", "unclosed", MULTIPART),
    ("garbage", "garbage", MULTIPART),
    ("no boundary parameter", "unclosed", "multipart/form-data"),
])
def test_broken_multipart_is_refused(rack, name, body, content_type):
    before = snapshot(rack.server)
    data = {"unclosed": multipart_preamble({"Targets": [UNIT1]}) + make_bundle(PAYLOAD, rack.signer),
            "garbage": os.urandom(4096)}[body]
    r = rack.server.client().post(rack.server.url + PUSH, data=data, headers={"Content-Type": content_type},
                                  timeout=IO_TIMEOUT)
    assert_refused(r, 400, "UnrecognizedRequestBody", "malformed")
    assert_unchanged(rack.server, before)


@pytest.mark.parametrize("name, params, message_id, words", [
    ("not JSON", '{"Targets": [', "MalformedJSON", ("not JSON",)),
    ("not an object", '["/redfish/v1/Systems/Unit1"]', "ActionParameterValueTypeError", ("UpdateParameters",)),
    ("unknown property", {"Targets": [UNIT1], "Colour": "red"}, "ActionParameterUnknown", ("Colour",)),
    ("bad ApplyTime", {"Targets": [UNIT1], "@Redfish.OperationApplyTime": "AtMaintenanceWindowStart"},
     "ActionParameterValueNotInList", ("AtMaintenanceWindowStart",)),
    ("ApplyTime not a string", {"@Redfish.OperationApplyTime": 1}, "ActionParameterValueTypeError",
     ("OperationApplyTime",)),
    ("ForceUpdate not a bool", {"Targets": [UNIT1], "ForceUpdate": "yes"}, "ActionParameterValueTypeError",
     ("ForceUpdate",)),
    ("Targets not a list", {"Targets": UNIT1}, "ActionParameterValueTypeError", ("Targets",)),
    ("Targets of numbers", {"Targets": [1]}, "ActionParameterValueTypeError", ("Targets",)),
    ("Targets a chassis", {"Targets": ["/redfish/v1/Chassis/Unit1"]}, "ActionParameterValueError", ("Targets",)),
    ("Targets an absent unit", {"Targets": ["/redfish/v1/Systems/Unit9"]}, "ActionParameterValueError",
     ("Targets",)),
])
def test_bad_update_parameters_are_refused(rack, name, params, message_id, words):
    before = snapshot(rack.server)
    r = push(rack.server, make_bundle(PAYLOAD, rack.signer), params)
    assert_refused(r, 400, message_id, *words)
    assert_unchanged(rack.server, before)


def test_push_without_update_file_is_refused(rack):
    before = snapshot(rack.server)
    r = push(rack.server, None, {"Targets": [UNIT1]})
    assert_refused(r, 400, "ActionParameterMissing", "UpdateFile")
    assert_unchanged(rack.server, before)


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream", None])
def test_push_of_another_media_type_is_415(rack, content_type):
    before = snapshot(rack.server)
    headers = {"Content-Type": content_type} if content_type else {}
    r = rack.server.client().post(rack.server.url + PUSH, data=make_bundle(PAYLOAD, rack.signer),
                                  headers=headers, timeout=IO_TIMEOUT)
    assert_refused(r, 415, "HeaderInvalid", "Content-Type")
    assert_unchanged(rack.server, before)


def test_without_a_trusted_key_every_update_is_409(fresh_server, signer):
    server = fresh_server(manifest_text=MANIFEST)
    before = snapshot(server)
    r = push(server, make_bundle(PAYLOAD, signer), {"Targets": [UNIT1]})
    assert_refused(r, 409, "ActionNotSupported", "no signing key is trusted")
    r = post_json(server, SIMPLE, {"ImageURI": "https://127.0.0.1:9/bundle.rkb", "Targets": [UNIT1]})
    assert_refused(r, 409, "ActionNotSupported", "no signing key is trusted")
    assert_unchanged(server, before)


def test_an_operator_cannot_change_the_signing_keys(rack, stranger):
    server = rack.server
    keys_before = server.get(SERVICE, timeout=IO_TIMEOUT).json()["Oem"]["Racklet"]["SigningKeys"]
    operator = add_account(server, "opal", "Operator")
    body = {"Oem": {"Racklet": {"SigningKeys": [{"PublicKey": stranger.public_pem, "Comment": "mine"}]}}}
    r = server.client(operator).patch(server.url + SERVICE, json=body, timeout=IO_TIMEOUT)
    assert_refused(r, 403, "InsufficientPrivilege", "insufficient privileges")
    assert server.get(SERVICE, timeout=IO_TIMEOUT).json()["Oem"]["Racklet"]["SigningKeys"] == keys_before
    assert [k["KeyId"] for k in keys_before] == [rack.signer.key_id]
    before = snapshot(server)   # and the stranger's bundles are still refused
    r = push(server, make_bundle(PAYLOAD, stranger), {"Targets": [UNIT1]}, auth=operator)
    assert_refused(r, 400, "VerificationFailed", "(untrusted)")
    assert_unchanged(server, before)


def test_a_read_only_user_cannot_push(rack):
    before = snapshot(rack.server)
    reader = add_account(rack.server, "reed", "ReadOnly")
    r = push(rack.server, make_bundle(PAYLOAD, rack.signer), {"Targets": [UNIT1]}, auth=reader)
    assert_refused(r, 403, "InsufficientPrivilege", "insufficient privileges")
    r = post_json(rack.server, SIMPLE, {"ImageURI": "https://127.0.0.1:9/b.rkb"}, auth=reader)
    assert_refused(r, 403, "InsufficientPrivilege")
    assert_unchanged(rack.server, before)


@pytest.mark.parametrize("body, message_id, words", [
    ({"ImageURI": "http://127.0.0.1:9/bundle.rkb"}, "ActionParameterValueFormatError", ("https://",)),
    ({"ImageURI": "ftp://127.0.0.1/bundle.rkb"}, "ActionParameterValueFormatError", ("https://",)),
    ({"ImageURI": "tftp://127.0.0.1/bundle.rkb"}, "ActionParameterValueFormatError", ("https://",)),
    ({"ImageURI": "HTTP://127.0.0.1:9/bundle.rkb"}, "ActionParameterValueFormatError", ("https://",)),
    ({"ImageURI": "127.0.0.1:9/bundle.rkb"}, "ActionParameterValueFormatError", ("plain HTTP",)),
    ({"ImageURI": "127.0.0.1:9/bundle.rkb", "TransferProtocol": "HTTP"}, "ActionParameterNotSupported",
     ("only HTTPS",)),
    ({"ImageURI": "127.0.0.1/bundle.rkb", "TransferProtocol": "TFTP"}, "ActionParameterNotSupported",
     ("only HTTPS",)),
    ({"ImageURI": "https://127.0.0.1:9/bundle.rkb", "TransferProtocol": "HTTP"}, "ActionParameterNotSupported",
     ("only HTTPS",)),
    ({"ImageURI": "https:///bundle.rkb"}, "ActionParameterValueFormatError", ("no host",)),
], ids=lambda v: json.dumps(v) if isinstance(v, dict) else None)
def test_simple_update_refuses_every_location_but_https(rack, body, message_id, words):
    before = snapshot(rack.server)
    r = post_json(rack.server, SIMPLE, dict(body, Targets=[UNIT1]))
    assert_refused(r, 400, message_id, *words)
    assert_unchanged(rack.server, before)


# --- 2. firmware that never comes up: one trial, then the old slot ------------------------------

FALLBACK = {   # component: (target, device URI)
    "boot": ("Unit1", UNIT1),
    "bmc": ("Unit2", "/redfish/v1/Managers/Unit2-BMC"),
}


@pytest.mark.parametrize("component", list(FALLBACK))
def test_firmware_that_hangs_falls_back_to_the_old_slot(keyed, component):
    server = keyed.server
    target, device = FALLBACK[component]
    before = snapshot(server, target, component)
    hanging = payload_of(8192, "hang")[:4000] + HANG + payload_of(4096, "tail")
    started = time.monotonic()
    r = push(server, make_bundle(hanging, keyed.signer, Spec(component, "6.6.6", 7)), {"Targets": [device]})
    assert r.status_code == 202, r.text
    wait_for(lambda: inventory_of(server, target, component)["B"]["Trial"], "slot B on trial")
    during = snapshot(server, target, component)   # one trial at a time: another update waits
    second = push(server, make_bundle(PAYLOAD if component == "boot" else BMC_PAYLOAD, keyed.signer,
                                      Spec(component, "7.0.0", 8)), {"Targets": [device]})
    assert_refused(second, 409, "UpdateInProgress", "trying slot B")
    assert staging_of(server) == [] and task_count(server) == during.tasks
    assert inventory_of(server, target, component)["A"] == during.inventory["A"]
    task = wait_task(server, r.headers["Location"], ENDED, TRIAL_SECONDS + TASK_MARGIN)
    elapsed = time.monotonic() - started
    assert task["TaskState"] == "Exception", task
    assert task["TaskStatus"] == "Critical"
    assert "ActivateFailed" in task_ids(task) and task_ids(task)[-1] == "TaskAborted"
    assert elapsed >= TRIAL_SECONDS, f"fell back after {elapsed:.1f} s, before the trial ended"
    reason = task["Oem"]["Racklet"]["Reason"]
    assert "did not come up healthy from slot B" in reason and "slot A again" in reason, reason
    after = inventory_of(server, target, component)
    assert after["A"] == before.inventory["A"] and after["A"]["Active"]
    assert not after["B"]["Active"] and after["B"]["Sha256"] == sha256(hanging)
    assert after["A"]["Floor"] == after["B"]["Floor"] == 0, "a failed trial raised the floor"
    image = IMAGE_OF_A[component]
    assert disk_of(server, target, component)[image] == before.disk[image]
    if component == "boot":
        wait_running(server, target)
    else:
        manager = server.get(device, timeout=IO_TIMEOUT).json()
        assert manager["FirmwareVersion"] == before.inventory["A"]["Version"]
        assert manager["Status"] == {"State": "Enabled", "Health": "OK"}
        assert power_state(server, target) == "On"


# --- 3. OnReset: staged now, tried at the device's next reset -----------------------------------

ON_RESET = {   # component: (target, device URI, reset action, its body)
    "boot": ("Unit1", UNIT1, f"{UNIT1}/Actions/ComputerSystem.Reset", {"ResetType": "ForceRestart"}),
    "bmc": ("Unit2", "/redfish/v1/Managers/Unit2-BMC", "/redfish/v1/Managers/Unit2-BMC/Actions/Manager.Reset",
            {"ResetType": "GracefulRestart"}),
}


@pytest.mark.parametrize("component", list(ON_RESET))
def test_on_reset_update_waits_for_the_reset(keyed, component):
    server = keyed.server
    target, device, action, reset = ON_RESET[component]
    before = snapshot(server, target, component)
    payload = payload_of(8192, f"on-reset-{component}")
    r = push(server, make_bundle(payload, keyed.signer, Spec(component, "3.1.0", 3)),
             {"Targets": [device], "@Redfish.OperationApplyTime": "OnReset"})
    assert r.status_code == 202, r.text
    monitor = r.headers["Location"]
    task = wait_task(server, monitor, ("Pending",) + ENDED, 15)
    assert task["TaskState"] == "Pending", task
    assert "AwaitToActivate" in task_ids(task)
    assert server.get(monitor, timeout=IO_TIMEOUT).status_code == 202
    staged = inventory_of(server, target, component)
    assert staged["B"]["Staged"] and not staged["B"]["Active"] and staged["B"]["Sha256"] == sha256(payload)
    assert staged["A"] == before.inventory["A"] and staged["A"]["Active"]
    image = IMAGE_OF_A[component]
    assert disk_of(server, target, component)[image] == before.disk[image]
    assert power_state(server, target) == "On"

    r = post_json(server, action, reset)
    assert r.status_code in (200, 202, 204), r.text
    task = wait_task(server, monitor, ENDED, TRIAL_SECONDS + TASK_MARGIN)
    assert task["TaskState"] == "Completed", task
    assert task_ids(task)[-2:] == ["UpdateSuccessful", "TaskCompletedOK"]
    after = inventory_of(server, target, component)
    assert after["B"]["Active"] and not after["B"]["Staged"] and not after["A"]["Active"]
    assert after["B"]["Floor"] == 3
    assert server.get(monitor, timeout=IO_TIMEOUT).status_code == 200
    wait_running(server, target)


# --- 4. activation by hand ----------------------------------------------------------------------

ACTIVATE_A = f"{INVENTORY}/Unit1-BMC-A/Actions/SoftwareInventory.Activate"


def test_activating_a_slot_below_the_floor_is_refused(rack):
    before = snapshot(rack.server, "Unit1", "bmc")
    assert before.inventory["A"]["State"] == "StandbySpare"
    r = post_json(rack.server, ACTIVATE_A, {})
    assert_refused(r, 409, "ActionParameterValueConflict", "below the floor", f"{FLOOR}", "rollback refused")
    assert_unchanged(rack.server, before, "Unit1", "bmc")


def test_activating_the_old_slot_of_the_same_security_version(updated):
    server = updated.server
    before = inventory_of(server, "Unit1", "bmc")
    assert before["B"]["Active"] and before["A"]["Floor"] == 0
    r = post_json(server, ACTIVATE_A, {})
    assert r.status_code == 202, r.text
    task = wait_task(server, r.headers["Location"], ENDED, TRIAL_SECONDS + TASK_MARGIN)
    assert task["TaskState"] == "Completed", task
    after = inventory_of(server, "Unit1", "bmc")
    assert after["A"]["Active"] and not after["B"]["Active"]
    assert (after["A"]["Version"], after["A"]["Sha256"]) == (before["A"]["Version"], before["A"]["Sha256"])
    assert server.get(BMC1, timeout=IO_TIMEOUT).json()["FirmwareVersion"] == before["A"]["Version"]


# --- 5. kill -9 in the middle -----------------------------------------------------------------------

class Gate:
    """Lets a streaming upload send one more chunk each time the test steps it, so the test
    can watch the staging file grow without racing the upload to its end."""

    def __init__(self) -> None:
        self._steps = threading.Semaphore(0)
        self._open = threading.Event()

    def wait(self) -> bool:
        return self._open.is_set() or self._steps.acquire(timeout=IO_TIMEOUT)

    def step(self) -> None:
        self._steps.release()

    def open(self) -> None:
        self._open.set()
        self._steps.release()


def big_bundle(signer: Signer, spec: Spec = Spec()) -> tuple[bytes, bytes]:
    """(head, block): a signed bundle whose payload is ``block`` BIG_MIB times, never held whole."""
    block = payload_of(MIB, "big")
    digest = hashlib.sha256()
    for _ in range(BIG_MIB):
        digest.update(block)
    return head_of(spec, BIG_MIB * MIB, digest.hexdigest(), signer), block


def big_body(head: bytes, block: bytes, params: dict, gate: Gate | None = None) -> Iterator[bytes]:
    """The multipart body of a big bundle; with a gate, past the first 2 MiB one MiB per step."""
    yield multipart_preamble(params) + head
    for i in range(BIG_MIB):
        if gate is not None and i >= 2 and not gate.wait():
            return
        yield block
    yield multipart_closing()


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def upload_partial(server: Server) -> Path | None:
    names = [n for n in staging_of(server) if n.startswith("upload-") and n.endswith(".partial")]
    return staging_dir(server) / names[0] if names else None


def test_kill_9_of_the_workers_during_an_upload(keyed):
    server = keyed.server
    before = snapshot(server)
    head, block = big_bundle(keyed.signer)
    gate = Gate()
    outcome: dict = {}

    def upload() -> None:
        try:
            outcome["response"] = server.client().post(
                server.url + PUSH, data=big_body(head, block, {"Targets": [UNIT1]}, gate),
                headers={"Content-Type": MULTIPART}, timeout=IO_TIMEOUT)
        except requests.RequestException as e:
            outcome["error"] = e

    thread = threading.Thread(target=upload, daemon=True)
    thread.start()
    try:
        partial = wait_for(lambda: (p := upload_partial(server)) and file_size(p) > 0 and p, "an upload .partial")
        size = file_size(partial)
        gate.step()
        wait_for(lambda: file_size(partial) > size, "the .partial growing")
        killed = api_workers(server)
        assert killed
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
    finally:
        gate.open()
        thread.join(IO_TIMEOUT + 10)
    assert not thread.is_alive()
    assert "error" in outcome, f"the upload did not fail on the client side: {outcome}"
    assert server.proc.poll() is None
    wait_for(lambda: (workers := api_workers(server)) and not workers & killed, "new workers")
    wait_for(lambda: answers(server), "the service answering again")

    server = restart(server)
    assert staging_of(server) == []
    after = snapshot(server)
    assert (after.inventory, after.disk, after.tasks) == (before.inventory, before.disk, before.tasks)
    wait_running(server, "Unit1")


def answers(server: Server) -> bool:
    try:
        return server.anonymous().get(server.url + "/redfish/v1", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def agent_pid(server: Server) -> int:
    agents = [pid for pid, cmd in children(server.proc.pid).items() if " agent " in cmd + " "]
    assert len(agents) == 1, children(server.proc.pid)
    return agents[0]


def catch_file(path: Path, timeout: float) -> None:
    """Return as soon as ``path`` exists with some bytes in it: polled every millisecond,
    because a slot write lasts only a few hundred milliseconds."""
    deadline = time.monotonic() + timeout
    while file_size(path) == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.001)


def test_kill_9_of_the_agent_while_it_writes_a_slot(keyed):
    server = keyed.server
    before = snapshot(server)
    head, block = big_bundle(keyed.signer)
    agent = agent_pid(server)
    r = server.client().post(server.url + PUSH, data=big_body(head, block, {"Targets": [UNIT1]}),
                             headers={"Content-Type": MULTIPART}, timeout=60)
    assert r.status_code == 202, r.text
    monitor = r.headers["Location"]
    partial = server.state_dir / "firmware" / "Unit1" / "boot" / ".partition3.img.partial"
    catch_file(partial, 30)
    os.kill(agent, signal.SIGKILL)
    wait_for(lambda: agent not in children(server.proc.pid) or zombie(agent), "the agent dead")
    assert partial.exists(), "the slot was written whole before the agent was killed"

    # What serve does when its agent dies: the API keeps answering, and a new agent is
    # started (after a back-off of a second), which ends what the dead one left half done.
    assert server.proc.poll() is None
    assert answers(server)
    wait_for(lambda: [p for p, cmd in children(server.proc.pid).items()
                      if " agent " in cmd + " " and p != agent and not zombie(p)], "a new agent", timeout=20)
    assert f"the rack agent (pid {agent}) exited; starting a new one" in server.log.read_text()
    task = wait_task(server, monitor, ENDED, 15)
    assert task["TaskState"] == "Exception", task
    assert "ServiceShuttingDown" in task_ids(task) and task_ids(task)[-1] == "TaskAborted"
    assert "restarted before the update finished" in task["Oem"]["Racklet"]["Reason"]
    slot_dir = server.state_dir / "firmware" / "Unit1" / "boot"
    # no half-written slot image (the new agent's boot of the unit may be replacing its
    # small boot-state file, ".booted.partial", at this very moment: that one is not a slot)
    assert not [n for n in os.listdir(slot_dir) if n.endswith(".img.partial")]
    after = snapshot(server)
    assert not after.inventory["B"]["Active"] and after.inventory["B"]["State"] == "Absent"
    assert after.inventory["B"]["Sha256"] is None and after.inventory["B"]["Version"] == ""
    assert after.inventory == before.inventory and after.disk == before.disk
    assert after.staging == [] and after.tasks == before.tasks + 1
    wait_running(server, "Unit1")


def zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


# --- 6. a full staging disk ---------------------------------------------------------------------

STAGING_TMPFS = 4 * MIB


class ConfinedServer(Server):
    """A server run in a mount namespace of its own, with a small tmpfs on its staging dir
    (or its whole state dir). The test sees that tmpfs through /proc/PID/root, which
    resolves in the server's namespace."""

    def view(self, path: Path) -> Path:
        """``path`` as the server sees it."""
        return Path(f"/proc/{self.proc.pid}/root") / path.relative_to("/")

    @property
    def staging_view(self) -> Path:
        return self.view(self.state_dir / "staging")


def tmpfs_size(server: ConfinedServer) -> int | None:
    """The size of the tmpfs on the server's staging dir, as its own mount table says."""
    staging = str(server.state_dir / "staging")
    for line in Path(f"/proc/{server.proc.pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == staging and fields[fields.index("-") + 1] == "tmpfs":
            size = [o for o in fields[-1].split(",") if o.startswith("size=")]
            return int(size[0][5:-1]) * 1024 if size and size[0].endswith("k") else None
    return None


def can_confine(tmp: Path) -> str | None:
    """Why a private mount namespace with a tmpfs cannot be made here, or None."""
    if shutil.which("unshare") is None:
        return "needs unshare(1) (util-linux)"
    probe = tmp / "probe"
    probe.mkdir()
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        'mount -t tmpfs -o size=64k racklet-probe "$0"', str(probe)],
                       capture_output=True, text=True, timeout=30)
    return None if r.returncode == 0 else f"needs root (CAP_SYS_ADMIN) to mount a tmpfs in a mount namespace: {r.stderr}"


def start_confined_server(tmp: Path, tmpfs_bytes: int, on: str = "staging", workers: int = 1,
                          manifest: str = MANIFEST) -> ConfinedServer:
    """``serve`` under ``unshare --mount`` with a tmpfs of ``tmpfs_bytes`` on ``on`` (a path
    in its state dir, "" for the whole state dir), mounted before serve starts by the same
    process, which then copies in what the mount hides and execs serve."""
    tmp.mkdir(parents=True, exist_ok=True)
    state = tmp / "state"
    password_file = tmp / "admin-password.txt"
    password_file.write_text(ADMIN_PASSWORD + "\n")
    r = subprocess.run(cli() + ["init", "--state-dir", str(state), "--admin-password-file", str(password_file)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    (state / "staging").mkdir(mode=0o700, exist_ok=True)
    target = state / on if on else state
    seed = tmp / "seed"                    # what the tmpfs will hide, copied in once it is mounted
    shutil.copytree(target, seed)
    (tmp / "manifest.yaml").write_text(manifest)
    port = free_port()
    serve = cli() + ["serve", "--state-dir", str(state), "--port", str(port), "--workers", str(workers),
                     "--sse-port", str(free_port()), "--manifest", str(tmp / "manifest.yaml")]
    script = (f'mount -t tmpfs -o size={tmpfs_bytes},mode=0700 racklet-confined "$0" && cp -a "$1"/. "$0"/ '
              '&& shift && exec "$@"')
    log = tmp / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                                 str(target), str(seed), *serve], stdout=out, stderr=subprocess.STDOUT)
    server = ConfinedServer(state, port, proc, log)
    wait_until_up(server)
    wait_until_settled(server)
    return server


@pytest.fixture
def cramped(tmp_path, signer) -> Iterator[Rack]:
    why = can_confine(tmp_path)
    if why:
        pytest.skip(why)
    server = start_confined_server(tmp_path / "s", STAGING_TMPFS)
    try:
        trust(server, signer)
        yield Rack(server, signer)
    finally:
        server.stop()


def test_a_full_staging_disk_is_507_and_leaves_nothing(cramped):
    server = cramped.server
    assert tmpfs_size(server) == STAGING_TMPFS, "the staging dir is not the small tmpfs"
    before = snapshot(server)
    too_big = make_bundle(payload_of(2 * STAGING_TMPFS, "too-big"), cramped.signer)
    answer = stream_push(server, file_body(too_big, {"Targets": [UNIT1]}))
    assert_refused(answer, 507, "InsufficientStorage", "staging area is full")
    assert_unchanged(server, before)
    for component in ("boot", "bmc"):
        slot_dir = server.state_dir / "firmware" / "Unit1" / component
        assert not [n for n in os.listdir(slot_dir) if n.endswith(".partial")]
    install(server, make_bundle(PAYLOAD, cramped.signer), UNIT1)   # the space was given back
    assert inventory_of(server, "Unit1", "boot")["B"]["Active"]


# --- a client that reads the answer while it is still sending -----------------------------------

@dataclass
class Answer:
    """An HTTP answer read off the socket, and how many body bytes went out before it."""

    status: int
    headers: dict[str, str]
    body: dict
    sent: int

    @property
    def status_code(self) -> int:   # shaped like requests.Response for ids() and assert_refused
        return self.status

    @property
    def text(self) -> str:
        return json.dumps(self.body)

    def json(self) -> dict:
        return self.body


def multipart_preamble(params: dict) -> bytes:
    """An UpdateParameters part, then the UpdateFile part's headers: its data comes next."""
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"UpdateParameters\"\r\n"
            f"Content-Type: application/json\r\n\r\n{json.dumps(params)}\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"UpdateFile\"; filename=\"bundle.rkb\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()


def multipart_closing() -> bytes:
    return f"\r\n--{BOUNDARY}--\r\n".encode()


def file_body(bundle: bytes, params: dict, piece: int = 64 * 1024) -> Iterator[bytes]:
    yield multipart_preamble(params)
    for at in range(0, len(bundle), piece):
        yield bundle[at:at + piece]
    yield multipart_closing()


def endless_body(bundle: bytes, params: dict, limit: int) -> Iterator[bytes]:
    """A bundle followed by zeros that never end, bounded by ``limit`` so that a server
    reading everything fails the test instead of hanging it."""
    yield multipart_preamble(params) + bundle
    zeros = bytes(16 * 1024)
    for _ in range(limit // len(zeros)):
        yield zeros


def stream_push(server: Server, pieces: Iterator[bytes], content_length: int | None = None) -> Answer:
    """POST ``pieces`` to the push URI (chunked unless ``content_length`` is declared) and
    read the answer as soon as it starts to arrive.

    A server that refuses an upload early answers while the client is still sending and
    closes; ``requests`` sends everything first and then reports only the broken pipe
    (an SSLEOFError), so it never shows the answer. Here the socket is checked for an
    answer before every piece."""
    with open_tls(server) as sock:
        sock.sendall(request_head(server, content_length))
        sent, early = send_until_answered(sock, pieces, chunked=content_length is None)
        reply = read_answer(sock, early)
    return parse_answer(reply, sent)


def open_tls(server: Server) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=server.ca)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def request_head(server: Server, content_length: int | None) -> bytes:
    credentials = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    length = "Transfer-Encoding: chunked" if content_length is None else f"Content-Length: {content_length}"
    return (f"POST {PUSH} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Basic {credentials}\r\n"
            f"Content-Type: {MULTIPART}\r\n{length}\r\n\r\n").encode()


def waiting_bytes(sock: ssl.SSLSocket) -> bytes | None:
    """Answer bytes that have arrived, without blocking: None when there are none (a TLS 1.3
    session ticket makes the socket readable with no data for the application), b"" when
    the server has closed."""
    if not sock.pending() and not select.select([sock], [], [], 0)[0]:
        return None
    sock.setblocking(False)
    try:
        return sock.recv(64 * 1024)
    except ssl.SSLWantReadError:
        return None
    except OSError:
        return b""
    finally:
        sock.settimeout(IO_TIMEOUT)


def send_until_answered(sock: ssl.SSLSocket, pieces: Iterator[bytes], chunked: bool) -> tuple[int, bytes]:
    """Send until the pieces run out, an answer arrives or the server stops reading;
    (body bytes sent, answer bytes already read)."""
    sent = 0
    for piece in pieces:
        early = waiting_bytes(sock)
        if early is not None:
            return sent, early
        try:
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        except OSError:   # closed by the server: its answer may still be waiting to be read
            return sent, b""
        sent += len(piece)
    if chunked:
        try:
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
    return sent, b""


def read_answer(sock: ssl.SSLSocket, data: bytes) -> bytes:
    """Read until the answer's headers and Content-Length bytes of body are in, or the end."""
    buf = bytearray(data)
    while not answer_complete(buf):
        try:
            more = sock.recv(64 * 1024)
        except OSError:
            break
        if not more:
            break
        buf += more
    return bytes(buf)


def answer_complete(buf: bytes | bytearray) -> bool:
    head, sep, body = bytes(buf).partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


def parse_answer(reply: bytes, sent: int) -> Answer:
    head, sep, body = reply.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError(f"no HTTP answer arrived (after {sent} body bytes): {reply[:200]!r}")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    return Answer(int(lines[0].split()[1]), headers, json.loads(body) if body else {}, sent)
