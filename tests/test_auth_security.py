"""Attacks on authentication: brute force and lockout, what a locked-out attacker can
learn, the audit trail, session caps, visibility and tokens, and the HTTP Basic cache."""

from __future__ import annotations

import time

import pytest

from redfish_racklet import auth
from redfish_racklet.store import MAX_SESSIONS, MAX_SESSIONS_PER_USER, Store

from .conftest import ids, module_server

ACCOUNTS = "/redfish/v1/AccountService/Accounts"
SERVICE = "/redfish/v1/AccountService"
SESSIONS = "/redfish/v1/SessionService/Sessions"
SYSTEMS = "/redfish/v1/Systems"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    yield from module_server(tmp_path_factory, "authsec", workers=2)


def create(srv, name, password="user-password-12", role="ReadOnly") -> str:
    r = srv.client().post(srv.url + ACCOUNTS, json={"UserName": name, "Password": password, "RoleId": role})
    assert r.status_code == 201, r.text
    return r.headers["Location"]


def login(srv, name, password="user-password-12"):
    return srv.anonymous().post(srv.url + SESSIONS, json={"UserName": name, "Password": password})


def token(srv, name, password="user-password-12") -> tuple[dict, str]:
    r = login(srv, name, password)
    assert r.status_code == 201, r.text
    return {"X-Auth-Token": r.headers["X-Auth-Token"]}, r.headers["Location"]


def audit(srv) -> list[tuple[str, list]]:
    """The AccountSecurity entries of the event log: (message key, args)."""
    return [(e["message_id"].rsplit(".", 1)[-1], e["args"])
            for e in Store(str(srv.state_dir / "racklet.db")).log_entries()
            if e["message_id"].startswith("AccountSecurity.")]


def policy(srv, **settings):
    r = srv.client().patch(srv.url + SERVICE, json=settings)
    assert r.status_code == 200, r.text


def comparable(r) -> tuple:
    """What a client sees of a refusal, minus what differs between any two responses."""
    headers = {k: v for k, v in r.headers.items() if k not in ("Date", "Content-Length")}
    return r.status_code, r.content, headers


def test_lockout_engages_and_expires(srv):
    policy(srv, AccountLockoutThreshold=3, AccountLockoutDuration=2, AccountLockoutCounterResetAfter=2)
    uri = create(srv, "eve")
    try:
        bad = srv.client(auth=("eve", "wrong-password-1"))
        for _ in range(2):
            assert bad.get(srv.url + SYSTEMS).status_code == 401
        assert srv.get(uri).json()["Locked"] is False
        assert login(srv, "eve", "wrong-password-2").status_code == 401  # session logins count too
        assert srv.get(uri).json()["Locked"] is True
        # the right password no longer opens it, by Basic or by session
        assert srv.client(auth=("eve", "user-password-12")).get(srv.url + SYSTEMS).status_code == 401
        assert login(srv, "eve").status_code == 401
        assert ("AccountLocked", ["eve"]) in audit(srv)
        # Duration passes: open again, without an administrator
        time.sleep(2.1)
        assert srv.client(auth=("eve", "user-password-12")).get(srv.url + SYSTEMS).status_code == 200
        assert srv.get(uri).json()["Locked"] is False
        assert ("AccountLockoutExpired", ["eve"]) in audit(srv)
        # a good login resets the count: two failures, a success, two failures: not locked
        for _ in range(2):
            bad.get(srv.url + SYSTEMS)
        assert srv.client(auth=("eve", "user-password-12")).get(srv.url + SYSTEMS).status_code == 200
        for _ in range(2):
            bad.get(srv.url + SYSTEMS)
        assert srv.get(uri).json()["Locked"] is False
    finally:
        srv.client().delete(srv.url + uri)
        policy(srv, AccountLockoutThreshold=20, AccountLockoutDuration=600, AccountLockoutCounterResetAfter=600)


def test_locked_answers_exactly_like_a_bad_password(srv):
    policy(srv, AccountLockoutThreshold=3, AccountLockoutCounterResetEnabled=False)  # locked until unlocked
    locked, control = create(srv, "oscar"), create(srv, "peggy")
    try:
        for _ in range(3):
            srv.client(auth=("oscar", "wrong-password-1")).get(srv.url + SYSTEMS)
        assert srv.get(locked).json()["Locked"] is True
        # Basic: the right password of a locked account vs a wrong password of an open one
        a = srv.client(auth=("oscar", "user-password-12")).get(srv.url + SYSTEMS)
        b = srv.client(auth=("peggy", "wrong-password-1")).get(srv.url + SYSTEMS)
        c = srv.client(auth=("nobody-here", "wrong-password-1")).get(srv.url + SYSTEMS)
        assert comparable(a) == comparable(b) == comparable(c)
        assert a.status_code == 401 and ids(a) == ["NoValidSession"]
        # session login: the same
        a, b = login(srv, "oscar"), login(srv, "peggy", "wrong-password-1")
        assert comparable(a) == comparable(b) and a.status_code == 401
        assert srv.get(control).json()["Locked"] is False  # two failures of three
        # no timer: locked until an administrator unlocks
        r = srv.client().patch(srv.url + locked, json={"Locked": False})
        assert r.status_code == 200 and r.json()["Locked"] is False
        assert ("AccountUnlocked", ["oscar"]) in audit(srv)
        assert srv.client(auth=("oscar", "user-password-12")).get(srv.url + SYSTEMS).status_code == 200
    finally:
        for uri in (locked, control):
            srv.client().delete(srv.url + uri)
        policy(srv, AccountLockoutThreshold=20, AccountLockoutCounterResetEnabled=True)


def test_audit_trail_and_no_password_in_it(srv):
    before = len(audit(srv))
    uri = create(srv, "quinn")
    c = srv.client()
    srv.client(auth=("quinn", "quinn-typo-password")).get(srv.url + SYSTEMS)
    srv.client(auth=("quinn", "user-password-12")).get(srv.url + SYSTEMS)  # Basic: no SuccessfulLogin
    h, _ = token(srv, "quinn")
    c.patch(srv.url + uri, json={"Password": "quinn-new-password"})
    c.patch(srv.url + uri, json={"RoleId": "Operator"})
    c.patch(srv.url + uri, json={"Enabled": False})
    c.patch(srv.url + uri, json={"Enabled": True})
    c.delete(srv.url + uri)
    entries = audit(srv)[before:]
    keys = [k for k, _ in entries]
    assert keys == ["AccountCreated", "InvalidCredentials", "SuccessfulLogin", "PasswordModified",
                    "ManagerAccountRoleChanged", "AccountDisabled", "AccountEnabled", "AccountRemoved"], keys
    assert entries[1][1][0] == "quinn" and entries[1][1][1].startswith("HTTP Basic")
    assert entries[2][1] == ["quinn", "127.0.0.1", "Redfish session"]
    assert entries[4][1] == ["quinn", "ReadOnly", "Operator"]
    text = repr(Store(str(srv.state_dir / "racklet.db")).log_entries())
    for secret in ("quinn-typo-password", "user-password-12", "quinn-new-password"):
        assert secret not in text
        assert secret not in srv.log.read_text()
    # the event log carries the registry's text
    entry = [e for e in Store(str(srv.state_dir / "racklet.db")).log_entries()
             if e["message_id"] == "AccountSecurity.1.0.1.AccountRemoved"][-1]
    assert entry["message"] == "Account 'quinn' was removed."


def test_session_caps(srv):
    uris = [create(srv, f"sam{i}") for i in range(MAX_SESSIONS // MAX_SESSIONS_PER_USER + 1)]
    try:
        made = [token(srv, "sam0")[0] for _ in range(MAX_SESSIONS_PER_USER)]
        r = login(srv, "sam0")
        assert r.status_code == 503 and ids(r) == ["SessionLimitExceeded"]
        assert srv.anonymous().get(srv.url + SYSTEMS, headers=made[0]).status_code == 200
        for i in range(1, MAX_SESSIONS // MAX_SESSIONS_PER_USER):
            made += [token(srv, f"sam{i}")[0] for _ in range(MAX_SESSIONS_PER_USER)]
        # the service is full: nobody else gets one (the admin uses Basic meanwhile)
        r = login(srv, f"sam{len(uris) - 1}")
        assert r.status_code == 503 and ids(r) == ["SessionLimitExceeded"]
        assert srv.get(SYSTEMS).status_code == 200
    finally:
        for uri in uris:  # deleting an account ends its sessions
            srv.client().delete(srv.url + uri)
    assert srv.get(SESSIONS).json()["Members@odata.count"] == 0


def test_a_session_is_seen_and_ended_by_its_owner_and_administrators_only(srv):
    uris = [create(srv, "tina"), create(srv, "ursula", role="Operator")]
    try:
        tina, tina_session = token(srv, "tina")
        ursula, _ = token(srv, "ursula")
        anon = srv.anonymous()
        listed = anon.get(srv.url + SESSIONS, headers=ursula).json()["Members"]
        assert {"@odata.id": tina_session} not in listed
        for method in ("GET", "DELETE"):
            r = anon.request(method, srv.url + tina_session, headers=ursula)
            assert r.status_code == 403 and ids(r) == ["InsufficientPrivilege"]
        assert anon.get(srv.url + SYSTEMS, headers=tina).status_code == 200
        assert anon.get(srv.url + tina_session, headers=tina).json()["UserName"] == "tina"
        assert {"@odata.id": tina_session} in srv.get(SESSIONS).json()["Members"]  # the admin
        assert srv.client().delete(srv.url + tina_session).status_code == 204
        assert anon.get(srv.url + SYSTEMS, headers=tina).status_code == 401
        # logout: the owner ends its own
        h, own = token(srv, "tina")
        assert anon.delete(srv.url + own, headers=h).status_code == 204
        assert anon.get(srv.url + SYSTEMS, headers=h).status_code == 401
    finally:
        for uri in uris:
            srv.client().delete(srv.url + uri)


def test_tokens_are_random_and_not_stored(srv):
    uri = create(srv, "victor")
    try:
        tokens = [login(srv, "victor").headers["X-Auth-Token"] for _ in range(8)]
        assert len(set(tokens)) == len(tokens)
        assert all(len(bytes.fromhex(t)) == 32 for t in tokens)  # 256 bits (>= 128 asked), in hex
        db = (srv.state_dir / "racklet.db").read_bytes()
        assert not any(t.encode() in db for t in tokens)
        # guessing: a token that differs by one character is no token
        t = tokens[0]
        forged = t[:-1] + ("A" if t[-1] != "A" else "B")
        assert srv.anonymous().get(srv.url + SYSTEMS, headers={"X-Auth-Token": forged}).status_code == 401
    finally:
        srv.client().delete(srv.url + uri)


def test_disabling_deleting_or_changing_an_account_ends_its_sessions(srv):
    uri = create(srv, "wendy")
    anon = srv.anonymous()
    h, _ = token(srv, "wendy")
    c = srv.client()
    assert c.patch(srv.url + uri, json={"Enabled": False}).status_code == 200
    assert anon.get(srv.url + SYSTEMS, headers=h).status_code == 401
    assert c.patch(srv.url + uri, json={"Enabled": True}).status_code == 200
    assert anon.get(srv.url + SYSTEMS, headers=h).status_code == 401  # gone, not suspended
    # her own password change ends her other sessions, not the one she used
    h1, _ = token(srv, "wendy")
    h2, _ = token(srv, "wendy")
    assert anon.patch(srv.url + uri, json={"Password": "wendy-password-2"}, headers=h1).status_code == 200
    assert anon.get(srv.url + SYSTEMS, headers=h1).status_code == 200
    assert anon.get(srv.url + SYSTEMS, headers=h2).status_code == 401
    # an administrator's change of her password or role ends them all
    assert c.patch(srv.url + uri, json={"RoleId": "Operator"}).status_code == 200
    assert anon.get(srv.url + SYSTEMS, headers=h1).status_code == 401
    h3, _ = token(srv, "wendy", "wendy-password-2")
    assert c.patch(srv.url + uri, json={"Password": "wendy-password-3"}).status_code == 200
    assert anon.get(srv.url + SYSTEMS, headers=h3).status_code == 401
    # a rename keeps them (the sessions follow the account)
    h4, _ = token(srv, "wendy", "wendy-password-3")
    assert c.patch(srv.url + uri, json={"UserName": "wendy2"}).status_code == 200
    assert anon.get(srv.url + SYSTEMS, headers=h4).status_code == 200
    assert c.delete(srv.url + uri).status_code == 204
    assert anon.get(srv.url + SYSTEMS, headers=h4).status_code == 401


def test_basic_cache_follows_password_changes_and_disabling(srv):
    uri = create(srv, "xena")
    c = srv.client()
    xena = srv.client(auth=("xena", "user-password-12"))
    for _ in range(4):  # every worker has seen (and cached) the good credentials
        assert xena.get(srv.url + SYSTEMS).status_code == 200
    assert c.patch(srv.url + uri, json={"Password": "xena-password-2"}).status_code == 200
    for _ in range(4):
        assert xena.get(srv.url + SYSTEMS).status_code == 401
    xena.auth = ("xena", "xena-password-2")
    for _ in range(4):
        assert xena.get(srv.url + SYSTEMS).status_code == 200
    assert c.patch(srv.url + uri, json={"Enabled": False}).status_code == 200
    for _ in range(4):
        assert xena.get(srv.url + SYSTEMS).status_code == 401
    assert c.patch(srv.url + uri, json={"Enabled": True, "RoleId": "Operator"}).status_code == 200
    r = xena.post(srv.url + "/redfish/v1/Systems/Unit5/Actions/ComputerSystem.Reset", json={"ResetType": "On"})
    assert r.status_code != 403  # the new role counts at once, cache or not
    c.delete(srv.url + uri)
    assert xena.get(srv.url + SYSTEMS).status_code == 401


# -- the pieces, without a server ------------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    st = Store(str(tmp_path / "racklet.db"))
    st.create()
    st.add_account("admin", auth.hash_password("admin-password-1"), "Administrator")
    return st


def test_basic_cache_unit(store):
    now = [0.0]
    cache = auth.BasicCache(ttl=60, clock=lambda: now[0])
    assert auth.login(store, "admin", "admin-password-1", cache=cache) is not None
    acct = store.account_by_name("admin")
    assert cache.hit("admin", "admin-password-1", acct)
    assert not cache.hit("admin", "admin-password-2", acct)
    assert not cache.hit("admin2", "admin-password-1", acct)
    # failures are never cached
    assert auth.login(store, "admin", "wrong-password-1", cache=cache) is None
    assert len(cache._entries) == 1
    # the entry is tied to the stored hash: a new password (new salt) misses at once
    store.change_account(acct["id"], {"password_hash": auth.hash_password("admin-password-1")})
    assert not cache.hit("admin", "admin-password-1", store.account_by_name("admin"))
    # and it expires
    assert auth.login(store, "admin", "admin-password-1", cache=cache) is not None
    assert cache.hit("admin", "admin-password-1", store.account_by_name("admin"))
    now[0] = 61
    assert not cache.hit("admin", "admin-password-1", store.account_by_name("admin"))
    # the key is the HMAC, not the password
    assert not any(b"admin-password-1" in k for k in cache._entries)


def test_store_migration_adds_the_new_columns(tmp_path):
    import sqlite3
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)  # the accounts table as the first release made it
    db.execute("CREATE TABLE accounts(id TEXT PRIMARY KEY, username TEXT UNIQUE NOT NULL, "
               "password_hash TEXT NOT NULL, role_id TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1, "
               "locked INTEGER NOT NULL DEFAULT 0, password_change_required INTEGER NOT NULL DEFAULT 0)")
    db.execute("INSERT INTO accounts(id, username, password_hash, role_id) VALUES('1', 'admin', 'x', "
               "'Administrator')")
    db.commit()
    db.close()
    st = Store(str(path))
    st.create()
    st.create()  # twice: idempotent
    acct = st.account("1")
    assert (acct["failed_logins"], acct["last_failure"], acct["locked_since"]) == (0, 0, 0)
    assert st.record_login_failure("1", 100.0, 60, 1) is True


def test_lockout_counter_window(store):
    acct_id = store.account_by_name("admin")["id"]
    assert not store.record_login_failure(acct_id, 0.0, 10, 3)
    assert not store.record_login_failure(acct_id, 5.0, 10, 3)
    assert not store.record_login_failure(acct_id, 20.0, 10, 3)  # 15 s after the last: counts from 1
    assert not store.record_login_failure(acct_id, 25.0, 10, 3)
    assert store.record_login_failure(acct_id, 30.0, 10, 3)
    assert store.account(acct_id)["locked_since"] == 30.0
    assert not store.record_login_failure(acct_id, 31.0, 10, 3)  # already locked: not again


def test_password_policy_unit():
    assert auth.password_problem("a-good-password") is None
    assert auth.password_problem("") and auth.password_problem(None)
    assert auth.password_problem("x" * 129)
    assert auth.password_problem("Admin-Account", "admin-account")
    p = auth.AccountPolicy(min_password=8, max_password=10)
    assert auth.password_problem("12345678", policy=p) is None
    assert auth.password_problem("12345678901", policy=p)
    assert auth.username_problem("a.b_c-9") is None
    for bad in ("", "a" * 33, "a b", "a/b", "a:b", 5, None):
        assert auth.username_problem(bad)


def test_a_flood_of_wrong_passwords_does_not_starve_token_requests(fresh_server):
    """Bounded: 32 concurrent wrong-password requests against one worker. Each either is
    refused (401) or told to come back (503 + Retry-After); meanwhile a token client
    keeps being served, and afterwards a right password still works."""
    import concurrent.futures

    srv = fresh_server(workers=1)
    c = srv.client()
    token = c.post(srv.url + "/redfish/v1/SessionService/Sessions",
                   json={"UserName": "admin", "Password": srv.password}).headers["X-Auth-Token"]
    tok = srv.client(auth=None)
    tok.headers["X-Auth-Token"] = token

    def wrong(i):
        s = srv.client(auth=("nobody", f"wrong-password-{i}"))
        r = s.get(srv.url + SYSTEMS)
        return r.status_code, r.headers.get("Retry-After")

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        flood = [pool.submit(wrong, i) for i in range(32)]
        served = [tok.get(srv.url + SYSTEMS).status_code for _ in range(20)]
        results = [f.result() for f in flood]
    assert served == [200] * 20
    assert {s for s, _ in results} <= {401, 503}
    assert all(ra == "1" for s, ra in results if s == 503)
    assert c.get(srv.url + SYSTEMS).status_code == 200  # Basic with the right password
