"""The API workers' own HTTP metrics: every request counted and timed, by route.

    racklet_http_request_duration_seconds{method, url_rule, status}   histogram
    racklet_http_request_total{method, status}                        counter

The same two families (names, labels, buckets) prometheus-flask-exporter's defaults
made, recorded straight with prometheus_client, because that exporter's per-request hook
cost about 55 us of a worker's CPU per request (measured under wrk, bench/RESULTS.md),
the largest single item of a GET: it resolves the labels by keyword on every request.
Here each (method, route, status) resolves its two label children once and keeps them.

In the workers these are prometheus_client multiprocess values (PROMETHEUS_MULTIPROC_DIR,
set by ``serve`` before any worker imports prometheus_client); ``metrics_server.py`` sums
them. Label values are bounded, so a client cannot make new series at will: the route
(``/redfish/v1/Systems/<system_id>``, not the URI; ``None`` when nothing matched), the
status, and the method if it is one HTTP defines, else ``other``.
"""

from __future__ import annotations

import time

from flask import Flask, Response, request
from prometheus_client import Counter, Histogram

METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"))
START = "racklet.t0"    # the request's start, in its WSGI environ
MAX_CHILDREN = 4096     # label combinations kept resolved (routes x methods x statuses is far less)


class HttpMetrics:
    def __init__(self, prefix: str = "racklet_"):
        # registry=None: nothing to collect in this process (metrics_server reads the files),
        # and an app made twice in one process (tests) does not register the names twice
        self.duration = Histogram(f"{prefix}http_request_duration_seconds", "Flask HTTP request duration in seconds",
                                  ("method", "url_rule", "status"), registry=None)
        self.total = Counter(f"{prefix}http_request_total", "Total number of HTTP requests",
                             ("method", "status"), registry=None)
        self._children: dict[tuple, tuple] = {}

    def init_app(self, app: Flask) -> None:
        app.before_request(self._start)
        app.after_request(self._record)

    @staticmethod
    def _start() -> None:
        request.environ[START] = time.perf_counter()

    def _record(self, response: Response) -> Response:
        req = request._get_current_object()
        started = req.environ.get(START)
        if started is None:   # answered before the hooks ran (a routing error's handler)
            started = time.perf_counter()
        method = req.method if req.method in METHODS else "other"
        rule = req.url_rule
        key = (method, rule.rule if rule is not None else None, response.status_code)
        children = self._children.get(key)
        if children is None:
            status = str(response.status_code)
            children = (self.duration.labels(method, str(key[1]), status),
                        self.total.labels(method, status))
            if len(self._children) < MAX_CHILDREN:
                self._children[key] = children
        children[0].observe(max(time.perf_counter() - started, 0.0))
        children[1].inc()
        return response
