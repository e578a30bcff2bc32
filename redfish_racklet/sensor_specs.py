"""What each Sensor of the rack is (the API's Sensor documents and the agent's telemetry
reports read the same table): its reading kind in the store, units, rounding, thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

from .thresholds import PI4_BOARD_C, RACK_AIR_C, RAIL_5V

RACK_ID = "Rack"
FAN_ID = "Fan1"            # the rack fan: Sensor id and ThermalSubsystem/Fans id
JOULES_PER_KWH = 3.6e6
AVERAGING_INTERVAL = "PT1M"  # the agent's power_min/avg/max window (PowerMetrics IntervalInMin 1)

# Thresholds, as (Sensor.Thresholds name, reading): ``thresholds`` (the agent logs their crossings).
# Thresholds name -> the legacy Power/Thermal property for the same limit.
LEGACY_THRESHOLDS = {
    "UpperCaution": "UpperThresholdNonCritical", "UpperCritical": "UpperThresholdCritical",
    "UpperFatal": "UpperThresholdFatal", "LowerCaution": "LowerThresholdNonCritical",
    "LowerCritical": "LowerThresholdCritical", "LowerFatal": "LowerThresholdFatal",
}
_SEVERITY = {"Caution": "Warning", "Critical": "Critical", "Fatal": "Critical"}


@dataclass(frozen=True)
class Spec:
    kind: str                  # the store's reading kind
    reading_type: str          # Sensor.ReadingType
    units: str                 # ReadingUnits (UCUM)
    context: str               # PhysicalContext
    digits: int                # rounding on the wire
    name: str                  # what it measures, for Name
    implementation: str = "PhysicalSensor"
    scale: float = 1.0
    thresholds: tuple = ()
    interval: bool = False     # has power_min/avg/max over AVERAGING_INTERVAL


UNIT_SENSORS = {
    "Power": Spec("power", "Power", "W", "PowerSupply", 3, "rail power", interval=True),
    "Voltage": Spec("voltage", "Voltage", "V", "PowerSupply", 3, "rail voltage", thresholds=RAIL_5V),
    "Current": Spec("current", "Current", "A", "PowerSupply", 4, "rail current"),
    "Temperature": Spec("temperature", "Temperature", "Cel", "SystemBoard", 2, "board temperature",
                        thresholds=PI4_BOARD_C),
    "Energy": Spec("energy", "EnergyJoules", "J", "PowerSupply", 1, "energy", "Synthesized"),
    "EnergykWh": Spec("energy", "EnergykWh", "kW.h", "PowerSupply", 9, "energy (kWh)", "Synthesized",
                      scale=1 / JOULES_PER_KWH),
}
SENSORS = UNIT_SENSORS  # the name the first version of this module used

# The busbar is the sum of the rails (the agent adds them up): synthesized readings.
RACK_SENSORS = {
    "Power": Spec("power", "Power", "W", "DCBus", 3, "busbar power", "Synthesized", interval=True),
    "Voltage": Spec("voltage", "Voltage", "V", "DCBus", 3, "busbar voltage", "Synthesized",
                    thresholds=RAIL_5V),
    "Current": Spec("current", "Current", "A", "DCBus", 4, "busbar current", "Synthesized"),
    "Energy": Spec("energy", "EnergyJoules", "J", "DCBus", 1, "busbar energy", "Synthesized"),
    "EnergykWh": Spec("energy", "EnergykWh", "kW.h", "DCBus", 9, "busbar energy (kWh)", "Synthesized",
                      scale=1 / JOULES_PER_KWH),
    "Temperature": Spec("temperature", "Temperature", "Cel", "Chassis", 2, "air temperature",
                        thresholds=RACK_AIR_C),
    # Percent of the fan's rated speed (what DMTF asks fan sensors to report); SpeedRPM beside it.
    FAN_ID: Spec("fan_rpm", "Percent", "%", "Fan", 1, "fan speed"),
}


def convert(spec: Spec, raw: float | None, fan_max_rpm: float | None = None) -> float | None:
    """A stored reading as the Sensor shows it (scaled, rounded; the fan as % of its rated speed)."""
    if raw is None:
        return None
    if spec.kind == "fan_rpm":
        return round(100.0 * raw / fan_max_rpm, spec.digits) if fan_max_rpm else None
    return round(raw * spec.scale, spec.digits)
