"""The checks that run INSIDE the test VM (tools/vm/vm.py), against the kernel's own
i2c-stub and gpio-sim devices, with the project's real drivers and its agent.

Each check appends one JSON line ``{"check", "ok", "detail"}`` to ``OUT/results.jsonl``
(the writable 9p share) and prints it to the console; the host's pytest asserts them.

How the simulated hardware answers:

- i2c-stub keeps a 256-word register bank per chip address: what a driver writes
  stays, what we put there is what the driver reads. A chip sends its 16-bit
  registers high byte first, so the SMBus word it holds is the value byte-swapped
  (computed here on its own, not with the driver's helper).
- gpio-sim shows each line in sysfs: ``sim_gpioN/value`` is what the driver drives on
  an output; writing ``pull-down``/``pull-up`` to ``sim_gpioN/pull`` moves an input,
  as a tray's sense pin does when a unit slides in or out.
"""

from __future__ import annotations

import glob
import json
import os
import selectors
import subprocess
import sys
import time
import traceback

# Unit1: INA219 at 0x40, TMP102 at 0x48; Unit2: INA226 at 0x41, TMP102 at 0x49.
I2C_ADDRESSES = [0x40, 0x41, 0x48, 0x49]
LINES = ["RAIL1", "SENSE1", "LED1", "RAIL2", "SENSE2", "LED2"]
GPIOSIM = "/sys/kernel/config/gpio-sim/racklet"
SCRATCH = os.environ.get("TMPDIR", "/tmp")   # the VM's own tmpfs (the host's /tmp is read-only there)
# Every check the host expects a result for (tests/test_kernel_vm.py asserts each one).
CHECKS = [
    "kernel devices",
    "sensor registers decode (smbus2 on i2c-stub)",
    "an empty address fails the transfer",
    "rails, LED and presence edges (gpiod on gpio-sim)",
    "agent starts on the kernel devices",
    "agent reads empty trays (pull-up) as absent",
    "agent sees the presence edge and powers the plugged unit",
    "agent switches the rail on command",
    "agent's readings are the registers' values",
    "agent sees the unit pulled out and cuts its rail",
]


class Results:
    def __init__(self, out: str):
        self.path = os.path.join(out, "results.jsonl")

    def add(self, check: str, ok: bool, detail: str = "") -> bool:
        line = json.dumps({"check": check, "ok": bool(ok), "detail": detail})
        with open(self.path, "a") as f:
            f.write(line + "\n")
        print(line, flush=True)
        return ok

    def run(self, check: str, fn) -> None:
        """A check whose exception is its failure (with the traceback's last lines)."""
        try:
            ok, detail = fn()
        except Exception as e:  # noqa: BLE001 - reported to the host, not swallowed
            ok, detail = False, f"{e!r}: {traceback.format_exc(limit=-3)}"
        self.add(check, ok, detail)


def load_results(out: str) -> list[dict]:
    """The results as the host reads them back after the VM powered off."""
    path = os.path.join(out, "results.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# -- where the simulated devices are ---------------------------------------------------
def stub_bus() -> int:
    for d in glob.glob("/sys/bus/i2c/devices/i2c-*"):
        with open(os.path.join(d, "name")) as f:
            if f.read().strip() == "SMBus stub driver":
                return int(d.rsplit("-", 1)[1])
    raise RuntimeError("no i2c-stub adapter")


def sim_chip() -> tuple[str, str]:
    """(/dev/gpiochipN, its sysfs directory with the sim_gpioN entries)."""
    with open(f"{GPIOSIM}/bank0/chip_name") as f:
        chip = f.read().strip()
    with open(f"{GPIOSIM}/dev_name") as f:
        dev = f.read().strip()
    return f"/dev/{chip}", f"/sys/devices/platform/{dev}/{chip}"


def sim_value(sysdir: str, name: str) -> int:
    with open(f"{sysdir}/sim_gpio{LINES.index(name)}/value") as f:
        return int(f.read())


def sim_pull(sysdir: str, name: str, pull: str | None = None) -> str:
    path = f"{sysdir}/sim_gpio{LINES.index(name)}/pull"
    if pull:
        with open(path, "w") as f:
            f.write(pull)
    with open(path) as f:
        return f.read().strip()


def hold(bus, addr: int, reg: int, value: int) -> None:
    """Put a big-endian 16-bit register value in i2c-stub's bank, as the chip holds it."""
    bus.write_word_data(addr, reg, ((value & 0xFF) << 8) | (value >> 8))


def held(bus, addr: int, reg: int) -> int:
    word = bus.read_word_data(addr, reg)
    return ((word & 0xFF) << 8) | (word >> 8)


def wait(pred, timeout: float = 10.0, step: float = 0.05):
    """Poll ``pred`` until it is truthy or ``timeout`` passes; returns its last value."""
    end = time.monotonic() + timeout
    while True:
        got = pred()
        if got or time.monotonic() > end:
            return got
        time.sleep(step)


# -- the checks -------------------------------------------------------------------------
def check_sensors(bus):
    """INA219/INA226/TMP102 registers, as the datasheets define them, decode to SI units."""
    from redfish_racklet.drivers.ina2xx import INA2xx
    from redfish_racklet.drivers.temperature import TMP102
    problems = []
    # INA219, 0.1 ohm shunt, 3.2 A: current LSB 3.2/32768 A, power LSB 20x that, bus LSB 4 mV.
    ina = INA2xx(bus, 0x40, "ina219", r_shunt=0.1, max_current=3.2)
    ina.init()
    if held(bus, 0x40, 0x00) != 0x399F:
        problems.append(f"INA219 CONFIG holds {held(bus, 0x40, 0x00):#06x}")
    cal = held(bus, 0x40, 0x05)
    if cal != int(0.04096 / (3.2 / 32768 * 0.1)) & 0xFFFE:
        problems.append(f"INA219 CALIBRATION holds {cal}")
    volts, amps, watts = 5.08, -0.75, 3.81
    lsb = 3.2 / 32768
    hold(bus, 0x40, 0x02, (round(volts / 4e-3) << 3) | 0x2)        # CNVR set
    hold(bus, 0x40, 0x04, round(amps / lsb) & 0xFFFF)               # two's complement
    hold(bus, 0x40, 0x03, round(watts / (20 * lsb)))
    r = ina.read()
    if not (abs(r.volts - volts) < 4e-3 and abs(r.amps - amps) < lsb and abs(r.watts - watts) < 20 * lsb
            and r.fresh):
        problems.append(f"INA219 read {r}, registers said {volts} V {amps} A {watts} W")
    # INA226: ids checked by init, bus LSB 1.25 mV, power LSB 25x the current LSB.
    hold(bus, 0x41, 0xFE, 0x5449)
    hold(bus, 0x41, 0xFF, 0x2260)
    ina226 = INA2xx(bus, 0x41, "ina226", r_shunt=0.01, max_current=3.2)
    ina226.init()
    hold(bus, 0x41, 0x02, round(12.0 / 1.25e-3))
    hold(bus, 0x41, 0x06, 0x0008)                                    # CVRF: conversion ready
    hold(bus, 0x41, 0x04, round(1.5 / lsb))
    hold(bus, 0x41, 0x03, round(18.0 / (25 * lsb)))
    r = ina226.read()
    if not (abs(r.volts - 12.0) < 1.25e-3 and abs(r.amps - 1.5) < lsb and abs(r.watts - 18.0) < 25 * lsb):
        problems.append(f"INA226 read {r}")
    # TMP102: 12-bit, 0.0625 degC per LSB, left-aligned by 4 bits.
    tmp = TMP102(bus, 0x48)
    tmp.init()
    for celsius in (25.0625, -10.5):
        hold(bus, 0x48, 0x00, (round(celsius / 0.0625) << 4) & 0xFFFF)
        got = tmp.read()
        if got != celsius:
            problems.append(f"TMP102 read {got} for {celsius}")
    return not problems, "; ".join(problems) or "INA219, INA226 and TMP102 decode their registers"


def check_absent_address(bus):
    """Nothing at 0x4a: the kernel fails the transfer (the agent then marks the sensor unavailable)."""
    try:
        bus.read_word_data(0x4A, 0)
    except OSError as e:
        return True, f"OSError errno {e.errno} ({os.strerror(e.errno)})"
    return False, "a read from an empty address succeeded"


def check_gpio(chip: str, sysdir: str):
    """Rails and LEDs drive the simulated lines; presence edges reach the request's fd."""
    from redfish_racklet.drivers.gpio import GpioBank, UnitLines
    units = {"Unit1": UnitLines("RAIL1", "SENSE1", "LED1"), "Unit2": UnitLines("RAIL2", "SENSE2", "LED2")}
    bank = GpioBank(chip, units, {"Unit1": True, "Unit2": False})
    problems = []
    try:
        if (sim_value(sysdir, "RAIL1"), sim_value(sysdir, "RAIL2")) != (1, 0):
            problems.append("rails did not start at the desired state")
        bank.set_rail("Unit2", True)
        bank.set_rail("Unit1", False)
        bank.set_led("Unit2", True)
        seen = (sim_value(sysdir, "RAIL1"), sim_value(sysdir, "RAIL2"), sim_value(sysdir, "LED2"))
        if seen != (0, 1, 1) or bank.rail("Unit1") or not bank.rail("Unit2"):
            problems.append(f"after switching, RAIL1/RAIL2/LED2 = {seen}")
        # The request's pull-up bias reaches the line: an empty tray reads absent.
        if sim_pull(sysdir, "SENSE1") != "pull-up" or bank.present("Unit1"):
            problems.append(f"SENSE1 pull {sim_pull(sysdir, 'SENSE1')}, present={bank.present('Unit1')}")
        sel = selectors.DefaultSelector()
        sel.register(bank.fileno(), selectors.EVENT_READ)
        sim_pull(sysdir, "SENSE1", "pull-down")   # a unit slides into tray 1
        if not sel.select(timeout=5):
            problems.append("no edge event after SENSE1 went low")
        changes = wait(bank.presence_changes, 2)
        if changes != ["Unit1"] or not bank.present("Unit1"):
            problems.append(f"after SENSE1 went low: changes {changes}, present={bank.present('Unit1')}")
        sim_pull(sysdir, "SENSE1", "pull-up")     # and out again
        changes = wait(bank.presence_changes, 5)
        if changes != ["Unit1"] or bank.present("Unit1"):
            problems.append(f"after SENSE1 went high: changes {changes}")
        sel.close()
    finally:
        bank.release()
    return not problems, "; ".join(problems) or "rails, LED and presence edges on gpio-sim"


MANIFEST = """\
rack:
  name: VM rack
  driver: linux
  gpio_chip: {chip}
  smbus: {bus}
  sample_seconds: 0.5
  power_on_stagger_seconds: 0
units:
  - id: Unit1
    slot: 1
    gpio: {{rail: RAIL1, presence: SENSE1, led: LED1}}
    sensors:
      power: {{chip: ina219, address: 0x40, shunt_ohms: 0.1, max_current: 3.2}}
      temperature: {{chip: tmp102, address: 0x48}}
  - id: Unit2
    slot: 2
    gpio: {{rail: RAIL2, presence: SENSE2, led: LED2}}
    sensors:
      power: {{chip: ina226, address: 0x41, shunt_ohms: 0.01, max_current: 3.2}}
      temperature: {{chip: tmp102, address: 0x49}}
"""


def check_agent(r: Results, chip: str, sysdir: str, bus_no: int, bus) -> None:
    """`redfish-racklet agent` with a driver: linux manifest: plug-in, commands, readings."""
    from redfish_racklet.agent import client
    from redfish_racklet.server import stop_agent
    from redfish_racklet.store import Store
    state = os.path.join(SCRATCH, "agent-state")
    os.makedirs(state, exist_ok=True)
    manifest = os.path.join(state, "manifest.yaml")
    with open(manifest, "w") as f:
        f.write(MANIFEST.format(chip=chip, bus=bus_no))
    hold(bus, 0x49, 0x00, round(31.5 / 0.0625) << 4)   # Unit2's temperature register
    db = os.path.join(state, "racklet.db")
    Store(db).create()   # what `redfish-racklet init` does for the store (no keys needed here)
    log = open(os.path.join(state, "agent.log"), "w")
    agent = subprocess.Popen([sys.executable, "-m", "redfish_racklet", "agent", "--state-dir", state,
                              "--manifest", manifest], stdout=log, stderr=subprocess.STDOUT)
    try:
        store = Store(db)
        units = wait(lambda: agent.poll() is None and len(store.units()) == 2, 30)
        if not r.add("agent starts on the kernel devices", bool(units), _tail(state)):
            return
        present = {u["id"]: u["present"] for u in store.units()}
        r.add("agent reads empty trays (pull-up) as absent", present == {"Unit1": False, "Unit2": False},
              f"present {present}")
        sim_pull(sysdir, "SENSE1", "pull-down")     # a unit slides into tray 1
        ok = wait(lambda: _unit(store, "Unit1")["present"] and sim_value(sysdir, "RAIL1") == 1, 10)
        r.add("agent sees the presence edge and powers the plugged unit", ok,
              f"Unit1 {_brief(store, 'Unit1')}, RAIL1={sim_value(sysdir, 'RAIL1')}")
        reply = client.run_command(store, state, "Unit1", "reset:ForceOff", timeout=10)
        off = wait(lambda: sim_value(sysdir, "RAIL1") == 0, 10)
        reply2 = client.run_command(store, state, "Unit1", "reset:On", timeout=10)
        on = wait(lambda: sim_value(sysdir, "RAIL1") == 1, 10)
        done = reply["state"] == reply2["state"] == "done"
        r.add("agent switches the rail on command", bool(off and on) and done,
              f"ForceOff {reply}, On {reply2}, RAIL1 now {sim_value(sysdir, 'RAIL1')}")
        readings = wait(lambda: _readings_match(store, bus), 10)
        r.add("agent's readings are the registers' values", bool(readings),
              f"Unit1 {_values(store, 'Unit1')}, Unit2 {_values(store, 'Unit2')}")
        sim_pull(sysdir, "SENSE1", "pull-up")       # pulled out: the agent cuts its rail
        ok = wait(lambda: not _unit(store, "Unit1")["present"] and sim_value(sysdir, "RAIL1") == 0, 10)
        r.add("agent sees the unit pulled out and cuts its rail", ok,
              f"Unit1 {_brief(store, 'Unit1')}, RAIL1={sim_value(sysdir, 'RAIL1')}")
    finally:
        stop_agent(agent)   # terminate, wait, kill: as serve stops it
        log.close()


def _unit(store, uid: str) -> dict:
    return next(u for u in store.units() if u["id"] == uid)


def _brief(store, uid: str) -> dict:
    u = _unit(store, uid)
    return {k: u[k] for k in ("present", "power_state", "desired_power")}


def _values(store, uid: str) -> dict:
    """Readings straight from the table (``Store.readings`` caches, for the API's requests)."""
    rows = store.conn().execute("SELECT kind, value FROM readings WHERE unit=?", (uid,))
    return {row[0]: row[1] for row in rows}


def _readings_match(store, bus) -> bool:
    """The temperatures and bus voltages stored are what the TMP102 and INA2xx registers
    hold, decoded by the datasheets (TMP102: 0.0625 degC; INA219: 4 mV; INA226: 1.25 mV)."""
    want = {"Unit1": {"temperature": _tmp102(held(bus, 0x48, 0x00)),
                      "voltage": (held(bus, 0x40, 0x02) >> 3) * 4e-3},
            "Unit2": {"temperature": _tmp102(held(bus, 0x49, 0x00)),
                      "voltage": held(bus, 0x41, 0x02) * 1.25e-3}}
    return all(abs((_values(store, u).get(k) or -1e9) - v) < 1e-6 for u, kv in want.items() for k, v in kv.items())


def _tmp102(raw: int) -> float:
    return ((raw - 0x10000 if raw & 0x8000 else raw) >> 4) * 0.0625


def _tail(state: str) -> str:
    try:
        with open(os.path.join(state, "agent.log")) as f:
            return f.read()[-1500:]
    except OSError:
        return ""


def main(out: str) -> int:
    import smbus2
    r = Results(out)
    bus_no = stub_bus()
    chip, sysdir = sim_chip()
    r.add("kernel devices", True, f"/dev/i2c-{bus_no} (i2c-stub), {chip} (gpio-sim) on {os.uname().release}")
    with smbus2.SMBus(bus_no) as bus:
        r.run("sensor registers decode (smbus2 on i2c-stub)", lambda: check_sensors(bus))
        r.run("an empty address fails the transfer", lambda: check_absent_address(bus))
        r.run("rails, LED and presence edges (gpiod on gpio-sim)", lambda: check_gpio(chip, sysdir))
        try:
            check_agent(r, chip, sysdir, bus_no, bus)
        except Exception as e:  # noqa: BLE001 - reported to the host
            r.add("agent", False, f"{e!r}: {traceback.format_exc(limit=-3)} {_tail(os.path.join(SCRATCH, 'agent-state'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
