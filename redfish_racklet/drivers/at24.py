"""AT24-family I2C EEPROMs (Microchip AT24C02/C32/C64/C256 datasheets) over ``i2c_rdwr``.

Reads set the address pointer with a write of the memory address and then read
sequentially. Writes are split at page boundaries, because a page write that runs
past the end of its page wraps around to the start of the *same* page and
overwrites it. After each page the chip is busy with its internal write cycle and
does not acknowledge its address; the driver polls (bounded) until it does.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Callable

from smbus2 import i2c_msg

from .smbus import SMBusLike


@dataclass(frozen=True)
class EepromVariant:
    size: int
    page: int
    addr_bytes: int


VARIANTS = {
    "24c02": EepromVariant(256, 8, 1),
    "24c32": EepromVariant(4096, 32, 2),   # the Raspberry Pi HAT ID EEPROM
    "24c64": EepromVariant(8192, 32, 2),
    "24c256": EepromVariant(32768, 64, 2),
}
WRITE_CYCLE_POLLS = 50   # acknowledge polls after a page write (t_WR is 5 ms)
MAX_READ = 256           # bytes per read transaction


class AT24:
    def __init__(self, bus: SMBusLike, address: int, chip: str = "24c32",
                 wait: Callable[[float], None] | None = None):
        self.bus, self.address, self.v = bus, address, VARIANTS[chip]
        self.wait = wait or (lambda s: None)

    def _addr(self, offset: int) -> list[int]:
        return list(offset.to_bytes(self.v.addr_bytes, "big"))

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.v.size:
            raise ValueError(f"{offset}+{length} is outside a {self.v.size}-byte EEPROM")

    def read(self, offset: int, length: int) -> bytes:
        self._check(offset, length)
        out = bytearray()
        while len(out) < length:
            n = min(MAX_READ, length - len(out))
            w = i2c_msg.write(self.address, self._addr(offset + len(out)))
            r = i2c_msg.read(self.address, n)
            self.bus.i2c_rdwr(w, r)
            out += bytes(r)
        return bytes(out)

    def write(self, offset: int, data: bytes) -> None:
        self._check(offset, len(data))
        pos = 0
        while pos < len(data):
            start = offset + pos
            room = self.v.page - (start % self.v.page)   # never cross a page boundary
            chunk = data[pos:pos + room]
            self.bus.i2c_rdwr(i2c_msg.write(self.address, self._addr(start) + list(chunk)))
            self._wait_ready()
            pos += len(chunk)

    def _wait_ready(self) -> None:
        for _ in range(WRITE_CYCLE_POLLS):
            try:
                self.bus.i2c_rdwr(i2c_msg.write(self.address, self._addr(0)))
                return
            except OSError as e:
                if e.errno not in (errno.ENXIO, errno.EREMOTEIO, errno.EIO):
                    raise
                self.wait(0.001)
        raise TimeoutError(f"EEPROM at {self.address:#04x} stayed busy after a write")
