"""Checks against the DMTF material and the code's own rules, without a server."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from redfish_racklet.app import create_app
from redfish_racklet.messages import BASE_MESSAGES, BASE_REGISTRY
from redfish_racklet.resources.common import COLLECTIONS, VERSIONS

from .conftest import ROOT, shared_or_skip


def test_messages_match_the_base_registry():
    reg = json.loads(shared_or_skip("redfish", "registries", f"{BASE_REGISTRY}.json").read_text())
    assert f"Base.{reg['RegistryVersion']}" == BASE_REGISTRY
    for msg_id, (text, severity, resolution) in BASE_MESSAGES.items():
        entry = reg["Messages"].get(msg_id)
        assert entry is not None, msg_id
        assert text == entry["Message"], msg_id
        assert severity == entry["MessageSeverity"], msg_id
        assert resolution == entry["Resolution"], msg_id


def test_schema_versions_exist_in_the_dmtf_csdl():
    csdl = shared_or_skip("redfish", "csdl")
    for name, ver in VERSIONS.items():
        text = (csdl / f"{name}_v1.xml").read_text()
        assert f'Namespace="{name}.{ver}"' in text, (name, ver)
        assert re.search(rf'<EntityType Name="{name}" BaseType="{name}\.v1_\d+_\d+\.{name}"', text) or \
            f'<EntityType Name="{name}"' in text
    for name in COLLECTIONS:
        assert (csdl / f"{name}_v1.xml").exists(), name


def test_enum_values_served_are_in_the_dmtf_json_schema():
    from redfish_racklet.agent.power import HOST_TO_POWER_STATE, RESET_TYPES
    js = shared_or_skip("redfish", "json-schema")
    resource = json.loads(next(js.glob("Resource.json")).read_text())
    assert set(RESET_TYPES) <= set(resource["definitions"]["ResetType"]["enum"])
    assert set(HOST_TO_POWER_STATE.values()) <= set(resource["definitions"]["PowerState"]["enum"])


def test_oem_schema_parses_and_json_schema_matches():
    import xml.etree.ElementTree as ET
    ET.parse(ROOT / "schemas" / "Racklet_v1.xml")
    js = json.loads((ROOT / "schemas" / "Racklet.v1_0_0.json").read_text())
    props = set(js["definitions"]["ComputerSystem"]["properties"]) - {"@odata.type"}
    xml = (ROOT / "schemas" / "Racklet_v1.xml").read_text()
    assert props == set(re.findall(r'<Property Name="(\w+)"', xml))


def test_every_route_and_method_declares_privileges(tmp_path):
    (tmp_path / "racklet.db").touch()
    app = create_app({"STATE_DIR": str(tmp_path)})
    checked = 0
    for rule in app.url_map.iter_rules():
        cls = app.view_functions[rule.endpoint].view_class
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method in cls.privileges, (rule.rule, method)
            decl = cls.privileges[method]
            assert decl is None or all(isinstance(p, list) and p for p in decl), (rule.rule, method)
            checked += 1
    assert checked >= 20


def test_privilege_names_come_from_the_registry():
    reg = json.loads(shared_or_skip("redfish", "registries", "Redfish_1.8.0_PrivilegeRegistry.json").read_text())
    from redfish_racklet.auth import ROLES
    used = {p for privs in ROLES.values() for p in privs}
    assert used <= set(reg["PrivilegesUsed"])


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            out.add("." * node.level + mod)
    return out


@pytest.mark.parametrize("path", sorted((ROOT / "redfish_racklet").glob("resources/*.py"))
                         + [ROOT / "redfish_racklet" / n for n in ("app.py", "web.py", "odata.py",
                                                                   "agent/client.py")])
def test_api_code_never_imports_a_driver(path):
    for mod in imports_of(path):
        assert "drivers" not in mod and not mod.startswith(("smbus2", "gpiod")), (path.name, mod)
        assert not mod.endswith("agent.main") and mod != ".main", (path.name, mod)


def test_event_messages_match_their_registries():
    import json

    from redfish_racklet.agent.events import MESSAGES

    from .conftest import shared_or_skip
    folder = shared_or_skip("redfish", "registries")
    for (registry, key), (severity, text) in MESSAGES.items():
        prefix, version = registry.split(".", 1)
        reg = json.loads((folder / f"{prefix}.{version}.json").read_text())
        msg = reg["Messages"][key]
        assert msg["Message"] == text, key
        assert msg.get("MessageSeverity", msg.get("Severity")) == severity, key
