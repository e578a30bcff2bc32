"""Property-based test of the multipart update push (POST /redfish/v1/UpdateService/update-multipart:
werkzeug's streaming form parser + the checks in redfish_racklet/resources/update_service.py).

Arbitrary bodies (well-formed multipart with odd parts, cut short, corrupted, with a wrong or
missing boundary, under other content types) against the live server: the answer is a Redfish
error (4xx with an ``error`` body), never a 5xx, and a refused upload leaves nothing staged.

One server of this module's own (it trusts a signing key, else every push stops at 409 before
the parser), few examples (derandomized); RACKLET_PROP_EXAMPLES=500 for a longer, random run.
"""

from __future__ import annotations

import os

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="needs hypothesis (pip install -e '.[test]')")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from redfish_racklet import bundle  # noqa: E402

from .conftest import start_server  # noqa: E402

PUSH = "/redfish/v1/UpdateService/update-multipart"
LONG = os.environ.get("RACKLET_PROP_EXAMPLES")

boundaries = st.one_of(st.sampled_from(["b0undary", "----x", "a" * 70]),
                       st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='";\\'),
                               min_size=1, max_size=72))
part_names = st.one_of(st.sampled_from(["UpdateParameters", "UpdateFile", "OemParameters", ""]), st.text(max_size=12))
contents = st.one_of(st.binary(max_size=300), st.sampled_from([
    b'{"Targets": []}', b'{"Targets": ["/redfish/v1/Systems/Unit1"]}', b"{", b"null",
    b'{"@Redfish.OperationApplyTime": 1}', b"RKB1" + bytes(60)]))


@st.composite
def parts(draw) -> tuple[str, str | None, bytes, str | None]:
    return (draw(part_names), draw(st.none() | st.sampled_from(["b.rkb", "", "x\".rkb"])), draw(contents),
            draw(st.none() | st.sampled_from(["application/json", "application/octet-stream", "text/plain"])))


def encode(boundary: str, items) -> bytes:
    out = b""
    for name, filename, content, ctype in items:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        out += head.encode("utf-8", "surrogatepass") + b"\r\n" + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


@st.composite
def requests_(draw) -> tuple[str, bytes]:
    boundary = draw(boundaries)
    body = encode(boundary, draw(st.lists(parts(), max_size=4)))
    damage = draw(st.sampled_from(["none", "cut", "flip", "junk", "raw"]))
    if damage == "cut":
        body = body[:draw(st.integers(0, len(body)))]
    elif damage == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1:]
    elif damage == "junk":
        body = draw(st.binary(max_size=40)) + body
    elif damage == "raw":
        body = draw(st.binary(max_size=400))
    ctype = draw(st.sampled_from([f"multipart/form-data; boundary={boundary}",
                                  f'multipart/form-data; boundary="{boundary}"', "multipart/form-data",
                                  "multipart/form-data; boundary=other", f"multipart/mixed; boundary={boundary}",
                                  "application/json", "application/octet-stream", ""]))
    return ctype, body


def staged(server) -> set[str]:
    folder = server.state_dir / "staging"
    return {p.name for p in folder.rglob("*")} if folder.exists() else set()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server that trusts one signing key, so that pushes reach the multipart parser."""
    srv = start_server(tmp_path_factory.mktemp("multipart"))
    _private, public = bundle.generate_key()
    r = srv.client().patch(srv.url + "/redfish/v1/UpdateService",
                           json={"Oem": {"Racklet": {"SigningKeys": [{"PublicKey": public.decode()}]}}}, timeout=30)
    assert r.status_code in (200, 204), r.text
    yield srv
    srv.stop()


def test_any_multipart_body_is_refused_cleanly(server):
    session = server.client()
    before = staged(server)
    seen: dict[int, int] = {}

    @settings(max_examples=int(LONG or 60), derandomize=LONG is None, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(req=requests_())
    def one(req):
        ctype, body = req
        headers = {"Content-Type": ctype} if ctype else {}
        r = session.post(server.url + PUSH, data=body, headers=headers, timeout=30)
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert 400 <= r.status_code < 500, (r.status_code, ctype, body[:200], r.text[:300])
        assert r.headers["Content-Type"].startswith("application/json") and "error" in r.json(), r.text[:300]
        assert r.json()["error"]["@Message.ExtendedInfo"], r.text[:300]
        assert staged(server) == before, "a refused upload left a file in staging"

    one()
    print(f"multipart answers by status: {seen}")
    assert sum(seen.values()) >= min(20, int(LONG or 60)) and server.proc.poll() is None, seen
    assert set(seen) - {400, 413, 415} == set(), seen
