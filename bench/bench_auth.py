"""Benchmarks of issue [3]: the cost of authentication.

    .venv/bin/python bench/bench_auth.py [--rounds 15] [--per-round 400] [--slow 120] [--seconds 5]

1. Session token vs no auth check at all: ``GET /redfish/v1/Systems/Unit1`` through the
   whole request pipeline of two apps built by ``create_app`` on the same state dir, in
   this process (WSGI calls, no HTTP, no TLS: nothing dilutes the difference). In the
   second app the route's privilege declaration is replaced by NO_AUTH (in the app's
   privilege cache; no production code path changed): ``_before`` then skips
   ``authenticate`` and the privilege check, and the same view, the same render cache and
   the same store answer. A real ``serve`` (agent included) runs on the same state dir,
   so the store changes as in production (the agent writes readings several times a
   second, which invalidates the read cache the token lookup uses). Rounds alternate
   between the two apps; the figure is the median of the per-round ratios.
2. HTTP Basic, good password: with the per-worker cache (repeated requests) vs without
   it (every request pays scrypt, as the first request does).
3. HTTP Basic, bad password: the full cost of a refusal (never cached).
4. A locked account (right password) vs an open account (wrong password) vs an unknown
   user: the time of each refusal, interleaved; the attacker must not tell them apart.
5. Over HTTPS against the real server (wrk, 8 connections): requests/s with a token,
   with good Basic (cached), with bad Basic — what a flood of bad passwords can cost.

Prints a Markdown block for bench/RESULTS.md; raw figures in bench/out/auth.json.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import PASSWORD, cli, free_port, init_state, stop, wait_200, wrk  # noqa: E402

from redfish_racklet.app import create_app  # noqa: E402

URI = "/redfish/v1/Systems/Unit1"
USER_PASSWORD = "bench-user-password-1"
DEFAULT_PORT = 18501


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Caller:
    """GET ``URI`` on an app through WSGI with fixed headers; the environ is built once."""

    def __init__(self, app, headers: dict):
        from werkzeug.test import EnvironBuilder
        self.app = app
        b = EnvironBuilder(path=URI, base_url="https://127.0.0.1/", headers=headers,
                           environ_base={"REMOTE_ADDR": "127.0.0.1"})
        self.environ = b.get_environ()
        b.close()

    def __call__(self) -> int:
        env = dict(self.environ)
        env["wsgi.input"] = io.BytesIO(b"")
        status = []
        body = self.app(env, lambda s, h, e=None: status.append(s))
        try:
            for _ in body:
                pass
        finally:
            close = getattr(body, "close", None)
            if close:
                close()
        return int(status[0].split()[0])

    def check(self, expected: int) -> "Caller":
        got = self()
        if got != expected:
            raise RuntimeError(f"expected {expected}, got {got}")
        return self


def per_request(call, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - t0) / n


def no_auth_app(state: Path):
    """The same app with the route's privilege declaration set to NO_AUTH."""
    app = create_app({"STATE_DIR": str(state)})
    endpoint, _ = app.url_map.bind("127.0.0.1").match(URI, method="GET")
    app.extensions.setdefault("racklet_privileges", {})[(endpoint, "GET")] = None
    return app


def ms(x: float) -> str:
    return f"{x * 1000:.3f} ms"


def run(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    out: dict = {}
    state = init_state(tmp)
    port = args.port
    proc = subprocess.Popen(cli("serve", "--state-dir", str(state), "--port", str(port), "--workers", "2"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base, ca = f"https://127.0.0.1:{port}", str(state / "ca.pem")
        wait_200(base + "/redfish/v1", ca, time.monotonic() + 30)
        admin = requests.Session()
        admin.verify, admin.auth, admin.trust_env = ca, ("admin", PASSWORD), False
        for name in ("bench-open", "bench-locked"):
            r = admin.post(base + "/redfish/v1/AccountService/Accounts",
                           json={"UserName": name, "Password": USER_PASSWORD, "RoleId": "ReadOnly"})
            r.raise_for_status()
        # lock bench-locked for good, then switch lockout off so bench-open never locks
        admin.patch(base + "/redfish/v1/AccountService",
                    json={"AccountLockoutThreshold": 3, "AccountLockoutCounterResetEnabled": False}).raise_for_status()
        for _ in range(3):
            requests.get(base + URI, verify=ca, auth=("bench-locked", "wrong-password-1"))
        admin.patch(base + "/redfish/v1/AccountService", json={"AccountLockoutThreshold": 0}).raise_for_status()
        assert admin.get(base + "/redfish/v1/AccountService/Accounts/3").json()["Locked"] is True
        token = requests.post(base + "/redfish/v1/SessionService/Sessions", verify=ca,
                              json={"UserName": "admin", "Password": PASSWORD}).headers["X-Auth-Token"]

        app = create_app({"STATE_DIR": str(state)})
        bare = no_auth_app(state)
        nocache = create_app({"STATE_DIR": str(state), "BASIC_AUTH_CACHE_SECONDS": 0})
        with_token = Caller(app, {"X-Auth-Token": token}).check(200)
        anonymous_on_app = Caller(app, {}).check(401)  # the route does require auth on app
        without = Caller(bare, {}).check(200)
        assert anonymous_on_app
        good_cached = Caller(app, {"Authorization": basic("admin", PASSWORD)}).check(200)
        good_uncached = Caller(nocache, {"Authorization": basic("admin", PASSWORD)}).check(200)
        bad = Caller(app, {"Authorization": basic("bench-open", "wrong-password-1")}).check(401)
        locked = Caller(app, {"Authorization": basic("bench-locked", USER_PASSWORD)}).check(401)
        unknown = Caller(app, {"Authorization": basic("bench-nobody", "wrong-password-1")}).check(401)

        # 1. token vs no auth, alternating rounds
        for c in (with_token, without):
            per_request(c, 200)  # warm-up
        ratios, tok_t, bare_t = [], [], []
        for _ in range(args.rounds):
            a = per_request(with_token, args.per_round)
            b = per_request(without, args.per_round)
            tok_t.append(a)
            bare_t.append(b)
            ratios.append(a / b)
        out["token_vs_noauth"] = {"token_s": statistics.median(tok_t), "noauth_s": statistics.median(bare_t),
                                  "ratio_median": statistics.median(ratios), "ratios": ratios}

        # 2./3. Basic: cached good, uncached good, bad
        per_request(good_cached, 50)
        cached = [per_request(good_cached, args.per_round) for _ in range(3)]
        uncached = [per_request(good_uncached, 1) for _ in range(args.slow // 4)]
        bads = [per_request(bad, 1) for _ in range(args.slow // 4)]
        out["basic"] = {"good_cached_s": statistics.median(cached), "good_uncached_s": statistics.median(uncached),
                        "bad_s": statistics.median(bads),
                        "token_s": out["token_vs_noauth"]["token_s"]}

        # 4. locked vs bad password vs unknown user, interleaved
        samples: dict[str, list[float]] = {"locked": [], "bad": [], "unknown": []}
        for _ in range(args.slow):
            for name, call in (("locked", locked), ("bad", bad), ("unknown", unknown)):
                t0 = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - t0)
        out["refusals"] = {k: {"median_s": statistics.median(v), "mean_s": statistics.fmean(v),
                               "stdev_s": statistics.stdev(v)} for k, v in samples.items()}

        # 5. over HTTPS (wrk): the service with a token vs the same app with no auth check
        # (bench/noauth_app.py), both up at once, runs alternating; then Basic
        if shutil.which("wrk") and args.seconds > 0:
            url = base + URI
            out["https"] = https_token_vs_noauth(state, url, token, args)
            for label, hdrs in (("basic_good", {"Authorization": basic("admin", PASSWORD)}),
                                ("basic_bad", {"Authorization": basic("bench-open", "wrong-password-1")})):
                wrk(url, hdrs, 1)
                res = wrk(url, hdrs, args.seconds)
                res.pop("raw")
                out["https"][label] = res
            out["https"]["token"] = out["https"]["runs"]["token"][-1]
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def https_token_vs_noauth(state: Path, url: str, token: str, args) -> dict:
    port = free_port()  # not --port + 1: serve's SSE listener takes that one by default
    env = dict(os.environ, BENCH_STATE=str(state), BENCH_PORT=str(port), BENCH_WORKERS="2")
    bare = subprocess.Popen([sys.executable, str(HERE / "noauth_app.py")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bare_url = f"https://127.0.0.1:{port}{URI}"
        wait_200(bare_url, str(state / "ca.pem"), time.monotonic() + 30)
        runs = {"token": [], "noauth": []}
        for u, h in ((url, {"X-Auth-Token": token}), (bare_url, {})):
            wrk(u, h, 1)  # warm-up
        for _ in range(args.https_rounds):
            for label, u, h in (("token", url, {"X-Auth-Token": token}), ("noauth", bare_url, {})):
                res = wrk(u, h, args.seconds)
                res.pop("raw")
                runs[label].append(res)
        ratios = [n["rps"] / t["rps"] for t, n in zip(runs["token"], runs["noauth"])]
        return {"runs": runs, "cost_ratio_median": statistics.median(ratios), "cost_ratios": ratios}
    finally:
        stop(bare)


def report(out: dict, args) -> str:
    t, b, r = out["token_vs_noauth"], out["basic"], out["refusals"]
    lines = [
        f"### {time.strftime('%Y-%m-%d')} — {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "",
        f"Command: `.venv/bin/python bench/bench_auth.py --rounds {args.rounds} --per-round {args.per_round} "
        f"--slow {args.slow} --seconds {args.seconds}`",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| `GET {URI}`, in-process pipeline: session token vs the same route with no auth check "
        f"(median of {args.rounds} alternating rounds × {args.per_round}) | {ms(t['token_s'])} vs "
        f"{ms(t['noauth_s'])}: **ratio {t['ratio_median']:.3f}** (rounds {min(t['ratios']):.3f}–"
        f"{max(t['ratios']):.3f}) | ≤ 1.10 |",
        f"| HTTP Basic, good password, cached (repeated requests) | {ms(b['good_cached_s'])} "
        f"({b['good_cached_s'] / t['token_s']:.2f}× the token request) | affordable |",
        f"| HTTP Basic, good password, not cached (a first request; cache off) | {ms(b['good_uncached_s'])} "
        f"({b['good_uncached_s'] / b['good_cached_s']:.0f}× the cached one) | |",
        f"| HTTP Basic, bad password (never cached) | {ms(b['bad_s'])} | |",
        f"| refusal timing, median / mean ± sd ({args.slow} each, interleaved): locked account, right password | "
        f"{ms(r['locked']['median_s'])} / {ms(r['locked']['mean_s'])} ± {ms(r['locked']['stdev_s'])} | "
        "= bad password |",
        f"| … open account, wrong password | {ms(r['bad']['median_s'])} / {ms(r['bad']['mean_s'])} ± "
        f"{ms(r['bad']['stdev_s'])} | |",
        f"| … unknown user | {ms(r['unknown']['median_s'])} / {ms(r['unknown']['mean_s'])} ± "
        f"{ms(r['unknown']['stdev_s'])} | |",
        f"| locked − bad password, difference of medians | "
        f"{(r['locked']['median_s'] - r['bad']['median_s']) * 1000:+.3f} ms "
        f"({(r['locked']['median_s'] / r['bad']['median_s'] - 1) * 100:+.1f} %) | within noise |",
    ]
    h = out.get("https")
    if h:
        tok = statistics.median(r["rps"] for r in h["runs"]["token"])
        bare = statistics.median(r["rps"] for r in h["runs"]["noauth"])
        lines.append(f"| same GET over HTTPS (wrk, 8 connections, {args.https_rounds} alternating runs × "
                     f"{args.seconds} s): token vs no auth check (bench/noauth_app.py) | {tok:.0f} vs {bare:.0f} req/s: "
                     f"**cost ratio {h['cost_ratio_median']:.3f}** (runs {min(h['cost_ratios']):.3f}–"
                     f"{max(h['cost_ratios']):.3f}) | ≤ 1.10 |")
    for label in ("basic_good", "basic_bad"):
        if not h:
            break
        res = h[label]
        lines.append(f"| HTTPS, wrk 8 connections {args.seconds} s: {label} | {res['rps']:.0f} req/s "
                     f"(p50 {res['p50']}, p99 {res['p99']}, non-2xx {res['non2xx']}) | |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--per-round", type=int, default=400)
    ap.add_argument("--slow", type=int, default=120, help="samples of each scrypt-bound measure")
    ap.add_argument("--seconds", type=int, default=5, help="per wrk run (0: skip the HTTPS part)")
    ap.add_argument("--https-rounds", type=int, default=3, help="alternating wrk runs per server")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help="of the service (the no-auth server takes a free one)")
    ap.add_argument("--out", default=str(HERE / "out"))
    args = ap.parse_args()
    out = run(args)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "auth.json").write_text(json.dumps(out, indent=2))
    print(report(out, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
