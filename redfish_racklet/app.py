"""The application factory: ``create_app(config)`` builds the Flask app for one state dir.

It registers the blueprints listed in ``resources.BLUEPRINTS`` and nothing else,
and installs the request pipeline every route shares: query parsing,
authentication and privilege checks, Redfish-shaped errors, common headers. A browser's
navigation (a GET that prefers text/html) gets the data-free page shell of
``resources/browser.py`` first, before authentication; every other request is unchanged.
"""

from __future__ import annotations

import logging
import os
import time

from flask import Flask, current_app, g, request
from werkzeug.exceptions import HTTPException

from . import __version__, mtls, odata
from .auth import (BasicCache, PasswordCheckBusy, Principal, login, parse_basic, password_change_allows,
                   principal_of)
from .heap import IdleTrim
from .messages import RedfishError, message
from .resources import BLUEPRINTS, browser, openapi
from .store import Store, is_full
from .web import add_headers, common_headers, json_response, prefers_html

log = logging.getLogger("racklet.api")

MAX_JSON_BYTES = 1024 * 1024
DRAIN_MAX_BYTES = 8 * MAX_JSON_BYTES


class RackletFlask(Flask):
    """Flask, minus a per-call coroutine check: the service has no async views."""

    def ensure_sync(self, func):
        return func


def create_app(config: dict) -> Flask:
    """Config keys: ``STATE_DIR`` (required)."""
    app = RackletFlask("redfish_racklet", static_folder=None)
    app.config.update(
        API_TITLE="redfish-racklet",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.1.0",
        MAX_CONTENT_LENGTH=MAX_JSON_BYTES,
        JSON_SORT_KEYS=False,
    )
    app.config.update(config)
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    state_dir = app.config["STATE_DIR"]
    app.extensions["racklet_store"] = Store(os.path.join(state_dir, "racklet.db"))
    app.extensions["racklet_basic_cache"] = BasicCache(app.config.get("BASIC_AUTH_CACHE_SECONDS", 60.0))
    api = openapi.RackletApi(app, spec_kwargs=openapi.spec_kwargs(app))
    for blp in BLUEPRINTS:
        api.register_blueprint(blp)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Under serve: every request counted and timed by route, summed across workers by
        # metrics_server (first, so that its clock starts before authentication). Imported
        # here: prometheus_client picks its multiprocess mode once, at import.
        from .http_metrics import HttpMetrics
        HttpMetrics().init_app(app)
    app.before_request(_before)
    app.after_request(_after)
    IdleTrim().init_app(app)
    app.register_error_handler(RedfishError, _redfish_error)
    app.register_error_handler(PasswordCheckBusy, _password_check_busy)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    app.wsgi_app = add_headers(app.wsgi_app)
    return app


def store() -> Store:
    from flask import current_app
    return current_app.extensions["racklet_store"]


_UNDECLARED = object()
_NO_QUERY = odata.Query()


def _privileges_for(rule, method: str):
    from flask import current_app
    cache = current_app.extensions.setdefault("racklet_privileges", {})
    key = (rule.endpoint, "GET" if method in ("HEAD", "OPTIONS") else method)
    needed = cache.get(key, _UNDECLARED)
    if needed is _UNDECLARED:
        view = current_app.view_functions.get(rule.endpoint)
        decl = getattr(getattr(view, "view_class", None), "privileges", {})
        if key[1] not in decl:
            # A route without a declaration is a bug; refuse rather than guess.
            raise RedfishError.of(500, "InternalError")
        needed = cache[key] = decl[key[1]]
    return needed


def authenticate() -> Principal | None:
    s = store()
    principal = mtls.principal(request, s)  # a verified client certificate (mtls.py)
    if principal is not None:
        return principal
    token = request.headers.get("X-Auth-Token")
    if token:
        sess = s.session_by_token(token, time.time())
        if sess is None or not sess["enabled"]:
            return None
        return principal_of(sess, sess["id"])
    creds = parse_basic(request.headers.get("Authorization", ""))
    if creds:  # auth.login: lockout, audit, and the cache of good Basic credentials
        acct = login(s, *creds, via="HTTP Basic", client=request.remote_addr or "",
                     cache=current_app.extensions["racklet_basic_cache"])
        if acct:
            return principal_of(acct)
    return None


def is_page_path(path: str) -> bool:
    """The URIs a browser may navigate to and get the page shell: "/" and the Redfish tree,
    except the OpenAPI document (a file to read or save, not a resource to draw)."""
    return path == "/" or path == "/redfish" or (path.startswith("/redfish/") and path != openapi.URI)


def _before():
    req = request._get_current_object()  # one context lookup, not one per attribute
    if req.method in ("GET", "HEAD") and is_page_path(req.path) and prefers_html(req.headers.get("Accept")):
        return browser.shell()  # a browser's navigation: the page fetches the JSON itself
    rule = req.url_rule
    if rule is None:
        return None  # routing error: the error handler answers
    ctx = g._get_current_object()
    headers = req.headers
    version = headers.get("OData-Version")
    if version is not None and version.strip() != "4.0":
        raise RedfishError.of(412, "HeaderInvalid", f"OData-Version: {version}")
    method = req.method
    if req.environ.get("QUERY_STRING") and method in ("GET", "HEAD"):
        ctx.query = odata.parse(req.args)
    else:
        ctx.query = _NO_QUERY
    needed = _privileges_for(rule, method)
    has_credentials = "X-Auth-Token" in headers or "Authorization" in headers
    ctx.principal = authenticate() if (needed is not None or has_credentials) else None
    if ctx.principal is not None and ctx.principal.password_change_required and \
            not password_change_allows(ctx.principal, method, req.path):
        if needed is not None:  # DSP0266: only the password change until it is done
            raise RedfishError.of(403, "PasswordChangeRequired", ctx.principal.account_uri)
        ctx.principal = None  # a public resource: as for anyone
    if needed is None:
        return None  # public resource; credentials, if valid, only widen $expand
    if ctx.principal is None:
        raise RedfishError.of(401, "NoValidSession",
                              headers={"WWW-Authenticate": 'Basic realm="Redfish", charset="UTF-8"'})
    if not ctx.principal.satisfies(needed):
        raise RedfishError.of(403, "InsufficientPrivilege")
    return None


def _after(resp):
    if "Allow" not in resp.headers:  # not made by json_response (XML, 204, 304)
        resp.headers.extend(common_headers())
    return resp


def _password_check_busy(e: PasswordCheckBusy):
    return _redfish_error(RedfishError.of(503, "ServiceTemporarilyUnavailable", 1, headers={"Retry-After": "1"}))


def _redfish_error(e: RedfishError):
    return json_response(e.body(), e.status, e.headers)


def _http_error(e: HTTPException):
    if e.code == 404:
        err = RedfishError.of(404, "InvalidURI", request.path)
    elif e.code == 405:
        allow = ", ".join(sorted(set(e.valid_methods or []) - {"OPTIONS"}))
        err = RedfishError.of(405, "OperationNotAllowed", headers={"Allow": allow})
    elif e.code == 413:
        _drain_refused_body()
        err = RedfishError.of(413, "PayloadTooLarge", headers={"Connection": "close"})
    elif e.code == 400:
        err = RedfishError.of(400, "UnrecognizedRequestBody")
    else:
        err = RedfishError.of(e.code or 500, "GeneralError")
    return _redfish_error(err)


def _drain_refused_body() -> None:
    """Read and drop a refused body of moderate size before answering 413: a client still
    sending when the server closes gets a TCP reset instead of the 413 (a race, seen under
    load). Beyond DRAIN_MAX_BYTES the connection is closed without reading it."""
    length = request.content_length or 0
    if length > DRAIN_MAX_BYTES:
        return
    stream = request.environ.get("wsgi.input")
    while stream is not None and length > 0:
        chunk = stream.read(min(65536, length))
        if not chunk:
            break
        length -= len(chunk)


def _unexpected(e: Exception):
    if is_full(e):
        # the transaction was rolled back: nothing of the request was stored
        log.error("%s %s: the store's disk is full", request.method, request.path)
        return _redfish_error(RedfishError(507, [message("InsufficientStorage")],
                                           text="the state store's disk is full: the change was not stored"))
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _redfish_error(RedfishError.of(500, "InternalError"))
