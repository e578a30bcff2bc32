"""Issue [9]: a bounded soak — mixed clients for N minutes, then flat memory and no errors?

    .venv/bin/python bench/soak.py [--minutes 10] [--warmup 0.2] [--streams 10]

One live service (``serve``, 2 workers, the test rack of tests/conftest.py with a 1 s
sampling period) and, at once, each client at a modest bounded rate (every loop sleeps
between requests: a soak, not a throughput test), until the time is up:

- **get**: 2 threads, each with its own session, GETs of a mix of resources (service
  root, systems, chassis, Power/Thermal, a ``$expand``, managers, the event service);
  every 200 requests it logs out and logs in again.
- **patch**: PATCH of a system's ``AssetTag``, then a GET that must show it.
- **reset**: ``ComputerSystem.Reset`` of Unit2, ``ForceOff`` and ``On`` in turn.
- **sse**: ``--streams`` SSE streams held open on the SSE port, read by one selector
  thread; one of them closed and opened again every 10 s.
- **upload**: a small (1 MiB payload) signed BMC bundle pushed to the next unit's BMC
  every 20 s, waiting (bounded) for its task to end.
- **accounts**: create a ReadOnly account, log in as it, read, log out, delete it.

Every 10 s the RSS of every process of the service is sampled (``/proc/PID/smaps_rollup``).
An error is any 5xx answer or connection error (a refused 4xx is counted apart: some
are expected, e.g. a reset refused while the unit is still changing state). Memory is
flat when, after the warm-up (``--warmup``, a fraction of the run), the mean total RSS of
the last third is at most 5 % above that of the first third (a leak grows; a drop,
memory handed back, is reported but is no failure). Prints a Markdown block.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import selectors
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from bench_memory import snapshot  # noqa: E402
from bench_sse import open_stream  # noqa: E402
from bench_update import make_bundle  # noqa: E402
from tests.conftest import TEST_MANIFEST, start_server  # noqa: E402

MiB = 1024 * 1024
GETS = ["/redfish/v1", "/redfish/v1/Systems", "/redfish/v1/Systems/Unit1", "/redfish/v1/Systems/Unit3",
        "/redfish/v1/Chassis", "/redfish/v1/Chassis/Unit1", "/redfish/v1/Chassis/Unit1/Power",
        "/redfish/v1/Chassis/Unit1/Thermal", "/redfish/v1/Systems?$expand=.", "/redfish/v1/Managers",
        "/redfish/v1/EventService", "/redfish/v1/UpdateService/FirmwareInventory"]


class Tally:
    """Thread-safe counts per client: requests, 5xx, connection errors, other 4xx, notes."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = collections.defaultdict(collections.Counter)
        self.samples: list[str] = []   # the first few errors, to say what went wrong
        self.refusals: dict[str, str] = {}

    def add(self, client: str, key: str, note: str = "") -> None:
        with self.lock:
            self.counts[client][key] += 1
            if note and key in ("5xx", "connection") and len(self.samples) < 20:
                self.samples.append(f"{client}: {note}")

    def call(self, client: str, session: requests.Session, method: str, url: str, **kw) -> requests.Response | None:
        """One request, counted; None on a connection error."""
        try:
            r = session.request(method, url, timeout=30, **kw)
        except requests.RequestException as e:
            self.add(client, "connection", f"{method} {url}: {type(e).__name__} {e}"[:300])
            return None
        self.add(client, "requests")
        if r.status_code == 503 and r.headers.get("Retry-After"):
            self.add(client, "503 busy")  # back-pressure, asked to retry: counted apart, shown
        elif r.status_code >= 500:
            self.add(client, "5xx", f"{method} {url}: {r.status_code} {r.text[:200]}")
        elif r.status_code >= 400:
            self.add(client, f"{r.status_code}")
            with self.lock:  # the first refusal of each kind, to say why
                self.refusals.setdefault(f"{client} {method} {r.status_code}", r.text[:400])
        return r


def login(srv, tally: Tally, client: str, user: str = "admin", password: str | None = None) -> requests.Session:
    """A session; a 503 with Retry-After (the service's back-pressure on concurrent
    password checks) is counted apart as "503 busy" and retried after the time it asks."""
    s = requests.Session()
    s.verify, s.trust_env = srv.ca, False
    for _ in range(5):
        try:
            r = s.post(srv.url + "/redfish/v1/SessionService/Sessions", timeout=30,
                       json={"UserName": user, "Password": password or srv.password})
        except requests.RequestException as e:
            tally.add(client, "connection", f"login: {type(e).__name__} {e}"[:300])
            return s
        tally.add(client, "requests")
        if r.status_code == 503 and r.headers.get("Retry-After", "").isdigit():
            tally.add(client, "503 busy")
            time.sleep(int(r.headers["Retry-After"]))
            continue
        if r.status_code >= 500:
            tally.add(client, "5xx", f"login: {r.status_code} {r.text[:200]}")
        elif r.status_code == 201:
            s.headers["X-Auth-Token"] = r.headers["X-Auth-Token"]
            loc = r.headers["Location"]
            s.logout_url = srv.url + loc if loc.startswith("/") else loc
        else:
            tally.add(client, str(r.status_code))
        break
    return s


def logout(s: requests.Session, tally: Tally, client: str) -> None:
    if getattr(s, "logout_url", None):
        tally.call(client, s, "DELETE", s.logout_url)
    s.close()


def get_client(srv, tally: Tally, stop: threading.Event, n: int) -> None:
    s, i = login(srv, tally, "get"), n
    while not stop.is_set():
        tally.call("get", s, "GET", srv.url + GETS[i % len(GETS)])
        i += 1
        if i % 200 == 0:
            logout(s, tally, "get")
            s = login(srv, tally, "get")
        stop.wait(0.02)
    logout(s, tally, "get")


def patch_client(srv, tally: Tally, stop: threading.Event) -> None:
    s, i = login(srv, tally, "patch"), 0
    while not stop.is_set():
        uri = srv.url + f"/redfish/v1/Systems/Unit{1 + i % 4}"
        tag = f"soak-{i}"
        r = tally.call("patch", s, "PATCH", uri, json={"AssetTag": tag})
        if r is not None and r.status_code in (200, 204):
            g = tally.call("patch", s, "GET", uri)
            if g is not None and g.status_code == 200 and g.json().get("AssetTag") != tag:
                tally.add("patch", "lost update")
        i += 1
        stop.wait(0.5)
    logout(s, tally, "patch")


def reset_client(srv, tally: Tally, stop: threading.Event) -> None:
    s, i = login(srv, tally, "reset"), 0
    while not stop.is_set():
        kind = ("ForceOff", "On")[i % 2]
        tally.call("reset", s, "POST", srv.url + "/redfish/v1/Systems/Unit2/Actions/ComputerSystem.Reset",
                   json={"ResetType": kind})
        i += 1
        stop.wait(2.0)
    logout(s, tally, "reset")


def sse_client(srv, tally: Tally, stop: threading.Event, n: int) -> None:
    s = login(srv, tally, "sse")
    token = s.headers.get("X-Auth-Token", "")
    sel = selectors.DefaultSelector()
    socks: list[ssl.SSLSocket] = []

    def add() -> None:
        try:
            sock = open_stream(srv.sse_port, srv.ca, credentials=f"X-Auth-Token: {token}")
            sock.setblocking(False)
        except (OSError, ConnectionError) as e:
            tally.add("sse", "connection", f"open: {e}")
            return
        tally.add("sse", "requests")
        socks.append(sock)
        sel.register(sock, selectors.EVENT_READ)

    def drop(sock) -> None:
        sel.unregister(sock)
        socks.remove(sock)
        sock.close()

    for _ in range(n):
        add()
    last_churn = time.monotonic()
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.5):
            try:
                data = key.fileobj.recv(65536)
            except ssl.SSLWantReadError:
                continue
            except OSError as e:
                tally.add("sse", "connection", f"read: {e}")
                drop(key.fileobj)
                continue
            if not data:  # the server closed a stream it should have kept
                tally.add("sse", "connection", "stream closed by the server")
                drop(key.fileobj)
            else:
                tally.add("sse", "bytes", "")
        if time.monotonic() - last_churn > 10:
            last_churn = time.monotonic()
            if socks:
                drop(socks[0])
            while len(socks) < n and not stop.is_set():
                before = len(socks)
                add()
                if len(socks) == before:
                    break
    for sock in list(socks):
        drop(sock)
    logout(s, tally, "sse")


def upload_client(srv, tally: Tally, stop: threading.Event, tmp: Path) -> None:
    s, i = login(srv, tally, "upload"), 0
    while not stop.is_set():
        (tmp / "payload.bin").unlink(missing_ok=True)  # a new image each time, not one already active
        bundle = make_bundle(tmp, MiB, f"2.{i}.0")
        target = f"/redfish/v1/Managers/Unit{1 + i % 4}-BMC"
        with bundle.open("rb") as f:
            r = tally.call("upload", s, "POST", srv.url + "/redfish/v1/UpdateService/update-multipart",
                           files={"UpdateParameters": (None, json.dumps({"Targets": [target]}), "application/json"),
                                  "UpdateFile": (bundle.name, f, "application/octet-stream")})
        bundle.unlink()
        i += 1
        if r is not None and r.status_code == 202:
            task = srv.url + r.json()["@odata.id"]
            deadline = time.monotonic() + 120
            while not stop.is_set() and time.monotonic() < deadline:
                t = tally.call("upload", s, "GET", task)
                state = t.json().get("TaskState") if t is not None and t.status_code == 200 else None
                if state in ("Completed", "Exception", "Killed", "Cancelled"):
                    tally.add("upload", f"task {state}")
                    break
                stop.wait(1.0)
        stop.wait(20.0)
    logout(s, tally, "upload")


def account_client(srv, tally: Tally, stop: threading.Event) -> None:
    admin, i = login(srv, tally, "accounts"), 0
    accounts = srv.url + "/redfish/v1/AccountService/Accounts"
    while not stop.is_set():
        name, pw = f"soak{i}", f"soak-password-{i}-x"
        r = tally.call("accounts", admin, "POST", accounts, json={"UserName": name, "Password": pw, "RoleId": "ReadOnly"})
        if r is not None and r.status_code == 201:
            me = login(srv, tally, "accounts", name, pw)
            tally.call("accounts", me, "GET", srv.url + "/redfish/v1/Systems/Unit1")
            logout(me, tally, "accounts")
            loc = r.headers["Location"]
            tally.call("accounts", admin, "DELETE", srv.url + loc if loc.startswith("/") else loc)
        i += 1
        stop.wait(3.0)
    logout(admin, tally, "accounts")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default %(default)s)")
    ap.add_argument("--warmup", type=float, default=0.2, help="fraction of the run left out of the memory slope")
    ap.add_argument("--streams", type=int, default=10, help="SSE streams held open (default %(default)s)")
    ap.add_argument("--sample-seconds", type=float, default=10.0)
    ap.add_argument("--out", default=str(HERE / "out"))
    args = ap.parse_args()
    tally, stop = Tally(), threading.Event()
    samples: list[tuple[float, list[dict]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as d:
        tmp = Path(d)
        manifest = TEST_MANIFEST.replace("sample_seconds: 0.2}", "sample_seconds: 1.0, update_trial_seconds: 30}")
        srv = start_server(tmp / "srv", manifest, workers=2)
        try:
            subprocess.run([sys.executable, "-m", "redfish_racklet", "bundle", "keygen", "--out", str(tmp / "keys")],
                           check=True, capture_output=True)
            subprocess.run([sys.executable, "-m", "redfish_racklet", "keys", "add",
                            str(tmp / "keys" / "signing-key.pub.pem"), "--state-dir", str(srv.state_dir)],
                           check=True, capture_output=True)
            threads = [threading.Thread(target=get_client, args=(srv, tally, stop, n)) for n in range(2)]
            threads += [threading.Thread(target=f, args=(srv, tally, stop)) for f in (patch_client, reset_client,
                                                                                     account_client)]
            threads.append(threading.Thread(target=sse_client, args=(srv, tally, stop, args.streams)))
            threads.append(threading.Thread(target=upload_client, args=(srv, tally, stop, tmp)))
            t0 = time.monotonic()
            end = t0 + args.minutes * 60
            for t in threads:
                t.start()
            try:
                while time.monotonic() < end:
                    samples.append((time.monotonic() - t0, snapshot(srv.proc.pid)))
                    stop.wait(min(args.sample_seconds, max(0.0, end - time.monotonic())))
            finally:
                stop.set()
                for t in threads:
                    t.join(150)
            samples.append((time.monotonic() - t0, snapshot(srv.proc.pid)))
            alive = srv.proc.poll() is None
        finally:
            srv.stop()
    return report(args, tally, samples, alive)


def report(args, tally: Tally, samples: list, alive: bool) -> int:
    os.makedirs(args.out, exist_ok=True)
    Path(args.out, "soak.json").write_text(json.dumps(
        {"counts": tally.counts, "samples": [{"t": t, "procs": s} for t, s in samples],
         "errors": tally.samples, "refusals": tally.refusals}, indent=1))
    total = [(t, sum(p["rss"] for p in s)) for t, s in samples]
    core = [(t, sum(p["rss"] for p in s if p["role"] in ("agent", "worker"))) for t, s in samples]
    cut = args.warmup * args.minutes * 60

    def drift(series):
        kept = [v for t, v in series if t >= cut]
        third = max(1, len(kept) // 3)
        first, last = statistics.mean(kept[:third]), statistics.mean(kept[-third:])
        return first, last, (last - first) / first

    errors = sum(c["5xx"] + c["connection"] for c in tally.counts.values())
    requests_ = sum(c["requests"] for c in tally.counts.values())
    print(f"### {time.strftime('%Y-%m-%d')} — {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}\n")
    print(f"Command: `.venv/bin/python bench/soak.py --minutes {args.minutes:g} --streams {args.streams}`\n")
    print("| client | requests | 5xx | connection errors | 503 + Retry-After (back-pressure) | refused (4xx) | other |\n"
          "|---|---|---|---|---|---|---|")
    for client, c in sorted(tally.counts.items()):
        refused = ", ".join(f"{k}: {v}" for k, v in sorted(c.items()) if k.isdigit())
        other = ", ".join(f"{k}: {v}" for k, v in sorted(c.items())
                          if not k.isdigit() and k not in ("requests", "5xx", "connection", "bytes", "503 busy"))
        print(f"| {client} | {c['requests']} | {c['5xx']} | {c['connection']} | {c['503 busy']} | {refused or '–'} "
              f"| {other or '–'} |")
    busy = sum(c["503 busy"] for c in tally.counts.values())
    print(f"| **all** | **{requests_}** | | | {busy} | | **errors (5xx + connection): {errors}** |\n")
    print(f"Memory: {len(samples)} samples every {args.sample_seconds:g} s; the first {args.warmup:.0%} of the run "
          "left out as warm-up; mean RSS of the first and last third of the rest:\n")
    print("| processes | first third | last third | drift | flat (grew ≤ 5 %) |\n|---|---|---|---|---|")
    flat = True
    for name, series in (("agent + 2 workers", core), ("every process of the service", total)):
        first, last, d = drift(series)
        flat &= d <= 0.05   # a leak grows; memory handed back (a negative drift) is no failure
        print(f"| {name} | {first / 1e6:.1f} MB | {last / 1e6:.1f} MB | {d:+.1%} | {'yes' if d <= 0.05 else 'NO'} |")
    roles = collections.defaultdict(list)
    for p in samples[-1][1]:
        roles[p["role"]].append(f"{p['rss'] / 1e6:.0f}")
    print("\nRSS at the end (MB): " + ", ".join(f"{r} {'/'.join(v)}" for r, v in roles.items())
          + f". Service still running at the end: {'yes' if alive else 'NO'}.")
    if tally.samples:
        print("\nFirst errors:\n" + "\n".join(f"- `{e}`" for e in tally.samples))
    if tally.refusals:
        print("\nFirst refusal of each kind:\n" + "\n".join(f"- {k}: `{v[:300]}`" for k, v in tally.refusals.items()))
    return 0 if errors == 0 and flat and alive else 1


if __name__ == "__main__":
    raise SystemExit(main())
