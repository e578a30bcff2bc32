"""``serve``: one command that runs the rack agent and the HTTPS API (gunicorn) together.

The serve process holds an exclusive lock on the state directory (so a second
``serve`` refuses to start), starts the agent, waits until it answers, then runs
the gunicorn arbiter in-process. On SIGINT/SIGTERM gunicorn stops its workers and
the agent is stopped after it.
"""

from __future__ import annotations

import fcntl
import os
import socket
import ssl
import subprocess
import sys
import time

from gunicorn.app.base import BaseApplication

from .agent import SOCKET_NAME

LOCK_NAME = "serve.lock"
AGENT_START_TIMEOUT = 15.0


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


def start_agent(state_dir: str, manifest_path: str | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "redfish_racklet", "agent", "--state-dir", state_dir]
    if manifest_path:
        cmd += ["--manifest", manifest_path]
    proc = subprocess.Popen(cmd)
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


def stop_agent(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ssl_context(conf, default_factory):
    ctx = default_factory()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")  # TLS 1.2 suites; 1.3 suites are all AEAD
    return ctx


class _Gunicorn(BaseApplication):
    def __init__(self, state_dir: str, options: dict):
        self.state_dir = state_dir
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from .app import create_app
        return create_app({"STATE_DIR": self.state_dir})


def gunicorn_options(state_dir: str, bind: str, port: int, workers: int) -> dict:
    host = f"[{bind}]" if ":" in bind else bind

    def post_worker_init(worker):
        # With reuse_port each worker binds its own listening socket, so the service
        # is reachable once the first worker is up: say so then, once.
        if worker.age != 1:
            return
        print(f"redfish-racklet: listening on https://{host}:{port} "
              f"(state dir {state_dir}, CA {os.path.join(state_dir, 'ca.pem')})",
              file=sys.stderr, flush=True)

    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": 4,
        "reuse_port": True,
        "keepalive": 15,
        "timeout": 60,
        "graceful_timeout": 5,
        "certfile": os.path.join(state_dir, "server.pem"),
        "keyfile": os.path.join(state_dir, "server-key.pem"),
        "ssl_context": _ssl_context,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "control_socket_disable": True,
        "proc_name": "redfish-racklet",
        "post_worker_init": post_worker_init,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
    }


def serve(state_dir: str, bind: str, port: int, manifest_path: str | None, workers: int) -> int:
    lock_fd = lock_state_dir(state_dir)
    agent = start_agent(state_dir, manifest_path)
    try:
        _Gunicorn(state_dir, gunicorn_options(state_dir, bind, port, workers)).run()
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        stop_agent(agent)
        os.close(lock_fd)
    return 0
