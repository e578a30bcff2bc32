"""The agent's sampling loop: read every unit's power monitor and temperature sensor,
integrate energy, and hand the readings to the store in one write.

A sensor that fails (NACK, bus timeout, math overflow) marks its readings unavailable
for that unit — logged once, not once per sample — and the loop carries on with the
other units; when the part answers again the readings come back by themselves.
Energy counters only grow and are restored from the store at start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..drivers.ina2xx import Overflow
from .energy import Integrator

log = logging.getLogger("racklet.agent")

KINDS = ("power", "voltage", "current", "temperature", "energy")


@dataclass
class UnitSensors:
    power_monitor: object      # .read() -> PowerReading
    thermometer: object        # .read() -> °C
    energy: Integrator = field(default_factory=Integrator)
    failing: set = field(default_factory=set)


def sample(units: dict[str, UnitSensors], now: float) -> dict[str, dict[str, float | None]]:
    """One sweep: {unit: {kind: value or None}}; None means unavailable."""
    out: dict[str, dict[str, float | None]] = {}
    for uid, s in units.items():
        r: dict[str, float | None] = {k: None for k in KINDS}
        try:
            p = s.power_monitor.read()
            r.update(power=p.watts, voltage=p.volts, current=p.amps)
            r["energy"] = s.energy.add(now, p.watts)
            _recovered(uid, s, "power")
        except (OSError, Overflow) as e:
            s.energy.gap()
            r["energy"] = s.energy.joules
            _failed(uid, s, "power", e)
        try:
            r["temperature"] = s.thermometer.read()
            _recovered(uid, s, "temperature")
        except OSError as e:
            _failed(uid, s, "temperature", e)
        out[uid] = r
    return out


def _failed(uid: str, s: UnitSensors, part: str, e: Exception) -> None:
    if part not in s.failing:
        s.failing.add(part)
        log.warning("unit %s: %s sensor unavailable: %s", uid, part, e)


def _recovered(uid: str, s: UnitSensors, part: str) -> None:
    if part in s.failing:
        s.failing.discard(part)
        log.warning("unit %s: %s sensor back", uid, part)
