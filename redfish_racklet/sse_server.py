"""The SSE listener process (``python -m redfish_racklet.sse_server``, started by ``serve``):
HTTP on asyncio streams, authentication, the journal poller and one task per stream.
The design and its bounds are described in ``sse.py``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import ssl
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl, unquote

from . import auth, mtls, telemetry
from .auth import BasicCache, Principal, login, parse_basic, principal_of
from .messages import RedfishError
from .sse import (MAX_STREAMS, PORT_META, SSE_PATH, Filter, FilterError, buffer_exceeded_doc, cors_headers,
                  cors_origin, event_doc, preflight_headers, preflight_ok, sse_bytes, uri)
from .store import Store
from .web import EVERY_RESPONSE as _EVERY_RESPONSE

log = logging.getLogger("racklet.sse")

POLL_INTERVAL = 0.05
KEEPALIVE = float(os.environ.get("RACKLET_SSE_KEEPALIVE", "15"))
MAX_CONNECTIONS = MAX_STREAMS + 64    # streams plus requests being read or refused
HEADER_TIMEOUT = 10.0
MAX_HEAD_BYTES = 16384
MAX_CLIENT_BYTES = 65536              # what a stream's client may send after its request
SEND_HIGH_WATER = 64 * 1024           # per stream; beyond it we wait for the client to read
SLOW_CLIENT_TIMEOUT = float(os.environ.get("RACKLET_SSE_SLOW_CLIENT_TIMEOUT", "10"))
BATCH = 100                           # journal rows read per query
AUTH_RECHECK = 1.0
RETRY_AFTER = 5
LOGIN = [["Login"]]


# -- HTTP ------------------------------------------------------------------------------

class HttpError(Exception):
    def __init__(self, err: RedfishError):
        self.err = err


def error_bytes(err: RedfishError) -> bytes:
    body = json.dumps(err.body()).encode()
    head = [f"HTTP/1.1 {err.status} {_REASONS.get(err.status, 'Error')}",
            "Content-Type: application/json;charset=utf-8", f"Content-Length: {len(body)}",
            "Connection: close"]
    head += [f"{k}: {v}" for k, v in err.headers.items()]
    head += [f"{k}: {v}" for k, v in _EVERY_RESPONSE]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def preflight_bytes(allowed_origin: str) -> bytes:
    """204 to a CORS preflight from the dashboard's origin: it may GET the stream with its token."""
    head = ["HTTP/1.1 204 No Content", "Connection: close"]
    head += [f"{k}: {v}" for k, v in preflight_headers(allowed_origin)]
    head += [f"{k}: {v}" for k, v in _EVERY_RESPONSE]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 406: "Not Acceptable", 412: "Precondition Failed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}
def parse_head(raw: bytes) -> tuple[str, str, str, dict[str, str]]:
    """(method, path, query, headers with lower-case names) of a request head."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover (latin-1 decodes anything)
        raise HttpError(RedfishError.of(400, "GeneralError"))
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(RedfishError.of(400, "GeneralError"))
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(RedfishError.of(400, "GeneralError"))
        if len(headers) >= 100:
            raise HttpError(RedfishError.of(431, "GeneralError"))
        headers[name.lower()] = value.strip()
    path, _, query = target.partition("?")
    return method, path, query, headers


def accepts_event_stream(accept: str | None) -> bool:
    if not accept:
        return True
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        if media in ("text/event-stream", "text/*", "*/*"):
            return True
    return False


# -- the hub ----------------------------------------------------------------------------

class Credentials:
    """How a stream authenticated, to check it again while it lasts."""

    def __init__(self, kind: str, value, acct_hash: str | None = None):
        self.kind, self.value, self.acct_hash = kind, value, acct_hash


class Stream:
    def __init__(self, writer: asyncio.StreamWriter, creds: Credentials, flt: Filter | None, last: int):
        self.writer, self.creds, self.filter, self.last = writer, creds, flt, last
        self.done = asyncio.Event()
        self.sub_id = 0   # its EventDestination (Subscriptions member)


class Hub:
    def __init__(self, store: Store, require_client_cert: bool = False, api_port: int | None = None):
        self.store = store
        self.api_port = api_port   # whose origin may read the streams (CORS); None: no CORS at all
        self.streams: set[Stream] = set()
        self.connections = 0
        self.head = self._max_id()
        self.changed = asyncio.Event()
        self.generation = None
        self.basic_cache = BasicCache()
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="sse-auth")  # scrypt off the loop
        self.subscriptions: set[int] = set()   # the EventDestinations of the open streams

    def _max_id(self) -> int:
        return self.store.conn().execute("SELECT COALESCE(MAX(id), 0) FROM log").fetchone()[0]

    def _min_id(self) -> int | None:
        return self.store.conn().execute("SELECT MIN(id) FROM log").fetchone()[0]

    def rows_after(self, last: int, limit: int = BATCH) -> list[dict]:
        rows = self.store.conn().execute("SELECT * FROM log WHERE id > ? ORDER BY id LIMIT ?", (last, limit))
        return [dict(r, args=json.loads(r["args"])) for r in rows]

    # ---- journal polling and credential checks
    async def poll(self) -> None:
        next_check = 0.0
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            try:
                gen = self.store.generation()
                if gen != self.generation:
                    self.generation = gen
                    head = self._max_id()
                    if head != self.head:
                        self.head = head
                        self.changed.set()
                        self.changed = asyncio.Event()
                now = time.monotonic()
                if now >= next_check and self.streams:
                    next_check = now + AUTH_RECHECK
                    kept = self.store.subscription_ids()
                    for s in list(self.streams):
                        if s.sub_id not in kept or not self.still_allowed(s.creds):
                            s.done.set()   # its EventDestination was deleted, or its caller may not
            except Exception:  # noqa: BLE001 - a locked or replaced database: try again
                log.exception("SSE poll failed")

    def still_allowed(self, creds: Credentials) -> bool:
        now = time.time()
        s = self.store
        if creds.kind == "token":
            sess = s.session_by_token(creds.value, now)
            p = principal_of(sess, sess["id"]) if sess is not None and sess["enabled"] else None
        elif creds.kind == "basic":
            acct = s.account_by_name(creds.value)
            ok = acct is not None and auth.usable(acct) and acct["password_hash"] == creds.acct_hash
            p = principal_of(acct) if ok else None
        else:
            p = mtls.principal_for(s, creds.value, now)
        return p is not None and not p.password_change_required and p.satisfies(LOGIN)

    async def authenticate(self, headers: dict, der: bytes | None,
                           client: str) -> tuple[Principal | None, Credentials | None]:
        """As ``app.authenticate``: a client certificate, else X-Auth-Token, else Basic."""
        s = self.store
        now = time.time()
        if der:
            p = mtls.principal_for(s, der, now)
            if p is not None:
                return p, Credentials("cert", der)
        token = headers.get("x-auth-token")
        if token:
            sess = s.session_by_token(token, now)
            if sess is None or not sess["enabled"]:
                return None, None
            return principal_of(sess, sess["id"]), Credentials("token", token)
        creds = parse_basic(headers.get("authorization", ""))
        if creds:
            loop = asyncio.get_running_loop()
            acct = await loop.run_in_executor(self.pool, lambda: login(
                s, *creds, via="HTTP Basic", client=client, cache=self.basic_cache))
            if acct:
                return principal_of(acct), Credentials("basic", acct["username"], acct["password_hash"])
        return None, None

    # ---- one connection
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.connections > MAX_CONNECTIONS:
                return
            try:
                await self._serve(reader, writer)
            except HttpError as e:
                writer.write(error_bytes(e.err))
                await asyncio.wait_for(writer.drain(), SLOW_CLIENT_TIMEOUT)
        except (OSError, ssl.SSLError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, ValueError):
            pass
        except Exception:  # noqa: BLE001
            log.exception("SSE connection failed")
        finally:
            self.connections -= 1
            writer.transport.abort() if writer.transport.get_write_buffer_size() else writer.close()

    async def _serve(self, reader, writer) -> None:
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEADER_TIMEOUT)
        except asyncio.LimitOverrunError:
            raise HttpError(RedfishError.of(431, "GeneralError"))
        method, path, query, headers = parse_head(raw[:-4])
        if unquote(path).rstrip("/") != SSE_PATH:
            raise HttpError(RedfishError.of(404, "InvalidURI", unquote(path)[:200]))
        allowed = cors_origin(headers.get("origin"), headers.get("host"), self.api_port)
        if method == "OPTIONS" and allowed and preflight_ok(headers):
            writer.write(preflight_bytes(allowed))
            await asyncio.wait_for(writer.drain(), SLOW_CLIENT_TIMEOUT)
            return
        if method != "GET":
            raise HttpError(RedfishError.of(405, "OperationNotAllowed", headers={"Allow": "GET"}))
        try:
            await self._serve_get(reader, writer, query, headers, allowed)
        except HttpError as e:   # the dashboard may read why it was refused (401: log in again)
            e.err.headers.update(cors_headers(allowed) if allowed else ())
            raise

    async def _serve_get(self, reader, writer, query: str, headers: dict, allowed: str | None) -> None:
        """A GET of the stream: its checks, in the order the tests expect, then the stream."""
        version = headers.get("odata-version")
        if version is not None and version.strip() != "4.0":
            raise HttpError(RedfishError.of(412, "HeaderInvalid", f"OData-Version: {version}"))
        sslobj = writer.get_extra_info("ssl_object")
        der = None
        if sslobj is not None:
            try:
                der = sslobj.getpeercert(binary_form=True)
            except (ValueError, OSError):
                der = None
        peer = writer.get_extra_info("peername") or ("",)
        principal, creds = await self.authenticate(headers, der, str(peer[0]))
        if principal is None:
            raise HttpError(RedfishError.of(
                401, "NoValidSession", headers={"WWW-Authenticate": 'Basic realm="Redfish", charset="UTF-8"'}))
        if principal.password_change_required:
            raise HttpError(RedfishError.of(403, "PasswordChangeRequired", principal.account_uri))
        if not principal.satisfies(LOGIN):
            raise HttpError(RedfishError.of(403, "InsufficientPrivilege"))
        if not accepts_event_stream(headers.get("accept")):
            raise HttpError(RedfishError.of(406, "HeaderInvalid", f"Accept: {headers['accept'][:200]}"))
        flt = None
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name != "$filter":
                raise HttpError(RedfishError.of(400, "QueryParameterUnsupported", name[:100]))
            if flt is not None:
                raise HttpError(RedfishError.of(400, "QueryParameterValueFormatError", value[:200], "$filter"))
            try:
                flt = Filter(value)
            except FilterError:
                raise HttpError(RedfishError.of(400, "QueryParameterValueFormatError", value[:200], "$filter"))
        resume = headers.get("last-event-id")
        if resume is not None:
            resume = resume.strip()
            if not resume.isdigit() or len(resume) > 18:
                raise HttpError(RedfishError.of(400, "HeaderInvalid", f"Last-Event-ID: {resume[:40]}"))
            resume = int(resume)
        if len(self.streams) >= MAX_STREAMS:
            raise HttpError(RedfishError.of(503, "ServiceTemporarilyUnavailable", str(RETRY_AFTER),
                                            headers={"Retry-After": str(RETRY_AFTER)}))
        await self._stream(reader, writer, creds, flt, resume, principal.username, query, allowed)

    async def _stream(self, reader, writer, creds, flt, resume: int | None, owner: str = "",
                      query: str = "", allowed: str | None = None) -> None:
        writer.transport.set_write_buffer_limits(high=SEND_HIGH_WATER)
        head = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream;charset=utf-8",
                "Cache-Control: no-cache", "Connection: keep-alive", "X-Accel-Buffering: no"]
        head += [f"{k}: {v}" for k, v in (cors_headers(allowed) if allowed else ())]
        head += [f"{k}: {v}" for k, v in _EVERY_RESPONSE if k != "Cache-Control"]
        out = ("\r\n".join(head) + "\r\n\r\n").encode()
        start = self.head
        if resume is not None and resume < start:
            oldest = self._min_id()
            first_kept = oldest if oldest is not None else start + 1
            if first_kept > resume + 1:  # rows the client asked for are gone
                lost_to = first_kept - 1
                out += sse_bytes(lost_to, buffer_exceeded_doc(lost_to))
                resume = lost_to
            start = resume
        stream = Stream(writer, creds, flt, start)
        # DSP0266: each stream is an EventDestination (SubscriptionType SSE); deleting it
        # ends the stream, and it goes when the stream ends.
        stream.sub_id = self.store.add_stream_subscription(owner, {
            "destination": SSE_PATH + (f"?{query}" if query else ""), "context": secrets.token_hex(8),
            "filter": unquote(query)[:1024]}, time.time())
        self.subscriptions.add(stream.sub_id)
        self.streams.add(stream)
        watcher = asyncio.ensure_future(self._watch_client(reader, stream))
        try:
            writer.write(out + b": stream open\n\n")
            await self._send_loop(stream)
        finally:
            self.streams.discard(stream)
            watcher.cancel()
            self.subscriptions.discard(stream.sub_id)
            try:
                self.store.delete_subscription(stream.sub_id)
            except Exception:  # noqa: BLE001 - a locked store: the next start cleans up
                log.exception("SSE: could not delete subscription %s", stream.sub_id)

    def _doc(self, stream: Stream, row: dict) -> dict:
        """An Event, or for a stream that asked for EventFormatType MetricReport, the
        MetricReport a TelemetryDataCreated row announces."""
        if stream.filter is not None and stream.filter.reports:
            report_id = telemetry.report_of(row)
            report = self.store.metric_report(report_id) if report_id else None
            if report is not None:
                return report["body"]
        return event_doc(row)

    async def _watch_client(self, reader, stream: Stream) -> None:
        """The client sends nothing more; EOF (or too much) ends the stream."""
        total = 0
        try:
            while True:
                data = await reader.read(4096)
                total += len(data)
                if not data or total > MAX_CLIENT_BYTES:
                    break
        except (OSError, ssl.SSLError):
            pass
        stream.done.set()

    async def _send_loop(self, stream: Stream) -> None:
        writer = stream.writer
        idle_since = time.monotonic()
        while not stream.done.is_set():
            if stream.last > self.head:  # the journal was wiped (factory reset): follow it
                stream.last = self.head
            if stream.last < self.head:
                rows = self.rows_after(stream.last)
                for row in rows:
                    stream.last = row["id"]
                    if stream.filter is None or stream.filter.matches(row):
                        writer.write(sse_bytes(row["id"], self._doc(stream, row)))
                        idle_since = time.monotonic()
                        if writer.transport.get_write_buffer_size() > SEND_HIGH_WATER:
                            await asyncio.wait_for(writer.drain(), SLOW_CLIENT_TIMEOUT)
                            if stream.done.is_set():
                                return
                if not rows:
                    stream.last = max(stream.last, self.head)
            elif time.monotonic() - idle_since >= KEEPALIVE:
                writer.write(b": keep-alive\n\n")
                idle_since = time.monotonic()
            if writer.transport.is_closing():
                return
            # Bounded memory: wait for a slow reader, then give up on it.
            await asyncio.wait_for(writer.drain(), SLOW_CLIENT_TIMEOUT)
            if stream.last >= self.head:
                changed, done = self.changed, stream.done
                wait = max(0.0, KEEPALIVE - (time.monotonic() - idle_since))
                waiters = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(done.wait())]
                try:
                    await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()


# -- the process -------------------------------------------------------------------------

async def run(state_dir: str, bind: str, port: int, require_client_cert: bool = False,
              ready=None, api_port: int | None = None) -> None:
    from .server import TLSContexts  # the API listener's TLS settings and reload
    contexts = TLSContexts(state_dir, require_client_cert)
    base = contexts.get()

    def pick_context(sslobj, server_name, ctx):  # called in each handshake (with or without SNI)
        current = contexts.get()
        if current is not ctx:
            current.sni_callback = pick_context
            sslobj.context = current

    base.sni_callback = pick_context
    store = Store(os.path.join(state_dir, "racklet.db"))
    store.delete_stream_subscriptions()   # streams of a listener that stopped without ending them
    hub = Hub(store, require_client_cert, api_port)
    server = await asyncio.start_server(hub.handle, bind, port, ssl=base, limit=MAX_HEAD_BYTES,
                                        ssl_handshake_timeout=HEADER_TIMEOUT, reuse_address=True,
                                        backlog=256)
    store.set_meta(PORT_META, str(port))   # the EventService's ServerSentEventUri names it
    poller = asyncio.ensure_future(hub.poll())
    print(f"redfish-racklet: server-sent events on {uri(bind, port)}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        poller.cancel()
        store.set_meta(PORT_META, "")
        server.close()
        for s in list(hub.streams):
            s.done.set()
            s.writer.transport.abort()
        hub.pool.shutdown(wait=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m redfish_racklet.sse_server",
                                description="the SSE listener (redfish-racklet serve starts it)")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--require-client-cert", action="store_true")
    p.add_argument("--api-port", type=int, default=None,
                   help="the API's HTTPS port: pages of its origin may read the stream (CORS); default: none")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="redfish-racklet sse: %(message)s")
    try:
        asyncio.run(run(os.path.abspath(args.state_dir), args.bind, args.port, args.require_client_cert,
                        api_port=args.api_port))
    except OSError as e:
        print(f"redfish-racklet: the SSE listener could not start: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
