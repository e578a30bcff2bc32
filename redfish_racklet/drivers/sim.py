"""The simulated rack: units that boot and halt in plausible time, on an injected clock.

State changes are evaluated lazily from the clock (no threads), so a test that
advances a fake clock sees exactly what a real rack would show after that time.
"""

from __future__ import annotations

from typing import Callable


class SimUnit:
    """One tray with a Raspberry-Pi-class unit: power rail, presence line and host OS."""

    def __init__(self, clock: Callable[[], float], *, present: bool = True,
                 boot_seconds: float = 4.0, shutdown_seconds: float = 2.0):
        self._clock = clock
        self._present = present
        self.boot_seconds = boot_seconds
        self.shutdown_seconds = shutdown_seconds
        self._rail = False
        self._rail_since = clock()
        self._halt_requested_at: float | None = None

    # PowerRail
    def set(self, on: bool) -> None:
        if on != self._rail:
            self._rail = on
            self._rail_since = self._clock()
            self._halt_requested_at = None

    def get(self) -> bool:
        return self._rail

    # Presence
    def present(self) -> bool:
        return self._present

    def plug(self, present: bool) -> None:
        """A hand at the rack: an unplugged unit loses its power with its tray."""
        self._present = present
        if not present:
            self.set(False)

    # Host
    def request_shutdown(self) -> None:
        if self._rail and self._halt_requested_at is None:
            self._halt_requested_at = self._clock()

    def state(self) -> str:
        if not (self._rail and self._present):
            return "off"
        now = self._clock()
        if self._halt_requested_at is not None:
            done = now - self._halt_requested_at >= self.shutdown_seconds
            return "halted" if done else "halting"
        return "running" if now - self._rail_since >= self.boot_seconds else "booting"


class SimTray:
    """A simulated tray: the unit above, plus its own SMBus segment with an INA226 power
    monitor (10 mΩ shunt) at 0x40 and a TMP102 at 0x48, driven by the unit's physics.
    The agent reads them through the real drivers."""

    INA_ADDR, TMP_ADDR, SHUNT_OHM = 0x40, 0x48, 0.01

    def __init__(self, unit: SimUnit, clock: Callable[[], float], load: float = 0.1, seed: int = 0):
        from . import sim_physics
        from .fake_smbus import FakeINA2xx, FakeSMBus, FakeTMP102
        self.unit, self.clock, self.load = unit, clock, load
        self.physics = sim_physics
        self.bus = FakeSMBus()
        self.ina = self.bus.attach(self.INA_ADDR, FakeINA2xx("ina226", self.SHUNT_OHM))
        self.tmp = self.bus.attach(self.TMP_ADDR, FakeTMP102(sim_physics.AMBIENT_C))
        self.thermal = sim_physics.Thermal()
        self.noise = sim_physics.Noise(seed)

    def convert(self) -> None:
        """One conversion of both chips, from the unit's state at the clock's time."""
        watts = self.physics.power_for(self.unit.state(), self.load)
        celsius = self.thermal.advance(self.clock(), watts)
        self.physics.feed(self.ina, self.tmp, watts, celsius, self.noise)
