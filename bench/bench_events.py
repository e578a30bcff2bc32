"""Hardware event → push subscriber latency (issue [5], target p99 under 500 ms on loopback).

Starts `serve` on the default simulated rack, an HTTPS event receiver on 127.0.0.1 (its
certificate trusted through STATE_DIR/event-trust.pem), one subscription to it, then
`--rounds` alternating unplug/plug of Unit3 through the agent's socket (what
`redfish-racklet sim` does); each round's latency is from the hand's move to the
receiver reading the matching ResourceRemoved/ResourceCreated event. Prints a Markdown
block for RESULTS.md. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from redfish_racklet.agent import client  # noqa: E402
from tests.test_events_push import Receiver, make_cert  # noqa: E402  (the suite's receiver)

PASSWORD = "bench-password-not-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        state = tmp / "state"
        (tmp / "pw").write_text(PASSWORD + "\n")
        subprocess.run([sys.executable, "-m", "redfish_racklet", "init", "--state-dir", str(state),
                        "--admin-password-file", str(tmp / "pw")], check=True, capture_output=True)
        cert, key = make_cert(tmp)
        (state / "event-trust.pem").write_bytes(cert.read_bytes())
        arrived: dict[str, float] = {}
        seen = threading.Condition()
        receiver = Receiver(cert, key)

        class Timed(list):  # notes when each event id reaches the receiver
            def append(self, event):
                super().append(event)
                with seen:
                    for r in event["Events"]:
                        arrived[r["EventId"]] = time.perf_counter()
                    seen.notify_all()
        receiver.events = Timed()
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "redfish_racklet", "serve", "--state-dir", str(state),
                                 "--port", str(port), "--sse-port", "0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"https://127.0.0.1:{port}/redfish/v1"
        http = requests.Session()
        http.verify, http.auth, http.trust_env = str(state / "ca.pem"), ("admin", PASSWORD), False
        latencies = []
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if http.get(base, timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    time.sleep(0.1)
            r = http.post(base + "/EventService/Subscriptions", json={
                "Destination": receiver.url, "Protocol": "Redfish", "ResourceTypes": ["Chassis"]})
            assert r.status_code == 201, r.text
            for i in range(args.rounds):
                op = "unplug" if i % 2 == 0 else "plug"
                before = set(arrived)
                t0 = time.perf_counter()
                client.sim_command(str(state), op, "Unit3")
                with seen:
                    seen.wait_for(lambda: set(arrived) - before, timeout=10)
                new = set(arrived) - before
                if new:
                    latencies.append((min(arrived[e] for e in new) - t0) * 1000)
        finally:
            proc.terminate()
            proc.wait(20)
            receiver.close()
    lat = sorted(latencies)
    p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
    print(f"### {time.strftime('%Y-%m-%d')} — {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}\n")
    print("Command: `.venv/bin/python bench/bench_events.py " + " ".join(sys.argv[1:]) + "`\n")
    print("| measure | p50 | p99 | max | target |\n|---|---|---|---|---|")
    print(f"| sim unplug/plug → push subscriber ({len(lat)} of {args.rounds} rounds) | "
          f"{statistics.median(lat):.1f} ms | {p99:.1f} ms | {max(lat):.1f} ms | p99 < 500 ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
