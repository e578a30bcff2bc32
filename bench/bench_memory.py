"""Issue [9]: memory of the whole service, idle after start and after a load run.

    .venv/bin/python bench/bench_memory.py [--settle 10] [--load-seconds 20]

Starts ``redfish-racklet serve --workers 2`` on the default rack and reads RSS and PSS
(``/proc/PID/smaps_rollup``) of every process of the service: the gunicorn arbiter
(``serve`` itself), its 2 API workers, the rack agent, the SSE listener and whatever
else serve starts (every descendant is counted and named). Three moments: idle after
start (``--settle`` seconds after the first 200), after a load run (wrk on four URLs at
8 connections, ``--load-seconds`` each, plus 20 SSE streams held open meanwhile), and
idle again ``--settle`` seconds later. Target: agent + 2 workers under 150 MB RSS idle.
PSS shares the pages the forked workers have in common, so the PSS sum is what the
service really takes from the machine; the RSS sum counts shared pages once per process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import bench  # noqa: E402
from tests.conftest import wait_for  # noqa: E402

MB = 1000 * 1000


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first found through /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def role(pid: int, serve_pid: int) -> str:
    """A name for a service process, from its command line and its parent."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    if pid == serve_pid:
        return "serve (gunicorn arbiter)"
    for mark, name in ((" agent ", "agent"), ("sse_server", "sse"), ("metrics_server", "metrics"),
                       (" serve ", "worker")):  # a worker: serve's fork, same command line
        if mark in cmd + " ":
            return name
    return cmd[:60]


def memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes from /proc/PID/smaps_rollup; (0, 0) if the process is gone."""
    vals = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            parts = line.split()
            if parts[0] in ("Rss:", "Pss:"):
                vals[parts[0]] = int(parts[1]) * 1024
    except OSError:
        return 0, 0
    return vals.get("Rss:", 0), vals.get("Pss:", 0)


def snapshot(serve_pid: int) -> list[dict]:
    out = []
    for pid in [serve_pid] + descendants(serve_pid):
        rss, pss = memory(pid)
        out.append({"pid": pid, "role": role(pid, serve_pid), "rss": rss, "pss": pss})
    return out


def totals(snap: list[dict]) -> dict:
    core = [p for p in snap if p["role"] in ("agent", "worker")]
    return {"core_rss": sum(p["rss"] for p in core), "core_pss": sum(p["pss"] for p in core),
            "all_rss": sum(p["rss"] for p in snap), "all_pss": sum(p["pss"] for p in snap),
            "workers": sum(p["role"] == "worker" for p in snap)}


def hold_streams(port: int, ca: str, n: int, stop: threading.Event, opened: list) -> None:
    from bench_sse import open_stream  # bench/bench_sse.py (Basic auth with its own password)
    socks = []
    try:
        for _ in range(n):
            socks.append(open_stream(port, ca))
        opened.append(len(socks))
        stop.wait()
    finally:
        for s in socks:
            s.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settle", type=float, default=10.0, help="seconds idle before a reading (%(default)s)")
    ap.add_argument("--load-seconds", type=int, default=20, help="wrk seconds per URL (%(default)s)")
    ap.add_argument("--out", default=str(HERE / "out"))
    args = ap.parse_args()
    import bench_sse
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as d:
        tmp = Path(d)
        bench.PASSWORD = bench_sse.PASSWORD  # so that the SSE streams' Basic auth works too
        state = bench.init_state(tmp)
        port, sse_port = bench.free_port(), bench.free_port()
        proc = subprocess.Popen(bench.cli("serve", "--state-dir", str(state), "--port", str(port), "--workers", "2",
                                          "--sse-port", str(sse_port)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base, ca = f"https://127.0.0.1:{port}", str(state / "ca.pem")
        snaps = {}
        try:
            bench.wait_200(base + "/redfish/v1", ca, time.monotonic() + 30)
            time.sleep(args.settle)  # the reading is of an idle service: let start-up finish
            snaps["idle after start"] = snapshot(proc.pid)
            r = requests.post(base + "/redfish/v1/SessionService/Sessions", verify=ca,
                              json={"UserName": "admin", "Password": bench.PASSWORD})
            hdrs = {"X-Auth-Token": r.headers["X-Auth-Token"]}
            stop = threading.Event()
            opened: list[int] = []
            t = threading.Thread(target=hold_streams, args=(sse_port, ca, 20, stop, opened))
            t.start()
            try:
                wait_for(lambda: opened or not t.is_alive(), "20 SSE streams open", timeout=30)
                if not opened:
                    raise RuntimeError("the SSE streams did not open")
                for uri in ("/redfish/v1", "/redfish/v1/Systems/Unit1", "/redfish/v1/Chassis/Unit1/Power",
                            "/redfish/v1/Systems?$expand=."):
                    bench.wrk(base + uri, hdrs, args.load_seconds)
                snaps["right after load (20 SSE streams open)"] = snapshot(proc.pid)
            finally:
                stop.set()
                t.join(30)
            time.sleep(args.settle)
            snaps["idle after load"] = snapshot(proc.pid)
        finally:
            bench.stop(proc)
    os.makedirs(args.out, exist_ok=True)
    Path(args.out, "memory.json").write_text(json.dumps(snaps, indent=1))
    first = next(iter(snaps.values()))
    print(f"### {time.strftime('%Y-%m-%d')} — {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}\n")
    print(f"Command: `.venv/bin/python bench/bench_memory.py --settle {args.settle:g} "
          f"--load-seconds {args.load_seconds}`\n")
    print("Processes counted: " + ", ".join(sorted({p['role'] for p in first})) + ".\n")
    print("| moment | agent + workers RSS | agent + workers PSS | all processes RSS | all PSS | per process RSS / PSS (MB) |")
    print("|---|---|---|---|---|---|")
    for moment, snap in snaps.items():
        t = totals(snap)
        each = ", ".join(f"{p['role']} {p['rss'] / MB:.0f}/{p['pss'] / MB:.0f}" for p in snap)
        print(f"| {moment} | {t['core_rss'] / MB:.1f} MB | {t['core_pss'] / MB:.1f} MB | {t['all_rss'] / MB:.1f} MB | "
              f"{t['all_pss'] / MB:.1f} MB | {each} |")
    idle = totals(first)
    verdict = "met" if idle["core_rss"] < 150 * MB else "MISSED"
    print(f"\nTarget agent + {idle['workers']} workers < 150 MB RSS idle: {idle['core_rss'] / MB:.1f} MB — {verdict}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
