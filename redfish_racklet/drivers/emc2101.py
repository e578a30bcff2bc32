"""Microchip (SMSC) EMC2101 / EMC2101-R fan controller with an external diode, over SMBus.

Byte registers only (datasheet DS20006703 §6; Linux ``hwmon/emc2101.c``). Two of its
values span two registers, and the chip latches them so that a reading is one sample
(§6.1): reading the external diode's HIGH byte copies its low byte into a shadow
register, so read high then low; reading the TACH LOW byte latches its high byte, so
read low then high. The orders are opposite; getting them wrong tears readings.

The fan is driven in direct-setting mode (Fan Configuration PROG set: the Fan Setting
register drives the fan, the look-up table is off). With PROG clear the look-up table
drives the fan and Fan Setting is read-only, so a written duty does not stick and is
refused. In PWM mode the duty is FAN_SETTING / (2 · PWM_F), saturating at 100 %, at
360 kHz / (2 · PWM_F · PWM_D) with CLK_OVR set; in DAC mode it is FAN_SETTING / 63.
RPM = 5 400 000 / TACH; TACH reads FFFFh when the fan is stopped or too slow to
measure (below ~82 RPM), which we report as 0 RPM. Pin 6 is the TACH input only with
ALT_TCH set in CONFIG (otherwise it is ALERT#).

The configuration is written and read back. A CONFIG register that no longer holds
ours means the chip was reset (brown-out: every register back to its default, fan
setting 0, the fan stopping), so the driver initialises it again and restores the
last duty. Temperatures in °C, speeds in RPM, duty in percent.
"""

from __future__ import annotations

import errno
import math

from .smbus import ChipError, SMBusLike, s16

ADDRESS = 0x4C

# Register addresses (datasheet names).
INTERNAL_TEMP, EXTERNAL_TEMP_HIGH, STATUS, CONFIG, CONVERSION_RATE = 0x00, 0x01, 0x02, 0x03, 0x04
EXTERNAL_TEMP_LOW = 0x10
TACH_LOW, TACH_HIGH, TACH_LIMIT_LOW, TACH_LIMIT_HIGH = 0x46, 0x47, 0x48, 0x49
FAN_CONFIG, FAN_SPIN_UP, FAN_SETTING, PWM_FREQUENCY, PWM_DIVIDE = 0x4A, 0x4B, 0x4C, 0x4D, 0x4E
PRODUCT_ID, MANUFACTURER_ID, REVISION = 0xFD, 0xFE, 0xFF

# STATUS bits (cleared by reading, unless the condition persists).
STATUS_BUSY, STATUS_INT_HIGH, STATUS_EEPROM, STATUS_EXT_HIGH = 0x80, 0x40, 0x20, 0x10
STATUS_EXT_LOW, STATUS_FAULT, STATUS_TCRIT, STATUS_TACH = 0x08, 0x04, 0x02, 0x01
# CONFIG bits.
CONFIG_MASK, CONFIG_STANDBY, CONFIG_FAN_STBY, CONFIG_DAC = 0x80, 0x40, 0x20, 0x10
CONFIG_DIS_TO, CONFIG_ALT_TCH, CONFIG_TCRIT_OVR, CONFIG_QUEUE = 0x08, 0x04, 0x02, 0x01
# FAN_CONFIG bits.
FAN_FORCE, FAN_PROG, FAN_POLARITY, FAN_CLK_SEL, FAN_CLK_OVR = 0x40, 0x20, 0x10, 0x08, 0x04
FAN_TACH_MODE = 0x03

SMSC_ID = 0x5D                                  # MANUFACTURER_ID
PRODUCTS = {0x16: "EMC2101", 0x28: "EMC2101-R"}   # PRODUCT_ID
FAN_SETTING_MASK = 0x3F                         # 6-bit setting
PWM_F_MASK = 0x1F                               # 5-bit PWM_F
BASE_CLOCK_HZ = 360_000                         # CLK_SEL clear
RPM_NUMERATOR = 5_400_000                       # §6.14
TACH_STALLED = 0xFFFF
EXT_LSB = 0.125                                 # °C, 11-bit two's complement in bits 15..5
DIODE_OPEN, DIODE_SHORT = 0x7F00, 0x7FE0        # external reading on a diode fault

# The output stage, by manifest name: CONFIG bits and what a full-scale setting is.
OUTPUTS = {"pwm": 0, "dac": CONFIG_DAC}


def full_scale(output: str, pwm_f: int) -> int:
    """The FAN_SETTING value that drives 100 %: 2 · PWM_F in PWM mode, 63 for the 6-bit DAC."""
    if output == "dac":
        return FAN_SETTING_MASK
    return 2 * max(1, pwm_f)


def pwm_hz(pwm_f: int, pwm_d: int) -> float:
    """PWM frequency with CLK_OVR set: 360 kHz / (2 · PWM_F · PWM_D)."""
    return BASE_CLOCK_HZ / (2 * max(1, pwm_f) * max(1, pwm_d))


def duty_to_setting(percent: float, scale: int) -> int:
    """Percent (clamped to 0..100; NaN is treated as 100, the safe side) → FAN_SETTING."""
    if math.isnan(percent):
        percent = 100.0
    return round(max(0.0, min(100.0, percent)) / 100 * scale)


def setting_to_duty(setting: int, scale: int) -> float:
    """FAN_SETTING → percent; settings above full scale saturate at 100 %."""
    return min(1.0, (setting & FAN_SETTING_MASK) / scale) * 100


def tach_rpm(count: int) -> float:
    """TACH reading → RPM; FFFFh (stopped, or too slow to measure) and 0 read as 0 RPM."""
    if count in (0, TACH_STALLED):
        return 0.0
    return RPM_NUMERATOR / count


def external_celsius(high: int, low: int) -> float:
    """External diode high and low bytes → °C (11-bit two's complement, 0.125 °C per LSB)."""
    return (s16(((high & 0xFF) << 8) | (low & 0xE0)) >> 5) * EXT_LSB


def internal_celsius(raw: int) -> float:
    """Internal sensor: 8-bit two's complement, 1 °C per LSB."""
    return float(raw - 0x100 if raw & 0x80 else raw)


def diode_fault(status: int, high: int, low: int) -> str | None:
    """What is wrong with the external diode, if anything: FAULT is set for an open diode
    (or DP/DN shorted to VDD), with the reading 7F00h; a DP-DN short does not set FAULT
    but reads 7FE0h."""
    if status & STATUS_FAULT:
        return "open"
    if ((high << 8) | (low & 0xE0)) == DIODE_SHORT:
        return "short"
    return None


class EMC2101:
    """``output`` is "pwm" (a 4-wire fan's PWM input) or "dac" (a DC voltage). PWM_F
    trades frequency against resolution: the default 0x1F (Linux's choice) gives 62
    steps at 5.8 kHz; 0x07 gives 25.7 kHz (Intel's 4-wire range) in 14 steps."""

    def __init__(self, bus: SMBusLike, address: int = ADDRESS, output: str = "pwm",
                 pwm_f: int = 0x1F, pwm_d: int = 0x01):
        if output not in OUTPUTS:
            raise ValueError(f"emc2101 output is one of {', '.join(OUTPUTS)}, not {output!r}")
        if not 1 <= pwm_f <= PWM_F_MASK or not 1 <= pwm_d <= 0xFF:
            raise ValueError(f"emc2101: PWM_F is 1..{PWM_F_MASK} and PWM_D 1..255")
        self.bus, self.address, self.output = bus, address, output
        self.pwm_f, self.pwm_d = pwm_f, pwm_d
        self.config = CONFIG_ALT_TCH | OUTPUTS[output]   # pin 6 is TACH; ALERT unmasked
        self.fan_config = FAN_PROG | FAN_CLK_OVR         # direct setting; PWM_D divides
        self.full_scale = full_scale(output, pwm_f)
        self.pwm_hz = pwm_hz(pwm_f, pwm_d) if output == "pwm" else None
        self.product: str | None = None
        self.resets_seen = 0
        self._setting: int | None = None   # the last duty written, restored after a reset

    def _read(self, reg: int) -> int:
        return self.bus.read_byte_data(self.address, reg)

    def _write_checked(self, reg: int, value: int, what: str) -> None:
        self.bus.write_byte_data(self.address, reg, value)
        got = self._read(reg)
        if got != value:
            raise ChipError(f"emc2101 at {self.address:#04x}: {what} did not stick "
                            f"(wrote {value:#04x}, read {got:#04x})")

    def init(self) -> None:
        mfr, pid = self._read(MANUFACTURER_ID), self._read(PRODUCT_ID)
        if mfr != SMSC_ID or pid not in PRODUCTS:
            raise ChipError(f"emc2101 at {self.address:#04x}: ids {mfr:#04x}/{pid:#04x} "
                            "are not an EMC2101")
        self.product = PRODUCTS[pid]
        if self.output == "pwm":
            self._write_checked(PWM_FREQUENCY, self.pwm_f, "PWM frequency")
            self._write_checked(PWM_DIVIDE, self.pwm_d, "PWM divider")
        self._write_checked(FAN_CONFIG, self.fan_config, "fan configuration")
        self._write_checked(CONFIG, self.config, "configuration")

    def _check_reset(self) -> None:
        if self._read(CONFIG) != self.config:
            self.resets_seen += 1   # brown-out: back to defaults, and the fan stopped
            self.init()
            if self._setting is not None:
                self._write_checked(FAN_SETTING, self._setting, "fan setting")

    def set_duty(self, percent: float) -> None:
        """Drive the fan at ``percent`` (clamped to 0..100, to the nearest step)."""
        self._check_reset()
        setting = duty_to_setting(percent, self.full_scale)
        self.bus.write_byte_data(self.address, FAN_SETTING, setting)
        got = self._read(FAN_SETTING) & FAN_SETTING_MASK
        if got != setting:
            raise ChipError(f"emc2101 at {self.address:#04x}: fan setting did not stick "
                            f"(wrote {setting}, read {got}); is the look-up table driving the fan?")
        self._setting = setting

    def duty(self) -> float:
        """The duty the chip is driving, in percent, read back from FAN_SETTING."""
        self._check_reset()
        return setting_to_duty(self._read(FAN_SETTING), self.full_scale)

    def rpm(self) -> float:
        """The fan's speed from its tachometer; 0 when it is stopped or too slow to measure."""
        self._check_reset()
        low = self._read(TACH_LOW)     # latches the high byte
        high = self._read(TACH_HIGH)
        return tach_rpm((high << 8) | low)

    def temperature(self) -> float:
        """The external diode, °C. A diode fault raises ``OSError(EIO)``, like a sensor that
        fails; FAULT is latched, so one more read fails after the diode comes back."""
        status = self._read(STATUS)
        high = self._read(EXTERNAL_TEMP_HIGH)   # latches the low byte
        low = self._read(EXTERNAL_TEMP_LOW)
        fault = diode_fault(status, high, low)
        if fault is not None:
            raise OSError(errno.EIO, f"emc2101 at {self.address:#04x}: external diode {fault}")
        return external_celsius(high, low)

    def internal_temperature(self) -> float:
        """The controller's own die temperature, °C (1 °C resolution)."""
        return internal_celsius(self._read(INTERNAL_TEMP))
