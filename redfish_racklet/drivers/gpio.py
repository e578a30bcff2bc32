"""Power rails, identify LEDs and presence lines on one GPIO chip, through libgpiod v2.

The agent requests every line once, for its whole life, under the consumer name
``racklet-agent``: the kernel then refuses the lines to any other process (no one
toggles a rail behind the agent's back), and keeps the outputs only while the request
is open — so the request is made with the persisted desired state as the initial
output values, and released explicitly on shutdown. Presence inputs report edges
(debounced) that the agent's loop waits on through ``fileno()``.

``gpio`` is the ``gpiod`` module, or ``drivers.fake_gpio.FakeGpiod`` in the simulation
and the tests. libgpiod objects are not thread-safe: only the agent's thread uses them.
"""

from __future__ import annotations

import errno
import importlib
from dataclasses import dataclass
from datetime import timedelta

CONSUMER = "racklet-agent"
DEBOUNCE = timedelta(milliseconds=10)


class GpioError(Exception):
    """A start-up problem with the GPIO chip or its lines, in manifest terms."""


@dataclass(frozen=True)
class UnitLines:
    rail: str                   # output, active high: the unit's power switch
    presence: str | None = None  # input, active low with pull-up: the tray's sense pin
    led: str | None = None       # output: the tray's identify LED


class GpioBank:
    def __init__(self, chip_path: str, units: dict[str, UnitLines], rails_on: dict[str, bool],
                 gpio=None, consumer: str = CONSUMER):
        self.gpio = gpio or importlib.import_module("gpiod")
        self.units = units
        Direction, Value = self.gpio.line.Direction, self.gpio.line.Value
        out = self.gpio.LineSettings(direction=Direction.OUTPUT)
        sense = self.gpio.LineSettings(direction=Direction.INPUT, edge_detection=self.gpio.line.Edge.BOTH,
                                       bias=self.gpio.line.Bias.PULL_UP, active_low=True,
                                       debounce_period=DEBOUNCE)
        outputs = [u.rail for u in units.values()] + [u.led for u in units.values() if u.led]
        inputs = [u.presence for u in units.values() if u.presence]
        config = {tuple(outputs): out}
        if inputs:
            config[tuple(inputs)] = sense
        initial = {u.rail: Value.ACTIVE if rails_on.get(uid) else Value.INACTIVE
                   for uid, u in units.items()}
        initial.update({u.led: Value.INACTIVE for u in units.values() if u.led})
        try:
            self.req = self.gpio.request_lines(chip_path, config=config, consumer=consumer,
                                               output_values=initial)
        except FileNotFoundError:
            raise GpioError(f"GPIO chip {chip_path} does not exist (manifest: rack.gpio_chip)") from None
        except ValueError as e:  # a line name the chip does not have
            raise GpioError(f"GPIO chip {chip_path}: {e} (manifest: the unit's line names)") from None
        except OSError as e:
            if e.errno == errno.EBUSY:
                raise GpioError(f"GPIO lines on {chip_path} are held by another process") from None
            raise GpioError(f"GPIO chip {chip_path}: {e.strerror or e}") from None
        self._line_owner = {u.presence: uid for uid, u in units.items() if u.presence}

    # PowerRail, per unit
    def set_rail(self, uid: str, on: bool) -> None:
        V = self.gpio.line.Value
        self.req.set_value(self.units[uid].rail, V.ACTIVE if on else V.INACTIVE)

    def rail(self, uid: str) -> bool:
        return self.req.get_value(self.units[uid].rail) == self.gpio.line.Value.ACTIVE

    def set_led(self, uid: str, on: bool) -> None:
        line = self.units[uid].led
        if line is None:
            raise GpioError(f"unit {uid} has no identify LED line")
        V = self.gpio.line.Value
        self.req.set_value(line, V.ACTIVE if on else V.INACTIVE)

    # Presence, per unit
    def present(self, uid: str) -> bool:
        line = self.units[uid].presence
        return True if line is None else self.req.get_value(line) == self.gpio.line.Value.ACTIVE

    def fileno(self) -> int:
        return self.req.fileno()

    def presence_changes(self) -> list[str]:
        """Units whose presence line had an edge since the last call (non-blocking)."""
        if not self.req.wait_edge_events(0):
            return []
        names, offsets = self.req.lines, self.req.offsets  # as requested: by name
        changed = []
        for ev in self.req.read_edge_events():
            uid = self._line_owner.get(names[offsets.index(ev.line_offset)])
            if uid and uid not in changed:
                changed.append(uid)
        return changed

    def release(self) -> None:
        self.req.release()
