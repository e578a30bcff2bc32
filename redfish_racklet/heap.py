"""glibc's heap, kept small: the two things the service asks of it (no-ops elsewhere).

- ``give_big_buffers_back()`` (called once, at the import of ``auth``): a fixed mmap
  threshold, so scrypt's 16 MiB buffers are unmapped when freed instead of kept in
  each thread's heap.
- ``IdleTrim``: when an API worker falls idle, its freed heap goes back to the system.
  After a burst of requests a worker's C heap (TLS buffers, the JSON of large answers,
  SQLite's scratch) is mostly free again, but glibc keeps it: measured after a load run,
  ``malloc_trim(0)`` takes 4.3 MB off each worker's RSS (55.6 -> 51.4 MB), which is what
  keeps the service (agent + 2 workers) under 150 MB when it is idle again
  (bench/bench_memory.py). So once a worker has served nothing for ``IDLE_SECONDS``, one
  thread of it calls ``malloc_trim(0)`` once. A busy worker never pays for it: each
  request only notes the time.
"""

from __future__ import annotations

import ctypes
import threading
import time

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask, Response

IDLE_SECONDS = 5.0


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # glibc's mallopt parameters


def _libc_function(name: str):
    """A function of the C library, or None where it has none (not glibc)."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def give_big_buffers_back() -> None:
    """Keep glibc from holding on to scrypt's 16 MiB buffer: once a buffer that size is
    freed, glibc raises its mmap threshold and serves the next one from the calling
    thread's heap, which it keeps; a worker's 4 threads then sit on ~80 MB after a few
    logins. A fixed 1 MiB threshold (inherited by the forked workers) makes each such
    buffer a mapping of its own, unmapped when freed. Fixing it also stops glibc raising
    the heap's trim threshold, so that is set to the 32 MiB it reached before: the heap
    is not shrunk and regrown on every request."""
    mallopt = _libc_function("mallopt")
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, 1 << 20)
        mallopt(M_TRIM_THRESHOLD, 32 << 20)


class IdleTrim:
    def __init__(self, idle_seconds: float = IDLE_SECONDS):
        self.idle_seconds = idle_seconds
        self.trim = _libc_function("malloc_trim")
        self.last = 0.0
        self.pending = False
        self.wakeups = 0        # passes of the thread's loop (tests wait on it)
        self._started = False
        self._lock = threading.Lock()

    def init_app(self, app: Flask) -> None:
        if self.trim is not None:
            app.after_request(self._served)

    def _served(self, response: Response) -> Response:
        self.last, self.pending = time.monotonic(), True
        if not self._started:   # in the worker, at its first request: never in a process about to fork
            with self._lock:
                if not self._started:
                    threading.Thread(target=self._run, name="idle-trim", daemon=True).start()
                    self._started = True
        return response

    def _run(self) -> None:
        while True:
            time.sleep(self.idle_seconds / 2)
            self.wakeups += 1
            if self.pending and time.monotonic() - self.last >= self.idle_seconds:
                self.pending = False
                self.trim(0)
