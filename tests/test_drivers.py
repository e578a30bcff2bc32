"""SMBus drivers against register-level fake chips: physics in, SI units out."""

from __future__ import annotations

import errno
import uuid

import pytest

from redfish_racklet.drivers import hat_eeprom
from redfish_racklet.drivers.at24 import AT24
from redfish_racklet.drivers.fake_smbus import FakeAT24, FakeINA2xx, FakeLM75, FakeSMBus, FakeTMP102
from redfish_racklet.drivers.ina2xx import (INA2xx, Overflow, VARIANTS, bus_volts, calibration)
from redfish_racklet.drivers.smbus import ChipError, swap16
from redfish_racklet.drivers.temperature import LM75, TMP102, lm75_celsius, tmp102_celsius

ADDR = 0x40


def ina(chip: str, r_shunt: float = 0.1, max_current: float = 3.2):
    bus = FakeSMBus()
    fake = bus.attach(ADDR, FakeINA2xx(chip, r_shunt))
    drv = INA2xx(bus, ADDR, chip, r_shunt=r_shunt, max_current=max_current)
    drv.init()
    return bus, fake, drv


@pytest.mark.parametrize("chip,r_shunt", [("ina219", 0.1), ("ina226", 0.01), ("ina260", 0.002)])
def test_ina_reads_the_load_within_one_lsb(chip, r_shunt):
    _, fake, drv = ina(chip, r_shunt)
    fake.set_load(5.0, 0.54)
    r = drv.read()
    v = VARIANTS[chip]
    assert r.volts == pytest.approx(5.0, abs=v.bus_lsb)
    assert r.amps == pytest.approx(0.54, abs=2 * drv.current_lsb)
    assert r.watts == pytest.approx(2.7, abs=2.7 * 0.01 + drv.power_lsb)
    assert r.fresh


def test_ina219_bus_voltage_is_shifted_and_flags_are_masked():
    # 12.0 V = 3000 counts of 4 mV, in bits 15..3; CNVR and OVF live in bits 1 and 0.
    raw = (3000 << 3) | 0b11
    assert bus_volts(VARIANTS["ina219"], raw) == pytest.approx(12.0)
    _, fake, drv = ina("ina219")
    fake.set_load(12.0, 0.1)
    assert drv.read().volts == pytest.approx(12.0, abs=0.004)


def test_ina219_cnvr_cleared_by_reading_power():
    _, fake, drv = ina("ina219")
    fake.set_load(5.0, 0.5)
    assert drv.read().fresh
    again = drv.read()  # no conversion since: same values, not fresh
    assert not again.fresh and again.amps == pytest.approx(0.5, abs=2 * drv.current_lsb)


def test_ina226_cvrf_cleared_by_reading_mask_enable():
    _, fake, drv = ina("ina226", 0.01)
    fake.set_load(5.0, 0.5)
    assert drv.read().fresh and not drv.read().fresh


def test_negative_current_is_signed():
    _, fake, drv = ina("ina226", 0.01)
    fake.set_load(5.0, -0.25)
    assert drv.read().amps == pytest.approx(-0.25, abs=2 * drv.current_lsb)


def test_overflow_is_an_error_not_a_number():
    _, fake, drv = ina("ina219", r_shunt=0.1, max_current=3.2)
    fake.set_load(5.0, 4.0)  # 400 mV across the shunt: beyond the ±320 mV range
    with pytest.raises(Overflow):
        drv.read()
    fake.set_load(5.0, 1.0)
    assert drv.read().amps == pytest.approx(1.0, abs=2 * drv.current_lsb)


def test_brown_out_recalibrates():
    _, fake, drv = ina("ina219")
    fake.power_cycle()  # the chip lost its calibration: CURRENT and POWER read 0
    fake.set_load(5.0, 0.5)
    r = drv.read()
    assert drv.resets_seen == 1
    assert fake.cal == drv.cal and r.amps == pytest.approx(0.5, abs=2 * drv.current_lsb)


def test_calibration_from_shunt():
    cal, lsb = calibration(VARIANTS["ina219"], 0.1, 3.2)
    assert lsb == pytest.approx(3.2 / 32768)
    assert cal == int(0.04096 / (lsb * 0.1)) & 0xFFFE == 4194
    with pytest.raises(ValueError):
        calibration(VARIANTS["ina226"], 0.001, 0.001)  # CAL would not fit 16 bits


def test_wrong_chip_and_missing_chip():
    bus = FakeSMBus()
    bus.attach(ADDR, FakeINA2xx("ina260"))
    with pytest.raises(ChipError, match="not an ina226"):
        INA2xx(bus, ADDR, "ina226", r_shunt=0.01).init()
    with pytest.raises(OSError) as e:
        INA2xx(bus, 0x41, "ina226", r_shunt=0.01).init()
    assert e.value.errno == errno.ENXIO


def test_smbus_words_are_byte_swapped_on_the_wire():
    bus = FakeSMBus()
    fake = bus.attach(ADDR, FakeINA2xx("ina226", 0.01))
    assert bus.read_word_data(ADDR, 0xFE) == swap16(0x5449) == 0x4954
    assert fake.read16(0xFE) == 0x5449


@pytest.mark.parametrize("celsius", [-40.0, -0.0625, 0.0, 25.0, 85.5, 127.9375])
def test_tmp102_12_bit(celsius):
    bus = FakeSMBus()
    bus.attach(0x48, FakeTMP102(celsius))
    drv = TMP102(bus, 0x48)
    drv.init()
    assert drv.read() == pytest.approx(celsius, abs=0.0625)


def test_tmp102_13_bit_reaches_150():
    bus = FakeSMBus()
    fake = bus.attach(0x48, FakeTMP102(150.0))
    plain = TMP102(bus, 0x48)
    plain.init()
    assert plain.read() == pytest.approx(127.9375)  # 12-bit mode saturates
    ext = TMP102(bus, 0x48, extended=True)
    ext.init()
    assert ext.read() == pytest.approx(150.0)
    fake.celsius = -55.0
    assert ext.read() == pytest.approx(-55.0)


def test_tmp102_decoding_follows_the_format_bit():
    assert tmp102_celsius(0x1900) == 25.0            # 12-bit
    assert tmp102_celsius((400 << 3) | 1) == 25.0    # 13-bit, bit 0 set
    assert tmp102_celsius(0xE700) == -25.0


def test_tmp102_setting_that_does_not_stick_is_refused():
    bus = FakeSMBus()
    bus.attach(0x48, FakeTMP102(supports_extended=False))
    with pytest.raises(ChipError, match="did not stick"):
        TMP102(bus, 0x48, extended=True).init()


@pytest.mark.parametrize("bits,celsius,step", [(9, 25.5, 0.5), (9, -10.0, 0.5), (11, 25.125, 0.125),
                                                (11, -0.125, 0.125)])
def test_lm75(bits, celsius, step):
    bus = FakeSMBus()
    bus.attach(0x49, FakeLM75(celsius, bits))
    drv = LM75(bus, 0x49, bits)
    drv.init()
    assert drv.read() == pytest.approx(celsius, abs=step / 2)
    assert lm75_celsius(0xFFFF, bits) == -step  # the unused low bits are ignored


def test_sensor_faults_surface_as_oserror():
    bus = FakeSMBus()
    fake = bus.attach(0x48, FakeTMP102())
    drv = TMP102(bus, 0x48)
    fake.fault = OSError(errno.ETIMEDOUT, "bus timeout")
    with pytest.raises(OSError):
        drv.read()
    fake.fault = None
    assert drv.read() == pytest.approx(25.0)  # recovers when the part comes back


def test_at24_write_splits_at_pages_and_reads_back():
    bus = FakeSMBus()
    fake = bus.attach(0x50, FakeAT24("24c32"))
    waits = []
    drv = AT24(bus, 0x50, "24c32", wait=waits.append)
    data = bytes(range(100))
    drv.write(20, data)  # 20..119 crosses pages at 32, 64 and 96
    assert fake.page_writes == 4
    assert drv.read(20, 100) == data
    assert drv.read(0, 20) == b"\xff" * 20  # nothing wrapped onto the start of a page
    assert waits, "the driver must poll while the chip is busy"


def test_fake_at24_page_write_wraps_as_the_datasheet_says():
    bus = FakeSMBus()
    fake = bus.attach(0x50, FakeAT24("24c02", write_cycle_polls=0))
    from smbus2 import i2c_msg
    bus.i2c_rdwr(i2c_msg.write(0x50, [6] + [1, 2, 3, 4]))  # page of 8: bytes 6,7 then 0,1
    assert bytes(fake.mem[:8]) == bytes([3, 4, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2])


def test_at24_bounds():
    drv = AT24(FakeSMBus(), 0x50, "24c02")
    with pytest.raises(ValueError):
        drv.read(250, 10)


def test_at24_stuck_busy_times_out():
    bus = FakeSMBus()
    bus.attach(0x50, FakeAT24("24c32", write_cycle_polls=10_000))
    with pytest.raises(TimeoutError):
        AT24(bus, 0x50).write(0, b"x")


def test_hat_eeprom_round_trip_through_the_chip():
    info = hat_eeprom.HatInfo(uuid=str(uuid.UUID("12345678-9abc-4def-8123-456789abcdef")),
                              product_id=0x0042, product_version=3, vendor="Racklet",
                              product="Compute tray rev B")
    image = hat_eeprom.build(info)
    assert image[:4] == b"R-Pi"
    bus = FakeSMBus()
    bus.attach(0x50, FakeAT24("24c32"))
    eeprom = AT24(bus, 0x50)
    eeprom.write(0, image)
    parsed = hat_eeprom.parse(eeprom.read(0, 4096))
    assert parsed == info
    assert parsed.fru() == {"manufacturer": "Racklet", "model": "Compute tray rev B",
                            "serial_number": "12345678-9abc-4def-8123-456789abcdef",
                            "part_number": "0x0042 v3"}


@pytest.mark.parametrize("damage,match", [
    (lambda b: b"\xff" * len(b), "signature"),
    (lambda b: b[:20] + bytes([b[20] ^ 0x01]) + b[21:], "CRC"),
    (lambda b: b[:4] + b"\x02" + b[5:], "version"),
    (lambda b: b[:8] + (9999).to_bytes(4, "little") + b[12:], "eeplen"),
    (lambda b: b[:6], "header"),
])
def test_hat_eeprom_damage_is_refused(damage, match):
    info = hat_eeprom.HatInfo(str(uuid.uuid4()), 1, 1, "V", "P")
    with pytest.raises(hat_eeprom.HatFormatError, match=match):
        hat_eeprom.parse(damage(hat_eeprom.build(info)))
