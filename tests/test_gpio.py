"""The GPIO bank against the fake libgpiod chip: outputs, presence edges, exclusivity."""

from __future__ import annotations

import errno
import selectors

import pytest

from redfish_racklet.drivers.fake_gpio import FakeChip, FakeGpiod
from redfish_racklet.drivers.gpio import CONSUMER, GpioBank, GpioError, UnitLines

PATH = "/dev/gpiochip0"
NAMES = ["RAIL1", "RAIL2", "SENSE1", "SENSE2", "LED1", "LED2"]
UNITS = {"Unit1": UnitLines("RAIL1", "SENSE1", "LED1"), "Unit2": UnitLines("RAIL2", "SENSE2", "LED2")}


def make(rails_on=None, levels=None):
    chip = FakeChip(PATH, NAMES, levels=levels)
    gpio = FakeGpiod(chip)
    bank = GpioBank(PATH, UNITS, rails_on or {}, gpio=gpio)
    return chip, gpio, bank


def level(chip, name):
    return chip.level[chip.names.index(name)]


def test_rails_start_at_the_persisted_desired_state():
    chip, _, bank = make(rails_on={"Unit1": True, "Unit2": False})
    assert level(chip, "RAIL1") and not level(chip, "RAIL2")
    assert bank.rail("Unit1") and not bank.rail("Unit2")
    # no glitch: RAIL1 went high once, RAIL2 never moved
    assert [(n, v) for _, n, v in chip.history] == [("RAIL1", True)]
    assert chip.owner[0].consumer == CONSUMER


def test_switching_rails_and_leds():
    chip, _, bank = make()
    bank.set_rail("Unit2", True)
    bank.set_led("Unit1", True)
    assert level(chip, "RAIL2") and level(chip, "LED1") and not level(chip, "RAIL1")
    bank.set_rail("Unit2", False)
    assert not bank.rail("Unit2")


def test_presence_is_active_low_and_reports_edges():
    # SENSE1 grounded by a tray (present); SENSE2 pulled up (empty tray)
    chip, _, bank = make(levels={"SENSE1": False, "SENSE2": True})
    assert bank.present("Unit1") and not bank.present("Unit2")
    assert bank.presence_changes() == []
    sel = selectors.DefaultSelector()
    sel.register(bank.fileno(), selectors.EVENT_READ)
    chip.drive("SENSE2", False)  # a unit slides into tray 2
    assert sel.select(timeout=1.0), "the request's fd must become readable on an edge"
    assert bank.presence_changes() == ["Unit2"] and bank.present("Unit2")
    chip.drive("SENSE1", True)   # unit 1 pulled out
    assert bank.presence_changes() == ["Unit1"] and not bank.present("Unit1")
    assert not sel.select(timeout=0)
    sel.close()


def test_lines_are_exclusive_to_the_agent():
    _, gpio, bank = make()
    with pytest.raises(GpioError, match="held by another process"):
        GpioBank(PATH, UNITS, {}, gpio=gpio)
    with pytest.raises(OSError) as e:
        gpio.request_lines(PATH, config={"RAIL1": None}, consumer="intruder")
    assert e.value.errno == errno.EBUSY
    bank.release()
    GpioBank(PATH, UNITS, {}, gpio=gpio).release()  # free again after release


def test_outputs_are_not_kept_after_release():
    chip, _, bank = make(rails_on={"Unit1": True})
    bank.release()
    assert not level(chip, "RAIL1")


def test_missing_chip_names_the_manifest_entry():
    with pytest.raises(GpioError, match="rack.gpio_chip"):
        GpioBank("/dev/gpiochip7", UNITS, {}, gpio=FakeGpiod(FakeChip(PATH, NAMES)))


def test_inputs_cannot_be_driven():
    _, _, bank = make()
    from gpiod.line import Value
    with pytest.raises(OSError) as e:
        bank.req.set_value("SENSE1", Value.ACTIVE)
    assert e.value.errno == errno.EPERM


def test_unknown_line_name_is_refused():
    chip = FakeChip(PATH, NAMES)
    with pytest.raises(GpioError, match="RAIL9"):
        GpioBank(PATH, {"Unit9": UnitLines("RAIL9")}, {}, gpio=FakeGpiod(chip))
