"""AccountService: accounts created, changed and deleted through the API, the password
policy, the last Administrator, privilege escalation, PasswordChangeRequired."""

from __future__ import annotations

import pytest
import requests

from .conftest import ids, module_server

ACCOUNTS = "/redfish/v1/AccountService/Accounts"
SERVICE = "/redfish/v1/AccountService"
SESSIONS = "/redfish/v1/SessionService/Sessions"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """A server of this module's own: the tests create and change accounts."""
    yield from module_server(tmp_path_factory, "accounts", workers=2)


def create(srv, name, password, role="ReadOnly", **extra) -> str:
    r = srv.client().post(srv.url + ACCOUNTS, json={"UserName": name, "Password": password, "RoleId": role,
                                                     **extra})
    assert r.status_code == 201, r.text
    return r.headers["Location"]


def delete(srv, uri) -> None:
    assert srv.client().delete(srv.url + uri).status_code == 204


def count(srv) -> int:
    return srv.get(ACCOUNTS).json()["Members@odata.count"]


def login(srv, name, password) -> requests.Response:
    return srv.anonymous().post(srv.url + SESSIONS, json={"UserName": name, "Password": password})


def test_create_read_change_delete(srv):
    c = srv.client()
    r = c.post(srv.url + ACCOUNTS, json={"UserName": "carol", "Password": "carol-password-1",
                                         "RoleId": "Operator"})
    assert r.status_code == 201
    uri = r.headers["Location"]
    assert r.json()["@odata.id"] == uri and r.json()["Password"] is None
    assert r.headers["ETag"] == r.json()["@odata.etag"]
    doc = c.get(srv.url + uri).json()
    assert (doc["UserName"], doc["RoleId"], doc["Enabled"], doc["Locked"], doc["Password"]) == \
        ("carol", "Operator", True, False, None)
    assert {"@odata.id": uri} in c.get(srv.url + ACCOUNTS).json()["Members"]
    carol = srv.client(auth=("carol", "carol-password-1"))
    assert carol.get(srv.url + "/redfish/v1/Systems").status_code == 200
    # PATCH with the ETag, as redfish_utilities does
    etag = c.get(srv.url + uri).headers["ETag"]
    r = c.patch(srv.url + uri, json={"RoleId": "ReadOnly", "UserName": "carol2"}, headers={"If-Match": etag})
    assert r.status_code == 200 and (r.json()["RoleId"], r.json()["UserName"]) == ("ReadOnly", "carol2")
    r = c.patch(srv.url + uri, json={"Enabled": False}, headers={"If-Match": etag})
    assert r.status_code == 412  # a stale ETag
    assert c.patch(srv.url + uri, json={"Enabled": False}).json()["Enabled"] is False
    assert srv.client(auth=("carol2", "carol-password-1")).get(srv.url + "/redfish/v1/Systems").status_code == 401
    assert c.patch(srv.url + uri, json={"Enabled": True, "Password": "carol-password-2"}).status_code == 200
    assert srv.client(auth=("carol2", "carol-password-2")).get(srv.url + "/redfish/v1/Systems").status_code == 200
    delete(srv, uri)
    r = c.get(srv.url + uri)
    assert r.status_code == 404 and ids(r) == ["ResourceNotFound"]
    assert c.delete(srv.url + uri).status_code == 404
    # ids are not reused: a new account does not inherit the deleted one's URI
    again = create(srv, "carol", "carol-password-1")
    assert again != uri
    delete(srv, again)


GOOD = {"UserName": "dave", "Password": "dave-password-1", "RoleId": "ReadOnly"}


@pytest.mark.parametrize("change,status,msg_ids", [
    ({"UserName": None}, 400, ["PropertyMissing"]),
    ({"Password": None}, 400, ["PropertyMissing"]),
    ({"RoleId": None}, 400, ["PropertyMissing"]),
    ({"UserName": 5}, 400, ["PropertyValueTypeError"]),
    ({"Password": 123456789012345}, 400, ["PropertyValueTypeError"]),
    ({"RoleId": ["Administrator"]}, 400, ["PropertyValueTypeError"]),
    ({"Enabled": "yes"}, 400, ["PropertyValueTypeError"]),
    ({"PasswordChangeRequired": 1}, 400, ["PropertyValueTypeError"]),
    ({"RoleId": "root"}, 400, ["PropertyValueNotInList"]),
    ({"RoleId": "administrator"}, 400, ["PropertyValueNotInList"]),
    ({"AccountTypes": ["Redfish", "SNMP"]}, 400, ["PropertyValueNotInList"]),
    ({"Locked": True}, 400, ["PropertyValueNotInList"]),
    ({"Bogus": 1}, 400, ["PropertyUnknown"]),
    ({"Id": "99"}, 400, ["PropertyNotWritable"]),
    ({"UserName": ""}, 400, ["PropertyValueFormatError"]),
    ({"UserName": "a" * 33}, 400, ["PropertyValueFormatError"]),
    ({"UserName": "bad name"}, 400, ["PropertyValueFormatError"]),
    ({"UserName": "dave/../admin"}, 400, ["PropertyValueFormatError"]),
    ({"UserName": "ümlaut"}, 400, ["PropertyValueFormatError"]),
    ({"Password": ""}, 400, ["PropertyValueFormatError"]),
    ({"Password": "short-pw1"}, 400, ["PropertyValueFormatError"]),
    ({"Password": "x" * 129}, 400, ["PropertyValueFormatError"]),
    ({"UserName": "dave-the-user", "Password": "Dave-The-User"}, 400, ["PropertyValueFormatError"]),
    ({"UserName": 5, "RoleId": "root", "Bogus": 1}, 400,
     ["PropertyValueTypeError", "PropertyValueNotInList", "PropertyUnknown"]),
])
def test_create_refusals(srv, change, status, msg_ids):
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    before = count(srv)
    r = srv.client().post(srv.url + ACCOUNTS, json=body)
    assert r.status_code == status, r.text
    assert sorted(ids(r)) == sorted(msg_ids)
    if "Password" in body and isinstance(body["Password"], str) and len(body["Password"]) > 3:
        assert body["Password"] not in r.text  # a refused password is never echoed
    assert count(srv) == before


def test_create_refusals_of_the_body_itself(srv):
    c = srv.client()
    before = count(srv)
    r = c.post(srv.url + ACCOUNTS, data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and ids(r) == ["MalformedJSON"]
    r = c.post(srv.url + ACCOUNTS, json=[GOOD])
    assert r.status_code == 400
    r = c.post(srv.url + ACCOUNTS, data="x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert count(srv) == before


def test_duplicate_user_name(srv):
    uri = create(srv, "erin", "erin-password-1")
    before = count(srv)
    r = srv.client().post(srv.url + ACCOUNTS, json={"UserName": "erin", "Password": "other-password-1",
                                                     "RoleId": "Administrator"})
    assert r.status_code == 409 and ids(r) == ["ResourceAlreadyExists"]
    assert count(srv) == before
    other = create(srv, "frank", "frank-password-1")
    r = srv.client().patch(srv.url + other, json={"UserName": "erin"})
    assert r.status_code == 409 and ids(r) == ["ResourceAlreadyExists"]
    assert srv.get(other).json()["UserName"] == "frank"
    # the old password still works for erin (the refused POST changed nothing)
    assert srv.client(auth=("erin", "erin-password-1")).get(srv.url + uri).status_code == 200
    delete(srv, uri)
    delete(srv, other)


@pytest.mark.parametrize("body,msg_ids", [
    ({"Bogus": 1}, ["PropertyUnknown"]),
    ({"Password": "pw", "Bogus": 1}, ["PropertyValueFormatError", "PropertyUnknown"]),
    ({"Id": "7"}, ["PropertyNotWritable"]),
    ({"AccountTypes": ["Redfish"]}, ["PropertyNotWritable"]),
    ({"Locked": True}, ["PropertyValueNotInList"]),
    ({"Locked": "false"}, ["PropertyValueTypeError"]),
    ({"Enabled": None}, ["PropertyValueTypeError"]),
    ({"RoleId": "Nobody"}, ["PropertyValueNotInList"]),
    ({"UserName": "x y"}, ["PropertyValueFormatError"]),
    ({"Password": None}, ["PropertyValueTypeError"]),
    ({"Password": "gina"}, ["PropertyValueFormatError"]),
    ({"UserName": "gina2", "Password": "gina2"}, ["PropertyValueFormatError"]),
    ({"@odata.id": "/redfish/v1/x"}, ["NoOperation"]),
])
def test_patch_refusals_change_nothing(srv, body, msg_ids):
    uri = create(srv, "gina", "gina-password-1")
    try:
        c = srv.client()
        before = c.get(srv.url + uri)
        r = c.patch(srv.url + uri, json=body)
        assert r.status_code == 400, r.text
        assert sorted(ids(r)) == sorted(msg_ids)
        after = c.get(srv.url + uri)
        assert after.headers["ETag"] == before.headers["ETag"]
        assert srv.client(auth=("gina", "gina-password-1")).get(srv.url + uri).status_code == 200
    finally:
        delete(srv, uri)


def test_last_administrator_is_protected(srv):
    c = srv.client()
    admin = ACCOUNTS + "/1"
    r = c.delete(srv.url + admin)
    assert r.status_code == 409 and ids(r) == ["ResourceCannotBeDeleted"]
    r = c.patch(srv.url + admin, json={"Enabled": False})
    assert r.status_code == 409 and ids(r) == ["PropertyValueResourceConflict"]
    r = c.patch(srv.url + admin, json={"RoleId": "Operator"})
    assert r.status_code == 409 and ids(r) == ["PropertyValueResourceConflict"]
    doc = c.get(srv.url + admin).json()
    assert (doc["Enabled"], doc["RoleId"]) == (True, "Administrator")
    # with a second enabled Administrator, the first may step down (and back)
    second = create(srv, "helen", "helen-password-1", "Administrator", Enabled=False)
    r = c.patch(srv.url + admin, json={"RoleId": "Operator"})
    assert r.status_code == 409  # the second one is disabled: it does not count
    assert c.patch(srv.url + second, json={"Enabled": True}).status_code == 200
    helen = srv.client(auth=("helen", "helen-password-1"))
    assert c.patch(srv.url + admin, json={"RoleId": "Operator"}).status_code == 200
    r = helen.delete(srv.url + second)  # now helen is the last one
    assert r.status_code == 409
    assert helen.patch(srv.url + admin, json={"RoleId": "Administrator"}).status_code == 200
    assert c.get(srv.url + admin).json()["RoleId"] == "Administrator"
    delete(srv, second)


@pytest.mark.parametrize("role", ["ReadOnly", "Operator"])
def test_no_escalation_from_a_lesser_role(srv, role):
    name = f"ivan{role.lower()}"
    uri = create(srv, name, "ivan-password-1", role)
    me = srv.client(auth=(name, "ivan-password-1"))
    try:
        for body in ({"RoleId": "Administrator"}, {"Enabled": True}, {"Locked": False},
                     {"UserName": "ivan-admin"}, {"PasswordChangeRequired": False},
                     {"Password": "ivan-password-2", "RoleId": "Administrator"}):
            r = me.patch(srv.url + uri, json=body)
            assert r.status_code == 403 and ids(r) == ["InsufficientPrivilege"], body
        doc = srv.get(uri).json()
        assert (doc["RoleId"], doc["UserName"]) == (role, name)
        assert me.get(srv.url + uri).status_code == 200  # the password did not change either
        # nor on anyone else's account, nor creating or deleting accounts, nor the policy
        r = me.patch(srv.url + ACCOUNTS + "/1", json={"Password": "stolen-password-1"})
        assert r.status_code == 403
        assert srv.client().get(srv.url + ACCOUNTS + "/1").status_code == 200
        r = me.post(srv.url + ACCOUNTS, json={"UserName": "mallory", "Password": "mallory-password",
                                              "RoleId": "Administrator"})
        assert r.status_code == 403 and ids(r) == ["InsufficientPrivilege"]
        assert me.delete(srv.url + ACCOUNTS + "/1").status_code == 403
        assert me.patch(srv.url + SERVICE, json={"MinPasswordLength": 8}).status_code == 403
        assert srv.get(SERVICE).json()["MinPasswordLength"] == 12
        # its own password: yes (ConfigureSelf, the registry's Password override)
        r = me.patch(srv.url + uri, json={"Password": "ivan-password-2"})
        assert r.status_code == 200 and r.json()["Password"] is None
        assert srv.client(auth=(name, "ivan-password-1")).get(srv.url + uri).status_code == 401
        assert srv.client(auth=(name, "ivan-password-2")).get(srv.url + uri).status_code == 200
    finally:
        delete(srv, uri)


def test_roles_are_the_three_predefined_ones(srv):
    c = srv.client()
    roles = c.get(srv.url + "/redfish/v1/AccountService/Roles").json()
    assert roles["Members@odata.count"] == 3
    assert c.post(srv.url + "/redfish/v1/AccountService/Roles", json={"RoleId": "X"}).status_code == 405
    r = c.patch(srv.url + "/redfish/v1/AccountService/Roles/ReadOnly",
                json={"AssignedPrivileges": ["Login", "ConfigureManager"]})
    assert r.status_code == 405
    assert c.get(srv.url + "/redfish/v1/AccountService/Roles/ReadOnly").json()["AssignedPrivileges"] == \
        ["Login", "ConfigureSelf"]


def test_password_change_required_flow(srv):
    uri = create(srv, "judy", "judy-password-1", "Operator", PasswordChangeRequired=True)
    assert srv.get(uri).json()["PasswordChangeRequired"] is True
    # she may log in; the answer says what to do
    r = login(srv, "judy", "judy-password-1")
    assert r.status_code == 201
    info = r.json()["@Message.ExtendedInfo"]
    assert info[0]["MessageId"].endswith("PasswordChangeRequired") and info[0]["MessageArgs"] == [uri]
    h = {"X-Auth-Token": r.headers["X-Auth-Token"]}
    own_session = r.headers["Location"]
    anon = srv.anonymous()
    basic = srv.client(auth=("judy", "judy-password-1"))
    for client, kw in ((anon, {"headers": h}), (basic, {})):
        for method, path in (("GET", "/redfish/v1/Systems"), ("GET", SESSIONS), ("GET", ACCOUNTS),
                             ("POST", "/redfish/v1/Systems/Unit1/Actions/ComputerSystem.Reset")):
            r = client.request(method, srv.url + path, json={"ResetType": "On"} if method == "POST" else None,
                               **kw)
            assert r.status_code == 403 and ids(r) == ["PasswordChangeRequired"], (method, path)
            assert r.json()["error"]["@Message.ExtendedInfo"][0]["MessageArgs"] == [uri]
        assert client.get(srv.url + uri, **kw).status_code == 200
        # public resources stay public
        assert client.get(srv.url + "/redfish/v1", **kw).status_code == 200
        # only the password may change
        r = client.patch(srv.url + uri, json={"RoleId": "Operator"}, **kw)
        assert r.status_code == 403 and ids(r) == ["PasswordChangeRequired"]
    assert anon.get(srv.url + own_session, headers=h).status_code == 200
    r = anon.patch(srv.url + uri, json={"Password": "judy-password-2"}, headers=h)
    assert r.status_code == 200 and r.json()["PasswordChangeRequired"] is False
    # the session that changed the password goes on, now with full access
    assert anon.get(srv.url + "/redfish/v1/Systems", headers=h).status_code == 200
    assert anon.delete(srv.url + own_session, headers=h).status_code == 204  # logout
    # an administrator may require it again, with a new one-time password
    r = srv.client().patch(srv.url + uri, json={"Password": "judy-onetime-3", "PasswordChangeRequired": True})
    assert r.status_code == 200 and r.json()["PasswordChangeRequired"] is True
    r = srv.client(auth=("judy", "judy-onetime-3")).get(srv.url + "/redfish/v1/Systems")
    assert r.status_code == 403 and ids(r) == ["PasswordChangeRequired"]
    delete(srv, uri)


def test_policy_settings(srv):
    c = srv.client()
    before = c.get(srv.url + SERVICE).json()
    for body, msg_id in (({"MinPasswordLength": 7}, "PropertyValueOutOfRange"),
                         ({"MinPasswordLength": 0}, "PropertyValueOutOfRange"),
                         ({"MaxPasswordLength": 129}, "PropertyValueOutOfRange"),
                         ({"MinPasswordLength": "12"}, "PropertyValueTypeError"),
                         ({"MinPasswordLength": 20, "MaxPasswordLength": 16}, "PropertyValueConflict"),
                         ({"MaxPasswordLength": 10}, "PropertyValueConflict"),
                         ({"AccountLockoutThreshold": -1}, "PropertyValueOutOfRange"),
                         ({"AccountLockoutThreshold": None}, "PropertyValueTypeError"),
                         ({"AccountLockoutDuration": 60, "AccountLockoutCounterResetAfter": 120},
                          "PropertyValueConflict"),
                         ({"AccountLockoutCounterResetEnabled": "true"}, "PropertyValueTypeError"),
                         ({"ServiceEnabled": False}, "PropertyNotWritable"),
                         ({"Bogus": 1}, "PropertyUnknown")):
        r = c.patch(srv.url + SERVICE, json=body)
        assert r.status_code == 400 and msg_id in ids(r), (body, r.text)
    assert c.get(srv.url + SERVICE).json() == before
    r = c.patch(srv.url + SERVICE, json={"MinPasswordLength": 16, "MaxPasswordLength": 64})
    assert r.status_code == 200 and (r.json()["MinPasswordLength"], r.json()["MaxPasswordLength"]) == (16, 64)
    r = c.post(srv.url + ACCOUNTS, json={"UserName": "kim", "Password": "kim-password-1", "RoleId": "ReadOnly"})
    assert r.status_code == 400 and ids(r) == ["PropertyValueFormatError"]
    assert "16..64" in r.json()["error"]["@Message.ExtendedInfo"][0]["Resolution"]
    uri = create(srv, "kim", "kim-password-long-1")
    delete(srv, uri)
    r = c.patch(srv.url + SERVICE, json={"AccountLockoutDuration": 0})  # 0: no lockout (schema)
    assert r.status_code == 200
    assert c.patch(srv.url + SERVICE, json={k: before[k] for k in (
        "MinPasswordLength", "MaxPasswordLength", "AccountLockoutDuration")}).status_code == 200


def test_account_cap(srv):
    from redfish_racklet.store import MAX_ACCOUNTS
    made = []
    try:
        while count(srv) < MAX_ACCOUNTS:
            made.append(create(srv, f"cap{len(made)}", "cap-password-12"))
        r = srv.client().post(srv.url + ACCOUNTS, json={"UserName": "onetoomany", "Password": "cap-password-12",
                                                         "RoleId": "ReadOnly"})
        assert r.status_code == 400 and ids(r) == ["CreateLimitReachedForResource"]
        assert count(srv) == MAX_ACCOUNTS
    finally:
        for uri in made:
            delete(srv, uri)


def test_conditional_writes_race_one_winner(srv):
    """Simultaneous PATCHes with the same If-Match: one wins, the others get 412 (the
    ETag is re-checked inside the store's write transaction)."""
    import threading
    uri = create(srv, "lena", "lena-password-1")
    try:
        for role in ("Operator", "ReadOnly", "Administrator"):
            etag = srv.get(uri).headers["ETag"]
            clients = [srv.client() for _ in range(6)]
            for c in clients:
                c.get(srv.url + uri)  # warm the connections
            barrier, statuses = threading.Barrier(len(clients)), []

            def write(c):
                barrier.wait()
                statuses.append(c.patch(srv.url + uri, json={"RoleId": role},
                                        headers={"If-Match": etag}).status_code)
            threads = [threading.Thread(target=write, args=(c,)) for c in clients]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert sorted(statuses) == [200] + [412] * (len(clients) - 1), statuses
    finally:
        delete(srv, uri)


def test_racing_account_service_patches_with_one_etag_only_one_wins(fresh_server):
    """If-Match is re-checked inside the write transaction: of four PATCHes sent at once
    with the same ETag, exactly one applies; the others get 412 and change nothing."""
    import concurrent.futures

    srv = fresh_server(workers=2)
    c = srv.client()
    uri = srv.url + "/redfish/v1/AccountService"
    etag = c.get(uri).headers["ETag"]

    def patch(n):
        s = srv.client()
        return s.patch(uri, json={"AccountLockoutThreshold": 30 + n}, headers={"If-Match": etag}).status_code

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(patch, range(4)))
    assert codes.count(200) == 1 and codes.count(412) == 3, codes
    assert 30 <= c.get(uri).json()["AccountLockoutThreshold"] <= 33
