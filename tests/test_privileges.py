"""Every route's privileges are the DMTF privilege registry's, and the live service enforces them.

- the generated ``privilege_registry.py`` is what ``tools/gen_privileges.py`` makes of the registry;
- every rule × method of ``create_app(...).url_map`` declares the registry's privileges for
  its entity (an action: its resource's POST), computed here from the registry JSON itself
  with the SubordinateOverrides of the resource types above it (read off the URL rules),
  unless ``privileges.EXCEPTIONS`` lists it with a reason;
- the matrix: a live server, crawled from /redfish/v1, asked every GET/HEAD and a harmless
  request of every other method by an Administrator, an Operator, a ReadOnly user and an
  anonymous client; 401/403/allowed exactly as the registry says, and nothing changes.
"""

from __future__ import annotations

import importlib.util
import json
import time

import pytest

from redfish_racklet import auth, privileges
from redfish_racklet.app import create_app
from redfish_racklet.store import Store

from .conftest import ROOT, ids, shared_or_skip

REGISTRY_FILE = ("redfish", "registries", "Redfish_1.8.0_PrivilegeRegistry.json")
PASSWORDS = {"admin": None, "operator": "operator-password-1", "viewer": "viewer-password-1"}
ROLE_OF = {"admin": "Administrator", "operator": "Operator", "viewer": "ReadOnly"}
MISSING = object()
NO_SUCH = "racklet-no-such-member"


def registry() -> dict:
    return json.loads(shared_or_skip(*REGISTRY_FILE).read_text())


def app_and_views(tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "racklet.db").touch()
    app = create_app({"STATE_DIR": str(tmp_path)})
    views = {r.rule: app.view_functions[r.endpoint].view_class for r in app.url_map.iter_rules()}
    return app, views


def owner_rule(rule: str) -> str:
    """An action's resource (``…/Actions/X`` → ``…``); any other rule is its own."""
    return rule.split("/Actions/", 1)[0]


def chain(rule: str, views: dict) -> list[str]:
    """The entities of the resources above ``rule`` (outermost first), from the rules that
    are prefixes of it: /redfish/v1/Managers/<manager_id>/EthernetInterfaces/<id> →
    [ServiceRoot, ManagerCollection, Manager, EthernetInterfaceCollection]."""
    parts = owner_rule(rule).split("/")
    out = []
    for n in range(2, len(parts)):
        cls = views.get("/".join(parts[:n]))
        if cls is not None and getattr(cls, "entity", None):
            out.append(cls.entity)
    return out


def expected(reg: dict, entity: str, method: str, above: list[str], properties: bool = True):
    """The registry's privileges, computed from its JSON (not from privileges.py): the
    OperationMap, the SubordinateOverride whose Targets end the chain (longest wins), and
    the PropertyOverrides of that method as further alternatives (the handler checks them
    per property). A NoAuth alternative: public (None)."""
    mapping = next(m for m in reg["Mappings"] if m["Entity"] == entity)
    ops = mapping["OperationMap"][method]
    best = 0
    for o in mapping.get("SubordinateOverrides", []):
        t = o["Targets"]
        if method in o["OperationMap"] and above[-len(t):] == t and len(t) > best:
            ops, best = o["OperationMap"][method], len(t)
    alts = [list(a["Privilege"]) for a in ops]
    if ["NoAuth"] in alts:
        return None
    for o in mapping.get("PropertyOverrides", []) if properties else []:
        alts += [list(a["Privilege"]) for a in o["OperationMap"].get(method, []) if a["Privilege"] not in alts]
    return alts


# -- the generated module ----------------------------------------------------------------

def test_privileges_module_is_what_the_generator_makes():
    path = shared_or_skip(*REGISTRY_FILE)
    spec = importlib.util.spec_from_file_location("gen_privileges", ROOT / "tools" / "gen_privileges.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    text = gen.generate(json.loads(path.read_text()), path.name)
    assert (ROOT / "redfish_racklet" / "privilege_registry.py").read_text() == text, \
        "privilege_registry.py is stale or edited by hand: run `python tools/gen_privileges.py`"


def test_the_tables_are_the_registrys():
    reg = registry()
    assert privileges.REGISTRY == reg["Id"]
    assert set(privileges.PRIVILEGES) == {m["Entity"] for m in reg["Mappings"]}
    for m in reg["Mappings"]:
        for method in m["OperationMap"]:
            assert privileges.PRIVILEGES[m["Entity"]][method] == \
                expected(reg, m["Entity"], method, [], properties=False), (m["Entity"], method)
    assert privileges.PROPERTY_OVERRIDES["ManagerAccount"]["Password"]["PATCH"] == \
        [["ConfigureUsers"], ["ConfigureSelf"]]
    assert privileges.PRIVILEGES["ServiceRoot"]["GET"] is None  # Login or NoAuth: public


def test_declare_applies_subordinate_and_property_overrides():
    d = privileges.declare
    assert d("EthernetInterface", "PATCH", under=("ManagerCollection", "Manager", "EthernetInterfaceCollection")) \
        == {"PATCH": [["ConfigureManager"]]}
    assert d("EthernetInterface", "PATCH", under=("ComputerSystem", "EthernetInterfaceCollection")) \
        == {"PATCH": [["ConfigureComponents"]]}
    assert d("LogEntry", "DELETE", under=("ComputerSystem", "LogServiceCollection", "LogService",
                                          "LogEntryCollection")) == {"DELETE": [["ConfigureComponents"]]}
    assert d("LogService", "POST", under=("Manager", "LogServiceCollection")) == {"POST": [["ConfigureManager"]]}
    assert d("ManagerAccount", "PATCH", properties=("Password",)) == \
        {"PATCH": [["ConfigureUsers"], ["ConfigureSelf"]]}
    assert privileges.property_privileges("ManagerAccount", "PATCH", "RoleId") == [["ConfigureUsers"]]
    with pytest.raises(ValueError):  # an override would change it: say where the resource is
        d("EthernetInterface", "PATCH")
    decl = d("Chassis", "GET")
    decl["GET"].append(["ConfigureManager"])  # callers get copies, never the table itself
    assert privileges.PRIVILEGES["Chassis"]["GET"] == [["Login"]]


# -- every declaration against the registry --------------------------------------------

def test_every_route_declares_the_registrys_privileges(tmp_path):
    reg = registry()
    app, views = app_and_views(tmp_path)
    checked, exceptions_used = 0, set()
    for rule in app.url_map.iter_rules():
        cls = views[rule.rule]
        entity = getattr(cls, "entity", MISSING)
        assert entity is not MISSING, f"{rule.rule}: {cls.__name__} declares no registry entity"
        for method in sorted(rule.methods - {"OPTIONS"}):
            declared = cls.privileges["GET" if method == "HEAD" else method]  # the app checks HEAD as GET
            key = (rule.rule, method)
            if method == "HEAD" and key not in privileges.EXCEPTIONS:
                key = (rule.rule, "GET")  # a GET's deviation is its HEAD's too
            if key in privileges.EXCEPTIONS:
                exceptions_used.add(key)
                assert declared == privileges.EXCEPTIONS[key].privileges, key
                continue
            assert entity is not None, f"{key}: no registry entity and no EXCEPTIONS entry"
            if owner_rule(rule.rule) != rule.rule:  # an action: its resource's entity and POST
                assert entity == views[owner_rule(rule.rule)].entity, rule.rule
            want = expected(reg, entity, method, chain(rule.rule, views))
            assert declared == want, (rule.rule, method, entity, declared, want)
            checked += 1
    assert checked > 60
    assert exceptions_used == set(privileges.EXCEPTIONS), "EXCEPTIONS names a route or method that is gone"
    assert all(len(d.reason) > 40 for d in privileges.EXCEPTIONS.values())


# -- the matrix, live ------------------------------------------------------------------

def add_accounts(srv) -> None:
    st = Store(str(srv.state_dir / "racklet.db"))
    for user in ("operator", "viewer"):
        st.add_account(user, auth.hash_password(PASSWORDS[user]), ROLE_OF[user])


def login(srv, user: str):
    c = srv.anonymous()
    pw = PASSWORDS[user] or srv.password
    r = c.post(srv.url + "/redfish/v1/SessionService/Sessions", json={"UserName": user, "Password": pw})
    assert r.status_code == 201, r.text
    c.headers["X-Auth-Token"] = r.headers["X-Auth-Token"]
    return c, r.headers["Location"]


def links(doc, out: list[str]) -> None:
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in ("@odata.id", "target", "@Redfish.ActionInfo", "Uri", "TaskMonitor",
                     "MultipartHttpPushUri") and isinstance(v, str):
                if v.startswith("/redfish"):
                    out.append(v.split("#")[0].rstrip("/"))
            else:
                links(v, out)
    elif isinstance(doc, list):
        for v in doc:
            links(v, out)


def crawl(srv, client, adapter, limit: int = 600) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """Concrete URIs by URL rule: every link from /redfish/v1 (a few entries per log); and
    the resource types (of @odata.type) each rule serves."""
    from werkzeug.exceptions import MethodNotAllowed, NotFound
    # and the browser pages' shell and assets (resources/browser.py), which no JSON links
    todo = ["/redfish", "/redfish/v1", "/redfish/v1/odata", "/redfish/v1/$metadata",
            "/", "/static/racklet.js", "/static/racklet.css"]
    seen, by_rule, types = set(), {}, {}
    while todo and len(seen) < limit:
        uri = todo.pop(0)
        if uri in seen:
            continue
        seen.add(uri)
        try:
            rule, _ = adapter.match(uri, method="GET", return_rule=True)
        except MethodNotAllowed:  # an action target
            rule, _ = adapter.match(uri, method="POST", return_rule=True)
            by_rule.setdefault(rule.rule, []).append(uri)
            continue
        except NotFound:
            raise AssertionError(f"the service links {uri}, which it does not serve") from None
        by_rule.setdefault(rule.rule, []).append(uri)
        r = client.get(srv.url + uri)
        assert r.status_code == 200, (uri, r.status_code)
        if "json" in r.headers.get("Content-Type", ""):
            if "@odata.type" in r.json():
                types.setdefault(rule.rule, set()).add(r.json()["@odata.type"].lstrip("#").split(".")[0])
            found: list[str] = []
            links(r.json(), found)
            entries = [u for u in found if "/Entries/" in u]
            todo += [u for u in found if "/Entries/" not in u] + entries[:2]
    return by_rule, types


def allowed(role_privs: tuple[str, ...], needed, is_owner: bool) -> bool:
    """May a caller with these privileges pass? ConfigureSelf only reaches the caller's own
    account or session (the registry's meaning of it)."""
    if needed is None:
        return True
    return any(set(alt) <= set(role_privs) and (alt != ["ConfigureSelf"] or is_owner) for alt in needed)


def probe(client, method: str, url: str, rule: str):
    """A request that is refused, or harmless when allowed (400 or 404, nothing changes)."""
    if method in ("GET", "HEAD"):
        return client.request(method, url)
    if method == "DELETE":
        return client.delete(url)  # url names no member
    if "/Actions/" in rule:
        return client.post(url, json={"RackletNoSuchParameter": "x"})
    if rule.endswith("/update-multipart"):  # a push without its UpdateFile part
        return client.post(url, files={"UpdateParameters": (None, "{}", "application/json")})
    return client.request(method, url, json={})  # PATCH/PUT: NoOperation; POST: PropertyMissing


def snapshot(srv, client) -> dict:
    keep = {
        "/redfish/v1/AccountService/Accounts": ("Members",),
        "/redfish/v1/SessionService": ("SessionTimeout",),
        "/redfish/v1/Systems/Unit1": ("PowerState", "Boot", "IndicatorLED"),
        "/redfish/v1/Chassis/Rack/Controls/PowerLimit": ("SetPoint",),
        "/redfish/v1/Managers/RMC/NetworkProtocol": ("HostName",),
        "/redfish/v1/PowerEquipment/ElectricalBuses/Busbar/Outlets/Unit2": ("PowerState", "PowerOnDelaySeconds"),
    }
    out = {}
    for uri, props in keep.items():
        doc = client.get(srv.url + uri).json()
        out[uri] = {p: doc.get(p) for p in props}
    for acct in out["/redfish/v1/AccountService/Accounts"]["Members"]:
        doc = client.get(srv.url + acct["@odata.id"]).json()
        out[acct["@odata.id"]] = {p: doc.get(p) for p in ("UserName", "RoleId", "Enabled", "Locked")}
    return out


def test_the_privilege_matrix(fresh_server, tmp_path):
    started = time.monotonic()
    srv = fresh_server()
    add_accounts(srv)
    clients = {user: login(srv, user) for user in PASSWORDS}
    sessions = {loc.rstrip("/"): user for user, (_, loc) in clients.items()}
    admin = clients["admin"][0]
    app, views = app_and_views(tmp_path / "app")
    adapter = app.url_map.bind("localhost")
    accounts = {f"/redfish/v1/AccountService/Accounts/{a['id']}": a["username"]
                for a in Store(str(srv.state_dir / "racklet.db")).accounts()}
    owners = {**accounts, **sessions}
    # one subscription, so the crawl reaches EventDestination and its action
    Store(str(srv.state_dir / "racklet.db")).add_subscription(
        "admin", {"destination": "https://127.0.0.1:9/"}, time.time(), 16)
    # and one finished task, so it reaches Task and its TaskMonitor; a trusted signing key, so
    # that a push is refused for its body (400), not for the rack's lack of keys (409)
    from redfish_racklet import bundle
    _, pub = bundle.generate_key()
    Store(str(srv.state_dir / "racklet.db")).add_signing_key(
        bundle.key_id(bundle.load_public_key(pub)), pub.decode(), "test", time.time())
    Store(str(srv.state_dir / "racklet.db")).add_task("admin", "Firmware update", {}, [], time.time(),
                                                      state="Completed")
    before = snapshot(srv, admin)
    log_count = admin.get(srv.url + "/redfish/v1/Managers/RMC/LogServices/EventLog/Entries").json()[
        "Members@odata.count"]

    by_rule, types = crawl(srv, admin, adapter)
    rules = {r.rule: r for r in app.url_map.iter_rules()}
    unreached = {r for r in rules if r not in by_rule and "<" in r}
    assert not unreached, f"no concrete URI found for {sorted(unreached)}"
    # a route's declared entity is the type of what it serves (an action's is its resource's)
    wrong = {r: (views[r].entity, t) for r, t in types.items() if t != {views[r].entity}}
    assert not wrong, wrong

    callers = [(user, clients[user][0], auth.ROLES[ROLE_OF[user]]) for user in PASSWORDS]
    callers.append((None, srv.anonymous(), None))
    failures, probes = [], 0
    for rule_text, rule in sorted(rules.items()):
        cls = views[rule_text]
        concrete = by_rule.get(rule_text) or [rule_text]
        self_scoped = any(u in owners for u in concrete)
        for method in sorted(rule.methods - {"OPTIONS"}):
            needed = cls.privileges["GET" if method == "HEAD" else method]
            if method == "DELETE":  # a member that does not exist: allowed → 404
                targets = [concrete[0].rsplit("/", 1)[0] + "/" + NO_SUCH]
            elif self_scoped:  # every account and session: the caller's own and others'
                targets = concrete
            else:
                targets = concrete[:1 if method == "HEAD" else 2]
            for uri in targets:
                for user, client, privs in callers:
                    r = probe(client, method, srv.url + uri, rule_text)
                    probes += 1
                    owner = owners.get(uri)
                    if user is None:
                        want = "allowed" if needed is None else 401
                    elif allowed(privs, needed, owner == user or (method == "DELETE" and owner is None)):
                        want = "allowed"
                    else:
                        want = 403
                    got = r.status_code
                    if want == "allowed":
                        ok = got not in (401, 403) and (
                            got == 200 if method in ("GET", "HEAD")
                            else got == 404 if method == "DELETE" else got == 400)
                    else:
                        ok = got == want and (method == "HEAD" or
                                              ids(r) == ["NoValidSession" if want == 401 else "InsufficientPrivilege"])
                    if not ok:
                        failures.append((method, uri, user, got, want))
    assert not failures, "\n".join(map(str, failures))
    assert probes > 300

    # ConfigureSelf reaches only the caller's own session: another's is refused, not ended.
    admin_session = next(loc for loc, u in sessions.items() if u == "admin")
    for user in ("operator", "viewer"):
        r = clients[user][0].delete(srv.url + admin_session)
        assert r.status_code == 403 and ids(r) == ["InsufficientPrivilege"], user
    assert admin.get(srv.url + admin_session).status_code == 200
    # ... and never a role: a ReadOnly user may not make itself an Administrator.
    viewer_uri = next(u for u, name in accounts.items() if name == "viewer")
    if "PATCH" in rules["/redfish/v1/AccountService/Accounts/<account_id>"].methods:
        r = clients["viewer"][0].patch(srv.url + viewer_uri, json={"RoleId": "Administrator"})
        assert r.status_code == 403, r.text

    assert snapshot(srv, admin) == before
    after = admin.get(srv.url + "/redfish/v1/Managers/RMC/LogServices/EventLog/Entries").json()
    assert after["Members@odata.count"] >= log_count  # no ClearLog went through
    assert time.monotonic() - started < 90
