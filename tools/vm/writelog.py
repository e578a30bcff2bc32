"""What a power cut leaves on a disk, rebuilt from QEMU's log of the writes to it.

QEMU's ``blklogwrites`` block driver (tools/vm/vm.py ``run(disk=...)``) records every
write and flush the guest sends to its disk, in order, in the format of Linux's
dm-log-writes (Documentation/admin-guide/device-mapper/log-writes.rst): sector 0 holds
a super block (magic, version, how many entries, the log's sector size), rewritten at
each flush; the entries follow from sector 1, each one sector of header (the disk
sector, how many sectors, flags) and then the data written.

A disk with a volatile write cache keeps, across a power cut, everything written before
its last completed flush, and of the writes after it any subset, in any order. So the
image a power cut leaves is the image before the run with the log's entries applied up
to the last flush (the super block vouches for that many: it is written after the flush
entry, and the guest learns the flush is done only after that), plus any subset of the
later writes. ``rebuild`` makes that image; the test chooses the subset.
"""

from __future__ import annotations

import mmap
import shutil
import struct
from dataclasses import dataclass

MAGIC = 0x6A736677736872
VERSION = 1
FLUSH, FUA, DISCARD, MARK = 1, 2, 4, 8
_SUPER = struct.Struct("<QQQI")
_ENTRY = struct.Struct("<QQQQ")


class LogError(Exception):
    pass


@dataclass(frozen=True)
class Entry:
    sector: int      # in the log's sector size
    sectors: int
    flags: int
    data_at: int     # offset of the data in the log file (none for flushes and discards)

    @property
    def is_write(self) -> bool:
        return not self.flags & (FLUSH | DISCARD | MARK) and self.sectors > 0


@dataclass(frozen=True)
class Log:
    sector_size: int
    entries: list[Entry]   # every whole entry found, in order
    vouched: int           # how many of them the last super block covers (ends with a flush)

    @property
    def durable(self) -> list[Entry]:
        return self.entries[:self.vouched]

    @property
    def unflushed_writes(self) -> list[Entry]:
        return [e for e in self.entries[self.vouched:] if e.is_write]


def read(path: str) -> Log:
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        magic, version, vouched, sector_size = _SUPER.unpack_from(data, 0)
        if magic != MAGIC or version != VERSION:
            raise LogError(f"{path}: not a write log (magic {magic:#x}, version {version})")
        entries: list[Entry] = []
        at = sector_size
        while at + _ENTRY.size <= len(data):
            sector, sectors, flags, _ = _ENTRY.unpack_from(data, at)
            if flags & ~(FLUSH | FUA | DISCARD | MARK) or (sector, sectors, flags) == (0, 0, 0):
                break   # past the last entry written (the file's unwritten tail reads as zeros)
            size = 0 if flags & DISCARD else sectors * sector_size
            if at + sector_size + size > len(data):
                break   # an entry the kill cut short
            entries.append(Entry(sector, sectors, flags, at + sector_size))
            at += sector_size + size
    if vouched > len(entries):
        raise LogError(f"{path}: the super block vouches for {vouched} entries, {len(entries)} found")
    if vouched and not entries[vouched - 1].flags & FLUSH:
        raise LogError(f"{path}: entry {vouched - 1} (the last one vouched for) is not a flush")
    return Log(sector_size, entries, vouched)


def rebuild(base: str, log_path: str, dest: str, later: list[Entry] = ()) -> Log:
    """``dest`` = ``base`` with the log's durable entries and then ``later`` (unflushed
    writes a power cut happened to keep) applied. Discards are left out: a discarded
    sector may read back old or zero, and old is one of the two."""
    log = read(log_path)
    shutil.copyfile(base, dest)
    with open(log_path, "rb") as src, open(dest, "r+b") as img:
        for e in [*log.durable, *later]:
            if e.is_write:
                src.seek(e.data_at)
                img.seek(e.sector * log.sector_size)
                img.write(src.read(e.sectors * log.sector_size))
    return log
