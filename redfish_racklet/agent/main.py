"""The agent process: builds the drivers from the manifest, reconciles, serves commands.

Loop: every ``tick_seconds`` it reads the hardware (observe), finishes pending
intents such as "cut the rail once the OS has halted" (act), and writes changed
observed state to the store. Commands arrive as rows in the store; the API wakes
the agent over a Unix socket in the state directory and waits for the reply.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import socket
import time
from dataclasses import dataclass
from typing import Callable

from ..drivers.smbus import ChipError
from ..manifest import Manifest
from ..store import Store, StoreError, check as check_store, is_full
from .. import factory, telemetry, thresholds
from . import FACTORY_RESET, SOCKET_NAME, UPDATE_PREFIX, delivery, events, hardware, power, sampling, updater
from .energy import Integrator, Window
from .fan import FanCurve

log = logging.getLogger("racklet.agent")

RACK = "Rack"  # the readings of the busbar, the rack air and the fan
BMC_RESET_TYPES = ("GracefulRestart", "ForceRestart")
OUTLET_ACTIONS = {"On": "On", "Off": "ForceOff", "PowerCycle": "PowerCycle"}
RESTORE_POLICIES = ("AlwaysOn", "AlwaysOff", "LastState")
FACTORY_SHUTDOWN_SECONDS = 2.5  # graceful shutdowns get this long before the rails are cut
SERVE_PID_ENV = "RACKLET_SERVE_PID"  # set by `serve`: whose API workers to reload


@dataclass
class Intent:
    kind: str
    since: float


class Agent:
    """The one owner of the rack's hardware: observe → diff → act, sample, serve commands."""

    def __init__(self, store: Store, manifest: Manifest, hw: hardware.Hardware,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        self.store = store
        self.manifest = manifest
        self.hardware = hw
        self.hw = hw.units  # unit id -> object with PowerRail, Presence, Host and LED methods
        self.sensors = hw.sensors
        self.clock, self.wall = clock, wall
        self.intents: dict[str, Intent] = {}
        self.queue: dict[str, float] = {}  # rails waiting to switch on: uid -> earliest time
        self._last_on = float("-inf")
        self._written: dict[str, tuple[bool, str]] = {}
        self._leds: dict[str, bool] = {}
        self.hw_failing: set[str] = set()
        self.max_watts = {u.id: u.max_watts for u in manifest.units}
        self.fan_curve = FanCurve.from_manifest(manifest.fan.get("curve"))
        self.rack_energy = Integrator()
        self.windows = {uid: Window() for uid in list(self.hw) + [RACK]}
        self._rack_failing: set[str] = set()
        self.stats = store.agent_stats()   # counters the metrics endpoint shows; persisted
        self.ticks = int(self.stats.get("ticks", 0))
        self.bands: dict[tuple[str, str], str | None] = {}  # (unit, kind) -> threshold band (thresholds.py)
        self.log = events.Log(store, lambda: self.wall())
        self.reporter = telemetry.Reporter(store, self.log, lambda: self.wall())
        self.state_dir: str | None = None  # where the keys live (for a factory reset)
        self.updater: updater.Updater | None = None  # firmware updates (when the rack has slots)
        self.wait: Callable[[float], None] = time.sleep

    @classmethod
    def from_manifest(cls, store: Store, manifest: Manifest, clock=time.monotonic, gpio=None,
                      open_bus=None, state_dir: str | None = None) -> "Agent":
        """``state_dir``: where firmware slots and staged bundles live; without it the
        agent runs no updates (tests of the loops alone)."""
        desired = {u["id"]: u["desired_power"] == "On" for u in store.units()}
        rails_on = {u.id: _restored(store.settings(u.id), desired.get(u.id, True)) for u in manifest.units}
        root = os.path.join(state_dir, "firmware") if state_dir else None
        agent = cls(store, manifest, hardware.build(manifest, clock, rails_on, gpio, open_bus, root), clock)
        if state_dir:
            agent.state_dir = state_dir
            agent.updater = updater.Updater(agent, agent.hardware.firmware, state_dir,
                                            manifest.update_trial_seconds)
        return agent

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        """Publish the rack and its units; bring each rail to its restored desired state."""
        now = self.wall()
        self.store.set_rack_info(self.manifest.info())
        for spec in self.manifest.units:
            info = dict(spec.info(), **self.hardware.fru.get(spec.id, {}))
            self.store.upsert_unit(spec.id, spec.slot, info, self.hw[spec.id].present(), "Off", now)
        self.store.remove_units_except([u.id for u in self.manifest.units])
        self.reporter.start([u.id for u in self.manifest.units])
        for spec in self.manifest.units:
            hw = self.hw[spec.id]
            unit = self.store.unit(spec.id)
            on = _restored(self.store.settings(spec.id), unit["desired_power"] == "On")
            self.store.set_desired_power(spec.id, "On" if on else "Off")
            if not on and hw.get():
                hw.set(False)
            elif on and hw.present() and not hw.get():
                self._power_on_or_log(spec.id)
        self.observe()
        for uid, joules in self.store.energy_joules().items():  # counters never go back
            if uid in self.sensors:
                self.sensors[uid].energy.joules = joules
            elif uid == RACK:
                self.rack_energy.joules = joules
        for cid in self.store.pending_commands():  # left by a previous run
            self.run_command(cid)

    def close(self) -> None:
        self.hardware.close()

    # -- power: budget and staggered power-on -------------------------------------
    def limit(self) -> float:
        limit = self.store.power_limit()
        return self.manifest.power_supply_watts if limit is None else limit

    def drawing(self) -> set[str]:
        """Units the budget counts: rail on, or waiting to switch on."""
        return {uid for uid, hw in self.hw.items() if hw.get()} | set(self.queue)

    def _power_on(self, uid: str) -> None:
        """Queue the rail to switch on (budget already admitted); staggered by ``drain``."""
        delay = float(self.store.settings(uid).get("outlet", {}).get("power_on_delay_seconds", 0))
        self.queue[uid] = self.clock() + delay

    def _power_on_or_log(self, uid: str) -> None:
        try:
            power.admit(uid, self.max_watts, self.drawing(), self.limit())
        except power.Conflict as e:
            log.warning("unit %s stays off: %s", uid, e)
            return
        self._power_on(uid)

    def _power_off(self, uid: str) -> None:
        self.queue.pop(uid, None)
        self.hw[uid].set(False)

    def drain(self) -> None:
        """Switch on the queued rails whose time has come, one per stagger period."""
        stagger = self.manifest.power_on_stagger_seconds
        for uid, at in list(self.queue.items()):
            now = self.clock()
            if now < at or now - self._last_on < stagger:
                continue
            del self.queue[uid]
            if self.hw[uid].present():
                if self.updater:
                    self.updater.before_rail_on(uid)
                self.hw[uid].set(True)
                self._last_on = now

    # -- observe → diff → act -------------------------------------------------------
    def observe(self) -> None:
        self.ticks += 1
        try:
            for uid in self.hardware.presence_changes():
                log.info("unit %s: presence line changed", uid)
        except OSError:
            pass  # the lines themselves are read below, and their failure reported per unit
        for uid, hw in self.hw.items():
            try:
                self._observe_unit(uid, hw)
                if uid in self.hw_failing:
                    self.hw_failing.discard(uid)
                    self.store.delete_setting(uid, "fault")
                    log.warning("unit %s: rail and presence lines answer again", uid)
                    self.log.write("ResourceStatusChangedOK", [_chassis(uid), "OK"], _chassis(uid), uid)
            except OSError as e:  # a GPIO chip that went away: keep the other units going
                if uid not in self.hw_failing:
                    self.hw_failing.add(uid)
                    self.store.set_setting(uid, "fault", f"rail/presence lines: {e}")
                    log.warning("unit %s: rail and presence lines do not answer: %s", uid, e)
                    self.log.write("ResourceStatusChangedCritical", [_chassis(uid), "Critical"],
                                   _chassis(uid), uid)
        self.drain()
        self._apply_leds()
        if self.updater:
            self.updater.tick()

    def _observe_unit(self, uid: str, hw) -> None:
        before = self._written.get(uid)
        present = hw.present()
        if not present:
            self.intents.pop(uid, None)
            self.queue.pop(uid, None)
            if hw.get():  # an unplugged tray's rail is switched off; its desired state is kept
                hw.set(False)
        elif before is not None and not before[0]:
            log.info("unit %s plugged in", uid)
            if self.store.unit(uid)["desired_power"] == "On" and not hw.get():
                self._power_on_or_log(uid)
        intent = self.intents.get(uid)
        if intent:
            self._advance(uid, hw, intent)
        state = "PoweringOn" if uid in self.queue else power.power_state(hw.get(), hw.state())
        seen = (present, state)
        if before != seen:
            if state == "On" and (before is None or before[1] != "On"):
                self._booted(uid)
            self.store.set_observed(uid, present, state, self.wall())
            self._written[uid] = seen
            if before is not None:
                self._log_change(uid, before, seen)

    def _log_change(self, uid: str, before: tuple[bool, str], seen: tuple[bool, str]) -> None:
        if before[0] != seen[0]:
            self.log.write("ResourceCreated" if seen[0] else "ResourceRemoved", [], _chassis(uid), uid)
        system = f"/redfish/v1/Systems/{uid}"
        if seen[1] in ("On", "Off") and before[1] != seen[1]:
            self.log.write("ResourcePoweredOn" if seen[1] == "On" else "ResourcePoweredOff", [system],
                           system, uid)

    def _booted(self, uid: str) -> None:
        """A one-time boot override is spent once the unit has booted with it."""
        boot = self.store.settings(uid).get("boot")
        if boot and boot.get("enabled") == "Once":
            self.store.set_setting(uid, "boot", dict(boot, enabled="Disabled"))

    def _apply_leds(self) -> None:
        blink_on = int(self.clock() * 2) % 2 == 0  # 1 Hz
        for uid, hw in self.hw.items():
            mode = self.store.settings(uid).get("led", "Off")
            on = mode == "Lit" or (mode == "Blinking" and blink_on)
            if self._leds.get(uid) != on and uid not in self.hw_failing:
                try:
                    hw.set_led(on)
                    self._leds[uid] = on
                except OSError:
                    pass  # the same lines as the rail: reported by observe

    def _advance(self, uid: str, hw, intent: Intent) -> None:
        now = self.clock()
        if intent.kind == "on_after_cycle":
            if now - intent.since >= power.POWER_CYCLE_OFF_SECONDS:
                self._power_on(uid)
                del self.intents[uid]
            return
        timed_out = now - intent.since >= power.GRACEFUL_TIMEOUT_SECONDS
        if hw.state() in ("halted", "off") or timed_out:
            hw.set(False)
            if intent.kind == "on_after_halt":
                self._power_on(uid)
            del self.intents[uid]

    # -- sampling ---------------------------------------------------------------------
    def sample(self) -> None:
        """Read every sensor of the rack and publish the sweep in one store transaction."""
        started = time.perf_counter()
        for convert in self.hardware.before_sample:
            convert()
        now = self.clock()
        changes: list = []
        sweep = sampling.sample(self.sensors, now, changes)
        sweep[RACK] = self._rack(sweep, now, changes)
        for uid, part, ok in changes:
            where = _sensor(uid, part)
            if ok:
                self.log.write("ResourceStatusChangedOK", [where, "OK"], where, "" if uid == RACK else uid)
            else:
                self.log.write("ResourceStatusChangedWarning", [where, "Warning"], where,
                               "" if uid == RACK else uid)
        self._log_crossings(sweep)
        for uid, r in sweep.items():
            window = self.windows[uid]
            if r["power"] is not None:
                window.add(now, r["power"])
            r["power_min"], r["power_avg"], r["power_max"] = window.summary()
        self.store.write_readings(sweep, self.wall())
        present = {uid: r for uid, r in sweep.items() if uid == RACK or self._written.get(uid, (False,))[0]}
        self.reporter.tick(present, self.manifest.info()["fan_max_rpm"])   # an empty tray reports nothing
        self._count_sweep(time.perf_counter() - started)

    def _count_sweep(self, seconds: float) -> None:
        """What the metrics endpoint shows of the agent (metrics.py): sweeps, their time,
        sensor reads that failed. Counters persist in the store across restarts."""
        st = self.stats
        st["sweeps"] = st.get("sweeps", 0) + 1
        st["sweep_seconds"] = st.get("sweep_seconds", 0.0) + seconds
        st["last_sweep_seconds"] = seconds
        errors = st.setdefault("sensor_errors", {})
        for uid, sensors in self.sensors.items():
            for part in sensors.failing:
                errors[f"{uid}/{part}"] = errors.get(f"{uid}/{part}", 0) + 1
        for part in self._rack_failing:
            errors[f"{RACK}/{part}"] = errors.get(f"{RACK}/{part}", 0) + 1
        st["ticks"] = self.ticks
        self.store.set_agent_stats(st)

    def _log_crossings(self, sweep: dict) -> None:
        """One SensorEvent per threshold crossing (with hysteresis: thresholds.py). A unit's
        rail voltage is judged only while its rail is on."""
        for uid, r in sweep.items():
            for kind in ("temperature", "voltage"):
                limits = THRESHOLDS[(uid == RACK, kind)]
                reading = r.get(kind)
                if kind == "voltage" and uid != RACK and not self._rail_on(uid):
                    reading = None
                before = self.bands.get((uid, kind))
                after = thresholds.band(limits, reading, before, thresholds.HYSTERESIS[kind])
                move = thresholds.crossing(limits, before, after)
                if move is None:
                    continue
                self.bands[(uid, kind)] = after
                key, limit = move
                where = _sensor(uid, kind)
                args = [where, f"{reading:.2f}", READING_UNITS[kind]] + ([] if limit is None else [f"{limit:g}"])
                self.log.write(key, args, where, "" if uid == RACK else uid)

    def _rail_on(self, uid: str) -> bool:
        try:
            return self.hw[uid].get()
        except OSError:   # lines that do not answer (reported by observe): no judgement
            return False

    def _rack(self, sweep: dict, now: float, changes: list) -> dict:
        """The busbar (the sum of the rails), the rack air and the fan, which it drives."""
        live = [r for r in sweep.values() if r["power"] is not None]
        r: dict[str, float | None] = {"power": None, "voltage": None, "current": None,
                                      "temperature": None, "fan_rpm": None, "fan_duty": None}
        if live:
            r["power"] = sum(x["power"] for x in live)
            r["current"] = sum(x["current"] for x in live)
            r["voltage"] = max(x["voltage"] for x in live)
            r["energy"] = self.rack_energy.add(now, r["power"])
        else:
            self.rack_energy.gap()
            r["energy"] = self.rack_energy.joules
        fan = self.hardware.fan
        if fan is not None:
            try:
                r["temperature"] = fan.temperature()
                sampling.recovered(RACK, self._rack_failing, "temperature", changes)
            except OSError as e:
                sampling.failed(RACK, self._rack_failing, "temperature", e, changes)
            try:
                fan.set_duty(self.fan_curve.duty_for(r["temperature"]))
                r["fan_duty"], r["fan_rpm"] = fan.duty(), fan.rpm()
                sampling.recovered(RACK, self._rack_failing, "fan", changes)
            except (OSError, ChipError) as e:  # ChipError: a setting that did not stick
                sampling.failed(RACK, self._rack_failing, "fan", e, changes)
        return r

    # -- commands --------------------------------------------------------------
    def run_command(self, cid: int) -> dict:
        cmd = self.store.claim_command(cid)
        if cmd is None:
            # already run (the loop's sweep of pending commands got to it first): its outcome
            c = self.store.command(cid)
            return {"id": cid, "state": c["state"] if c else "unknown", "message": (c and c["message"]) or ""}
        uid, action = cmd["unit"], cmd["action"]
        self.observe()
        if action.startswith(UPDATE_PREFIX):
            return self._update_command(cid, action)
        if action == FACTORY_RESET:
            path = self.factory_reset()
            self.store.finish_command(cid, "done", "", self.wall())
            return {"id": cid, "state": "done", "message": path}
        try:
            if uid not in self.hw:
                raise power.Conflict(f"no unit {uid}")
            kind, _, arg = action.partition(":")
            handler = {"reset": self._reset, "outlet": self._outlet, "bmc_reset": self._bmc_reset}.get(kind)
            if handler is None:
                raise power.Conflict(f"unknown command {action}")
            handler(uid, arg)
        except (power.Conflict, ValueError) as e:
            self.store.finish_command(cid, "rejected", str(e), self.wall())
            return {"id": cid, "state": "rejected", "message": str(e)}
        self.observe()
        self.store.finish_command(cid, "done", "", self.wall())
        log.info("unit %s: %s done, now %s", uid, action, self._written[uid][1])
        return {"id": cid, "state": "done", "message": "", "power_state": self._written[uid][1]}

    def _update_command(self, cid: int, action: str) -> dict:
        """``update:TASK`` (install a staged bundle) or ``activate:TARGET:COMPONENT:SLOT:TASK``."""
        try:
            if self.updater is None:
                raise power.Conflict("this rack has no firmware slots")
            kind, _, arg = action.partition(":")
            if kind == "update":
                self.updater.submit(int(arg))
            else:
                target, component, slot, task = arg.split(":")
                self.updater.activate_by_hand(target, component, slot, int(task) if task else None)
        except (power.Conflict, ValueError) as e:
            self.store.finish_command(cid, "rejected", str(e), self.wall())
            return {"id": cid, "state": "rejected", "message": str(e)}
        self.store.finish_command(cid, "done", "", self.wall())
        return {"id": cid, "state": "done", "message": ""}

    def _reset(self, uid: str, reset_type: str) -> None:
        hw = self.hw[uid]
        state = "PoweringOn" if uid in self.queue else power.power_state(hw.get(), hw.state())
        steps, intent, desired = power.plan_reset(reset_type, hw.present(), state)
        if "rail_on" in steps:  # a unit already drawing (a restart) is always admitted
            power.admit(uid, self.max_watts, self.drawing(), self.limit())
        self.intents.pop(uid, None)
        for step in steps:
            if step == "rail_on":
                self._power_on(uid)
            elif step == "rail_off":
                self._power_off(uid)
            elif step == "shutdown":
                hw.request_shutdown()
        if intent:
            self.intents[uid] = Intent(intent, self.clock())
        self.store.set_desired_power(uid, desired)

    def _outlet(self, uid: str, state: str) -> None:
        """Outlet.PowerControl: the rail itself, whatever the OS is doing."""
        if state not in OUTLET_ACTIONS:
            raise ValueError(f"outlet power state {state!r}")
        hw = self.hw[uid]
        if state == "Off":
            if not hw.get() and uid not in self.queue:
                self.store.set_desired_power(uid, "Off")
                return
            self.intents.pop(uid, None)
        self._reset(uid, OUTLET_ACTIONS[state])

    def _bmc_reset(self, uid: str, reset_type: str) -> None:
        if reset_type not in BMC_RESET_TYPES:
            raise ValueError(f"BMC reset type {reset_type!r}")
        if not self.hw[uid].present():
            raise power.Conflict("the unit is absent; its BMC cannot be reset")
        self.store.set_setting(uid, "bmc_reset", self.wall())
        if not (self.updater and self.updater.before_bmc_reset(uid)) and hasattr(self.hw[uid], "reset_bmc"):
            self.hw[uid].reset_bmc()
        self.log.write("ManagerReset", [f"{uid}-BMC", reset_type], f"/redfish/v1/Managers/{uid}-BMC", uid)

    # -- factory reset ----------------------------------------------------------------------
    def factory_reset(self) -> str:
        """Power the units down (gracefully, for a bounded time), then forget everything
        (factory.reset), then have the API workers load the new certificate."""
        self.queue.clear()
        self.intents.clear()
        for hw in self.hw.values():
            if hw.get():
                hw.request_shutdown()
        deadline = time.monotonic() + FACTORY_SHUTDOWN_SECONDS
        while time.monotonic() < deadline and any(
                hw.get() and hw.state() not in ("halted", "off") for hw in self.hw.values()):
            self.wait(0.05)
        for hw in self.hw.values():
            if hw.get():
                hw.set(False)
        path = factory.reset(self.state_dir or os.path.dirname(self.store.path), self.store)
        self._written.clear()
        self._leds.clear()
        self.observe()
        self.log.write("ManagerReset", ["RMC", "ResetAll"], "/redfish/v1/Managers/RMC")
        log.warning("factory reset: units off, accounts, settings, logs and certificates renewed")
        # gunicorn's arbiter: `serve` names itself; under systemd the API's arbiter holds the
        # state directory's lock with its pid in it (deploy/gunicorn.conf.py)
        from ..server import lock_holder
        serve_pid = os.environ.get(SERVE_PID_ENV) or lock_holder(self.state_dir or os.path.dirname(self.store.path))
        if serve_pid:  # new workers with the new certificate and no cached logins, gracefully
            try:
                os.kill(int(serve_pid), signal.SIGHUP)
            except (OSError, ValueError):
                log.warning("could not ask serve (pid %s) to reload its workers", serve_pid)
        return path

    # -- the simulation, driven by `redfish-racklet sim` ---------------------------------
    def sim_command(self, op: str, uid: str, value=None) -> dict:
        rack = self.hardware.sim
        if rack is None:
            return {"state": "rejected", "message": "this rack is not simulated"}
        if uid not in self.hw and not (op in ("fail", "heal") and value == "fan") and \
                not (op == "heat" and uid == RACK):
            return {"state": "rejected", "message": f"no unit {uid!r} in this rack"}
        try:
            if op in ("plug", "unplug"):
                rack.plug(uid, op == "plug")
            elif op == "load":
                rack.set_load(uid, float(value))
            elif op in ("fail", "heal"):
                rack.fail(uid, str(value), op == "fail")
            elif op == "heat":
                rack.heat(uid, float(value))
            else:
                return {"state": "rejected", "message": f"unknown simulation command {op!r}"}
        except (ValueError, TypeError) as e:
            return {"state": "rejected", "message": str(e)}
        log.info("simulation: %s %s %s", op, uid, "" if value is None else value)
        self.observe()
        return {"state": "done", "message": ""}


def _chassis(uid: str) -> str:
    return f"/redfish/v1/Chassis/{uid}"


# The Sensor resource that shows a part's readings (the API's ids).
SENSOR_IDS = {"power": "Power", "temperature": "Temperature", "fan": "Fan1", "voltage": "Voltage"}
# (is the rack, reading kind) -> its thresholds (the API's Sensor documents show the same)
THRESHOLDS = {(False, "temperature"): thresholds.PI4_BOARD_C, (False, "voltage"): thresholds.RAIL_5V,
              (True, "temperature"): thresholds.RACK_AIR_C, (True, "voltage"): thresholds.RAIL_5V}
READING_UNITS = {"temperature": "Cel", "voltage": "V"}


def _sensor(uid: str, part: str) -> str:
    return f"/redfish/v1/Chassis/{uid}/Sensors/{SENSOR_IDS.get(part, part)}"


def _restored(settings: dict, desired_on: bool) -> bool:
    """The rail's state at start, by the outlet's PowerRestorePolicy."""
    policy = settings.get("outlet", {}).get("power_restore_policy", "LastState")
    return {"AlwaysOn": True, "AlwaysOff": False}.get(policy, desired_on)


def serve(agent: Agent, state_dir: str, stop: list) -> None:
    """Run the agent until ``stop`` becomes non-empty (set by a signal handler)."""
    if agent.updater:   # before any rail switches on: a simulated unit boots from its slots
        agent.updater.start()
    agent.start()
    agent.sample()  # readings exist before anyone can ask
    pusher = delivery.Delivery(agent.store.path, state_dir)  # its own threads: this loop never waits on the network
    pusher.start()
    path = os.path.join(state_dir, SOCKET_NAME)
    if os.path.exists(path):
        os.unlink(path)
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        lsock.bind(path)
    finally:
        os.umask(old)
    lsock.listen(64)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, "socket")
    _watch_presence(sel, agent)
    period = agent.manifest.tick_seconds
    next_tick = time.monotonic()
    next_sample = next_tick + agent.manifest.sample_seconds
    full = StoreFull(agent.store.path)
    try:
        parent = os.getppid()
        while not stop and os.getppid() == parent:  # also stop if serve died
            timeout = max(0.0, next_tick - time.monotonic())
            for key, _ in sel.select(timeout):
                if key.data == "socket":
                    full.guard(_accept, agent, lsock)
                else:
                    full.guard(agent.observe)
            _watch_presence(sel, agent)
            if time.monotonic() >= next_tick:
                full.guard(_tick, agent)
                next_tick = time.monotonic() + period
            if time.monotonic() >= next_sample:
                if full.guard(agent.sample):
                    full.cleared()
                next_sample += agent.manifest.sample_seconds
                next_sample = max(next_sample, time.monotonic())
    finally:
        pusher.stop()
        if agent.updater:
            agent.updater.stop()
        sel.close()
        lsock.close()
        agent.close()
        if os.path.exists(path):
            os.unlink(path)


def _tick(agent: Agent) -> None:
    agent.observe()
    for cid in agent.store.pending_commands():
        agent.run_command(cid)


class StoreFull:
    """A full store disk stops the writing, not the agent: the rails, the LEDs and the
    presence lines go on being watched and switched, each write that fails is rolled back
    and tried again at the next tick or sweep (the hardware is re-read, nothing is
    assumed), and the log says so once — and once again when a sweep is stored again.
    (Dying instead would only have serve restart it into the same full disk, over and over.)"""

    def __init__(self, path: str):
        self.path, self.since = path, None

    def guard(self, step: Callable, *args) -> bool:
        """Run ``step``; False if it stopped on the full disk."""
        try:
            step(*args)
        except Exception as e:
            if not is_full(e):
                raise
            if self.since is None:
                self.since = time.monotonic()
                log.error("the file system of the store %s is full: readings and state changes are not "
                          "stored until space is freed (the API answers changes with 507)", self.path)
            return False
        return True

    def cleared(self) -> None:
        if self.since is not None:
            log.warning("the store %s is written again, after %.0f s of a full disk",
                        self.path, time.monotonic() - self.since)
            self.since = None


def _watch_presence(sel: selectors.BaseSelector, agent: Agent) -> None:
    """Presence edges wake the loop at once — unless the GPIO lines are failing (a dead
    chip's fd stays readable): then the tick's polling alone, until they answer again."""
    fd = agent.hardware.presence_fd
    if fd is None:
        return
    registered = fd in sel.get_map()
    if agent.hw_failing and registered:
        sel.unregister(fd)
    elif not agent.hw_failing and not registered:
        sel.register(fd, selectors.EVENT_READ, "presence")


def _accept(agent: Agent, lsock: socket.socket) -> None:
    try:
        conn, _ = lsock.accept()
    except BlockingIOError:
        return
    with conn:
        conn.settimeout(2.0)
        try:
            line = conn.makefile("rb").readline(4096)
            req = json.loads(line)
            if "sim" in req:
                reply = agent.sim_command(str(req["sim"]), str(req["unit"]), req.get("value"))
            else:
                reply = agent.run_command(int(req["command"]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            reply = {"state": "error", "message": f"bad request: {e.__class__.__name__}"}
        try:
            conn.sendall(json.dumps(reply).encode() + b"\n")
        except OSError:
            pass


def main(state_dir: str, manifest: Manifest) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(levelname)s %(message)s")
    path = os.path.join(state_dir, "racklet.db")
    try:
        check_store(path)   # a damaged or newer store is refused as it is, never re-initialised
    except StoreError as e:
        log.error("cannot start: %s", e)
        return 2
    store = Store(path)
    store.create()  # brings an older store's schema up to date (idempotent)
    stop: list = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    try:
        agent = Agent.from_manifest(store, manifest, state_dir=state_dir)
    except hardware.HardwareError as e:
        log.error("cannot start: %s", e)
        return 2
    agent.state_dir = state_dir
    serve(agent, state_dir, stop)
    return 0
