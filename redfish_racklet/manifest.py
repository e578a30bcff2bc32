"""The rack manifest: a YAML file that declares the rack, checked by a JSON Schema.

A bad manifest is refused with the file, the path inside it, its line and the
reason, before anything touches hardware.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources

import yaml

DEFAULT_MANIFEST = "sim-5.yaml"
DEFAULT_MAX_WATTS = 7.0           # a busy Raspberry Pi 4 (6.6 W) with a margin
DEFAULT_SUPPLY_WATTS = 60.0       # a USB-C laptop charger feeding the busbar
DEFAULT_STAGGER_SECONDS = 0.5
FAN_MAX_RPM = 5000.0
# What a unit is when the manifest does not say: a Raspberry Pi 4 Model B, 4 GB.
PI4 = {
    "processor": {"model": "Broadcom BCM2711 (Cortex-A72)", "manufacturer": "Broadcom",
                  "cores": 4, "max_speed_mhz": 1500, "instruction_set": "ARM-A64"},
    "memory_gib": 4,
    "storage": {"media": "SDCard", "capacity_gib": 32, "model": "microSD card"},
}


class ManifestError(Exception):
    pass


@dataclass(frozen=True)
class UnitSpec:
    id: str
    slot: int
    name: str
    manufacturer: str
    model: str
    serial_number: str
    sim: dict = field(default_factory=dict)
    part_number: str = ""
    sku: str = ""
    bios_version: str = ""
    max_watts: float = DEFAULT_MAX_WATTS
    processor: dict = field(default_factory=dict)
    memory_gib: float = PI4["memory_gib"]
    mac_address: str = ""
    storage: dict = field(default_factory=dict)
    gpio: dict = field(default_factory=dict)
    sensors: dict = field(default_factory=dict)
    hardware_id: str = ""     # for firmware bundles' "compatible"; "" = the rack's
    firmware: dict = field(default_factory=dict)   # component -> slot directory

    def info(self) -> dict:
        """Static facts the API shows; the agent copies them into the store (and may
        replace manufacturer/model/serial with what the tray's HAT EEPROM says)."""
        return {"name": self.name, "manufacturer": self.manufacturer, "model": self.model,
                "serial_number": self.serial_number, "part_number": self.part_number,
                "sku": self.sku or self.part_number, "bios_version": self.bios_version,
                "max_watts": self.max_watts, "processor": dict(PI4["processor"], **self.processor),
                "memory_gib": self.memory_gib, "mac_address": self.mac_address.lower(),
                "storage": dict(PI4["storage"], **self.storage)}

    @property
    def load(self) -> float:
        """Simulated CPU load, 0 (idle) to 1 (busy)."""
        return float(self.sim.get("load", 0.1))


@dataclass(frozen=True)
class Manifest:
    path: str
    name: str
    driver: str
    seed: int
    tick_seconds: float
    sample_seconds: float
    units: tuple[UnitSpec, ...]
    power_supply_watts: float = DEFAULT_SUPPLY_WATTS
    power_on_stagger_seconds: float = DEFAULT_STAGGER_SECONDS
    gpio_chip: str = ""
    smbus: int = 1
    fan: dict = field(default_factory=dict)
    rack_hardware_id: str = ""
    update_trial_seconds: float = 120.0
    firmware: dict = field(default_factory=dict)   # {"rmc": slot directory}

    def hardware_id(self, target: str) -> str:
        """The hardware id a firmware bundle must be compatible with to go to ``target``."""
        default = self.rack_hardware_id or ("racklet-sim" if self.driver == "sim" else "raspberrypi")
        spec = next((u for u in self.units if u.id == target), None)
        return (spec.hardware_id if spec else "") or default

    def unit(self, unit_id: str) -> UnitSpec:
        return next(u for u in self.units if u.id == unit_id)

    def info(self) -> dict:
        """Rack-level facts the API shows (stored by the agent in the store's meta)."""
        return {"name": self.name, "driver": self.driver, "power_supply_watts": self.power_supply_watts,
                "power_on_stagger_seconds": self.power_on_stagger_seconds, "fan": bool(self.fan) or
                self.driver == "sim", "fan_max_rpm": float(self.fan.get("max_rpm", FAN_MAX_RPM)),
                "hardware_ids": {t: self.hardware_id(t) for t in ["RMC", *(u.id for u in self.units)]}}


def schema_file(name: str):
    return resources.files("redfish_racklet") / "schemas" / name


def default_manifest_path() -> str:
    return str(resources.files("redfish_racklet") / "manifests" / DEFAULT_MANIFEST)


def _line_of(node: yaml.Node, path: list) -> int:
    """Line (1-based) of the YAML node at a JSON path, or of its nearest parent."""
    for key in path:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            nxt = node.value[key]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
    return node.start_mark.line + 1


def _where(path: list) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def load(path: str | None = None) -> Manifest:
    path = path or default_manifest_path()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ManifestError(f"manifest {path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:  # found by tests/test_prop_manifest.py
        raise ManifestError(f"manifest {path}: not UTF-8 text (byte {e.start})") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ManifestError(f"manifest {path}{where}: not valid YAML: "
                            f"{getattr(e, 'problem', e)}") from None
    schema = json.loads(schema_file("manifest.schema.json").read_text())
    import jsonschema   # here, not at the top: the API workers import this module for its
    #                     constants only, and jsonschema's import costs each of them ~4 MB
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = errors[0]
        p = list(e.absolute_path)
        line = _line_of(node, p) if node is not None else 1
        raise ManifestError(f"manifest {path}: at {_where(p)} (line {line}): {e.message}")
    rack = data["rack"]
    units = tuple(
        UnitSpec(id=u["id"], slot=u["slot"], name=u.get("name", f"Compute unit in slot {u['slot']}"),
                 manufacturer=u.get("manufacturer", ""), model=u.get("model", ""),
                 serial_number=u.get("serial_number", ""), sim=u.get("sim", {}),
                 part_number=u.get("part_number", ""), sku=u.get("sku", ""),
                 bios_version=u.get("bios_version", ""), max_watts=float(u.get("max_watts", DEFAULT_MAX_WATTS)),
                 processor=u.get("processor", {}), memory_gib=u.get("memory_gib", PI4["memory_gib"]),
                 mac_address=u.get("mac_address") or _sim_mac(rack.get("seed", 0), u["slot"]),
                 storage=u.get("storage", {}), gpio=u.get("gpio", {}), sensors=u.get("sensors", {}),
                 hardware_id=u.get("hardware_id", ""), firmware=u.get("firmware", {}))
        for u in data["units"])
    for key in ("id", "slot"):
        seen: dict = {}
        for i, u in enumerate(data["units"]):
            if u[key] in seen:
                line = _line_of(node, ["units", i, key])
                raise ManifestError(f"manifest {path}: at units[{i}].{key} (line {line}): "
                                    f"{u[key]!r} is already used by units[{seen[u[key]]}]")
            seen[u[key]] = i
    return Manifest(path=path, name=rack["name"], driver=rack["driver"], seed=rack.get("seed", 0),
                    tick_seconds=float(rack.get("tick_seconds", 0.1)),
                    sample_seconds=float(rack.get("sample_seconds", 1.0)), units=units,
                    power_supply_watts=float(rack.get("power_supply_watts", DEFAULT_SUPPLY_WATTS)),
                    power_on_stagger_seconds=float(rack.get("power_on_stagger_seconds",
                                                            DEFAULT_STAGGER_SECONDS)),
                    gpio_chip=rack.get("gpio_chip", ""), smbus=rack.get("smbus", 1), fan=rack.get("fan", {}),
                    rack_hardware_id=rack.get("hardware_id", ""),
                    update_trial_seconds=float(rack.get("update_trial_seconds", 120.0)),
                    firmware=rack.get("firmware", {}))


def _sim_mac(seed: int, slot: int) -> str:
    """A stable, locally administered MAC address for a unit the manifest gives none."""
    return "02:52:4b:{:02x}:{:02x}:{:02x}".format((seed >> 8) & 0xFF, seed & 0xFF, slot)
