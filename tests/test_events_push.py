"""EventService push subscriptions, delivered by the agent to local HTTPS receivers."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import socket
import ssl
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .conftest import ids, restart, sim, wait_for

SERVICE = "/redfish/v1/EventService"
SUBS = SERVICE + "/Subscriptions"
SUBMIT = SERVICE + "/Actions/EventService.SubmitTestEvent"


def make_cert(tmp):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address(
                "127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = tmp / "receiver.pem"
    key_pem = tmp / "receiver-key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert_pem, key_pem


class Receiver:
    """An HTTPS event listener on 127.0.0.1: records what it is sent, answers ``status``."""

    def __init__(self, cert, key, status: int = 204):
        self.events: list[dict] = []
        self.headers: list[dict] = []
        self.status = status
        rcv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                rcv.headers.append(dict(self.headers))
                if rcv.status < 300:
                    rcv.events.append(json.loads(body))
                self.send_response(rcv.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}/events"

    def records(self) -> list[dict]:
        return [r for e in list(self.events) for r in e["Events"]]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def rig(fresh_server, tmp_path):
    srv = fresh_server()
    cert, key = make_cert(tmp_path)
    (srv.state_dir / "event-trust.pem").write_bytes(cert.read_bytes())
    receivers = []

    def receiver(status=204):
        r = Receiver(cert, key, status)
        receivers.append(r)
        return r

    yield srv, receiver
    for r in receivers:
        r.close()


def subscribe(c, srv, dest, **extra):
    r = c.post(srv.url + SUBS, json={"Destination": dest, "Protocol": "Redfish", **extra})
    assert r.status_code == 201, r.text
    return r.headers["Location"]


def test_unplug_reaches_subscriber_with_filters_and_test_event(rig):
    srv, receiver = rig
    c = srv.client()
    everything = receiver()
    chassis_only = receiver()
    other_origin = receiver()
    accounts_only = receiver()
    sub = subscribe(c, srv, everything.url, Context="all", HttpHeaders=[{"X-Token": "s3cret"}])
    subscribe(c, srv, chassis_only.url, Context="chassis", ResourceTypes=["Chassis"],
              RegistryPrefixes=["ResourceEvent"])
    subscribe(c, srv, other_origin.url, OriginResources=[{"@odata.id": "/redfish/v1/Chassis/Unit3"}])
    subscribe(c, srv, accounts_only.url, RegistryPrefixes=["AccountSecurity"])
    # write-only headers
    doc = c.get(srv.url + sub).json()
    assert doc["HttpHeaders"] == [] and "s3cret" not in json.dumps(doc)

    sim(srv, "unplug", "Unit2")
    removed = wait_for(lambda: [r for r in everything.records() if r["MessageId"].endswith("ResourceRemoved")],
                       "ResourceRemoved delivered", 10)
    assert removed[0]["OriginOfCondition"] == {"@odata.id": "/redfish/v1/Chassis/Unit2"}
    assert removed[0]["Context"] == "all"
    assert everything.headers[0].get("X-Token") == "s3cret"
    wait_for(lambda: any(r["MessageId"].endswith("ResourceRemoved") for r in chassis_only.records()),
             "chassis filter delivers", 10)
    r = c.post(srv.url + SUBMIT, json={"MessageId": "ResourceEvent.1.4.3.ResourceChanged",
                                       "OriginOfCondition": "/redfish/v1/Systems/Unit1", "Severity": "OK",
                                       "Message": "A test."})
    assert r.status_code == 200, r.text
    test = wait_for(lambda: [r for r in everything.records() if r["Message"] == "A test."], "test event", 10)
    assert test[0]["Context"] == "all" and test[0]["MessageId"] == "ResourceEvent.1.4.3.ResourceChanged"
    # the test event (a ComputerSystem) never reaches the Chassis-only subscriber
    sim(srv, "plug", "Unit2")
    wait_for(lambda: any(r["MessageId"].endswith("ResourceCreated") for r in chassis_only.records()),
             "chassis plug", 10)
    assert all(r["OriginOfCondition"]["@odata.id"].startswith("/redfish/v1/Chassis/")
               for r in chassis_only.records())
    assert other_origin.records() == []
    assert all(r["MessageId"].startswith("AccountSecurity.") for r in accounts_only.records())


def test_failing_and_silent_subscribers_do_not_delay_others(rig):
    srv, receiver = rig
    c = srv.client()
    assert c.patch(srv.url + SERVICE, json={"DeliveryRetryIntervalSeconds": 1,
                                            "DeliveryRetryAttempts": 2}).status_code == 200
    failing = receiver(status=500)
    good = receiver()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts TCP (the backlog) and never answers
    try:
        bad = subscribe(c, srv, failing.url)
        subscribe(c, srv, f"https://127.0.0.1:{silent.getsockname()[1]}/x")
        subscribe(c, srv, good.url)
        started = time.monotonic()
        sim(srv, "unplug", "Unit2")
        wait_for(lambda: any(r["MessageId"].endswith("ResourceRemoved") for r in good.records()), "good", 3)
        assert time.monotonic() - started < 3
        wait_for(lambda: c.get(srv.url + bad).json()["Status"]["State"] == "Suspended", "suspended", 20)
        assert len(failing.headers) == 3  # the first try and 2 retries
        sim(srv, "plug", "Unit2")
        wait_for(lambda: any(r["MessageId"].endswith("ResourceCreated") for r in good.records()), "good 2", 5)
        # resume: it delivers from the event it failed on
        failing.status = 204
        assert c.patch(srv.url + bad, json={"Status": {"State": "Enabled"}}).status_code == 200
        wait_for(lambda: any(r["MessageId"].endswith("ResourceRemoved") for r in failing.records()), "resumed", 10)
    finally:
        silent.close()


def test_bad_input_and_privileges(rig):
    srv, receiver = rig
    c = srv.client()
    url = srv.url + SUBS
    ok = {"Destination": "https://127.0.0.1:9/", "Protocol": "Redfish"}
    cases = [
        ({"Destination": "http://127.0.0.1/x", "Protocol": "Redfish"}, "PropertyValueIncorrect"),
        ({"Destination": "ftp://127.0.0.1/x", "Protocol": "Redfish"}, "PropertyValueIncorrect"),
        ({"Destination": "not a uri", "Protocol": "Redfish"}, "PropertyValueFormatError"),
        ({"Destination": 5, "Protocol": "Redfish"}, "PropertyValueTypeError"),
        ({**ok, "Protocol": "FTP"}, "PropertyValueNotInList"),
        ({**ok, "RegistryPrefixes": ["Nope"]}, "PropertyValueNotInList"),
        ({**ok, "ResourceTypes": "Chassis"}, "PropertyValueTypeError"),
        ({**ok, "DeliveryRetryPolicy": "Bogus"}, "PropertyValueNotInList"),
        ({**ok, "HttpHeaders": [{"Bad Name": "x"}]}, "PropertyValueFormatError"),
        ({**ok, "OriginResources": ["/redfish/v1/Chassis/Unit1"]}, "PropertyValueTypeError"),
        ({**ok, "Context": 3}, "PropertyValueTypeError"),
        ({**ok, "Id": "7"}, "PropertyNotWritable"),
        ({**ok, "Frobnicate": 1}, "PropertyUnknown"),
        ({"Protocol": "Redfish"}, "PropertyMissing"),
    ]
    for body, want in cases:
        r = c.post(url, json=body)
        assert r.status_code == 400 and want in ids(r), (body, r.text)
    assert c.get(url).json()["Members@odata.count"] == 0
    assert ids(c.patch(srv.url + SERVICE, json={"DeliveryRetryAttempts": 99})) == ["PropertyValueOutOfRange"]
    assert ids(c.patch(srv.url + SERVICE, json={"ServiceEnabled": False})) == ["PropertyNotWritable"]
    assert ids(c.post(srv.url + SUBMIT, json={})) == ["ActionParameterMissing"]
    assert ids(c.post(srv.url + SUBMIT, json={"MessageId": "x"})) == ["ActionParameterValueFormatError"]
    assert ids(c.post(srv.url + SUBMIT, json={"MessageId": "A.1.0.B", "Zap": 1})) == ["ActionParameterUnknown"]

    from redfish_racklet import auth
    from redfish_racklet.store import Store
    st = Store(str(srv.state_dir / "racklet.db"))
    st.add_account("viewer", auth.hash_password("viewer-password-1"), "ReadOnly")
    st.add_account("oper", auth.hash_password("operator-password-1"), "Operator")
    viewer = srv.client(auth=("viewer", "viewer-password-1"))
    oper = srv.client(auth=("oper", "operator-password-1"))
    assert viewer.post(url, json=ok).status_code == 403
    mine = subscribe(oper, srv, "https://127.0.0.1:9/")
    admins = subscribe(c, srv, "https://127.0.0.1:9/")
    assert oper.patch(srv.url + admins, json={"Context": "x"}).status_code == 403
    assert viewer.delete(srv.url + mine).status_code == 403
    assert oper.patch(srv.url + mine, json={"Context": "mine"}).status_code == 200
    assert ids(oper.patch(srv.url + mine, json={"Destination": "https://x/"})) == ["PropertyNotWritable"]
    assert oper.delete(srv.url + mine).status_code == 200
    assert c.get(srv.url + mine).status_code == 404


def test_subscriptions_survive_a_restart(rig):
    srv, receiver = rig
    c = srv.client()
    rcv = receiver()
    sub = subscribe(c, srv, rcv.url, Context="kept")
    srv = restart(srv)
    c = srv.client()
    assert c.get(srv.url + sub).json()["Context"] == "kept"
    sim(srv, "unplug", "Unit2")
    wait_for(lambda: any(r["MessageId"].endswith("ResourceRemoved") for r in rcv.records()), "after restart", 10)
    srv.stop()


def test_terminate_policy_resume_action_and_cap(rig):
    srv, receiver = rig
    c = srv.client()
    assert c.patch(srv.url + SERVICE, json={"DeliveryRetryIntervalSeconds": 1,
                                            "DeliveryRetryAttempts": 0}).status_code == 200
    failing = receiver(status=500)
    gone = subscribe(c, srv, failing.url, DeliveryRetryPolicy="TerminateAfterRetries")
    suspended = subscribe(c, srv, failing.url)
    sim(srv, "unplug", "Unit2")
    wait_for(lambda: c.get(srv.url + gone).status_code == 404, "terminated", 10)
    wait_for(lambda: c.get(srv.url + suspended).json()["Status"]["State"] == "Suspended", "suspended", 10)
    failing.status = 204
    action = c.get(srv.url + suspended).json()["Actions"]["#EventDestination.ResumeSubscription"]["target"]
    assert c.post(srv.url + action, json={}).status_code == 200
    wait_for(lambda: any(r["MessageId"].endswith("ResourceRemoved") for r in failing.records()), "resumed", 10)
    assert c.get(srv.url + suspended).json()["Status"]["State"] == "Enabled"
    made = [subscribe(c, srv, "https://127.0.0.1:9/") for _ in range(15)]
    r = c.post(srv.url + SUBS, json={"Destination": "https://127.0.0.1:9/", "Protocol": "Redfish"})
    assert r.status_code == 400 and ids(r) == ["CreateLimitReachedForResource"]
    for uri in made:
        assert c.delete(srv.url + uri).status_code == 200
