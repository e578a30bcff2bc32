"""Server-Sent Events: the EventService's ``ServerSentEventUri``, served by a process of its own.

Why not inside gunicorn: the API runs as gthread workers (2 x 4 threads). A WSGI handler
that streams holds its thread for the life of the stream, so 8 SSE clients would stop the
service. Detaching a streaming socket from gunicorn's thread pool (a custom worker) means
fighting gunicorn's keep-alive and close bookkeeping. So ``serve`` starts this module as a
separate process (``sse_server.py``; this module holds its pure parts: the event
documents, ``$filter``, ``uri``): a single-threaded asyncio HTTPS server on its own port (``--sse-port``,
default the API port + 1, on the same bind address), where an idle stream costs a socket,
a small task and no thread. The gunicorn workers never see an SSE client.

- TLS: the API listener's own settings (``server.TLSContexts``: versions, ciphers, client
  certificates, a replaced certificate taken up for the next connection).
- Authentication: what ``app.authenticate`` does, with the same functions (a client
  certificate via ``mtls.principal_for``, ``X-Auth-Token`` via ``store.session_by_token``,
  Basic via ``auth.login`` with its lockout, audit and cache); the Login privilege is
  required. Every AUTH_RECHECK seconds each stream's credentials are checked again: a
  deleted session, a disabled, locked or deleted account, a changed password or a
  revoked certificate ends the stream.
- Events: the store's journal (the ``log`` table). One poller (``PRAGMA data_version``,
  every POLL_INTERVAL) wakes the streams when something was committed; each stream then
  reads the rows after its own last id (at most BATCH at a time) and writes them as
  ``id: <journal id>`` / ``data: <Event JSON>``.
- ``Last-Event-ID``: resume after that id; if rows after it have already rotated out of
  the bounded journal (or been cleared), an ``EventBufferExceeded`` event comes first.
- ``$filter`` (DSP0266 "Server-sent events"): EventFormatType, MessageId, OriginResource,
  RegistryPrefix, ResourceType, MetricReportDefinition and SubordinateResources with
  ``eq``/``ne``, ``and``, ``or``, ``not`` and parentheses. Malformed: 400.
- Bounds: MAX_STREAMS streams (then 503 with Retry-After), MAX_CONNECTIONS sockets in all,
  HEADER_TIMEOUT to send a request, a send buffer of SEND_HIGH_WATER bytes per stream: a
  client that does not read it down within SLOW_CLIENT_TIMEOUT is dropped.
- Keep-alive: a ``: keep-alive`` comment after KEEPALIVE seconds without an event.
- CORS, for the browser dashboard only: the page comes from the API's origin
  (``https://<host>:<api port>``) and this listener is another origin. ``serve`` passes the
  API port (``--api-port``); a request whose ``Origin`` is exactly the API's origin for the
  host name the request was sent to gets ``Access-Control-Allow-Origin`` (and ``Vary:
  Origin``), and its preflight (``OPTIONS``, method GET, at most the header X-Auth-Token)
  a 204. Any other Origin gets no CORS header, so a browser blocks it;
  a request without Origin (any non-browser client) is answered as before.

Environment (tests): RACKLET_SSE_KEEPALIVE, RACKLET_SSE_MAX_STREAMS, RACKLET_SSE_SLOW_CLIENT_TIMEOUT.
"""

from __future__ import annotations

import json
import os
import re
import time
from .agent.delivery import EVENT_TYPE, event_payload, iso
from . import telemetry
from .agent.events import resource_type
from .messages import BASE_MESSAGES, BASE_REGISTRY

SSE_PATH = "/redfish/v1/EventService/SSE"
PORT_META = "sse_port"   # in the store's meta while the listener runs: the API advertises it
MAX_STREAMS = int(os.environ.get("RACKLET_SSE_MAX_STREAMS", "100"))  # concurrent streams (then 503)
# EVENT_TYPE and iso: the same as the push subscribers' events (agent/delivery.py)


def uri(host: str, port: int) -> str:
    """The ServerSentEventUri of the SSE listener at ``host`` (as the client named the
    service, e.g. the request's Host without its port) and ``port``."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"https://{host}:{port}{SSE_PATH}"


def default_port(api_port: int) -> int:
    return api_port + 1


# -- origins and CORS --------------------------------------------------------------------

CORS_METHOD = "GET"
CORS_HEADERS = ("X-Auth-Token",)   # what the dashboard sends (Accept is safelisted)
CORS_MAX_AGE = 600                                   # seconds a browser may keep a preflight's answer
_HOST_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,252})|\[[0-9a-f:.]{2,45}\]")


def host_name(host_header: str | None) -> str | None:
    """The host name of a ``Host`` header, lower case, without its port (an IPv6 address
    keeps its brackets); None when it is missing or is not a plain DNS name or address.
    It goes into a CSP and an origin: nothing but name characters may pass."""
    if not host_header:
        return None
    host = host_header.strip().lower()
    name = host[:host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
    return name if _HOST_NAME.fullmatch(name) else None


def origin(host: str, port: int) -> str:
    """The web origin ``https://host:port`` as a browser serialises it (443 is left out)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"https://{host}" if port == 443 else f"https://{host}:{port}"


def cors_origin(origin_header: str | None, host_header: str | None, api_port: int | None) -> str | None:
    """The Origin to allow for this request, or None: only the API's own origin for the host
    name the request was sent to (the page that the API served on that name)."""
    if not origin_header or not api_port:
        return None
    name = host_name(host_header)
    if name is None:
        return None
    allowed = origin(name, api_port)
    return allowed if origin_header == allowed else None


def preflight_ok(headers: dict[str, str]) -> bool:
    """Does a preflight (lower-case header names) ask for what a stream needs, and no more?"""
    if headers.get("access-control-request-method") != CORS_METHOD:
        return False
    asked = headers.get("access-control-request-headers", "")
    allowed = {h.lower() for h in CORS_HEADERS}
    return all(h.strip().lower() in allowed for h in asked.split(",") if h.strip())


def cors_headers(allowed_origin: str) -> list[tuple[str, str]]:
    """The headers that let the dashboard's page read a response of this listener."""
    return [("Access-Control-Allow-Origin", allowed_origin), ("Vary", "Origin")]


def preflight_headers(allowed_origin: str) -> list[tuple[str, str]]:
    return cors_headers(allowed_origin) + [
        ("Access-Control-Allow-Methods", CORS_METHOD), ("Access-Control-Allow-Headers", ", ".join(CORS_HEADERS)),
        ("Access-Control-Max-Age", str(CORS_MAX_AGE))]


# -- events ---------------------------------------------------------------------------

def event_doc(row: dict) -> dict:
    """One journal row as an Event with one EventRecord: exactly what is pushed to
    subscribers (agent/delivery.py), without a subscription's Context."""
    return event_payload(row, None)


def buffer_exceeded_doc(event_id: int) -> dict:
    text, severity, _ = BASE_MESSAGES["EventBufferExceeded"]
    return {"@odata.type": EVENT_TYPE, "Id": str(event_id), "Name": "Event", "Events": [{
        "MemberId": "0", "EventType": "Other", "EventId": str(event_id),
        "EventTimestamp": iso(time.time()), "Severity": severity, "MessageSeverity": severity,
        "Message": text, "MessageId": f"{BASE_REGISTRY}.EventBufferExceeded", "MessageArgs": []}]}


def sse_bytes(event_id: int, doc: dict) -> bytes:
    return f"id: {event_id}\ndata: {json.dumps(doc, separators=(',', ':'))}\n\n".encode()


# -- $filter ------------------------------------------------------------------------------

class FilterError(ValueError):
    pass


FILTER_PROPERTIES = ("EventFormatType", "MessageId", "MetricReportDefinition", "OriginResource",
                     "RegistryPrefix", "ResourceType", "SubordinateResources")
_TOKEN = re.compile(r"\s*(?:(\()|(\))|'((?:[^']|'')*)'|([^\s()']+))")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FilterError(text)
        pos = m.end()
        if m.group(1):
            out.append(("(", "("))
        elif m.group(2):
            out.append((")", ")"))
        elif m.group(3) is not None:
            out.append(("str", m.group(3).replace("''", "'")))
        else:
            out.append(("word", m.group(4)))
    if len(out) > 200:
        raise FilterError(text)
    return out


def _strip_version(message_id: str) -> str:
    """'ResourceEvent.1.4.3.ResourceCreated' -> 'ResourceEvent.ResourceCreated'."""
    parts = message_id.split(".")
    return f"{parts[0]}.{parts[-1]}" if len(parts) >= 2 else message_id


class Filter:
    """A parsed ``$filter``: ``matches(row)`` decides whether a journal row is sent.

    Grammar: or-expr := and-expr ('or' and-expr)*; and-expr := unary ('and' unary)*;
    unary := 'not' unary | '(' or-expr ')' | Property ('eq'|'ne') value. Values are
    quoted ('...') or bare words. ``SubordinateResources eq true`` widens every
    OriginResource comparison to the resources below it."""

    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.subordinate = False
        self.reports = False   # EventFormatType eq 'MetricReport': such rows go out as the report itself
        self.tree = self._or()
        if self.i != len(self.toks):
            raise FilterError(text)

    def _peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def _take(self):
        tok = self._peek()
        if tok[0] is None:
            raise FilterError(self.text)
        self.i += 1
        return tok

    def _or(self):
        node = self._and()
        while self._peek() == ("word", "or"):
            self.i += 1
            node = ("or", node, self._and())
        return node

    def _and(self):
        node = self._unary()
        while self._peek() == ("word", "and"):
            self.i += 1
            node = ("and", node, self._unary())
        return node

    def _unary(self):
        kind, value = self._take()
        if (kind, value) == ("word", "not"):
            return ("not", self._unary())
        if kind == "(":
            node = self._or()
            if self._take()[0] != ")":
                raise FilterError(self.text)
            return node
        if kind != "word" or value not in FILTER_PROPERTIES:
            raise FilterError(self.text)
        op_kind, op = self._take()
        if op_kind != "word" or op not in ("eq", "ne"):
            raise FilterError(self.text)
        vkind, operand = self._take()
        if vkind not in ("word", "str") or not operand:
            raise FilterError(self.text)
        if value == "EventFormatType" and operand not in ("Event", "MetricReport"):
            raise FilterError(self.text)
        if value == "EventFormatType" and op == "eq" and operand == "MetricReport":
            self.reports = True
        if value == "SubordinateResources":
            if operand not in ("true", "false"):
                raise FilterError(self.text)
            if op == "eq" and operand == "true":
                self.subordinate = True
            return ("true",)
        return ("cmp", value, op == "eq", operand)

    def matches(self, row: dict) -> bool:
        return self._eval(self.tree, row)

    def _eval(self, node, row) -> bool:
        kind = node[0]
        if kind == "or":
            return self._eval(node[1], row) or self._eval(node[2], row)
        if kind == "and":
            return self._eval(node[1], row) and self._eval(node[2], row)
        if kind == "not":
            return not self._eval(node[1], row)
        if kind == "true":
            return True
        _, prop, eq, operand = node
        return self._compare(prop, operand, row) == eq

    def _compare(self, prop: str, operand: str, row: dict) -> bool:
        mid = row["message_id"]
        if prop == "EventFormatType":   # every row is an Event; a new report is also a MetricReport
            return operand == "Event" or telemetry.report_of(row) is not None
        if prop == "MetricReportDefinition":
            report = telemetry.report_of(row)
            return report is not None and operand.rstrip("/") == telemetry.definition_uri(report)
        if prop == "RegistryPrefix":
            return mid.split(".")[0] == operand
        if prop == "MessageId":
            return operand == mid or _strip_version(operand) == _strip_version(mid)
        if prop == "ResourceType":
            rtype = resource_type(row["origin"])
            return rtype is not None and (operand == rtype or operand.lstrip("#").split(".")[0] == rtype)
        if prop == "OriginResource":
            want, origin = operand.rstrip("/"), row["origin"].rstrip("/")
            return origin == want or (self.subordinate and origin.startswith(want + "/"))
        return False
