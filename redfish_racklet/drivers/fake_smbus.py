"""A register-level fake SMBus and fake chips that behave as their datasheets say.

Used by the simulated rack and the tests. The chips keep registers, not answers:
a test sets the physics (volts, amps, °C) and reads what the real chip would put
in its registers, including the awkward parts — the INA219's shifted bus voltage
with CNVR/OVF flags, CNVR cleared by reading POWER, calibration lost on a
brown-out, the TMP102's 12/13-bit formats, AT24 page-write wrap-around and the busy
write cycle, the EMC2101's latched 16-bit readings and its fan spinning up and down on
an injected clock. Like the kernel, the bus raises ``OSError(ENXIO)`` for an address
where nothing answers; ``fault`` makes a chip fail any way a test wants.
"""

from __future__ import annotations

import ctypes
import errno
import math
from typing import Callable

from .at24 import VARIANTS as EEPROM_VARIANTS
from . import emc2101 as emc
from .ina2xx import (BUS_VOLTAGE, CALIBRATION, CONFIG, CONFIG_RST, CURRENT, DIE_ID, INA219_CNVR,
                     INA219_OVF, MANUFACTURER_ID, MASK_ENABLE, ME_CVRF, ME_OVF, POWER, SHUNT_VOLTAGE,
                     TI_ID, VARIANTS as INA_VARIANTS)
from .smbus import swap16
from .temperature import TMP102_AL, TMP102_EM, TMP102_LSB, TMP102_R1R0

I2C_M_RD = 0x0001


def _clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


class FakeChip:
    fault: OSError | None = None   # raised on every access while set
    busy = 0                       # transactions still NACKed (EEPROM write cycle)

    def read16(self, reg: int) -> int:
        raise OSError(errno.EIO, "register not readable")

    def write16(self, reg: int, value: int) -> None:
        raise OSError(errno.EIO, "register not writable")

    def read8(self, reg: int) -> int:
        return self.read16(reg) >> 8

    def write8(self, reg: int, value: int) -> None:
        raise OSError(errno.EIO, "register not writable")


class FakeSMBus:
    """Implements the ``SMBusLike`` subset of ``smbus2.SMBus``."""

    def __init__(self):
        self.devices: dict[int, FakeChip] = {}
        self.transactions = 0

    def attach(self, address: int, chip: FakeChip) -> FakeChip:
        self.devices[address] = chip
        return chip

    def detach(self, address: int) -> None:
        self.devices.pop(address, None)

    def _dev(self, address: int) -> FakeChip:
        self.transactions += 1
        chip = self.devices.get(address)
        if chip is None:
            raise OSError(errno.ENXIO, f"no device at {address:#04x}")
        if chip.fault is not None:
            raise chip.fault
        if chip.busy:
            chip.busy -= 1
            raise OSError(errno.ENXIO, f"device at {address:#04x} busy (NACK)")
        return chip

    def read_word_data(self, i2c_addr: int, register: int) -> int:
        return swap16(self._dev(i2c_addr).read16(register) & 0xFFFF)

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._dev(i2c_addr).write16(register, swap16(value & 0xFFFF))

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        return self._dev(i2c_addr).read8(register) & 0xFF

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._dev(i2c_addr).write8(register, value & 0xFF)

    def i2c_rdwr(self, *msgs) -> None:
        for msg in msgs:
            chip = self._dev(msg.addr)
            if msg.flags & I2C_M_RD:
                data = bytes(chip.i2c_read(msg.len))
                ctypes.memmove(msg.buf, data, msg.len)
            else:
                chip.i2c_write(bytes(msg))


class FakeINA2xx(FakeChip):
    """INA219/INA226/INA260 with a real shunt; ``set_load`` completes one conversion."""

    SHUNT_RANGE = {"ina219": 32000, "ina226": 32767, "ina260": 32767}   # PGA /8: ±320 mV
    BUS_MAX = {"ina219": 8000, "ina226": 0x7FFF, "ina260": 0x7FFF}       # 32 V; 40.96 V
    DIVISOR = {"ina219": (4096, 5000), "ina226": (2048, 20000)}

    def __init__(self, chip: str, r_shunt: float = 0.002):
        self.chip, self.v, self.r_shunt = chip, INA_VARIANTS[chip], r_shunt
        self.volts = self.amps = 0.0
        self.power_cycle()

    def power_cycle(self) -> None:
        """Brown-out or reset: every register back to its power-on default."""
        self.config = self.v.config
        self.cal = 0
        self.shunt = self.bus = self.current = self.power = 0
        self.ready = self.overflow = False

    def set_load(self, volts: float, amps: float) -> None:
        self.volts, self.amps = volts, amps
        self._convert()

    def _convert(self) -> None:
        c = self.chip
        self.overflow = False
        self.bus = _clamp(round(self.volts / self.v.bus_lsb), 0, self.BUS_MAX[c])
        if c == "ina260":
            raw_i = round(self.amps / self.v.fixed_current_lsb)
            self.overflow = not -32768 <= raw_i <= 32767
            self.current = _clamp(raw_i, -32768, 32767)
            self.power = _clamp(round(abs(self.volts * self.amps) / self.v.fixed_power_lsb), 0, 0xFFFF)
        else:
            rng = self.SHUNT_RANGE[c]
            raw_shunt = round(self.amps * self.r_shunt / self.v.shunt_lsb)
            self.shunt = _clamp(raw_shunt, -rng, rng)
            cur_div, pow_div = self.DIVISOR[c]
            current = self.shunt * self.cal // cur_div if self.cal else 0
            power = abs(current) * self.bus // pow_div if self.cal else 0
            self.overflow = (raw_shunt != self.shunt or not -32768 <= current <= 32767
                             or power > 0xFFFF)
            self.current = _clamp(current, -32768, 32767)
            self.power = _clamp(power, 0, 0xFFFF)
        self.ready = True

    def read16(self, reg: int) -> int:
        c = self.chip
        if reg == CONFIG:
            return self.config
        if reg == SHUNT_VOLTAGE and c != "ina260":
            return self.shunt & 0xFFFF
        if reg == BUS_VOLTAGE:
            if c == "ina219":
                return (self.bus << 3) | (INA219_CNVR if self.ready else 0) | (INA219_OVF if self.overflow else 0)
            return self.bus
        if reg == POWER:
            if c == "ina219":
                self.ready = False  # datasheet: reading POWER clears CNVR
            return self.power
        if reg == CURRENT:
            return self.current & 0xFFFF
        if reg == CALIBRATION and c != "ina260":
            return self.cal
        if reg == MASK_ENABLE and c != "ina219":
            flags = (ME_CVRF if self.ready else 0) | (ME_OVF if self.overflow else 0)
            self.ready = False  # reading Mask/Enable clears CVRF
            return flags
        if reg == MANUFACTURER_ID and c != "ina219":
            return TI_ID
        if reg == DIE_ID and c != "ina219":
            return self.v.die_id
        raise OSError(errno.EIO, f"{c}: no register {reg:#04x}")

    def write16(self, reg: int, value: int) -> None:
        if reg == CONFIG:
            if value & CONFIG_RST:
                self.power_cycle()
            else:
                self.config = value
        elif reg == CALIBRATION and self.chip != "ina260":
            self.cal = value & self.v.cal_mask
            self._convert()
        else:
            raise OSError(errno.EIO, f"{self.chip}: register {reg:#04x} is read-only")


class FakeTMP102(FakeChip):
    """``supports_extended=False`` models a look-alike without EM (the setting won't stick)."""

    def __init__(self, celsius: float = 25.0, supports_extended: bool = True):
        self.celsius = celsius
        self.supports_extended = supports_extended
        self.config = 0x60A0
        self.t_low, self.t_high = 0x4B00, 0x5000

    def read16(self, reg: int) -> int:
        if reg == 0x00:
            if self.config & TMP102_EM:   # 13-bit, bit 0 set
                counts = _clamp(round(self.celsius / TMP102_LSB), -880, 2400)
                return ((counts & 0x1FFF) << 3) | 0x0001
            counts = _clamp(round(self.celsius / TMP102_LSB), -880, 0x7FF)  # saturates at 127.9375
            return (counts & 0xFFF) << 4
        if reg == 0x01:
            return self.config
        if reg == 0x02:
            return self.t_low
        if reg == 0x03:
            return self.t_high
        raise OSError(errno.EIO, "tmp102: no such register")

    def write16(self, reg: int, value: int) -> None:
        if reg == 0x01:
            keep_em = TMP102_EM if self.supports_extended else 0
            self.config = TMP102_R1R0 | (value & (0x1FC0 | keep_em)) | (self.config & TMP102_AL)
        elif reg == 0x02:
            self.t_low = value & 0xFFF0
        elif reg == 0x03:
            self.t_high = value & 0xFFF0
        else:
            raise OSError(errno.EIO, "tmp102: temperature register is read-only")


class FakeLM75(FakeChip):
    def __init__(self, celsius: float = 25.0, bits: int = 9):
        self.celsius, self.bits, self.conf = celsius, bits, 0

    def read16(self, reg: int) -> int:
        if reg == 0x00:
            step = 2 ** (self.bits - 8)  # counts per °C: 2 (9-bit), 8 (11-bit)
            counts = _clamp(round(self.celsius * step), -55 * step, 125 * step)
            return (counts << (16 - self.bits)) & 0xFFFF
        raise OSError(errno.EIO, "lm75: register not readable as a word")

    def read8(self, reg: int) -> int:
        if reg == 0x01:
            return self.conf
        raise OSError(errno.EIO, "lm75: register not readable as a byte")

    def write8(self, reg: int, value: int) -> None:
        if reg != 0x01:
            raise OSError(errno.EIO, "lm75: register not writable as a byte")
        self.conf = value & 0x1F


class FakeAT24(FakeChip):
    """Sequential reads roll over the whole array; page writes wrap within their page."""

    def __init__(self, chip: str = "24c32", content: bytes = b"", write_cycle_polls: int = 3):
        self.v = EEPROM_VARIANTS[chip]
        self.mem = bytearray(b"\xff" * self.v.size)
        self.mem[:len(content)] = content
        self.pointer = 0
        self.write_cycle_polls = write_cycle_polls
        self.page_writes = 0

    def i2c_write(self, data: bytes) -> None:
        n = self.v.addr_bytes
        if len(data) < n:
            raise OSError(errno.EIO, "eeprom: short address")
        self.pointer = int.from_bytes(data[:n], "big") % self.v.size
        payload = data[n:]
        if not payload:
            return  # a dummy write: just sets the address
        base = self.pointer - self.pointer % self.v.page
        for i, b in enumerate(payload):
            self.mem[base + (self.pointer - base + i) % self.v.page] = b
        self.page_writes += 1
        self.busy = self.write_cycle_polls   # internal write cycle: NACK for a while

    def i2c_read(self, length: int) -> bytes:
        out = bytes(self.mem[(self.pointer + i) % self.v.size] for i in range(length))
        self.pointer = (self.pointer + length) % self.v.size
        return out


class FakeEMC2101(FakeChip):
    """EMC2101 with a fan on its output and a diode on DP/DN, on an injected ``clock``.

    Byte registers with their power-on defaults; read-only registers ignore writes and
    undefined ones read 00h. Reading EXTERNAL_TEMP_HIGH latches the low byte, reading
    TACH_LOW latches the high byte (§6.1), so each pair is one sample. FAN_SETTING (and
    the look-up table) can be written only with PROG set; with PROG clear the look-up
    table would drive the fan — it is not modelled, the drive stays where it was. The
    STATUS bits latch until read (FAULT while ``diode_fault``, TACH while the count is
    over the TACH limit).

    The fan: a drive d (0..1 of full scale; PWM: FAN_SETTING / 2·PWM_F, DAC:
    FAN_SETTING / 63; POLARITY inverts) at or above ``min_drive`` spins it towards
    ``max_rpm`` · d, below it the fan stalls (no spin-up kick is modelled). The speed
    follows with a first-order lag of ``tau`` seconds, evaluated lazily from the clock
    on every access — no threads, no sleeps. TACH holds 5 400 000 / RPM, or FFFFh when
    the fan is too slow to measure or pin 6 is not a TACH input (ALT_TCH clear).

    A test or the simulated rack sets ``celsius`` (the diode), ``internal_celsius``
    (the die) and ``diode_fault`` (an open diode: FAULT, reading 7F00h), and reads
    ``rpm`` or ``speed_fraction()``.
    """

    POR = {emc.CONFIG: 0x00, emc.CONVERSION_RATE: 0x08, 0x05: 0x46, 0x07: 0x46, 0x08: 0x00,
           0x0C: 0x00, 0x11: 0x00, 0x12: 0x00, 0x13: 0x00, 0x14: 0x00, 0x16: 0xA4, 0x17: 0x12,
           0x18: 0x08, 0x19: 0x55, 0x21: 0x0A, emc.TACH_LIMIT_LOW: 0xFF, emc.TACH_LIMIT_HIGH: 0xFF,
           emc.FAN_CONFIG: 0x20, emc.FAN_SPIN_UP: 0x3F, emc.FAN_SETTING: 0x00,
           emc.PWM_FREQUENCY: 0x17, emc.PWM_DIVIDE: 0x01, 0x4F: 0x04,
           **{lut: 0x00 for lut in range(0x50, 0x60)}, 0xBF: 0x00}
    MASKS = {emc.CONVERSION_RATE: 0x0F, emc.FAN_CONFIG: 0x7F, emc.FAN_SPIN_UP: 0x3F,
             emc.FAN_SETTING: emc.FAN_SETTING_MASK, emc.PWM_FREQUENCY: emc.PWM_F_MASK, 0x4F: 0x1F,
             **{lut: 0x7F if lut % 2 == 0 else 0x3F for lut in range(0x50, 0x60)}}
    ALIASES = {0x09: emc.CONFIG, 0x0A: emc.CONVERSION_RATE}
    LUT = range(0x50, 0x60)
    REVISION_ID = 0x01
    SLOWEST_RPM = emc.RPM_NUMERATOR / (emc.TACH_STALLED - 1)   # ~82 RPM: TACH FFFEh

    def __init__(self, clock: Callable[[], float], celsius: float = 25.0, *,
                 internal_celsius: float = 30.0, max_rpm: float = 5000.0, min_drive: float = 0.20,
                 tau: float = 1.0, product_id: int = 0x16, manufacturer_id: int = emc.SMSC_ID):
        self.clock = clock
        self.celsius, self.internal_celsius = celsius, internal_celsius
        self.max_rpm, self.min_drive, self.tau = max_rpm, min_drive, tau
        self.product_id, self.manufacturer_id = product_id, manufacturer_id
        self._rpm, self._t = 0.0, clock()
        self._diode_fault = False
        self._power_on()

    def _power_on(self) -> None:
        self.regs = dict(self.POR)
        self._status = emc.STATUS_FAULT if self._diode_fault else 0
        self._ext_low_shadow, self._tach_high_shadow = 0x00, 0xFF

    def power_cycle(self) -> None:
        """Brown-out or reset: every register back to its power-on default (the fan setting
        to 0, so the fan runs down)."""
        self._advance()
        self._power_on()

    @property
    def diode_fault(self) -> bool:
        return self._diode_fault

    @diode_fault.setter
    def diode_fault(self, fault: bool) -> None:
        self._diode_fault = bool(fault)
        if fault:
            self._status |= emc.STATUS_FAULT   # latched until STATUS is read

    def drive(self) -> float:
        """The fraction of full drive at the output, from the registers."""
        r = self.regs
        output = "dac" if r[emc.CONFIG] & emc.CONFIG_DAC else "pwm"
        d = min(1.0, r[emc.FAN_SETTING] / emc.full_scale(output, r[emc.PWM_FREQUENCY]))
        return 1.0 - d if r[emc.FAN_CONFIG] & emc.FAN_POLARITY else d

    def _advance(self) -> None:
        now = self.clock()
        if now > self._t:
            d = self.drive()
            target = self.max_rpm * d if d >= self.min_drive else 0.0
            self._rpm = target + (self._rpm - target) * math.exp(-(now - self._t) / self.tau)
        self._t = now

    @property
    def rpm(self) -> float:
        self._advance()
        return self._rpm

    def speed_fraction(self) -> float:
        """The fan's speed as a fraction of its maximum (what cools the rack air)."""
        return self.rpm / self.max_rpm

    def tach_count(self) -> int:
        """What the TACH registers hold now."""
        self._advance()
        if not self.regs[emc.CONFIG] & emc.CONFIG_ALT_TCH or self._rpm < self.SLOWEST_RPM:
            return emc.TACH_STALLED
        return min(round(emc.RPM_NUMERATOR / self._rpm), emc.TACH_STALLED - 1)

    def _external_raw(self) -> int:
        if self._diode_fault:
            return emc.DIODE_OPEN
        counts = _clamp(round(self.celsius / emc.EXT_LSB), -512, 1023)   # -64..127.875 °C
        return (counts & 0x7FF) << 5

    def _conditions(self) -> int:
        r = self.regs
        limit = (r[emc.TACH_LIMIT_HIGH] << 8) | r[emc.TACH_LIMIT_LOW]
        slow = r[emc.CONFIG] & emc.CONFIG_ALT_TCH and self.tach_count() > limit
        return (emc.STATUS_FAULT if self._diode_fault else 0) | (emc.STATUS_TACH if slow else 0)

    def read8(self, reg: int) -> int:
        self._advance()
        reg = self.ALIASES.get(reg, reg)
        if reg == emc.INTERNAL_TEMP:
            return _clamp(round(self.internal_celsius), -64, 127) & 0xFF
        if reg == emc.EXTERNAL_TEMP_HIGH:
            raw = self._external_raw()
            self._ext_low_shadow = raw & 0xFF
            return raw >> 8
        if reg == emc.EXTERNAL_TEMP_LOW:
            return self._ext_low_shadow
        if reg == emc.STATUS:
            now = self._conditions()
            value, self._status = self._status | now, now   # a read clears what has gone away
            return value
        if reg == emc.TACH_LOW:
            count = self.tach_count()
            self._tach_high_shadow = count >> 8
            return count & 0xFF
        if reg == emc.TACH_HIGH:
            return self._tach_high_shadow
        ids = {emc.PRODUCT_ID: self.product_id, emc.MANUFACTURER_ID: self.manufacturer_id,
               emc.REVISION: self.REVISION_ID}
        if reg in ids:
            return ids[reg]
        return self.regs.get(reg, 0x00)   # undefined registers read 00h

    def write8(self, reg: int, value: int) -> None:
        self._advance()   # the fan ran at the old drive until now
        reg = self.ALIASES.get(reg, reg)
        if reg not in self.regs:
            return   # read-only or undefined: the write has no effect
        if (reg == emc.FAN_SETTING or reg in self.LUT) and not self.regs[emc.FAN_CONFIG] & emc.FAN_PROG:
            return   # the look-up table is driving the fan: these are read-only
        self.regs[reg] = value & self.MASKS.get(reg, 0xFF)
