"""Real Redfish clients update firmware on a live rack, end to end.

Each client drives a complete update the way an operator would, and each test checks
what the client printed (not only its exit code), the Task it produced, and the
FirmwareInventory afterwards (the new version active, the old one kept as the spare):

- ``curl -F``: the multipart push (``MultipartHttpPushUri``), and its refusals;
- DMTF ``rf_update.py`` (redfish-utilities): a multipart push that follows the task monitor;
- DMTF ``redfishtool raw POST``: a ``SimpleUpdate`` of an image the test serves over HTTPS
  with a certificate from its own CA, trusted through ``STATE_DIR/event-trust.pem``; and
  the same from a server the rack does not trust (TransferFailed, no slot touched);
- DMTF ``rf_firmware_inventory.py``: the listing matches the service's inventory.

The DMTF scripts turn TLS verification off unless given a CA file (``redfish_client``
takes ``cafile=``, the scripts never pass one), so they run through a small launcher
that passes the rack's CA: every request they make is verified. ``redfishtool`` has no
such option (it always sends ``verify=False``); it talks to 127.0.0.1 only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import ipaddress
import json
import os
import re
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from redfish_racklet import bundle

from .clients import CLIENT_SECONDS, TOOLS, client_env, dmtf_script, run_dmtf
from .conftest import ADMIN_PASSWORD, TEST_MANIFEST, Server, ids, start_server, wait_for

SERVICE = "/redfish/v1/UpdateService"
PUSH = f"{SERVICE}/update-multipart"
SIMPLE = f"{SERVICE}/Actions/UpdateService.SimpleUpdate"
INVENTORY = f"{SERVICE}/FirmwareInventory"
TASKS = "/redfish/v1/TaskService/Tasks"
MONITOR = re.compile(r"/redfish/v1/TaskService/TaskMonitors/([1-9][0-9]*)")
ENDED = ("Completed", "Exception", "Killed", "Cancelled")
UPDATE_SECONDS = 60.0      # bound on one whole update (write, verify, reset, trial) on a busy machine
HARDWARE = "racklet-sim"



# --- the rack and its signing key -------------------------------------------------------------

@dataclass(frozen=True)
class SigningKey:
    private_pem: bytes
    public_pem: bytes


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    private_pem, public_pem = bundle.generate_key()
    return SigningKey(private_pem, public_pem)


@pytest.fixture(scope="module")
def rack(tmp_path_factory, signing_key) -> Iterator[Server]:
    """One rack for the module, trusting the module's signing key (updates are refused
    until a key is trusted)."""
    srv = start_server(tmp_path_factory.mktemp("clients"), TEST_MANIFEST)
    try:
        body = {"Oem": {"Racklet": {"SigningKeys": [
            {"PublicKey": signing_key.public_pem.decode(), "Comment": "update clients test"}]}}}
        r = srv.client().patch(srv.url + SERVICE, json=body)
        assert r.status_code == 200, r.text
        assert len(r.json()["Oem"]["Racklet"]["SigningKeys"]) == 1
        yield srv
    finally:
        srv.stop()


# --- bundles -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bundle:
    path: Path
    version: str
    sha256: str


def make_bundle(tmp: Path, key: SigningKey | None, component: str, version: str,
                security_version: int = 1, name: str | None = None) -> Bundle:
    """A bundle of a payload unique to this version (so no update is ever skipped as
    the same image), signed by ``key`` unless it is None."""
    payload = (f"racklet-sim {component} firmware {version}\n".encode()
               + hashlib.sha256(f"{component}:{version}".encode()).digest() * 512)
    name = name or f"{component}-{version}.rkb"
    src = tmp / (name + ".payload")
    src.write_bytes(payload)
    out = tmp / name
    bundle.create(str(src), str(out), component=component, compatible=[HARDWARE], version=version,
                  security_version=security_version)
    if key is not None:
        bundle.sign(str(out), key.private_pem)
    return Bundle(out, version, hashlib.sha256(payload).hexdigest())


# --- what the service says ---------------------------------------------------------------------

def inventory(server: Server) -> dict[str, dict]:
    """Every SoftwareInventory of the rack, by Id."""
    c = server.client()
    r = c.get(server.url + INVENTORY)
    assert r.status_code == 200, r.text
    out = {}
    for member in r.json()["Members"]:
        doc = c.get(server.url + member["@odata.id"])
        assert doc.status_code == 200, doc.text
        out[doc.json()["Id"]] = doc.json()
    return out


def slots(server: Server, device: str) -> dict[str, dict]:
    """The two slots of one component, e.g. ``slots(rack, "Unit1-BMC")`` → {"A": doc, "B": doc}."""
    inv = inventory(server)
    return {s: inv[f"{device}-{s}"] for s in ("A", "B")}


def active(slot_docs: dict[str, dict]) -> str:
    """The letter of the active slot (exactly one slot is active)."""
    letters = [s for s, doc in slot_docs.items() if doc["Active"]]
    assert len(letters) == 1, slot_docs
    return letters[0]


def task_ids(server: Server) -> set[str]:
    r = server.get(TASKS)
    assert r.status_code == 200, r.text
    return {m["@odata.id"].rsplit("/", 1)[1] for m in r.json()["Members"]}


def task(server: Server, tid: str) -> dict:
    r = server.get(f"{TASKS}/{tid}")
    assert r.status_code == 200, r.text
    return r.json()


def ended_task(server: Server, tid: str) -> dict:
    """The task once it has ended (bounded wait, no fixed sleep)."""
    def ended() -> dict | None:
        doc = task(server, tid)
        return doc if doc["TaskState"] in ENDED else None
    return wait_for(ended, f"task {tid} to end", UPDATE_SECONDS)


def only_new_task(server: Server, before: set[str]) -> str:
    new = task_ids(server) - before
    assert len(new) == 1, f"expected one new task, got {sorted(new)}"
    return new.pop()


def message_ids(doc: dict) -> list[str]:
    return [m["MessageId"].split(".")[-1] for m in doc["Messages"]]


def assert_completed(doc: dict) -> None:
    assert doc["TaskState"] == "Completed", json.dumps(doc, indent=1)
    assert doc["TaskStatus"] == "OK"
    assert doc["PercentComplete"] == 100
    got = message_ids(doc)
    assert "UpdateSuccessful" in got and got[-1] == "TaskCompletedOK", got
    assert "EndTime" in doc


def assert_new_version_active(server: Server, device: str, before: dict[str, dict], b: Bundle) -> None:
    """The slot that was inactive now runs the bundle; the old image is kept as the spare."""
    old = active(before)
    new = "B" if old == "A" else "A"
    after = slots(server, device)
    assert active(after) == new, after
    doc = after[new]
    assert doc["Version"] == b.version
    assert doc["Oem"]["Racklet"]["Sha256"] == b.sha256
    assert doc["Status"]["State"] == "Enabled" and doc["WriteProtected"] is True
    assert doc["Oem"]["Racklet"]["OnTrial"] is False
    spare = after[old]
    assert spare["Version"] == before[old]["Version"]
    assert spare["Oem"]["Racklet"]["Sha256"] == before[old]["Oem"]["Racklet"]["Sha256"]
    assert spare["Active"] is False and spare["Status"]["State"] == "StandbySpare"


def staging_leftovers(server: Server) -> list[str]:
    staging = server.state_dir / "staging"
    return sorted(os.listdir(staging)) if staging.exists() else []


# --- 1. curl -F --------------------------------------------------------------------------------

@dataclass
class CurlAnswer:
    status: int
    headers: dict[str, str]
    body: dict


class _Json:
    """Lets conftest.ids read a body that curl fetched (it expects ``.json()``)."""

    def __init__(self, body: dict):
        self._body = body

    def json(self) -> dict:
        return self._body


def curl_or_skip() -> str:
    path = shutil.which("curl")
    if path is None:
        pytest.skip("curl is not installed: the curl multipart push is not tested")
    return path


def curl_push(server: Server, tmp: Path, b: Path, params: dict, password: str = ADMIN_PASSWORD) -> CurlAnswer:
    """``curl -F`` the bundle and its UpdateParameters to the push URI, as the docs show."""
    head, body = tmp / "curl-headers.txt", tmp / "curl-body.json"
    r = subprocess.run(
        [curl_or_skip(), "-sS", "--noproxy", "*", "--cacert", server.ca, "-u", f"admin:{password}",
         "-D", str(head), "-o", str(body), "-w", "%{http_code}",
         "-F", f"UpdateParameters={json.dumps(params)};type=application/json",
         "-F", f"UpdateFile=@{b}", server.url + PUSH],
        capture_output=True, text=True, timeout=CLIENT_SECONDS, env=client_env())
    assert r.returncode == 0, f"curl failed: {r.stderr}"
    blocks = head.read_text().strip().split("\r\n\r\n")   # a 100 Continue comes first, if any
    headers = {}
    for line in blocks[-1].splitlines()[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    text = body.read_text()
    return CurlAnswer(int(r.stdout), headers, json.loads(text) if text else {})


def follow_monitor(server: Server, location: str) -> dict:
    """Poll the task monitor as a plain HTTP client would: 202 while the task runs,
    then 200 and the ended Task."""
    c = server.client()

    def done() -> dict | None:
        r = c.get(server.url + location)
        assert r.status_code in (200, 202), r.text
        if r.status_code == 202:
            assert r.headers["Location"] == location and r.headers.get("Retry-After")
            assert r.json()["TaskState"] not in ENDED
            return None
        return r.json()
    return wait_for(done, f"the task monitor {location}", UPDATE_SECONDS)


def test_curl_multipart_push_updates_a_bmc(rack, signing_key, tmp_path):
    curl_or_skip()
    before = slots(rack, "Unit1-BMC")
    b = make_bundle(tmp_path, signing_key, "bmc", "2.1.0")
    ans = curl_push(rack, tmp_path, b.path, {"Targets": ["/redfish/v1/Managers/Unit1-BMC"]})

    assert ans.status == 202, ans.body
    m = MONITOR.fullmatch(ans.headers["location"])
    assert m, ans.headers
    assert ans.body["@odata.id"] == f"{TASKS}/{m.group(1)}"
    assert ans.body["TaskState"] not in ENDED and ans.body["TaskMonitor"] == ans.headers["location"]

    doc = follow_monitor(rack, ans.headers["location"])
    assert doc["Id"] == m.group(1)
    assert_completed(doc)
    assert_new_version_active(rack, "Unit1-BMC", before, b)
    assert staging_leftovers(rack) == []


@pytest.mark.parametrize("spoil, reason", [
    ("unsigned", "unsigned"),
    ("payload byte flipped after signing", "digest"),
])
def test_curl_push_of_a_bad_bundle_is_refused_and_changes_nothing(rack, signing_key, tmp_path, spoil, reason):
    curl_or_skip()
    if spoil == "unsigned":
        b = make_bundle(tmp_path, None, "bmc", "2.9.0").path
    else:
        b = make_bundle(tmp_path, signing_key, "bmc", "2.9.1").path
        data = bytearray(b.read_bytes())
        data[-1] ^= 0x01
        b.write_bytes(bytes(data))
    inv, tasks = inventory(rack), task_ids(rack)

    ans = curl_push(rack, tmp_path, b, {"Targets": ["/redfish/v1/Managers/Unit1-BMC"]})

    assert ans.status == 400, ans.body
    assert ids(_Json(ans.body)) == ["VerificationFailed"]
    assert f"({reason})" in ans.body["error"]["message"], ans.body["error"]["message"]
    assert task_ids(rack) == tasks
    assert inventory(rack) == inv
    assert staging_leftovers(rack) == []


def test_curl_push_with_a_wrong_password_is_refused_before_any_task(rack, signing_key, tmp_path):
    curl_or_skip()
    b = make_bundle(tmp_path, signing_key, "bmc", "2.9.2")
    inv, tasks = inventory(rack), task_ids(rack)

    ans = curl_push(rack, tmp_path, b.path, {"Targets": ["/redfish/v1/Managers/Unit1-BMC"]},
                    password="not-the-password")

    assert ans.status == 401
    assert task_ids(rack) == tasks
    assert inventory(rack) == inv
    assert staging_leftovers(rack) == []


# --- 2. DMTF rf_update.py ------------------------------------------------------------------------

def terminal_text(out: str) -> str:
    """What a terminal would leave readable: progress lines end in CR and clear the line
    with ESC[2K; make each its own line."""
    return out.replace("\x1b[2K", "\n").replace("\r", "\n")


def test_rf_update_pushes_boot_firmware_and_follows_the_task(rack, signing_key, tmp_path):
    script = dmtf_script("rf_update.py")
    before, tasks = slots(rack, "Unit2-Boot"), task_ids(rack)
    b = make_bundle(tmp_path, signing_key, "boot", "2024.6.1")

    r = run_dmtf(rack, script, "-i", str(b.path), "-t", "/redfish/v1/Systems/Unit2", "-at", "Immediate",
                 cwd=tmp_path)

    out = terminal_text(r.stdout)
    assert r.returncode == 0, out + r.stderr
    assert "Pushing the image to the service directly" in out   # it saw MultipartHttpPushUri
    assert "Update initiated" in out
    progress = re.findall(r"Task is (\w+): (\d+)% complete", out)
    assert progress, out                  # the 202's Task body carries TaskState and PercentComplete
    assert all(state in ("New", "Running", "Starting", "Pending") for state, _ in progress), progress
    assert [int(p) for _, p in progress] == sorted(int(p) for _, p in progress), "progress went backwards"
    assert "Task is Done!" in out         # the monitor answered 200 at the end
    assert "Operation failed" not in out and "Traceback" not in r.stderr

    tid = only_new_task(rack, tasks)
    doc = task(rack, tid)                 # already ended: the tool waited for the monitor's 200
    assert_completed(doc)
    assert_new_version_active(rack, "Unit2-Boot", before, b)
    assert staging_leftovers(rack) == []


def test_rf_update_reports_a_bundle_for_the_wrong_component(rack, signing_key, tmp_path):
    script = dmtf_script("rf_update.py")
    inv, tasks = inventory(rack), task_ids(rack)
    b = make_bundle(tmp_path, signing_key, "bmc", "2.9.3")   # BMC firmware aimed at a System's boot firmware

    r = run_dmtf(rack, script, "-i", str(b.path), "-t", "/redfish/v1/Systems/Unit2", "-at", "Immediate",
                 cwd=tmp_path)

    out = terminal_text(r.stdout)
    assert r.returncode == 1, out
    assert "Operation failed: HTTP 400" in out
    m = re.search(r"Update\.\d+\.\d+\.\d+\.UpdateNotApplicable: (.*)", out)
    assert m, out                         # the registry message, naming the image and the device
    assert "bmc-2.9.3" in m.group(1) and "/redfish/v1/Systems/Unit2" in m.group(1), m.group(1)
    assert "Update initiated" not in out
    assert task_ids(rack) == tasks
    assert inventory(rack) == inv
    assert staging_leftovers(rack) == []


# --- 3. redfishtool SimpleUpdate from an HTTPS image server --------------------------------------

@dataclass
class Authority:
    """A certificate authority made for the test, and the leaf certificates it signs."""
    name: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    def __post_init__(self) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256()))

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue_for_loopback(self, out: Path) -> tuple[Path, Path]:
        """A server certificate for 127.0.0.1 (by IP SAN); returns (cert, key) PEM files."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256()))
        cert_path, key_path = out / "server.pem", out / "server-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self.pem())
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path


class ImageServer:
    """An HTTPS file server on 127.0.0.1 (a thread), serving one directory and
    remembering the paths it served."""

    def __init__(self, root: Path, authority: Authority):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.served: list[str] = []
        cert, key = authority.issue_for_loopback(root.parent)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        served = self.served

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def do_GET(self):
                served.append(self.path)
                super().do_GET()

            def log_message(self, *a):   # keep the test output for the test
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="image-server", daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def image_servers(rack, tmp_path_factory) -> Iterator[tuple[ImageServer, ImageServer]]:
    """(trusted, stranger): the rack trusts the first one's CA (STATE_DIR/event-trust.pem)
    and not the second's."""
    tmp = tmp_path_factory.mktemp("images")
    trusted_ca, stranger_ca = Authority("Racklet test image CA"), Authority("Stranger CA")
    (rack.state_dir / "event-trust.pem").write_bytes(trusted_ca.pem())
    trusted = ImageServer(tmp / "trusted" / "www", trusted_ca)
    stranger = ImageServer(tmp / "stranger" / "www", stranger_ca)
    yield trusted, stranger
    trusted.close()
    stranger.close()


def redfishtool_or_skip() -> str:
    path = TOOLS / "redfishtool"
    if not path.exists():
        found = shutil.which("redfishtool")
        if found is None:
            pytest.skip("redfishtool (DMTF, PyPI redfishtool) is not installed: pip install redfishtool")
        return found
    return str(path)


def redfishtool_post(server: Server, path: str, body: dict) -> subprocess.CompletedProcess:
    """``redfishtool raw POST`` with Basic auth over https; it waits on a task monitor (up
    to its own 60 s) and prints the final JSON on stdout."""
    return subprocess.run(
        [redfishtool_or_skip(), "-r", f"127.0.0.1:{server.port}", "-u", "admin", "-p", server.password,
         "-S", "Always", "-n", "raw", "POST", path, "-d", json.dumps(body)],
        capture_output=True, text=True, timeout=CLIENT_SECONDS, env=client_env())


def test_redfishtool_simple_update_from_a_trusted_https_server(rack, signing_key, image_servers, tmp_path):
    redfishtool_or_skip()
    trusted, _ = image_servers
    before, tasks = slots(rack, "Unit3-BMC"), task_ids(rack)
    b = make_bundle(trusted.root, signing_key, "bmc", "3.0.0", name="b.rkb")
    body = {"ImageURI": trusted.url("b.rkb"), "Targets": ["/redfish/v1/Managers/Unit3-BMC"],
            "@Redfish.OperationApplyTime": "Immediate"}

    r = redfishtool_post(rack, SIMPLE, body)

    assert r.returncode == 0, r.stdout + r.stderr
    printed = json.loads(r.stdout)        # redfishtool followed the monitor and printed the ended Task
    tid = only_new_task(rack, tasks)
    assert printed["@odata.id"] == f"{TASKS}/{tid}"
    assert_completed(printed)
    assert_completed(ended_task(rack, tid))
    assert trusted.served == ["/b.rkb"]   # the agent fetched the image, once, from the trusted server
    assert_new_version_active(rack, "Unit3-BMC", before, b)
    assert staging_leftovers(rack) == []


def test_redfishtool_simple_update_from_an_untrusted_server_fails_and_changes_no_slot(
        rack, signing_key, image_servers):
    redfishtool_or_skip()
    _, stranger = image_servers
    make_bundle(stranger.root, signing_key, "boot", "2024.7.0", name="b.rkb")
    inv, tasks = inventory(rack), task_ids(rack)
    uri = stranger.url("b.rkb")

    r = redfishtool_post(rack, SIMPLE, {"ImageURI": uri, "Targets": ["/redfish/v1/Systems/Unit4"],
                                        "@Redfish.OperationApplyTime": "Immediate"})

    assert r.returncode == 0, r.stdout + r.stderr   # the request was accepted; the task failed
    printed = json.loads(r.stdout)
    tid = only_new_task(rack, tasks)
    doc = ended_task(rack, tid)
    for d in (printed, doc):
        assert d["TaskState"] == "Exception", json.dumps(d, indent=1)
        assert d["TaskStatus"] == "Critical"
        got = message_ids(d)
        assert "TransferFailed" in got and got[-1] == "TaskAborted", got
        assert "UpdateSuccessful" not in got
    transfer = next(m for m in doc["Messages"] if m["MessageId"].endswith(".TransferFailed"))
    assert uri in transfer["MessageArgs"]
    reason = doc["Oem"]["Racklet"]["Reason"]
    assert uri in reason and "certificate verify failed" in reason.lower(), reason
    assert stranger.served == []          # the handshake failed: not one request reached the server
    assert inventory(rack) == inv         # no slot written, none switched
    assert staging_leftovers(rack) == []  # the partial download is gone


def test_redfishtool_simple_update_without_certificate_check_when_an_administrator_turns_it_off(
        rack, signing_key, image_servers):
    redfishtool_or_skip()
    _, stranger = image_servers
    make_bundle(stranger.root, signing_key, "boot", "2024.8.0", name="unchecked.rkb")
    tasks = task_ids(rack)
    c = rack.client()
    r = c.patch(rack.url + SERVICE, json={"VerifyRemoteServerCertificate": False})
    assert r.status_code == 200 and r.json()["VerifyRemoteServerCertificate"] is False, r.text
    try:
        r = redfishtool_post(rack, SIMPLE, {"ImageURI": stranger.url("unchecked.rkb"),
                                            "Targets": ["/redfish/v1/Systems/Unit4"],
                                            "@Redfish.OperationApplyTime": "Immediate"})
        assert r.returncode == 0, r.stdout + r.stderr
        doc = ended_task(rack, only_new_task(rack, tasks))
        assert stranger.served == ["/unchecked.rkb"], json.dumps(doc, indent=1)
        assert_completed(doc)
    finally:
        r = c.patch(rack.url + SERVICE, json={"VerifyRemoteServerCertificate": True})
        assert r.status_code == 200 and r.json()["VerifyRemoteServerCertificate"] is True, r.text


@pytest.mark.parametrize("body, expected", [
    ({"ImageURI": "http://127.0.0.1:9/b.rkb"}, "ActionParameterValueFormatError"),
    ({"ImageURI": "127.0.0.1:9/b.rkb", "TransferProtocol": "FTP"}, "ActionParameterNotSupported"),
    ({"Targets": ["/redfish/v1/Systems/Unit3"]}, "ActionParameterMissing"),
])
def test_redfishtool_refused_simple_updates_make_no_task(rack, body, expected):
    redfishtool_or_skip()
    inv, tasks = inventory(rack), task_ids(rack)

    r = redfishtool_post(rack, SIMPLE, body)

    assert r.returncode != 0 and r.stdout.strip() == "", r.stdout
    assert "400" in r.stderr, r.stderr    # redfishtool reports the status, not the body
    direct = rack.client().post(rack.url + SIMPLE, json=body)   # what it was told, read in full
    assert direct.status_code == 400 and ids(direct) == [expected]
    assert task_ids(rack) == tasks
    assert inventory(rack) == inv


# --- 4. DMTF rf_firmware_inventory.py -------------------------------------------------------------

def listed_versions(out: str) -> dict[str, str]:
    """{Id: Version} from ``rf_firmware_inventory.py -i`` (lines ``  <Id> | <Version>``)."""
    rows = {}
    for line in out.splitlines():
        if " | " in line:
            name, _, version = line.partition(" | ")
            rows[name.strip()] = version.strip()
    return rows


def test_rf_firmware_inventory_lists_the_new_version(rack, signing_key, tmp_path):
    script = dmtf_script("rf_firmware_inventory.py")
    before, tasks = slots(rack, "Unit4-BMC"), task_ids(rack)
    b = make_bundle(tmp_path, signing_key, "bmc", "4.2.0")
    with b.path.open("rb") as f:
        r = rack.client().post(rack.url + PUSH, files={
            "UpdateParameters": (None, json.dumps({"Targets": ["/redfish/v1/Managers/Unit4-BMC"]}),
                                 "application/json"),
            "UpdateFile": (b.path.name, f, "application/octet-stream")})
    assert r.status_code == 202, r.text
    assert_completed(ended_task(rack, only_new_task(rack, tasks)))
    assert_new_version_active(rack, "Unit4-BMC", before, b)
    now_active = f"Unit4-BMC-{active(slots(rack, 'Unit4-BMC'))}"

    r = run_dmtf(rack, script, "-i", cwd=tmp_path)

    assert r.returncode == 0, r.stdout + r.stderr
    listed = listed_versions(r.stdout)
    assert listed[now_active] == "4.2.0"
    expected = {doc_id: doc["Version"] for doc_id, doc in inventory(rack).items()}
    assert listed == expected             # every slot of the rack, each with its version

    r = run_dmtf(rack, script, cwd=tmp_path)          # by Name, as an operator reads it
    named = listed_versions(r.stdout)
    name = inventory(rack)[now_active]["Name"]
    assert r.returncode == 0 and named[name] == "4.2.0", r.stdout


def test_the_dmtf_scripts_really_verify_the_rack_certificate(rack, tmp_path):
    """The launcher's CA is used: with another CA the same script cannot connect (so the
    passing runs above were verified, not merely unverified and lucky)."""
    script = dmtf_script("rf_firmware_inventory.py")
    wrong = tmp_path / "wrong-ca.pem"
    wrong.write_bytes(Authority("Not the rack's CA").pem())

    r = run_dmtf(rack, script, "-i", cwd=tmp_path, ca=str(wrong))

    assert r.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in r.stdout + r.stderr
    assert listed_versions(r.stdout) == {}


# --- 5. automatic updates from an HTTPS feed (last: it stages a slot on every BMC) ------------------

def test_automatic_updates_stage_newer_bundles_from_the_feed(rack, signing_key, image_servers):
    trusted, _ = image_servers
    c = rack.client()
    bmcs = [f"Unit{n}-BMC" for n in range(1, 6)]
    before = {d: slots(rack, d) for d in bmcs}
    new = make_bundle(trusted.root, signing_key, "bmc", "9.0.0", name="bmc-auto.rkb")
    make_bundle(trusted.root, None, "bmc", "9.9.9", name="bmc-unsigned.rkb")   # refused: no task from it
    (trusted.root / "feed.json").write_text(json.dumps(
        {"Bundles": ["bmc-unsigned.rkb", "bmc-auto.rkb", "http://127.0.0.1:9/plain.rkb"]}))
    tasks = task_ids(rack)
    r = c.patch(rack.url + SERVICE, json={"Oem": {"Racklet": {"AutomaticUpdates": {
        "Enabled": True, "FeedURI": trusted.url("feed.json"), "IntervalSeconds": 3600}}}})
    assert r.status_code == 200, r.text
    try:
        tid = wait_for(lambda: only_new_task(rack, tasks) if task_ids(rack) - tasks else None,
                       "a task from the feed", timeout=30)
        doc = wait_for(lambda: (lambda d: d if d["TaskState"] == "Pending" else None)(task(rack, tid)),
                       "the automatic update staged", timeout=30)
        assert "AwaitToActivate" in message_ids(doc)
        assert task_ids(rack) - tasks == {tid}           # the unsigned bundle made none
        assert "/plain.rkb" not in trusted.served         # nor was plain HTTP ever fetched
        for d in bmcs:                                    # staged (OnReset, the default), nothing switched
            now = slots(rack, d)
            staged = [s for s, doc in now.items() if doc["Staged"]]
            assert len(staged) == 1 and now[staged[0]]["Version"] == "9.0.0", (d, now)
            assert active(now) == active(before[d])
        # the next BMC reset is the one the staged slot waited for
        r = c.post(rack.url + "/redfish/v1/Managers/Unit1-BMC/Actions/Manager.Reset",
                   json={"ResetType": "GracefulRestart"})
        assert r.status_code in (200, 204), r.text
        wait_for(lambda: slots(rack, "Unit1-BMC")[active(slots(rack, "Unit1-BMC"))]["Version"] == "9.0.0",
                 "Unit1-BMC on the automatic update", timeout=30)
        assert new.sha256 == slots(rack, "Unit1-BMC")[active(slots(rack, "Unit1-BMC"))]["Oem"]["Racklet"]["Sha256"]
    finally:
        r = c.patch(rack.url + SERVICE, json={"Oem": {"Racklet": {"AutomaticUpdates": {"Enabled": False}}}})
        assert r.status_code == 200
