"""The rack fan: the EMC2101 driver against its register-level fake (a fan that spins up
and down on a fake clock), and the fan curve. Physics in, outcomes out."""

from __future__ import annotations

import errno
import math

import pytest

from redfish_racklet.agent.fan import DEFAULT_POINTS, FanCurve, interpolate
from redfish_racklet.drivers.emc2101 import (CONFIG, CONFIG_ALT_TCH, EMC2101, EXTERNAL_TEMP_HIGH,
                                             EXTERNAL_TEMP_LOW, FAN_CONFIG, FAN_PROG, FAN_SETTING,
                                             MANUFACTURER_ID, PRODUCT_ID, PWM_FREQUENCY, STATUS_FAULT,
                                             TACH_HIGH, TACH_LOW, diode_fault, external_celsius,
                                             full_scale, internal_celsius, pwm_hz, tach_rpm)
from redfish_racklet.drivers.fake_smbus import FakeEMC2101, FakeSMBus
from redfish_racklet.drivers.smbus import ChipError

ADDR = 0x4C
MAX_RPM = 5000.0


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def rig(output: str = "pwm", pwm_f: int = 0x1F, **fake):
    clock, bus = Clock(), FakeSMBus()
    chip = bus.attach(ADDR, FakeEMC2101(clock, max_rpm=MAX_RPM, **fake))
    drv = EMC2101(bus, output=output, pwm_f=pwm_f)
    drv.init()
    return clock, bus, chip, drv


def one_count(rpm: float) -> float:
    """The RPM step of one TACH count at this speed (RPM = 5 400 000 / count)."""
    return rpm * rpm / 5_400_000 + 1e-9


# --- the driver against the chip --------------------------------------------------------

@pytest.mark.parametrize("product_id,name", [(0x16, "EMC2101"), (0x28, "EMC2101-R")])
def test_init_checks_ids_and_sets_direct_mode_with_tach_input(product_id, name):
    _, _, chip, drv = rig(product_id=product_id)
    assert drv.product == name
    assert chip.regs[CONFIG] & CONFIG_ALT_TCH       # pin 6 is the TACH input, not ALERT#
    assert chip.regs[FAN_CONFIG] & FAN_PROG         # FAN_SETTING drives the fan
    assert chip.regs[PWM_FREQUENCY] == 0x1F


@pytest.mark.parametrize("ids", [{"product_id": 0x37}, {"manufacturer_id": 0x54}])
def test_wrong_chip_is_refused(ids):
    bus = FakeSMBus()
    bus.attach(ADDR, FakeEMC2101(Clock(), **ids))
    with pytest.raises(ChipError, match="not an EMC2101"):
        EMC2101(bus).init()


def test_missing_chip_is_enxio():
    with pytest.raises(OSError) as e:
        EMC2101(FakeSMBus()).init()
    assert e.value.errno == errno.ENXIO


@pytest.mark.parametrize("output,pwm_f", [("pwm", 0x1F), ("pwm", 0x07), ("dac", 0x1F)])
@pytest.mark.parametrize("percent", [0.0, 12.5, 33.3, 50.0, 77.7, 99.9, 100.0])
def test_duty_round_trip_within_one_lsb(output, pwm_f, percent):
    _, _, chip, drv = rig(output, pwm_f)
    lsb = 100 / full_scale(output, pwm_f)
    drv.set_duty(percent)
    assert drv.duty() == pytest.approx(percent, abs=lsb / 2)
    assert chip.drive() * 100 == pytest.approx(percent, abs=lsb / 2)  # what the output really does


def test_duty_is_clamped_and_nan_is_full_speed():
    _, _, chip, drv = rig()
    drv.set_duty(-5)
    assert drv.duty() == 0.0 and chip.regs[FAN_SETTING] == 0
    drv.set_duty(150)
    assert drv.duty() == 100.0 and chip.regs[FAN_SETTING] == 62
    drv.set_duty(0)
    drv.set_duty(math.nan)
    assert drv.duty() == 100.0


@pytest.mark.parametrize("percent", [30.0, 60.0, 100.0])
def test_rpm_from_tach_count(percent):
    clock, bus, chip, drv = rig()
    drv.set_duty(percent)
    clock.advance(20)   # 20 time constants: settled
    expected = MAX_RPM * chip.drive()
    assert chip.rpm == pytest.approx(expected, rel=1e-6)
    count = bus.read_byte_data(ADDR, TACH_LOW) | (bus.read_byte_data(ADDR, TACH_HIGH) << 8)
    assert count == round(5_400_000 / expected)
    assert drv.rpm() == pytest.approx(expected, abs=one_count(expected))


def test_tach_conversion():
    assert tach_rpm(1080) == 5000.0
    assert tach_rpm(0xFFFE) == pytest.approx(82.4, abs=0.1)   # the slowest measurable speed
    assert tach_rpm(0xFFFF) == 0.0 and tach_rpm(0) == 0.0


def test_a_fan_below_its_start_duty_stalls_and_reads_zero():
    clock, bus, chip, drv = rig()
    drv.set_duty(15)   # below the 20 % this fan needs
    clock.advance(30)
    assert chip.rpm == 0.0 and drv.rpm() == 0.0
    assert bus.read_byte_data(ADDR, TACH_LOW) == 0xFF and bus.read_byte_data(ADDR, TACH_HIGH) == 0xFF


def test_a_stopped_fan_runs_down_to_a_stall():
    clock, _, _, drv = rig()
    drv.set_duty(100)
    clock.advance(20)
    drv.set_duty(0)
    clock.advance(1.0)
    assert drv.rpm() == pytest.approx(MAX_RPM * math.exp(-1), rel=0.01)   # still coasting
    clock.advance(4.0)   # 5000 · e⁻⁵ ≈ 34 RPM: too slow for the tachometer
    assert drv.rpm() == 0.0


def test_fan_follows_duty_with_a_one_second_time_constant():
    clock, _, chip, drv = rig()
    drv.set_duty(50)
    target = MAX_RPM * chip.drive()
    for t in (0.5, 1.0, 2.0, 3.0):
        clock.t = 1000.0 + t
        expected = target * (1 - math.exp(-t / chip.tau))
        assert drv.rpm() == pytest.approx(expected, abs=one_count(expected))
    clock.advance(20)
    drv.set_duty(100)   # a step up from a running fan
    clock.advance(1.0)
    expected = MAX_RPM + (target - MAX_RPM) * math.exp(-1)
    assert drv.rpm() == pytest.approx(expected, abs=one_count(expected))


def test_tach_needs_pin_6_configured_as_tach_input():
    clock, bus = Clock(), FakeSMBus()
    chip = bus.attach(ADDR, FakeEMC2101(clock))
    bus.write_byte_data(ADDR, FAN_SETTING, 46)   # POR: direct mode; 100 % is 2 · PWM_F (17h)
    clock.advance(10)
    assert chip.rpm > 4900
    assert bus.read_byte_data(ADDR, TACH_LOW) == 0xFF and bus.read_byte_data(ADDR, TACH_HIGH) == 0xFF
    drv = EMC2101(bus)
    drv.init()   # ALT_TCH set: now the tachometer counts
    drv.set_duty(100)
    clock.advance(10)
    assert drv.rpm() == pytest.approx(chip.rpm, abs=one_count(chip.rpm))


def test_tach_low_byte_latches_the_high_byte():
    clock, bus, chip, drv = rig()
    drv.set_duty(100)
    clock.advance(0.2)
    low = bus.read_byte_data(ADDR, TACH_LOW)
    first = chip.tach_count()
    clock.advance(0.5)   # the fan speeds up: a different high byte by now
    assert chip.tach_count() >> 8 != first >> 8
    assert (bus.read_byte_data(ADDR, TACH_HIGH) << 8) | low == first   # one sample, not torn


def test_external_high_byte_latches_the_low_byte():
    _, bus, chip, _ = rig(celsius=25.875)
    high = bus.read_byte_data(ADDR, EXTERNAL_TEMP_HIGH)
    chip.celsius = 26.0   # a conversion between the two reads
    low = bus.read_byte_data(ADDR, EXTERNAL_TEMP_LOW)
    assert external_celsius(high, low) == 25.875


@pytest.mark.parametrize("celsius", [-40.0, -12.375, -0.125, 0.0, 25.125, 85.5, 126.875])
def test_external_temperature_11_bit_signed(celsius):
    _, _, chip, drv = rig(celsius=celsius)
    assert drv.temperature() == celsius
    chip.celsius = celsius + 0.05
    assert drv.temperature() == pytest.approx(celsius + 0.05, abs=0.0625)


def test_temperature_conversions():
    assert external_celsius(0xF3, 0xA0) == -12.375    # 11-bit two's complement, bits 15..5
    assert external_celsius(0x19, 0x20) == 25.125
    assert external_celsius(0x19, 0x3F) == 25.125     # bits 4..0 are not data
    assert external_celsius(0xC0, 0x00) == -64.0
    assert internal_celsius(0xFB) == -5.0 and internal_celsius(0x55) == 85.0


def test_internal_temperature():
    _, _, chip, drv = rig(internal_celsius=-5.0)
    assert drv.internal_temperature() == -5.0
    chip.internal_celsius = 41.4
    assert drv.internal_temperature() == 41.0


def test_diode_fault_is_a_sensor_fault():
    _, _, chip, drv = rig(celsius=30.0)
    chip.diode_fault = True
    with pytest.raises(OSError) as e:
        drv.temperature()
    assert e.value.errno == errno.EIO and "open" in str(e.value)
    assert drv.internal_temperature() == 30.0   # the chip itself still answers
    chip.diode_fault = False
    with pytest.raises(OSError):
        drv.temperature()   # FAULT is latched until read: the diode failed since the last look
    assert drv.temperature() == 30.0


def test_diode_fault_decoding():
    assert diode_fault(STATUS_FAULT, 0x7F, 0x00) == "open"
    assert diode_fault(0, 0x7F, 0xE0) == "short"   # DP-DN short: no FAULT bit, reads 7FE0h
    assert diode_fault(0, 0x19, 0x20) is None


def test_duty_that_does_not_stick_is_refused():
    clock, bus, chip, drv = rig()
    drv.set_duty(40)
    bus.write_byte_data(ADDR, FAN_CONFIG, 0x00)   # someone hands the fan to the look-up table
    with pytest.raises(ChipError, match="did not stick"):
        drv.set_duty(80)
    assert drv.duty() == pytest.approx(40, abs=1)   # FAN_SETTING was read-only
    drv.init()
    drv.set_duty(80)
    assert drv.duty() == pytest.approx(80, abs=1)


def test_brown_out_reinitialises_and_restores_the_duty():
    clock, _, chip, drv = rig()
    drv.set_duty(60)
    clock.advance(10)
    chip.power_cycle()   # every register to its default: tach off, fan setting 0
    clock.advance(2)
    assert drv.rpm() > 0   # the driver saw CONFIG lose ALT_TCH and set the chip up again
    assert drv.resets_seen == 1
    assert drv.duty() == pytest.approx(60, abs=1)
    clock.advance(20)
    assert drv.rpm() == pytest.approx(MAX_RPM * 0.6, rel=0.02)


def test_fake_read_only_registers_ignore_writes():
    clock, bus = Clock(), FakeSMBus()
    chip = bus.attach(ADDR, FakeEMC2101(clock, celsius=20.0))
    for reg, value in [(PRODUCT_ID, 0x16), (MANUFACTURER_ID, 0x5D), (EXTERNAL_TEMP_HIGH, 20)]:
        bus.write_byte_data(ADDR, reg, 0x42)
        assert bus.read_byte_data(ADDR, reg) == value
    bus.write_byte_data(ADDR, 0x30, 0x42)   # undefined: no effect, reads 00h
    assert bus.read_byte_data(ADDR, 0x30) == 0
    bus.write_byte_data(ADDR, 0x09, CONFIG_ALT_TCH)   # CONFIG is also at 09h
    assert chip.regs[CONFIG] == CONFIG_ALT_TCH


def test_pwm_frequency_and_resolution():
    assert pwm_hz(0x1F, 1) == pytest.approx(5806.45, abs=0.01)
    assert 21_000 <= pwm_hz(0x07, 1) <= 28_000   # Intel's 4-wire fan range
    assert full_scale("pwm", 0x1F) == 62 and full_scale("pwm", 0x07) == 14
    assert full_scale("dac", 0x1F) == 63
    with pytest.raises(ValueError):
        EMC2101(FakeSMBus(), output="voltage")
    with pytest.raises(ValueError):
        EMC2101(FakeSMBus(), pwm_f=0x20)


# --- the curve ----------------------------------------------------------------------------

@pytest.mark.parametrize("celsius,percent", [(-10, 20), (25, 20), (30, 30), (35, 40), (40, 55),
                                             (50, 85), (55, 100), (90, 100)])
def test_curve_interpolates_and_clamps(celsius, percent):
    assert interpolate(DEFAULT_POINTS, celsius) == pytest.approx(percent)
    assert FanCurve().duty_for(celsius) == pytest.approx(percent)


def test_curve_without_hysteresis_follows_both_ways():
    curve = FanCurve(hysteresis=0)
    assert [curve.duty_for(t) for t in (50, 40, 30)] == pytest.approx([85, 55, 30])


def test_hysteresis_holds_the_duty_until_the_temperature_has_really_fallen():
    curve = FanCurve(hysteresis=2.0)
    assert curve.duty_for(45) == 70
    assert curve.duty_for(44) == 70 and curve.duty_for(43) == 70    # within 2 °C: hold
    assert curve.duty_for(42.5) == pytest.approx(68.5)              # past it: the curve at 44.5
    assert curve.duty_for(43.5) == pytest.approx(68.5)              # back up inside the band: hold
    assert curve.duty_for(44.8) == pytest.approx(69.4)              # warming: follow at once


def test_hysteresis_stops_the_fan_hunting():
    curve = FanCurve(hysteresis=2.0)
    duties = {curve.duty_for(44.0 + (i % 2)) for i in range(1, 20)}   # 45, 44, 45, 44 …
    assert duties == {70.0}


def test_failsafe_without_a_temperature():
    curve = FanCurve()
    assert curve.duty_for(30) == 30
    assert curve.duty_for(None) == 100.0 and curve.duty_for(math.nan) == 100.0
    assert curve.duty_for(30) == 30   # back to the curve once the sensor reads again


def test_curve_from_manifest():
    assert FanCurve.from_manifest(None).points == DEFAULT_POINTS
    curve = FanCurve.from_manifest([[20, 30], [60, 100]])
    assert curve.duty_for(40) == pytest.approx(65)
    flat = FanCurve.from_manifest([[0, 50]])
    assert flat.duty_for(-20) == 50 and flat.duty_for(80) == 50


@pytest.mark.parametrize("points,match", [
    ([], "at least one"),
    ([[30, 20], [30, 40]], "temperatures must increase"),
    ([[40, 20], [30, 40]], "temperatures must increase"),
    ([[30, 50], [40, 40]], "must not fall"),
    ([[30, 120]], "outside 0..100"),
    ([[30]], "expected \\[celsius, percent\\]"),
    ([30, 40], "expected \\[celsius, percent\\]"),
    (["ab"], "expected \\[celsius, percent\\]"),
    ([["hot", 20]], "not two numbers"),
    ([[30, math.nan]], "not finite"),
])
def test_bad_curves_are_refused(points, match):
    with pytest.raises(ValueError, match=match):
        FanCurve.from_manifest(points)


def test_bad_hysteresis_is_refused():
    with pytest.raises(ValueError, match="hysteresis"):
        FanCurve(hysteresis=-1)


# --- the loop: sensor → curve → fan ------------------------------------------------------

def test_a_hot_rack_gets_air_and_a_blind_one_gets_all_of_it():
    clock, _, chip, drv = rig(celsius=50.0)
    curve = FanCurve()
    drv.set_duty(curve.duty_for(drv.temperature()))
    clock.advance(5)
    assert drv.duty() == pytest.approx(85, abs=100 / 62 / 2)
    assert drv.rpm() == pytest.approx(MAX_RPM * drv.duty() / 100, rel=0.01)
    chip.diode_fault = True
    try:
        celsius = drv.temperature()
    except OSError:
        celsius = None
    drv.set_duty(curve.duty_for(celsius))
    clock.advance(5)
    assert drv.duty() == 100.0 and drv.rpm() == pytest.approx(MAX_RPM, rel=0.01)
