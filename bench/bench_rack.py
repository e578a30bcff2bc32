"""Benchmarks of issue [2], the rack itself. Prints a Markdown block for RESULTS.md.

1. Sampling sweep CPU: one ``Agent.sample()`` of the 5-unit simulated rack (every
   INA226, TMP102 and the EMC2101 read through the real drivers, energy, the fan
   curve, one store transaction), in-process, ``time.process_time`` per sweep. The
   simulation's own physics (``SimRack.convert``) is timed apart: a real rack has none.
2. The agent at 10 Hz: ``redfish-racklet agent`` with ``sample_seconds: 0.1`` for
   ``--agent-seconds``; its CPU time (utime + stime from /proc) over wall time.
3. Presence change → Chassis Status: on a live server, ``sim unplug``/``plug`` of a
   unit through the agent's socket, then GETs of ``Chassis/UnitN`` until its Status
   shows the change; time from the hand's move to the first GET that shows it.
4. Energy integration error against the analytic energy of a known load profile.

Everything runs on 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from redfish_racklet import manifest as mf  # noqa: E402
from redfish_racklet.agent import client  # noqa: E402
from redfish_racklet.agent.main import Agent  # noqa: E402
from redfish_racklet.store import Store  # noqa: E402

PASSWORD = "bench-password-not-secret"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def sweep_cpu(tmp: Path, sweeps: int) -> dict:
    store = Store(str(tmp / "sweep.db"))
    store.create()
    agent = Agent.from_manifest(store, mf.load())
    agent.start()
    convert = agent.hardware.before_sample
    total, physics = [], []
    for _ in range(sweeps):
        t0 = time.process_time()
        for c in convert:
            c()
        t1 = time.process_time()
        agent.hardware.before_sample = []
        agent.sample()
        agent.hardware.before_sample = convert
        t2 = time.process_time()
        physics.append((t1 - t0) * 1000)
        total.append((t2 - t1) * 1000)
    agent.close()
    return {"sweeps": sweeps, "sweep_ms_p50": statistics.median(total), "sweep_ms_p99": pct(total, 99),
            "physics_ms_p50": statistics.median(physics)}


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def agent_at_10hz(tmp: Path, seconds: float) -> dict:
    state = tmp / "agent-state"
    pw = tmp / "pw"
    pw.write_text(PASSWORD + "\n")
    subprocess.run([sys.executable, "-m", "redfish_racklet", "init", "--state-dir", str(state),
                    "--admin-password-file", str(pw)], check=True, capture_output=True)
    text = Path(mf.default_manifest_path()).read_text().replace(
        "tick_seconds: 0.1", "tick_seconds: 0.1\n  sample_seconds: 0.1")
    manifest = tmp / "10hz.yaml"
    manifest.write_text(text)
    assert mf.load(str(manifest)).sample_seconds == 0.1
    proc = subprocess.Popen([sys.executable, "-m", "redfish_racklet", "agent", "--state-dir", str(state),
                             "--manifest", str(manifest)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (state / "agent.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(6)  # past start-up (imports, staggered power-ons): steady state only
        c0, w0 = proc_cpu(proc.pid), time.monotonic()
        time.sleep(seconds)
        c1, w1 = proc_cpu(proc.pid), time.monotonic()
    finally:
        proc.terminate()
        proc.wait(10)
    return {"seconds": round(w1 - w0, 1), "cpu_percent_of_one_core": 100 * (c1 - c0) / (w1 - w0)}


def presence_latency(tmp: Path, rounds: int) -> dict:
    state = tmp / "serve-state"
    pw = tmp / "pw2"
    pw.write_text(PASSWORD + "\n")
    subprocess.run([sys.executable, "-m", "redfish_racklet", "init", "--state-dir", str(state),
                    "--admin-password-file", str(pw)], check=True, capture_output=True)
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "redfish_racklet", "serve", "--state-dir", str(state),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"https://127.0.0.1:{port}/redfish/v1/Chassis/Unit3"
    http = requests.Session()
    http.verify, http.auth, http.trust_env = str(state / "ca.pem"), ("admin", PASSWORD), False
    times, gets = [], []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if http.get(url, timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        token = http.post(f"https://127.0.0.1:{port}/redfish/v1/SessionService/Sessions",
                          json={"UserName": "admin", "Password": PASSWORD}).headers["X-Auth-Token"]
        http.auth = None
        http.headers["X-Auth-Token"] = token
        for i in range(rounds):
            op, want = ("unplug", "Absent") if i % 2 == 0 else ("plug", None)
            t0 = time.perf_counter()
            client.sim_command(str(state), op, "Unit3")
            n = 0
            while n < 1000:
                n += 1
                got = http.get(url).json()["Status"]["State"]
                if (got == "Absent") == (want == "Absent"):
                    break
            times.append((time.perf_counter() - t0) * 1000)
            gets.append(n)
    finally:
        proc.terminate()
        proc.wait(20)
    return {"rounds": rounds, "ms_p50": statistics.median(times), "ms_p99": pct(times, 99),
            "ms_max": max(times), "gets_max": max(gets), "sample_period_ms": mf.load().sample_seconds * 1000}


def energy_error() -> dict:
    """A unit at a known load profile through the real drivers: integrated vs analytic."""
    from redfish_racklet.drivers import sim_physics
    from redfish_racklet.drivers.ina2xx import INA2xx
    from redfish_racklet.drivers.sim import SimTray, SimUnit
    from redfish_racklet.agent.energy import Integrator

    t = [0.0]
    unit = SimUnit(lambda: t[0], boot_seconds=0.0)
    unit.set(True)
    tray = SimTray(unit, lambda: t[0], load=0.0, seed=1)
    ina = INA2xx(tray.bus, tray.INA_ADDR, "ina226", r_shunt=tray.SHUNT_OHM, max_current=3.2)
    ina.init()
    integ, analytic = Integrator(), 0.0
    period, seconds = 1.0, 600
    for step in range(int(seconds / period) + 1):
        t[0] = step * period
        tray.load = 0.5 + 0.5 * ((step // 60) % 2)  # a square wave: 60 s half load, 60 s full
        tray.convert()
        integ.add(t[0], ina.read().watts)
        if step:
            analytic += sim_physics.power_for("running", 0.5 + 0.5 * (((step - 1) // 60) % 2)) * period
    return {"seconds": seconds, "period_s": period, "integrated_J": integ.joules, "analytic_J": analytic,
            "error_percent": 100 * abs(integ.joules - analytic) / analytic}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sweeps", type=int, default=2000)
    ap.add_argument("--agent-seconds", type=float, default=30)
    ap.add_argument("--presence-rounds", type=int, default=200)
    ap.add_argument("--out", default=str(HERE / "out"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        res = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
               f"Python {platform.python_version()}",
               "sweep": sweep_cpu(tmp, args.sweeps), "agent_10hz": agent_at_10hz(tmp, args.agent_seconds),
               "presence": presence_latency(tmp, args.presence_rounds), "energy": energy_error()}
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "rack.json").write_text(json.dumps(res, indent=2))
    s, a, p, e = res["sweep"], res["agent_10hz"], res["presence"], res["energy"]
    print(f"## {res['date']} — {res['machine']}\n")
    print("Command: `.venv/bin/python bench/bench_rack.py " + " ".join(sys.argv[1:]) + "`\n")
    print("| measure | value | target |\n|---|---|---|")
    print(f"| sampling sweep of the 5-unit rack, CPU p50 / p99 ({s['sweeps']} sweeps) | "
          f"{s['sweep_ms_p50']:.2f} ms / {s['sweep_ms_p99']:.2f} ms | < 5 ms |")
    print(f"| (the simulation's physics per sweep, not part of a real rack, p50) | {s['physics_ms_p50']:.2f} ms | |")
    print(f"| agent at 10 Hz sampling, CPU over {a['seconds']} s | {a['cpu_percent_of_one_core']:.1f} % of one core "
          "| < 5 % |")
    print(f"| presence change → Chassis Status shows it: p50 / p99 / max ({p['rounds']} rounds) | "
          f"{p['ms_p50']:.1f} ms / {p['ms_p99']:.1f} ms / {p['ms_max']:.1f} ms (max {p['gets_max']} GET) | "
          f"< one sampling period ({p['sample_period_ms']:.0f} ms) |")
    print(f"| energy: integrated vs analytic over {e['seconds']} s at {e['period_s']:g} s sampling | "
          f"{e['integrated_J']:.1f} J vs {e['analytic_J']:.1f} J: {e['error_percent']:.3f} % | < 1 % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
