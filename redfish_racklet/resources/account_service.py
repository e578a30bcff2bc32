"""AccountService: accounts and the predefined roles (read side; see docs/security.md)."""

from __future__ import annotations

from flask_smorest import Blueprint

from ..auth import MAX_PASSWORD, MIN_PASSWORD, ROLES
from ..web import LOGIN, RedfishView, collection, odata_id
from .common import not_found, odata_type, require_self_or, store

blp = Blueprint("account_service", __name__, description="Accounts and roles")

ACCOUNT_READERS = [["ConfigureManager"], ["ConfigureUsers"], ["ConfigureSelf"]]
ROLE_DESCRIPTIONS = {
    "Administrator": "Full control of the rack, its accounts and this service.",
    "Operator": "Operates the units (power, boot) but manages no accounts.",
    "ReadOnly": "Reads everything but may only change its own password.",
}


@blp.route("/redfish/v1/AccountService")
class AccountService(RedfishView):
    privileges = {"GET": LOGIN}
    cacheable = True

    def get(self):
        return {
            "@odata.id": "/redfish/v1/AccountService",
            "@odata.type": odata_type("AccountService"),
            "Id": "AccountService",
            "Name": "Account Service",
            "ServiceEnabled": True,
            "MinPasswordLength": MIN_PASSWORD,
            "MaxPasswordLength": MAX_PASSWORD,
            "LocalAccountAuth": "Enabled",
            "Status": {"State": "Enabled", "Health": "OK"},
            "Accounts": odata_id("AccountService", "Accounts"),
            "Roles": odata_id("AccountService", "Roles"),
        }


@blp.route("/redfish/v1/AccountService/Accounts")
class Accounts(RedfishView):
    privileges = {"GET": LOGIN}
    cacheable = True

    def get(self):
        return collection("ManagerAccountCollection", "Accounts Collection",
                          "/redfish/v1/AccountService/Accounts",
                          [f"/redfish/v1/AccountService/Accounts/{a['id']}" for a in store().accounts()])


def account_doc(acct: dict) -> dict:
    return {
        "@odata.id": f"/redfish/v1/AccountService/Accounts/{acct['id']}",
        "@odata.type": odata_type("ManagerAccount"),
        "Id": acct["id"],
        "Name": "User Account",
        "UserName": acct["username"],
        "RoleId": acct["role_id"],
        "Enabled": bool(acct["enabled"]),
        "Locked": bool(acct["locked"]),
        "Password": None,
        "PasswordChangeRequired": bool(acct["password_change_required"]),
        "AccountTypes": ["Redfish"],
        "Links": {"Role": odata_id("AccountService", "Roles", acct["role_id"])},
    }


@blp.route("/redfish/v1/AccountService/Accounts/<account_id>")
class Account(RedfishView):
    privileges = {"GET": ACCOUNT_READERS}
    cacheable = True

    def get(self, account_id):
        acct = store().account(account_id)
        if acct is None:
            raise not_found("ManagerAccount", account_id)
        require_self_or(acct["username"], [["ConfigureManager"], ["ConfigureUsers"]])
        return account_doc(acct)


@blp.route("/redfish/v1/AccountService/Roles")
class Roles(RedfishView):
    privileges = {"GET": LOGIN}
    cacheable = True

    def get(self):
        return collection("RoleCollection", "Roles Collection", "/redfish/v1/AccountService/Roles",
                          [f"/redfish/v1/AccountService/Roles/{r}" for r in ROLES])


@blp.route("/redfish/v1/AccountService/Roles/<role_id>")
class Role(RedfishView):
    privileges = {"GET": LOGIN}
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
