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
    xml = (ROOT / "schemas" / "Racklet_v1.xml").read_text()
    csdl = {name: set(re.findall(r'<Property Name="(\w+)"', body))
            for name, body in re.findall(r'<ComplexType Name="(\w+)"[^>]*>(.*?)</ComplexType>', xml, re.S)}
    json_types = {name: set(d["properties"]) - {"@odata.type"} for name, d in js["definitions"].items()}
    assert csdl == json_types
    assert {"ComputerSystem", "UpdateService", "SoftwareInventory", "Task"} <= set(csdl)


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


def test_declared_privileges_are_the_registrys(tmp_path):
    """Every privilege a route asks for is one the DMTF registry defines (no typo such as
    "ConfigureComponent" that no role holds, which would lock everyone out)."""
    reg = json.loads(shared_or_skip("redfish", "registries", "Redfish_1.8.0_PrivilegeRegistry.json").read_text())
    (tmp_path / "racklet.db").touch()
    app = create_app({"STATE_DIR": str(tmp_path)})
    for rule in app.url_map.iter_rules():
        for method, decl in app.view_functions[rule.endpoint].view_class.privileges.items():
            used = {p for option in decl or [] for p in option}
            assert used <= set(reg["PrivilegesUsed"]), (rule.rule, method, used)


def test_privilege_names_come_from_the_registry():
    reg = json.loads(shared_or_skip("redfish", "registries", "Redfish_1.8.0_PrivilegeRegistry.json").read_text())
    from redfish_racklet.auth import ROLES
    used = {p for privs in ROLES.values() for p in privs}
    assert used <= set(reg["PrivilegesUsed"])


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


# -- architecture (STYLE habit 5): the API side never reaches a driver -------------------

FORBIDDEN = ("redfish_racklet.drivers", "smbus2", "gpiod", "redfish_racklet.agent.main")
API_MODULES = sorted((ROOT / "redfish_racklet" / "resources").glob("*.py")) + [
    ROOT / "redfish_racklet" / n for n in ("app.py", "web.py", "bodies.py", "odata.py", "agent/client.py")]


def package_of(path: Path) -> str:
    """The dotted package a source file belongs to (a package's own for __init__.py)."""
    return ".".join(path.relative_to(ROOT).parent.parts)


def module_file(name: str) -> Path | None:
    """The source file of a redfish_racklet module or package, or None (not ours)."""
    if name.split(".")[0] != "redfish_racklet":
        return None
    base = ROOT.joinpath(*name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.exists()), None)


def imports_of(source: str, package: str) -> set[str]:
    """Every module a source imports, relative imports resolved against ``package``;
    ``from P import n`` counts as P and P.n (n may be a submodule: ``from .. import drivers``)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                mod = ".".join(anchor + ([mod] if mod else []))
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names if a.name != "*"}
    return out


def reachable(path: Path) -> dict[str, str]:
    """Every module reachable from ``path`` through the package's own modules (and the
    packages' __init__ they run), each mapped to a file that imports it."""
    seen: dict[str, str] = {}
    todo, done = [path], set()
    while todo:
        here = todo.pop()
        if here in done:
            continue
        done.add(here)
        for mod in imports_of(here.read_text(), package_of(here)):
            seen.setdefault(mod, str(here.relative_to(ROOT)))
            names = mod.split(".")
            todo += [f for i in range(1, len(names) + 1) if (f := module_file(".".join(names[:i])))]
    return seen


@pytest.mark.parametrize("path", API_MODULES, ids=lambda p: str(p.relative_to(ROOT / "redfish_racklet")))
def test_api_code_never_reaches_a_driver(path):
    """No driver, smbus2, gpiod or agent main loop, directly or through any module of
    the package that the API code imports (store, web, agent.client…)."""
    for mod, importer in reachable(path).items():
        assert not any(mod == f or mod.startswith(f + ".") for f in FORBIDDEN), \
            f"{path.name} reaches {mod} (imported by {importer})"


def test_the_import_walk_sees_what_it_must():
    got = imports_of("from .. import drivers\nfrom ..drivers.sim import X\nimport gpiod\nfrom .common import store\n",
                     "redfish_racklet.resources")
    assert {"redfish_racklet.drivers", "redfish_racklet.drivers.sim", "gpiod",
            "redfish_racklet.resources.common"} <= got
    # transitively: the agent's main loop does reach the drivers, through other modules too
    agent_main = reachable(ROOT / "redfish_racklet" / "agent" / "main.py")
    assert any(m.startswith("redfish_racklet.drivers") for m in agent_main)


def test_service_document_lists_everything_the_service_root_links(tmp_path):
    from redfish_racklet.store import Store
    Store(str(tmp_path / "racklet.db")).create()
    client = create_app({"STATE_DIR": str(tmp_path)}).test_client()  # both documents need no login
    root = client.get("/redfish/v1").get_json()
    listed = {(e["name"], e["url"]) for e in client.get("/redfish/v1/odata").get_json()["value"]}
    linked = {(k, v["@odata.id"]) for doc in (root, root["Links"]) for k, v in doc.items()
              if isinstance(v, dict) and "@odata.id" in v}
    assert ("PowerEquipment", "/redfish/v1/PowerEquipment") in linked
    assert listed == linked | {("Service", "/redfish/v1/")}
