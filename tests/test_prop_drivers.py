"""Property-based tests of the register-level conversions in redfish_racklet/drivers/.

A value goes into a fake chip (which encodes it as the datasheet says), the real driver reads
the registers back: the decoded value equals the original within one LSB of the chip. And any
raw register value, even the extremes, decodes inside the chip's datasheet range.

- INA219/INA226/INA260: bus volts, current, power.
- TMP102 (12- and 13-bit), LM75 (9- and 11-bit): two's-complement temperature.
- EMC2101: TACH count <-> RPM, fan setting <-> duty, external diode 11-bit temperature.
- AT24: any write at any offset reads back (page wrap and address bytes handled).

Derandomized in the suite; RACKLET_PROP_EXAMPLES=5000 for a longer, random run.
"""

from __future__ import annotations

import os

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="needs hypothesis (pip install -e '.[test]')")
from hypothesis import HealthCheck, assume, given, settings, strategies as st  # noqa: E402

from redfish_racklet.drivers import at24, emc2101 as emc, ina2xx, temperature  # noqa: E402
from redfish_racklet.drivers.fake_smbus import FakeAT24, FakeINA2xx, FakeLM75, FakeSMBus, FakeTMP102  # noqa: E402

LONG = os.environ.get("RACKLET_PROP_EXAMPLES")
ADDRESS = 0x40


def bounded(examples: int):
    """The suite's settings: few examples, always the same; RACKLET_PROP_EXAMPLES for more, random."""
    return settings(max_examples=int(LONG or examples), derandomize=LONG is None, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow], print_blob=True)


def on_bus(fake):
    bus = FakeSMBus()
    bus.attach(ADDRESS, fake)
    return bus


# -- INA2xx -------------------------------------------------------------------------------

MAX_CURRENT = 3.2
R_SHUNT = {"ina219": 0.1, "ina226": 0.002, "ina260": 0.002}   # the usual boards' shunts (INA260: inside)


@bounded(300)
@given(chip=st.sampled_from(sorted(ina2xx.VARIANTS)), volts=st.floats(0, 26), amps=st.floats(-3.2, 3.2))
def test_ina2xx_reads_back_what_the_chip_measured(chip, volts, amps):
    fake = FakeINA2xx(chip, r_shunt=R_SHUNT[chip])
    driver = ina2xx.INA2xx(on_bus(fake), ADDRESS, chip, r_shunt=R_SHUNT[chip], max_current=MAX_CURRENT)
    driver.init()
    fake.set_load(volts, amps)
    try:
        r = driver.read()
    except ina2xx.Overflow:
        assume(False)   # out of the chip's range: flagged, not a wrong number
    v = driver.variant
    # one LSB of each stage: the shunt ADC (INA219/226), then the current register; and the
    # gain error of CALIBRATION, which the datasheet truncates to an integer (below 1/CAL)
    amps_lsb = driver.current_lsb + (v.shunt_lsb / R_SHUNT[chip] if v.shunt_lsb else 0)
    amps_lsb += abs(amps) / driver.cal if driver.cal else 0
    assert abs(r.volts - volts) <= v.bus_lsb / 2 + 1e-9
    assert abs(r.amps - amps) <= amps_lsb + 1e-9
    watts_error = driver.power_lsb + amps_lsb * volts + v.bus_lsb * abs(amps)
    assert abs(r.watts - abs(volts * amps)) <= watts_error + 1e-9
    assert r.fresh


@bounded(200)
@given(chip=st.sampled_from(sorted(ina2xx.VARIANTS)), raw=st.integers(0, 0xFFFF))
def test_ina2xx_bus_register_extremes_decode_in_range(chip, raw):
    v = ina2xx.VARIANTS[chip]
    volts = ina2xx.bus_volts(v, raw)
    # the full register, above what the pins stand (26 V / 36 V): the decoding never wraps
    top = {"ina219": 8191 * 4e-3, "ina226": 0xFFFF * 1.25e-3, "ina260": 0xFFFF * 1.25e-3}[chip]
    assert 0 <= volts <= top + 1e-9


# -- temperature ---------------------------------------------------------------------------


@bounded(300)
@given(celsius=st.floats(-55, 150), extended=st.booleans())
def test_tmp102_round_trip(celsius, extended):
    fake = FakeTMP102(celsius)
    chip = temperature.TMP102(on_bus(fake), ADDRESS, extended=extended)
    chip.init()
    top = 150 if extended else 127.9375   # 12-bit format saturates
    assert abs(chip.read() - min(celsius, top)) <= temperature.TMP102_LSB / 2 + 1e-9


@bounded(200)
@given(raw=st.integers(0, 0xFFFF))
def test_tmp102_any_register_decodes_in_range(raw):
    c = temperature.tmp102_celsius(raw)
    assert (-256 <= c < 256) if raw & 1 else (-128 <= c < 128)
    assert c / temperature.TMP102_LSB == int(c / temperature.TMP102_LSB)   # a whole number of LSBs


@bounded(300)
@given(celsius=st.floats(-55, 125), bits=st.sampled_from([9, 11]))
def test_lm75_round_trip(celsius, bits):
    chip = temperature.LM75(on_bus(FakeLM75(celsius, bits)), ADDRESS, bits=bits)
    chip.init()
    assert abs(chip.read() - celsius) <= 2.0 ** (8 - bits) / 2 + 1e-9


@bounded(200)
@given(raw=st.integers(0, 0xFFFF), bits=st.sampled_from([9, 11]))
def test_lm75_any_register_decodes_in_range(raw, bits):
    c = temperature.lm75_celsius(raw, bits)
    assert -128 <= c < 128
    assert (c * 2 ** (bits - 8)).is_integer()   # the low, unused bits are ignored


# -- EMC2101 -------------------------------------------------------------------------------


@bounded(300)
@given(rpm=st.floats(100, 30000))
def test_emc2101_tach_round_trip(rpm):
    count = round(emc.RPM_NUMERATOR / rpm)   # what the chip counts (datasheet §6.14)
    back = emc.tach_rpm(count)
    # one LSB of the count, in RPM, at this speed
    assert abs(back - rpm) <= emc.RPM_NUMERATOR / count - emc.RPM_NUMERATOR / (count + 1) + 1e-6


@bounded(200)
@given(count=st.integers(0, 0xFFFF))
def test_emc2101_any_tach_count_decodes_in_range(count):
    rpm = emc.tach_rpm(count)
    assert rpm == 0.0 if count in (0, emc.TACH_STALLED) else 0 < rpm <= emc.RPM_NUMERATOR


@bounded(300)
@given(percent=st.floats(allow_nan=True, allow_infinity=True), output=st.sampled_from(["pwm", "dac"]),
       pwm_f=st.integers(0, emc.PWM_F_MASK))
def test_emc2101_duty_round_trip(percent, output, pwm_f):
    scale = emc.full_scale(output, pwm_f)
    setting = emc.duty_to_setting(percent, scale)
    assert 0 <= setting <= scale
    back = emc.setting_to_duty(setting, scale)
    wanted = 100.0 if percent != percent else max(0.0, min(100.0, percent))   # NaN: the safe side
    assert abs(back - wanted) <= 100 / scale / 2 + 1e-9


@bounded(300)
@given(celsius=st.floats(-64, 127.875))
def test_emc2101_external_temperature_round_trip(celsius):
    counts = round(celsius / emc.EXT_LSB) & 0x7FF
    raw = counts << 5
    assert abs(emc.external_celsius(raw >> 8, raw & 0xFF) - celsius) <= emc.EXT_LSB / 2 + 1e-9


@bounded(200)
@given(high=st.integers(0, 0xFF), low=st.integers(0, 0xFF), internal=st.integers(0, 0xFF))
def test_emc2101_any_temperature_register_decodes_in_range(high, low, internal):
    assert -128 <= emc.external_celsius(high, low) <= 127.875
    assert -128 <= emc.internal_celsius(internal) <= 127


# -- AT24 ------------------------------------------------------------------------------------


@bounded(150)
@given(chip=st.sampled_from(sorted(at24.VARIANTS)), data=st.data())
def test_at24_any_write_reads_back(chip, data):
    fake = FakeAT24(chip, write_cycle_polls=0)
    size = fake.v.size
    offset = data.draw(st.integers(0, size - 1))
    payload = data.draw(st.binary(min_size=1, max_size=min(300, size - offset)))
    eeprom = at24.AT24(on_bus(fake), ADDRESS, chip=chip)
    before = bytes(fake.mem)
    eeprom.write(offset, payload)
    assert eeprom.read(offset, len(payload)) == payload
    assert bytes(fake.mem) == before[:offset] + payload + before[offset + len(payload):]   # nothing else moved


@bounded(100)
@given(chip=st.sampled_from(sorted(at24.VARIANTS)), offset=st.integers(-5, 70000), length=st.integers(-5, 70000))
def test_at24_out_of_range_is_refused_before_the_bus(chip, offset, length):
    fake = FakeAT24(chip)
    eeprom = at24.AT24(on_bus(fake), ADDRESS, chip=chip)
    size = fake.v.size
    if 0 <= offset and 0 <= length and offset + length <= size:
        assert len(eeprom.read(offset, length)) == length
    else:
        with pytest.raises(ValueError):
            eeprom.read(offset, length)
