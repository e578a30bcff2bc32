"""A/B firmware slots (drivers.slots) and the simulated units that boot from them (drivers.sim)."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from redfish_racklet.drivers import slots as slots_mod
from redfish_racklet.drivers.sim import HANG_MARKER, SCAN_CHUNK, SimUnit, slot_boot
from redfish_racklet.drivers.slots import SLOTS, FileSlots, SlotError, TrybootSlots, parse_autoboot

SPEC_AUTOBOOT = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"
DEVICES = [FileSlots, TrybootSlots]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class DigestMismatch(ValueError):
    """What an agent's verifying chunk iterator raises; must come out of write() unchanged."""


def chunks_then_fail(parts: list[bytes]):
    yield from parts
    raise DigestMismatch("sha256 does not match the manifest")


def listing(root) -> list[str]:
    return sorted(os.listdir(root))


def partials(root) -> list[str]:
    return [n for n in listing(root) if n.endswith(".partial")]


@pytest.fixture(params=DEVICES, ids=lambda c: c.__name__)
def device(request, tmp_path):
    return request.param(str(tmp_path / "dev"))


# --- a fresh device --------------------------------------------------------------------

def test_fresh_device_defaults_to_a_with_no_trial_and_empty_slots(device):
    assert stat.S_IMODE(os.stat(device.root).st_mode) == 0o700
    assert (device.default(), device.trial(), device.booted()) == ("A", None, None)
    for slot in SLOTS:
        assert device.size(slot) is None and device.digest(slot) is None and device.open(slot) is None


def test_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(SlotError):
        FileSlots(str(tmp_path / "f"))


@pytest.mark.parametrize("bad", ["C", "a", "", "A ", None, 0, "../A"])
def test_every_operation_refuses_a_slot_that_is_not_a_or_b(device, bad):
    for op in (device.digest, device.size, device.open, device.erase, device.arm_trial, device.commit):
        with pytest.raises(SlotError):
            op(bad)
    with pytest.raises(SlotError):
        device.write(bad, [b"x"])
    assert listing(device.root) == []


# --- writing -----------------------------------------------------------------------------

def test_write_returns_bytes_and_digest_is_read_back_from_disk(device):
    data = os.urandom(slots_mod.READ_CHUNK) + b"tail" + os.urandom(slots_mod.READ_CHUNK // 2)
    parts = [data[i:i + 300_000] for i in range(0, len(data), 300_000)]
    assert device.write("B", parts) == len(data)
    assert device.size("B") == len(data)
    assert device.digest("B") == hashlib.sha256(data).hexdigest()
    with device.open("B") as f:
        assert f.read() == data
    # read back from disk: flip a byte underneath the driver and the digest follows
    path = os.path.join(device.root, device._image_name("B"))
    with open(path, "r+b") as f:
        f.seek(5)
        f.write(bytes([data[5] ^ 0xFF]))
    assert device.digest("B") != hashlib.sha256(data).hexdigest()
    assert device.size("A") is None


def test_write_accepts_bytearray_and_memoryview_chunks(device):
    assert device.write("A", [bytearray(b"ab"), memoryview(b"cd"), b""]) == 4
    assert device.digest("A") == hashlib.sha256(b"abcd").hexdigest()


def test_partial_file_is_private_while_it_is_written(device):
    seen = []

    def chunks():
        yield b"first"
        name = f".{device._image_name('A')}.partial"
        seen.append(stat.S_IMODE(os.stat(os.path.join(device.root, name)).st_mode))
        yield b"second"

    device.write("A", chunks())
    assert seen == [0o600]
    assert partials(device.root) == []


def test_failing_chunk_iterator_leaves_old_image_whole_and_no_partial(device):
    device.write("A", [b"old firmware"])
    with pytest.raises(DigestMismatch):
        device.write("A", chunks_then_fail([b"new ", b"firmware that is longer"]))
    with device.open("A") as f:
        assert f.read() == b"old firmware"
    assert partials(device.root) == []


def test_a_failed_first_write_leaves_the_slot_empty(device):
    with pytest.raises(DigestMismatch):
        device.write("B", chunks_then_fail([b"x" * 1000]))
    assert device.size("B") is None and partials(device.root) == []


def test_chunks_that_are_not_bytes_are_refused_and_cleaned_up(device):
    device.write("A", [b"old"])
    with pytest.raises(TypeError):
        device.write("A", [b"ok", "text is not an image"])
    assert device.digest("A") == hashlib.sha256(b"old").hexdigest()
    assert partials(device.root) == []


def test_an_empty_write_leaves_an_empty_slot(device):
    assert device.write("B", []) == 0
    assert device.size("B") is None and device.open("B") is None
    with pytest.raises(SlotError, match="empty"):
        device.arm_trial("B")


def test_clean_partials_removes_only_crash_leftovers(device):
    device.write("A", [b"image"])
    for name in (".A.partial", ".slots.json.partial", ".partition3.img.partial"):
        with open(os.path.join(device.root, name), "wb") as f:
            f.write(b"half written")
    with open(os.path.join(device.root, "notes.partial.txt"), "wb") as f:
        f.write(b"not ours")
    before = set(listing(device.root))
    removed = device.clean_partials()
    assert removed == [".A.partial", ".partition3.img.partial", ".slots.json.partial"]
    assert set(listing(device.root)) == before - set(removed)
    assert device.digest("A") == hashlib.sha256(b"image").hexdigest()
    assert device.clean_partials() == []


def test_a_leftover_partial_does_not_block_the_next_write(device):
    name = f".{device._image_name('B')}.partial"
    with open(os.path.join(device.root, name), "wb") as f:
        f.write(b"crash leftover, much longer than the new image")
    device.write("B", [b"new"])
    with device.open("B") as f:
        assert f.read() == b"new"
    assert partials(device.root) == []


def test_the_slot_that_booted_last_cannot_be_written(device):
    device.write("A", [b"running firmware"])
    assert device.boot() == "A"
    with pytest.raises(SlotError, match="running"):
        device.write("A", [b"overwrite"])
    with device.open("A") as f:
        assert f.read() == b"running firmware"
    assert device.write("B", [b"next"]) == 4
    # after a trial boot of B it is B that runs, and A that may be written
    device.arm_trial("B")
    assert device.boot() == "B"
    with pytest.raises(SlotError):
        device.write("B", [b"x"])
    assert device.write("A", [b"ok"]) == 2


# --- a full disk ---------------------------------------------------------------------

def disk_of(capacity: int, real_write):
    """os.write as a file system with ``capacity`` bytes free: short write, then ENOSPC."""
    free = [capacity]

    def write(fd, data):
        if free[0] == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real_write(fd, bytes(data[:free[0]]))
        free[0] -= n
        return n
    return write


def test_disk_full_is_a_slot_error_that_says_so_and_leaves_nothing(device, monkeypatch):
    device.write("A", [b"old firmware"])
    monkeypatch.setattr(os, "write", disk_of(1000, os.write))   # the driver's only write call
    with pytest.raises(SlotError) as caught:
        device.write("A", [b"x" * 600, b"y" * 600, b"z" * 600])
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC
    assert "disk is full" in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)
    assert device.digest("A") == hashlib.sha256(b"old firmware").hexdigest()
    assert partials(device.root) == []


def test_short_writes_are_completed(device, monkeypatch):
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real(fd, bytes(data[:7])))
    data = bytes(range(256)) * 10
    assert device.write("B", [data]) == len(data)
    monkeypatch.undo()
    assert device.digest("B") == hashlib.sha256(data).hexdigest()


def test_file_size_limit_from_the_kernel_is_a_slot_error(tmp_path):
    """A real EFBIG: the child process may not write files over 64 KiB (RLIMIT_FSIZE)."""
    root = tmp_path / "dev"
    FileSlots(str(root)).write("A", [b"old firmware"])
    script = textwrap.dedent(f"""
        import json, resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        from redfish_racklet.drivers.slots import FileSlots, SlotError
        try:
            FileSlots({str(root)!r}).write("A", [b"n" * 40000] * 5)
        except SlotError as e:
            print(json.dumps({{"errno": e.errno, "message": str(e)}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(__file__)), timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["errno"] == errno.EFBIG
    assert "larger than the file system allows" in result["message"]
    dev = FileSlots(str(root))
    assert dev.digest("A") == hashlib.sha256(b"old firmware").hexdigest()
    assert partials(root) == []


# --- the trial state machine ---------------------------------------------------------

def test_an_armed_trial_boots_once_then_the_default_returns(device):
    device.write("A", [b"good"])
    device.write("B", [b"candidate"])
    device.arm_trial("B")
    assert (device.default(), device.trial()) == ("A", "B")
    assert device.boot() == "B"
    assert device.trial() is None and device.booted() == "B"
    assert device.boot() == "A"           # the trial failed to commit: back to the default
    assert device.booted() == "A" and device.default() == "A"


def test_commit_makes_the_slot_default_and_disarms(device):
    device.write("A", [b"good"])
    device.write("B", [b"candidate"])
    device.arm_trial("B")
    assert device.boot() == "B"
    device.commit("B")
    assert (device.default(), device.trial()) == ("B", None)
    assert [device.boot(), device.boot()] == ["B", "B"]


def test_commit_while_armed_disarms(device):
    device.write("B", [b"candidate"])
    device.write("A", [b"good"])
    device.arm_trial("B")
    device.commit("A")
    assert (device.default(), device.trial()) == ("A", None)
    assert device.boot() == "A"


def test_disarm_cancels_the_trial(device):
    device.write("B", [b"candidate"])
    device.arm_trial("B")
    device.disarm()
    assert device.trial() is None
    assert device.boot() == "A"
    device.disarm()                        # nothing armed: still fine
    assert device.trial() is None


def test_arming_is_refused_for_an_empty_slot_or_the_default(device):
    with pytest.raises(SlotError, match="empty"):
        device.arm_trial("B")
    device.write("A", [b"good"])
    with pytest.raises(SlotError, match="default"):
        device.arm_trial("A")
    assert device.trial() is None


def test_commit_is_refused_for_an_empty_slot(device):
    with pytest.raises(SlotError, match="empty"):
        device.commit("B")
    assert device.default() == "A"


def test_erase_refuses_the_default_and_disarms_an_erased_trial(device):
    device.write("A", [b"good"])
    device.write("B", [b"candidate"])
    with pytest.raises(SlotError, match="default"):
        device.erase("A")
    assert device.size("A") == 4
    device.arm_trial("B")
    device.erase("B")
    assert device.size("B") is None and device.trial() is None
    assert device.boot() == "A"
    device.erase("B")                      # already empty: still fine


def test_state_survives_a_new_instance(device):
    device.write("B", [b"candidate"])
    device.arm_trial("B")
    again = type(device)(device.root)
    assert (again.default(), again.trial(), again.booted()) == ("A", "B", None)
    assert again.boot() == "B"
    third = type(device)(device.root)
    assert (third.trial(), third.booted()) == (None, "B")
    third.commit("B")
    assert type(device)(device.root).default() == "B"
    assert partials(device.root) == []


def test_state_file_is_the_documented_json(tmp_path):
    dev = FileSlots(str(tmp_path))
    dev.write("B", [b"candidate"])
    dev.arm_trial("B")
    with open(tmp_path / "slots.json") as f:
        assert json.load(f) == {"default": "A", "trial": "B", "booted": None}
    assert stat.S_IMODE(os.stat(tmp_path / "slots.json").st_mode) == 0o600


@pytest.mark.parametrize("content", [
    b"not json",
    b"",
    b"\xff\xfe\x00garbage",
    b"[]",
    b'{"default": "C", "trial": null, "booted": null}',
    b'{"default": "A", "trial": "A", "booted": null}',
    b'{"default": "B", "trial": null}',
    b'{"default": "B", "trial": null, "booted": "Z"}',
    b'{"default": "B", "trial": null, "booted": null, "extra": 1}',
], ids=lambda c: c[:20].decode("latin-1"))
def test_a_corrupt_state_file_means_default_a_no_trial(tmp_path, caplog, content):
    (tmp_path / "slots.json").write_bytes(content)
    dev = FileSlots(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger=slots_mod.__name__):
        assert (dev.default(), dev.trial(), dev.booted()) == ("A", None, None)
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    dev.write("B", [b"candidate"])         # and the device recovers on the next change
    dev.arm_trial("B")
    assert FileSlots(str(tmp_path)).trial() == "B"


# --- Raspberry Pi tryboot --------------------------------------------------------------

def test_tryboot_images_are_the_partition_files(tmp_path):
    dev = TrybootSlots(str(tmp_path))
    dev.write("A", [b"p2"])
    dev.write("B", [b"p3"])
    assert (tmp_path / "partition2.img").read_bytes() == b"p2"
    assert (tmp_path / "partition3.img").read_bytes() == b"p3"
    assert not (tmp_path / "slots.json").exists()


def test_tryboot_arm_writes_autoboot_txt_exactly_and_sets_the_flag(tmp_path):
    dev = TrybootSlots(str(tmp_path))
    dev.write("B", [b"candidate"])
    dev.arm_trial("B")
    assert (tmp_path / "autoboot.txt").read_text() == SPEC_AUTOBOOT
    assert (tmp_path / "tryboot").exists()
    assert dev.trial() == "B"


def test_tryboot_flag_is_one_shot(tmp_path):
    dev = TrybootSlots(str(tmp_path))
    dev.write("B", [b"candidate"])
    dev.arm_trial("B")
    assert dev.boot() == "B"
    assert not (tmp_path / "tryboot").exists()
    assert (tmp_path / "booted").read_text().strip() == "B"
    assert (tmp_path / "autoboot.txt").read_text() == SPEC_AUTOBOOT   # the default did not move
    assert dev.boot() == "A"
    assert (tmp_path / "booted").read_text().strip() == "A"


def test_tryboot_commit_swaps_the_partitions(tmp_path):
    dev = TrybootSlots(str(tmp_path))
    dev.write("B", [b"candidate"])
    dev.arm_trial("B")
    dev.boot()
    dev.commit("B")
    assert (tmp_path / "autoboot.txt").read_text() == (
        "[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2\n")
    assert not (tmp_path / "tryboot").exists()
    assert (dev.default(), dev.trial(), dev.boot()) == ("B", None, "B")


def test_tryboot_reads_a_hand_written_autoboot_and_a_flag_set_by_reboot(tmp_path):
    (tmp_path / "autoboot.txt").write_text(
        "# written by hand\n\n[all]\n tryboot_a_b = 1\nboot_partition=3\n\n"
        "[pi5]\nsomething=else\n[tryboot]\n# the other one\nboot_partition = 2\n")
    (tmp_path / "tryboot").write_bytes(b"")          # reboot "0 tryboot"
    dev = TrybootSlots(str(tmp_path))
    assert (dev.default(), dev.trial()) == ("B", "A")
    assert dev.boot() == "A"
    assert (dev.trial(), dev.boot()) == (None, "B")


def test_tryboot_missing_autoboot_means_partition_2(tmp_path):
    (tmp_path / "tryboot").write_bytes(b"")
    dev = TrybootSlots(str(tmp_path))
    assert (dev.default(), dev.trial()) == ("A", None)
    assert dev.boot() == "A"
    assert not (tmp_path / "tryboot").exists()       # the firmware clears a set flag regardless


@pytest.mark.parametrize("text", [
    "boot_partition=3\n[all]\n",                      # a key before any section
    "[all]\nboot_partition=3\nboot_partition=2\n",    # a key twice
    "[all]\nboot_partition\n",                        # no '='
    "[all]\nboot_partition=7\n",                      # not a slot partition
    "[all]\nboot_partition=two\n",
    "[all]\nboot_partition=3\n[tryboot]\nboot_partition=1\n",
    "[]\nboot_partition=3\n",
])
def test_tryboot_corrupt_autoboot_means_partition_2_no_trial(tmp_path, caplog, text):
    (tmp_path / "autoboot.txt").write_text(text)
    (tmp_path / "tryboot").write_bytes(b"")
    dev = TrybootSlots(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger=slots_mod.__name__):
        assert (dev.default(), dev.trial()) == ("A", None)
    assert any("corrupt" in r.getMessage() for r in caplog.records)


def test_parse_autoboot_sections_and_comments():
    assert parse_autoboot(SPEC_AUTOBOOT) == {
        "all": {"tryboot_a_b": "1", "boot_partition": "2"}, "tryboot": {"boot_partition": "3"}}
    assert parse_autoboot("# only a comment\n\n") == {}


def test_tryboot_corrupt_booted_file_means_unknown(tmp_path, caplog):
    (tmp_path / "booted").write_text("C\n")
    dev = TrybootSlots(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger=slots_mod.__name__):
        assert dev.booted() is None
    assert caplog.records
    assert dev.write("A", [b"x"]) == 1


# --- simulated units booting from slots --------------------------------------------------

def test_hanging_firmware_stays_booting_and_healthy_firmware_runs():
    clock = Clock()
    hung = SimUnit(clock, boot_seconds=4, firmware=lambda: False)
    well = SimUnit(clock, boot_seconds=4, firmware=lambda: True)
    plain = SimUnit(clock, boot_seconds=4)
    for u in (hung, well, plain):
        u.set(True)
    clock.t += 3600
    assert (hung.state(), well.state(), plain.state()) == ("booting", "running", "running")
    hung.request_shutdown()                # a hung host does not answer a shutdown either
    clock.t += 60
    assert hung.state() == "booting"
    hung.set(False)
    assert hung.state() == "off"


def test_firmware_runs_at_each_power_on_only():
    clock = Clock()
    results = [False, True]
    boots = []

    def firmware() -> bool:
        boots.append(clock())
        return results[len(boots) - 1]

    u = SimUnit(clock, boot_seconds=4, firmware=firmware)
    u.set(True)
    u.set(True)                            # already on: no new boot
    clock.t += 10
    assert u.state() == "booting" and len(boots) == 1
    u.set(False)
    u.set(True)                            # a restart: rail off, rail on
    clock.t += 4
    assert u.state() == "running" and len(boots) == 2


def test_bmc_reset_follows_its_firmware():
    verdicts = iter([False, True])
    u = SimUnit(Clock(), bmc_firmware=lambda: next(verdicts))
    assert u.bmc_state() == "ready"
    u.reset_bmc()
    assert u.bmc_state() == "hung"
    u.reset_bmc()
    assert u.bmc_state() == "ready"
    plain = SimUnit(Clock())
    plain.reset_bmc()
    assert plain.bmc_state() == "ready"


@pytest.mark.parametrize("kind", DEVICES, ids=lambda c: c.__name__)
def test_a_hanging_trial_falls_back_to_the_default_on_the_next_reset(tmp_path, kind):
    clock = Clock()
    dev = kind(str(tmp_path))
    dev.write("A", [b"good firmware"])
    dev.write("B", [b"bad firmware " + HANG_MARKER + b" rest"])
    dev.arm_trial("B")
    u = SimUnit(clock, boot_seconds=4, firmware=slot_boot(dev))
    u.set(True)
    clock.t += 100
    assert u.state() == "booting" and dev.booted() == "B"
    u.set(False)
    u.set(True)
    clock.t += 4
    assert u.state() == "running" and dev.booted() == "A"


def test_an_empty_default_slot_hangs(tmp_path):
    u = SimUnit(Clock(), boot_seconds=0, firmware=slot_boot(FileSlots(str(tmp_path))))
    u.set(True)
    assert u.state() == "booting"


def test_an_absent_unit_boots_nothing(tmp_path):
    dev = FileSlots(str(tmp_path))
    dev.write("B", [b"candidate"])
    dev.arm_trial("B")
    u = SimUnit(Clock(), present=False, firmware=slot_boot(dev))
    u.set(True)
    assert u.state() == "off" and dev.trial() == "B" and dev.booted() is None


def image_verdict(tmp_path, image: bytes, chunk_size: int = SCAN_CHUNK) -> bool:
    dev = FileSlots(str(tmp_path / f"scan{len(os.listdir(tmp_path))}"))   # a fresh unit each time
    dev.write("A", [image])
    return slot_boot(dev, chunk_size)()


def test_marker_split_across_the_default_chunk_boundary_is_found(tmp_path):
    for cut in (1, 5, len(HANG_MARKER) - 1):
        image = b"x" * (SCAN_CHUNK - cut) + HANG_MARKER + b"y" * 100
        assert image[SCAN_CHUNK - cut:SCAN_CHUNK] == HANG_MARKER[:cut]
        assert image_verdict(tmp_path, image) is False


@pytest.mark.parametrize("chunk_size", [1, 3, 7, len(HANG_MARKER) - 1, len(HANG_MARKER), 64])
@pytest.mark.parametrize("offset", [0, 1, 5, 30, 61])
def test_marker_is_found_at_any_offset_with_any_chunk_size(tmp_path, chunk_size, offset):
    image = b"p" * offset + HANG_MARKER + b"q" * 17
    assert image_verdict(tmp_path, image, chunk_size) is False


@pytest.mark.parametrize("chunk_size", [1, 4, SCAN_CHUNK])
def test_near_misses_of_the_marker_boot_healthy(tmp_path, chunk_size):
    half = len(HANG_MARKER) // 2
    near = [
        b"z" * 100 + HANG_MARKER[:-1],                           # cut short at the end
        HANG_MARKER[:half] + b"-" + HANG_MARKER[half:],          # split by other data
        HANG_MARKER.upper(),
        b"\x00" * 5000,
    ]
    for image in near:
        assert image_verdict(tmp_path, image, chunk_size) is True


def test_the_scan_reads_in_bounded_chunks():
    class Recording(io.BytesIO):
        def __init__(self, data: bytes) -> None:
            super().__init__(data)
            self.sizes: list[int] = []

        def read(self, n: int = -1) -> bytes:
            self.sizes.append(n)
            return super().read(n)

    class OneImage:
        def __init__(self, data: bytes) -> None:
            self.image = Recording(data)

        def boot(self) -> str:
            return "A"

        def open(self, slot: str):
            return self.image

    dev = OneImage(b"a" * 1000 + HANG_MARKER)
    assert slot_boot(dev, 128)() is False
    assert dev.image.sizes and all(0 < n <= 128 for n in dev.image.sizes)


def test_slot_boot_refuses_a_chunk_size_below_one_byte(tmp_path):
    with pytest.raises(ValueError):
        slot_boot(FileSlots(str(tmp_path)), 0)
