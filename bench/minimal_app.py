"""The baseline of the throughput benchmarks: a minimal Flask app returning fixed JSON,
run under exactly the gunicorn and TLS options that ``redfish-racklet serve`` uses.

Documents served: BENCH_BODY (if set) at ``/redfish/v1/Systems/Unit1`` (bench.py), and
every entry of BENCH_DOCS (if set): a JSON file ``{"path?query": "body file"}``, looked
up by the request's exact path and query string (bench_peers.py: the service root, a
System, Chassis Power and a ``$expand`` of a collection, each the service's own bytes)."""

import json
import os

from flask import Flask, Response, request

import service_options  # bench/service_options.py: serve's gunicorn and TLS options

DOCS = {}
if os.environ.get("BENCH_BODY"):
    DOCS["/redfish/v1/Systems/Unit1"] = open(os.environ["BENCH_BODY"], "rb").read()
if os.environ.get("BENCH_DOCS"):
    for key, path in json.load(open(os.environ["BENCH_DOCS"])).items():
        DOCS[key] = open(path, "rb").read()
HEADERS = {"OData-Version": "4.0"}
if os.environ.get("BENCH_EXTRA_HEADERS") == "1":  # experiment: the header set of the service
    from redfish_racklet.web import EVERY_RESPONSE
    HEADERS = dict(EVERY_RESPONSE, Allow="GET, HEAD, PATCH", ETag='"0123456789abcdef01234567"',
                   Link="<https://redfish.dmtf.org/schemas/v1/ComputerSystem.v1_27_0.json>; rel=describedby")


def create():
    app = Flask("minimal")

    @app.get("/<path:_path>")
    def document(_path):
        query = request.query_string.decode()
        body = DOCS.get(request.path + ("?" + query if query else ""))
        if body is None:
            return Response(status=404)
        return Response(body, content_type="application/json; charset=utf-8", headers=HEADERS)

    return app


if __name__ == "__main__":
    service_options.run(create)
