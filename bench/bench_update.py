"""Firmware upload (issue [4]): a 256 MiB bundle pushed to the live service with curl.

Targets: the service's peak RSS rises by under 32 MiB (uploads stream); upload + verify
throughput at least 50 % of ``sha256sum`` over the same file, on the same machine, in
the same run (interleaved rounds; the median ratio is the figure).

- **Upload + verify**: from curl's first byte to the ``202 Accepted``: the multipart body
  parsed, the bundle's signature checked, every payload byte hashed and written to the
  staging file (fsync'ed). curl reads the bundle from disk and runs on the same cores.
- **sha256sum**: the same file, from the page cache (as curl reads it).
- **Peak RSS**: ``VmHWM`` (the kernel's high-water mark) of every process of the service
  (gunicorn arbiter and workers, the agent, the SSE listener) before the first upload
  and after the last install; the largest rise of one process and the sum of rises.
- **Install**: from the 202 to the task's end: the agent re-verifies the bundle while it
  copies it into the inactive slot, reads the slot back (SHA-256), arms the trial and
  resets the BMC.

Loopback only, bounded. Prints a Markdown block for RESULTS.md.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import ADMIN_PASSWORD, TEST_MANIFEST, children, start_server, wait_for  # noqa: E402

MiB = 1024 * 1024


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def make_bundle(tmp: Path, size: int, version: str) -> Path:
    cli = [sys.executable, "-m", "redfish_racklet", "bundle"]
    payload = tmp / "payload.bin"
    if not payload.exists() or payload.stat().st_size != size:
        with payload.open("wb") as f:
            block = os.urandom(MiB)
            for i in range(size // MiB):
                f.write(block[i % 256:] + block[:i % 256])   # not all one block, cheap to make
    out = tmp / f"bmc-{version}.rkb"
    run(cli + ["create", str(payload), "--out", str(out), "--component", "bmc", "--compatible", "racklet-sim",
               "--version", version, "--security-version", "1"])
    run(cli + ["sign", str(out), "--key", str(tmp / "keys" / "signing-key.pem")])
    return out


def hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def service_pids(serve_pid: int) -> dict[int, str]:
    pids = {serve_pid: "serve (gunicorn arbiter)"}
    for pid, cmd in children(serve_pid).items():
        pids[pid] = "agent" if " agent " in cmd + " " else "sse" if "sse" in cmd else "gunicorn worker"
    return pids


def sha256sum_seconds(path: Path) -> float:
    t = time.perf_counter()
    run(["sha256sum", str(path)])
    return time.perf_counter() - t


def push_seconds(srv, bundle: Path, target: str) -> tuple[float, str]:
    t = time.perf_counter()
    r = run(["curl", "-sS", "--fail-with-body", "--cacert", srv.ca, "-u", f"admin:{ADMIN_PASSWORD}",
             "-o", "/dev/stdout", "-w", "\n%{http_code}",
             "-F", "UpdateParameters=" + json.dumps({"Targets": [target]}) + ";type=application/json",
             "-F", f"UpdateFile=@{bundle}", srv.url + "/redfish/v1/UpdateService/update-multipart"])
    took = time.perf_counter() - t
    body, code = r.stdout.rsplit("\n", 1)
    if code != "202":
        raise RuntimeError(f"push answered {code}: {body[:300]}")
    return took, json.loads(body)["@odata.id"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=256, help="payload size in MiB (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default %(default)s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-update-") as d:
        tmp = Path(d)
        manifest = TEST_MANIFEST.replace("sample_seconds: 0.2}", "sample_seconds: 1.0, update_trial_seconds: 30}")
        srv = start_server(tmp / "srv", manifest, workers=2)
        try:
            run([sys.executable, "-m", "redfish_racklet", "bundle", "keygen", "--out", str(tmp / "keys")])
            run([sys.executable, "-m", "redfish_racklet", "keys", "add", str(tmp / "keys" / "signing-key.pub.pem"),
                 "--state-dir", str(srv.state_dir)])
            s = srv.client()
            pids = service_pids(srv.proc.pid)
            warm = make_bundle(tmp, MiB, "1.9.0")   # every process has served a push before "before"
            for n in range(1, 5):
                _, task = push_seconds(srv, warm, f"/redfish/v1/Managers/Unit{n}-BMC")
                wait_for(lambda: s.get(srv.url + task).json()["TaskState"] in ("Completed", "Exception"),
                         "warm-up install", timeout=60)
            before = {p: hwm_kib(p) for p in pids}
            ratios, pushes, sums, installs = [], [], [], []
            for i in range(args.rounds):
                bundle = make_bundle(tmp, args.mib * MiB, f"2.0.{i}")
                size = bundle.stat().st_size
                sha = sha256sum_seconds(bundle)
                push, task = push_seconds(srv, bundle, f"/redfish/v1/Managers/Unit{1 + i % 4}-BMC")
                t = time.perf_counter()
                doc = wait_for(lambda: (lambda d: d if d["TaskState"] in ("Completed", "Exception") else None)(
                    s.get(srv.url + task).json()), "install", timeout=600)
                installs.append(time.perf_counter() - t)
                if doc["TaskState"] != "Completed":
                    raise RuntimeError(f"task {task}: {doc['Messages']}")
                sums.append(size / sha / MiB)
                pushes.append(size / push / MiB)
                ratios.append(sha / push)
                bundle.unlink()
            after = {p: hwm_kib(p) for p in pids}
        finally:
            srv.stop()
    rises = {p: (after[p] - before[p]) / 1024 for p in pids}
    worst = max(rises, key=rises.get)
    print(f"### {time.strftime('%Y-%m-%d')} — {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}\n")
    print(f"Command: `.venv/bin/python bench/bench_update.py --mib {args.mib} --rounds {args.rounds}`\n")
    print("| measure | value | target |\n|---|---|---|")
    print(f"| upload + verify (curl → 202), median of {args.rounds} | {statistics.median(pushes):.0f} MiB/s | |")
    print(f"| sha256sum of the same file, median | {statistics.median(sums):.0f} MiB/s | |")
    print(f"| ratio upload+verify / sha256sum (median of rounds; each round side by side) | "
          f"{statistics.median(ratios):.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)}) | ≥ 0.50 |")
    print(f"| peak RSS rise, largest process ({pids[worst]}) | {rises[worst]:.1f} MiB | < 32 MiB |")
    print(f"| peak RSS rise, all {len(pids)} service processes together | {sum(rises.values()):.1f} MiB | |")
    print(f"| install (202 → task Completed: re-verify + copy into the slot, read back, trial, BMC reset), "
          f"median | {statistics.median(installs):.1f} s | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
