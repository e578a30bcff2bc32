"""Benchmarks of issue [1]: cold start, GET throughput against a minimal Flask app, reset latency.

    .venv/bin/python bench/bench.py [--seconds 15] [--out bench/out]

Needs `wrk` (Debian: apt-get install wrk). Everything runs on 127.0.0.1. Prints a
Markdown block to paste into bench/RESULTS.md. Both servers of the throughput
comparison run in the same run, under the same gunicorn and TLS settings, one
after the other, and are reported as a ratio (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
PASSWORD = "bench-password-123"
URI = "/redfish/v1/Systems/Unit1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "redfish_racklet", *args]


def wait_200(url: str, ca: str, deadline: float) -> float:
    while time.monotonic() < deadline:
        try:
            if requests.get(url, verify=ca, timeout=10).status_code == 200:
                return time.monotonic()
        except requests.RequestException:  # refused, or (a loaded machine) a read timeout
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{url} did not answer")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def init_state(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    state = tmp / "state"
    pw = tmp / "pw"
    pw.write_text(PASSWORD)
    subprocess.run(cli("init", "--state-dir", str(state), "--admin-password-file", str(pw)),
                   check=True, capture_output=True)
    return state


def cold_start(tmp: Path, runs: int) -> dict:
    """serve to the first 200 on /redfish/v1, for an initialised and for a new state dir."""
    out = {"initialised": [], "new": []}
    for i in range(runs):
        for kind in out:
            d = tmp / f"cold-{kind}-{i}"
            d.mkdir()
            state = init_state(d) if kind == "initialised" else d / "state"
            port = free_port()
            t0 = time.monotonic()
            proc = subprocess.Popen(cli("serve", "--state-dir", str(state), "--port", str(port)),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                ca = state / "ca.pem"
                while not ca.exists():  # a new dir: init runs first, inside serve
                    time.sleep(0.005)
                t1 = wait_200(f"https://127.0.0.1:{port}/redfish/v1", str(ca), t0 + 30)
                out[kind].append(t1 - t0)
            finally:
                stop(proc)
    return out


def wrk(url: str, headers: dict, seconds: int, conns: int = 8, threads: int = 2) -> dict:
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--latency"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    text = subprocess.run(cmd + [url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", text, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock_err = re.search(r"Socket errors: (.*)", text)
    return {"rps": rps, "p50": lat.get("50"), "p99": lat.get("99"),
            "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": sock_err.group(1) if sock_err else "none", "raw": text}


def worker_cpu(master_pid: int) -> dict[int, float]:
    """CPU seconds used so far by each child of a gunicorn master."""
    out = {}
    kids = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout.split()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in map(int, kids):
        try:
            if b"agent" in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue  # serve's other child: the rack agent
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def share(before: dict, after: dict) -> list[float]:
    used = {p: after[p] - before.get(p, 0.0) for p in after}
    total = sum(used.values()) or 1.0
    return sorted((round(100 * u / total) for u in used.values()), reverse=True)


def throughput(tmp: Path, seconds: int, workers: int, rounds: int) -> dict:
    """Both servers up at once; wrk runs alternate between them, ``rounds`` times each."""
    state = init_state(tmp / "tp")
    port, port2 = free_port(), free_port()
    ours_proc = subprocess.Popen(cli("serve", "--state-dir", str(state), "--port", str(port),
                                     "--workers", str(workers)), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    base = f"https://127.0.0.1:{port}"
    ca = str(state / "ca.pem")
    procs = [ours_proc]
    try:
        wait_200(base + "/redfish/v1", ca, time.monotonic() + 30)
        r = requests.post(base + "/redfish/v1/SessionService/Sessions", verify=ca,
                          json={"UserName": "admin", "Password": PASSWORD})
        token = r.headers["X-Auth-Token"]
        body = requests.get(base + URI, verify=ca, headers={"X-Auth-Token": token}).content
        # The minimal app: the same JSON bytes, same gunicorn options and certificate.
        (tmp / "body.json").write_bytes(body)
        env = dict(os.environ, BENCH_BODY=str(tmp / "body.json"), BENCH_STATE=str(state),
                   BENCH_PORT=str(port2), BENCH_WORKERS=str(workers))
        procs.append(subprocess.Popen([sys.executable, str(HERE / "minimal_app.py")], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        minimal_url = f"https://127.0.0.1:{port2}{URI}"
        wait_200(minimal_url, ca, time.monotonic() + 30)
        targets = {"racklet": (base + URI, {"X-Auth-Token": token}, ours_proc.pid),
                   "minimal": (minimal_url, {"X-Auth-Token": token}, procs[1].pid)}
        for url, hdrs, _ in targets.values():
            wrk(url, hdrs, 2)  # warm-up
        runs: dict[str, list] = {"racklet": [], "minimal": []}
        for _ in range(rounds):
            for name, (url, hdrs, pid) in targets.items():
                before = worker_cpu(pid)
                res = wrk(url, hdrs, seconds)
                res["cpu_share_pct"] = share(before, worker_cpu(pid))
                runs[name].append(res)
    finally:
        for p in procs:
            stop(p)
    ratios = [o["rps"] / m["rps"] for o, m in zip(runs["racklet"], runs["minimal"])]
    return {"runs": runs, "ratios": ratios, "ratio": statistics.median(ratios)}


def header_cost(tmp: Path, seconds: int, rounds: int) -> dict:
    """The minimal app twice: with one header, and with the service's full header set."""
    state = init_state(tmp / "hc")
    (tmp / "hc-body.json").write_bytes(b'{"x":"' + b"a" * 900 + b'"}')
    ports, procs = [free_port(), free_port()], []
    try:
        for port, extra in zip(ports, ("0", "1")):
            env = dict(os.environ, BENCH_BODY=str(tmp / "hc-body.json"), BENCH_STATE=str(state),
                       BENCH_PORT=str(port), BENCH_WORKERS="2", BENCH_EXTRA_HEADERS=extra)
            procs.append(subprocess.Popen([sys.executable, str(HERE / "minimal_app.py")], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        urls = [f"https://127.0.0.1:{p}{URI}" for p in ports]
        for u in urls:
            wait_200(u, str(state / "ca.pem"), time.monotonic() + 30)
        rps: list[list[float]] = [[], []]
        for _ in range(rounds):
            for i, u in enumerate(urls):
                rps[i].append(wrk(u, {}, seconds)["rps"])
    finally:
        for p in procs:
            stop(p)
    return {"plain": rps[0], "full_headers": rps[1],
            "ratio": statistics.median(b / a for a, b in zip(*rps))}


def reset_latency(tmp: Path, rounds: int) -> dict:
    """POST Reset, then GET: time until the GET shows the new PowerState."""
    state = init_state(tmp / "rl")
    port = free_port()
    proc = subprocess.Popen(cli("serve", "--state-dir", str(state), "--port", str(port), "--workers", "2"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"https://127.0.0.1:{port}"
    ca = str(state / "ca.pem")
    times, misses = [], 0
    try:
        wait_200(base + "/redfish/v1", ca, time.monotonic() + 30)
        s = requests.Session()
        s.verify, s.trust_env = ca, False
        r = s.post(base + "/redfish/v1/SessionService/Sessions", json={"UserName": "admin", "Password": PASSWORD})
        s.headers["X-Auth-Token"] = r.headers["X-Auth-Token"]
        reset = base + "/redfish/v1/Systems/Unit2/Actions/ComputerSystem.Reset"
        for i in range(rounds):
            before = s.get(base + "/redfish/v1/Systems/Unit2").json()["PowerState"]
            kind = "On" if before == "Off" else "ForceOff"
            t0 = time.perf_counter()
            assert s.post(reset, json={"ResetType": kind}).status_code == 200
            seen = s.get(base + "/redfish/v1/Systems/Unit2").json()["PowerState"]
            dt = time.perf_counter() - t0
            if seen == before:
                misses += 1
            times.append(dt)
    finally:
        stop(proc)
    times.sort()
    return {"rounds": rounds, "misses": misses, "p50_ms": 1000 * statistics.median(times),
            "p99_ms": 1000 * times[int(0.99 * (len(times) - 1))], "max_ms": 1000 * times[-1]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="alternating wrk runs per server")
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--reset-rounds", type=int, default=300)
    ap.add_argument("--out", default=str(HERE / "out"))
    ap.add_argument("--header-cost", action="store_true",
                    help="also measure what the service's response headers cost the minimal app")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        cold = cold_start(tmp, a.cold_runs)
        tp = throughput(tmp, a.seconds, a.workers, a.rounds)
        rl = reset_latency(tmp, a.reset_rounds)
        hc = header_cost(tmp, a.seconds, a.rounds) if a.header_cost else None
    os.makedirs(a.out, exist_ok=True)
    Path(a.out, "results.json").write_text(json.dumps({"cold": cold, "throughput": tp, "reset": rl, "header_cost": hc},
                                                      indent=1))
    cpu = os.cpu_count()
    print(f"## {time.strftime('%Y-%m-%d')} — {platform.machine()}, {cpu} CPUs, Python {platform.python_version()}")
    print(f"\nCommand: `.venv/bin/python bench/bench.py --seconds {a.seconds} --workers {a.workers} "
          f"--rounds {a.rounds}{' --header-cost' if a.header_cost else ''}`\n")
    print("| measure | value |\n|---|---|")
    for kind, vals in cold.items():
        print(f"| cold start, {kind} state dir (serve → first 200), median / max of {len(vals)} | "
              f"{statistics.median(vals):.2f} s / {max(vals):.2f} s |")
    for name in ("racklet", "minimal"):
        for i, d in enumerate(tp["runs"][name], 1):
            print(f"| GET {URI}, {name} run {i}: req/s, p50, p99, worker CPU share % | {d['rps']:.0f}, "
                  f"{d['p50']}, {d['p99']}, {d['cpu_share_pct']} (non-2xx {d['non2xx']}, "
                  f"socket errors {d['socket_errors']}) |")
    print(f"| ratio racklet / minimal, per round | {', '.join(f'{r:.2f}' for r in tp['ratios'])} |")
    print(f"| **ratio racklet / minimal Flask (median)** | **{tp['ratio']:.2f}** |")
    print(f"| Reset → PowerState seen changed: p50 / p99 / max ({rl['rounds']} rounds, {rl['misses']} misses) | "
          f"{rl['p50_ms']:.1f} ms / {rl['p99_ms']:.1f} ms / {rl['max_ms']:.1f} ms |")
    if hc:
        print(f"| minimal app with the service's 12 response headers / with 1 (median of {a.rounds}) | "
              f"{hc['ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
