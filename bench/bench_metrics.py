"""The OpenMetrics endpoint (issue [6]): scrape time of the 5-unit rack, and what a busy
scraper costs the Redfish API.

Targets: a scrape in under 20 ms; the API's GET throughput with the metrics endpoint
under load at least 95 % of its throughput without (same run).

- **Scrape time**: ``--scrapes`` sequential GETs of ``/metrics`` (OpenMetrics) over one
  keep-alive HTTPS connection, after the API has served requests (so the HTTP metrics
  of both workers are in it); p50 / p99 / max, and the size of a scrape.
- **API under a busy scraper**: wrk on ``GET /redfish/v1/Systems/Unit1`` (session token,
  8 connections), in each of ``--rounds`` rounds alone, while a scraper scrapes once a
  second (five times a Prometheus scraping every 5 s), and while it scrapes
  ``--scrape-hz`` times a second (default 10); the median of the per-round ratios. The
  scraper runs on the same two cores (a real Prometheus would not), so its own client
  work is counted against the API too.

Needs wrk (Debian: apt-get install wrk). Loopback only, bounded. Prints a Markdown block.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench import wrk  # noqa: E402
from tests.conftest import start_server  # noqa: E402

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def scrape_times(session: requests.Session, url: str, n: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(n):
        t = time.perf_counter()
        r = session.get(url, headers={"Accept": OPENMETRICS}, timeout=10)
        times.append(time.perf_counter() - t)
        r.raise_for_status()
        size = len(r.content)
    return times, size


class Scraper(threading.Thread):
    """Scrapes ``hz`` times a second until told to stop (bounded by ``limit`` scrapes)."""

    def __init__(self, url: str, ca: str, hz: float, limit: int = 100000):
        super().__init__(daemon=True)
        self.url, self.ca, self.hz, self.limit = url, ca, hz, limit
        self.stop_event = threading.Event()
        self.count = 0

    def run(self) -> None:
        with requests.Session() as s:
            s.verify, s.trust_env = self.ca, False
            next_at = time.monotonic()
            while not self.stop_event.is_set() and self.count < self.limit:
                s.get(self.url, headers={"Accept": OPENMETRICS}, timeout=10).raise_for_status()
                self.count += 1
                next_at += 1.0 / self.hz
                self.stop_event.wait(max(0.0, next_at - time.monotonic()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scrapes", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10, help="per wrk run")
    ap.add_argument("--scrape-hz", type=float, default=10.0, help="scrapes a second while wrk runs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as d:
        srv = start_server(Path(d) / "srv", manifest_text=None, workers=2)   # the default 5-unit rack
        try:
            c = srv.client()
            r = c.post(srv.url + "/redfish/v1/SessionService/Sessions",
                       json={"UserName": "admin", "Password": srv.password})
            token = r.headers["X-Auth-Token"]
            api = srv.url + "/redfish/v1/Systems/Unit1"
            metrics = f"https://127.0.0.1:{srv.metrics_port}/metrics"
            wrk(api, {"X-Auth-Token": token}, 2)   # warm-up: both workers have served, and written metrics
            with requests.Session() as s:
                s.verify, s.trust_env = srv.ca, False
                scrape_times(s, metrics, 20)       # warm-up
                times, size = scrape_times(s, metrics, args.scrapes)
            rates = (1.0, args.scrape_hz)
            alone = []
            loaded = {hz: [] for hz in rates}
            ratios = {hz: [] for hz in rates}
            for _ in range(args.rounds):
                a = wrk(api, {"X-Auth-Token": token}, args.seconds)["rps"]
                alone.append(a)
                for hz in rates:
                    scraper = Scraper(metrics, srv.ca, hz)
                    scraper.start()
                    b = wrk(api, {"X-Auth-Token": token}, args.seconds)["rps"]
                    scraper.stop_event.set()
                    scraper.join(timeout=30)
                    loaded[hz].append(b)
                    ratios[hz].append(b / a)
        finally:
            srv.stop()
    ms = sorted(t * 1000 for t in times)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
    print(f"### {time.strftime('%Y-%m-%d')} — {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}\n")
    print(f"Command: `.venv/bin/python bench/bench_metrics.py --scrapes {args.scrapes} --rounds {args.rounds} "
          f"--seconds {args.seconds} --scrape-hz {args.scrape_hz:g}`\n")
    print("| measure | value | target |\n|---|---|---|")
    print(f"| scrape of the 5-unit rack (OpenMetrics, {size / 1024:.1f} KiB), p50 / p99 / max over {len(ms)} | "
          f"{statistics.median(ms):.1f} ms / {p99:.1f} ms / {ms[-1]:.1f} ms | < 20 ms |")
    print(f"| GET Systems/Unit1 alone (median of {args.rounds} wrk runs) | {statistics.median(alone):.0f} req/s | |")
    for hz in rates:
        print(f"| … while a scraper scrapes {hz:g} times a second | {statistics.median(loaded[hz]):.0f} req/s | |")
        print(f"| ratio with / without at {hz:g} Hz (median of rounds: {', '.join(f'{x:.2f}' for x in ratios[hz])}) | "
              f"{statistics.median(ratios[hz]):.2f} | ≥ 0.95 |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
