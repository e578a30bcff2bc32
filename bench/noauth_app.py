"""The "no auth check at all" side of bench_auth.py over HTTPS: the real app (``create_app``
on the bench's state dir) with one change — ``GET /redfish/v1/Systems/Unit1`` declared
NO_AUTH in the app's privilege cache, so ``_before`` skips authentication and the
privilege check — under exactly the gunicorn and TLS options of ``redfish-racklet serve``.
A bench-only program: the service itself has no switch that turns authentication off."""

import os


from redfish_racklet.app import create_app
import service_options  # bench/service_options.py: serve's gunicorn and TLS options

URI = "/redfish/v1/Systems/Unit1"


def create():
    app = create_app({"STATE_DIR": os.environ["BENCH_STATE"]})
    endpoint, _ = app.url_map.bind("127.0.0.1").match(URI, method="GET")
    app.extensions.setdefault("racklet_privileges", {})[(endpoint, "GET")] = None
    return app


if __name__ == "__main__":
    service_options.run(create)
