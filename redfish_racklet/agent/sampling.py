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
from ..drivers.smbus import ChipError
from .energy import Integrator

log = logging.getLogger("racklet.agent")

KINDS = ("power", "voltage", "current", "temperature", "energy")


@dataclass
class UnitSensors:
    power_monitor: object      # .read() -> PowerReading
    thermometer: object        # .read() -> °C
    energy: Integrator = field(default_factory=Integrator)
    failing: set = field(default_factory=set)


def sample(units: dict[str, UnitSensors], now: float,
           changes: list | None = None) -> dict[str, dict[str, float | None]]:
    """One sweep: {unit: {kind: value or None}}; None means unavailable. Parts that
    stopped or started answering are appended to ``changes`` as (unit, part, ok)."""
    out: dict[str, dict[str, float | None]] = {}
    for uid, s in units.items():
        r: dict[str, float | None] = {k: None for k in KINDS}
        try:
            p = s.power_monitor.read()
            r.update(power=p.watts, voltage=p.volts, current=p.amps)
            r["energy"] = s.energy.add(now, p.watts)
            recovered(uid, s.failing, "power", changes)
        except (OSError, Overflow, ChipError) as e:
            s.energy.gap()
            r["energy"] = s.energy.joules
            failed(uid, s.failing, "power", e, changes)
        try:
            r["temperature"] = s.thermometer.read()
            recovered(uid, s.failing, "temperature", changes)
        except (OSError, ChipError) as e:
            failed(uid, s.failing, "temperature", e, changes)
        out[uid] = r
    return out


def failed(name: str, failing: set, part: str, e: Exception, changes: list | None = None) -> None:
    """Log a part's failure once, not once per sample."""
    if part not in failing:
        failing.add(part)
        log.warning("%s: %s sensor unavailable: %s", name, part, e)
        if changes is not None:
            changes.append((name, part, False))


def recovered(name: str, failing: set, part: str, changes: list | None = None) -> None:
    if part in failing:
        failing.discard(part)
        log.warning("%s: %s sensor back", name, part)
        if changes is not None:
            changes.append((name, part, True))
