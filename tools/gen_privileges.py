#!/usr/bin/env python3
"""Generate ``redfish_racklet/privileges.py`` from the DMTF privilege registry.

    python tools/gen_privileges.py                 # write the module
    python tools/gen_privileges.py --check         # exit 1 if the module is not up to date
    python tools/gen_privileges.py REGISTRY.json -o OUT.py

The registry's tables (OperationMap, SubordinateOverrides, PropertyOverrides) are
copied as data; the helpers routes declare with, and the EXCEPTIONS table (where the
service deliberately differs from the registry, each with its reason), live here and
are written out verbatim. The output depends on the registry and this file only (no
time stamp, fixed order), so tests/test_privileges.py regenerates it and compares.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTRY = ROOT.parent / "shared" / "redfish" / "registries" / "Redfish_1.8.0_PrivilegeRegistry.json"
DEFAULT_OUTPUT = ROOT / "redfish_racklet" / "privileges.py"
METHODS = ("GET", "HEAD", "PATCH", "PUT", "POST", "DELETE")
NO_AUTH = "NoAuth"  # the registry's pseudo-privilege of a public operation (ServiceRoot GET)

# Where the service differs from the registry: (URL rule, method) -> (privileges, reason).
# Routes that are no registry entity at all (the Redfish version resource, OData
# documents, schema files) are here too, so every public route has a written reason.
EXCEPTIONS = {
    ("/redfish", "GET"): (
        None,
        "The Redfish version resource is no registry entity; DSP0266 (Authentication requirements) "
        "serves it without authentication."),
    ("/redfish/v1/odata", "GET"): (
        None,
        "The OData service document is no registry entity; DSP0266 (Authentication requirements) "
        "serves it without authentication."),
    ("/redfish/v1/$metadata", "GET"): (
        None,
        "The OData metadata document is no registry entity; DSP0266 (Authentication requirements) "
        "serves it without authentication."),
    ("/redfish/v1/Schemas/<name>", "GET"): (
        None,
        "The OEM schema files are no registry entity (JsonSchemaFile is /redfish/v1/JsonSchemas/..., "
        "which needs Login). The public $metadata references Racklet_v1.xml, so a client resolves it "
        "before it logs in; the files are the published schema, nothing secret."),
    ("/redfish/v1/SessionService/Sessions", "POST"): (
        None,
        "Registry: SessionCollection POST needs Login. DSP0266 (Session login): creating a session is "
        "how a client authenticates, so it cannot need one; the UserName and Password of the body are "
        "the check."),
    ("/redfish/v1/SessionService/Sessions/Members", "POST"): (
        None,
        "The same login as a POST to the Sessions collection (DSP0266: a POST to a collection's "
        "Members URI creates like a POST to the collection)."),
    ("/redfish/v1/AccountService/Accounts/<account_id>", "HEAD"): (
        [["ConfigureManager"], ["ConfigureUsers"], ["ConfigureSelf"]],
        "Registry: ManagerAccount HEAD needs Login, GET ConfigureManager, ConfigureUsers or "
        "ConfigureSelf. The service checks HEAD with GET's privileges everywhere (HEAD is a GET "
        "without its body) and the handler's own-account check applies to both, so HEAD reveals no "
        "more than GET. Every role holds ConfigureSelf: the same roles pass the gate."),
}

HELPERS = '''
class Deviation(NamedTuple):
    """A route that deliberately differs from the registry (or is no registry entity)."""

    privileges: Privileges | None
    reason: str


def declare(entity: str, *methods: str, under: tuple[str, ...] | None = None,
            properties: tuple[str, ...] = ()) -> dict[str, Privileges | None]:
    """A route's ``privileges`` declaration: the registry's privileges of ``methods`` on a
    resource of type ``entity``.

    ``under``: the resource types above it, outermost first, its parent last (e.g.
    ``("Manager", "EthernetInterfaceCollection")``); a SubordinateOverride applies when its
    Targets are the tail of ``under`` (the longest such wins). It is required when an
    override would change a declared method, so a sub-resource cannot silently get the
    top-level privileges.

    ``properties``: PropertyOverrides the handler enforces itself (e.g. ``("Password",)`` on
    ManagerAccount): the route's gate is then the weakest of the resource's privileges and
    those properties' (any one suffices); the handler must check each property asked for
    with ``property_privileges``.
    """
    return {m: required(entity, m, under, properties) for m in methods}


def required(entity: str, method: str, under: tuple[str, ...] | None = None,
             properties: tuple[str, ...] = ()) -> Privileges | None:
    """The privileges of one method (see ``declare``); a fresh list, or None (public)."""
    needed = PRIVILEGES[entity][method]
    overrides = [(targets, opmap) for targets, opmap in SUBORDINATE_OVERRIDES.get(entity, ())
                 if method in opmap]
    if under is None:
        changing = [targets for targets, opmap in overrides if opmap[method] != needed]
        if changing:
            raise ValueError(f"{entity} {method}: say which resources it is under (overrides for {changing})")
    else:
        tails = [(len(t), opmap) for t, opmap in overrides if tuple(under[-len(t):]) == t]
        if tails:
            needed = max(tails, key=lambda x: x[0])[1][method]
    if needed is None:
        return None
    alternatives = [list(a) for a in needed]
    for prop in properties:
        for a in PROPERTY_OVERRIDES[entity][prop].get(method, ()):  # KeyError: no such override
            if list(a) not in alternatives:
                alternatives.append(list(a))
    return alternatives


def property_privileges(entity: str, method: str, prop: str) -> Privileges | None:
    """What changing one property needs: its PropertyOverride, else the resource's."""
    override = PROPERTY_OVERRIDES.get(entity, {}).get(prop, {}).get(method)
    needed = override if override is not None else PRIVILEGES[entity][method]
    return None if needed is None else [list(a) for a in needed]


def exception(route: str, method: str) -> Privileges | None:
    """The privileges of a listed deviation (``EXCEPTIONS``), for a route's declaration."""
    priv = EXCEPTIONS[(route, method)].privileges
    return None if priv is None else [list(a) for a in priv]
'''


def fmt(value) -> str:
    """Python source for JSON-like data (None, not null), on one line."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        inner = ", ".join(fmt(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{fmt(k)}: {fmt(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def privileges_of(alternatives: list[dict]) -> list[list[str]] | None:
    """A registry OperationMap entry as the app's AND-lists; a NoAuth alternative: public."""
    out = [list(a["Privilege"]) for a in alternatives]
    return None if [NO_AUTH] in out else out


def operation_map(opmap: dict) -> dict:
    unknown = set(opmap) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown methods in the registry: {sorted(unknown)}")
    return {m: privileges_of(opmap[m]) for m in METHODS if m in opmap}


def tables(registry: dict) -> tuple[dict, dict, dict]:
    privileges, subordinate, properties = {}, {}, {}
    for mapping in registry["Mappings"]:
        entity = mapping["Entity"]
        unsupported = set(mapping) - {"Entity", "OperationMap", "SubordinateOverrides", "PropertyOverrides"}
        if unsupported:  # e.g. ResourceURIOverrides: the helpers would ignore it, so refuse
            raise SystemExit(f"{entity}: {sorted(unsupported)} not supported by this generator")
        privileges[entity] = operation_map(mapping["OperationMap"])
        if "SubordinateOverrides" in mapping:
            subordinate[entity] = [(tuple(o["Targets"]), operation_map(o["OperationMap"]))
                                   for o in mapping["SubordinateOverrides"]]
        for o in mapping.get("PropertyOverrides", ()):
            for prop in o["Targets"]:
                properties.setdefault(entity, {})[prop] = operation_map(o["OperationMap"])
    return privileges, subordinate, properties


def generate(registry: dict, source: str) -> str:
    privileges, subordinate, properties = tables(registry)
    out = [
        '"""Redfish privileges: the DMTF privilege registry as data, and how routes declare theirs.',
        "",
        f"GENERATED by tools/gen_privileges.py from the DMTF registry {source}",
        f"(../shared/redfish/registries/; Id {registry['Id']}, {registry['@odata.type']}).",
        "Do not edit by hand: change the generator (its EXCEPTIONS and helpers) or the registry",
        "and run `python tools/gen_privileges.py`;",
        "tests/test_privileges.py fails when this file is not what the generator makes.",
        "",
        "A privilege set (``Privileges``) is the app's format: alternatives, each a list of",
        "privilege names that must all be held (``[[\"Login\"]]``; ``[[\"ConfigureManager\"],",
        "[\"ConfigureSelf\"]]`` is either). ``None`` is a public method: the registry's ``NoAuth``.",
        "",
        "- ``PRIVILEGES[entity][method]``: the OperationMap of every registry entity;",
        "- ``SUBORDINATE_OVERRIDES[entity]``: (Targets, OperationMap) pairs, for a resource under those types;",
        "- ``PROPERTY_OVERRIDES[entity][property][method]``, e.g. ManagerAccount's Password;",
        "- ``EXCEPTIONS[(route, method)]``: where the service differs, with the reason;",
        "- ``declare(entity, *methods, under=..., properties=...)``: a route's ``privileges``.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import NamedTuple",
        "",
        "Privileges = list  # list[list[str]]: any one AND-list suffices",
        "",
        f"REGISTRY = {fmt(registry['Id'])}",
        f"PRIVILEGES_USED = {fmt(tuple(registry['PrivilegesUsed']))}",
        "",
        "PRIVILEGES: dict[str, dict[str, Privileges | None]] = {",
    ]
    for entity, opmap in privileges.items():
        out.append(f"    {fmt(entity)}: {{")
        out += [f"        {fmt(m)}: {fmt(p)}," for m, p in opmap.items()]
        out.append("    },")
    out += ["}", "", "SUBORDINATE_OVERRIDES: dict[str, list[tuple[tuple[str, ...], dict[str, Privileges]]]] = {"]
    for entity, overrides in subordinate.items():
        out.append(f"    {fmt(entity)}: [")
        for targets, opmap in overrides:
            out.append(f"        ({fmt(targets)}, {{")
            out += [f"            {fmt(m)}: {fmt(p)}," for m, p in opmap.items()]
            out.append("        }),")
        out.append("    ],")
    out += ["}", "", "PROPERTY_OVERRIDES: dict[str, dict[str, dict[str, Privileges]]] = {"]
    for entity, props in properties.items():
        out.append(f"    {fmt(entity)}: {{")
        for prop, opmap in props.items():
            out.append(f"        {fmt(prop)}: {fmt(opmap)},")
        out.append("    },")
    out += ["}", "", "", HELPERS.strip("\n"), "", "",
            "# Where the service differs from the registry, or serves what is no registry entity.",
            "EXCEPTIONS: dict[tuple[str, str], Deviation] = {"]
    for (route, method), (priv, reason) in EXCEPTIONS.items():
        out.append(f"    ({fmt(route)}, {fmt(method)}): Deviation(")
        out.append(f"        {fmt(priv)},")
        words, line, lines = reason.split(), "", []
        for w in words:  # wrap the reason at ~90 columns, as implicit string concatenation
            if line and len(line) + len(w) + 1 > 88:
                lines.append(line + " ")
                line = w
            else:
                line = f"{line} {w}" if line else w
        lines.append(line)
        out += [f"        {json.dumps(s)}" for s in lines[:-1]]
        out.append(f"        {json.dumps(lines[-1])}),")
    out += ["}", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("registry", nargs="?", type=Path, default=DEFAULT_REGISTRY)
    ap.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    ap.add_argument("--check", action="store_true", help="exit 1 if the output is not up to date")
    args = ap.parse_args(argv)
    text = generate(json.loads(args.registry.read_text()), args.registry.name)
    if args.check:
        same = args.output.exists() and args.output.read_text() == text
        print(f"{args.output}: {'up to date' if same else 'OUT OF DATE'}")
        return 0 if same else 1
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
