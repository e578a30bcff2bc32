"""Run a bench-only WSGI app under exactly the gunicorn and TLS options of
``redfish-racklet serve`` (``redfish_racklet.server.gunicorn_options``), on the state dir,
port and worker count the bench passes in BENCH_STATE, BENCH_PORT and BENCH_WORKERS."""

import os

from gunicorn.app.base import BaseApplication

from redfish_racklet.server import gunicorn_options


def run(create) -> None:
    """Serve the app ``create()`` makes (in each worker) until the bench stops it."""

    class App(BaseApplication):
        def load_config(self):
            opts = gunicorn_options(os.environ["BENCH_STATE"], "127.0.0.1", int(os.environ["BENCH_PORT"]),
                                    int(os.environ["BENCH_WORKERS"]))
            for k, v in opts.items():
                self.cfg.set(k, v)

        def load(self):
            return create()

    App().run()
