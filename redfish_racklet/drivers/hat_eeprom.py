"""The Raspberry Pi HAT ID EEPROM format (raspberrypi/hats, eeprom-format.md), parsed.

Layout: a 12-byte header ("R-Pi", version, reserved, numatoms u16, eeplen u32), then
atoms (type u16, count u16, dlen u32, data[dlen-2], crc16). All integers are little
endian; the CRC is CRC-16/ARC (polynomial 0x8005 reflected, initial 0) over the atom's
header and data. The vendor atom (type 1) holds the board's UUID, product id and
version, and the vendor and product strings. ``build`` makes an image (for tests and
for programming a tray's EEPROM).
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

SIGNATURE = b"R-Pi"
HEADER = struct.Struct("<4sBBHI")
ATOM_HEADER = struct.Struct("<HHI")
VENDOR = struct.Struct("<16sHHBB")
ATOM_VENDOR, ATOM_GPIO = 0x0001, 0x0002


class HatFormatError(ValueError):
    pass


@dataclass(frozen=True)
class HatInfo:
    uuid: str
    product_id: int
    product_version: int
    vendor: str
    product: str

    def fru(self) -> dict:
        """Redfish FRU properties of the unit carrying this EEPROM."""
        return {"manufacturer": self.vendor, "model": self.product, "serial_number": self.uuid,
                "part_number": f"{self.product_id:#06x} v{self.product_version}"}


def crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _uuid_from_disk(raw: bytes) -> str:
    # eepmake stores the UUID as four 32-bit little-endian words, least significant first:
    # on disk it is the 128-bit value in little-endian byte order.
    return str(uuid.UUID(int=int.from_bytes(raw, "little")))


def parse(image: bytes) -> HatInfo:
    if len(image) < HEADER.size:
        raise HatFormatError("shorter than the header")
    sig, version, _, numatoms, eeplen = HEADER.unpack_from(image)
    if sig != SIGNATURE:
        raise HatFormatError("no R-Pi signature (blank or foreign EEPROM)")
    if version != 1:
        raise HatFormatError(f"format version {version} is not supported")
    if not HEADER.size <= eeplen <= len(image):
        raise HatFormatError(f"eeplen {eeplen} does not fit the image")
    pos = HEADER.size
    for _ in range(numatoms):
        if pos + ATOM_HEADER.size > eeplen:
            raise HatFormatError("atom header runs past eeplen")
        atype, _count, dlen = ATOM_HEADER.unpack_from(image, pos)
        end = pos + ATOM_HEADER.size + dlen
        if dlen < 2 or end > eeplen:
            raise HatFormatError(f"atom at {pos} has a bad length {dlen}")
        body = image[pos:end - 2]
        (stored,) = struct.unpack_from("<H", image, end - 2)
        if crc16(body) != stored:
            raise HatFormatError(f"atom at {pos}: CRC mismatch")
        if atype == ATOM_VENDOR:
            return _vendor(body[ATOM_HEADER.size:])
        pos = end
    raise HatFormatError("no vendor info atom")


def _vendor(data: bytes) -> HatInfo:
    if len(data) < VENDOR.size:
        raise HatFormatError("vendor atom too short")
    raw_uuid, pid, pver, vslen, pslen = VENDOR.unpack_from(data)
    strings = data[VENDOR.size:]
    if len(strings) < vslen + pslen:
        raise HatFormatError("vendor strings run past the atom")
    text = lambda b: b.decode("ascii", errors="replace").rstrip("\x00")  # noqa: E731
    return HatInfo(uuid=_uuid_from_disk(raw_uuid), product_id=pid, product_version=pver,
                   vendor=text(strings[:vslen]), product=text(strings[vslen:vslen + pslen]))


def build(info: HatInfo) -> bytes:
    v, p = info.vendor.encode("ascii"), info.product.encode("ascii")
    raw_uuid = uuid.UUID(info.uuid).int.to_bytes(16, "little")
    data = VENDOR.pack(raw_uuid, info.product_id, info.product_version, len(v), len(p)) + v + p
    atom = ATOM_HEADER.pack(ATOM_VENDOR, 0, len(data) + 2) + data
    atom += struct.pack("<H", crc16(atom))
    return HEADER.pack(SIGNATURE, 1, 0, 1, HEADER.size + len(atom)) + atom
