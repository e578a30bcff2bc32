"""CPU time an API worker spends per request, the service against the ceiling.

    .venv/bin/python bench/bench_worker_cpu.py [--url /redfish/v1] [--seconds 5] [--rounds 3]

Throughput ratios move with the machine's load; the CPU a worker burns per request
moves much less, and it says where a gap comes from. Both servers run one worker
(``serve --workers 1``; ``minimal_app.py`` with the service's own bytes for the URL,
under serve's gunicorn and TLS options); wrk at 1 connection, turns alternating; the
worker's utime + stime from /proc before and after each run, divided by the requests
wrk counted. Prints a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def worker_of(pid: int) -> int:
    """The gunicorn worker: the child with its arbiter's command line (a fork, not an exec)."""
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if stat[1] == str(pid) and Path(f"/proc/{entry}/cmdline").read_bytes() == cmdline:
                    return int(entry)
            except OSError:
                continue
    raise RuntimeError(f"no worker under {pid}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="/redfish/v1")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as d:
        tmp = Path(d)
        state = bench.init_state(tmp / "racklet")
        port, cport = bench.free_port(), bench.free_port()
        ours = subprocess.Popen(bench.cli("serve", "--state-dir", str(state), "--port", str(port), "--workers", "1"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ceiling = None
        try:
            base, ca = f"https://127.0.0.1:{port}", str(state / "ca.pem")
            bench.wait_200(base + "/redfish/v1", ca, time.monotonic() + 30)
            token = requests.post(base + "/redfish/v1/SessionService/Sessions", verify=ca,
                                  json={"UserName": "admin", "Password": bench.PASSWORD}).headers["X-Auth-Token"]
            body = requests.get(base + args.url, verify=ca, headers={"X-Auth-Token": token})
            body.raise_for_status()
            (tmp / "doc.json").write_bytes(body.content)
            (tmp / "docs.json").write_text(json.dumps({args.url: str(tmp / "doc.json")}))
            ceiling = subprocess.Popen([sys.executable, str(HERE / "minimal_app.py")],
                                       env=dict(os.environ, BENCH_DOCS=str(tmp / "docs.json"), BENCH_STATE=str(state),
                                                BENCH_PORT=str(cport), BENCH_WORKERS="1"),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cbase = f"https://127.0.0.1:{cport}"
            bench.wait_200(cbase + args.url, ca, time.monotonic() + 30)
            servers = {"racklet": (ours, base, {"X-Auth-Token": token}), "ceiling": (ceiling, cbase, {})}
            workers = {name: worker_of(proc.pid) for name, (proc, _, _) in servers.items()}
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
            for _ in range(args.rounds):
                for name, (_, url, headers) in servers.items():
                    before = cpu_seconds(workers[name])
                    res = bench.wrk(url + args.url, headers, args.seconds, conns=1, threads=1)
                    used = cpu_seconds(workers[name]) - before
                    runs[name].append((res["rps"], used / (res["rps"] * args.seconds) * 1e6))
        finally:
            bench.stop(ours)
            if ceiling is not None:
                bench.stop(ceiling)
    print(f"Command: `.venv/bin/python bench/bench_worker_cpu.py --url {args.url} --seconds {args.seconds} "
          f"--rounds {args.rounds}`\n")
    print("| server | req/s (1 conn) | worker CPU per request |\n|---|---|---|")
    for name, rows in runs.items():
        print(f"| {name} | {statistics.median(r for r, _ in rows):.0f} | "
              f"{statistics.median(c for _, c in rows):.0f} µs |")
    ratio = statistics.median(o[0] / c[0] for o, c in zip(runs["racklet"], runs["ceiling"]))
    print(f"\nracklet / ceiling req/s: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
