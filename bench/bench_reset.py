"""Factory reset time (issue [3], target under 5 s): ``Manager.ResetToDefaults`` on the
default simulated rack (five running Pi 4 units that take 2 s to shut down), over
HTTPS, from the POST to the 200, then until the rack answers again with its new CA and
new admin password. Prints a Markdown block for RESULTS.md. Loopback only, bounded.
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
import time
from pathlib import Path

import requests

PASSWORD = "bench-password-not-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.02)


def get(url: str, ca: str, auth) -> int:
    try:
        return requests.get(url, verify=ca, auth=auth, timeout=5).status_code
    except requests.RequestException:
        return 0


def one_reset(tmp: Path, i: int) -> tuple[float, float]:
    state = tmp / f"state{i}"
    pw = tmp / "pw"
    pw.write_text(PASSWORD + "\n")
    subprocess.run([sys.executable, "-m", "redfish_racklet", "init", "--state-dir", str(state),
                    "--admin-password-file", str(pw)], check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "redfish_racklet", "serve", "--state-dir", str(state),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"https://127.0.0.1:{port}/redfish/v1"
    ca = str(state / "ca.pem")
    try:
        until(lambda: get(base + "/Systems/Unit5", ca, ("admin", PASSWORD)) == 200)
        until(lambda: requests.get(base + "/Systems/Unit5", verify=ca, auth=("admin", PASSWORD),
                                   timeout=5).json()["PowerState"] == "On")  # all five are up
        t0 = time.monotonic()
        r = requests.post(base + "/Managers/RMC/Actions/Manager.ResetToDefaults", json={"ResetType": "ResetAll"},
                          verify=ca, auth=("admin", PASSWORD), timeout=30)
        done = time.monotonic() - t0
        assert r.status_code == 200, r.text
        new = (state / "admin-password").read_text().strip()
        until(lambda: get(base + "/Systems", ca, ("admin", new)) == 200)
        back = time.monotonic() - t0
    finally:
        proc.terminate()
        proc.wait(20)
    return done, back


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        results = [one_reset(Path(d), i) for i in range(args.runs)]
    done = [r[0] for r in results]
    back = [r[1] for r in results]
    print(f"### {time.strftime('%Y-%m-%d')} — {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}\n")
    print("Command: `.venv/bin/python bench/bench_reset.py " + " ".join(sys.argv[1:]) + "`\n")
    print("| measure | median | max | target |\n|---|---|---|---|")
    print(f"| ResetToDefaults: POST → 200 ({args.runs} runs) | {statistics.median(done):.2f} s | {max(done):.2f} s | < 5 s |")
    print(f"| … → the rack answers with its new CA and admin password | {statistics.median(back):.2f} s | "
          f"{max(back):.2f} s | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
