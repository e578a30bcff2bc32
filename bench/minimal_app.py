"""The baseline of the throughput benchmark: a minimal Flask app returning fixed JSON,
run under exactly the gunicorn and TLS options that ``redfish-racklet serve`` uses."""

import os

from flask import Flask, Response

import service_options  # bench/service_options.py: serve's gunicorn and TLS options

BODY = open(os.environ["BENCH_BODY"], "rb").read()
HEADERS = {"OData-Version": "4.0"}
if os.environ.get("BENCH_EXTRA_HEADERS") == "1":  # experiment: the header set of the service
    from redfish_racklet.web import EVERY_RESPONSE
    HEADERS = dict(EVERY_RESPONSE, Allow="GET, HEAD, PATCH", ETag='"0123456789abcdef01234567"',
                   Link="<https://redfish.dmtf.org/schemas/v1/ComputerSystem.v1_27_0.json>; rel=describedby")


def create():
    app = Flask("minimal")

    @app.get("/redfish/v1/Systems/Unit1")
    def unit1():
        return Response(BODY, content_type="application/json; charset=utf-8", headers=HEADERS)

    return app


if __name__ == "__main__":
    service_options.run(create)
