"""A register-level fake SMBus and fake chips that behave as their datasheets say.

Used by the simulated rack and the tests. The chips keep registers, not answers:
a test sets the physics (volts, amps, °C) and reads what the real chip would put
in its registers, including the awkward parts — the INA219's shifted bus voltage
with CNVR/OVF flags, CNVR cleared by reading POWER, calibration lost on a
brown-out, the TMP102's 12/13-bit formats, AT24 page-write wrap-around and the busy
write cycle. Like the kernel, the bus raises ``OSError(ENXIO)`` for an address where
nothing answers; ``fault`` makes a chip fail any way a test wants.
"""

from __future__ import annotations

import ctypes
import errno

from .at24 import VARIANTS as EEPROM_VARIANTS
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
