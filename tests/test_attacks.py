"""Header and path tricks, oversized and deeply nested input, session fixation and token
guessing, against the live server with a raw HTTP client (requests would normalise the
tricks away). Each gets the right status, a Redfish error body, and changes nothing."""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import ssl

import pytest

from .conftest import ADMIN_PASSWORD

AUTH = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
SYSTEM = "/redfish/v1/Systems/Unit1"


def raw(server, method: str, path: str, headers: dict | None = None, body: bytes | str | None = None):
    ctx = ssl.create_default_context(cafile=server.ca)
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)  # the path goes out as written
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        data = body.encode() if isinstance(body, str) else body
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def redfish_error(status_body) -> list[str]:
    status, headers, body = status_body
    assert headers.get("Content-Type", "").startswith("application/json"), (status, body[:200])
    doc = json.loads(body)
    return [m["MessageId"].split(".")[-1] for m in doc["error"]["@Message.ExtendedInfo"]]


@pytest.mark.parametrize("path", [
    "/redfish/v1/Systems/../AccountService/Accounts",
    "/redfish/v1/Systems/%2e%2e/AccountService/Accounts",
    "/redfish/v1/Systems/Unit1%2F..%2F..%2FAccountService",
    "/redfish/v1/Systems/Unit1/..%2f..%2fAccountService%2fAccounts",
    "/redfish/v1//AccountService/Accounts",
    "/redfish/v1/Systems/Unit1%00",
    "/redfish/v1/Systems/%252e%252e/AccountService",
])
def test_path_tricks_are_not_found(server, path):
    result = raw(server, "GET", path, AUTH)
    assert result[0] == 404 and redfish_error(result) in (["InvalidURI"], ["ResourceNotFound"]), path


def test_path_tricks_do_not_bypass_authentication(server):
    for path in ("/redfish/v1/../redfish/v1/AccountService/Accounts", "/redfish/v1/%2e%2e/v1/Systems",
                 "/redfish/v1/./Systems", "/REDFISH/v1/Systems"):
        status, _, body = raw(server, "GET", path)
        assert status in (401, 404), (path, status)
        assert b"UserName" not in body and b"Unit1" not in body


@pytest.mark.parametrize("headers,status,msg", [
    ({"X-Long": "a" * 9000}, 431, "HeaderInvalid"),
    ({f"X-H{i}": "a" for i in range(150)}, 431, "HeaderInvalid"),
])
def test_oversized_headers_get_a_redfish_error(server, headers, status, msg):
    result = raw(server, "GET", SYSTEM, dict(AUTH, **headers))
    assert result[0] == status and redfish_error(result) == [msg]
    assert b"a" * 100 not in result[2]  # the offending input is not echoed


def test_overlong_uri_gets_a_redfish_error(server):
    result = raw(server, "GET", "/redfish/v1/" + "a" * 9000, AUTH)
    assert result[0] == 414 and redfish_error(result) == ["GeneralError"]
    assert b"aaaa" not in result[2]


@pytest.mark.parametrize("body", [
    "[" * 100_000,
    '{"AssetTag": ' + "[" * 5000 + "]" * 5000 + "}",
    '{"AssetTag": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}",
])
def test_deeply_nested_json_is_refused_cleanly(server, body):
    before = json.loads(raw(server, "GET", SYSTEM, AUTH)[2])["AssetTag"]
    result = raw(server, "PATCH", SYSTEM, dict(AUTH, **{"Content-Type": "application/json"}), body)
    assert result[0] == 400 and redfish_error(result)[0] in ("MalformedJSON", "UnrecognizedRequestBody")
    assert json.loads(raw(server, "GET", SYSTEM, AUTH)[2])["AssetTag"] == before


def test_session_fixation_and_token_guessing(server):
    """A client cannot choose its token; guessed tokens get 401 and nothing else."""
    chosen = "attacker-chosen-token-0123456789"
    status, headers, _ = raw(server, "POST", "/redfish/v1/SessionService/Sessions",
                             {"Content-Type": "application/json", "X-Auth-Token": chosen},
                             json.dumps({"UserName": "admin", "Password": ADMIN_PASSWORD}))
    assert status == 201
    token = headers["X-Auth-Token"]
    assert token != chosen and len(bytes.fromhex(token)) >= 16  # ≥ 128 bits
    assert raw(server, "GET", SYSTEM, {"X-Auth-Token": chosen})[0] == 401
    assert raw(server, "GET", SYSTEM, {"X-Auth-Token": token})[0] == 200
    for _ in range(20):
        guess = secrets.token_hex(32)
        result = raw(server, "GET", SYSTEM, {"X-Auth-Token": guess})
        assert result[0] == 401 and redfish_error(result) == ["NoValidSession"]
    assert raw(server, "DELETE", headers["Location"], {"X-Auth-Token": token})[0] in (200, 204)
    assert raw(server, "GET", SYSTEM, {"X-Auth-Token": token})[0] == 401  # logged out


def test_malformed_http_gets_a_redfish_error(server):
    ctx = ssl.create_default_context(cafile=server.ca)
    import socket
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /redfish/v1 HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith("GeneralError")
