"""Fuzzing the live service with schemathesis, from its own OpenAPI document.

Every operation of ``/redfish/v1/openapi.yaml`` gets generated requests (valid and invalid
ones, schemathesis's positive and negative modes), sent over TLS verified with the rack's
CA, as admin (HTTP Basic) or as a ReadOnly account (a session token). Each answer must:

- not be a 5xx, and conform to the document (status listed, content type, body schema);
- if it is JSON with an ``@odata.type``, validate against the DMTF JSON Schema of that type
  (../shared/redfish/json-schema: the DMTF's definition of the resources we serve);
- if a write (PATCH/POST/PUT/DELETE) was refused with a 4xx, have changed nothing: the
  properties it named read the same on the target, and the store's settings (accounts,
  sessions, units' wanted state, settings, subscriptions, firmware, keys, report
  definitions, tasks, commands) are the same row for row.

Path parameters are, most of the time, those of real resources (found by walking the
service from /redfish/v1), so the fuzzing reaches past 404.

The run is reproducible: hypothesis is derandomized (or, with RACKLET_FUZZ_SEED=N, random
from that seed) and keeps no database. RACKLET_FUZZ_EXAMPLES sets the examples per operation
(default 8, the bounded run of the suite); the longer run is documented in docs/fuzzing.md.

Excluded, because they would end or falsify the rest of the run (each is tested elsewhere):
Manager.ResetToDefaults (factory reset: tests/test_factory_reset.py), Manager.Reset (restarts
the service: tests/test_managers.py), CertificateService.ReplaceCertificate (swaps the TLS
certificate the client verifies: tests/test_certificates.py); and writes to the admin and
ReadOnly accounts the run logs in with, or to its own session (a fuzzed password or a
deleted session would lock the run out: tests/test_accounts.py covers those writes).
Outbound URLs in fuzzed bodies (ImageURI, Destination) are pointed at a closed loopback port,
so the service never reaches past 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections import deque
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis 4.x (pip install -e '.[test]')")
hypothesis = pytest.importorskip("hypothesis", reason="needs hypothesis (pip install -e '.[test]')")

from hypothesis import HealthCheck, Phase, given, seed, settings, strategies as st  # noqa: E402
from jsonschema import Draft7Validator  # noqa: E402
from referencing import Registry, Resource  # noqa: E402
from referencing.jsonschema import DRAFT7  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,  # noqa: E402
                                               status_code_conformance)

from .conftest import SHARED, start_server  # noqa: E402

EXAMPLES = int(os.environ.get("RACKLET_FUZZ_EXAMPLES", "8"))
SEED = os.environ.get("RACKLET_FUZZ_SEED")
CRAWL_LIMIT = int(os.environ.get("RACKLET_FUZZ_CRAWL", "400"))
TIMEOUT = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# (method, path) never sent: see the module docstring.
EXCLUDED = {
    ("POST", "/redfish/v1/Managers/{manager_id}/Actions/Manager.ResetToDefaults"),
    ("POST", "/redfish/v1/Managers/{manager_id}/Actions/Manager.Reset"),
    ("POST", "/redfish/v1/CertificateService/Actions/CertificateService.ReplaceCertificate"),
}
# The operations, grouped by the first segment under /redfish/v1, one test each
# (test_every_operation_is_in_a_group makes sure none is left out).
GROUPS = ("root", "Systems", "Chassis", "PowerEquipment", "Managers", "AccountService", "SessionService",
          "CertificateService", "EventService", "UpdateService", "TaskService", "TelemetryService",
          "JsonSchemas", "Schemas", "other")
WRITES = {"PATCH", "POST", "PUT", "DELETE"}
URL_KEYS = ("ImageURI", "Destination")
SENT: dict[str, int] = {}   # requests sent, by operation (each must get some)
STATUSES: dict[int, int] = {}   # answers, by status
DMTF_CHECKED = [0]   # answers validated against a DMTF schema

# -- the server and what the run knows of it ------------------------------------------


class Rack:
    """The fuzzed server, its admin and ReadOnly clients, and the real path parameters."""

    def __init__(self, srv):
        self.srv = srv
        self.admin = srv.client()
        self.admin.headers["Accept"] = "application/json"
        self.protected: set[str] = set()       # URIs no write may target
        self.readonly = self._readonly_session()
        self.uris = crawl(self.admin, srv.url)

    def _readonly_session(self) -> requests.Session:
        accounts = self.srv.url + "/redfish/v1/AccountService/Accounts"
        for name, role in (("fuzz-reader", "ReadOnly"), ("fuzz-victim", "Operator")):
            r = self.admin.post(accounts, json={"UserName": name, "Password": "fuzz-password-1234",
                                                "RoleId": role}, timeout=TIMEOUT)
            assert r.status_code == 201, r.text
            if role == "ReadOnly":   # the victim is left to the fuzzer
                self.protected.add(urlsplit(r.headers["Location"]).path)
        s = self.srv.client(auth=None)
        r = s.post(self.srv.url + "/redfish/v1/SessionService/Sessions",
                   json={"UserName": "fuzz-reader", "Password": "fuzz-password-1234"}, timeout=TIMEOUT)
        assert r.status_code == 201, r.text
        s.headers["X-Auth-Token"] = r.headers["X-Auth-Token"]
        self.protected.add(urlsplit(r.headers["Location"]).path)
        for m in self.admin.get(accounts, timeout=TIMEOUT).json()["Members"]:
            if self.admin.get(self.srv.url + m["@odata.id"], timeout=TIMEOUT).json()["UserName"] == "admin":
                self.protected.add(m["@odata.id"])
        return s


def crawl(s: requests.Session, base: str) -> list[str]:
    """Every resource URI reachable from /redfish/v1 through @odata.id links (bounded)."""
    seen, queue = {"/redfish/v1"}, deque(["/redfish/v1"])
    while queue and len(seen) < CRAWL_LIMIT:
        r = s.get(base + queue.popleft(), timeout=TIMEOUT)
        if r.status_code != 200 or not r.headers.get("Content-Type", "").startswith("application/json"):
            continue
        for uri in links(r.json()):
            if uri not in seen:
                seen.add(uri)
                queue.append(uri)
    return sorted(seen)


def links(doc) -> list[str]:
    out = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "@odata.id" and isinstance(value, str) and value.startswith("/redfish/v1"):
                out.append(value.split("#")[0].rstrip("/"))
            else:
                out += links(value)
    elif isinstance(doc, list):
        for item in doc:
            out += links(item)
    return out


def real_parameters(template: str, uris: list[str]) -> list[dict]:
    """The path parameters of the known URIs that match ``template`` (e.g. {system_id})."""
    names = re.findall(r"{(\w+)}", template)
    if not names:
        return []
    pattern = re.compile("^" + re.sub(r"\\{(\w+)\\}", r"([^/]+)", re.escape(template)) + "$")
    return [dict(zip(names, m.groups())) for uri in uris if (m := pattern.match(uri))]


# -- the invariants ----------------------------------------------------------------------

# Store columns that are settings (what a request may change), by table; the others
# (readings, observed power state, counters, timestamps) move on their own.
STORE_SETTINGS = {
    "meta": "key, value FROM meta WHERE key NOT IN ('agent_stats')",
    "accounts": "id, username, password_hash, role_id, enabled, locked, password_change_required FROM accounts",
    "sessions": "id, username FROM sessions",
    "units": "id, info, present, desired_power, asset_tag FROM units",
    "unit_settings": "unit, key, value FROM unit_settings",
    "subscriptions": "id, owner, settings FROM subscriptions",
    "firmware": "target, component, active, staged, apply, floor FROM firmware",
    "signing_keys": "id, pem FROM signing_keys",
    "report_definitions": "id, settings FROM report_definitions",
    "tasks": "id FROM tasks",
    "commands": "max(id) FROM commands",
}


def store_settings(state_dir: Path) -> dict:
    db = sqlite3.connect(f"file:{state_dir / 'racklet.db'}?mode=ro", uri=True, timeout=10)
    try:
        return {table: sorted(map(repr, db.execute("SELECT " + query))) for table, query in STORE_SETTINGS.items()}
    finally:
        db.close()


def diff(before: dict, after: dict) -> dict:
    return {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}


@lru_cache(maxsize=None)
def dmtf_validator(odata_type: str):
    """The Draft 7 validator of a DMTF type such as #ComputerSystem.v1_22_0.ComputerSystem
    (its $refs resolved from the local json-schema folder), or None if the folder lacks it."""
    folder = SHARED / "redfish" / "json-schema"
    namespace, _, name = odata_type.lstrip("#").rpartition(".")
    path = folder / f"{namespace}.json"
    if not path.exists():
        return None

    def retrieve(uri: str) -> Resource:
        local = folder / uri.rsplit("/", 1)[-1]
        if not local.exists():  # an old version the folder lacks (Sensor.v1_0_14): its newest one
            local = max(folder.glob(local.name.split(".")[0] + ".v*.json"), key=_version)
        return Resource.from_contents(json.loads(local.read_text()), default_specification=DRAFT7)

    registry = Registry(retrieve=retrieve)
    schema = {"$ref": f"http://redfish.dmtf.org/schemas/v1/{namespace}.json#/definitions/{name}"}
    return Draft7Validator(schema, registry=registry)


def _version(path: Path) -> tuple:
    """Sensor.v1_12_0.json -> (1, 12, 0)."""
    return tuple(int(n) for n in re.findall(r"\d+", path.name.split(".", 1)[1]))


def dmtf_errors(body) -> list[str]:
    if not isinstance(body, dict) or "@odata.type" not in body:
        return []
    validator = dmtf_validator(body["@odata.type"])
    if validator is None:
        return [f"no DMTF schema for {body['@odata.type']}"]
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(body)][:5]


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rack(tmp_path_factory):
    """A server of its own: fuzzing changes its state."""
    srv = start_server(tmp_path_factory.mktemp("fuzz"))
    yield Rack(srv)
    srv.stop()


@pytest.fixture(scope="module")
def api(rack):
    return schemathesis.openapi.from_url(rack.srv.url + "/redfish/v1/openapi.yaml", verify=rack.srv.ca,
                                         timeout=TIMEOUT)


def operations(api) -> list:
    return [result.ok() for result in api.get_all_operations()]


def group_of(path: str) -> str:
    parts = path.split("/")
    if path in ("/redfish/v1", "/redfish"):
        return "root"
    first = parts[3] if len(parts) > 3 and parts[:3] == ["", "redfish", "v1"] else ""
    return first if first in GROUPS else "other"


# -- one operation ------------------------------------------------------------------------


def safe_urls(body):
    """Point the URLs the service would fetch or push to at a closed loopback port."""
    if isinstance(body, dict):
        for key in URL_KEYS:
            value = body.get(key)
            if isinstance(value, str):
                host = urlsplit(value if "://" in value else "https://" + value).hostname
                if host not in (None, "127.0.0.1"):
                    body[key] = "https://127.0.0.1:9/" + value.rsplit("/", 1)[-1]
    return body


def fuzz_operation(rack: Rack, op) -> None:
    method, template = op.method.upper(), op.path
    real = real_parameters(template, rack.uris)
    modes = [op.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    if method in WRITES:
        modes.append(op.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    params = st.sampled_from(real) if real else st.none()
    if real:
        params = st.one_of(params, params, params, st.none())   # mostly real resources
    who = st.sampled_from(("admin", "admin", "readonly"))

    @settings(max_examples=EXAMPLES, derandomize=SEED is None, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=(Phase.explicit, Phase.generate, Phase.shrink),
              print_blob=True)
    @given(case=st.one_of(*modes), path_params=params, user=who)
    def run(case, path_params, user):
        if path_params is not None:
            case.path_parameters = dict(path_params)
        target = case.formatted_path
        if method in WRITES and target.rstrip("/") in rack.protected:
            return
        case.body = safe_urls(case.body) if isinstance(case.body, dict) else case.body
        for header in list(case.headers or {}):   # generated credentials: the run's own are sent
            if header.lower() in ("authorization", "x-auth-token"):
                del case.headers[header]
        session = rack.admin if user == "admin" else rack.readonly
        before = None
        if method in WRITES:
            before = (store_settings(rack.srv.state_dir), named_properties(rack, target, case.body))
        SENT[op.label] = SENT.get(op.label, 0) + 1
        response = case.call(base_url=rack.srv.url, session=session, verify=rack.srv.ca, timeout=TIMEOUT)
        STATUSES[response.status_code] = STATUSES.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS)
        if method != "HEAD" and response.headers.get("content-type", [""])[0].startswith("application/json"):
            body = response.json()
            DMTF_CHECKED[0] += isinstance(body, dict) and "@odata.type" in body
            errors = dmtf_errors(body)
            assert not errors, f"{method} {target}: the body breaks its DMTF schema: {errors}"
        if before is not None and 400 <= response.status_code < 500:
            after = (store_settings(rack.srv.state_dir), named_properties(rack, target, case.body))
            assert before[0] == after[0], (f"{method} {target} was refused ({response.status_code}) but changed "
                                           f"the store: {diff(before[0], after[0])}")
            assert before[1] == after[1], (f"{method} {target} was refused ({response.status_code}) but changed "
                                           f"{before[1]} to {after[1]}")

    (seed(int(SEED))(run) if SEED is not None else run)()


def named_properties(rack: Rack, target: str, body) -> dict:
    """The properties a write names, as the target (or, for an action, its resource) reads."""
    resource = target.split("/Actions/")[0]
    r = rack.admin.get(rack.srv.url + resource, timeout=TIMEOUT)
    if r.status_code != 200 or not r.headers.get("Content-Type", "").startswith("application/json"):
        return {"status": r.status_code}
    doc = r.json()
    keys = body.keys() if isinstance(body, dict) else ()
    return {k: doc.get(k) for k in keys if isinstance(k, str) and not k.startswith("@")}


# -- the tests ----------------------------------------------------------------------------


def test_every_operation_is_in_a_group(api):
    """The groups below cover the whole document (and the document is the whole service)."""
    ops = operations(api)
    assert len(ops) > 100, len(ops)
    assert {group_of(op.path) for op in ops} <= set(GROUPS)


@pytest.mark.parametrize("group", GROUPS)
def test_fuzz(rack, api, group):
    failures, done = [], 0
    for op in operations(api):
        if group_of(op.path) != group or (op.method.upper(), op.path) in EXCLUDED:
            continue
        try:
            fuzz_operation(rack, op)
        except Exception as exc:  # every failing operation is reported, not only the first
            notes = "\n".join(getattr(exc, "__notes__", ()))   # hypothesis's example, the curl to replay it
            failures.append(f"{op.method.upper()} {op.path}: {type(exc).__name__}: {exc}"[:3000] + "\n" + notes[-3000:])
        done += 1
    if done == 0:
        pytest.skip(f"no operation under {group} in this document")
    print(f"{group}: {done} operations; so far {sum(SENT.values())} requests, answers {sorted(STATUSES.items())}, "
          f"{DMTF_CHECKED[0]} checked against DMTF schemas")
    assert rack.srv.proc.poll() is None, "the server died"
    assert not failures, "\n\n".join(failures)
    starved = [op.label for op in operations(api) if group_of(op.path) == group
               and (op.method.upper(), op.path) not in EXCLUDED and not SENT.get(op.label)]
    assert not starved, f"operations that got no request: {starved}"


def test_every_resource_validates_against_its_dmtf_schema(rack):
    """Each resource the crawl found, read once, against its DMTF JSON Schema."""
    bad, checked = {}, 0
    for uri in rack.uris:
        r = rack.admin.get(rack.srv.url + uri, timeout=TIMEOUT)
        if r.status_code == 200 and r.headers["Content-Type"].startswith("application/json"):
            checked += 1
            if errors := dmtf_errors(r.json()):
                bad[uri] = errors
    assert checked > 50, checked
    assert not bad, json.dumps(bad, indent=1)


def test_the_store_snapshot_sees_an_accepted_change(rack):
    """The "refused writes change nothing" check is not blind: an accepted PATCH shows."""
    before = store_settings(rack.srv.state_dir)
    tag = f"fuzz-{len(SENT)}-{os.getpid()}"
    r = rack.admin.patch(rack.srv.url + "/redfish/v1/Systems/Unit1", json={"AssetTag": tag}, timeout=TIMEOUT)
    assert r.status_code in (200, 204), r.text
    changed = diff(before, store_settings(rack.srv.state_dir))
    assert list(changed) == ["units"] and tag in repr(changed), changed
