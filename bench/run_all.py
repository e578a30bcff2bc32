"""Every benchmark of bench/, one after the other, with one command (issue [9]).

    .venv/bin/python bench/run_all.py                 # everything, full length (~40 minutes)
    .venv/bin/python bench/run_all.py --quick         # every script, shortened (a few minutes)
    .venv/bin/python bench/run_all.py --only peers,memory --soak-minutes 3

Each benchmark runs in its own process (they start and stop their own servers on
127.0.0.1, never two at once: the machine has few cores and each figure is a ratio or
a latency that a second benchmark would disturb). Each one's Markdown block is saved
as ``bench/out/NAME.md`` and printed; a failing benchmark is reported and the others
still run. The exit status is 1 if any failed (the soak fails when it saw an error or
memory that was not flat). A summary with every command and its time ends the output
(and ``bench/out/summary.md``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name: (script, full-length arguments, quick arguments)
BENCHES = {
    # issue [9]'s own first, then the earlier issues' re-measured
    "peers": ("bench_peers.py", ["--seconds", "4"], ["--seconds", "1", "--rounds", "1"]),
    "memory": ("bench_memory.py", [], ["--settle", "3", "--load-seconds", "2"]),
    "cpu": ("bench_worker_cpu.py", [], ["--seconds", "1", "--rounds", "1"]),
    "soak": ("soak.py", [], []),   # --minutes from --soak-minutes
    "start+throughput": ("bench.py", [], ["--seconds", "2", "--rounds", "1", "--cold-runs", "1",
                                          "--reset-rounds", "30"]),
    "rack": ("bench_rack.py", [], ["--sweeps", "200", "--agent-seconds", "5", "--presence-rounds", "10"]),
    "auth": ("bench_auth.py", [], ["--rounds", "2", "--per-round", "100", "--slow", "10", "--seconds", "1",
                                   "--https-rounds", "1"]),
    "events": ("bench_events.py", [], ["--rounds", "10"]),
    "sse": ("bench_sse.py", [], ["--rounds", "5", "--seconds", "1", "--streams", "20"]),
    "update": ("bench_update.py", [], ["--mib", "16", "--rounds", "1"]),
    "metrics": ("bench_metrics.py", ["--rounds", "7", "--seconds", "6"],
                ["--scrapes", "30", "--rounds", "1", "--seconds", "1"]),
    "reset": ("bench_reset.py", [], ["--runs", "1"]),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="every benchmark shortened: a check that all run")
    ap.add_argument("--soak-minutes", type=float, help="length of the soak (default 10, --quick 1)")
    ap.add_argument("--only", help="comma-separated names to run: " + ", ".join(BENCHES))
    ap.add_argument("--skip", default="", help="comma-separated names not to run")
    ap.add_argument("--mockup-server", help="DMTF's redfishMockupServer.py, passed to bench_peers.py")
    ap.add_argument("--mockup-python", help="the Python to run it with (passed to bench_peers.py)")
    ap.add_argument("--out", default=str(HERE / "out"))
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    unknown = set(names + [n for n in args.skip.split(",") if n]) - set(BENCHES)
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    names = [n for n in names if n not in args.skip.split(",")]
    os.makedirs(args.out, exist_ok=True)
    soak_minutes = args.soak_minutes if args.soak_minutes is not None else (1.0 if args.quick else 10.0)
    summary = []
    for name in names:
        script, full, quick = BENCHES[name]
        extra = list(quick if args.quick else full)
        if name == "soak":
            extra += ["--minutes", f"{soak_minutes:g}"]
        if name == "peers" and args.mockup_server:
            extra += ["--mockup-server", args.mockup_server]
            if args.mockup_python:
                extra += ["--mockup-python", args.mockup_python]
        cmd = [sys.executable, str(HERE / script), *extra]
        shown = " ".join([".venv/bin/python", f"bench/{script}", *extra])
        print(f"\n## {name}: `{shown}`\n", flush=True)
        t0 = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
        took = time.monotonic() - t0
        Path(args.out, f"{name}.md").write_text(f"Command: `{shown}`\n\n" + r.stdout)
        print(r.stdout, flush=True)
        if r.returncode != 0:
            print(f"**{name} exited {r.returncode}**; the end of its error output:\n\n```\n"
                  f"{r.stderr[-2000:]}\n```", flush=True)
        summary.append(f"| {name} | `{shown}` | {took:.0f} s | {'ok' if r.returncode == 0 else f'exit {r.returncode}'} |")
    table = "| benchmark | command | time | result |\n|---|---|---|---|\n" + "\n".join(summary)
    Path(args.out, "summary.md").write_text(table + "\n")
    print("\n## Summary\n\n" + table)
    return 0 if all(line.endswith("| ok |") for line in summary) else 1


if __name__ == "__main__":
    raise SystemExit(main())
