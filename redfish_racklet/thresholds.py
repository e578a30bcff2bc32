"""Sensor thresholds: the limits (shared by the API's Sensor documents and the agent), and
which band a reading is in, with hysteresis, so that the agent can log each crossing once.

A threshold is (Sensor.Thresholds name, reading): upper ones trip when a reading rises
to them, lower ones when it falls to them. A reading's **band** is the name of the worst
threshold it is past (Fatal over Critical over Caution), or None when it is in range.
A reading leaves a band only once it is ``hysteresis`` back inside the limit, so a
reading that hovers at a limit gives one event, not one per sample.
"""

from __future__ import annotations

# A Raspberry Pi 4 throttles its SoC at 80 °C (soft) and 85 °C (hard); the board
# sensor sits beside it, so caution at 70, critical at 80, fatal at 85.
PI4_BOARD_C = (("UpperCaution", 70.0), ("UpperCritical", 80.0), ("UpperFatal", 85.0))
# A 5 V USB rail: ±5 % is the USB tolerance; a Pi 4 flags under-voltage below 4.63 V.
RAIL_5V = (("LowerCritical", 4.63), ("LowerCaution", 4.75), ("UpperCaution", 5.25),
           ("UpperCritical", 5.5))
# The air in the rack: a Pi 4 is rated for 0–50 °C ambient.
RACK_AIR_C = (("UpperCaution", 40.0), ("UpperCritical", 45.0), ("UpperFatal", 50.0))

# What a reading must come back past a limit by before it leaves the limit's band.
HYSTERESIS = {"temperature": 1.0, "voltage": 0.02}

_RANK = {"Caution": 1, "Critical": 2, "Fatal": 3}


def rank(name: str | None) -> int:
    return 0 if name is None else _RANK[name.removeprefix("Upper").removeprefix("Lower")]


def _past(name: str, limit: float, reading: float, margin: float) -> bool:
    if name.startswith("Upper"):
        return reading >= limit - margin
    return reading <= limit + margin


def band(thresholds: tuple, reading: float | None, previous: str | None, hysteresis: float) -> str | None:
    """The band of ``reading`` (None: in range), given the band it was in before. A
    silent sensor (None) keeps its band: no reading, no crossing."""
    if reading is None:
        return previous
    worst = None
    for name, limit in thresholds:
        # the band it is in (and the ones below it on the same side) hold until it is
        # ``hysteresis`` back inside; a new band needs the limit itself
        held = previous is not None and name[:5] == previous[:5] and rank(name) <= rank(previous)
        if _past(name, limit, reading, hysteresis if held else 0.0) and rank(name) > rank(worst):
            worst = name
    return worst


def crossing(thresholds: tuple, before: str | None, after: str | None) -> tuple[str, float | None] | None:
    """The SensorEvent message key of a move from band ``before`` to ``after`` and the
    threshold it names (None for the normal range), or None when nothing changed."""
    if before == after:
        return None
    limits = dict(thresholds)
    if after is None:
        return "SensorReadingNormalRange", None
    side = after[:5]                         # "Upper" or "Lower"
    level = after[5:]                        # "Caution", "Critical", "Fatal"
    if before is None or before[:5] != side or rank(after) > rank(before):
        word = "Above" if side == "Upper" else "Below"
        return f"Reading{word}{side}{level}Threshold", limits[after]
    # back from a worse band on the same side, still out of range
    word = "Below" if side == "Upper" else "Above"
    left = before[5:]
    return f"Reading{word}{side}{left}Threshold", limits[before]
