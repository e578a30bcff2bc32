"""INA219, INA226 and INA260 power monitors over SMBus (TI datasheets SBOS448, SBOS547, SBOS656).

Variants are rows of a table (as Linux ``hwmon/ina2xx.c`` does), not branches.
Calibration is computed from the board's shunt resistance and the largest current
expected; the configuration is written and read back; a CALIBRATION register that
reads 0 means the chip was reset (brown-out), so the driver initialises it again.
Everything returned is in SI units.
"""

from __future__ import annotations

from dataclasses import dataclass

from .smbus import ChipError, SMBusLike, read_reg16, s16, write_reg16

# Register addresses (datasheet names).
CONFIG, SHUNT_VOLTAGE, BUS_VOLTAGE, POWER, CURRENT, CALIBRATION = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05
MASK_ENABLE = 0x06          # INA226/INA260
MANUFACTURER_ID, DIE_ID = 0xFE, 0xFF
CONFIG_RST = 0x8000
# INA219 BUS_VOLTAGE flags; INA226/260 MASK_ENABLE flags.
INA219_CNVR, INA219_OVF = 0x0002, 0x0001
ME_CVRF, ME_OVF = 0x0008, 0x0004
TI_ID = 0x5449              # "TI"


@dataclass(frozen=True)
class Variant:
    name: str
    config: int                 # what we write: continuous shunt+bus, the chip's defaults otherwise
    shunt_lsb: float | None     # volts per LSB of SHUNT_VOLTAGE
    bus_lsb: float              # volts per LSB of BUS_VOLTAGE after the shift
    bus_shift: int              # INA219 keeps CNVR/OVF in the low bits
    cal_numerator: float | None  # CAL = numerator / (current_lsb * r_shunt); None: fixed shunt
    power_lsb_factor: float     # power LSB = factor * current LSB
    fixed_current_lsb: float | None = None  # INA260: internal 2 mOhm shunt
    fixed_power_lsb: float | None = None
    die_id: int | None = None   # value of DIE_ID (INA226/260 have one)
    cal_mask: int = 0xFFFF      # INA219: bit 0 of CALIBRATION is not used


VARIANTS = {
    "ina219": Variant("ina219", config=0x399F, shunt_lsb=10e-6, bus_lsb=4e-3, bus_shift=3,
                      cal_numerator=0.04096, power_lsb_factor=20, cal_mask=0xFFFE),
    "ina226": Variant("ina226", config=0x4127, shunt_lsb=2.5e-6, bus_lsb=1.25e-3, bus_shift=0,
                      cal_numerator=0.00512, power_lsb_factor=25, die_id=0x2260),
    "ina260": Variant("ina260", config=0x6127, shunt_lsb=None, bus_lsb=1.25e-3, bus_shift=0,
                      cal_numerator=None, power_lsb_factor=0, fixed_current_lsb=1.25e-3,
                      fixed_power_lsb=10e-3, die_id=0x2270),
}


@dataclass(frozen=True)
class PowerReading:
    volts: float        # bus voltage (load side)
    amps: float
    watts: float
    fresh: bool         # a conversion finished since the last reading


class Overflow(Exception):
    """The chip flagged a math overflow: current or power is out of range (too small a shunt,
    or a short). The reading is not usable."""


def calibration(variant: Variant, r_shunt: float, max_current: float) -> tuple[int, float]:
    """(CALIBRATION value, current LSB in amps) for a shunt and the largest expected current."""
    if variant.cal_numerator is None:
        return 0, variant.fixed_current_lsb
    current_lsb = max_current / 32768
    cal = int(variant.cal_numerator / (current_lsb * r_shunt)) & ~(0xFFFF ^ variant.cal_mask)
    if not 0 < cal <= 0xFFFF:
        raise ValueError(f"{variant.name}: shunt {r_shunt} ohm and {max_current} A give calibration {cal}")
    return cal, current_lsb


def bus_volts(variant: Variant, raw: int) -> float:
    return (raw >> variant.bus_shift) * variant.bus_lsb


class INA2xx:
    def __init__(self, bus: SMBusLike, address: int, chip: str, r_shunt: float = 0.002,
                 max_current: float = 3.2):
        self.bus, self.address = bus, address
        self.variant = VARIANTS[chip]
        self.cal, self.current_lsb = calibration(self.variant, r_shunt, max_current)
        self.power_lsb = self.variant.fixed_power_lsb or self.variant.power_lsb_factor * self.current_lsb
        self.resets_seen = 0

    def init(self) -> None:
        v = self.variant
        if v.die_id is not None:
            mfr = read_reg16(self.bus, self.address, MANUFACTURER_ID)
            die = read_reg16(self.bus, self.address, DIE_ID)
            if (mfr, die & 0xFFF0) != (TI_ID, v.die_id):
                raise ChipError(f"{v.name} at {self.address:#04x}: ids {mfr:#06x}/{die:#06x} are not an {v.name}")
        write_reg16(self.bus, self.address, CONFIG, v.config)
        got = read_reg16(self.bus, self.address, CONFIG)
        if got != v.config:
            raise ChipError(f"{v.name} at {self.address:#04x}: configuration did not stick "
                            f"(wrote {v.config:#06x}, read {got:#06x})")
        if v.cal_numerator is not None:
            write_reg16(self.bus, self.address, CALIBRATION, self.cal)
            if read_reg16(self.bus, self.address, CALIBRATION) != self.cal:
                raise ChipError(f"{v.name} at {self.address:#04x}: calibration did not stick")

    def read(self) -> PowerReading:
        v, bus, a = self.variant, self.bus, self.address
        if v.cal_numerator is not None and read_reg16(bus, a, CALIBRATION) == 0:
            self.resets_seen += 1  # brown-out: the chip forgot its calibration
            self.init()
        raw_bus = read_reg16(bus, a, BUS_VOLTAGE)
        if v.bus_shift:
            fresh, overflow = bool(raw_bus & INA219_CNVR), bool(raw_bus & INA219_OVF)
        else:
            flags = read_reg16(bus, a, MASK_ENABLE)  # reading clears CVRF
            fresh, overflow = bool(flags & ME_CVRF), bool(flags & ME_OVF)
        if overflow:
            raise Overflow(f"{v.name} at {a:#04x}: math overflow")
        amps = s16(read_reg16(bus, a, CURRENT)) * self.current_lsb
        watts = read_reg16(bus, a, POWER) * self.power_lsb  # INA219: reading POWER clears CNVR
        return PowerReading(volts=bus_volts(v, raw_bus), amps=amps, watts=watts, fresh=fresh)
