"""TMP102 and LM75 temperature sensors over SMBus (TI SBOS397, NXP LM75B).

TMP102: 12-bit (-55..128 °C) or, with EM set, 13-bit (..150 °C) readings, 0.0625 °C
per LSB; bit 0 of the temperature register says which format it is in, so decoding
follows the chip, not our assumption. The configuration is written and read back,
and a chip where it "did not stick" is refused (as Linux ``tmp102.c`` does).
LM75: 9-bit (LM75/LM75A) or 11-bit (LM75B) readings, left-aligned in 16 bits.
"""

from __future__ import annotations

from .smbus import ChipError, SMBusLike, read_reg16, s16, write_reg16

TEMPERATURE, CONFIG, T_LOW, T_HIGH = 0x00, 0x01, 0x02, 0x03  # TMP102
LM75_TEMP, LM75_CONF, LM75_THYST, LM75_TOS = 0x00, 0x01, 0x02, 0x03

# TMP102 configuration bits (16-bit register, datasheet Table 8).
TMP102_OS, TMP102_R1R0, TMP102_SD, TMP102_TM = 0x8000, 0x6000, 0x0100, 0x0200
TMP102_CR_4HZ, TMP102_EM, TMP102_AL = 0x0080, 0x0010, 0x0020
TMP102_LSB = 0.0625


def tmp102_celsius(raw: int) -> float:
    """Temperature register → °C, in whichever of the two formats the chip used."""
    extended = raw & 0x0001
    return (s16(raw) >> (3 if extended else 4)) * TMP102_LSB


def lm75_celsius(raw: int, bits: int) -> float:
    """Left-aligned two's complement with ``bits`` significant bits → °C."""
    mask = (0xFFFF << (16 - bits)) & 0xFFFF
    return s16(raw & mask) / 256


class TMP102:
    def __init__(self, bus: SMBusLike, address: int, extended: bool = False):
        self.bus, self.address, self.extended = bus, address, extended

    @property
    def config(self) -> int:
        return TMP102_R1R0 | TMP102_CR_4HZ | TMP102_AL | (TMP102_EM if self.extended else 0)

    def init(self) -> None:
        write_reg16(self.bus, self.address, CONFIG, self.config)
        got = read_reg16(self.bus, self.address, CONFIG)
        # OS and AL are status bits the chip may change; everything else must stick.
        if got & ~(TMP102_OS | TMP102_AL) != self.config & ~TMP102_AL:
            raise ChipError(f"tmp102 at {self.address:#04x}: configuration did not stick "
                            f"(wrote {self.config:#06x}, read {got:#06x})")

    def read(self) -> float:
        return tmp102_celsius(read_reg16(self.bus, self.address, TEMPERATURE))


class LM75:
    """LM75 family; ``bits`` is 9 for LM75/LM75A, 11 for LM75B."""

    def __init__(self, bus: SMBusLike, address: int, bits: int = 9):
        if bits not in (9, 11):
            raise ValueError("LM75 resolution is 9 or 11 bits")
        self.bus, self.address, self.bits = bus, address, bits

    def init(self) -> None:
        self.bus.write_byte_data(self.address, LM75_CONF, 0x00)  # comparator mode, running
        got = self.bus.read_byte_data(self.address, LM75_CONF)
        if got & 0x1F != 0:
            raise ChipError(f"lm75 at {self.address:#04x}: configuration did not stick ({got:#04x})")

    def read(self) -> float:
        return lm75_celsius(read_reg16(self.bus, self.address, LM75_TEMP), self.bits)
