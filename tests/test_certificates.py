"""CertificateService: where the certificates are, the HTTPS and client CA certificates
as resources, GenerateCSR + ReplaceCertificate (with the server answering all along),
bad input refused with nothing replaced, privileges."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import socket
import ssl
import threading
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from redfish_racklet import auth, pki
from redfish_racklet.store import Store

from .conftest import ADMIN_PASSWORD, ids, module_server

CS = "/redfish/v1/CertificateService"
GENERATE = CS + "/Actions/CertificateService.GenerateCSR"
REPLACE = CS + "/Actions/CertificateService.ReplaceCertificate"
HTTPS_CERTS = "/redfish/v1/Managers/RMC/NetworkProtocol/HTTPS/Certificates"
HTTPS_CERT = HTTPS_CERTS + "/1"
CLIENT_CA_CERTS = "/redfish/v1/AccountService/MultiFactorAuth/ClientCertificate/Certificates"


def served_fingerprint(srv) -> str:
    """SHA-256 of the certificate the server presents in a new TLS handshake."""
    ctx = ssl.create_default_context(cafile=srv.ca)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            der = s.getpeercert(binary_form=True)
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def sign(srv, csr_pem: str, *, days_before=1, days_after=30, ca=True, eku=ExtendedKeyUsageOID.SERVER_AUTH,
         public_key=None) -> str:
    """Sign a CSR with the rack CA, as an operator's CA would."""
    sd = srv.state_dir
    ca_key = serialization.load_pem_private_key((sd / pki.CA_KEY).read_bytes(), None)
    ca_cert = pki.load_cert(str(sd / pki.CA_CERT))
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
         .public_key(public_key or csr.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(days=days_before)).not_valid_after(now + dt.timedelta(days=days_after))
         .add_extension(x509.BasicConstraints(ca=not ca, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([eku]), critical=False))
    try:
        b = b.add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
    except x509.ExtensionNotFound:
        pass
    return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def csr_body(**extra) -> dict:
    body = {"CertificateCollection": {"@odata.id": HTTPS_CERTS}, "CommonName": "rmc.example.org",
            "Organization": "Racklet School", "Country": "FR", "AlternativeNames": ["localhost", "127.0.0.1"]}
    body.update(extra)
    return body


def replace_body(pem: str, **extra) -> dict:
    body = {"CertificateString": pem, "CertificateType": "PEM", "CertificateUri": {"@odata.id": HTTPS_CERT}}
    body.update(extra)
    return body


# -- reading -------------------------------------------------------------------------------------

def test_links_and_locations(server):
    c = server.client()
    assert c.get(server.url + "/redfish/v1").json()["CertificateService"] == {"@odata.id": CS}
    svc = c.get(server.url + CS).json()
    assert svc["@odata.type"] == "#CertificateService.v1_2_1.CertificateService"
    assert svc["Actions"]["#CertificateService.GenerateCSR"]["target"] == GENERATE
    assert svc["Actions"]["#CertificateService.ReplaceCertificate"]["target"] == REPLACE
    loc = c.get(server.url + svc["CertificateLocations"]["@odata.id"]).json()
    assert [m["@odata.id"] for m in loc["Links"]["Certificates"]] == [HTTPS_CERT, CLIENT_CA_CERTS + "/1"]
    proto = c.get(server.url + "/redfish/v1/Managers/RMC/NetworkProtocol").json()
    assert proto["HTTPS"]["Certificates"] == {"@odata.id": HTTPS_CERTS}
    acct = c.get(server.url + "/redfish/v1/AccountService").json()
    assert acct["MultiFactorAuth"]["ClientCertificate"]["Certificates"] == {"@odata.id": CLIENT_CA_CERTS}
    assert [m["@odata.id"] for m in c.get(server.url + HTTPS_CERTS).json()["Members"]] == [HTTPS_CERT]
    assert [m["@odata.id"] for m in c.get(server.url + CLIENT_CA_CERTS).json()["Members"]] == [CLIENT_CA_CERTS + "/1"]
    assert c.get(server.url + "/redfish/v1/Managers/Unit1-BMC/NetworkProtocol/HTTPS/Certificates").status_code == 404
    assert c.get(server.url + HTTPS_CERTS + "/2").status_code == 404


def test_https_certificate_is_the_one_served(server):
    doc = server.client().get(server.url + HTTPS_CERT).json()
    on_disk = pki.load_cert(str(server.state_dir / pki.SERVER_CERT))
    assert doc["CertificateString"] == pki.pem(on_disk)
    assert doc["Fingerprint"] == served_fingerprint(server)
    assert doc["CertificateType"] == "PEM" and doc["CertificateUsageTypes"] == ["Web"]
    assert doc["Issuer"]["CommonName"] == "Racklet CA"
    assert "ServerAuthentication" in doc["KeyUsage"]
    assert dt.datetime.fromisoformat(doc["ValidNotAfter"]) > dt.datetime.now(dt.timezone.utc)


def test_client_ca_certificate(server):
    doc = server.client().get(server.url + CLIENT_CA_CERTS + "/1").json()
    assert doc["CertificateString"] == (server.state_dir / pki.CLIENT_CA_CERT).read_text()
    assert doc["Subject"]["CommonName"] == "Racklet client CA"
    assert "KeyCertSign" in doc["KeyUsage"]


def test_privileges(server):
    Store(str(server.state_dir / "racklet.db")).add_account("certreader", auth.hash_password(ADMIN_PASSWORD),
                                                            "ReadOnly")
    ro = server.client(auth=("certreader", ADMIN_PASSWORD))
    assert ro.get(server.url + CS).status_code == 200  # CertificateService: Login
    for uri in (CS + "/CertificateLocations", HTTPS_CERTS, HTTPS_CERT, CLIENT_CA_CERTS, CLIENT_CA_CERTS + "/1"):
        assert ro.get(server.url + uri).status_code == 403, uri  # ConfigureManager
    r = ro.post(server.url + GENERATE, json=csr_body())
    assert r.status_code == 403 and ids(r) == ["InsufficientPrivilege"]
    assert ro.post(server.url + REPLACE, json=replace_body("x")).status_code == 403
    assert not (server.state_dir / pki.PENDING_KEY).exists()
    assert server.anonymous().get(server.url + CS).status_code == 401


# -- GenerateCSR + ReplaceCertificate ----------------------------------------------------------

@pytest.fixture(scope="module")
def cert_server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "certs", workers=2)


class RequestLoop(threading.Thread):
    """GETs the service root as fast as it can until stopped, on new connections and on
    a keep-alive one, counting what fails."""

    def __init__(self, srv):
        super().__init__(daemon=True)
        self.srv, self.done, self.failures, self.count = srv, threading.Event(), [], 0

    def run(self):
        keepalive = self.srv.client()
        deadline = time.monotonic() + 60  # bounded, whatever happens
        while not self.done.is_set() and time.monotonic() < deadline:
            for get in (keepalive.get, requests.get):
                try:
                    r = get(self.srv.url + "/redfish/v1", verify=self.srv.ca, timeout=10)
                    if r.status_code != 200:
                        self.failures.append(r.status_code)
                except requests.RequestException as e:
                    self.failures.append(repr(e))
                self.count += 1


def test_csr_and_replace_round_trip(cert_server):
    srv = cert_server
    c = srv.client()
    before = served_fingerprint(srv)
    loop = RequestLoop(srv)
    loop.start()
    try:
        time.sleep(0.3)
        r = c.post(srv.url + GENERATE, json=csr_body())
        assert r.status_code == 200, r.text
        assert r.json()["CertificateCollection"] == {"@odata.id": HTTPS_CERTS}
        csr = x509.load_pem_x509_csr(r.json()["CSRString"].encode())
        assert csr.is_signature_valid
        assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "rmc.example.org"
        assert csr.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "FR"
        assert (srv.state_dir / pki.PENDING_KEY).stat().st_mode & 0o777 == 0o600
        assert served_fingerprint(srv) == before  # nothing changes until the certificate comes
        new_pem = sign(srv, r.json()["CSRString"])
        r = c.post(srv.url + REPLACE, json=replace_body(new_pem))
        assert r.status_code == 200, r.text
        assert r.headers["Location"] == HTTPS_CERT
        time.sleep(0.5)
    finally:
        loop.done.set()
        loop.join(30)
    assert loop.failures == [], loop.failures[:5]
    assert loop.count > 20
    assert not (srv.state_dir / pki.PENDING_KEY).exists()
    after = served_fingerprint(srv)
    assert after != before
    doc = c.get(srv.url + HTTPS_CERT).json()
    assert doc["Fingerprint"] == after
    assert doc["Subject"]["CommonName"] == "rmc.example.org"
    assert doc["CertificateString"] == new_pem
    # Audited.
    entries = c.get(srv.url + "/redfish/v1/Managers/RMC/LogServices/EventLog/Entries?$top=1000").json()["Members"]
    assert any(e["MessageId"] == "ResourceEvent.1.4.3.ResourceChanged" and
               e["Links"]["OriginOfCondition"]["@odata.id"] == HTTPS_CERT for e in entries)


def test_rsa_csr(cert_server):
    c = cert_server.client()
    r = c.post(cert_server.url + GENERATE, json=csr_body(KeyPairAlgorithm="TPM_ALG_RSA", KeyBitLength=2048))
    assert r.status_code == 200, r.text
    key = x509.load_pem_x509_csr(r.json()["CSRString"].encode()).public_key()
    assert key.key_size == 2048
    # A later GenerateCSR replaces the pending key; only a certificate for that one is taken.
    r2 = c.post(cert_server.url + GENERATE, json=csr_body(KeyCurveId="TPM_ECC_NIST_P384"))
    assert r2.status_code == 200
    stale = sign(cert_server, r.json()["CSRString"])
    r = c.post(cert_server.url + REPLACE, json=replace_body(stale))
    assert r.status_code == 400 and ids(r) == ["ActionParameterValueError"]


def test_generate_csr_bad_input(cert_server):
    srv = cert_server
    c = srv.client()
    (srv.state_dir / pki.PENDING_KEY).unlink(missing_ok=True)
    for body, expected in [
        ({k: v for k, v in csr_body().items() if k != "CommonName"}, ["ActionParameterMissing"]),
        ({k: v for k, v in csr_body().items() if k != "CertificateCollection"}, ["ActionParameterMissing"]),
        (csr_body(CertificateCollection={"@odata.id": CLIENT_CA_CERTS}), ["ActionParameterValueError"]),
        (csr_body(CertificateCollection=HTTPS_CERTS), ["ActionParameterValueTypeError"]),
        (csr_body(CommonName=7), ["ActionParameterValueTypeError"]),
        (csr_body(CommonName="x" * 65), ["ActionParameterValueError"]),
        (csr_body(Country="France"), ["ActionParameterValueFormatError"]),
        (csr_body(AlternativeNames=["bad name!"]), ["ActionParameterValueFormatError"]),
        (csr_body(AlternativeNames="localhost"), ["ActionParameterValueTypeError"]),
        (csr_body(KeyPairAlgorithm="TPM_ALG_DSA"), ["ActionParameterValueNotInList"]),
        (csr_body(KeyCurveId="TPM_ECC_BN_P256"), ["ActionParameterValueNotInList"]),
        (csr_body(KeyPairAlgorithm="TPM_ALG_RSA", KeyBitLength=1024), ["ActionParameterValueNotInList"]),
        (csr_body(KeyBitLength="2048"), ["ActionParameterValueTypeError"]),
        (csr_body(ChallengePassword="secret"), ["ActionParameterNotSupported"]),
        (csr_body(Colour="blue"), ["ActionParameterUnknown"]),
    ]:
        r = c.post(srv.url + GENERATE, json=body)
        assert r.status_code == 400, body
        assert ids(r) == expected, body
    assert not (srv.state_dir / pki.PENDING_KEY).exists()
    r = c.post(srv.url + GENERATE, data="{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and ids(r) == ["MalformedJSON"]


def test_replace_bad_input_replaces_nothing(cert_server, tmp_path):
    srv = cert_server
    c = srv.client()
    r = c.post(srv.url + GENERATE, json=csr_body())
    assert r.status_code == 200
    csr_pem = r.json()["CSRString"]
    good = sign(srv, csr_pem)
    other_key = ec.generate_private_key(ec.SECP256R1())
    wrong_key = sign(srv, csr_pem, public_key=other_key.public_key())
    expired = sign(srv, csr_pem, days_before=30, days_after=-1)
    not_yet = sign(srv, csr_pem, days_before=-2, days_after=30)
    a_ca = sign(srv, csr_pem, ca=False)
    client_only = sign(srv, csr_pem, eku=ExtendedKeyUsageOID.CLIENT_AUTH)
    key_pem = other_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
    ca_pem = (srv.state_dir / pki.CA_CERT).read_text()
    on_disk = (srv.state_dir / pki.SERVER_CERT).read_bytes(), (srv.state_dir / pki.SERVER_KEY).read_bytes()
    served = served_fingerprint(srv)
    for body, expected in [
        (replace_body("not a certificate"), ["ActionParameterValueFormatError"]),
        (replace_body("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
         ["ActionParameterValueFormatError"]),
        (replace_body(good + key_pem), ["ActionParameterValueFormatError"]),
        (replace_body(wrong_key), ["ActionParameterValueError"]),
        (replace_body(expired), ["ActionParameterValueError"]),
        (replace_body(not_yet), ["ActionParameterValueError"]),
        (replace_body(a_ca), ["ActionParameterValueError"]),
        (replace_body(client_only), ["ActionParameterValueError"]),
        (replace_body(good + ca_pem), ["ActionParameterValueError"]),  # two certificates as "PEM"
        (replace_body(good, CertificateType="PKCS7"), ["ActionParameterValueNotInList"]),
        (replace_body(good, CertificateType="DER"), ["ActionParameterValueNotInList"]),
        (replace_body(good, CertificateType=1), ["ActionParameterValueTypeError"]),
        ({k: v for k, v in replace_body(good).items() if k != "CertificateType"}, ["ActionParameterMissing"]),
        ({k: v for k, v in replace_body(good).items() if k != "CertificateUri"}, ["ActionParameterMissing"]),
        ({k: v for k, v in replace_body(good).items() if k != "CertificateString"}, ["ActionParameterMissing"]),
        (replace_body(good, CertificateUri={"@odata.id": CLIENT_CA_CERTS + "/1"}), ["ActionParameterValueError"]),
        (replace_body(good, CertificateUri=HTTPS_CERT), ["ActionParameterValueTypeError"]),
        (replace_body(good, Password="x"), ["ActionParameterNotSupported"]),
        (replace_body(good, Extra=1), ["ActionParameterUnknown"]),
        (replace_body(7), ["ActionParameterValueTypeError"]),
    ]:
        r = c.post(srv.url + REPLACE, json=body)
        assert r.status_code == 400, (body.get("CertificateType"), r.text)
        assert ids(r) == expected, r.text
    assert ((srv.state_dir / pki.SERVER_CERT).read_bytes(), (srv.state_dir / pki.SERVER_KEY).read_bytes()) == on_disk
    assert served_fingerprint(srv) == served
    assert (srv.state_dir / pki.PENDING_KEY).exists()  # still waiting for its certificate
    # The same certificate with its chain, as PEMchain: taken.
    r = c.post(srv.url + REPLACE, json=replace_body(good + ca_pem, CertificateType="PEMchain"))
    assert r.status_code == 200, r.text
    assert served_fingerprint(srv) != served


def test_renew_with_the_current_key(cert_server):
    """No GenerateCSR: a new certificate for the key in use is taken as well."""
    srv = cert_server
    key = serialization.load_pem_private_key((srv.state_dir / pki.SERVER_KEY).read_bytes(), None)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "renewed")]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                          critical=False)
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    (srv.state_dir / pki.PENDING_KEY).unlink(missing_ok=True)
    r = srv.client().post(srv.url + REPLACE, json=replace_body(sign(srv, csr)))
    assert r.status_code == 200, r.text
    assert srv.client().get(srv.url + HTTPS_CERT).json()["Subject"]["CommonName"] == "renewed"
