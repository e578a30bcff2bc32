"""The baseline of the throughput benchmark: a minimal Flask app returning fixed JSON,
run under exactly the gunicorn and TLS options that ``redfish-racklet serve`` uses."""

import os

from flask import Flask, Response
from gunicorn.app.base import BaseApplication

from redfish_racklet.server import gunicorn_options

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


class Minimal(BaseApplication):
    def load_config(self):
        opts = gunicorn_options(os.environ["BENCH_STATE"], "127.0.0.1", int(os.environ["BENCH_PORT"]),
                                int(os.environ["BENCH_WORKERS"]))
        for k, v in opts.items():
            self.cfg.set(k, v)

    def load(self):
        return create()


if __name__ == "__main__":
    Minimal().run()
