"""Threshold crossings: bands with hysteresis (thresholds.py), the SensorEvent message of
each move, and the agent logging them on a live simulated rack (``sim heat``)."""

from __future__ import annotations

import pytest

from redfish_racklet import thresholds as th

from .conftest import sim, wait_for

BOARD = th.PI4_BOARD_C   # caution 70, critical 80, fatal 85 (upper)
RAIL = th.RAIL_5V        # lower critical 4.63, caution 4.75; upper caution 5.25, critical 5.5


def walk(limits, readings, hysteresis):
    """The messages a series of readings gives, from the normal range."""
    out, band = [], None
    for r in readings:
        new = th.band(limits, r, band, hysteresis)
        move = th.crossing(limits, band, new)
        if move:
            out.append(move)
        band = new
    return out


def test_rising_through_every_upper_threshold():
    assert walk(BOARD, [50, 71, 81, 86], 1.0) == [
        ("ReadingAboveUpperCautionThreshold", 70.0), ("ReadingAboveUpperCriticalThreshold", 80.0),
        ("ReadingAboveUpperFatalThreshold", 85.0)]


def test_falling_back_names_the_threshold_left_then_the_normal_range():
    assert walk(BOARD, [86, 83, 75, 60], 1.0) == [
        ("ReadingAboveUpperFatalThreshold", 85.0), ("ReadingBelowUpperFatalThreshold", 85.0),
        ("ReadingBelowUpperCriticalThreshold", 80.0), ("SensorReadingNormalRange", None)]


def test_a_reading_hovering_at_a_limit_gives_one_event():
    hovering = [69.5, 70.2, 69.6, 70.1, 69.3, 70.4, 69.5]
    assert walk(BOARD, hovering, 1.0) == [("ReadingAboveUpperCautionThreshold", 70.0)]
    # and leaves the band only once it is the hysteresis back inside
    assert walk(BOARD, hovering + [68.9], 1.0)[-1] == ("SensorReadingNormalRange", None)


def test_lower_thresholds_trip_when_falling():
    assert walk(RAIL, [5.0, 4.7, 4.6, 4.7, 4.8], 0.02) == [
        ("ReadingBelowLowerCautionThreshold", 4.75), ("ReadingBelowLowerCriticalThreshold", 4.63),
        ("ReadingAboveLowerCriticalThreshold", 4.63), ("SensorReadingNormalRange", None)]


def test_a_silent_sensor_keeps_its_band():
    assert walk(BOARD, [90, None, None, 90], 1.0) == [("ReadingAboveUpperFatalThreshold", 85.0)]


@pytest.mark.parametrize("key", (
    "ReadingAboveUpperCautionThreshold", "ReadingAboveUpperCriticalThreshold", "ReadingAboveUpperFatalThreshold",
    "ReadingBelowLowerCautionThreshold", "ReadingBelowLowerCriticalThreshold", "ReadingBelowUpperFatalThreshold",
    "ReadingBelowUpperCriticalThreshold", "ReadingAboveLowerCriticalThreshold", "SensorReadingNormalRange"))
def test_every_message_the_crossings_give_is_in_the_journal_messages(key):
    from redfish_racklet.agent import events
    assert ("SensorEvent.1.1.0", key) in events.MESSAGES


def test_the_agent_logs_a_board_running_hot_and_cooling_down(server):
    """``sim heat Unit2 60``: the board jumps past 85 °C, one event; heat 0: back to normal."""
    c = server.client()
    log = server.url + "/redfish/v1/Systems/Unit2/LogServices/EventLog/Entries"

    def sensor_events():
        return [e for e in c.get(log).json()["Members"] if e["MessageId"].startswith("SensorEvent.")]

    before = len(sensor_events())
    sim(server, "heat", "Unit2", "60")
    try:
        hot = wait_for(lambda: sensor_events()[before:], "the crossing event", timeout=15)
        assert [e["MessageId"] for e in hot] == ["SensorEvent.1.1.0.ReadingAboveUpperFatalThreshold"]
        uri, reading, units, limit = hot[0]["MessageArgs"]
        assert uri == "/redfish/v1/Chassis/Unit2/Sensors/Temperature" and units == "Cel" and limit == "85"
        assert float(reading) > 85 and hot[0]["Severity"] == "Critical"
        assert hot[0]["Links"]["OriginOfCondition"]["@odata.id"] == uri
        sensor = c.get(server.url + uri).json()
        assert sensor["Status"]["Health"] == "Critical"
    finally:
        sim(server, "heat", "Unit2", "0")
    cooled = wait_for(lambda: sensor_events()[before + 1:], "the normal-range event", timeout=15)
    assert [e["MessageId"] for e in cooled] == ["SensorEvent.1.1.0.SensorReadingNormalRange"]


def test_heat_is_bounded(server):
    for bad in ("61", "-1", "warm"):
        r = sim(server, "heat", "Unit2", bad, check=False)
        assert r.returncode != 0 and r.stderr
