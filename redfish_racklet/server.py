"""``serve``: one command that runs the rack agent and the HTTPS API (gunicorn) together.

The serve process holds an exclusive lock on the state directory (so a second
``serve`` refuses to start), starts the agent, waits until it answers, then runs
the gunicorn arbiter in-process; a thread starts a new agent if the agent dies. On
SIGINT/SIGTERM gunicorn stops its workers and the agent is stopped after it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from gunicorn.app.base import BaseApplication

from . import pki
from .agent import SOCKET_NAME

LOCK_NAME = "serve.lock"
AGENT_START_TIMEOUT = 15.0
AGENT_POLL_SECONDS = 0.5      # how often serve looks whether its agent still runs
AGENT_BACKOFF_MIN, AGENT_BACKOFF_MAX = 1.0, 30.0
AGENT_STABLE_SECONDS = 60.0   # an agent that ran this long resets the back-off


class StateDirBusy(Exception):
    pass


def lock_state_dir(state_dir: str) -> int:
    """Hold an exclusive lock for the life of this process; the fd must stay open."""
    path = os.path.join(state_dir, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StateDirBusy(f"another redfish-racklet serve (pid {holder}) is already running on "
                           f"{state_dir}; stop it first or use another --state-dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def lock_holder(state_dir: str) -> int | None:
    """The pid written in the state directory's lock while a process holds it (``serve``,
    or the API's gunicorn arbiter under systemd: deploy/gunicorn.conf.py takes it); None
    when nobody does."""
    try:
        fd = os.open(os.path.join(state_dir, LOCK_NAME), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def start_agent(state_dir: str, manifest_path: str | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "redfish_racklet", "agent", "--state-dir", state_dir]
    if manifest_path:
        cmd += ["--manifest", manifest_path]
    # The agent reloads our workers (SIGHUP) after a factory reset: tell it who we are.
    # Its own process group: a Ctrl-C at the terminal stops serve, and serve stops the
    # agent after the API (the supervisor must not see a dying agent and start another).
    proc = subprocess.Popen(cmd, env=dict(os.environ, RACKLET_SERVE_PID=str(os.getpid())), process_group=0)
    sock_path = os.path.join(state_dir, SOCKET_NAME)
    deadline = time.monotonic() + AGENT_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the rack agent exited with status {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(sock_path)
            return proc
        except OSError:
            time.sleep(0.02)
    proc.terminate()
    raise RuntimeError("the rack agent did not start")


class AgentSupervisor(threading.Thread):
    """Keeps the rack agent running under ``serve``, as systemd's Restart= does for the
    units: when the agent dies (a crash, an OOM kill, kill -9), a new one is started after
    a back-off (1 s, doubling to 30 s; back to 1 s once one ran for a minute). The new
    agent re-reads the hardware and the store and ends what the dead one left half done
    (tasks, slot writes). The API keeps answering meanwhile; what needs the agent gets 503.

    gunicorn's arbiter reaps every child of this process, the agent too, so the exit
    status may read as 0: the log says "exited", not why."""

    def __init__(self, state_dir: str, manifest_path: str | None, proc: subprocess.Popen):
        super().__init__(name="agent-supervisor", daemon=True)
        self.state_dir, self.manifest_path, self.proc = state_dir, manifest_path, proc
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        backoff = AGENT_BACKOFF_MIN
        started = time.monotonic()
        while not self.stopping.wait(AGENT_POLL_SECONDS):
            if self.proc.poll() is None:
                if time.monotonic() - started > AGENT_STABLE_SECONDS:
                    backoff = AGENT_BACKOFF_MIN
                continue
            print(f"redfish-racklet: the rack agent (pid {self.proc.pid}) exited; starting a new one "
                  f"in {backoff:g} s", file=sys.stderr, flush=True)
            if self.stopping.wait(backoff):
                return
            with self.lock:
                if self.stopping.is_set():
                    return
                try:
                    self.proc = start_agent(self.state_dir, self.manifest_path)
                    started = time.monotonic()
                    print(f"redfish-racklet: the rack agent runs again (pid {self.proc.pid})",
                          file=sys.stderr, flush=True)
                except RuntimeError as e:
                    print(f"redfish-racklet: {e}", file=sys.stderr, flush=True)
            backoff = min(backoff * 2, AGENT_BACKOFF_MAX)

    def stop(self) -> None:
        """Stop supervising, then stop the agent (an agent being started is waited for)."""
        self.stopping.set()
        with self.lock:
            stop_agent(self.proc)


def stop_agent(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# TLS 1.2: forward secrecy (ECDHE) and AEAD ciphers only, for EC or RSA server keys (a
# replaced certificate may be RSA). TLS 1.3's suites are all AEAD with (EC)DHE.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL"


def tls_context(state_dir: str, require_client_cert: bool = False) -> ssl.SSLContext:
    """The HTTPS listener's context: TLS 1.2 and 1.3 only, the server's cipher order, no
    compression, no renegotiation; a client certificate is asked for and verified
    against the client CA alone (required with ``require_client_cert``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.load_cert_chain(os.path.join(state_dir, pki.SERVER_CERT), os.path.join(state_dir, pki.SERVER_KEY))
    client_ca = os.path.join(state_dir, pki.CLIENT_CA_CERT)
    if require_client_cert or os.path.exists(client_ca):  # serve makes it (ensure_client_ca)
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return ctx


class TLSContexts:
    """gunicorn's ``ssl_context`` hook, called for every new connection: one context per
    worker, rebuilt when the key or certificate files change on disk.

    That is how a new HTTPS certificate (ReplaceCertificate, factory reset) takes
    effect: the files are swapped atomically, the next connection gets the new
    certificate, connections already open keep theirs, and no worker restarts (with
    reuse_port a restarting worker can drop connections queued on its socket). A key
    and certificate that do not match yet (between the two renames) are refused and the
    current context is kept until they do."""

    FILES = (pki.SERVER_CERT, pki.SERVER_KEY, pki.CLIENT_CA_CERT)

    def __init__(self, state_dir: str, require_client_cert: bool):
        self.state_dir, self.require = state_dir, require_client_cert
        self.stamp: tuple | None = None
        self.context: ssl.SSLContext | None = None

    def _stamp(self) -> tuple:
        out = []
        for name in self.FILES:
            try:
                st = os.stat(os.path.join(self.state_dir, name))
                out.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def get(self) -> ssl.SSLContext:
        stamp = self._stamp()
        if stamp != self.stamp or self.context is None:
            try:
                self.context = tls_context(self.state_dir, self.require)
                self.stamp = stamp
            except (ssl.SSLError, OSError):
                if self.context is None:
                    raise
        return self.context

    def hook(self):
        def ssl_context(conf, default_factory):  # gunicorn wants a function of arity 2
            return self.get()
        return ssl_context


class _Gunicorn(BaseApplication):
    def __init__(self, state_dir: str, options: dict, require_client_cert: bool = False):
        self.state_dir = state_dir
        self.options = options
        self.require_client_cert = require_client_cert
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from .app import create_app
        return create_app({"STATE_DIR": self.state_dir, "REQUIRE_CLIENT_CERT": self.require_client_cert})


def gunicorn_options(state_dir: str, bind: str, port: int, workers: int,
                     require_client_cert: bool = False) -> dict:
    host = f"[{bind}]" if ":" in bind else bind

    def post_worker_init(worker):
        # With reuse_port each worker binds its own listening socket, so the service
        # is reachable once the first worker is up: say so then, once.
        if worker.age != 1:
            return
        print(f"redfish-racklet: listening on https://{host}:{port} "
              f"(state dir {state_dir}, CA {os.path.join(state_dir, 'ca.pem')})",
              file=sys.stderr, flush=True)

    def child_exit(server, worker):
        # a worker's live gauges go with it (prometheus_client multiprocess mode)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess
            multiprocess.mark_process_dead(worker.pid)

    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "redfish_racklet.http_errors.RedfishWorker",  # gthread, Redfish error pages
        "threads": 4,
        "reuse_port": True,
        "keepalive": 15,
        "timeout": 60,
        "graceful_timeout": 5,
        "certfile": os.path.join(state_dir, "server.pem"),
        "keyfile": os.path.join(state_dir, "server-key.pem"),
        "ssl_context": TLSContexts(state_dir, require_client_cert).hook(),
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "control_socket_disable": True,
        "proc_name": "redfish-racklet",
        "post_worker_init": post_worker_init,
        "child_exit": child_exit,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
    }


def start_sse(state_dir: str, bind: str, port: int, require_client_cert: bool,
              api_port: int | None = None) -> subprocess.Popen:
    """The Server-Sent Events listener (sse_server.py): a process of its own, so that streams
    never hold a gunicorn worker thread. ``api_port``: the API's, whose pages (the dashboard,
    another origin for the listener) may read the stream through CORS."""
    cmd = [sys.executable, "-m", "redfish_racklet.sse_server", "--state-dir", state_dir, "--bind", bind,
           "--port", str(port)]
    if api_port:
        cmd += ["--api-port", str(api_port)]
    if require_client_cert:
        cmd.append("--require-client-cert")
    return subprocess.Popen(cmd)


def start_metrics(state_dir: str, bind: str, port: int, require_client_cert: bool) -> subprocess.Popen:
    """The OpenMetrics endpoint (metrics_server.py): a process of its own, like the SSE
    listener; it reads the store and the API workers' metric files."""
    cmd = [sys.executable, "-m", "redfish_racklet.metrics_server", "--state-dir", state_dir, "--bind", bind,
           "--port", str(port)]
    return subprocess.Popen(cmd + (["--require-client-cert"] if require_client_cert else []))


MULTIPROC_DIR = "prometheus"   # under a runtime directory: the API workers' metric files


def systemd_runtime_dir() -> str | None:
    """The unit's ``RuntimeDirectory=`` (systemd's $RUNTIME_DIRECTORY, its first entry), if any."""
    return os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or None


def prepare_multiproc_dir(runtime_dir: str | None = None) -> str:
    """PROMETHEUS_MULTIPROC_DIR for the API workers' HTTP metrics: ``runtime_dir``/prometheus,
    emptied (the files of workers that are gone would otherwise pile up), or without one a
    new private directory in /dev/shm. Never in the state directory: prometheus_client
    memory-maps these files and grows them, and a write into a mapped page the file system
    has no room for is a SIGBUS that kills the worker -- a full state disk must give 507s,
    not dead workers; and they change at every request, wear an SD card has no need of."""
    if runtime_dir:   # (no prometheus_client import before the variable is set: it picks its mode once)
        path = os.path.join(runtime_dir, MULTIPROC_DIR)
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.makedirs(path, mode=0o700)
    else:
        shm = "/dev/shm"
        parent = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()
        remove_stale_multiproc_dirs(parent)
        path = tempfile.mkdtemp(prefix=f"{MULTIPROC_PREFIX}{os.getpid()}-", dir=parent)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


MULTIPROC_PREFIX = "redfish-racklet-metrics-"   # then serve's pid: whose directory it is


def remove_stale_multiproc_dirs(parent: str) -> list[str]:
    """Remove the metrics directories that a ``serve`` killed with -9 left in ``parent``:
    those of this user whose serve pid is gone. Returns what was removed."""
    removed = []
    for name in os.listdir(parent):
        if not name.startswith(MULTIPROC_PREFIX):
            continue
        path = os.path.join(parent, name)
        pid = name[len(MULTIPROC_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or os.lstat(path).st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        except OSError:   # gone meanwhile, or a pid of another user's: not ours to judge
            continue
    return removed


def serve(state_dir: str, bind: str, port: int, manifest_path: str | None, workers: int,
          require_client_cert: bool = False, sse_port: int | None = None, metrics_port: int | None = None,
          metrics_bind: str = "127.0.0.1", metrics_client_cert: bool = False) -> int:
    """HTTPS only: the service has no plain-HTTP listener at all (not even on loopback).
    ``sse_port``: the SSE listener's (default ``port`` + 1; 0: none); ``metrics_port``: the
    metrics endpoint's (default ``port`` + 2; 0: none), on ``metrics_bind`` (mTLS if that is not
    loopback, or if ``metrics_client_cert``)."""
    lock_fd = lock_state_dir(state_dir)
    owner = os.getpid()   # gunicorn's workers are forks of this process: see the finally
    if pki.ensure_client_ca(state_dir):  # a state dir made before mTLS existed
        print(f"redfish-racklet: made the client CA {os.path.join(state_dir, pki.CLIENT_CA_CERT)}",
              file=sys.stderr)
    # before any process that imports prometheus_client; systemd's RuntimeDirectory= if any
    runtime_dir = systemd_runtime_dir()
    metrics_dir = prepare_multiproc_dir(runtime_dir)
    agent = AgentSupervisor(state_dir, manifest_path, start_agent(state_dir, manifest_path))
    agent.start()
    sse = metrics = None
    try:
        if sse_port is None:
            sse_port = port + 1 if port < 65535 else 0
        if sse_port:
            sse = start_sse(state_dir, bind, sse_port, require_client_cert, api_port=port)
        if metrics_port is None:
            metrics_port = port + 2 if port < 65534 else 0
        if metrics_port:
            metrics = start_metrics(state_dir, metrics_bind, metrics_port, metrics_client_cert)
        options = gunicorn_options(state_dir, bind, port, workers, require_client_cert)
        _Gunicorn(state_dir, options, require_client_cert).run()
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        # A worker that leaves (a reload, a restart) raises SystemExit inside run(), and
        # that unwinds through here in the worker's process too: only serve cleans up.
        if os.getpid() == owner:
            for child in (sse, metrics):
                if child is not None:
                    stop_agent(child)  # terminate, wait, kill: the same for any child
            agent.stop()
            if not runtime_dir:
                shutil.rmtree(metrics_dir, ignore_errors=True)
            os.close(lock_fd)
    return 0
