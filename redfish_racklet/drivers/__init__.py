"""Hardware drivers behind small interfaces. Only the rack agent imports this package.

A unit's hardware, as the agent sees it:

- ``PowerRail``  the switched supply of one tray (a GPIO output on real racks);
- ``Presence``   whether a unit sits in the tray (a GPIO input);
- ``Led``        the tray's identify LED (a GPIO output);
- ``Host``       the unit's operating system as its BMC reports it: booting,
                 running, halting or halted, and a request to shut down cleanly.

``drivers.sim`` implements all three for the simulated rack; real SMBus/GPIO
implementations follow the same protocols.

SMBus chips (``smbus.SMBusLike`` is the bus seam): ``ina2xx`` (INA219/226/260 power
monitors), ``temperature`` (TMP102, LM75), ``emc2101`` (the rack fan and air
temperature), ``at24`` (EEPROMs) and ``hat_eeprom`` (the Raspberry Pi HAT ID format on
them). ``gpio`` holds rails, LEDs and presence lines through libgpiod v2. ``fake_smbus`` holds register-level fakes of all
of them, for the simulation and the tests.
"""

from __future__ import annotations

from typing import Protocol


class PowerRail(Protocol):
    def set(self, on: bool) -> None: ...
    def get(self) -> bool: ...


class Led(Protocol):
    def set_led(self, on: bool) -> None:
        """The tray's identify LED (a no-op on a tray that has none)."""


class Presence(Protocol):
    def present(self) -> bool: ...


class Host(Protocol):
    def state(self) -> str:
        """One of 'off', 'booting', 'running', 'halting', 'halted'."""

    def request_shutdown(self) -> None: ...
