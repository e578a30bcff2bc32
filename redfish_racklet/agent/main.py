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

from ..drivers.ina2xx import INA2xx
from ..drivers.sim import SimTray, SimUnit
from ..drivers.temperature import TMP102
from ..manifest import Manifest
from ..store import Store
from . import SOCKET_NAME, power, sampling

log = logging.getLogger("racklet.agent")



@dataclass
class Intent:
    kind: str
    since: float


class Agent:
    def __init__(self, store: Store, manifest: Manifest, units: dict, clock: Callable[[], float]):
        self.store = store
        self.manifest = manifest
        self.hw = units  # unit id -> object with PowerRail, Presence and Host methods
        self.clock = clock
        self.intents: dict[str, Intent] = {}
        self._written: dict[str, tuple[bool, str]] = {}
        self.sensors: dict[str, sampling.UnitSensors] = {}
        self.before_sample: list[Callable[[], None]] = []  # the simulation's conversions

    @classmethod
    def simulated(cls, store: Store, manifest: Manifest, clock=time.monotonic) -> "Agent":
        units = {u.id: SimUnit(clock, present=u.sim.get("present", True),
                               boot_seconds=u.sim.get("boot_seconds", 4.0),
                               shutdown_seconds=u.sim.get("shutdown_seconds", 2.0))
                 for u in manifest.units}
        agent = cls(store, manifest, units, clock)
        for spec in manifest.units:
            tray = SimTray(units[spec.id], clock, load=spec.load, seed=manifest.seed * 100 + spec.slot)
            ina = INA2xx(tray.bus, tray.INA_ADDR, "ina226", r_shunt=tray.SHUNT_OHM, max_current=3.2)
            tmp = TMP102(tray.bus, tray.TMP_ADDR)
            ina.init()
            tmp.init()
            agent.sensors[spec.id] = sampling.UnitSensors(ina, tmp)
            agent.before_sample.append(tray.convert)
        return agent

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        """Publish the units and restore each rail to its persisted desired state."""
        now = time.time()
        for spec in self.manifest.units:
            self.store.upsert_unit(spec.id, spec.slot, spec.info(), self.hw[spec.id].present(),
                                   "Off", now)
        self.store.remove_units_except([u.id for u in self.manifest.units])
        for spec in self.manifest.units:
            hw = self.hw[spec.id]
            if self.store.unit(spec.id)["desired_power"] == "On" and hw.present():
                hw.set(True)
        self.observe()
        for uid, joules in self.store.energy_joules().items():  # counters never go back
            if uid in self.sensors:
                self.sensors[uid].energy.joules = joules
        for cid in self.store.pending_commands():  # left by a previous run
            self.run_command(cid)

    def sample(self) -> None:
        """Read every unit's sensors and publish the sweep in one store transaction."""
        for convert in self.before_sample:
            convert()
        self.store.write_readings(sampling.sample(self.sensors, self.clock()), time.time())

    def observe(self) -> None:
        for uid, hw in self.hw.items():
            intent = self.intents.get(uid)
            if intent:
                self._advance(uid, hw, intent)
            seen = (hw.present(), power.power_state(hw.get(), hw.state()))
            if self._written.get(uid) != seen:
                self.store.set_observed(uid, seen[0], seen[1], time.time())
                self._written[uid] = seen

    def _advance(self, uid: str, hw, intent: Intent) -> None:
        now = self.clock()
        host = hw.state()
        if intent.kind == "on_after_cycle":
            if now - intent.since >= power.POWER_CYCLE_OFF_SECONDS:
                hw.set(True)
                del self.intents[uid]
            return
        timed_out = now - intent.since >= power.GRACEFUL_TIMEOUT_SECONDS
        if host in ("halted", "off") or timed_out:
            hw.set(False)
            if intent.kind == "on_after_halt":
                hw.set(True)
            del self.intents[uid]

    # -- commands --------------------------------------------------------------
    def run_command(self, cid: int) -> dict:
        cmd = self.store.claim_command(cid)
        if cmd is None:
            c = self.store.command(cid)
            return {"id": cid, "state": c["state"] if c else "unknown", "message": ""}
        uid, action = cmd["unit"], cmd["action"]
        hw = self.hw.get(uid)
        self.observe()
        try:
            if hw is None:
                raise power.Conflict(f"no unit {uid}")
            kind, _, arg = action.partition(":")
            if kind != "reset":
                raise power.Conflict(f"unknown command {action}")
            state = power.power_state(hw.get(), hw.state())
            steps, intent, desired = power.plan_reset(arg, hw.present(), state)
        except (power.Conflict, ValueError) as e:
            self.store.finish_command(cid, "rejected", str(e), time.time())
            return {"id": cid, "state": "rejected", "message": str(e)}
        self.intents.pop(uid, None)
        for step in steps:
            if step == "rail_on":
                hw.set(True)
            elif step == "rail_off":
                hw.set(False)
            elif step == "shutdown":
                hw.request_shutdown()
        if intent:
            self.intents[uid] = Intent(intent, self.clock())
        self.store.set_desired_power(uid, desired)
        self.observe()
        self.store.finish_command(cid, "done", "", time.time())
        log.info("unit %s: %s done, now %s", uid, action, self._written[uid][1])
        return {"id": cid, "state": "done", "message": "", "power_state": self._written[uid][1]}


def serve(agent: Agent, state_dir: str, stop: list) -> None:
    """Run the agent until ``stop`` becomes non-empty (set by a signal handler)."""
    agent.start()
    agent.sample()  # readings exist before anyone can ask
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
    sel.register(lsock, selectors.EVENT_READ)
    period = agent.manifest.tick_seconds
    next_tick = time.monotonic()
    next_sample = next_tick + agent.manifest.sample_seconds
    try:
        parent = os.getppid()
        while not stop and os.getppid() == parent:  # also stop if serve died
            timeout = max(0.0, next_tick - time.monotonic())
            for _ in sel.select(timeout):
                _accept(agent, lsock)
            if time.monotonic() >= next_tick:
                agent.observe()
                for cid in agent.store.pending_commands():
                    agent.run_command(cid)
                next_tick = time.monotonic() + period
            if time.monotonic() >= next_sample:
                agent.sample()
                next_sample += agent.manifest.sample_seconds
                next_sample = max(next_sample, time.monotonic())
    finally:
        sel.close()
        lsock.close()
        if os.path.exists(path):
            os.unlink(path)


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
            reply = agent.run_command(int(req["command"]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            reply = {"state": "error", "message": f"bad request: {e.__class__.__name__}"}
        try:
            conn.sendall(json.dumps(reply).encode() + b"\n")
        except OSError:
            pass


def main(state_dir: str, manifest: Manifest) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(levelname)s %(message)s")
    store = Store(os.path.join(state_dir, "racklet.db"))
    stop: list = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    agent = Agent.simulated(store, manifest)
    serve(agent, state_dir, stop)
    return 0
