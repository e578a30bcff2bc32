"""TLS of the HTTPS listener (protocols, ciphers, no plain HTTP) and client certificates
(mTLS): issue, map to an account, revoke, refuse (another CA, expired, disabled
account), and ``serve --require-client-cert``. Clients are the standard ``ssl`` module
and requests."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import subprocess
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from redfish_racklet import auth, mtls, pki
from redfish_racklet.store import Store

from .conftest import ADMIN_PASSWORD, Server, cli, free_port, ids, module_server, wait_for

HANDSHAKE_REFUSED = (ssl.SSLError, ConnectionResetError, BrokenPipeError)
REQUEST_REFUSED = (requests.exceptions.SSLError, requests.exceptions.ConnectionError)


def handshake(server: Server, *, minimum=None, maximum=None, ciphers=None, cert=None) -> ssl.SSLSocket:
    """A TLS connection to the server with a client context of our choosing (closed by the caller)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(server.ca)
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    if ciphers:
        ctx.set_ciphers(ciphers)
    if cert:
        ctx.load_cert_chain(*cert)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except BaseException:
        raw.close()
        raise
    return s


def http_get(s: ssl.SSLSocket, path: str = "/redfish/v1") -> bytes:
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


# -- protocols and ciphers -------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_versions_are_refused(server, version):
    # OpenSSL 3 only offers TLS 1.0/1.1 at security level 0: make the client willing,
    # so the refusal is the server's.
    with pytest.raises(ssl.SSLError) as e:
        handshake(server, minimum=version, maximum=version, ciphers="DEFAULT:@SECLEVEL=0").close()
    assert "ALERT_PROTOCOL_VERSION" in str(e.value).upper()  # the server's alert


@pytest.mark.parametrize("ciphers", [
    "AES128-SHA",                       # RSA key exchange, CBC
    "AES128-GCM-SHA256:AES256-GCM-SHA384",  # AEAD but no forward secrecy
    "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384",  # forward secrecy but CBC
])
def test_tls12_weak_ciphers_are_refused(server, ciphers):
    with pytest.raises(ssl.SSLError) as e:
        handshake(server, maximum=ssl.TLSVersion.TLSv1_2, ciphers=ciphers + ":@SECLEVEL=0").close()
    assert "ALERT_HANDSHAKE_FAILURE" in str(e.value).upper()  # the server's alert


@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                                    "ECDHE-ECDSA-CHACHA20-POLY1305"])
def test_tls12_ecdhe_aead_is_accepted(server, cipher):
    with handshake(server, maximum=ssl.TLSVersion.TLSv1_2, ciphers=cipher) as s:
        assert s.version() == "TLSv1.2"
        assert s.cipher()[0] == cipher
        assert s.compression() is None
        assert http_get(s).startswith(b"HTTP/1.1 200")


def test_tls12_server_chooses_the_cipher(server):
    # The client prefers ChaCha20; the server's order (AES-GCM first) wins.
    with handshake(server, maximum=ssl.TLSVersion.TLSv1_2,
                   ciphers="ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256") as s:
        assert s.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"


def test_tls13_is_accepted(server):
    with handshake(server, minimum=ssl.TLSVersion.TLSv1_3) as s:
        assert s.version() == "TLSv1.3"
        assert s.cipher()[0] in ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256")
        reply = http_get(s)
    assert reply.startswith(b"HTTP/1.1 200")
    assert b"\r\nStrict-Transport-Security: max-age=31536000" in reply


def test_no_plain_http(server):
    """The service has no plain-HTTP option at all: a plain request on its port gets no HTTP answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /redfish/v1 HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            reply = s.recv(100)
        except ConnectionResetError:
            reply = b""
    assert not reply.startswith(b"HTTP/")
    help_text = subprocess.run(cli() + ["serve", "--help"], capture_output=True, text=True).stdout
    assert "--http" not in help_text and "plain" not in help_text.lower()


# -- client certificates -----------------------------------------------------------------------

def add_account(srv: Server, name: str, role: str = "ReadOnly") -> None:
    Store(str(srv.state_dir / "racklet.db")).add_account(name, auth.hash_password(ADMIN_PASSWORD), role)


def issue(srv: Server, name: str, out, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cli() + ["cert", "issue", name, "--state-dir", str(srv.state_dir), "--out", str(out),
                                *extra], capture_output=True, text=True, timeout=30)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def cert_files(out, name: str) -> tuple[str, str]:
    return str(out / f"{name}.pem"), str(out / f"{name}-key.pem")


def cert_client(srv: Server, cert) -> requests.Session:
    s = srv.client(auth=None)
    s.cert = cert
    return s


def serial_of(path: str) -> str:
    return pki.serial_hex(pki.load_cert(path))


@pytest.fixture(scope="module")
def mtls_server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "mtls", workers=2)


def test_certificate_logs_in_as_its_account(mtls_server, tmp_path):
    srv = mtls_server
    add_account(srv, "reader")
    r = issue(srv, "reader", tmp_path)
    assert "reader" in r.stdout and "ReadOnly" in r.stdout
    cert = cert_files(tmp_path, "reader")
    assert os.stat(cert[1]).st_mode & 0o777 == 0o600
    c = cert_client(srv, cert)
    assert c.get(srv.url + "/redfish/v1/Managers").status_code == 200
    # Mapped to a ReadOnly account: reads, and a write is 403 (not 401: it is someone).
    r = c.patch(srv.url + "/redfish/v1/Chassis/Unit1", json={"AssetTag": "x"})
    assert r.status_code == 403 and ids(r) == ["InsufficientPrivilege"]
    # Without the certificate and without credentials: 401.
    assert srv.anonymous().get(srv.url + "/redfish/v1/Managers").status_code == 401
    # The certificate carries CN = name and a UPN name@<rack>.
    parsed = pki.load_cert(cert[0])
    assert pki.common_names(parsed) == ["reader"]
    assert pki.user_principal_names(parsed) == [f"reader@{mtls.upn_domain(Store(str(srv.state_dir / 'racklet.db')))}"]


def test_admin_certificate_has_admin_rights(mtls_server, tmp_path):
    srv = mtls_server
    issue(srv, "admin", tmp_path)
    c = cert_client(srv, cert_files(tmp_path, "admin"))
    assert c.get(srv.url + "/redfish/v1/CertificateService/CertificateLocations").status_code == 200


def test_issue_for_an_unknown_account_is_refused(mtls_server, tmp_path):
    r = issue(mtls_server, "nobody", tmp_path, check=False)
    assert r.returncode == 1
    assert "no account 'nobody'" in r.stderr
    assert not (tmp_path / "nobody.pem").exists()


def test_certificate_of_another_ca_fails_the_handshake(mtls_server, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    pki.make_client_ca(str(other), "Elsewhere")
    cert, cert_pem, key_pem = pki.issue_client_cert(str(other), "admin")
    paths = pki.write_client_files(str(tmp_path), "admin", cert_pem, key_pem)
    # Even if its serial were recorded, the TLS layer never lets it through.
    mtls.record_issued(Store(str(mtls_server.state_dir / "racklet.db")), cert, "admin")
    with pytest.raises(REQUEST_REFUSED):
        cert_client(mtls_server, paths).get(mtls_server.url + "/redfish/v1/Managers", timeout=5)
    with pytest.raises(HANDSHAKE_REFUSED):
        with handshake(mtls_server, cert=paths) as s:
            http_get(s)


def test_expired_certificate_fails_the_handshake(mtls_server, tmp_path):
    sd = str(mtls_server.state_dir)
    ca_key = serialization.load_pem_private_key(open(os.path.join(sd, pki.CLIENT_CA_KEY), "rb").read(), None)
    ca = pki.load_cert(os.path.join(sd, pki.CLIENT_CA_CERT))
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=10)).not_valid_after(now - dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    mtls.record_issued(Store(os.path.join(sd, "racklet.db")), cert, "admin")
    paths = pki.write_client_files(str(tmp_path), "admin", cert.public_bytes(serialization.Encoding.PEM),
                                   key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    with pytest.raises(REQUEST_REFUSED):
        cert_client(mtls_server, paths).get(mtls_server.url + "/redfish/v1/Managers", timeout=5)
    # And if one got past the handshake (a connection older than the expiry), the request
    # layer refuses it too.
    assert mtls.principal_for(Store(os.path.join(sd, "racklet.db")),
                              cert.public_bytes(serialization.Encoding.DER), time.time()) is None


def test_unrecorded_certificate_authenticates_nobody(mtls_server, tmp_path):
    """Signed by the client CA but not recorded by ``cert issue``: no login."""
    cert, cert_pem, key_pem = pki.issue_client_cert(str(mtls_server.state_dir), "admin")
    paths = pki.write_client_files(str(tmp_path), "admin", cert_pem, key_pem)
    r = cert_client(mtls_server, paths).get(mtls_server.url + "/redfish/v1/Managers")
    assert r.status_code == 401


def test_revoked_certificate_authenticates_nobody(mtls_server, tmp_path):
    srv = mtls_server
    add_account(srv, "revokee", "Operator")
    issue(srv, "revokee", tmp_path / "one")
    issue(srv, "revokee", tmp_path / "two")
    first, second = cert_files(tmp_path / "one", "revokee"), cert_files(tmp_path / "two", "revokee")
    url = srv.url + "/redfish/v1/Managers"
    assert cert_client(srv, first).get(url).status_code == 200
    keepalive = cert_client(srv, second)
    assert keepalive.get(url).status_code == 200
    # Revoke one by serial (with colons, as the Certificate resources show serials).
    serial = serial_of(first[0])
    coloned = ":".join(serial.zfill(len(serial) + len(serial) % 2)[i:i + 2]
                       for i in range(0, len(serial) + len(serial) % 2, 2))
    r = subprocess.run(cli() + ["cert", "revoke", coloned, "--state-dir", str(srv.state_dir)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert cert_client(srv, first).get(url).status_code == 401
    assert keepalive.get(url).status_code == 200
    # A revoked certificate is no credential, but the password still is one.
    c = cert_client(srv, first)
    c.auth = ("revokee", ADMIN_PASSWORD)
    assert c.get(url).status_code == 200
    # Revoke the rest by account name: takes effect on an open connection at once.
    r = subprocess.run(cli() + ["cert", "revoke", "revokee", "--state-dir", str(srv.state_dir)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert keepalive.get(url).status_code == 401
    r = subprocess.run(cli() + ["cert", "revoke", "revokee", "--state-dir", str(srv.state_dir)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "no valid certificate" in r.stderr
    listed = subprocess.run(cli() + ["cert", "list", "--state-dir", str(srv.state_dir)],
                            capture_output=True, text=True).stdout
    assert f"{serial}  revokee" in listed and "revoked" in listed
    # Audited: added twice, removed twice.
    entries = srv.client().get(srv.url + "/redfish/v1/Managers/RMC/LogServices/EventLog/Entries?$top=1000").json()
    mine = [e["MessageId"] for e in entries["Members"] if e["MessageArgs"] == ["revokee"]]
    assert mine.count("AccountSecurity.1.0.1.UserCertificateAdded") == 2
    assert mine.count("AccountSecurity.1.0.1.UserCertificateRemoved") == 2


def test_disabled_or_locked_account_stays_refused(mtls_server, tmp_path):
    srv = mtls_server
    add_account(srv, "sleeper")
    issue(srv, "sleeper", tmp_path)
    c = cert_client(srv, cert_files(tmp_path, "sleeper"))
    url = srv.url + "/redfish/v1/Managers"
    assert c.get(url).status_code == 200
    store = Store(str(srv.state_dir / "racklet.db"))
    acct = store.account_by_name("sleeper")
    admin = srv.client()
    r = admin.patch(srv.url + f"/redfish/v1/AccountService/Accounts/{acct['id']}", json={"Enabled": False})
    assert r.status_code == 200, r.text
    assert c.get(url).status_code == 401
    r = admin.patch(srv.url + f"/redfish/v1/AccountService/Accounts/{acct['id']}", json={"Enabled": True})
    assert r.status_code == 200
    assert c.get(url).status_code == 200
    store.conn().execute("UPDATE accounts SET locked=1, locked_since=? WHERE id=?", (time.time(), acct["id"]))
    assert c.get(url).status_code == 401
    store.conn().execute("UPDATE accounts SET locked=0, locked_since=0 WHERE id=?", (acct["id"],))


def test_client_certificate_settings(mtls_server, tmp_path):
    srv = mtls_server
    add_account(srv, "mapper")
    issue(srv, "mapper", tmp_path)
    c = cert_client(srv, cert_files(tmp_path, "mapper"))
    admin = srv.client()
    url = srv.url + "/redfish/v1/AccountService"
    cc = admin.get(url).json()["MultiFactorAuth"]["ClientCertificate"]
    assert cc == {"Enabled": True, "RespondToUnauthenticatedClients": True, "CertificateMappingAttribute": "CommonName",
                  "Certificates": {"@odata.id": mtls.CLIENT_CA_URI}}
    try:
        upn = {"CertificateMappingAttribute": "UserPrincipalName"}
        r = admin.patch(url, json={"MultiFactorAuth": {"ClientCertificate": upn}})
        assert r.status_code == 200, r.text
        assert r.json()["MultiFactorAuth"]["ClientCertificate"]["CertificateMappingAttribute"] == "UserPrincipalName"
        assert c.get(srv.url + "/redfish/v1/Managers").status_code == 200  # the UPN maps too
        r = admin.patch(url, json={"MultiFactorAuth": {"ClientCertificate": {"Enabled": False}}})
        assert r.status_code == 200
        assert c.get(srv.url + "/redfish/v1/Managers").status_code == 401
        # Bad input: all problems at once, nothing changed.
        before = admin.get(url).json()["MultiFactorAuth"]
        for body, expected in [
            ({"MultiFactorAuth": {"ClientCertificate": {"Enabled": "yes"}}}, ["PropertyValueTypeError"]),
            ({"MultiFactorAuth": {"ClientCertificate": {"CertificateMappingAttribute": "Whole",
                                                        "Enabled": True}}}, ["PropertyValueNotInList"]),
            ({"MultiFactorAuth": {"ClientCertificate": {"RespondToUnauthenticatedClients": False}}},
             ["PropertyNotWritable"]),
            ({"MultiFactorAuth": {"ClientCertificate": {"Certificates": {}}}}, ["PropertyNotWritable"]),
            ({"MultiFactorAuth": {"SecurID": {}}}, ["PropertyUnknown"]),
            ({"MultiFactorAuth": "on"}, ["PropertyValueTypeError"]),
        ]:
            r = admin.patch(url, json=body)
            assert r.status_code == 400, body
            assert ids(r) == expected, body
        assert admin.get(url).json()["MultiFactorAuth"] == before
        # ReadOnly users may not change it.
        add_account(srv, "peeker")
        r = srv.client(auth=("peeker", ADMIN_PASSWORD)).patch(
            url, json={"MultiFactorAuth": {"ClientCertificate": {"Enabled": True}}})
        assert r.status_code == 403
    finally:
        r = admin.patch(url, json={"MultiFactorAuth": {"ClientCertificate": {
            "Enabled": True, "CertificateMappingAttribute": "CommonName"}}})
        assert r.status_code == 200


# -- serve --require-client-cert ----------------------------------------------------------------

def test_require_client_cert(tmp_path):
    state = tmp_path / "state"
    pw = tmp_path / "pw"
    pw.write_text(ADMIN_PASSWORD + "\n")
    subprocess.run(cli() + ["init", "--state-dir", str(state), "--admin-password-file", str(pw)], check=True,
                   capture_output=True)
    # A state dir from before mTLS: serve makes its client CA.
    os.unlink(state / pki.CLIENT_CA_CERT)
    os.unlink(state / pki.CLIENT_CA_KEY)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cli() + ["serve", "--state-dir", str(state), "--port", str(port), "--workers", "1",
                                         "--require-client-cert"], stdout=out, stderr=subprocess.STDOUT)
    srv = Server(state, port, proc, log)
    try:
        wait_for(lambda: (state / pki.CLIENT_CA_CERT).exists(), "client CA made by serve")
        assert os.stat(state / pki.CLIENT_CA_KEY).st_mode & 0o777 == 0o600
        issue(srv, "admin", tmp_path)
        cert = cert_files(tmp_path, "admin")
        c = cert_client(srv, cert)

        def up():
            try:
                return c.get(srv.url + "/redfish/v1", timeout=2).status_code == 200
            except REQUEST_REFUSED:
                assert proc.poll() is None, log.read_text()
                return False
        wait_for(up, "serve --require-client-cert", timeout=30)
        r = c.get(srv.url + "/redfish/v1/AccountService")
        assert r.json()["MultiFactorAuth"]["ClientCertificate"]["RespondToUnauthenticatedClients"] is False
        # No certificate: no handshake, even with a good password.
        with pytest.raises(REQUEST_REFUSED):
            srv.client().get(srv.url + "/redfish/v1", timeout=5)
        with pytest.raises(HANDSHAKE_REFUSED):
            with handshake(srv) as s:
                http_get(s)
        # A certificate and a password: the password still works once the handshake is done.
        both = cert_client(srv, cert)
        both.auth = ("admin", ADMIN_PASSWORD)
        assert both.get(srv.url + "/redfish/v1/Managers").status_code == 200
    finally:
        srv.stop()
