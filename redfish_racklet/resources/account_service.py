"""AccountService: the account policy, accounts (create, change, delete) and the predefined roles.

Rules (docs/security.md "Accounts and passwords"): passwords are checked against the
policy and stored only as scrypt hashes, never returned or echoed; the last enabled
Administrator cannot be deleted, disabled or demoted; a user without ConfigureUsers may
change its own password and nothing else (the privilege registry's Password override);
every change is audited with an AccountSecurity message.
"""

from __future__ import annotations

import sqlite3

from flask import request
from flask_smorest import Blueprint
from marshmallow import Schema, validate

from ..auth import (ACCOUNTS_URI, PASSWORD_LENGTH_BOUNDS, ROLES, AccountPolicy, Audit, hash_password,
                    password_problem, refresh_lockout, username_problem)
from ..messages import RedfishError, message
from ..privileges import declare
from ..store import MAX_ACCOUNTS, AccountChanged, LastAdministrator
from ..web import (Invalid, RedfishView, StrictBoolean, StrictInteger, check_if_match, check_patch, collection,
                   json_body, json_response, odata_id, one_of, render, value_error, walk_tree, with_etag)
from .. import mtls
from . import certificate_service
from .common import not_found, odata_type, principal, require_self_or, store

blp = Blueprint("account_service", __name__, description="Accounts and roles")

CONFIGURE_USERS = [["ConfigureUsers"]]  # what a PATCH of anything but the own Password needs
SELF_WRITABLE = {"Password"}
REDACTED = "<redacted>"
LOCKOUT_SECONDS_MAX = 365 * 86400
ROLE_DESCRIPTIONS = {
    "Administrator": "Full control of the rack, its accounts and this service.",
    "Operator": "Operates the units (power, boot) but manages no accounts.",
    "ReadOnly": "Reads everything but may only change its own password.",
}


# -- the policy ------------------------------------------------------------------------------

class AccountServicePatch(Schema):
    MinPasswordLength = StrictInteger(validate=validate.Range(*PASSWORD_LENGTH_BOUNDS, error="range"))
    MaxPasswordLength = StrictInteger(validate=validate.Range(*PASSWORD_LENGTH_BOUNDS, error="range"))
    AccountLockoutThreshold = StrictInteger(validate=validate.Range(0, 1000, error="range"))
    AccountLockoutDuration = StrictInteger(validate=validate.Range(0, LOCKOUT_SECONDS_MAX, error="range"))
    AccountLockoutCounterResetAfter = StrictInteger(validate=validate.Range(0, LOCKOUT_SECONDS_MAX,
                                                                            error="range"))
    AccountLockoutCounterResetEnabled = StrictBoolean()


POLICY_FIELDS = {  # Redfish property -> AccountPolicy field
    "MinPasswordLength": "min_password",
    "MaxPasswordLength": "max_password",
    "AccountLockoutThreshold": "lockout_threshold",
    "AccountLockoutDuration": "lockout_duration",
    "AccountLockoutCounterResetAfter": "counter_reset_after",
    "AccountLockoutCounterResetEnabled": "counter_reset_enabled",
}


def service_doc() -> dict:
    policy = AccountPolicy.load(store())
    doc = {
        "@odata.id": "/redfish/v1/AccountService",
        "@odata.type": odata_type("AccountService"),
        "Id": "AccountService",
        "Name": "Account Service",
        "ServiceEnabled": True,
        "LocalAccountAuth": "Enabled",
        "Status": {"State": "Enabled", "Health": "OK"},
        "Accounts": odata_id("AccountService", "Accounts"),
        "Roles": odata_id("AccountService", "Roles"),
        "MultiFactorAuth": certificate_service.multi_factor_auth(),  # client certificates (mTLS)
    }
    doc.update({prop: getattr(policy, name) for prop, name in POLICY_FIELDS.items()})
    return doc


@blp.route("/redfish/v1/AccountService")
class AccountService(RedfishView):
    entity = "AccountService"
    privileges = declare(entity, "GET", "PATCH")
    cacheable = True

    def get(self):
        return service_doc()

    def patch(self):
        body = json_body()
        with store().tx():  # If-Match, checks and writes in one transaction: racing PATCHes serialise
            current = service_doc()
            check_if_match(current)
            body, apply_mfa = mtls.split_patch(store(), body, current)  # MultiFactorAuth: mtls.py
            changes = check_patch(body, AccountServicePatch(), current) if body is not None else {}
            merged = {**current, **changes}
            if merged["MinPasswordLength"] > merged["MaxPasswordLength"]:
                bad = "MinPasswordLength" if "MinPasswordLength" in changes else "MaxPasswordLength"
                other = "MaxPasswordLength" if bad == "MinPasswordLength" else "MinPasswordLength"
                raise RedfishError.of(400, "PropertyValueConflict", bad, other, related=[f"#/{bad}"])
            if 0 < merged["AccountLockoutDuration"] < merged["AccountLockoutCounterResetAfter"]:
                # AccountService schema: the duration shall be >= the counter reset time.
                raise RedfishError.of(400, "PropertyValueConflict", "AccountLockoutDuration",
                                      "AccountLockoutCounterResetAfter", related=["#/AccountLockoutDuration"])
            AccountPolicy(**{name: merged[prop] for prop, name in POLICY_FIELDS.items()}).save(store())
            apply_mfa()
        return render(service_doc())


# -- accounts ---------------------------------------------------------------------------------

def account_doc(acct: dict) -> dict:
    return {
        "@odata.id": f"{ACCOUNTS_URI}/{acct['id']}",
        "@odata.type": odata_type("ManagerAccount"),
        "Id": acct["id"],
        "Name": "User Account",
        "Description": "A local account of this service",
        "UserName": acct["username"],
        "RoleId": acct["role_id"],
        "Enabled": bool(acct["enabled"]),
        "Locked": bool(acct["locked"]),
        "Locked@Redfish.AllowableValues": ["false"],
        "Password": None,
        "PasswordChangeRequired": bool(acct["password_change_required"]),
        "AccountTypes": ["Redfish"],
        "Links": {"Role": odata_id("AccountService", "Roles", acct["role_id"])},
    }


def _username(value) -> str:
    problem = username_problem(value)
    if problem == "not a string":
        raise Invalid("PropertyValueTypeError")
    if problem:
        raise Invalid("PropertyValueFormatError")
    return value


def _boolean(value) -> bool:
    if not isinstance(value, bool):
        raise Invalid("PropertyValueTypeError")
    return value


def _unlock_only(value) -> bool:
    """Locked: only the service locks; an administrator may only unlock (false)."""
    if _boolean(value):
        raise Invalid("PropertyValueNotInList")
    return value


def _redfish_only(value) -> list:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid("PropertyValueTypeError")
    if value != ["Redfish"]:
        raise Invalid("PropertyValueNotInList")
    return value


CREATE_FIELDS = {"UserName": _username, "RoleId": one_of(tuple(ROLES)), "Enabled": _boolean,
                 "PasswordChangeRequired": _boolean, "AccountTypes": _redfish_only, "Locked": _unlock_only}
PATCH_FIELDS = {"UserName": _username, "RoleId": one_of(tuple(ROLES)), "Enabled": _boolean,
                "PasswordChangeRequired": _boolean, "Locked": _unlock_only}
REQUIRED_ON_CREATE = ("UserName", "Password", "RoleId")
ETAG_COLUMNS = ("username", "role_id", "enabled", "locked", "password_change_required")  # what account_doc shows
_TEMPLATE = account_doc({"id": "1", "username": "", "role_id": "ReadOnly", "enabled": 1, "locked": 0,
                         "password_change_required": 0})


def checked_body(body: dict, writable: dict, current: dict, username: str) -> dict:
    """The cleaned account properties of a POST or PATCH body (Password checked against the
    policy and ``username``, the name the account will have); all problems at once as one 400.
    A refused password is never echoed: its value shows as <redacted>."""
    errors: list[dict] = []
    rest = {k: v for k, v in body.items() if k != "Password"}
    cleaned = walk_tree(rest, writable, current, errors)
    if "Password" in body:
        problem = password_problem(body["Password"], username, AccountPolicy.load(store()))
        if problem == "not a string":
            errors.append(value_error("PropertyValueTypeError", REDACTED, "Password"))
        elif problem:
            err = value_error("PropertyValueFormatError", REDACTED, "Password")
            err["Resolution"] = f"Provide a password that meets the policy: {problem}."
            errors.append(err)
        else:
            cleaned["Password"] = body["Password"]
    if errors:
        raise RedfishError(400, errors)
    return cleaned


def _duplicate(name: str) -> RedfishError:
    return RedfishError.of(409, "ResourceAlreadyExists", "ManagerAccount", "UserName", name,
                           related=["#/UserName"])


def _last_admin(prop: str, value) -> RedfishError:
    """409: the change would leave the service with no enabled Administrator."""
    return RedfishError(409, [message("PropertyValueResourceConflict", prop, value, ACCOUNTS_URI,
                                      related=[f"#/{prop}"])])


@blp.route(ACCOUNTS_URI)
class Accounts(RedfishView):
    entity = "ManagerAccountCollection"
    privileges = declare(entity, "GET", "POST")
    cacheable = True

    def get(self):
        return collection("ManagerAccountCollection", "Accounts Collection", ACCOUNTS_URI,
                          [f"{ACCOUNTS_URI}/{a['id']}" for a in store().accounts()])

    def post(self):
        body = {k: v for k, v in json_body().items() if not k.startswith("@odata.")}
        missing = [k for k in REQUIRED_ON_CREATE if k not in body]
        if missing:
            raise RedfishError(400, [message("PropertyMissing", k, related=[f"#/{k}"]) for k in missing])
        name = body["UserName"] if isinstance(body["UserName"], str) else None
        cleaned = checked_body(body, CREATE_FIELDS, _TEMPLATE, name)
        st = store()
        if st.account_by_name(cleaned["UserName"]) is not None:
            raise _duplicate(cleaned["UserName"])
        try:
            new_id = st.add_account(cleaned["UserName"], hash_password(cleaned["Password"]), cleaned["RoleId"],
                                    enabled=cleaned.get("Enabled", True),
                                    password_change_required=cleaned.get("PasswordChangeRequired", False),
                                    limit=MAX_ACCOUNTS)
        except sqlite3.IntegrityError:  # created by someone else since the check above
            raise _duplicate(cleaned["UserName"]) from None
        if new_id is None:
            raise RedfishError.of(400, "CreateLimitReachedForResource")
        uri = f"{ACCOUNTS_URI}/{new_id}"
        Audit(st).write("AccountCreated", [cleaned["UserName"]])
        doc = with_etag(account_doc(st.account(new_id)))
        return json_response(doc, 201, {"Location": uri, "ETag": doc["@odata.etag"]})


@blp.route(f"{ACCOUNTS_URI}/<account_id>")
class Account(RedfishView):
    entity = "ManagerAccount"  # PATCH: ConfigureSelf reaches the Password only (PropertyOverrides)
    privileges = declare(entity, "GET", "PATCH", "DELETE", properties=("Password",))
    cacheable = False  # Locked depends on the clock (a lockout expires)

    def _visible(self, account_id: str) -> dict:
        acct = store().account(account_id)
        if acct is None:
            raise not_found("ManagerAccount", account_id)
        require_self_or(acct["username"], [["ConfigureManager"], ["ConfigureUsers"]])
        return refresh_lockout(store(), acct)

    def get(self, account_id):
        return account_doc(self._visible(account_id))

    def patch(self, account_id):
        acct = self._visible(account_id)
        current = account_doc(acct)
        check_if_match(current)
        body = {k: v for k, v in json_body().items() if not k.startswith("@odata.")}
        if not body:
            raise RedfishError.of(400, "NoOperation")
        p = principal()
        if not set(body) <= SELF_WRITABLE:
            if p.password_change_required:
                raise RedfishError.of(403, "PasswordChangeRequired", p.account_uri)
            if not p.satisfies(CONFIGURE_USERS):  # ConfigureSelf reaches the Password only
                raise RedfishError.of(403, "InsufficientPrivilege")
        name = body.get("UserName") if isinstance(body.get("UserName"), str) else acct["username"]
        cleaned = checked_body(body, PATCH_FIELDS, current, name)
        changes = self._changes(acct, cleaned)
        if "username" in changes and store().account_by_name(changes["username"]) is not None:
            raise _duplicate(changes["username"])
        own = p.username == acct["username"]
        # With If-Match, the row must still be the one the ETag was checked against.
        expect = {k: acct[k] for k in ETAG_COLUMNS} if "If-Match" in request.headers else None
        try:
            new = store().change_account(account_id, changes, keep_session=p.session_id if own else None,
                                         expect=expect)
        except AccountChanged:
            raise RedfishError.of(412, "PreconditionFailed") from None
        except LastAdministrator:
            prop = "Enabled" if changes.get("enabled") == 0 else "RoleId"
            raise _last_admin(prop, cleaned.get(prop)) from None
        except sqlite3.IntegrityError:
            raise _duplicate(changes["username"]) from None
        if new is None:
            raise not_found("ManagerAccount", account_id)
        self._audit(acct, new, cleaned)
        return render(account_doc(new))

    @staticmethod
    def _changes(acct: dict, cleaned: dict) -> dict:
        """Store columns to write. A new password clears PasswordChangeRequired unless the
        same request sets it (an administrator handing out a one-time password)."""
        changes: dict = {}
        if "UserName" in cleaned and cleaned["UserName"] != acct["username"]:
            changes["username"] = cleaned["UserName"]
        if "Password" in cleaned:
            changes["password_hash"] = hash_password(cleaned["Password"])
            changes["password_change_required"] = 0
        if "PasswordChangeRequired" in cleaned:
            changes["password_change_required"] = int(cleaned["PasswordChangeRequired"])
        if "RoleId" in cleaned:
            changes["role_id"] = cleaned["RoleId"]
        if "Enabled" in cleaned:
            changes["enabled"] = int(cleaned["Enabled"])
        if "Locked" in cleaned:  # only false gets here: unlock
            changes.update(locked=0, failed_logins=0, locked_since=0)
        return changes

    @staticmethod
    def _audit(old: dict, new: dict, cleaned: dict) -> None:
        audit, name = Audit(store()), new["username"]
        if "Password" in cleaned:
            audit.write("PasswordModified", [name])
        if new["role_id"] != old["role_id"]:
            audit.write("ManagerAccountRoleChanged", [name, old["role_id"], new["role_id"]])
        if new["enabled"] != old["enabled"]:
            audit.write("AccountEnabled" if new["enabled"] else "AccountDisabled", [name])
        if old["locked"] and not new["locked"]:
            audit.write("AccountUnlocked", [name])

    def delete(self, account_id):
        st = store()
        try:
            gone = st.delete_account(account_id)
        except LastAdministrator:
            raise RedfishError(409, [message("ResourceCannotBeDeleted")]) from None
        if gone is None:
            raise not_found("ManagerAccount", account_id)
        Audit(st).write("AccountRemoved", [gone["username"]])
        return "", 204


# -- roles (the three predefined ones) -------------------------------------------------------

@blp.route("/redfish/v1/AccountService/Roles")
class Roles(RedfishView):
    entity = "RoleCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self):
        return collection("RoleCollection", "Roles Collection", "/redfish/v1/AccountService/Roles",
                          [f"/redfish/v1/AccountService/Roles/{r}" for r in ROLES])


@blp.route("/redfish/v1/AccountService/Roles/<role_id>")
class Role(RedfishView):
    entity = "Role"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, role_id):
        if role_id not in ROLES:
            raise not_found("Role", role_id)
        return {
            "@odata.id": f"/redfish/v1/AccountService/Roles/{role_id}",
            "@odata.type": odata_type("Role"),
            "Id": role_id,
            "Name": f"{role_id} Role",
            "Description": ROLE_DESCRIPTIONS[role_id],
            "RoleId": role_id,
            "IsPredefined": True,
            "AssignedPrivileges": list(ROLES[role_id]),
        }
