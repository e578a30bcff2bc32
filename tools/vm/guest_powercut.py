"""The workload INSIDE the power-cut VM (tests/test_power_cut.py), run by tools/vm/vm.py.

It mounts the VM's disk (``/dev/vda``, ext4, made on the host with the state directory
in it), runs ``redfish-racklet serve`` on that state directory, and sends the changes
the host wrote to ``OUT/job.json`` one by one, over HTTPS with a session, printing to
the console before each ``racklet-sent STEP`` and after each 2xx ``racklet-ack STEP``.
The host cuts the power (kills QEMU) when it has seen the acknowledgement it chose, so
the next change is in flight; then it rebuilds the disk a power cut leaves and checks
that every acknowledged change is on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import requests

DEVICE = "/dev/vda"
SCRATCH = os.environ.get("TMPDIR", "/tmp")   # the VM's own tmpfs (the host's /tmp is read-only there)
MOUNT = os.path.join(SCRATCH, "racklet-disk")
SERVE_LOG = os.path.join(SCRATCH, "serve.log")
PORT = 8443
START_TIMEOUT = 300           # serve under emulation (TCG) is slow to start


def say(*words: str) -> None:
    print(*words, flush=True)


def main(out: str) -> int:
    with open(os.path.join(out, "job.json")) as f:
        job = json.load(f)
    os.makedirs(MOUNT, exist_ok=True)
    subprocess.run(["mount", "-t", "ext4", DEVICE, MOUNT], check=True)
    state = os.path.join(MOUNT, "state")
    log = open(SERVE_LOG, "w")
    proc = subprocess.Popen([sys.executable, "-m", "redfish_racklet", "serve", "--state-dir", state,
                             "--port", str(PORT), "--workers", "1", "--sse-port", "0", "--metrics-port", "0",
                             "--manifest", os.path.join(out, "manifest.yaml")],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"https://127.0.0.1:{PORT}"
    s = requests.Session()
    s.verify, s.trust_env = os.path.join(state, "ca.pem"), False
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            log.close()
            with open(SERVE_LOG) as f:
                say("racklet-serve-failed", f.read()[-3000:])
            return 1
        try:
            if s.get(base + "/redfish/v1", timeout=10).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.2)
    r = s.post(base + "/redfish/v1/SessionService/Sessions",
               json={"UserName": job["user"], "Password": job["password"]}, timeout=120)
    if r.status_code != 201:
        say("racklet-login-failed", str(r.status_code), r.text[:500])
        return 1
    s.headers["X-Auth-Token"] = r.headers["X-Auth-Token"]
    say("racklet-ready")
    for step in job["steps"]:
        say("racklet-sent", json.dumps(step))
        r = s.request(step["method"], base + step["uri"], json=step["body"], timeout=120)
        if 200 <= r.status_code < 300:
            say("racklet-ack", json.dumps(step))
        else:
            say("racklet-refused", json.dumps(step), str(r.status_code), r.text[:300])
    say("racklet-workload-done")
    return proc.wait()   # the host cuts the power before this returns


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
