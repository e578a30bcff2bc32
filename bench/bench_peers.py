"""Issue [9]: GET throughput and p99 latency against the peers, side by side in one run.

    .venv/bin/python bench/bench_peers.py [--seconds 5] [--rounds 3] [--mockup-server PATH]

Servers, all on 127.0.0.1 over HTTPS, up at the same time:

- **racklet**: ``redfish-racklet serve`` (2 workers), session token (``X-Auth-Token``).
- **ceiling**: ``bench/minimal_app.py`` returning the service's own bytes for the same
  four URLs under exactly serve's gunicorn and TLS options: what this stack can do at best.
- **sushy**: ``sushy-emulator --fake`` (PyPI sushy-tools, the fake system driver: no
  libvirt), HTTPS with serve's certificate, and its HTTP Basic auth from an htpasswd file
  (bcrypt, cost 5 as ``htpasswd -B`` writes it) — and again as **sushy-noauth** without
  it (its default; bcrypt on every request dominates its figures), both counted as peers.
  ``--sushy-no-auth``: only the latter.
- **mockup**: the DMTF Redfish Mockup Server serving
  ``/work/shared/redfish/mockups/public-bladed`` (``-S -s --cert --key``: short form,
  HTTPS with serve's certificate; it has no authentication), if ``--mockup-server``
  names its ``redfishMockupServer.py``. It is not on PyPI: take a checkout of
  github.com/DMTF/Redfish-Mockup-Server and a Python with its requirements
  (``grequests``, ``multipart``), given as ``--mockup-python`` (default: this one).

URLs: the service root, a System, Chassis Power, a ``$expand=.`` of the Systems
collection; each peer's nearest equivalent where it lacks one (said in the output).
For each URL and each of 1, 8 and 64 connections (wrk, ``-t min(c, 2)``), the servers
take turns, ``--rounds`` times; medians of req/s and of wrk's p99. Ratios: racklet over
the faster peer (target >= 1.5) and racklet over the ceiling (target >= 0.70, the
median of the per-round ratios, as in bench.py).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402  (bench/bench.py: init_state, free_port, wrk, wait_200, stop, cli)

MOCKUP_DIR = Path("/work/shared/redfish/mockups/public-bladed")
KINDS = ("root", "system", "power", "expand")
CONNS = (1, 8, 64)


def p99_ms(text: str | None) -> float:
    """wrk's latency ('812.00us', '3.21ms', '1.02s') in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text or "")
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def ours(tmp: Path, workers: int) -> dict:
    state = bench.init_state(tmp / "racklet")
    port = bench.free_port()
    proc = subprocess.Popen(bench.cli("serve", "--state-dir", str(state), "--port", str(port),
                                      "--workers", str(workers)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"https://127.0.0.1:{port}"
    ca = str(state / "ca.pem")
    bench.wait_200(base + "/redfish/v1", ca, time.monotonic() + 30)
    r = requests.post(base + "/redfish/v1/SessionService/Sessions", verify=ca,
                      json={"UserName": "admin", "Password": bench.PASSWORD})
    return {"proc": proc, "base": base, "ca": ca, "state": state,
            "headers": {"X-Auth-Token": r.headers["X-Auth-Token"]},
            "urls": {"root": "/redfish/v1", "system": "/redfish/v1/Systems/Unit1",
                     "power": "/redfish/v1/Chassis/Unit1/Power", "expand": "/redfish/v1/Systems?$expand=."},
            "notes": {}}


def ceiling(tmp: Path, racklet: dict, workers: int) -> dict:
    """The minimal app with the service's own bytes for the same four URLs."""
    docs = {}
    for kind, uri in racklet["urls"].items():
        r = requests.get(racklet["base"] + uri, verify=racklet["ca"], headers=racklet["headers"])
        r.raise_for_status()
        (tmp / f"{kind}.json").write_bytes(r.content)
        docs[uri] = str(tmp / f"{kind}.json")
    (tmp / "docs.json").write_text(json.dumps(docs))
    port = bench.free_port()
    env = dict(os.environ, BENCH_DOCS=str(tmp / "docs.json"), BENCH_STATE=str(racklet["state"]),
               BENCH_PORT=str(port), BENCH_WORKERS=str(workers))
    proc = subprocess.Popen([sys.executable, str(HERE / "minimal_app.py")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"https://127.0.0.1:{port}"
    bench.wait_200(base + "/redfish/v1", racklet["ca"], time.monotonic() + 30)
    return {"proc": proc, "base": base, "headers": racklet["headers"], "urls": dict(racklet["urls"]),
            "notes": {}}


def sushy(tmp: Path, racklet: dict, auth: bool) -> dict | None:
    exe = Path(sys.executable).parent / "sushy-emulator"
    if not exe.exists():
        print("sushy-emulator not installed (pip install sushy-tools): skipped", file=sys.stderr)
        return None
    import bcrypt  # a dependency of sushy-tools
    port = bench.free_port()
    cfg = tmp / f"sushy-{'auth' if auth else 'noauth'}.conf"
    headers, lines = {}, []
    if auth:
        user, pw = "admin", "bench-password-123"
        digest = bcrypt.hashpw(pw.encode(), bcrypt.gensalt(5)).decode()
        (tmp / "htpasswd").write_text(f"{user}:{digest}\n")
        lines.append(f"SUSHY_EMULATOR_AUTH_FILE = {str(tmp / 'htpasswd')!r}")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
    cfg.write_text("\n".join(lines) + "\n")
    state = racklet["state"]
    proc = subprocess.Popen([str(exe), "--fake", "--config", str(cfg), "-i", "127.0.0.1", "-p", str(port),
                             "--ssl-certificate", str(state / "server.pem"), "--ssl-key", str(state / "server-key.pem")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"https://127.0.0.1:{port}"
    s = requests.Session()
    s.verify, s.trust_env, s.headers = racklet["ca"], False, headers
    deadline = time.monotonic() + 30
    while True:
        try:
            r = s.get(base + "/redfish/v1/Systems", timeout=2)
            if r.status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            bench.stop(proc)
            raise RuntimeError("sushy-emulator did not answer")
        time.sleep(0.1)
    system = r.json()["Members"][0]["@odata.id"]
    chassis = s.get(base + "/redfish/v1/Chassis").json()["Members"][0]["@odata.id"]
    return {"proc": proc, "base": base, "headers": headers,
            "urls": {"root": "/redfish/v1/", "system": system, "power": chassis + "/Thermal",
                     "expand": "/redfish/v1/Systems"},
            "notes": {"power": "no Chassis Power: its Chassis Thermal",
                      "expand": "no $expand: the Systems collection"}}


def mockup(tmp: Path, racklet: dict, script: str | None, python: str) -> dict | None:
    if not script:
        print("DMTF Redfish Mockup Server not given (--mockup-server PATH/redfishMockupServer.py): skipped",
              file=sys.stderr)
        return None
    port = bench.free_port()
    state = racklet["state"]
    proc = subprocess.Popen([python, script, "-D", str(MOCKUP_DIR), "-S", "-H", "127.0.0.1", "-p", str(port),
                             "-s", "--cert", str(state / "server.pem"), "--key", str(state / "server-key.pem")],
                            cwd=str(Path(script).parent), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"https://127.0.0.1:{port}"
    bench.wait_200(base + "/redfish/v1/", racklet["ca"], time.monotonic() + 30)
    return {"proc": proc, "base": base, "headers": {},
            "urls": {"root": "/redfish/v1/", "system": "/redfish/v1/Systems/529QB9450R6",
                     "power": "/redfish/v1/Chassis/MultiBladeEncl/Power", "expand": "/redfish/v1/Systems?$expand=."},
            "notes": {"auth": "no authentication", "http": "HTTP/1.0, one request per connection, one thread"}}


def check(name: str, srv: dict, ca: str) -> None:
    """Every URL answers 200 with the headers wrk will send: no benchmarking of 401s or 404s."""
    for kind, uri in srv["urls"].items():
        r = requests.get(srv["base"] + uri, verify=ca, headers=srv["headers"], timeout=10)
        if r.status_code != 200:
            raise RuntimeError(f"{name} {uri}: {r.status_code}")
        srv.setdefault("bytes", {})[kind] = len(r.content)


def measure(servers: dict, seconds: int, rounds: int) -> dict:
    """{kind: {conns: {server: [wrk result per round]}}}, the servers taking turns."""
    out = {k: {c: {n: [] for n in servers} for c in CONNS} for k in KINDS}
    for name, srv in servers.items():  # warm-up: every worker has served every URL
        for uri in srv["urls"].values():
            bench.wrk(srv["base"] + uri, srv["headers"], 1, conns=4, threads=2)
    for _ in range(rounds):
        for kind in KINDS:
            for c in CONNS:
                for name, srv in servers.items():
                    res = bench.wrk(srv["base"] + srv["urls"][kind], srv["headers"], seconds,
                                    conns=c, threads=min(c, 2))
                    res.pop("raw")
                    out[kind][c][name].append(res)
    return out


def report(servers: dict, runs: dict, args) -> str:
    peers = [n for n in servers if n not in ("racklet", "ceiling")]
    lines = [f"### {time.strftime('%Y-%m-%d')} — {platform.machine()}, {os.cpu_count()} CPUs, "
             f"Python {platform.python_version()}", "",
             f"Command: `.venv/bin/python bench/bench_peers.py --seconds {args.seconds} --rounds {args.rounds}"
             f"{' --mockup-server …' if args.mockup_server else ''}{' --sushy-no-auth' if args.sushy_no_auth else ''}`",
             "", "What each server was asked for (bytes of one answer):", ""]
    for name, srv in servers.items():
        urls = ", ".join(f"`{srv['urls'][k]}` ({srv['bytes'][k]} B)" for k in KINDS)
        notes = "; ".join(srv["notes"].values())
        lines.append(f"- **{name}**: {urls}{' — ' + notes if notes else ''}")
    lines += ["", "Req/s and p99 (ms): medians of the rounds. Errors: non-2xx responses and socket errors "
              "summed over the runs.", "",
              "| URL | conns | " + " | ".join(f"{n} req/s | {n} p99" for n in servers)
              + " | ours / faster peer | ours / ceiling | errors |",
              "|---|---|" + "---|---|" * len(servers) + "---|---|---|"]
    summary = {"peer": [], "ceiling": []}
    for kind in KINDS:
        for c in CONNS:
            cell = runs[kind][c]
            med = {n: statistics.median(r["rps"] for r in cell[n]) for n in servers}
            p99 = {n: statistics.median(p99_ms(r["p99"]) for r in cell[n]) for n in servers}
            errors = sum(r["non2xx"] for n in servers for r in cell[n])
            sock = [f"{n}: {r['socket_errors']}" for n in servers for r in cell[n] if r["socket_errors"] != "none"]
            ceil = statistics.median(o["rps"] / m["rps"] for o, m in zip(cell["racklet"], cell["ceiling"]))
            summary["ceiling"].append(ceil)
            if peers:
                fastest = max(med[p] for p in peers)
                vs_peer = f"{med['racklet'] / fastest:.2f}"
                summary["peer"].append(med["racklet"] / fastest)
            else:
                vs_peer = "–"
            lines.append(f"| {kind} | {c} | " + " | ".join(f"{med[n]:.0f} | {p99[n]:.1f}" for n in servers)
                         + f" | {vs_peer} | {ceil:.2f} | {errors}{' ' + '; '.join(sock) if sock else ''} |")
    lines.append("")
    if summary["peer"]:
        lines.append(f"ours / faster peer: min {min(summary['peer']):.2f}, median "
                     f"{statistics.median(summary['peer']):.2f} (target ≥ 1.5); ")
    lines.append(f"ours / ceiling: min {min(summary['ceiling']):.2f}, median "
                 f"{statistics.median(summary['ceiling']):.2f} (target ≥ 0.70).")
    return "\n".join(lines)


def main() -> int:
    global KINDS, CONNS   # measure() and report() go over these
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5, help="per wrk run (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs per server and cell (%(default)s)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--mockup-server", help="path of DMTF's redfishMockupServer.py (not on PyPI)")
    ap.add_argument("--mockup-python", default=sys.executable,
                    help="the Python to run it with, one with grequests and multipart (this one)")
    ap.add_argument("--sushy-no-auth", action="store_true", help="run sushy-emulator only without its Basic auth")
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="URLs to measure (all)")
    ap.add_argument("--conns", nargs="+", type=int, default=list(CONNS), help="connection counts (%(default)s)")
    ap.add_argument("--no-peers", action="store_true", help="only the service and the ceiling")
    ap.add_argument("--out", default=str(HERE / "out"))
    args = ap.parse_args()
    KINDS, CONNS = tuple(args.kinds), tuple(args.conns)
    servers: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as d:
        tmp = Path(d)
        try:
            servers["racklet"] = ours(tmp, args.workers)
            servers["ceiling"] = ceiling(tmp, servers["racklet"], args.workers)
            peers = [] if args.sushy_no_auth else [("sushy", lambda: sushy(tmp, servers["racklet"], True))]
            peers += [("sushy-noauth", lambda: sushy(tmp, servers["racklet"], False)),
                      ("mockup", lambda: mockup(tmp, servers["racklet"], args.mockup_server, args.mockup_python))]
            for name, start in ([] if args.no_peers else peers):
                srv = start()
                if srv:
                    servers[name] = srv
            for name, srv in servers.items():
                check(name, srv, servers["racklet"]["ca"])
            runs = measure(servers, args.seconds, args.rounds)
        finally:
            for srv in servers.values():
                bench.stop(srv["proc"])
    os.makedirs(args.out, exist_ok=True)
    Path(args.out, "peers.json").write_text(json.dumps(
        {"urls": {n: s["urls"] for n, s in servers.items()}, "runs": runs}, indent=1))
    print(report(servers, runs, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
