"""gunicorn configuration of the Redfish API when systemd (or anything but ``serve``) runs it:

    gunicorn -c /etc/redfish-racklet/gunicorn.conf.py

Every setting comes from ``redfish_racklet.server.gunicorn_options`` -- the same function
``redfish-racklet serve`` uses -- so the two ways of running the API cannot drift apart.
This file only reads where and how to listen from the environment (the unit's
``Environment=`` lines; override them with ``systemctl edit redfish-racklet-api``):

    RACKLET_STATE_DIR            state directory (default: systemd's $STATE_DIRECTORY,
                                 else /var/lib/redfish-racklet)
    RACKLET_BIND                 address to listen on (default 0.0.0.0)
    RACKLET_PORT                 HTTPS port (default 8443)
    RACKLET_WORKERS              worker processes (default 2)
    RACKLET_REQUIRE_CLIENT_CERT  1: refuse TLS handshakes without a client certificate

What ``serve`` does around gunicorn and a bare gunicorn would not, this file does too:
it empties the workers' metrics directory ($RUNTIME_DIRECTORY/prometheus: the unit's
RuntimeDirectory=, a tmpfs, never the state directory) and sets PROMETHEUS_MULTIPROC_DIR
before any worker starts, and the arbiter holds the state directory's lock (so a stray
``redfish-racklet serve`` on the same directory refuses to start).
"""

import os

from redfish_racklet.server import gunicorn_options, lock_state_dir, prepare_multiproc_dir, systemd_runtime_dir


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "yes", "true", "on")


_state_dir = os.path.abspath(os.environ.get("RACKLET_STATE_DIR")
                             or os.environ.get("STATE_DIRECTORY", "").split(":")[0]
                             or "/var/lib/redfish-racklet")
_require_client_cert = _flag("RACKLET_REQUIRE_CLIENT_CERT")

# gunicorn reads this file again on SIGHUP (a reload): the metrics directory is emptied on
# the first reading only, as `serve` does once at its start (the variable is then set).
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    prepare_multiproc_dir(systemd_runtime_dir())

globals().update(gunicorn_options(
    _state_dir,
    os.environ.get("RACKLET_BIND", "0.0.0.0"),
    int(os.environ.get("RACKLET_PORT", "8443")),
    int(os.environ.get("RACKLET_WORKERS", "2")),
    _require_client_cert,
))

# The application, as serve's _Gunicorn.load makes it (gunicorn evaluates the literal
# arguments of this call; see "wsgi_app" in gunicorn's settings).
wsgi_app = ("redfish_racklet.app:create_app("
            f"{ {'STATE_DIR': _state_dir, 'REQUIRE_CLIENT_CERT': _require_client_cert}!r})")

_lock = []   # the lock's file descriptor, open for the arbiter's whole life


def on_starting(server):
    """Take serve's state-directory lock in the arbiter (once; a reload keeps it)."""
    if not _lock:
        _lock.append(lock_state_dir(_state_dir))
