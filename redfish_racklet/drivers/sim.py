"""The simulated rack: units that boot and halt in plausible time, on an injected clock.

State changes are evaluated lazily from the clock (no threads), so a test that
advances a fake clock sees exactly what a real rack would show after that time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, Callable

if TYPE_CHECKING:
    from .slots import FileSlots

# A test bundle whose payload contains this marker boots into a firmware that never comes up.
HANG_MARKER = b"racklet-sim:hang"
SCAN_CHUNK = 64 * 1024   # bytes read at a time when an image is scanned for the marker


class SimUnit:
    """One tray with a Raspberry-Pi-class unit: power rail, presence line and host OS.

    ``firmware`` is called at each power-on and says whether the firmware that booted is
    healthy; an unhealthy one hangs in "booting". ``bmc_firmware`` does the same for the
    unit's BMC at each ``reset_bmc()``. None means always healthy.
    """

    def __init__(self, clock: Callable[[], float], *, present: bool = True,
                 boot_seconds: float = 4.0, shutdown_seconds: float = 2.0,
                 firmware: Callable[[], bool] | None = None,
                 bmc_firmware: Callable[[], bool] | None = None):
        self._clock = clock
        self._present = present
        self.boot_seconds = boot_seconds
        self.shutdown_seconds = shutdown_seconds
        self._rail = False
        self._rail_since = clock()
        self._halt_requested_at: float | None = None
        self.led = False
        self._firmware = firmware
        self._healthy = True
        self._bmc_firmware = bmc_firmware
        self._bmc_state = "ready"

    # PowerRail
    def set(self, on: bool) -> None:
        if on != self._rail:
            self._rail = on
            self._rail_since = self._clock()
            self._halt_requested_at = None
            if on:   # an absent unit boots nothing (and consumes no trial)
                self._healthy = not self._present or self._firmware is None or bool(self._firmware())

    def get(self) -> bool:
        return self._rail

    def set_led(self, on: bool) -> None:
        self.led = on

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
        if not self._healthy:
            return "booting"   # a hung boot: never comes up, never halts, while the rail is on
        now = self._clock()
        if self._halt_requested_at is not None:
            done = now - self._halt_requested_at >= self.shutdown_seconds
            return "halted" if done else "halting"
        return "running" if now - self._rail_since >= self.boot_seconds else "booting"

    # BMC
    def reset_bmc(self) -> None:
        """Reset the unit's BMC: it boots its firmware, which comes up or hangs."""
        ok = self._bmc_firmware is None or bool(self._bmc_firmware())
        self._bmc_state = "ready" if ok else "hung"

    def bmc_state(self) -> str:
        """"ready" or "hung"; "ready" before the first reset."""
        return self._bmc_state


def _contains(stream: BinaryIO, marker: bytes, chunk_size: int) -> bool:
    """Whether ``stream`` holds ``marker``, reading ``chunk_size`` bytes at a time; the
    last len(marker)-1 bytes are carried over so a marker split across chunks is found."""
    keep = len(marker) - 1
    tail = b""
    while chunk := stream.read(chunk_size):
        window = tail + chunk
        if marker in window:
            return True
        tail = window[-keep:] if keep else b""
    return False


def slot_boot(device: FileSlots, chunk_size: int = SCAN_CHUNK) -> Callable[[], bool]:
    """A ``firmware`` callable for SimUnit over a slot device: each call boots the device
    (consuming an armed trial, as a boot loader does) and is healthy unless the booted
    slot is empty, unreadable, or its image holds ``HANG_MARKER``."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1 byte")

    def boot_firmware() -> bool:
        from .slots import SlotError
        try:
            image = device.open(device.boot())
            if image is None:
                return False
            with image:
                return not _contains(image, HANG_MARKER, chunk_size)
        except (SlotError, OSError):
            return False   # a boot loader that cannot read its media boots nothing
    return boot_firmware


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
        self.hot_c = 0.0   # a hot spot (a blocked vent): added to the board's temperature at once

    def watts(self) -> float:
        return self.physics.power_for(self.unit.state(), self.load)

    def convert(self, ambient: float | None = None) -> None:
        """One conversion of both chips, from the unit's state at the clock's time."""
        watts = self.watts()
        celsius = self.thermal.advance(self.clock(), watts,
                                       self.physics.AMBIENT_C if ambient is None else ambient)
        self.physics.feed(self.ina, self.tmp, watts, celsius + self.hot_c, self.noise)


class SimRack:
    """The whole simulated rack: its trays, and the air in it that the fan cools.

    A hand at the rack: ``plug``/``unplug`` a unit, change its ``load``, make a sensor
    ``fail`` (NACK) or ``heal``, ``heat`` a board or the rack air. The rack air warms with the units' power and cools
    with the fan's speed; the units' boards take the rack air as their ambient.
    """

    FAULT_PARTS = ("power", "temperature", "fan")

    def __init__(self, trays: dict[str, SimTray], clock: Callable[[], float], fan=None):
        from . import sim_physics
        self.trays, self.clock, self.fan = trays, clock, fan
        self.air = sim_physics.RackAir()
        self.hot_c = 0.0   # extra heat in the rack air (a blocked intake)

    def plug(self, uid: str, present: bool) -> None:
        self.trays[uid].unit.plug(present)

    def set_load(self, uid: str, load: float) -> None:
        if not 0.0 <= load <= 1.0:
            raise ValueError("load is a fraction of full load, 0 to 1")
        self.trays[uid].load = load

    def heat(self, uid: str, celsius: float) -> None:
        """Add ``celsius`` (0 to 60) to a unit's board temperature, or to the rack air
        (``Rack``), at once: a blocked vent, to watch thresholds being crossed."""
        if not 0.0 <= celsius <= 60.0:
            raise ValueError("heat is 0 to 60 °C above what the physics gives")
        if uid == "Rack":
            self.hot_c = celsius
        else:
            self.trays[uid].hot_c = celsius

    def fail(self, uid: str, part: str, failing: bool) -> None:
        """Make a part NACK (every access raises ENXIO, as an absent chip does) or answer again."""
        import errno
        fault = OSError(errno.EREMOTEIO, "Remote I/O error") if failing else None
        if part == "fan":
            if self.fan is None:
                raise ValueError("this rack has no fan")
            self.fan.fault = fault
            return
        tray = self.trays[uid]
        chip = {"power": tray.ina, "temperature": tray.tmp}.get(part)
        if chip is None:
            raise ValueError(f"part is one of {', '.join(self.FAULT_PARTS)}")
        chip.fault = fault

    def convert(self) -> None:
        """One conversion of every chip in the rack, at the clock's time."""
        now = self.clock()
        total = sum(self.trays[u].watts() for u in self.trays)
        fan_fraction = self.fan.speed_fraction() if self.fan is not None else 1.0
        celsius = self.air.advance(now, total, fan_fraction) + self.hot_c
        if self.fan is not None:
            self.fan.celsius = celsius
        for tray in self.trays.values():
            tray.convert(ambient=celsius)


class SimFan:
    """The rack fan of the simulation: an EMC2101 (register-level fake) on its own bus,
    read and driven through the real driver; its speed cools the rack air."""

    ADDR = 0x4C

    def __init__(self, clock: Callable[[], float], max_rpm: float = 5000.0):
        from .fake_smbus import FakeEMC2101, FakeSMBus
        self.bus = FakeSMBus()
        self.chip = self.bus.attach(self.ADDR, FakeEMC2101(clock=clock, max_rpm=max_rpm))
        self.max_rpm = max_rpm

    @property
    def celsius(self) -> float:
        return self.chip.celsius

    @celsius.setter
    def celsius(self, value: float) -> None:
        self.chip.celsius = value

    @property
    def fault(self):
        return self.chip.fault

    @fault.setter
    def fault(self, value) -> None:
        self.chip.fault = value

    def speed_fraction(self) -> float:
        return self.chip.speed_fraction()
