"""Property-based tests of the manifest parser (redfish_racklet/manifest.py).

- Whatever the file holds (YAML-ish structures, mutated good manifests, arbitrary bytes),
  ``manifest.load`` returns a Manifest or raises ManifestError with a message naming the file:
  never another exception.
- A valid generated manifest round-trips: what the parsed Manifest says is what the file said.

The suite's run is derandomized (the same examples every time). For a longer, random run:
RACKLET_PROP_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_prop_manifest.py
(a failure prints the @reproduce_failure blob to replay it).
"""

from __future__ import annotations

import os
import string

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis", reason="needs hypothesis (pip install -e '.[test]')")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from redfish_racklet import manifest  # noqa: E402

LONG = os.environ.get("RACKLET_PROP_EXAMPLES")


def bounded(examples: int):
    """The suite's settings: few examples, always the same; RACKLET_PROP_EXAMPLES for more, random."""
    return settings(max_examples=int(LONG or examples), derandomize=LONG is None, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
                    print_blob=True)


# -- strategies ---------------------------------------------------------------------------

KEYS = ["rack", "units", "name", "driver", "seed", "tick_seconds", "sample_seconds", "id", "slot", "sim",
        "present", "fan", "curve", "max_watts", "gpio", "rail", "sensors", "power", "chip", "firmware",
        "hardware_id", "mac_address", "processor", "storage", "memory_gib", "smbus"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["sim", "linux", "Unit1", "", "emc2101"]))
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers(-3, 3), st.booleans())
yamlish = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(keys, inner, max_size=5)), max_leaves=25)

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=63)
short = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=63)
unit_ids = st.from_regex(r"\A[A-Za-z][A-Za-z0-9]{0,30}\Z")
macs = st.lists(st.integers(0, 255), min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02X}" for x in b))


@st.composite
def valid_manifests(draw) -> dict:
    """A manifest the schema accepts (a subset of its properties, drawn freely)."""
    rack = {"name": draw(names), "driver": "sim"}  # linux needs GPIO lines per unit: not drawn
    for key, values in (("seed", st.integers(-2**40, 2**40)),
                        ("tick_seconds", st.floats(0.001, 10)),
                        ("sample_seconds", st.floats(0.1, 10)),
                        ("power_supply_watts", st.floats(0.5, 2000)),
                        ("power_on_stagger_seconds", st.floats(0, 60)),
                        ("hardware_id", st.from_regex(r"\A[A-Za-z0-9._-]{1,64}\Z"))):
        if draw(st.booleans()):
            rack[key] = draw(values)
    count = draw(st.integers(1, 8))
    ids = draw(st.lists(unit_ids, min_size=count, max_size=count, unique=True))
    slots = draw(st.permutations(range(1, 9)))[:count]
    units = []
    for unit_id, slot in zip(ids, slots):
        unit = {"id": unit_id, "slot": slot}
        for key, values in (("name", short), ("manufacturer", short), ("model", short),
                            ("serial_number", short), ("max_watts", st.floats(0.01, 500)),
                            ("memory_gib", st.floats(0.01, 4096)), ("mac_address", macs)):
            if draw(st.booleans()):
                unit[key] = draw(values)
        units.append(unit)
    return {"rack": rack, "units": units}


def mutate(doc: dict, where: list, value):
    """``doc`` with the value at the path ``where`` (as far as it leads) replaced by ``value``;
    an int step picks a list item or a dict key by position, a str step a dict key by name."""
    def pick(node, step):
        if isinstance(node, list):
            return step % len(node) if isinstance(step, int) and node else 0
        keys = list(node)
        return keys[step % len(keys)] if isinstance(step, int) and keys else step

    node = doc
    for step in where[:-1]:
        if isinstance(node, list) and not node:
            break
        key = pick(node, step)
        child = node[key] if isinstance(node, list) else node.get(key)
        if not isinstance(child, (dict, list)):
            break
        node = child
    if isinstance(node, list) and not node:
        node.append(value)
    else:
        node[pick(node, where[-1])] = value
    return doc


# -- the properties -----------------------------------------------------------------------


def load_text(tmp_path, text: str | bytes):
    path = tmp_path / "manifest.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    return manifest.load(str(path)), path


def loads_or_refuses(tmp_path, text) -> None:
    """The property: a Manifest, or a ManifestError that names the file."""
    try:
        result, path = load_text(tmp_path, text)
    except manifest.ManifestError as e:
        assert str(e).startswith("manifest ") and str(tmp_path) in str(e), str(e)
        return
    assert isinstance(result, manifest.Manifest) and result.units


@bounded(150)
@given(doc=yamlish)
def test_any_structure_loads_or_is_refused(tmp_path, doc):
    loads_or_refuses(tmp_path, yaml.safe_dump(doc, allow_unicode=True))


@bounded(150)
@given(doc=valid_manifests(), where=st.lists(st.one_of(st.integers(0, 8), st.sampled_from(KEYS)), min_size=1,
                                             max_size=4), value=yamlish)
def test_a_mutated_manifest_loads_or_is_refused(tmp_path, doc, where, value):
    loads_or_refuses(tmp_path, yaml.safe_dump(mutate(doc, where, value), allow_unicode=True))


@bounded(150)
@given(text=st.one_of(st.binary(max_size=200), st.text(string.printable + "{}[]:-&*!|>'\"%@`#,\t", max_size=200)))
def test_any_bytes_load_or_are_refused(tmp_path, text):
    loads_or_refuses(tmp_path, text)


@bounded(50)
@given(doc=valid_manifests())
def test_a_valid_manifest_round_trips(tmp_path, doc):
    m, path = load_text(tmp_path, yaml.safe_dump(doc, allow_unicode=True))
    rack = doc["rack"]
    assert (m.path, m.name, m.driver, m.seed) == (str(path), rack["name"], rack["driver"], rack.get("seed", 0))
    for key in ("tick_seconds", "sample_seconds", "power_supply_watts", "power_on_stagger_seconds"):
        if key in rack:
            assert getattr(m, key) == rack[key], key
    assert m.rack_hardware_id == rack.get("hardware_id", "")
    assert [(u.id, u.slot) for u in m.units] == [(u["id"], u["slot"]) for u in doc["units"]]
    for spec, unit in zip(m.units, doc["units"]):
        for key in ("manufacturer", "model", "serial_number", "max_watts", "memory_gib"):
            if key in unit:
                assert getattr(spec, key) == unit[key], key
        assert spec.name == unit.get("name", f"Compute unit in slot {unit['slot']}")
        if "mac_address" in unit:
            assert spec.info()["mac_address"] == unit["mac_address"].lower()


@bounded(60)
@given(doc=valid_manifests(), which=st.sampled_from(["id", "slot"]), data=st.data())
def test_a_duplicate_id_or_slot_is_refused_with_its_line(tmp_path, doc, which, data):
    units = doc["units"]
    if len(units) < 2:
        units.append({"id": "B" if units[0]["id"] == "A" else "A", "slot": units[0]["slot"] % 8 + 1})
    i, j = sorted(data.draw(st.lists(st.integers(0, len(units) - 1), min_size=2, max_size=2, unique=True)))
    units[j][which] = units[i][which]
    with pytest.raises(manifest.ManifestError, match=rf"units\[{j}\]\.{which} \(line \d+\).*units\[{i}\]"):
        load_text(tmp_path, yaml.safe_dump(doc, allow_unicode=True))
