"""Server-Sent Events (redfish_racklet/sse.py): the stream on its own port, against a real ``serve``."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from redfish_racklet import sse
from redfish_racklet.agent.events import resource_type
from redfish_racklet.store import LOG_MAX, Store

from .conftest import ADMIN_PASSWORD, ids, sim, start_server, wait_for

KEEPALIVE = 0.5


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RACKLET_SSE_KEEPALIVE", str(KEEPALIVE))  # inherited by serve's SSE process
        server = start_server(tmp_path_factory.mktemp("sse"))
    wait_sse_up(server)
    yield server
    server.stop()


def wait_sse_up(server, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", server.sse_port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError("the SSE listener did not start")
            time.sleep(0.05)


def basic(user="admin", password=ADMIN_PASSWORD) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Client:
    """A raw SSE client: one TLS connection, every read bounded by a timeout."""

    def __init__(self, server, headers: dict | None = None, query: str = "", timeout: float = 10.0,
                 method: str = "GET", path: str = sse.SSE_PATH):
        ctx = ssl.create_default_context(cafile=server.ca)
        raw = socket.create_connection(("127.0.0.1", server.sse_port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.sock.settimeout(timeout)
        path += f"?{query}" if query else ""
        sent = {"Host": "127.0.0.1", "Accept": "text/event-stream", **(headers if headers is not None else basic())}
        lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in sent.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *hdrs = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in hdrs)}
        self.body = None
        if self.status not in (200, 204):
            length = int(self.headers.get("content-length", "0"))
            while len(self.buf) < length:
                self._fill()
            self.body = json.loads(self.buf[:length])

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def block(self) -> str:
        """The next block (an event or a comment), up to its blank line."""
        while b"\n\n" not in self.buf:
            self._fill()
        block, self.buf = self.buf.split(b"\n\n", 1)
        return block.decode()

    def event(self, timeout: float = 10.0) -> tuple[int, dict]:
        """The next event (comments skipped): (id, Event)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            block = self.block()
            fields = dict(line.split(": ", 1) for line in block.split("\n") if not line.startswith(":"))
            if "data" in fields:
                return int(fields["id"]), json.loads(fields["data"])
        raise AssertionError("no event in time")

    def events_until_idle(self, limit: int = 2000) -> list[tuple[int, dict]]:
        """Events until the first keep-alive comment (sent only when the stream is idle)."""
        out = []
        for _ in range(limit):
            block = self.block()
            if block.startswith(": keep-alive"):
                return out
            if block.startswith(":"):
                continue
            fields = dict(line.split(": ", 1) for line in block.split("\n"))
            out.append((int(fields["id"]), json.loads(fields["data"])))
        raise AssertionError("no keep-alive")

    def closed(self, timeout: float = 10.0) -> bool:
        """True once the server ends the stream (within ``timeout``)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self._fill()
                self.buf = self.buf[-65536:]
        except (EOFError, ConnectionError, ssl.SSLError):
            return True
        except TimeoutError:
            return False
        return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def store(server) -> Store:
    return Store(str(server.state_dir / "racklet.db"))


def head_id(server) -> int:
    return store(server).conn().execute("SELECT COALESCE(MAX(id), 0) FROM log").fetchone()[0]


def add(server, message_id: str, origin: str) -> int:
    return store(server).add_log("", "OK", message_id, [], "test entry", origin, time.time())


def message_ids(events) -> list[str]:
    return [doc["Events"][0]["MessageId"] for _, doc in events]


# -- the stream ------------------------------------------------------------------------------

def test_stream_headers_and_event_after_unplug(srv):
    c = Client(srv)
    try:
        assert c.status == 200
        assert c.headers["content-type"].startswith("text/event-stream")
        sim(srv, "unplug", "Unit4")
        t0 = time.monotonic()
        while True:
            eid, doc = c.event()
            rec = doc["Events"][0]
            if rec["MessageId"].endswith(".ResourceRemoved"):
                break
            assert time.monotonic() - t0 < 10
        assert doc["@odata.type"].startswith("#Event.") and doc["Id"] == str(eid)
        assert rec["EventId"] == str(eid) and rec["Severity"] == "OK" and rec["MessageArgs"] == []
        assert "Unit4" in rec["OriginOfCondition"]["@odata.id"]
        assert datetime.fromisoformat(rec["EventTimestamp"]).utcoffset() is not None and rec["Message"]
    finally:
        c.close()
        sim(srv, "plug", "Unit4")


def test_keep_alive(srv):
    c = Client(srv)
    try:
        t0 = time.monotonic()
        while not c.block().startswith(": keep-alive"):
            assert time.monotonic() - t0 < 10
    finally:
        c.close()


def test_resume_with_last_event_id(srv):
    before = head_id(srv)
    a = add(srv, "ResourceEvent.1.4.3.ResourceChanged", "/redfish/v1/Chassis/Unit1")
    b = add(srv, "ResourceEvent.1.4.3.ResourceChanged", "/redfish/v1/Chassis/Unit2")
    c = Client(srv, {**basic(), "Last-Event-ID": str(before)})
    try:
        events = c.events_until_idle()
        ids = [eid for eid, _ in events]
        assert ids[:2] == [a, b] and ids == sorted(ids)
    finally:
        c.close()
    c = Client(srv, {**basic(), "Last-Event-ID": str(a)})
    try:
        assert c.event()[0] == b
    finally:
        c.close()


@pytest.mark.parametrize("query, expect", [
    ("$filter=RegistryPrefix eq TestReg", {"TestReg.1.0.0.A", "TestReg.1.0.0.B"}),
    ("$filter=MessageId eq 'TestReg.1.0.0.A'", {"TestReg.1.0.0.A"}),
    ("$filter=MessageId eq 'TestReg.A' or MessageId eq Other.1.0.C", {"TestReg.1.0.0.A", "Other.1.0.C"}),
    ("$filter=OriginResource eq '/redfish/v1/Systems/Unit3'", {"TestReg.1.0.0.B"}),
    ("$filter=(OriginResource eq '/redfish/v1/Chassis/Unit3') and SubordinateResources eq true",
     {"TestReg.1.0.0.A", "Other.1.0.C"}),
    ("$filter=ResourceType eq ComputerSystem", {"TestReg.1.0.0.B"}),
    ("$filter=RegistryPrefix eq TestReg and not ResourceType eq ComputerSystem", {"TestReg.1.0.0.A"}),
    ("$filter=EventFormatType eq MetricReport", set()),
])
def test_filters(srv, query, expect):
    before = head_id(srv)
    add(srv, "TestReg.1.0.0.A", "/redfish/v1/Chassis/Unit3")
    add(srv, "TestReg.1.0.0.B", "/redfish/v1/Systems/Unit3")
    add(srv, "Other.1.0.C", "/redfish/v1/Chassis/Unit3/Sensors/Temp")
    c = Client(srv, {**basic(), "Last-Event-ID": str(before)}, query=query.replace(" ", "%20"))
    try:
        assert c.status == 200, c.body
        got = set(message_ids(c.events_until_idle()))
        assert got & {"TestReg.1.0.0.A", "TestReg.1.0.0.B", "Other.1.0.C"} == expect
    finally:
        c.close()


@pytest.mark.parametrize("query", ["$filter=", "$filter=Bogus eq 1", "$filter=MessageId gt 3",
                                   "$filter=(MessageId eq a", "$filter=MessageId eq 'a",
                                   "$filter=EventFormatType eq Nonsense", "$top=3"])
def test_bad_filter_is_400(srv, query):
    c = Client(srv, query=query.replace(" ", "%20"))
    assert c.status == 400
    assert c.headers["content-type"].startswith("application/json")
    assert c.body["error"]["@Message.ExtendedInfo"][0]["MessageId"].startswith("Base.1.")
    c.close()


@pytest.mark.parametrize("headers", [{}, basic(password="wrong-password"), {"X-Auth-Token": "nope"}])
def test_unauthenticated_is_401(srv, headers):
    c = Client(srv, headers)
    assert c.status == 401 and c.body["error"]["code"].endswith("NoValidSession")
    assert "www-authenticate" in c.headers
    c.close()


def test_other_refusals(srv):
    c = Client(srv, {**basic(), "Accept": "application/json"})
    assert c.status == 406 and c.body["error"]["code"].startswith("Base.1.")
    c.close()
    c = Client(srv, {**basic(), "Last-Event-ID": "abc"})
    assert c.status == 400
    c.close()
    c = Client(srv, method="POST")
    assert c.status == 405 and c.headers["allow"] == "GET"
    c.close()
    c = Client(srv, path="/redfish/v1/Systems")
    assert c.status == 404 and c.body["error"]["code"].endswith("InvalidURI")
    c.close()


def test_buffer_exceeded_after_rotation(fresh_server):
    server = fresh_server()
    wait_sse_up(server)
    st = store(server)
    first = add(server, "TestReg.1.0.0.A", "/redfish/v1/Chassis/Unit1")
    with st.tx() as t:  # as LOG_MAX + 10 add_log calls, in one transaction
        for _ in range(LOG_MAX + 10):
            t.execute("INSERT INTO log(unit, created, severity, message_id, args, message, origin) "
                      "VALUES('', ?, 'OK', 'TestReg.1.0.0.B', '[]', 'x', '/redfish/v1/Chassis/Unit1')",
                      (time.time(),))
    last = add(server, "TestReg.1.0.0.A", "/redfish/v1/Chassis/Unit1")  # rotates the oldest out
    oldest = st.conn().execute("SELECT MIN(id) FROM log").fetchone()[0]
    assert oldest > first + 1
    c = Client(server, {**basic(), "Last-Event-ID": str(first)})
    try:
        eid, doc = c.event()
        assert doc["Events"][0]["MessageId"] == "Base.1.22.1.EventBufferExceeded"
        assert eid == oldest - 1
        assert c.event()[0] == oldest
    finally:
        c.close()
    c = Client(server, {**basic(), "Last-Event-ID": str(last - 1)})  # still in the journal
    try:
        eid, doc = c.event()
        assert eid == last and doc["Events"][0]["MessageId"] == "TestReg.1.0.0.A"
    finally:
        c.close()


def test_slow_reader_is_dropped(fresh_server, monkeypatch):
    """A client that stops reading is dropped once its send buffer stays full, instead of
    the service buffering for it without limit."""
    monkeypatch.setenv("RACKLET_SSE_SLOW_CLIENT_TIMEOUT", "1")
    monkeypatch.setenv("RACKLET_SSE_MAX_STREAMS", "1")
    server = fresh_server()
    wait_sse_up(server)
    ctx = ssl.create_default_context(cafile=server.ca)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    raw.settimeout(10)
    raw.connect(("127.0.0.1", server.sse_port))
    sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    head = f"GET {sse.SSE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: {basic()['Authorization']}\r\n\r\n"
    sock.sendall(head.encode())
    assert sock.recv(12) == b"HTTP/1.1 200"
    st = store(server)
    big = "x" * 60000
    with st.tx() as t:  # ~30 MB of events: far more than the socket buffers hold
        for _ in range(500):
            t.execute("INSERT INTO log(unit, created, severity, message_id, args, message, origin) "
                      "VALUES('', ?, 'OK', 'TestReg.1.0.0.A', '[]', ?, '/redfish/v1/Chassis/Unit1')",
                      (time.time(), big))
    # Not reading. With one stream allowed, a second is refused until the server has
    # dropped us (bounded polling).
    deadline = time.monotonic() + 20
    while True:
        other = Client(server)
        other.close()
        if other.status == 200:
            break
        assert other.status == 503
        assert time.monotonic() < deadline, "the slow client was not dropped"
        time.sleep(0.2)
    got = 0
    try:
        while got < 40_000_000:
            data = sock.recv(65536)
            if not data:
                break
            got += len(data)
    except (ConnectionError, ssl.SSLError, TimeoutError):
        pass
    assert got < 25_000_000
    sock.close()


# -- credentials that go away end the stream -----------------------------------------------

def test_deleted_session_ends_stream(srv):
    s = srv.anonymous()
    r = s.post(srv.url + "/redfish/v1/SessionService/Sessions",
               json={"UserName": "admin", "Password": ADMIN_PASSWORD})
    assert r.status_code == 201
    c = Client(srv, {"X-Auth-Token": r.headers["X-Auth-Token"]})
    try:
        assert c.status == 200
        assert not c.closed(timeout=0.3)
        assert srv.client().delete(srv.url + r.headers["Location"]).status_code in (200, 204)
        assert c.closed(timeout=10)
    finally:
        c.close()


def test_disabled_account_ends_stream(srv):
    admin = srv.client()
    r = admin.post(srv.url + "/redfish/v1/AccountService/Accounts",
                   json={"UserName": "sseuser", "Password": "sse-password-long-enough-1", "RoleId": "ReadOnly"})
    assert r.status_code == 201, r.text
    uri = r.headers["Location"]
    try:
        c = Client(srv, basic("sseuser", "sse-password-long-enough-1"))
        try:
            assert c.status == 200
            r = admin.patch(srv.url + uri, json={"Enabled": False})
            assert r.status_code in (200, 204), r.text
            assert c.closed(timeout=10)
        finally:
            c.close()
    finally:
        admin.delete(srv.url + uri)


# -- the cap, and normal requests while 100 streams are open ----------------------------------

def test_cap_and_api_unaffected_by_100_streams(srv):
    with ThreadPoolExecutor(16) as pool:
        streams = list(pool.map(lambda _: Client(srv), range(sse.MAX_STREAMS)))
    try:
        assert all(c.status == 200 for c in streams)
        extra = Client(srv)
        assert extra.status == 503 and "retry-after" in extra.headers
        extra.close()
        # The API answers while every stream is held (gunicorn's threads are not involved).
        api = srv.client()
        t0 = time.monotonic()
        for _ in range(40):
            assert api.get(srv.url + "/redfish/v1/Chassis", timeout=10).status_code == 200
        assert time.monotonic() - t0 < 20
        # And the streams still get events.
        eid = add(srv, "TestReg.1.0.0.A", "/redfish/v1/Chassis/Unit1")
        for c in (streams[0], streams[-1]):
            while True:
                got, _ = c.event()
                if got == eid:
                    break
    finally:
        for c in streams:
            c.close()
    # The slots come back once the clients have gone.
    deadline = time.monotonic() + 10
    while True:
        c = Client(srv)
        c.close()
        if c.status == 200:
            break
        assert time.monotonic() < deadline, "stream slots not released"
        time.sleep(0.1)


def test_uri():
    assert sse.uri("127.0.0.1", 8444) == "https://127.0.0.1:8444/redfish/v1/EventService/SSE"
    assert sse.uri("::1", 8444) == "https://[::1]:8444/redfish/v1/EventService/SSE"
    assert resource_type("/redfish/v1/Chassis/Unit1/Sensors/Temp") == "Sensor"


def test_the_event_service_advertises_the_stream(srv):
    """A client finds the stream where EventService says it is, and reads events from it
    with the same credentials as the API (requests, streaming)."""
    doc = srv.get("/redfish/v1/EventService").json()
    uri = doc["ServerSentEventUri"]
    assert uri == f"https://127.0.0.1:{srv.sse_port}{sse.SSE_PATH}"
    assert doc["SSEFilterPropertiesSupported"]["RegistryPrefix"] is True
    c = srv.client()
    with c.get(uri, stream=True, timeout=10, headers={"Accept": "text/event-stream"},
               params={"$filter": "MessageId eq 'ResourceEvent.1.4.3.ResourceRemoved'"}) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        sim(srv, "unplug", "Unit3")
        try:
            data = next(line for line in r.iter_lines(decode_unicode=True) if line.startswith("data: "))
        finally:
            sim(srv, "plug", "Unit3")
    record = json.loads(data[len("data: "):])["Events"][0]
    assert record["MessageId"].endswith("ResourceRemoved") and record["OriginOfCondition"]["@odata.id"].endswith(
        "Unit3")


def test_each_stream_is_an_event_destination_and_deleting_it_ends_the_stream(srv):
    """DSP0266: an open stream shows in Subscriptions (SubscriptionType SSE); a DELETE of it
    closes the stream; a stream that ends takes its EventDestination with it."""
    c = srv.client()

    def streams():
        docs = [c.get(srv.url + m["@odata.id"]).json()
                for m in c.get(srv.url + "/redfish/v1/EventService/Subscriptions").json()["Members"]]
        return [d for d in docs if d.get("SubscriptionType") == "SSE"]

    before = {d["Id"] for d in streams()}
    first = Client(srv, query="$filter=RegistryPrefix%20eq%20'ResourceEvent'")
    second = Client(srv)
    try:
        assert first.status == 200 and second.status == 200
        mine = wait_for(lambda: (lambda s: s if len(s) == 2 else None)(
            [d for d in streams() if d["Id"] not in before]), "two stream EventDestinations")
        by_filter = {d["Destination"]: d for d in mine}
        assert set(by_filter) == {sse.SSE_PATH + "?$filter=RegistryPrefix%20eq%20'ResourceEvent'", sse.SSE_PATH}
        assert all(d["Context"] and d["Protocol"] == "Redfish" for d in mine)
        r = c.patch(srv.url + mine[0]["@odata.id"], json={"Context": "mine"})
        assert r.status_code == 400 and ids(r) == ["PropertyNotWritable"]
        doomed = by_filter[sse.SSE_PATH]
        assert c.delete(srv.url + doomed["@odata.id"]).status_code == 200
        assert second.closed(timeout=10)          # its stream ended with it
        assert not first.closed(timeout=1.5)      # the other one goes on
    finally:
        first.close()
        second.close()
    wait_for(lambda: not [d for d in streams() if d["Id"] not in before], "the streams' EventDestinations gone")


# -- CORS: the dashboard (the API's origin) may read the stream, no other page may ---------------

def api_origin(server) -> str:
    return f"https://127.0.0.1:{server.port}"


def token(server) -> str:
    r = server.anonymous().post(server.url + "/redfish/v1/SessionService/Sessions",
                                json={"UserName": "admin", "Password": ADMIN_PASSWORD})
    assert r.status_code == 201, r.text
    return r.headers["X-Auth-Token"]


def cors_names(c: Client) -> set[str]:
    return {k for k in c.headers if k.startswith("access-control-")}


PREFLIGHT = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-auth-token"}


def test_preflight_from_the_api_origin(srv):
    c = Client(srv, {"Origin": api_origin(srv), **PREFLIGHT}, method="OPTIONS")
    try:   # no credentials: a browser sends none with a preflight
        assert c.status == 204, c.headers
        assert c.headers["access-control-allow-origin"] == api_origin(srv)
        assert c.headers["access-control-allow-methods"] == "GET"
        assert c.headers["access-control-allow-headers"].lower() == "x-auth-token"
        assert int(c.headers["access-control-max-age"]) == sse.CORS_MAX_AGE > 0
        assert c.headers["vary"] == "Origin" and "access-control-allow-credentials" not in c.headers
        assert c.headers["x-content-type-options"] == "nosniff"
    finally:
        c.close()
    # asking for nothing beyond the safelisted headers is fine too
    c = Client(srv, {"Origin": api_origin(srv), "Access-Control-Request-Method": "GET"}, method="OPTIONS")
    assert c.status == 204 and c.headers["access-control-allow-origin"] == api_origin(srv)
    c.close()


def test_stream_from_the_api_origin_with_a_token(srv):
    c = Client(srv, {"Origin": api_origin(srv), "X-Auth-Token": token(srv)})
    try:
        assert c.status == 200 and c.headers["content-type"].startswith("text/event-stream")
        assert c.headers["access-control-allow-origin"] == api_origin(srv) and c.headers["vary"] == "Origin"
        eid = add(srv, "TestReg.1.0.0.Cors", "/redfish/v1/Chassis/Unit1")
        got, doc = c.event()
        while got < eid:
            got, doc = c.event()
        assert got == eid and doc["Events"][0]["MessageId"] == "TestReg.1.0.0.Cors"
    finally:
        c.close()
    # a refusal is readable by the page too (it learns its session has ended)
    c = Client(srv, {"Origin": api_origin(srv), "X-Auth-Token": "no-such-token"})
    assert c.status == 401 and c.headers["access-control-allow-origin"] == api_origin(srv)
    c.close()


@pytest.mark.parametrize("origin", [
    "https://evil.example",
    "https://127.0.0.1",                      # no port: 443, not the API's
    "http://127.0.0.1:{port}",                # another scheme
    "https://localhost:{port}",               # another host name than the request's
    "https://127.0.0.1:{sse}",                # the listener's own origin is no page of the rack
    "https://127.0.0.1:{port}/",              # not an origin as browsers send it
    "https://127.0.0.1:{port}.evil.example",
    "null",
    "",
])
def test_other_origins_get_no_cors_headers(srv, origin):
    origin = origin.format(port=srv.port, sse=srv.sse_port)
    c = Client(srv, {"Origin": origin, **PREFLIGHT}, method="OPTIONS")
    assert c.status == 405 and c.headers["allow"] == "GET" and not cors_names(c)
    c.close()
    c = Client(srv, {**basic(), "Origin": origin})   # the stream itself: served, but unreadable to that page
    try:
        assert c.status == 200 and not cors_names(c) and "vary" not in c.headers
    finally:
        c.close()


def test_the_host_name_must_match_the_origin(srv):
    origin = api_origin(srv)
    for host in (f"localhost:{srv.sse_port}", "127.0.0.2", "", "127.0.0.1 x", "[::1]"):
        c = Client(srv, {"Host": host, "Origin": origin, **PREFLIGHT}, method="OPTIONS")
        assert c.status in (400, 405) and not cors_names(c), host
        c.close()


@pytest.mark.parametrize("extra", [
    {"Access-Control-Request-Method": "POST"},
    {"Access-Control-Request-Method": "get"},
    {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-auth-token, authorization"},
    {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "content-type"},
    {"Access-Control-Request-Headers": "x-auth-token"},   # no method: not a preflight
])
def test_a_preflight_asking_for_more_is_refused(srv, extra):
    c = Client(srv, {"Origin": api_origin(srv), **extra}, method="OPTIONS")
    assert c.status == 405 and not cors_names(c)
    c.close()


def test_without_origin_nothing_changes(srv):
    c = Client(srv)
    try:
        assert c.status == 200 and not cors_names(c) and "vary" not in c.headers
    finally:
        c.close()
    c = Client(srv, PREFLIGHT, method="OPTIONS")
    assert c.status == 405 and not cors_names(c)
    c.close()
    c = Client(srv, {})
    assert c.status == 401 and not cors_names(c)
    c.close()


@pytest.mark.parametrize("header, name", [
    ("127.0.0.1:8444", "127.0.0.1"), ("127.0.0.1", "127.0.0.1"), ("Rack.Example:8444", "rack.example"),
    ("[::1]:8444", "[::1]"), ("[fe80::1]", "[fe80::1]"), (" rack ", "rack"),
])
def test_host_name(header, name):
    assert sse.host_name(header) == name


@pytest.mark.parametrize("header", [
    None, "", ":8444", "rack example", "rack;script-src", "rack'", "ra\"ck", "[::1", "[zz::1]:1", "-rack",
    "rack/x", "a" * 300, "räck", "rack,other",
])
def test_host_name_refuses_what_is_no_name(header):
    assert sse.host_name(header) is None


def test_origin_and_cors_origin():
    assert sse.origin("rack", 8443) == "https://rack:8443" and sse.origin("rack", 443) == "https://rack"
    assert sse.origin("::1", 8443) == "https://[::1]:8443" == sse.origin("[::1]", 8443)
    assert sse.cors_origin("https://rack:8443", "rack:8444", 8443) == "https://rack:8443"
    assert sse.cors_origin("https://rack", "RACK:8444", 443) == "https://rack"
    assert sse.cors_origin("https://[::1]:8443", "[::1]:8444", 8443) == "https://[::1]:8443"
    for origin, host, port in (("https://rack:8443", "rack:8444", None), ("https://rack:8443", "rack:8444", 0),
                               (None, "rack:8444", 8443), ("https://rack:8443", None, 8443),
                               ("https://rack:8443", "other:8444", 8443), ("https://rack:8443", "rack;x", 8443),
                               ("https://RACK:8443", "rack:8444", 8443), ("https://rack:443", "rack", 443)):
        assert sse.cors_origin(origin, host, port) is None, (origin, host, port)


def test_preflight_ok():
    assert sse.preflight_ok({"access-control-request-method": "GET"})
    assert sse.preflight_ok({"access-control-request-method": "GET", "access-control-request-headers": "X-Auth-Token"})
    assert sse.preflight_ok({"access-control-request-method": "GET", "access-control-request-headers": " , "})
    for bad in ({}, {"access-control-request-method": "OPTIONS"},
                {"access-control-request-method": "GET", "access-control-request-headers": "x-auth-token,cookie"},
                {"access-control-request-method": "GET", "access-control-request-headers": "last-event-id"}):
        assert not sse.preflight_ok(bad), bad
