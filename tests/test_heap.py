"""The API worker gives its freed heap back once idle (redfish_racklet/heap.py)."""

from __future__ import annotations

import threading
import time

from redfish_racklet.heap import IdleTrim

from .conftest import wait_for


class Recorder:
    def __init__(self):
        self.calls: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, pad: int) -> int:
        assert pad == 0
        with self.lock:
            self.calls.append(time.monotonic())
        return 1


def test_trims_once_after_the_idle_time_and_not_before():
    trim = IdleTrim(idle_seconds=0.4)
    trim.trim = recorder = Recorder()
    served_at = time.monotonic()
    trim._served(response="r")
    assert trim._started and recorder.calls == []
    wait_for(lambda: recorder.calls, "the trim after the idle time", timeout=10)
    assert recorder.calls[0] - served_at >= 0.4          # not while the worker might be busy
    last = len(recorder.calls)
    assert trim.pending is False
    # nothing served since: no second trim, however long it stays idle (the thread runs on)
    seen = trim.wakeups
    wait_for(lambda: trim.wakeups >= seen + 3, "three more passes of the trim thread", timeout=10)
    assert len(recorder.calls) == last == 1
    trim._served(response="r")                           # a new burst: one more trim after it
    wait_for(lambda: len(recorder.calls) == 2, "the trim after the second burst", timeout=10)


def test_one_thread_per_worker_however_many_requests():
    trim = IdleTrim(idle_seconds=60)
    trim.trim = Recorder()
    before = threading.active_count()
    for _ in range(50):
        trim._served(response="r")
    assert threading.active_count() == before + 1
