"""The Redfish HTTP layer shared by every resource module.

- ``RedfishView``: a MethodView whose GET returns a plain dict; the dict is turned
  into a Redfish response here (query options, ETag, headers), and ``$expand`` can
  call any view's GET internally the same way.
- ``json_body`` / ``check_patch`` / ``check_tree`` and the strict field types: the one
  path for request bodies, so every resource refuses bad input with the same Base
  messages (they live in ``bodies``; resources import them from here).
"""

from __future__ import annotations

import functools
import json

from flask import current_app, g, request
from flask.views import MethodView
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.wrappers import Response

from . import odata
# The request-body helpers live in ``bodies``; resources import them from here.
from .bodies import (Invalid, StrictBoolean, StrictInteger, StrictNumber,  # noqa: F401
                     action_parameter, check_patch, check_tree, is_annotation, json_body, one_of,
                     value_error, walk_tree)
from .messages import RedfishError

JSON_TYPE = "application/json; charset=utf-8"
# Routes declare their privileges from ``privileges`` (generated from the DMTF registry);
# this one set is for checks inside a handler (e.g. who may see others' sessions).
CONFIGURE_MANAGER = [["ConfigureManager"]]


class RedfishView(MethodView):
    """Base of every route. Subclasses declare ``privileges = {METHOD: [[...]]}``.

    ``cacheable = True`` declares that the view's GET is a function of the store and
    the caller only (no clock, no randomness, nothing from the request but the path):
    its rendered response is then reused until the next write to the store (see
    ``Store.cached``), which is exact. A GET with query options ($expand, $select,
    $top/$skip, only) is reused the same way when every resource it inlined is
    cacheable too (``_cached_query``).
    """

    privileges: dict[str, list[list[str]] | None] = {}
    cacheable = False

    def dispatch_request(self, **kwargs):
        req = request._get_current_object()
        if self.cacheable and req.method in ("GET", "HEAD") and _plain_get(req):
            principal = g.get("principal")
            key = ("GET", req.path, principal.username if principal else None)
            body, headers = current_app.extensions["racklet_store"].cached(
                key, lambda: _rendered(super(RedfishView, self).dispatch_request(**kwargs)))
            return json_response(body, 200, headers)
        if self.cacheable and req.method in ("GET", "HEAD") and "If-None-Match" not in req.headers:
            q = g.get("query")
            if q is not None and not q.empty:
                return self._cached_query(req, q, kwargs)
        result = super().dispatch_request(**kwargs)
        if isinstance(result, dict):
            return render(result)
        return result

    def _cached_query(self, req, q: odata.Query, kwargs) -> Response:
        """A GET with query options, from the read cache when it can be.

        Keyed like a plain GET (path, caller) plus the caller's role and the parsed
        query, in a per-thread bucket that ``Store.cached`` drops at the next write to
        the store (so never stale). Members that ``$expand`` inlines were checked
        against the caller's privileges, hence the role in the key. A body is kept only
        when every resource inlined into it is ``cacheable`` (no clock, no Host header)
        and it is not too large; the bucket's total size is bounded (``QueryBodies``).
        """
        principal = g.get("principal")
        key = (req.path, principal.username if principal else None,
               principal.role if principal else None, _query_key(q))
        bucket = current_app.extensions["racklet_store"].cached(QueryBodies.KEY, QueryBodies)
        hit = bucket.get(key)
        if hit is not None:
            return json_response(hit[0], 200, hit[1])
        g.fetched_uncacheable = False
        result = super().dispatch_request(**kwargs)
        if not isinstance(result, dict):
            return result
        doc = with_etag(result)
        doc, tag = _queried(doc, doc["@odata.etag"], q)
        body, headers = dumps(doc), _headers(doc, tag, None)
        if not g.fetched_uncacheable:
            bucket.put(key, body, headers)
        return json_response(body, 200, headers)


class QueryBodies(dict):
    """The rendered bodies of GETs with query options, of one thread and one store
    generation: the value ``Store.cached`` keeps under ``KEY`` (it is thread-local and
    replaced at the next write, so filling it here is safe). Bounded in bytes: an
    ``$expand`` can be large and a client can vary the query endlessly."""

    KEY = ("GET?",)
    MAX_BYTES = 1 << 20  # per thread: at most ~8 MiB for 2 workers x 4 threads
    MAX_BODY = 1 << 18

    size = 0

    def put(self, key, body: bytes, headers: dict) -> None:
        if len(body) > self.MAX_BODY:
            return
        if self.size + len(body) > self.MAX_BYTES:
            self.clear()
            self.size = 0
        self[key] = (body, headers)
        self.size += len(body)


def _query_key(q: odata.Query) -> tuple:
    """A hashable form of a parsed query (its ``select`` is a list of lists)."""
    select = tuple(map(tuple, q.select)) if q.select is not None else None
    return (select, q.expand, q.levels, q.top, q.skip, q.only)


def _plain_get(req) -> bool:
    return not req.environ.get("QUERY_STRING") and "If-None-Match" not in req.headers


def _rendered(doc: dict) -> tuple[bytes, dict]:
    """Body and resource headers of a GET without query options (the common case)."""
    if "@odata.etag" in doc:
        doc = {k: v for k, v in doc.items() if k != "@odata.etag"}
    body, tag = _body_with_etag(doc)
    return body, _headers(doc, tag, None)


EVERY_RESPONSE = (  # OData's version and the security headers
    ("OData-Version", "4.0"),
    ("Strict-Transport-Security", "max-age=31536000"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


# Browser pages (the shell and its assets, resources/browser.py) load a script and a style
# sheet from this origin and fetch the JSON; nothing inline. The only other origin is the SSE
# listener's, which the shell adds to connect-src (``page_csp``). They set their own
# Cache-Control (static assets are revalidated by ETag).
def page_csp(connect: str = "") -> str:
    """The page CSP; ``connect``: one more origin the page may fetch from (the SSE stream)."""
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self'{' ' + connect if connect else ''}; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'self'")


PAGE_CSP = page_csp()
PAGE_RESPONSE = tuple((name, PAGE_CSP if name == "Content-Security-Policy" else value)
                      for name, value in EVERY_RESPONSE if name != "Cache-Control")
PAGE_ENVIRON_KEY = "racklet.page"  # set in the WSGI environ by a view that answers with a page: its CSP


def mark_page(csp: str = PAGE_CSP) -> None:
    """Declare this request's response a browser page: ``add_headers`` then gives it the
    page CSP ``csp`` instead of the JSON one (two CSP headers would be enforced together)."""
    request.environ[PAGE_ENVIRON_KEY] = csp


@functools.lru_cache(maxsize=16)
def page_response(csp: str) -> tuple[tuple[str, str], ...]:
    """PAGE_RESPONSE with ``csp`` as its one Content-Security-Policy."""
    return tuple((name, csp if name == "Content-Security-Policy" else value) for name, value in PAGE_RESPONSE)


def prefers_html(accept: str | None) -> bool:
    """Is this a browser's navigation? True when text/html is listed explicitly and ranked
    above JSON (application/json, else application/*, else */*). No Accept, ``*/*`` or
    ``application/json`` keep JSON, so Redfish clients never see a page."""
    if not accept or "text/html" not in accept:
        return False  # the fast path of every API request
    ranks: dict[str, float] = {}
    for item in accept.split(","):
        kind, _, params = item.partition(";")
        ranks.setdefault(kind.strip().lower(), _quality(params))
    html = ranks.get("text/html", 0.0)
    json_q = next((ranks[k] for k in ("application/json", "application/*", "*/*") if k in ranks), 0.0)
    return html > 0 and html > json_q


def _quality(params: str) -> float:
    """The q= of one media range's parameters (1 when absent, 0 when malformed)."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def common_headers() -> list[tuple[str, str]]:
    """Allow, for the matched route (EVERY_RESPONSE are added by ``add_headers``)."""
    rule = request.url_rule
    return [("Allow", _allow(rule.methods))] if rule is not None else []


def add_headers(wsgi_app):
    """WSGI middleware: the headers every response carries, added as raw tuples (a browser
    page's set when its view called ``mark_page``)."""
    def app(environ, start_response):
        def start(status, headers, exc_info=None):
            csp = environ.get(PAGE_ENVIRON_KEY)
            headers.extend(EVERY_RESPONSE if csp is None else page_response(csp))
            return start_response(status, headers, exc_info)
        return wsgi_app(environ, start)
    return app


def _allow(methods) -> str:
    return _allow_header(frozenset(methods))


@functools.lru_cache(maxsize=64)
def _allow_header(methods: frozenset) -> str:
    return ", ".join(sorted(methods - {"OPTIONS"}))


def dumps(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(doc: dict | bytes, status: int = 200, headers: dict | None = None) -> Response:
    hdrs = common_headers()
    if headers:
        allow = headers.get("Allow")
        if allow is not None:  # a 405 names the methods of the URI, not of a matched rule
            hdrs = [h for h in hdrs if h[0] != "Allow"]
        hdrs.extend(headers.items())
    body = doc if isinstance(doc, bytes) else dumps(doc)
    return Response(body, status=status, headers=hdrs, content_type=JSON_TYPE)


def fetch_internal(uri: str) -> dict | None:
    """GET a resource of this service without HTTP (used by $expand and only)."""
    path = uri.split("?", 1)[0].rstrip("/") or "/"
    adapter = current_app.url_map.bind("localhost")
    try:
        endpoint, args = adapter.match(path, method="GET")
    except (NotFound, MethodNotAllowed):
        return None
    view = current_app.view_functions.get(endpoint)
    cls = getattr(view, "view_class", None)
    if cls is None or not hasattr(cls, "get"):
        return None
    if not getattr(cls, "cacheable", False):
        g.fetched_uncacheable = True  # the body inlining it must not be reused
    needed = cls.privileges.get("GET")
    if needed is not None and (g.get("principal") is None or not g.principal.satisfies(needed)):
        return None  # the caller may not read it: leave the link as it is
    try:
        doc = cls().get(**args)
    except RedfishError:
        return None
    if not isinstance(doc, dict):
        return None
    return with_etag(doc)


def with_etag(doc: dict) -> dict:
    doc = {k: v for k, v in doc.items() if k != "@odata.etag"}
    doc["@odata.etag"] = odata.etag(dumps(doc))
    return doc


def _body_with_etag(doc: dict) -> tuple[bytes, str]:
    """Serialise once: the ETag is the hash of the body without it, spliced in at the end.
    Same value as ``with_etag`` (same serialisation of the same dict)."""
    raw = dumps(doc)
    tag = odata.etag(raw)  # '"<hex>"': JSON-escaped by hand, it holds no other characters
    return raw[:-1] + b',"@odata.etag":"\\' + tag[:-1].encode() + b'\\""}', tag


def describedby(doc: dict) -> str | None:
    return _describedby(doc.get("@odata.type", ""))


@functools.lru_cache(maxsize=256)
def _describedby(t: str) -> str | None:
    parts = t.lstrip("#").split(".")
    if len(parts) == 3:
        return f"https://redfish.dmtf.org/schemas/v1/{parts[0]}.{parts[1]}.json"
    if len(parts) == 2:
        return f"https://redfish.dmtf.org/schemas/v1/{parts[0]}.json"
    return None


def render(doc: dict, status: int = 200, extra_headers: dict | None = None) -> Response:
    """A GET (or PATCH/POST result) document as a Redfish response."""
    q: odata.Query = g.get("query") or odata.Query()
    if q.empty and request.headers.get("If-None-Match") is None:
        body, headers = _rendered(doc)  # the common case, kept cheap
        if extra_headers:
            headers = dict(headers, **extra_headers)
        return json_response(body, status, headers)
    doc = with_etag(doc)
    tag = doc["@odata.etag"]
    if request.method in ("GET", "HEAD") and status == 200:
        inm = request.headers.get("If-None-Match")
        if inm and q.empty and tag in [t.strip() for t in inm.split(",")]:
            return Response(status=304, headers={"ETag": tag})
        doc, tag = _queried(doc, tag, q)
    return json_response(doc, status, _headers(doc, tag, extra_headers))


def _queried(doc: dict, tag: str, q: odata.Query) -> tuple[dict, str]:
    """A GET's document (with its ETag ``tag``) with its query options applied, and the
    ETag of the answer (that of the resource, or of the one member ``only`` returns)."""
    if q.only:
        if not odata.is_collection(doc):
            raise RedfishError.of(400, "QueryNotSupportedOnResource")
        if len(doc["Members"]) == 1:
            member = fetch_internal(doc["Members"][0]["@odata.id"])
            if member is not None:
                doc, tag = member, member["@odata.etag"]
    if (q.top is not None or q.skip is not None) and not odata.is_collection(doc):
        raise RedfishError.of(400, "QueryNotSupportedOnResource")
    if odata.is_collection(doc):
        doc = odata.page(doc, q)
    if q.expand:
        doc = odata.Expander(fetch_internal).expand(doc, q.expand, q.levels)
    if q.select:
        doc = odata.select(doc, q.select)
    return doc, tag


@functools.lru_cache(maxsize=256)
def _link_header(odata_type: str) -> str | None:
    link = _describedby(odata_type)
    return f"<{link}>; rel=describedby" if link else None


def _headers(doc: dict, tag: str, extra: dict | None) -> dict:
    headers = {"ETag": tag}
    link = _link_header(doc.get("@odata.type", ""))
    if link:
        headers["Link"] = link
    headers.update(extra or {})
    return headers


# -- preconditions ----------------------------------------------------------------------

def check_if_match(current: dict) -> None:
    """412 when If-Match names an ETag other than the resource's current one."""
    header = request.headers.get("If-Match")
    if header is None:
        return
    tags = [t.strip() for t in header.split(",")]
    if "*" in tags:
        return
    if with_etag(current)["@odata.etag"] not in tags:
        raise RedfishError.of(412, "PreconditionFailed")


def odata_id(*parts: str) -> dict:
    return {"@odata.id": "/".join(("/redfish/v1",) + parts)}


def collection(odata_type: str, name: str, uri: str, member_uris: list[str]) -> dict:
    return {
        "@odata.id": uri,
        "@odata.type": f"#{odata_type}.{odata_type}",
        "Name": name,
        "Members": [{"@odata.id": m} for m in member_uris],
        "Members@odata.count": len(member_uris),
    }
