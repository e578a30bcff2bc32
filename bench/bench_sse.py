"""Server-Sent Events (issue [5]): hardware event to SSE delivery, and the API with 100 streams.

1. Latency: ``sim unplug``/``sim plug`` of a unit through the agent's socket (as the
   ``sim`` command does, without its interpreter start-up), to the ResourceRemoved /
   ResourceCreated event arriving on an open SSE stream. Target: p99 under 250 ms.
2. Throughput: GETs of ``/redfish/v1/Chassis/Unit1`` by 8 client threads for a few
   seconds, without SSE streams, with 100 open streams (read by one selector thread),
   and without again. Target: with >= 80 % of without.

Loopback only, every wait bounded. Prints a Markdown block for RESULTS.md.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import selectors
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from redfish_racklet import sse  # noqa: E402
from redfish_racklet.agent import client as agent_client  # noqa: E402

PASSWORD = "bench-password-not-secret"
AUTH = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_stream(port: int, ca: str, timeout: float = 10.0,
                credentials: str = f"Authorization: {AUTH}") -> ssl.SSLSocket:
    """An open SSE stream, past its response headers. ``credentials``: the header line
    that logs in (Basic by default; bench/soak.py sends a session's X-Auth-Token)."""
    ctx = ssl.create_default_context(cafile=ca)
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=timeout),
                           server_hostname="127.0.0.1")
    sock.sendall(f"GET {sse.SSE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n{credentials}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("stream closed before its headers")
        buf += data
    if not buf.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(buf.split(b"\r\n", 1)[0].decode(errors="replace"))
    return sock


def wait_message(sock: ssl.SSLSocket, suffix: str, timeout: float = 10.0) -> float:
    """Read until an event whose data names ``suffix``; the time it arrived."""
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        buf += sock.recv(65536)
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            if suffix.encode() in block:
                return time.perf_counter()
    raise RuntimeError(f"no {suffix} event")


def latency(state: str, port: int, ca: str, rounds: int) -> list[float]:
    sock = open_stream(port, ca)
    out = []
    try:
        for i in range(rounds):
            op, msg = ("unplug", ".ResourceRemoved") if i % 2 == 0 else ("plug", ".ResourceCreated")
            t0 = time.perf_counter()
            reply = agent_client.sim_command(state, op, "Unit4", None)
            if reply.get("state") != "done":
                raise RuntimeError(reply)
            out.append((wait_message(sock, msg) - t0) * 1000)
    finally:
        sock.close()
    return out


def throughput(url: str, ca: str, seconds: float, threads: int = 8) -> float:
    stop = time.monotonic() + seconds

    def run() -> int:
        s = requests.Session()
        s.verify, s.trust_env, s.auth = ca, False, ("admin", PASSWORD)
        n = 0
        while time.monotonic() < stop:
            if s.get(url + "/redfish/v1/Chassis/Unit1", timeout=10).status_code == 200:
                n += 1
        s.close()
        return n

    t0 = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(lambda _: run(), range(threads)))
    return total / (time.monotonic() - t0)


class Readers:
    """100 open streams, read (and discarded) by one selector thread."""

    def __init__(self, port: int, ca: str, n: int):
        with ThreadPoolExecutor(16) as pool:
            self.socks = list(pool.map(lambda _: open_stream(port, ca), range(n)))
        self.sel = selectors.DefaultSelector()
        for s in self.socks:
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self) -> None:
        while self.running:
            for key, _ in self.sel.select(0.2):
                try:
                    key.fileobj.recv(65536)
                except (ssl.SSLWantReadError, BlockingIOError):
                    pass
                except OSError:
                    self.sel.unregister(key.fileobj)

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        for s in self.socks:
            s.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--streams", type=int, default=100)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "state")
        pw = os.path.join(tmp, "pw")
        Path(pw).write_text(PASSWORD + "\n")
        cli = [sys.executable, "-m", "redfish_racklet"]
        subprocess.run(cli + ["init", "--state-dir", state, "--admin-password-file", pw],
                       check=True, capture_output=True)
        port, sse_port = free_port(), free_port()
        proc = subprocess.Popen(cli + ["serve", "--state-dir", state, "--port", str(port),
                                       "--sse-port", str(sse_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ca, url = os.path.join(state, "ca.pem"), f"https://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(url + "/redfish/v1", verify=ca, timeout=2).ok:
                        open_stream(sse_port, ca).close()
                        break
                except (requests.RequestException, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start")
                time.sleep(0.1)
            time.sleep(3)  # let the units finish booting before unplugging one
            lat = sorted(latency(state, sse_port, ca, args.rounds))
            base1 = throughput(url, ca, args.seconds)
            readers = Readers(sse_port, ca, args.streams)
            try:
                with_sse = throughput(url, ca, args.seconds)
            finally:
                readers.close()
            base2 = throughput(url, ca, args.seconds)
        finally:
            proc.terminate()
            proc.wait(30)
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    base = (base1 + base2) / 2
    print(f"### SSE ({platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()})\n")
    print(f"- sim unplug/plug -> SSE event, {len(lat)} rounds: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {lat[-1]:.1f} ms (target p99 < 250 ms)")
    print(f"- GET /redfish/v1/Chassis/Unit1, 8 threads, {args.seconds:.0f} s each: without SSE "
          f"{base1:.0f} and {base2:.0f} req/s; with {args.streams} open streams {with_sse:.0f} req/s "
          f"= {100 * with_sse / base:.0f} % (target >= 80 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
