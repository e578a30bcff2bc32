"""Fault injection: kill -9 in the middle of a workload, and start-up on a broken state dir.

1. A scripted workload (resets, accounts, a session, a firmware push, subscriptions,
   settings) runs in a thread and records every change the service acknowledged (a 2xx).
   At a seeded-random point one of three things is killed with SIGKILL: the rack agent,
   one API worker, or the whole service (serve and every process under it). Then the
   service is let to recover (serve restarts its agent, gunicorn its worker) or is started
   again, and we check: the SQLite file passes ``PRAGMA integrity_check``; every
   acknowledged change is there (a change that was sent later but never acknowledged
   may have happened too); every task ended and says how; no half upload is left; and
   each unit's PowerState is what the (simulated) hardware says, re-read by the new
   agent, not copied from the store (a tray is pulled out, in the manifest the new agent
   reads, while the old agent still ran with it in).

   The seed is printed; ``RACKLET_FAULT_SEED=N pytest tests/test_faults.py`` replays a run.

2. ``serve`` on a state dir that cannot be used — a full file system, a read-only one, a
   store that is garbage, truncated, a directory, or from a newer release — exits non-zero
   with a message naming the file or directory and what to do, and changes nothing.

docs/reliability.md says what is guaranteed and points here.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from redfish_racklet.agent import SOCKET_NAME

from .conftest import (ADMIN_PASSWORD, TEST_MANIFEST, Server, api_workers, children, cli, free_port, restart,
                       start_server, wait_for)
from .test_update_faults import (MIB, Signer, Spec, can_confine, make_bundle, payload_of, start_confined_server,
                                 trust, zombie)

MANIFEST = TEST_MANIFEST.replace("sample_seconds: 0.2}", "sample_seconds: 0.2, update_trial_seconds: 1}")
DEFAULT_SEED = 20261128
TIMEOUT = 10.0          # per request of the workload: a request to a dead service fails at once
RECOVERY = 30.0         # bound for the service to be whole again on a busy 2-core machine
ENDED = ("Completed", "Exception", "Killed", "Cancelled")
SYSTEMS = "/redfish/v1/Systems"
ACCOUNTS = "/redfish/v1/AccountService/Accounts"
SESSIONS = "/redfish/v1/SessionService/Sessions"
SUBSCRIPTIONS = "/redfish/v1/EventService/Subscriptions"
PUSH = "/redfish/v1/UpdateService/update-multipart"
TASKS = "/redfish/v1/TaskService/Tasks"
PULLED = "Unit3"        # the tray pulled out (or put back) while the agent is down


def seed() -> int:
    return int(os.environ.get("RACKLET_FAULT_SEED", DEFAULT_SEED))


# --- the workload and its record -------------------------------------------------------------------

@dataclass
class Record:
    """What the client sent and what the service acknowledged, per thing changed.

    ``sent[key]`` lists the values sent, in order; ``acked[key]`` the index in it of the
    last one answered 2xx. After a crash the thing must hold the acknowledged value or a
    value sent after it (a request whose answer was lost may have been applied)."""

    sent: dict = field(default_factory=dict)
    acked: dict = field(default_factory=dict)
    uris: dict = field(default_factory=dict)     # name -> URI of what a POST made
    tokens: dict = field(default_factory=dict)   # session URI -> its token
    monitors: list = field(default_factory=list)
    log: list = field(default_factory=list)      # (step, status or error), for the failure message

    def allowed(self, key) -> list:
        return self.sent[key][self.acked[key]:]


Step = Callable[["Workload"], None]


class Workload:
    """Runs ``steps`` in order against ``server``; ``reached(i)`` is set as step i starts."""

    def __init__(self, server: Server, signer: Signer, run: str):
        self.server, self.signer, self.run = server, signer, run
        self.client = server.client()
        self.record = Record()
        self.steps = self.script()
        self.started = [threading.Event() for _ in self.steps]

    def request(self, key, value, method: str, path: str, **kw) -> requests.Response | None:
        """Send one change; record it as sent, and as acknowledged on a 2xx."""
        rec = self.record
        rec.sent.setdefault(key, []).append(value)
        try:
            r = self.client.request(method, self.server.url + path, timeout=TIMEOUT, **kw)
        except requests.RequestException as e:
            rec.log.append((key, type(e).__name__))
            return None
        rec.log.append((key, r.status_code))
        if 200 <= r.status_code < 300:
            rec.acked[key] = len(rec.sent[key]) - 1
            return r
        return None

    # the steps ------------------------------------------------------------------------------
    def reset(self, unit: str, kind: str) -> None:
        self.request(("power", unit), "Off" if kind == "ForceOff" else "On", "POST",
                     f"{SYSTEMS}/{unit}/Actions/ComputerSystem.Reset", json={"ResetType": kind})

    def patch_system(self, unit: str, what: str, body: dict, value) -> None:
        self.request((what, unit), value, "PATCH", f"{SYSTEMS}/{unit}", json=body)

    def add_account(self, name: str, role: str) -> None:
        r = self.request(("account", name), role, "POST", ACCOUNTS,
                         json={"UserName": name, "Password": f"{name}-password-for-tests", "RoleId": role})
        if r is not None:
            self.record.uris[name] = r.headers["Location"]

    def change_account(self, name: str, role: str | None) -> None:
        uri = self.record.uris.get(name)
        if uri is None:   # its creation was not acknowledged: nothing to change
            return
        if role is None:
            self.request(("account", name), None, "DELETE", uri)
        else:
            self.request(("account", name), role, "PATCH", uri, json={"RoleId": role})

    def add_session(self) -> None:
        r = self.request(("session", self.run), True, "POST", SESSIONS,
                         json={"UserName": "admin", "Password": ADMIN_PASSWORD})
        if r is not None:
            self.record.tokens[r.headers["Location"]] = r.headers["X-Auth-Token"]

    def add_subscription(self, name: str) -> None:
        r = self.request(("subscription", name), True, "POST", SUBSCRIPTIONS,
                         json={"Destination": f"https://127.0.0.1:9/{name}", "Protocol": "Redfish",
                               "Context": name})
        if r is not None:
            self.record.uris[name] = r.headers["Location"]

    def delete_subscription(self, name: str) -> None:
        uri = self.record.uris.get(name)
        if uri is not None:
            self.request(("subscription", name), False, "DELETE", uri)

    def push_firmware(self) -> None:
        bundle = make_bundle(payload_of(16 * 1024, self.run), self.signer,
                             Spec("bmc", f"3.{int(hashlib.sha256(self.run.encode()).hexdigest()[:6], 16)}.0", 0))
        files = {"UpdateParameters": (None, '{"Targets": ["/redfish/v1/Managers/Unit1-BMC"]}', "application/json"),
                 "UpdateFile": ("bundle.rkb", bundle, "application/octet-stream")}
        r = self.request(("firmware", self.run), True, "POST", PUSH, files=files)
        if r is not None:
            self.record.monitors.append(r.headers["Location"])

    def script(self) -> list[Step]:
        """The steps, the same for every run but for the names (one run per kill kind)."""
        a, b, s1, s2 = (f"{self.run}-{x}" for x in ("a", "b", "s1", "s2"))
        return [
            lambda w: w.add_account(a, "Operator"),
            lambda w: w.patch_system("Unit1", "asset", {"AssetTag": f"{self.run}-1"}, f"{self.run}-1"),
            lambda w: w.reset("Unit2", "ForceOff"),
            lambda w: w.add_session(),
            lambda w: w.add_subscription(s1),
            lambda w: w.push_firmware(),
            lambda w: w.change_account(a, "ReadOnly"),
            lambda w: w.patch_system("Unit3", "led", {"LocationIndicatorActive": True}, True),
            lambda w: w.add_subscription(s2),
            lambda w: w.patch_system("Unit1", "boot", {"Boot": {"BootSourceOverrideTarget": "Pxe",
                                                                "BootSourceOverrideEnabled": "Continuous"}}, "Pxe"),
            lambda w: w.add_account(b, "Administrator"),
            lambda w: w.reset("Unit2", "On"),
            lambda w: w.delete_subscription(s1),
            lambda w: w.patch_system("Unit3", "led", {"LocationIndicatorActive": False}, False),
            lambda w: w.change_account(b, None),
            lambda w: w.patch_system("Unit1", "asset", {"AssetTag": f"{self.run}-2"}, f"{self.run}-2"),
            lambda w: w.reset("Unit4", "ForceOff"),
            lambda w: w.patch_system("Unit1", "boot", {"Boot": {"BootSourceOverrideTarget": "Hdd"}}, "Hdd"),
            lambda w: w.change_account(a, "Administrator"),
            lambda w: w.reset("Unit4", "On"),
        ]

    def __call__(self) -> None:
        for i, step in enumerate(self.steps):
            self.started[i].set()
            step(self)


# --- killing ---------------------------------------------------------------------------------------

def descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def agent_of(server: Server) -> int | None:
    agents = [p for p, cmd in children(server.proc.pid).items() if " agent " in cmd + " " and not zombie(p)]
    return agents[0] if len(agents) == 1 else None


def agent_listens(server: Server) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(server.state_dir / SOCKET_NAME))
            return True
        except OSError:
            return False


def kill(server: Server, kind: str, rng: random.Random) -> set[int]:
    """SIGKILL the agent, one API worker (chosen by ``rng``), or serve and all under it."""
    if kind == "agent":
        victims = {agent_of(server)}
    elif kind == "worker":
        victims = {rng.choice(sorted(api_workers(server)))}
    else:
        victims = {server.proc.pid} | descendants(server.proc.pid)
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    return victims


def recover(server: Server, kind: str, victims: set[int]) -> Server:
    """Wait for what serve or gunicorn restart by themselves; start the whole service again."""
    if kind == "service":
        wait_for(lambda: all(zombie(p) or not os.path.exists(f"/proc/{p}") for p in victims),
                 "every process of the killed service gone", RECOVERY)
        return restart(server)
    if kind == "agent":   # a new agent, past its start (it listens once it has re-read the rack)
        wait_for(lambda: (p := agent_of(server)) and p not in victims and agent_listens(server),
                 "a new agent", RECOVERY)
    else:
        wait_for(lambda: len(api_workers(server) - victims) == 2, "a new worker", RECOVERY)
    assert server.proc.poll() is None, "serve died with its child"
    return server


def toggle_pulled_tray(manifest: Path) -> bool:
    """Pull PULLED out of its tray, or put it back, in the manifest file (the hardware a
    new agent will find); True when it is now in."""
    text = manifest.read_text()
    line = next(l for l in text.splitlines() if f"id: {PULLED}," in l)
    if ", present: false}" in line:
        text = text.replace(line, line.replace(", present: false}", "}"))
    else:
        text = text.replace(line, line.replace("}}", ", present: false}}"))
    manifest.write_text(text)
    return ", present: false}" not in next(l for l in text.splitlines() if f"id: {PULLED}," in l)


# --- the checks --------------------------------------------------------------------------------------

def integrity(server: Server) -> list[str]:
    db = server.state_dir / "racklet.db"
    c = sqlite3.connect(db.as_uri() + "?mode=ro", uri=True, timeout=10)
    try:
        return [r[0] for r in c.execute("PRAGMA integrity_check")]
    finally:
        c.close()


def check_acknowledged(server: Server, rec: Record) -> None:
    c = server.client()

    def get(path: str, **kw) -> requests.Response:
        return c.get(server.url + path, timeout=TIMEOUT, **kw)
    for key in rec.acked:
        kind, name = key
        allowed = rec.allowed(key)
        if kind == "account":
            r = get(rec.uris[name])
            got = r.json()["RoleId"] if r.status_code == 200 else None
            assert r.status_code in (200, 404) and got in allowed, (key, allowed, r.status_code, r.text)
        elif kind in ("asset", "led", "boot"):
            doc = get(f"{SYSTEMS}/{name}").json()
            got = {"asset": doc["AssetTag"], "led": doc["LocationIndicatorActive"],
                   "boot": doc["Boot"]["BootSourceOverrideTarget"]}[kind]
            assert got in allowed, (key, allowed, got)
        elif kind == "subscription":
            status = get(rec.uris[name]).status_code
            assert (status == 200) in allowed and status in (200, 404), (key, allowed, status)
        elif kind == "session":   # sessions live in the store: a restart keeps them
            for uri, token in rec.tokens.items():
                r = requests.get(server.url + uri, headers={"X-Auth-Token": token}, verify=server.ca,
                                 timeout=TIMEOUT)
                assert r.status_code == 200, r.text
        elif kind == "power":     # a unit comes to its desired state; the rail may still be moving
            wait_for(lambda: get(f"{SYSTEMS}/{name}").json()["PowerState"] in allowed,
                     f"{name} PowerState in {allowed}", RECOVERY)


def check_tasks(server: Server, rec: Record) -> None:
    """Every task (those whose push was acknowledged among them) ended, and says how:
    Completed, or Exception with a reason in words."""
    c = server.client()
    uris = [m["@odata.id"] for m in c.get(server.url + TASKS, timeout=TIMEOUT).json()["Members"]]
    for uri in rec.monitors + uris:
        task = wait_for(lambda: (t := c.get(server.url + uri, timeout=TIMEOUT).json())["TaskState"] in ENDED and t,
                        f"{uri} ended", RECOVERY)
        assert task["TaskState"] in ("Completed", "Exception"), task
        if task["TaskState"] == "Exception":
            assert task["Oem"]["Racklet"]["Reason"], task


def check_power_is_the_hardware(server: Server, tray_in: bool | None) -> None:
    """Each unit's PowerState agrees with its power monitor (the simulated INA226, read
    through the real driver): On draws watts, Off draws none. ``tray_in``: whether PULLED
    is in its tray in the manifest the running agent read (None: the agent was not restarted)."""
    c = server.client()

    def consistent() -> bool:
        for s in c.get(server.url + f"{SYSTEMS}?$expand=.", timeout=TIMEOUT).json()["Members"]:
            uid = s["Id"]
            watts = c.get(server.url + f"/redfish/v1/Chassis/{uid}/Sensors/Power", timeout=TIMEOUT).json()["Reading"]
            if s["PowerState"] == "On" and not (watts or 0) > 1.0:
                return False
            if s["PowerState"] == "Off" and (watts or 0) > 0.5:
                return False
            if s["PowerState"] not in ("On", "Off"):
                return False
        return True
    wait_for(consistent, "PowerState and the power monitors agree", RECOVERY)
    if tray_in is None:
        return
    doc = c.get(server.url + f"{SYSTEMS}/{PULLED}", timeout=TIMEOUT).json()
    # the store said On before the kill; the new agent found the tray as the manifest says
    assert doc["PowerState"] == ("On" if tray_in else "Off"), doc
    assert (doc["Status"]["State"] == "Absent") == (not tray_in), doc["Status"]


# --- the tests -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rack(tmp_path_factory):
    """One server for the three kill kinds (run in turn; the last restarts it); its trusted
    signing key; the manifest file a restarted agent reads."""
    tmp = tmp_path_factory.mktemp("faults")
    holder = {"server": start_server(tmp, MANIFEST), "signer": Signer(), "manifest": tmp / "manifest.yaml"}
    trust(holder["server"], holder["signer"])
    yield holder
    server = holder["server"]
    while server is not None:
        server.stop()
        server = getattr(server, "restarted_as", None)


@pytest.mark.parametrize("kind", ["worker", "agent", "service"])
def test_kill_9_during_a_workload_loses_no_acknowledged_change(rack, kind):
    server = rack["server"]
    if server.proc.poll() is not None:
        server = rack["server"] = restart(server)
    run_seed = seed()
    rng = random.Random(f"{run_seed}:{kind}")
    print(f"RACKLET_FAULT_SEED={run_seed} ({kind})")
    workload = Workload(server, rack["signer"], f"{kind}{run_seed % 10000}")
    at = rng.randrange(1, len(workload.steps) - 2)
    delay = rng.uniform(0.0, 0.05)
    tray_in = toggle_pulled_tray(rack["manifest"]) if kind != "worker" else None

    thread = threading.Thread(target=workload, daemon=True)
    thread.start()
    assert workload.started[at].wait(RECOVERY), "the workload did not reach the kill point"
    time.sleep(delay)   # a seeded point inside step `at` (not a wait for a result)
    victims = kill(server, kind, rng)
    thread.join(len(workload.steps) * (TIMEOUT + 1))
    assert not thread.is_alive(), "the workload hung"
    server = rack["server"] = recover(server, kind, victims)

    rec = workload.record
    print(f"killed {kind} {sorted(victims)} in step {at} (+{delay * 1000:.0f} ms); answers: {rec.log}")
    assert rec.acked, f"nothing was acknowledged before the kill at step {at}: {rec.log}"
    assert integrity(server) == ["ok"]
    check_acknowledged(server, rec)
    check_tasks(server, rec)
    staging = server.state_dir / "staging"
    assert not [n for n in (os.listdir(staging) if staging.exists() else []) if n.endswith(".partial")]
    check_power_is_the_hardware(server, tray_in)
    if kind == "agent":
        assert "exited; starting a new one" in server.log.read_text()


# --- start-up on a state dir that cannot be used ------------------------------------------------------

def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` with its sha256 (the state dir, to see that nothing changed)."""
    return {str(p.relative_to(path)): digest(p) for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """An initialised state dir, copied by each case (init costs a CA and an scrypt hash)."""
    tmp = tmp_path_factory.mktemp("template")
    (tmp / "pw").write_text(ADMIN_PASSWORD + "\n")
    r = subprocess.run(cli() + ["init", "--state-dir", str(tmp / "state"), "--admin-password-file", str(tmp / "pw")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return tmp / "state"


def serve_args(state: Path) -> list[str]:
    return cli() + ["serve", "--state-dir", str(state), "--port", str(free_port()), "--workers", "1",
                    "--sse-port", "0", "--metrics-port", "0"]


def garbage(db: Path) -> None:
    db.write_bytes(hashlib.sha256(b"racklet").digest() * 256)


def truncated(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[:len(data) // 2])


def directory(db: Path) -> None:
    db.unlink()
    db.mkdir()


def missing(db: Path) -> None:
    db.unlink()


def future(db: Path) -> None:
    from redfish_racklet.store import SCHEMA_VERSION
    c = sqlite3.connect(db)
    c.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    c.commit()
    c.close()


@pytest.mark.parametrize("damage, words", [
    (garbage, ("racklet.db", "damaged", "backup", "init")),
    (truncated, ("racklet.db", "damaged", "backup", "init")),
    (directory, ("racklet.db", "not a regular file", "backup")),
    (future, ("racklet.db", "newer", "backup")),
    (missing, ("racklet.db", "no store", "backup")),   # not a silent new CA and password
], ids=["garbage", "truncated", "directory", "future", "missing"])
def test_a_damaged_store_is_refused_and_left_as_it_is(template, tmp_path, damage, words):
    state = tmp_path / "state"
    shutil.copytree(template, state)
    db = state / "racklet.db"
    damage(db)
    before = tree(state)
    r = subprocess.run(serve_args(state), capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    for word in words:
        assert word in r.stderr, r.stderr
    assert str(db) in r.stderr
    after = tree(state)
    # SQLite may leave an empty -wal/-shm beside a store it could open read-only
    assert {k: v for k, v in after.items() if not k.endswith(("-wal", "-shm"))} == before
    assert all((state / k).stat().st_size == 0 for k in after if k.endswith("-wal"))


def in_namespace(script: str, state: Path, *args: str) -> subprocess.CompletedProcess:
    """``sh -c script state args...`` in a private mount namespace (root: CAP_SYS_ADMIN)."""
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(state),
                           *args], capture_output=True, text=True, timeout=60)


def test_a_read_only_state_dir_is_refused(template, tmp_path):
    why = can_confine(tmp_path)
    if why:
        pytest.skip(why)
    state = tmp_path / "state"
    shutil.copytree(template, state)
    before = tree(state)
    r = in_namespace('mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"', state,
                     *serve_args(state))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert f"the state directory {state} is not writable" in r.stderr, r.stderr
    assert tree(state) == before


def test_a_full_state_disk_is_refused(template, tmp_path):
    """The whole state dir on a small tmpfs, filled up before serve starts; the store's
    digest is taken inside the namespace, before and after."""
    why = can_confine(tmp_path)
    if why:
        pytest.skip(why)
    state = tmp_path / "state"
    state.mkdir()
    script = ('mount -t tmpfs -o size=2m,mode=0700 racklet-state "$0" && cp -a "$1"/. "$0"/ && '
              '{ dd if=/dev/zero of="$0/filler" bs=64k 2>/dev/null; true; } && '
              'sha256sum "$0/racklet.db" && shift && "$@"; rc=$?; sha256sum "$0/racklet.db"; exit $rc')
    r = in_namespace(script, state, str(template), *serve_args(state))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert f"the file system of the state directory {state} is full" in r.stderr, r.stderr
    sums = [line.split()[0] for line in r.stdout.splitlines() if line.endswith("racklet.db")]
    assert len(sums) == 2 and sums[0] == sums[1] == digest(template / "racklet.db"), r.stdout


def fill(path: Path) -> int:
    """Write zeros to ``path`` until its file system refuses (ENOSPC); the bytes written."""
    chunk, n = bytes(64 * 1024), 0
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                n += f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                return n


def message_ids(r: requests.Response) -> list[str]:
    return [m["MessageId"].rsplit(".", 1)[-1] for m in r.json()["error"]["@Message.ExtendedInfo"]]


def test_a_state_disk_that_fills_while_running(tmp_path):
    """The state dir on a small tmpfs (a private mount namespace), filled while the service
    runs: every change is refused with 507 InsufficientStorage and changes nothing, reads go
    on (with a session whose idle timer is due for a refresh, which cannot be stored), the
    agent notes it once and keeps running, no worker dies (their memory-mapped metric files
    are not on that disk); space freed, the agent says so and changes are stored again."""
    why = can_confine(tmp_path)
    if why:
        pytest.skip(why)
    server = start_confined_server(tmp_path / "s", 24 * MIB, on="", workers=2, manifest=MANIFEST)
    proc, log, state = server.proc, server.log, server.state_dir
    try:
        inside = server.view(state)     # the tmpfs, as serve sees it
        assert (inside / "racklet.db").stat().st_dev != (state / "racklet.db").stat().st_dev
        c = server.client()
        chassis = server.url + "/redfish/v1/Chassis/Unit1"
        tag = c.get(chassis, timeout=TIMEOUT).json()["AssetTag"]
        login = c.post(server.url + SESSIONS, json={"UserName": "admin", "Password": ADMIN_PASSWORD},
                       timeout=TIMEOUT)
        assert login.status_code == 201, login.text
        reader = server.client(auth=None)
        reader.headers["X-Auth-Token"] = login.headers["X-Auth-Token"]
        db = sqlite3.connect(inside / "racklet.db")    # the idle timer due: the next read refreshes it
        with db:
            db.execute("UPDATE sessions SET last_used = last_used - 60")
        db.close()
        agent = {p for p, cmd in children(proc.pid).items() if " agent " in cmd + " "}
        workers = api_workers(server)
        assert len(agent) == 1 and len(workers) == 2

        filled = fill(inside / "filler")
        assert filled > 0
        r = c.patch(chassis, json={"AssetTag": "written-on-a-full-disk"}, timeout=TIMEOUT)
        assert r.status_code == 507 and message_ids(r) == ["InsufficientStorage"], r.text
        r = c.post(server.url + ACCOUNTS, json={"UserName": "fullness", "Password": "a-long-password-9",
                                               "RoleId": "ReadOnly"}, timeout=TIMEOUT)
        assert r.status_code == 507 and message_ids(r) == ["InsufficientStorage"], r.text
        r = c.post(server.url + SYSTEMS + "/Unit2/Actions/ComputerSystem.Reset",
                   json={"ResetType": "ForceOff"}, timeout=TIMEOUT)
        assert r.status_code == 507 and message_ids(r) == ["InsufficientStorage"], r.text
        # a wrong password cannot be counted towards the lockout: refused, not let through
        r = requests.get(chassis, auth=("admin", "not-the-password-1"), verify=server.ca, timeout=TIMEOUT)
        assert r.status_code == 507 and message_ids(r) == ["InsufficientStorage"], r.text
        # reads go on, over the session too
        for uri in (chassis, server.url + ACCOUNTS, server.url + SYSTEMS + "?$expand=."):
            r = reader.get(uri, timeout=TIMEOUT)
            assert r.status_code == 200, (uri, r.text)
        assert reader.get(chassis, timeout=TIMEOUT).json()["AssetTag"] == tag
        users = [m["@odata.id"] for m in reader.get(server.url + ACCOUNTS + "?$expand=.", timeout=TIMEOUT)
                 .json()["Members"]]
        assert not [u for u in users if "fullness" in u]
        assert reader.get(server.url + SYSTEMS + "/Unit2", timeout=TIMEOUT).json()["PowerState"] == "On"
        wait_for(lambda: "is full: readings and state changes are not stored" in log.read_text(),
                 "the agent's note of the full disk", timeout=RECOVERY)

        (inside / "filler").unlink()
        wait_for(lambda: "is written again" in log.read_text(), "the agent's note of the freed disk",
                 timeout=RECOVERY)
        r = c.patch(chassis, json={"AssetTag": "written-after"}, timeout=TIMEOUT)
        assert r.status_code in (200, 204), r.text
        assert reader.get(chassis, timeout=TIMEOUT).json()["AssetTag"] == "written-after"
        # the same agent and the same workers all along: nothing died of the full disk
        assert {p for p, cmd in children(proc.pid).items() if " agent " in cmd + " "} == agent
        assert api_workers(server) == workers
        text = log.read_text()
        assert "Traceback" not in text and "SIGBUS" not in text, text
        assert text.count("is full: readings and state changes are not stored") == 1, text
    finally:
        server.stop()


# --- the moment between a slot's write and its activation --------------------------------------------

def test_an_activation_lost_with_the_agent_ends_its_task_and_unstages_the_slot(tmp_path):
    """A slot written and verified for an Immediate update is activated from a queue held
    in the agent's memory; a kill -9 between the two used to leave the task Running for
    ever (the random kills above found it). Here that moment is set up exactly, in process:
    the next agent must end the task, un-stage and erase the slot, and keep the active one."""
    from redfish_racklet import manifest as mf
    from redfish_racklet.agent.main import Agent
    from redfish_racklet.store import Store

    (tmp_path / "manifest.yaml").write_text(MANIFEST)
    manifest = mf.load(str(tmp_path / "manifest.yaml"))
    store = Store(str(tmp_path / "racklet.db"))
    store.create()

    def started_agent() -> Agent:
        agent = Agent.from_manifest(store, manifest, state_dir=str(tmp_path))
        agent.updater.start()
        agent.updater.stop()   # only its start (what a restart resolves) is under test
        return agent

    agent = started_agent()
    before = store.firmware("Unit1", "bmc")
    slot = "B" if before["active"] == "A" else "A"
    payload = payload_of(4096, "lost-activation")
    image = {"version": "9.9.9", "security_version": 0, "sha256": hashlib.sha256(payload).hexdigest(),
             "size": len(payload), "key_id": "0" * 16}
    task = store.add_task("admin", "Firmware update", {"targets": [["Unit1", "bmc"]]}, [], time.time())
    assert store.begin_slot_write("Unit1", "bmc", slot, time.time())
    agent.hardware.firmware[("Unit1", "bmc")].write(slot, [payload])
    store.finish_slot_write("Unit1", "bmc", slot, image, time.time(), None, task)   # staged; then the kill

    started_agent()
    ended = store.task(task)
    assert ended["state"] == "Exception", ended
    assert "restarted before the update finished" in ended["params"]["reason"]
    after = store.firmware("Unit1", "bmc")
    assert (after["active"], after["staged"], after["task"]) == (before["active"], None, None)
    assert store.slot("Unit1", "bmc", slot)["state"] == "empty"
    assert store.slot("Unit1", "bmc", before["active"])["state"] == "valid"


def test_every_store_connection_flushes_each_commit(tmp_path):
    """What a power cut may not take (docs/reliability.md): every connection of the store —
    the API workers' and the agent's go through Store.conn — fsyncs the WAL at each commit
    (synchronous=FULL, 2), in WAL mode; a new thread's connection too."""
    import threading

    from redfish_racklet.store import Store
    st = Store(str(tmp_path / "racklet.db"))
    st.create()
    modes = [(st.conn().execute("PRAGMA synchronous").fetchone()[0],
              st.conn().execute("PRAGMA journal_mode").fetchone()[0])]
    t = threading.Thread(target=lambda: modes.append((st.conn().execute("PRAGMA synchronous").fetchone()[0],
                                                      st.conn().execute("PRAGMA journal_mode").fetchone()[0])))
    t.start()
    t.join()
    assert modes == [(2, "wal"), (2, "wal")]
