"""The rack manifest: a YAML file that declares the rack, checked by a JSON Schema.

A bad manifest is refused with the file, the path inside it, its line and the
reason, before anything touches hardware.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources

import jsonschema
import yaml

DEFAULT_MANIFEST = "sim-5.yaml"


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

    def info(self) -> dict:
        """Static facts the API shows; the agent copies them into the store."""
        return {"name": self.name, "manufacturer": self.manufacturer, "model": self.model,
                "serial_number": self.serial_number}

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
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ManifestError(f"manifest {path}{where}: not valid YAML: "
                            f"{getattr(e, 'problem', e)}") from None
    schema = json.loads(schema_file("manifest.schema.json").read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        e = errors[0]
        p = list(e.absolute_path)
        line = _line_of(node, p) if node is not None else 1
        raise ManifestError(f"manifest {path}: at {_where(p)} (line {line}): {e.message}")
    units = tuple(
        UnitSpec(id=u["id"], slot=u["slot"], name=u.get("name", f"Compute unit in slot {u['slot']}"),
                 manufacturer=u.get("manufacturer", ""), model=u.get("model", ""),
                 serial_number=u.get("serial_number", ""), sim=u.get("sim", {}))
        for u in data["units"])
    for key in ("id", "slot"):
        seen: dict = {}
        for i, u in enumerate(data["units"]):
            if u[key] in seen:
                line = _line_of(node, ["units", i, key])
                raise ManifestError(f"manifest {path}: at units[{i}].{key} (line {line}): "
                                    f"{u[key]!r} is already used by units[{seen[u[key]]}]")
            seen[u[key]] = i
    rack = data["rack"]
    return Manifest(path=path, name=rack["name"], driver=rack["driver"], seed=rack.get("seed", 0),
                    tick_seconds=float(rack.get("tick_seconds", 0.1)),
                    sample_seconds=float(rack.get("sample_seconds", 1.0)), units=units)
