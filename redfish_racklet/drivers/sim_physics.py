"""Physics of a simulated Raspberry Pi 4 unit: what it draws and how warm it gets.

Power by state: off 0 W; booting ~4.5 W; running 2.7 W idle to 6.6 W at full load;
halting ~3 W. The supply is 5.1 V at the rail, a little lower under load (cable
resistance). The board's temperature follows its power with a first-order lag:
T → T_ambient + R_th · P with time constant ``tau``. A seeded random source adds
small sensor-like noise, so a run is reproducible. All state is advanced explicitly
with ``advance(now)``, from the injected clock — no threads, no sleeps.

``feed`` writes the physics into register-level fake chips (``FakeINA2xx``,
``FakeTMP102``), so the simulated rack is read through the real drivers.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

IDLE_W, BUSY_W, BOOT_W, HALT_W = 2.7, 6.6, 4.5, 3.0
SUPPLY_V, CABLE_OHM = 5.1, 0.05
AMBIENT_C, R_THERMAL, TAU_S = 25.0, 4.5, 60.0  # °C/W from board to air; seconds


def power_for(host_state: str, load: float) -> float:
    """Watts drawn in a host state at a load between 0 (idle) and 1 (all cores busy)."""
    if host_state == "off":
        return 0.0
    if host_state == "booting":
        return BOOT_W
    if host_state in ("halting", "halted"):
        return HALT_W if host_state == "halting" else 0.6  # halted: SoC in reset, PMIC on
    return IDLE_W + (BUSY_W - IDLE_W) * max(0.0, min(1.0, load))


def rail_volts(watts: float) -> float:
    """Rail voltage at the board: the supply less the cable drop at this current."""
    amps = watts / SUPPLY_V
    return SUPPLY_V - amps * CABLE_OHM


@dataclass
class Thermal:
    celsius: float = AMBIENT_C
    t: float | None = None

    def advance(self, now: float, watts: float, ambient: float = AMBIENT_C) -> float:
        """Exact first-order step towards the steady state for the time since the last call."""
        if self.t is not None and now > self.t:
            target = ambient + R_THERMAL * watts
            self.celsius = target + (self.celsius - target) * math.exp(-(now - self.t) / TAU_S)
        self.t = now
        return self.celsius


@dataclass
class RackAir:
    """The air in the rack: warmed by the units' power, cooled by the fan.

    Steady state T = ambient + P · R(f), where the thermal resistance falls with the
    fan's speed fraction f (natural convection alone at f = 0):
    R(f) = R_AIR / (CONVECTION + (1 − CONVECTION) · f). First-order, time constant TAU.
    """

    R_AIR = 0.5          # °C per W at full fan speed
    CONVECTION = 0.2     # the share of cooling left with the fan stopped
    TAU = 30.0
    celsius: float = AMBIENT_C
    t: float | None = None

    def steady(self, watts: float, fan_fraction: float, ambient: float = AMBIENT_C) -> float:
        f = max(0.0, min(1.0, fan_fraction))
        return ambient + watts * self.R_AIR / (self.CONVECTION + (1 - self.CONVECTION) * f)

    def advance(self, now: float, watts: float, fan_fraction: float) -> float:
        if self.t is not None and now > self.t:
            target = self.steady(watts, fan_fraction)
            self.celsius = target + (self.celsius - target) * math.exp(-(now - self.t) / self.TAU)
        self.t = now
        return self.celsius


class Noise:
    """Seeded, small, zero-mean noise (a fraction of a reading)."""

    def __init__(self, seed: int, scale: float = 0.002):
        self.rng, self.scale = random.Random(seed), scale

    def __call__(self, value: float) -> float:
        return value * (1 + self.rng.gauss(0.0, self.scale))


def feed(ina, tmp, watts: float, celsius: float, noise: Noise | None = None) -> None:
    """Put the physics into the fake chips' registers, as a conversion would."""
    n = noise or (lambda v: v)
    volts = rail_volts(watts)
    amps = watts / volts if volts else 0.0
    ina.set_load(n(volts), n(amps))
    tmp.celsius = celsius
