"""The SMBus seam: the subset of ``smbus2.SMBus`` the drivers use, and byte-order helpers.

Drivers take any object with these methods: a real ``smbus2.SMBus(n)`` on a rack, or
``drivers.fake_smbus.FakeSMBus`` in the simulation and the tests. As the kernel
does, an address where nothing answers raises ``OSError(ENXIO)``.

SMBus words are sent low byte first; the INA2xx, TMP102 and LM75 send their 16-bit
registers high byte first. So a register value is the byte-swapped SMBus word.
"""

from __future__ import annotations

from typing import Protocol


class SMBusLike(Protocol):
    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...
    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...
    def read_word_data(self, i2c_addr: int, register: int) -> int: ...
    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None: ...
    def i2c_rdwr(self, *msgs) -> None: ...


def swap16(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def s16(value: int) -> int:
    """Two's complement of a 16-bit register."""
    return value - 0x10000 if value & 0x8000 else value


def read_reg16(bus: SMBusLike, addr: int, reg: int) -> int:
    """A big-endian 16-bit register, as the chip means it."""
    return swap16(bus.read_word_data(addr, reg))


def write_reg16(bus: SMBusLike, addr: int, reg: int, value: int) -> None:
    bus.write_word_data(addr, reg, swap16(value & 0xFFFF))


class ChipError(Exception):
    """The chip answered, but not as its datasheet says (wrong id, setting did not stick)."""
