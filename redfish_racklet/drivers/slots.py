"""A/B firmware slots: where a component's two images live and which one boots next.

Every firmware component (the RMC's software, each unit's BMC firmware, each unit's
boot firmware) has two slots, "A" and "B". The agent writes the inactive slot, reads it
back to verify it, arms it for ONE trial boot and, after a health check, commits it as
the default. A trial that fails falls back to the default on the next reset, because
the boot loader clears the trial flag *before* it starts the trial.

This module owns the slot devices, not the policy:

- ``FileSlots``     two image files ``root/A`` and ``root/B`` and a JSON boot state
                    ``root/slots.json`` (a boot loader of our own, for the RMC and BMCs);
- ``TrybootSlots``  the Raspberry Pi ``tryboot`` A/B scheme over a unit's boot
                    directory: ``autoboot.txt`` picks the partition, a one-shot
                    ``tryboot`` flag arms the trial, images are partition files.

Both write images atomically (a ``.NAME.partial`` file, fsync, ``os.replace``, fsync
of the directory), so a crash or a full disk leaves the old image whole; every
``OSError`` leaves this module as a ``SlotError`` that keeps its ``errno``.
"""

from __future__ import annotations

import errno as errno_codes
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import BinaryIO, Iterable

log = logging.getLogger(__name__)

SLOTS = ("A", "B")
READ_CHUNK = 1024 * 1024          # digest read-back: bounded memory whatever the image size
PARTIAL_SUFFIX = ".partial"

_DISK_FULL = (errno_codes.ENOSPC, errno_codes.EDQUOT)


class SlotError(Exception):
    """A slot operation that failed or was refused; ``errno`` is the OS error's, if any."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


def _os_error(action: str, exc: OSError) -> SlotError:
    """Name the failure for a human: a full disk is the one an operator can fix."""
    if exc.errno in _DISK_FULL:
        message = f"{action}: the disk is full ({exc.strerror})"
    elif exc.errno == errno_codes.EFBIG:
        message = f"{action}: the image is larger than the file system allows ({exc.strerror})"
    else:
        message = f"{action}: {exc.strerror or exc}"
    return SlotError(message, exc.errno)


def _check_slot(slot: object) -> str:
    """Refuse anything but "A" or "B" before it becomes part of a path."""
    if not isinstance(slot, str) or slot not in SLOTS:
        raise SlotError(f"no slot {slot!r}; the slots are {' and '.join(SLOTS)}")
    return slot


def _partial_name(name: str) -> str:
    """The hidden temporary name of a file being replaced; clean_partials finds these."""
    return f".{name}{PARTIAL_SUFFIX}"


def _fsync_dir(path: str) -> None:
    """Make a rename or unlink in ``path`` durable: the directory entry is data too."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: memoryview) -> int:
    """os.write may write less than asked (signals, pipes, quotas): loop until done."""
    done = 0
    while done < len(data):
        done += os.write(fd, data[done:])
    return done


def _replace_file(root: str, name: str, chunks: Iterable[bytes]) -> int:
    """Write ``root/name`` atomically from ``chunks``; return the bytes written.

    The old file stays whole until ``os.replace``; on any exception (from the disk or
    from the chunks iterator, e.g. a digest mismatch) the partial file is removed and
    the exception re-raised unchanged, so callers can tell their own errors apart.
    """
    partial = os.path.join(root, _partial_name(name))
    _unlink_if_present(partial)           # a crash leftover would make O_EXCL fail
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        total = 0
        for chunk in chunks:
            total += _write_all(fd, memoryview(chunk).cast("B"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_if_present(partial)
        raise
    os.close(fd)
    try:
        os.replace(partial, os.path.join(root, name))
    except BaseException:
        _unlink_if_present(partial)
        raise
    _fsync_dir(root)
    return total


def _unlink_if_present(path: str) -> bool:
    """Remove a file that may not exist; report whether it did."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _read_text(path: str) -> str | None:
    """A small state file's text, or None when it is missing (a fresh device)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(64 * 1024)
    except FileNotFoundError:
        return None
    return raw.decode("utf-8")            # UnicodeDecodeError: the caller's "corrupt"


@dataclass(frozen=True)
class BootState:
    """What the boot loader will do: boot ``trial`` once if set, else ``default``."""

    default: str = "A"
    trial: str | None = None
    booted: str | None = None


class FileSlots:
    """A component's two slots as files root/A and root/B, plus root/slots.json for the boot state."""

    STATE_FILE = "slots.json"

    def __init__(self, root: str):
        self.root = root
        try:
            os.makedirs(root, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise _os_error(f"cannot create the slot directory {root}", exc) from exc
        if not os.path.isdir(root):
            raise SlotError(f"{root} is not a directory", errno_codes.ENOTDIR)

    # --- images --------------------------------------------------------------------

    def _image_name(self, slot: str) -> str:
        """The file holding a slot's image, relative to root."""
        return slot

    def _image_path(self, slot: str) -> str:
        return os.path.join(self.root, self._image_name(_check_slot(slot)))

    def write(self, slot: str, chunks: Iterable[bytes]) -> int:
        """Replace a slot's image atomically; refuse the slot that booted last (it is running)."""
        _check_slot(slot)
        if slot == self.booted():
            raise SlotError(f"slot {slot} holds the running firmware (it booted last); write the other slot")
        try:
            return _replace_file(self.root, self._image_name(slot), chunks)
        except OSError as exc:
            raise _os_error(f"cannot write slot {slot}", exc) from exc

    def open(self, slot: str) -> BinaryIO | None:
        """The slot's image for reading, or None when the slot is empty (missing or 0 bytes)."""
        path = self._image_path(slot)
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error(f"cannot read slot {slot}", exc) from exc
        try:
            empty = os.fstat(f.fileno()).st_size == 0
        except OSError as exc:
            f.close()
            raise _os_error(f"cannot read slot {slot}", exc) from exc
        if empty:
            f.close()
            return None
        return f

    def size(self, slot: str) -> int | None:
        """Bytes in the slot's image, or None when the slot is empty."""
        path = self._image_path(slot)
        try:
            n = os.stat(path).st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error(f"cannot read slot {slot}", exc) from exc
        return n or None

    def digest(self, slot: str) -> str | None:
        """SHA-256 of the image as read back from disk, which is what verification needs."""
        f = self.open(slot)
        if f is None:
            return None
        h = hashlib.sha256()
        try:
            with f:
                while chunk := f.read(READ_CHUNK):
                    h.update(chunk)
        except OSError as exc:
            raise _os_error(f"cannot read slot {slot}", exc) from exc
        return h.hexdigest()

    def erase(self, slot: str) -> None:
        """Empty a slot; never the default, which is what boots when a trial fails."""
        _check_slot(slot)
        if slot == self.default():
            raise SlotError(f"slot {slot} is the default; commit the other slot before erasing it")
        if self.trial() == slot:
            self.disarm()                 # never leave a trial armed on an empty slot
        try:
            if _unlink_if_present(self._image_path(slot)):
                _fsync_dir(self.root)
        except OSError as exc:
            raise _os_error(f"cannot erase slot {slot}", exc) from exc

    def clean_partials(self) -> list[str]:
        """Remove the temporary files a crash left behind mid-write; return their names."""
        try:
            names = sorted(n for n in os.listdir(self.root)
                           if n.startswith(".") and n.endswith(PARTIAL_SUFFIX))
            removed = [n for n in names if _unlink_if_present(os.path.join(self.root, n))]
            if removed:
                _fsync_dir(self.root)
        except OSError as exc:
            raise _os_error("cannot clean partial files", exc) from exc
        return removed

    def _require_image(self, slot: str, action: str) -> None:
        if self.size(slot) is None:
            raise SlotError(f"cannot {action} slot {slot}: it is empty")

    # --- boot state ----------------------------------------------------------------

    def _state_path(self) -> str:
        return os.path.join(self.root, self.STATE_FILE)

    def _load(self) -> BootState:
        """The persisted boot state; a fresh (missing) or corrupt file means default A, no trial."""
        path = self._state_path()
        try:
            text = _read_text(path)
        except UnicodeDecodeError:
            text = ""
        except OSError as exc:
            raise _os_error("cannot read the boot state", exc) from exc
        if text is None:
            return BootState()
        state = _parse_state(text)
        if state is None:
            log.warning("boot state %s is corrupt; booting the default slot A with no trial", path)
            return BootState()
        return state

    def _save(self, state: BootState) -> None:
        record = {"default": state.default, "trial": state.trial, "booted": state.booted}
        data = json.dumps(record, sort_keys=True).encode() + b"\n"
        try:
            _replace_file(self.root, self.STATE_FILE, [data])
        except OSError as exc:
            raise _os_error("cannot save the boot state", exc) from exc

    def default(self) -> str:
        """The slot booted when no trial is armed."""
        return self._load().default

    def trial(self) -> str | None:
        """The slot armed for one trial boot, or None."""
        return self._load().trial

    def booted(self) -> str | None:
        """The slot of the last boot(); None before the first."""
        return self._load().booted

    def _check_arm(self, slot: str) -> None:
        """A trial of the default would be no trial; a trial of nothing would hang."""
        _check_slot(slot)
        self._require_image(slot, "arm a trial of")
        if slot == self.default():
            raise SlotError(f"slot {slot} is already the default; a trial must boot the other slot")

    def arm_trial(self, slot: str) -> None:
        """Boot ``slot`` once at the next boot(); the default stays for every boot after."""
        self._check_arm(slot)
        s = self._load()
        self._save(BootState(s.default, slot, s.booted))

    def disarm(self) -> None:
        """Cancel an armed trial (a no-op when none is armed)."""
        s = self._load()
        if s.trial is not None:
            self._save(BootState(s.default, None, s.booted))

    def commit(self, slot: str) -> None:
        """Make ``slot`` the default (after its health check) and disarm any trial."""
        _check_slot(slot)
        self._require_image(slot, "commit")
        s = self._load()
        self._save(BootState(slot, None, s.booted))

    def boot(self) -> str:
        """What a boot loader does at power-on: a trial is consumed before it runs, once."""
        s = self._load()
        slot = s.trial or s.default
        self._save(BootState(s.default, None, slot))
        return slot


def _parse_state(text: str) -> BootState | None:
    """slots.json, checked field by field; None when anything is off."""
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or set(record) != {"default", "trial", "booted"}:
        return None
    default, trial, booted = record["default"], record["trial"], record["booted"]
    if default not in SLOTS or trial not in (None, *SLOTS) or booted not in (None, *SLOTS):
        return None
    if trial == default:
        return None
    return BootState(default, trial, booted)


# --- Raspberry Pi tryboot -----------------------------------------------------------

PARTITIONS = {"A": 2, "B": 3}                          # slot -> boot partition number
SLOT_OF_PARTITION = {p: s for s, p in PARTITIONS.items()}


class AutobootError(ValueError):
    """autoboot.txt that this module will not guess about."""


def parse_autoboot(text: str) -> dict[str, dict[str, str]]:
    """``autoboot.txt`` as {section: {key: value}}: ``[section]`` lines, ``key=value``
    lines, blank lines and ``#`` comment lines; anything else is an error, as is a
    key before the first section or a key given twice in one section."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]") and len(line) > 2:
            current = sections.setdefault(line[1:-1].strip(), {})
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or current is None or key in current:
            raise AutobootError(f"autoboot.txt line {number}: {raw!r}")
        current[key] = value
    return sections


def _partition_slot(value: str | None, where: str) -> str | None:
    """A boot_partition value as a slot letter; only partitions 2 and 3 are slots."""
    if value is None:
        return None
    if not value.isdigit() or int(value) not in SLOT_OF_PARTITION:
        raise AutobootError(f"{where} boot_partition={value!r} is not 2 or 3")
    return SLOT_OF_PARTITION[int(value)]


def render_autoboot(default: str, tryboot: str) -> str:
    """The autoboot.txt the Pi bootloader reads: boot ``default``; with the tryboot flag, ``tryboot``."""
    return ("[all]\n"
            "tryboot_a_b=1\n"
            f"boot_partition={PARTITIONS[_check_slot(default)]}\n"
            "[tryboot]\n"
            f"boot_partition={PARTITIONS[_check_slot(tryboot)]}\n")


def _other(slot: str) -> str:
    return SLOTS[1 - SLOTS.index(slot)]


class TrybootSlots(FileSlots):
    """Raspberry Pi `tryboot` A/B over a unit's boot directory (the RMC's view of the unit's FAT boot media).
    Slot A = boot partition 2, slot B = boot partition 3; images are root/partition2.img, root/partition3.img.

    ``autoboot.txt`` holds the default (``[all] boot_partition``) and the trial partition
    (``[tryboot] boot_partition``); the file ``tryboot`` is the one-shot flag that
    ``reboot "0 tryboot"`` sets and the firmware clears before it starts the trial;
    ``booted`` holds the slot letter of the last boot.
    """

    AUTOBOOT = "autoboot.txt"
    FLAG = "tryboot"
    BOOTED = "booted"

    def _image_name(self, slot: str) -> str:
        return f"partition{PARTITIONS[slot]}.img"

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def _partitions(self) -> tuple[str, str | None]:
        """(default slot, tryboot slot) from autoboot.txt; missing means partition 2, no tryboot."""
        path = self._path(self.AUTOBOOT)
        try:
            text = _read_text(path)
            if text is None:
                return "A", None
            sections = parse_autoboot(text)
            default = _partition_slot(sections.get("all", {}).get("boot_partition"), "[all]") or "A"
            tryboot = _partition_slot(sections.get("tryboot", {}).get("boot_partition"), "[tryboot]")
        except (AutobootError, UnicodeDecodeError) as exc:
            log.warning("%s is corrupt (%s); booting the default partition 2 with no trial", path, exc)
            return "A", None
        except OSError as exc:
            raise _os_error("cannot read autoboot.txt", exc) from exc
        return default, tryboot

    def _write_autoboot(self, default: str, tryboot: str) -> None:
        try:
            _replace_file(self.root, self.AUTOBOOT, [render_autoboot(default, tryboot).encode()])
        except OSError as exc:
            raise _os_error("cannot write autoboot.txt", exc) from exc

    def _flag_set(self) -> bool:
        return os.path.lexists(self._path(self.FLAG))

    def _clear_flag(self) -> None:
        try:
            if _unlink_if_present(self._path(self.FLAG)):
                _fsync_dir(self.root)
        except OSError as exc:
            raise _os_error("cannot clear the tryboot flag", exc) from exc

    def default(self) -> str:
        return self._partitions()[0]

    def trial(self) -> str | None:
        """The [tryboot] slot while the flag is set and it differs from the default."""
        if not self._flag_set():
            return None
        default, tryboot = self._partitions()
        return tryboot if tryboot != default else None

    def booted(self) -> str | None:
        path = self._path(self.BOOTED)
        try:
            text = _read_text(path)
        except UnicodeDecodeError:
            text = ""
        except OSError as exc:
            raise _os_error("cannot read the booted slot", exc) from exc
        if text is None:
            return None
        slot = text.strip()
        if slot not in SLOTS:
            log.warning("%s is corrupt; the last booted slot is unknown", path)
            return None
        return slot

    def arm_trial(self, slot: str) -> None:
        """autoboot.txt first, then the flag: a set flag never points at a stale partition."""
        self._check_arm(slot)
        self._write_autoboot(self.default(), slot)
        try:
            _replace_file(self.root, self.FLAG, [b""])
        except OSError as exc:
            raise _os_error("cannot set the tryboot flag", exc) from exc

    def disarm(self) -> None:
        self._clear_flag()

    def commit(self, slot: str) -> None:
        """Flag first, then autoboot.txt: a crash in between leaves the old default, disarmed."""
        _check_slot(slot)
        self._require_image(slot, "commit")
        self._clear_flag()
        self._write_autoboot(slot, _other(slot))

    def boot(self) -> str:
        """The Pi firmware: with the flag set, clear it, then boot [tryboot]; else [all].
        The flag is cleared whenever it is set, even with no usable [tryboot] partition."""
        slot = self.trial() or self.default()
        if self._flag_set():
            self._clear_flag()
        try:
            _replace_file(self.root, self.BOOTED, [slot.encode() + b"\n"])
        except OSError as exc:
            raise _os_error("cannot record the booted slot", exc) from exc
        return slot
