"""The OpenMetrics side endpoint: ``GET /metrics`` on its own port, a process of its own.

``serve`` starts it (``--metrics-port``, default the API port + 2; ``--metrics-bind``,
default 127.0.0.1). It speaks HTTPS with the API's certificate (``server.TLSContexts``).
On loopback anyone on the RMC may scrape; bound to any other address it **requires a
client certificate** from the rack's client CA (``redfish-racklet cert issue``) whose
account is enabled and not revoked — the mTLS of the API, so a Prometheus server gets a
certificate of its own.

The answer is OpenMetrics 1.0 (``application/openmetrics-text; version=1.0.0``, ending
in ``# EOF``) when the client asks for it, else the Prometheus text format 0.0.4
(``prometheus_client``'s content negotiation). It holds the rack (``metrics.RackCollector``,
read from the store at each scrape) and the API workers' HTTP metrics
(``http_metrics.py``, prometheus_client multiprocess mode: every gunicorn worker writes its
counters to ``PROMETHEUS_MULTIPROC_DIR``; this process sums them).
"""

from __future__ import annotations

import argparse
import http.server
import ipaddress
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from . import mtls
from .metrics import RackCollector
from .store import Store

log = logging.getLogger("racklet.metrics")

PATH = "/metrics"
HANDSHAKE_TIMEOUT = 10.0
def is_loopback(bind: str) -> bool:
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return bind == "localhost"


def registry_for(store: Store, with_http: bool) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RackCollector(store))
    if with_http:
        MultiProcessCollector(registry)
    return registry


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "redfish-racklet-metrics"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def setup(self):
        self.request.settimeout(HANDSHAKE_TIMEOUT)
        super().setup()

    def do_GET(self):
        if self.path.split("?", 1)[0].rstrip("/") != PATH:
            return self._plain(404, b"not found: the metrics are at /metrics\n")
        if not self.server.allowed(self.request):
            return self._plain(403, b"a client certificate of an enabled account is required\n")
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        body = encoder(self.server.registry)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        self._plain(405, b"")

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD

    def _plain(self, status: int, body: bytes) -> None:
        self.send_response(status)
        if status == 405:
            self.send_header("Allow", "GET")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        log.debug("%s " + fmt, self.client_address[0], *args)


class MetricsServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, addr, state_dir: str, require_client_cert: bool):
        from .server import TLSContexts  # the API's TLS settings and certificate reload
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.contexts = TLSContexts(state_dir, require_client_cert)
        self.contexts.get()  # fail at start, not at the first scrape
        self.require = require_client_cert
        self.store = Store(os.path.join(state_dir, "racklet.db"))
        self.registry = registry_for(self.store, bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")))
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        """In the connection's own thread: the TLS handshake (so a slow client never holds
        the accept loop), then the request."""
        try:
            request.settimeout(HANDSHAKE_TIMEOUT)
            # headers and body leave in separate writes: without this, Nagle's algorithm holds
            # the body until the client's delayed ACK (40 ms) on a keep-alive connection
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.contexts.get().wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        self.RequestHandlerClass(tls, client_address, self)

    def allowed(self, sock) -> bool:
        """Loopback: anyone. Otherwise the TLS layer required a certificate of the rack's
        client CA; here it must also belong to an enabled account and not be revoked."""
        if not self.require:
            return True
        try:
            der = sock.getpeercert(binary_form=True)
        except (ValueError, OSError):
            return False
        return bool(der) and mtls.principal_for(self.store, der, time.time()) is not None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m redfish_racklet.metrics_server",
                                description="the OpenMetrics endpoint (redfish-racklet serve starts it)")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--require-client-cert", action="store_true",
                   help="require a client certificate even on loopback (always so on other addresses)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="redfish-racklet metrics: %(message)s")
    state_dir = os.path.abspath(args.state_dir)
    try:
        server = MetricsServer((args.bind, args.port), state_dir,
                               require_client_cert=args.require_client_cert or not is_loopback(args.bind))
    except (OSError, ssl.SSLError) as e:
        print(f"redfish-racklet: the metrics endpoint could not start: {e}", file=sys.stderr)
        return 1
    host = f"[{args.bind}]" if ":" in args.bind else args.bind
    print(f"redfish-racklet: metrics on https://{host}:{args.port}{PATH}"
          f"{'' if not server.require else ' (client certificate required)'}", file=sys.stderr, flush=True)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    parent = os.getppid()

    def orphaned():  # serve died without stopping us: stop too
        while os.getppid() == parent:
            time.sleep(1.0)
        stop()
    threading.Thread(target=orphaned, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
