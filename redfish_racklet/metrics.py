"""What the OpenMetrics side endpoint shows: a ``prometheus_client`` collector over the store.

Every number comes from the store at the moment of the scrape — the same rows the
Redfish Sensors read — so a scrape and a GET of the same instant agree. Names follow
the Prometheus conventions (base units as suffixes: ``_watts``, ``_volts``,
``_amperes``, ``_celsius``, ``_joules_total``; ``_info`` for facts).

- per unit: power, voltage, current, board temperature, energy (a counter: the agent
  persists it, so it never goes back across restarts), power state (a StateSet),
  presence, desired power;
- the rack: busbar power, voltage, current and energy, rack air temperature, the power
  supply, the power limit (the budget) and what the units on reserve of it, fan speed
  and duty;
- firmware: one ``racklet_firmware_slot_info`` per component slot (version, active,
  staged), the security floor; update tasks by state;
- the agent: sampling sweeps (count and seconds), sensor read errors per part (counters
  the agent persists).

The HTTP metrics of the API workers (``http_metrics.py``, prometheus_client multiprocess mode) are
added by the server (``metrics_server.py``) from ``PROMETHEUS_MULTIPROC_DIR``.
"""

from __future__ import annotations

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily,
                                    StateSetMetricFamily)

from .store import Store

RACK = "Rack"
POWER_STATES = ("On", "Off", "PoweringOn", "PoweringOff")
UNIT_GAUGES = (  # (reading kind, metric name, help)
    ("power", "racklet_unit_power_watts", "Power drawn by the unit from its rail"),
    ("voltage", "racklet_unit_voltage_volts", "Voltage of the unit's rail at the board"),
    ("current", "racklet_unit_current_amperes", "Current in the unit's rail"),
    ("temperature", "racklet_unit_temperature_celsius", "Temperature of the unit's board"),
)
RACK_GAUGES = (
    ("power", "racklet_rack_power_watts", "Power on the busbar (the sum of the rails)"),
    ("voltage", "racklet_rack_voltage_volts", "Voltage of the busbar"),
    ("current", "racklet_rack_current_amperes", "Current on the busbar"),
    ("temperature", "racklet_rack_temperature_celsius", "Temperature of the air in the rack"),
    ("fan_rpm", "racklet_rack_fan_speed_rpm", "Speed of the rack fan"),
)


UNITS = ("watts", "volts", "amperes", "celsius", "joules", "rpm", "ratio", "seconds")


def _unit(name: str) -> str:
    """The OpenMetrics unit of a metric named with its unit as suffix ('' if none)."""
    last = name.rsplit("_", 1)[-1]
    return last if last in UNITS else ""


def gauge(name: str, text: str, labels=None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, labels=labels, unit=_unit(name))


def counter(name: str, text: str, labels=None) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, labels=labels, unit=_unit(name))


class RackCollector:
    """A ``prometheus_client`` collector reading the store at each scrape."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self):
        s = self.store
        units = s.units()
        yield from self._units(units)
        yield from self._rack(units)
        yield from self._firmware()
        yield from self._agent()

    def _units(self, units: list[dict]):
        gauges = {kind: gauge(name, text, labels=["unit"]) for kind, name, text in UNIT_GAUGES}
        energy = counter("racklet_unit_energy_joules", "Energy the unit has drawn, since the rack "
                                     "was first started", labels=["unit"])
        present = gauge("racklet_unit_present", "1 if a unit is in the tray", labels=["unit"])
        desired = gauge("racklet_unit_desired_power_on", "1 if the agent keeps the unit's rail on",
                                    labels=["unit"])
        state = StateSetMetricFamily("racklet_unit_power_state", "The unit's PowerState", labels=["unit"])
        for u in units:
            uid = u["id"]
            r = self.store.readings(uid)
            for kind, _, _ in UNIT_GAUGES:
                value = r.get(kind, {}).get("value")
                if value is not None and u["present"]:
                    gauges[kind].add_metric([uid], value)
            joules = r.get("energy", {}).get("value")
            if joules is not None:
                energy.add_metric([uid], joules)
            present.add_metric([uid], 1.0 if u["present"] else 0.0)
            desired.add_metric([uid], 1.0 if u["desired_power"] == "On" else 0.0)
            state.add_metric([uid], {p: u["power_state"] == p for p in POWER_STATES})
        yield from gauges.values()
        yield energy
        yield present
        yield desired
        yield state

    def _rack(self, units: list[dict]):
        s = self.store
        r = s.readings(RACK)
        for kind, name, text in RACK_GAUGES:
            value = r.get(kind, {}).get("value")
            g = gauge(name, text)
            if value is not None:
                g.add_metric([], value)
            yield g
        duty = r.get("fan_duty", {}).get("value")
        g = gauge("racklet_rack_fan_duty_ratio", "Duty the fan curve drives the fan at (0 to 1)")
        if duty is not None:
            g.add_metric([], duty / 100.0)
        yield g
        joules = r.get("energy", {}).get("value")
        c = counter("racklet_rack_energy_joules", "Energy through the busbar, since the rack was "
                                "first started")
        if joules is not None:
            c.add_metric([], joules)
        yield c
        info = s.rack_info()
        supply = info.get("power_supply_watts")
        limit = s.power_limit()
        g = gauge("racklet_rack_power_supply_watts", "What the busbar's supply can deliver")
        if supply is not None:
            g.add_metric([], supply)
        yield g
        g = gauge("racklet_rack_power_limit_watts", "The power budget (PowerLimit)")
        if limit is not None or supply is not None:
            g.add_metric([], limit if limit is not None else supply)
        yield g
        reserved = sum(u["info"].get("max_watts", 0.0) for u in units
                       if u["power_state"] in ("On", "PoweringOn"))
        g = gauge("racklet_rack_power_reserved_watts", "What the units that are on or powering "
                              "on reserve of the budget (their max_watts)")
        g.add_metric([], reserved)
        yield g

    def _firmware(self):
        s = self.store
        slots = s.slots_all()
        info = InfoMetricFamily("racklet_firmware_slot", "A firmware slot and what it holds",
                                labels=["target", "component", "slot"])
        floor = gauge("racklet_firmware_security_floor", "The lowest security version a component "
                                  "accepts", labels=["target", "component"])
        for fw in s.firmware_all():
            t, c = fw["target"], fw["component"]
            floor.add_metric([t, c], fw["floor"])
            for slot in ("A", "B"):
                row = slots.get((t, c, slot)) or {}
                info.add_metric([t, c, slot], {
                    "version": row.get("version") or "", "state": row.get("state") or "empty",
                    "active": str(slot == fw["active"]).lower(), "staged": str(slot == fw["staged"]).lower(),
                    "trial": str(slot == fw["trial"]).lower()})
        yield info
        yield floor
        tasks = gauge("racklet_update_tasks", "Firmware update tasks kept, by TaskState",
                                  labels=["state"])
        counts: dict[str, int] = {}
        for t in s.tasks():
            counts[t["state"]] = counts.get(t["state"], 0) + 1
        for state in ("New", "Running", "Pending", "Completed", "Exception", "Cancelled"):
            tasks.add_metric([state], counts.get(state, 0))
        yield tasks

    def _agent(self):
        stats = self.store.agent_stats()
        sweeps = counter("racklet_agent_sample_sweeps", "Sampling sweeps of every sensor")
        seconds = counter("racklet_agent_sample_seconds", "Time the agent spent in sampling sweeps")
        last = gauge("racklet_agent_last_sample_duration_seconds", "How long the last sweep took")
        ticks = counter("racklet_agent_observe_ticks", "Observe passes of the agent's loop")
        errors = counter("racklet_sensor_errors", "Sensor reads that failed (per sweep)",
                                     labels=["unit", "part"])
        sweeps.add_metric([], stats.get("sweeps", 0))
        seconds.add_metric([], stats.get("sweep_seconds", 0.0))
        ticks.add_metric([], stats.get("ticks", 0))
        if "last_sweep_seconds" in stats:
            last.add_metric([], stats["last_sweep_seconds"])
        for key, n in sorted(stats.get("sensor_errors", {}).items()):
            unit, _, part = key.partition("/")
            errors.add_metric([unit, part], n)
        yield sweeps
        yield seconds
        yield last
        yield ticks
        yield errors
