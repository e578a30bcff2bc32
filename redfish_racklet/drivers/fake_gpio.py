"""A fake of the ``gpiod`` (libgpiod v2) module: chips with named lines, exclusive
requests, outputs held only while requested, debounce-free edge events on a real file
descriptor, and a timestamped history of every line. It fails like the kernel: a
missing chip raises FileNotFoundError, a line already requested raises EBUSY,
writing an input raises EPERM, a released request raises RequestReleasedError.

The enums and ``LineSettings`` are the real ``gpiod`` ones, so code written against
the fake is written against libgpiod.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass

from gpiod import EdgeEvent, LineSettings, RequestReleasedError, line  # noqa: F401  (re-exported)


@dataclass
class _Event:
    event_type: object
    line_offset: int
    timestamp_ns: int


class FakeChip:
    def __init__(self, path: str, names: list[str], levels: dict[str, bool] | None = None,
                 clock=time.monotonic_ns):
        self.path, self.names, self.clock = path, list(names), clock
        self.level = [bool((levels or {}).get(n, False)) for n in names]  # physical levels
        self.owner: dict[int, FakeLineRequest] = {}
        self.fault: OSError | None = None  # raised by every line access while set (e.g. EIO
        # from an I2C GPIO expander that stopped answering, ENODEV from a chip that went away)
        self.history: list[tuple[int, str, bool]] = []

    def offset(self, line_id) -> int:
        if isinstance(line_id, int):
            if not 0 <= line_id < len(self.names):
                raise ValueError(f"no line {line_id}")
            return line_id
        try:
            return self.names.index(line_id)
        except ValueError:
            raise ValueError(f"no line named {line_id!r} on {self.path}") from None

    def _set_level(self, off: int, level: bool) -> None:
        if self.level[off] != level:
            self.level[off] = level
            self.history.append((self.clock(), self.names[off], level))

    def drive(self, line_id, level: bool) -> None:
        """The outside world sets a pin (a tray pulls its sense line low when plugged in)."""
        off = self.offset(line_id)
        before = self.level[off]
        self._set_level(off, level)
        req = self.owner.get(off)
        if req is not None and before != level:
            req._edge(off)


class FakeLineRequest:
    def __init__(self, chip: FakeChip, settings: dict[int, LineSettings], consumer: str | None):
        self.chip, self.settings, self.consumer = chip, settings, consumer
        self.offsets = sorted(settings)
        self.lines = [chip.names[o] for o in self.offsets]
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._events: list[_Event] = []
        self.released = False

    def _check(self) -> None:
        if self.released:
            raise RequestReleasedError()
        if self.chip.fault is not None:
            raise self.chip.fault

    def _logical(self, off: int) -> bool:
        return self.chip.level[off] ^ self.settings[off].active_low

    def get_value(self, line_id):
        self._check()
        off = self.chip.offset(line_id)
        if off not in self.settings:
            raise ValueError(f"line {line_id!r} is not in this request")
        return line.Value.ACTIVE if self._logical(off) else line.Value.INACTIVE

    def set_value(self, line_id, value) -> None:
        self._check()
        off = self.chip.offset(line_id)
        if off not in self.settings:
            raise ValueError(f"line {line_id!r} is not in this request")
        if self.settings[off].direction != line.Direction.OUTPUT:
            raise OSError(errno.EPERM, "cannot set the value of an input line")
        self.chip._set_level(off, (value == line.Value.ACTIVE) ^ self.settings[off].active_low)

    def _edge(self, off: int) -> None:
        s = self.settings[off]
        if s.edge_detection == line.Edge.NONE or s.direction != line.Direction.INPUT:
            return
        rising = self._logical(off)
        if s.edge_detection == line.Edge.RISING and not rising:
            return
        if s.edge_detection == line.Edge.FALLING and rising:
            return
        kind = EdgeEvent.Type.RISING_EDGE if rising else EdgeEvent.Type.FALLING_EDGE
        self._events.append(_Event(kind, off, self.chip.clock()))
        os.write(self._w, b"e")

    def fileno(self) -> int:
        self._check()
        return self._r

    def wait_edge_events(self, timeout=None) -> bool:
        self._check()
        if timeout not in (0, None) and not self._events:
            import select
            secs = timeout.total_seconds() if hasattr(timeout, "total_seconds") else timeout
            select.select([self._r], [], [], secs)
        return bool(self._events)

    def read_edge_events(self, max_events=None) -> list[_Event]:
        self._check()
        events, self._events = self._events, []
        try:
            os.read(self._r, 65536)
        except BlockingIOError:
            pass
        return events

    def release(self) -> None:
        if self.released:
            return
        for off in self.offsets:
            self.chip.owner.pop(off, None)
            if self.settings[off].direction == line.Direction.OUTPUT:
                self.chip._set_level(off, False)  # the kernel keeps no output for a freed line
        os.close(self._r)
        os.close(self._w)
        self.released = True


class FakeGpiod:
    """Module-like: pass it where the drivers take ``gpio=`` instead of ``gpiod``."""

    LineSettings = LineSettings
    line = line
    EdgeEvent = EdgeEvent
    RequestReleasedError = RequestReleasedError

    def __init__(self, *chips: FakeChip):
        self.chips = {c.path: c for c in chips}

    def request_lines(self, path, config, consumer=None, event_buffer_size=None, output_values=None):
        chip = self.chips.get(path)
        if chip is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        settings: dict[int, LineSettings] = {}
        for key, s in config.items():
            ids = key if isinstance(key, (tuple, list)) else (key,)
            for line_id in ids:
                settings[chip.offset(line_id)] = s or LineSettings()
        if any(off in chip.owner for off in settings):
            raise OSError(errno.EBUSY, "Device or resource busy")
        req = FakeLineRequest(chip, settings, consumer)
        for off in settings:
            chip.owner[off] = req
        for line_id, value in (output_values or {}).items():
            off = chip.offset(line_id)
            if settings[off].direction == line.Direction.OUTPUT:
                req.set_value(off, value)
        return req
