"""Fixtures: real servers (``redfish-racklet serve``: agent + gunicorn over TLS) on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RACKLET_SHARED", ROOT.parent / "shared"))
ADMIN_PASSWORD = "correct-horse-battery-staple"
START_TIMEOUT = 60.0   # a bound: a loaded 2-core machine can take long to boot 2 workers

TEST_MANIFEST = """\
rack: {name: Test rack, driver: sim, seed: 7, tick_seconds: 0.05, sample_seconds: 0.2}
units:
  - {id: Unit1, slot: 1, model: Raspberry Pi 4 Model B, manufacturer: Raspberry Pi Ltd, part_number: SC0194, bios_version: "2024-04-15", sim: {boot_seconds: 0.3, shutdown_seconds: 1.0}}
  - {id: Unit2, slot: 2, model: Raspberry Pi 4 Model B, manufacturer: Raspberry Pi Ltd, part_number: SC0194, bios_version: "2024-04-15", sim: {boot_seconds: 0.3, shutdown_seconds: 1.0}}
  - {id: Unit3, slot: 3, model: Raspberry Pi 4 Model B, manufacturer: Raspberry Pi Ltd, part_number: SC0194, bios_version: "2024-04-15", sim: {boot_seconds: 0.3, shutdown_seconds: 1.0}}
  - {id: Unit4, slot: 4, model: Raspberry Pi 4 Model B, manufacturer: Raspberry Pi Ltd, part_number: SC0194, bios_version: "2024-04-15", sim: {boot_seconds: 0.3, shutdown_seconds: 3.0}}
  - {id: Unit5, slot: 5, sim: {present: false}}
"""


def shared_or_skip(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the Racklet shared material at {path} (set RACKLET_SHARED)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli() -> list[str]:
    return [sys.executable, "-m", "redfish_racklet"]


@dataclass
class Server:
    state_dir: Path
    port: int
    proc: subprocess.Popen
    log: Path
    password: str = ADMIN_PASSWORD
    sse_port: int = 0
    metrics_port: int = 0
    _sessions: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> str:
        return str(self.state_dir / "ca.pem")

    def client(self, auth=("admin", ADMIN_PASSWORD)) -> requests.Session:
        s = requests.Session()
        s.verify = self.ca
        s.trust_env = False
        if auth:
            s.auth = auth
        self._sessions.append(s)
        return s

    def anonymous(self) -> requests.Session:
        return self.client(auth=None)

    def get(self, path: str, **kw) -> requests.Response:
        return self.client().get(self.url + path, **kw)

    def stop(self) -> int:
        for s in self._sessions:
            s.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def restart(server: Server) -> Server:
    """Stop ``server`` and serve its state dir again (same manifest, one worker)."""
    server.stop()
    args = cli() + ["serve", "--state-dir", str(server.state_dir), "--port", str(port := free_port()),
                    "--workers", "1", "--sse-port", str(sse_port := free_port()),
                    "--metrics-port", str(metrics_port := free_port())]
    manifest = server.state_dir.parent / "manifest.yaml"
    if manifest.exists():
        args += ["--manifest", str(manifest)]
    with server.log.open("a") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    again = Server(server.state_dir, port, proc, server.log, server.password, sse_port, metrics_port)
    STARTED.append(again)
    server.restarted_as = again
    wait_until_up(again)
    return again


def start_server(tmp: Path, manifest_text: str | None = TEST_MANIFEST, workers: int = 2,
                 password: str = ADMIN_PASSWORD, extra_args: tuple[str, ...] = ()) -> Server:
    """``init`` then ``serve`` on free loopback ports (``extra_args``: more serve flags);
    returns once the API answers and the rack has settled."""
    state = tmp / "state"
    tmp.mkdir(parents=True, exist_ok=True)
    pwfile = tmp / "admin-password.txt"
    pwfile.write_text(password + "\n")
    rc = subprocess.run(cli() + ["init", "--state-dir", str(state), "--admin-password-file", str(pwfile)],
                        capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    args = cli() + ["serve", "--state-dir", str(state), "--port", str(port := free_port()),
                    "--workers", str(workers), "--sse-port", str(sse_port := free_port()),
                    "--metrics-port", str(metrics_port := free_port())]
    if manifest_text is not None:
        mf = tmp / "manifest.yaml"
        mf.write_text(manifest_text)
        args += ["--manifest", str(mf)]
    args += list(extra_args)
    log = tmp / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    server = Server(state, port, proc, log, password, sse_port, metrics_port)
    STARTED.append(server)
    wait_until_up(server)
    wait_until_settled(server)
    return server


def ids(r) -> list[str]:
    """The short MessageIds of a Redfish error response, e.g. ['PropertyUnknown']."""
    return [m["MessageId"].split(".")[-1] for m in r.json()["error"]["@Message.ExtendedInfo"]]


def wait_for(predicate, what: str = "condition", timeout: float = 15.0):
    """Poll ``predicate`` until it returns a truthy value, and return it (bounded: an
    AssertionError after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def sim(server: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``redfish-racklet sim ARGS`` against a server's agent (a hand at the rack)."""
    r = subprocess.run(cli() + ["sim", "--state-dir", str(server.state_dir), *args],
                       capture_output=True, text=True, timeout=30)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def children(pid: int) -> dict[int, str]:
    """{pid: command line} of the processes whose parent is ``pid``."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    out[int(entry)] = f.read().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
    return out


def api_workers(server: Server) -> set[int]:
    """The pids of a server's gunicorn workers (its children but the agent, the SSE listener
    and the metrics endpoint)."""
    return {p for p, cmd in children(server.proc.pid).items()
            if " agent " not in cmd + " " and "redfish_racklet.sse" not in cmd
            and "redfish_racklet.metrics_server" not in cmd}


def wait_until_settled(server: Server) -> None:
    """Wait (bounded) until no unit is still powering on or off after the start."""
    c = server.client()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        systems = c.get(server.url + "/redfish/v1/Systems?$expand=.").json()["Members"]
        if all(s["PowerState"] in ("On", "Off") for s in systems):
            return
        time.sleep(0.05)
    raise AssertionError("the rack did not settle after start")


def wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"serve exited: {server.log.read_text()}")
        try:
            r = requests.get(server.url + "/redfish/v1", verify=server.ca, timeout=2)
            if r.status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):   # a worker still booting, on a busy machine
            pass
        time.sleep(0.05)
    server.stop()
    raise AssertionError(f"serve did not come up: {server.log.read_text()}")


# Every server start_server or restart made: a test's own servers (and what restart made
# of them) are stopped when the test ends, any other when the session ends: nothing
# outlives pytest.
STARTED: list[Server] = []


@pytest.fixture(autouse=True, scope="session")
def _stop_every_server():
    yield
    for s in STARTED:
        s.stop()


def module_server(tmp_path_factory, name: str, *args, **kwargs) -> Iterator[Server]:
    """A server of a test module's (or session's) own, for its fixture to ``yield from``:
    ``start_server`` in a new directory ``name``, stopped when the fixture ends."""
    srv = start_server(tmp_path_factory.mktemp(name), *args, **kwargs)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One shared server on the test manifest (four units plus an empty tray, Unit5)."""
    yield from module_server(tmp_path_factory, "server")


@pytest.fixture
def fresh_server(tmp_path):
    """A server of its own, for tests that change global state or stop it."""
    servers = []

    def make(**kw) -> Server:
        srv = start_server(tmp_path / f"s{len(servers)}", **kw)
        servers.append(srv)
        return srv

    yield make
    for s in servers:
        while s is not None:   # and what restart() made of it
            s.stop()
            s = getattr(s, "restarted_as", None)


@pytest.fixture(scope="session")
def tools_venv() -> Path:
    """The virtualenv holding the DMTF tools (the one running the tests)."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "rf_service_validator").exists():
        pytest.skip("needs the DMTF tools (pip install -e '.[test]')")
    return venv


def which(cmd: str) -> str | None:
    return shutil.which(cmd)
