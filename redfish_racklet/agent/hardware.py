"""The rack's hardware as the agent holds it, built from the manifest.

``build(manifest, ...)`` returns a ``Hardware``: per unit, an object with the
PowerRail, Presence, Host and LED methods (``drivers.PowerRail`` …) and its sensors;
the rack fan; and the simulation (``sim``) when the manifest's driver is ``sim``.

- ``sim``: simulated trays (``drivers.sim``) whose register-level fake chips are read
  through the real SMBus drivers.
- ``linux``: one libgpiod v2 request for every rail, LED and presence line on
  ``rack.gpio_chip``, held for the agent's life, and ``smbus2`` buses ``/dev/i2c-N``.
  ``gpio`` and ``open_bus`` can be injected (the tests pass the fakes).
"""

from __future__ import annotations

import errno
import os
import logging
from dataclasses import dataclass, field
from typing import Callable

from ..drivers.ina2xx import INA2xx
from ..drivers.smbus import ChipError
from ..drivers.temperature import LM75, TMP102
from ..manifest import Manifest
from . import sampling

log = logging.getLogger("racklet.agent")

POWER_MONITOR_DEFAULTS = {"ina219": (0.1, 3.2), "ina226": (0.01, 3.2), "ina260": (0.002, 15.0)}


class HardwareError(Exception):
    """The hardware the manifest names cannot be used; the message names the manifest entry."""


@dataclass
class Hardware:
    units: dict                                   # uid -> rail/presence/host/led object
    sensors: dict[str, sampling.UnitSensors]
    fan: object | None = None                     # drivers.emc2101.EMC2101
    sim: object | None = None                     # drivers.sim.SimRack
    before_sample: list[Callable[[], None]] = field(default_factory=list)
    fru: dict[str, dict] = field(default_factory=dict)  # uid -> what its HAT EEPROM says
    presence_fd: int | None = None                # readable when a presence line has an edge
    presence_changes: Callable[[], list[str]] = lambda: []
    close: Callable[[], None] = lambda: None
    firmware: dict = field(default_factory=dict)  # (target, component) -> drivers.slots device


def firmware_devices(manifest: Manifest, root: str) -> dict:
    """The A/B slot devices of every component: the RMC's software, each unit's BMC
    firmware (files), each unit's boot firmware (Raspberry Pi tryboot). Directories
    default to ``root/TARGET/COMPONENT``; the manifest can name others."""
    from ..drivers.slots import FileSlots, TrybootSlots
    devices = {("RMC", "rmc"): FileSlots(manifest.firmware.get("rmc") or os.path.join(root, "RMC", "rmc"))}
    for u in manifest.units:
        devices[(u.id, "bmc")] = FileSlots(u.firmware.get("bmc") or os.path.join(root, u.id, "bmc"))
        devices[(u.id, "boot")] = TrybootSlots(u.firmware.get("boot") or os.path.join(root, u.id, "boot"))
    return devices


def build(manifest: Manifest, clock: Callable[[], float], rails_on: dict[str, bool],
          gpio=None, open_bus=None, firmware_root: str | None = None) -> Hardware:
    """``firmware_root``: where slot directories live by default (the state dir's
    ``firmware``); None: no firmware slots (tests of the loops alone)."""
    devices = firmware_devices(manifest, firmware_root) if firmware_root else {}
    if manifest.driver == "sim":
        hw = _simulated(manifest, clock, devices)
    else:
        hw = _linux(manifest, clock, rails_on, gpio, open_bus)
    hw.firmware = devices
    return hw


def _simulated(manifest: Manifest, clock, devices: dict) -> Hardware:
    from ..drivers.emc2101 import EMC2101
    from ..drivers.sim import SimFan, SimRack, SimTray, SimUnit, slot_boot
    trays = {}
    sensors = {}
    for spec in manifest.units:
        unit = SimUnit(clock, present=spec.sim.get("present", True),
                       boot_seconds=spec.sim.get("boot_seconds", 4.0),
                       shutdown_seconds=spec.sim.get("shutdown_seconds", 2.0),
                       firmware=slot_boot(devices[(spec.id, "boot")]) if devices else None,
                       bmc_firmware=slot_boot(devices[(spec.id, "bmc")]) if devices else None)
        tray = trays[spec.id] = SimTray(unit, clock, load=spec.load, seed=manifest.seed * 100 + spec.slot)
        ina = INA2xx(tray.bus, tray.INA_ADDR, "ina226", r_shunt=tray.SHUNT_OHM, max_current=3.2)
        tmp = TMP102(tray.bus, tray.TMP_ADDR)
        ina.init()
        tmp.init()
        sensors[spec.id] = sampling.UnitSensors(ina, tmp)
    fan_sim = SimFan(clock, max_rpm=manifest.info()["fan_max_rpm"])
    fan = EMC2101(fan_sim.bus, fan_sim.ADDR)
    fan.init()
    rack = SimRack(trays, clock, fan_sim)
    return Hardware(units={u: t.unit for u, t in trays.items()}, sensors=sensors, fan=fan, sim=rack,
                    before_sample=[rack.convert])


class GpioUnit:
    """A real tray: rail, LED and presence lines on the agent's GPIO request.

    Without a channel to the unit's BMC yet, the host is 'running' while its rail is
    on; a graceful shutdown cannot ask the OS, so it waits ``grace`` seconds (the
    agent's timeout) before the rail is cut.
    """

    def __init__(self, bank, uid: str, clock):
        self.bank, self.uid, self.clock = bank, uid, clock
        self._halt_at: float | None = None

    def set(self, on: bool) -> None:
        self.bank.set_rail(self.uid, on)
        self._halt_at = None

    def get(self) -> bool:
        return self.bank.rail(self.uid)

    def present(self) -> bool:
        return self.bank.present(self.uid)

    def set_led(self, on: bool) -> None:
        if self.bank.units[self.uid].led:
            self.bank.set_led(self.uid, on)

    def request_shutdown(self) -> None:
        if self._halt_at is None:
            self._halt_at = self.clock()

    def state(self) -> str:
        if not self.get():
            return "off"
        return "halting" if self._halt_at is not None else "running"


def _linux(manifest: Manifest, clock, rails_on, gpio, open_bus) -> Hardware:
    from ..drivers.gpio import GpioBank, GpioError, UnitLines
    if open_bus is None:
        import smbus2

        def open_bus(n):
            return smbus2.SMBus(n)
    lines = {u.id: UnitLines(rail=u.gpio["rail"], presence=u.gpio.get("presence"), led=u.gpio.get("led"))
             for u in manifest.units}
    try:
        bank = GpioBank(manifest.gpio_chip, lines, rails_on, gpio=gpio)
    except GpioError as e:
        raise HardwareError(str(e)) from None
    buses: dict[int, object] = {}

    def bus(n: int, where: str):
        if n not in buses:
            try:
                buses[n] = open_bus(n)
            except OSError as e:
                raise HardwareError(f"cannot open /dev/i2c-{n} ({where}): {e.strerror or e}") from None
        return buses[n]

    sensors = {}
    fru: dict[str, dict] = {}
    for spec in manifest.units:
        s = spec.sensors
        pm = th = None
        if "power" in s:
            p = s["power"]
            shunt, imax = POWER_MONITOR_DEFAULTS[p["chip"]]
            pm = INA2xx(bus(p.get("bus", manifest.smbus), f"units[{spec.id}].sensors.power"), p["address"],
                        p["chip"], r_shunt=p.get("shunt_ohms", shunt), max_current=p.get("max_current", imax))
            _init(pm, spec.id, "power")
        if "temperature" in s:
            t = s["temperature"]
            cls = TMP102 if t["chip"] == "tmp102" else LM75
            th = cls(bus(t.get("bus", manifest.smbus), f"units[{spec.id}].sensors.temperature"), t["address"])
            _init(th, spec.id, "temperature")
        sensors[spec.id] = sampling.UnitSensors(pm or _Missing(), th or _Missing())
        if s.get("eeprom", {}).get("hat"):
            e = s["eeprom"]
            fru[spec.id] = _read_hat(bus(e.get("bus", manifest.smbus), f"units[{spec.id}].sensors.eeprom"),
                                     e["address"], e["chip"], spec.id)
    fan = None
    if manifest.fan:
        from ..drivers.emc2101 import EMC2101
        f = manifest.fan
        fan = EMC2101(bus(f.get("bus", manifest.smbus), "rack.fan"), f.get("address", 0x4C))
        _init(fan, "rack", "fan")

    def close():
        bank.release()
        for b in buses.values():
            getattr(b, "close", lambda: None)()

    return Hardware(units={u.id: GpioUnit(bank, u.id, clock) for u in manifest.units}, sensors=sensors,
                    fan=fan, fru=fru, presence_fd=bank.fileno(), presence_changes=bank.presence_changes, close=close)


def _read_hat(bus, address: int, chip: str, uid: str) -> dict:
    """FRU facts from a tray's HAT ID EEPROM; {} (the manifest's values) when unreadable."""
    from ..drivers import hat_eeprom
    from ..drivers.at24 import AT24
    try:
        eeprom = AT24(bus, address, chip)
        return hat_eeprom.parse(eeprom.read(0, eeprom.v.size)).fru()
    except (OSError, hat_eeprom.HatFormatError) as e:
        log.warning("%s: HAT EEPROM unreadable, using the manifest's FRU data: %s", uid, e)
        return {}


def _init(chip, uid: str, part: str) -> None:
    """Configure a chip; one that does not answer now is retried by the sampling loop."""
    try:
        chip.init()
    except OSError as e:
        log.warning("%s: %s sensor does not answer at start: %s", uid, part, e)
    except ChipError as e:  # something answers, but not the chip the manifest names
        raise HardwareError(f"{uid} {part} sensor (manifest): {e}") from None


class _Missing:
    """A sensor the manifest does not declare: always unavailable."""

    def read(self):
        raise OSError(errno.ENODEV, "no such sensor in the manifest")
