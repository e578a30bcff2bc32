"""Simulated physics and energy integration, read through the real drivers."""

from __future__ import annotations

import math

import pytest

from redfish_racklet.agent.energy import IntervalStats, Integrator
from redfish_racklet.drivers import sim_physics as phys
from redfish_racklet.drivers.fake_smbus import FakeINA2xx, FakeSMBus, FakeTMP102
from redfish_racklet.drivers.ina2xx import INA2xx
from redfish_racklet.drivers.temperature import TMP102


def test_power_by_state_is_pi4_plausible():
    assert phys.power_for("off", 1.0) == 0.0
    assert phys.power_for("running", 0.0) == pytest.approx(2.7)
    assert 6.0 <= phys.power_for("running", 1.0) <= 7.0
    assert phys.power_for("running", 5.0) == phys.power_for("running", 1.0)  # load is clamped
    assert phys.rail_volts(6.6) < phys.rail_volts(2.7) < phys.SUPPLY_V


def test_temperature_follows_power_with_a_time_constant():
    th = phys.Thermal()
    th.advance(0.0, 6.6)
    target = phys.AMBIENT_C + phys.R_THERMAL * 6.6
    after_tau = th.advance(phys.TAU_S, 6.6)
    assert after_tau == pytest.approx(phys.AMBIENT_C + (target - phys.AMBIENT_C) * (1 - math.exp(-1)))
    assert th.advance(20 * phys.TAU_S, 6.6) == pytest.approx(target, abs=1e-6)
    # step size does not change the answer: the update is exact for constant power
    fine = phys.Thermal()
    fine.advance(0.0, 6.6)
    for i in range(1, 61):
        fine.advance(i * phys.TAU_S / 60, 6.6)
    assert fine.celsius == pytest.approx(after_tau)


def test_noise_is_reproducible_with_a_seed():
    a, b = phys.Noise(7), phys.Noise(7)
    assert [a(5.0) for _ in range(5)] == [b(5.0) for _ in range(5)]
    assert [phys.Noise(8)(5.0) for _ in range(2)] != [phys.Noise(7)(5.0) for _ in range(2)]


def test_energy_error_under_one_percent_through_the_real_drivers():
    """A known load profile, sampled at 1 Hz through INA226 registers, integrated."""
    bus = FakeSMBus()
    ina_chip = bus.attach(0x40, FakeINA2xx("ina226", r_shunt=0.01))
    tmp_chip = bus.attach(0x48, FakeTMP102())
    ina, tmp = INA2xx(bus, 0x40, "ina226", r_shunt=0.01, max_current=3.2), TMP102(bus, 0x48)
    ina.init()
    tmp.init()
    noise, thermal, energy = phys.Noise(1), phys.Thermal(), Integrator()
    period, duration = 120.0, 600.0

    def load(t):
        return 0.5 + 0.5 * math.sin(2 * math.pi * t / period)

    stats = IntervalStats()
    for i in range(int(duration) + 1):
        t = float(i)
        watts = phys.power_for("running", load(t))
        phys.feed(ina_chip, tmp_chip, watts, thermal.advance(t, watts), noise)
        reading = ina.read()
        energy.add(t, reading.watts)
        stats.add(t, reading.watts)
    # analytic: the sine integrates to zero over whole periods
    exact = duration * (phys.IDLE_W + (phys.BUSY_W - phys.IDLE_W) * 0.5)
    assert abs(energy.joules - exact) / exact < 0.01
    assert stats.min == pytest.approx(phys.IDLE_W, rel=0.02)
    assert stats.max == pytest.approx(phys.BUSY_W, rel=0.02)
    assert stats.average == pytest.approx(exact / duration, rel=0.01)
    assert tmp.read() > phys.AMBIENT_C  # the board warmed up


def test_integrator_does_not_bridge_gaps():
    e = Integrator(max_gap=5.0)
    e.add(0, 10.0)
    e.add(1, 10.0)
    assert e.joules == 10.0
    e.add(100, 10.0)  # 99 s without a sample: not counted
    assert e.joules == 10.0
    e.gap()
    e.add(101, 10.0)
    assert e.joules == 10.0
    e.add(102, 20.0)
    assert e.joules == 25.0
