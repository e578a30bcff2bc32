"""The agent in-process, on a fake clock: power budget, staggered power-on, hot-plug,
identify LEDs, one-time boot, restore policy, failing sensors, the busbar and the fan,
and the linux driver family on a fake GPIO chip and fake SMBus chips.

No sleeps: the simulated rack evaluates its physics from the injected clock.
"""

from __future__ import annotations

import pytest

from redfish_racklet import manifest as mf
from redfish_racklet.agent.main import RACK, Agent
from redfish_racklet.drivers.fake_gpio import FakeChip, FakeGpiod
from redfish_racklet.drivers import hat_eeprom
from redfish_racklet.drivers.fake_smbus import FakeAT24, FakeINA2xx, FakeSMBus, FakeTMP102
from redfish_racklet.store import Store


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float, agent: Agent | None = None, step: float = 0.05) -> None:
        """Move time on, running the agent's loop as its serve loop would."""
        end = self.t + seconds
        while self.t < end - 1e-9:
            self.t = min(end, self.t + step)
            if agent:
                agent.observe()


def make(tmp_path, text: str, clock: Clock | None = None, **kw) -> tuple[Agent, Clock]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    store = Store(str(tmp_path / "racklet.db"))
    store.create()
    clock = clock or Clock()
    agent = Agent.from_manifest(store, mf.load(str(path)), clock=clock, **kw)
    agent.wall = clock
    agent.start()
    return agent, clock


def rack(units: int = 4, **rack_kw) -> str:
    opts = ", ".join(f"{k}: {v}" for k, v in {"name": "T", "driver": "sim", "seed": 3, **rack_kw}.items())
    lines = [f"rack: {{{opts}}}", "units:"]
    lines += [f"  - {{id: Unit{i}, slot: {i}, sim: {{boot_seconds: 1, shutdown_seconds: 1}}}}"
              for i in range(1, units + 1)]
    return "\n".join(lines) + "\n"


def states(agent: Agent) -> dict[str, str]:
    return {u["id"]: u["power_state"] for u in agent.store.units()}


def command(agent: Agent, uid: str, action: str) -> dict:
    return agent.run_command(agent.store.add_command(uid, action, agent.clock()))


def test_power_ons_are_staggered(tmp_path):
    agent, clock = make(tmp_path, rack(power_on_stagger_seconds=0.5))
    on_times = {}
    for _ in range(60):
        clock.advance(0.05, agent)
        for uid, hw in agent.hw.items():
            if hw.get() and uid not in on_times:
                on_times[uid] = clock.t
    assert sorted(on_times) == ["Unit1", "Unit2", "Unit3", "Unit4"]
    times = sorted(on_times.values())
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.5 - 1e-9, gaps
    # while waiting its turn, a unit shows PoweringOn
    agent2, clock2 = make(tmp_path / "b", rack(power_on_stagger_seconds=0.5))
    assert list(states(agent2).values()).count("PoweringOn") >= 3


def test_budget_refuses_a_power_on_that_would_exceed_the_limit(tmp_path):
    # 4 units reserve 7 W each; a 20 W supply powers two at start, not three.
    agent, clock = make(tmp_path, rack(power_supply_watts=20, power_on_stagger_seconds=0))
    clock.advance(2, agent)
    on = [u for u, s in states(agent).items() if s == "On"]
    assert on == ["Unit1", "Unit2"]
    assert agent.store.unit("Unit3")["desired_power"] == "On"  # kept; it was refused, not forgotten
    reply = command(agent, "Unit3", "reset:On")
    assert reply["state"] == "rejected" and "21 W" in reply["message"] and "20 W" in reply["message"]
    assert not agent.hw["Unit3"].get()
    # a restart of a unit that is on needs no new budget
    assert command(agent, "Unit1", "reset:ForceRestart")["state"] == "done"
    # free 7 W, and the power-on is admitted
    assert command(agent, "Unit2", "reset:ForceOff")["state"] == "done"
    assert command(agent, "Unit3", "reset:On")["state"] == "done"
    clock.advance(2, agent)
    assert states(agent)["Unit3"] == "On"
    # a lower PowerLimit applies to the next power-on
    agent.store.set_power_limit(14.0)
    assert command(agent, "Unit2", "reset:On")["state"] == "rejected"
    assert agent.drawing() == {"Unit1", "Unit3"}


def test_unplug_switches_the_rail_off_and_keeps_the_desired_state(tmp_path):
    agent, clock = make(tmp_path, rack(power_on_stagger_seconds=0))
    clock.advance(2, agent)
    assert states(agent)["Unit2"] == "On"
    assert agent.sim_command("unplug", "Unit2")["state"] == "done"
    unit = agent.store.unit("Unit2")
    assert (unit["present"], unit["power_state"], unit["desired_power"]) == (False, "Off", "On")
    assert not agent.hw["Unit2"].get()
    assert command(agent, "Unit2", "reset:On")["state"] == "rejected"
    # the other units keep running
    assert [s for u, s in states(agent).items() if u != "Unit2"] == ["On", "On", "On"]
    agent.sim_command("plug", "Unit2")
    clock.advance(2, agent)
    unit = agent.store.unit("Unit2")
    assert (unit["present"], unit["power_state"]) == (True, "On")


def test_identify_led_follows_the_setting(tmp_path):
    agent, clock = make(tmp_path, rack())
    led = agent.hw["Unit1"]
    agent.store.set_setting("Unit1", "led", "Lit")
    clock.advance(0.1, agent)
    assert led.led is True
    agent.store.set_setting("Unit1", "led", "Blinking")
    seen = set()
    for _ in range(40):
        clock.advance(0.05, agent)
        seen.add(led.led)
    assert seen == {True, False}
    agent.store.set_setting("Unit1", "led", "Off")
    clock.advance(0.1, agent)
    assert led.led is False


def test_one_time_boot_override_is_spent_by_one_boot(tmp_path):
    agent, clock = make(tmp_path, rack(power_on_stagger_seconds=0))
    clock.advance(2, agent)
    boot = {"target": "Pxe", "enabled": "Once", "mode": "UEFI", "uri": ""}
    agent.store.set_setting("Unit1", "boot", boot)
    assert command(agent, "Unit1", "reset:ForceRestart")["state"] == "done"
    assert agent.store.settings("Unit1")["boot"]["enabled"] == "Once"  # still booting
    clock.advance(2, agent)
    assert agent.store.settings("Unit1")["boot"] == dict(boot, enabled="Disabled")
    agent.store.set_setting("Unit2", "boot", dict(boot, enabled="Continuous"))
    command(agent, "Unit2", "reset:ForceRestart")
    clock.advance(2, agent)
    assert agent.store.settings("Unit2")["boot"]["enabled"] == "Continuous"


def test_restore_policy_decides_the_rails_at_start(tmp_path):
    agent, clock = make(tmp_path, rack(power_on_stagger_seconds=0))
    clock.advance(2, agent)
    command(agent, "Unit1", "reset:ForceOff")
    agent.store.set_setting("Unit1", "outlet", {"power_restore_policy": "AlwaysOn"})
    agent.store.set_setting("Unit2", "outlet", {"power_restore_policy": "AlwaysOff"})
    # Unit3 keeps LastState (On); a new agent on the same store, a cold rack
    again = Agent.from_manifest(agent.store, agent.manifest, clock=clock)
    again.wall = clock
    again.start()
    clock.advance(2, again)
    s = states(again)
    assert (s["Unit1"], s["Unit2"], s["Unit3"]) == ("On", "Off", "On")


def test_outlet_delay_and_outlet_commands(tmp_path):
    agent, clock = make(tmp_path, rack(power_on_stagger_seconds=0))
    clock.advance(2, agent)
    agent.store.set_setting("Unit1", "outlet", {"power_on_delay_seconds": 1.5})
    assert command(agent, "Unit1", "outlet:Off")["state"] == "done"
    assert command(agent, "Unit1", "outlet:Off")["state"] == "done"  # idempotent
    assert command(agent, "Unit1", "outlet:On")["state"] == "done"
    clock.advance(1.4, agent)
    assert not agent.hw["Unit1"].get() and states(agent)["Unit1"] == "PoweringOn"
    clock.advance(0.2, agent)
    assert agent.hw["Unit1"].get()
    assert command(agent, "Unit1", "outlet:Sideways")["state"] == "rejected"
    assert command(agent, "Unit1", "bmc_reset:GracefulRestart")["state"] == "done"
    assert agent.store.settings("Unit1")["bmc_reset"] == clock.t


def test_a_failing_sensor_is_unavailable_and_comes_back(tmp_path, caplog):
    agent, clock = make(tmp_path, rack(power_on_stagger_seconds=0))
    clock.advance(2, agent)
    agent.sample()
    agent.sim_command("fail", "Unit2", "power")
    for _ in range(3):
        clock.advance(0.2, agent)
        agent.sample()
    r = agent.store.readings("Unit2")
    assert r["power"]["value"] is None and r["temperature"]["value"] is not None
    assert agent.store.readings("Unit1")["power"]["value"] > 2
    assert sum("power sensor unavailable" in m for m in caplog.messages) == 1  # logged once
    agent.sim_command("heal", "Unit2", "power")
    clock.advance(0.2, agent)
    agent.sample()
    assert agent.store.readings("Unit2")["power"]["value"] > 2


def test_busbar_is_the_sum_of_the_rails_and_the_fan_follows_the_air(tmp_path):
    agent, clock = make(tmp_path, rack(power_on_stagger_seconds=0))
    for _ in range(20):
        clock.advance(1, agent)
        agent.sample()
    units = [agent.store.readings(f"Unit{i}")["power"]["value"] for i in range(1, 5)]
    busbar = agent.store.readings(RACK)
    assert busbar["power"]["value"] == pytest.approx(sum(units), rel=1e-9)
    cool_duty = busbar["fan_duty"]["value"]
    cool_air = busbar["temperature"]["value"]
    for i in range(1, 5):
        agent.sim_command("load", f"Unit{i}", 1.0)
    for _ in range(120):
        clock.advance(1, agent)
        agent.sample()
    hot = agent.store.readings(RACK)
    assert hot["temperature"]["value"] > cool_air
    assert hot["fan_duty"]["value"] > cool_duty
    assert hot["fan_rpm"]["value"] > 0
    assert hot["power_max"]["value"] >= hot["power_avg"]["value"] >= hot["power_min"]["value"]


LINUX = """\
rack: {name: Real, driver: linux, gpio_chip: /dev/gpiochip7, smbus: 1, power_on_stagger_seconds: 0}
units:
  - {id: Unit1, slot: 1, manufacturer: From the manifest, gpio: {rail: RAIL1, presence: SENSE1, led: LED1},
     sensors: {power: {chip: ina219, address: 0x40, shunt_ohms: 0.1}, temperature: {chip: tmp102, address: 0x48},
               eeprom: {chip: 24c32, address: 0x50, hat: true}}}
  - {id: Unit2, slot: 2, gpio: {rail: RAIL2, presence: SENSE2}}
"""


def test_linux_driver_on_a_fake_gpio_chip_and_fake_smbus(tmp_path):
    chip = FakeChip("/dev/gpiochip7", ["RAIL1", "RAIL2", "SENSE1", "SENSE2", "LED1"],
                    levels={"SENSE1": False, "SENSE2": True})  # active low: Unit1 plugged, Unit2 not
    bus = FakeSMBus()
    ina = bus.attach(0x40, FakeINA2xx("ina219", 0.1))
    bus.attach(0x48, FakeTMP102(41.5))
    hat = hat_eeprom.HatInfo(uuid="0f0e0d0c-0b0a-4908-8706-050403020100", product_id=0x42, product_version=2,
                             vendor="Racklet", product="Compute tray rev B")
    bus.attach(0x50, FakeAT24("24c32", content=hat_eeprom.build(hat)))
    ina.set_load(5.0, 0.6)
    agent, clock = make(tmp_path, LINUX, gpio=FakeGpiod(chip), open_bus=lambda n: bus)
    info = agent.store.unit("Unit1")["info"]  # the HAT ID EEPROM wins over the manifest
    assert (info["manufacturer"], info["model"], info["serial_number"], info["part_number"]) == \
        ("Racklet", "Compute tray rev B", hat.uuid, "0x0042 v2")
    clock.advance(0.2, agent)
    assert chip.level[chip.names.index("RAIL1")] is True
    assert chip.level[chip.names.index("RAIL2")] is False  # absent: not powered
    agent.sample()
    r = agent.store.readings("Unit1")
    assert r["voltage"]["value"] == pytest.approx(5.0, abs=0.01)
    assert r["current"]["value"] == pytest.approx(0.6, abs=0.01)
    assert r["temperature"]["value"] == pytest.approx(41.5, abs=0.07)
    assert agent.store.readings("Unit2")["power"]["value"] is None  # no sensor declared
    # a hand plugs Unit2 in: the edge arrives on the request's fd and the rail follows
    chip.drive("SENSE2", False)
    assert agent.hardware.presence_changes() == ["Unit2"]
    clock.advance(0.1, agent)
    assert agent.store.unit("Unit2")["present"] and chip.level[chip.names.index("RAIL2")] is True
    agent.store.set_setting("Unit1", "led", "Lit")
    clock.advance(0.1, agent)
    assert chip.level[chip.names.index("LED1")] is True
    # another process cannot take the lines while the agent holds them
    with pytest.raises(OSError):
        FakeGpiod(chip).request_lines("/dev/gpiochip7", config={("RAIL1",): None}, consumer="intruder")
    agent.close()
    assert chip.owner == {}


def test_linux_driver_missing_chip_names_the_manifest_entry(tmp_path):
    from redfish_racklet.agent.hardware import HardwareError
    with pytest.raises(HardwareError, match="rack.gpio_chip"):
        make(tmp_path, LINUX, gpio=FakeGpiod(), open_bus=lambda n: FakeSMBus())


def test_gpio_lines_that_stop_answering_are_reported_and_recover(tmp_path, caplog):
    import errno
    chip = FakeChip("/dev/gpiochip7", ["RAIL1", "RAIL2", "SENSE1", "SENSE2", "LED1"],
                    levels={"SENSE1": False, "SENSE2": False})
    agent, clock = make(tmp_path, LINUX, gpio=FakeGpiod(chip), open_bus=lambda n: FakeSMBus())
    clock.advance(0.2, agent)
    assert states(agent) == {"Unit1": "On", "Unit2": "On"}
    chip.fault = OSError(errno.EIO, "Input/output error")
    for _ in range(5):
        clock.advance(0.1, agent)
    assert "EIO" in agent.store.settings("Unit1")["fault"] or "Input/output" in agent.store.settings("Unit1")["fault"]
    assert sum("do not answer" in m for m in caplog.messages) == 2  # once per unit, not per tick
    agent.sample()  # sampling carries on
    chip.fault = None
    clock.advance(0.1, agent)
    assert "fault" not in agent.store.settings("Unit1") and states(agent)["Unit1"] == "On"


def test_the_event_log_records_what_happened(tmp_path):
    agent, clock = make(tmp_path, rack(power_on_stagger_seconds=0))
    clock.advance(2, agent)
    agent.sample()
    start = agent.store.log_count()
    ids = lambda: [e["message_id"].rsplit(".", 1)[1] for e in agent.store.log_entries(skip=start)]  # noqa: E731
    agent.sim_command("unplug", "Unit2")
    assert ids() == ["ResourceRemoved", "ResourcePoweredOff"]
    agent.sim_command("plug", "Unit2")
    clock.advance(2, agent)
    assert ids()[2:] == ["ResourceCreated", "ResourcePoweredOn"]
    agent.sim_command("fail", "Unit3", "temperature")
    agent.sample()
    agent.sample()
    agent.sim_command("heal", "Unit3", "temperature")
    agent.sample()
    command(agent, "Unit1", "bmc_reset:ForceRestart")
    entries = agent.store.log_entries(skip=start + 4)
    assert [(e["message_id"], e["severity"], e["origin"]) for e in entries] == [
        ("ResourceEvent.1.4.3.ResourceStatusChangedWarning", "Warning", "/redfish/v1/Chassis/Unit3/Sensors/Temperature"),
        ("ResourceEvent.1.4.3.ResourceStatusChangedOK", "OK", "/redfish/v1/Chassis/Unit3/Sensors/Temperature"),
        ("ManagerEvent.1.0.0.ManagerReset", "OK", "/redfish/v1/Managers/Unit1-BMC")]
    assert entries[2]["message"] == "Manager `Unit1-BMC` performed a 'ForceRestart' type of reset."
    assert {e["unit"] for e in agent.store.log_entries(skip=start)} == {"Unit1", "Unit2", "Unit3"}


def test_the_log_is_bounded(tmp_path, monkeypatch):
    from redfish_racklet import store as store_mod
    monkeypatch.setattr(store_mod, "LOG_MAX", 5)
    s = Store(str(tmp_path / "log.db"))
    s.create()
    for i in range(12):
        s.add_log("Unit1", "OK", "X.1.0.0.Y", [i], f"m{i}", "/", float(i))
    assert [e["args"] for e in s.log_entries()] == [["7"], ["8"], ["9"], ["10"], ["11"]] or \
        [e["args"] for e in s.log_entries()] == [[7], [8], [9], [10], [11]]
    assert s.log_count("Unit1") == 5 and s.log_count("Unit2") == 0
    assert s.clear_log("Unit1") == 5 and s.log_count() == 0
