"""The rack in a browser: the page shell ("/" and any Redfish URI a browser navigates to)
and its two static assets (``/static/racklet.js``, ``/static/racklet.css``).

The shell holds no data, so it needs no login: a browser cannot send ``X-Auth-Token`` when
it navigates. The script then fetches the JSON of the page's own path with the token it
keeps in ``sessionStorage`` and draws it (the dashboard at "/", the browsable API view
elsewhere). ``app._before`` serves the shell for a navigation (``web.prefers_html``) before
authentication; Redfish clients, which never prefer HTML, get JSON exactly as before.

The dashboard's live updates come from the EventService's SSE stream, on the listener's
own port: another origin, so the shell's CSP adds exactly that origin to connect-src
(``shell_csp``), for the host name the browser asked for.

Both routes are public deviations, declared in ``privileges.EXCEPTIONS``.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources as package_files

from flask import request
from flask_smorest import Blueprint
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response

from .. import sse
from ..privileges import exception
from ..web import PAGE_CSP, RedfishView, mark_page, page_csp
from .common import store

blp = Blueprint("browser", __name__, description="The browser shell and its assets")

# The only files served, with their types: a fixed table, so no path ever reaches the disk.
ASSETS = {
    "racklet.js": "text/javascript; charset=utf-8",
    "racklet.css": "text/css; charset=utf-8",
}
ASSET_CACHE = "public, no-cache"  # keep, but ask (ETag → 304): an RMC update changes them
HTML_TYPE = "text/html; charset=utf-8"

SHELL = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Racklet</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/racklet.css">
<script src="/static/racklet.js" defer></script>
</head>
<body>
<noscript><p>The Racklet pages need JavaScript. Redfish clients get JSON from the same
addresses (send <code>Accept: application/json</code>).</p></noscript>
</body>
</html>
""".encode()


def stream_csp(host_header: str | None, sse_port: str | None) -> str:
    """The page CSP that also lets the page fetch the SSE listener at ``sse_port`` (the store's
    meta, "" or None while no listener runs) on the host name of ``host_header``. A Host that is
    not a plain name or address adds nothing (the page then polls)."""
    name = sse.host_name(host_header)
    if name is None or not sse_port or not sse_port.isdigit() or not 0 < int(sse_port) < 65536:
        return PAGE_CSP
    return page_csp(sse.origin(name, int(sse_port)))


def shell() -> Response:
    """The page every browser navigation gets: a script and a style sheet, no data."""
    mark_page(stream_csp(request.host, store().get_meta(sse.PORT_META)))
    return Response(SHELL, 200, content_type=HTML_TYPE,
                    headers={"Cache-Control": "no-store", "Vary": "Accept"})


@functools.lru_cache(maxsize=len(ASSETS))
def asset(name: str) -> tuple[bytes, str]:
    """An asset's bytes and strong ETag, read once from the installed package."""
    data = package_files.files("redfish_racklet").joinpath("static", name).read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:24] + '"'


def etag_matches(header: str | None, tag: str) -> bool:
    """If-None-Match: a list of tags, or ``*``; weak tags compare by their value."""
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or tag in tags


@blp.route("/")
class Dashboard(RedfishView):
    entity = None  # not a registry entity: see privileges.EXCEPTIONS
    privileges = {"GET": exception("/", "GET")}

    def get(self):
        return shell()


@blp.route("/static/<name>")
class Asset(RedfishView):
    entity = None  # not a registry entity: see privileges.EXCEPTIONS
    privileges = {"GET": exception("/static/<name>", "GET")}

    def get(self, name: str):
        content_type = ASSETS.get(name)
        if content_type is None:
            raise NotFound()  # answered as InvalidURI, like any unknown path
        data, tag = asset(name)
        mark_page()
        headers = {"ETag": tag, "Cache-Control": ASSET_CACHE}
        if etag_matches(request.headers.get("If-None-Match"), tag):
            return Response(status=304, headers=headers)
        return Response(data, 200, content_type=content_type, headers=headers)
