"""SessionService: log in (POST Sessions), list, inspect and end sessions, and the timeout.

Sessions live in the store, so every API worker sees the same ones; only the
SHA-256 of a token is kept. A session is visible to, and may be ended by, its owner
and Administrators (ConfigureManager) only. At most MAX_SESSIONS in all and
MAX_SESSIONS_PER_USER per account; a session ends when its account is disabled or
deleted, and when its password or role is changed by another session.
"""

from __future__ import annotations

import time

from flask import request
from flask_smorest import Blueprint
from marshmallow import Schema, validate

from ..auth import Audit, login
from ..messages import RedfishError, message
from ..privileges import declare, exception
from ..store import SESSION_TIMEOUT_RANGE
from ..web import (CONFIGURE_MANAGER, RedfishView, StrictInteger, check_if_match, check_patch, collection, json_body,
                   json_response, odata_id, render, with_etag)
from .common import not_found, odata_type, principal, require_self_or, store

blp = Blueprint("session_service", __name__, description="Sessions")

SESSIONS_URI = "/redfish/v1/SessionService/Sessions"


class SessionServicePatch(Schema):
    SessionTimeout = StrictInteger(validate=validate.Range(*SESSION_TIMEOUT_RANGE, error="range"))


def service_doc() -> dict:
    return {
        "@odata.id": "/redfish/v1/SessionService",
        "@odata.type": odata_type("SessionService"),
        "Id": "SessionService",
        "Name": "Session Service",
        "ServiceEnabled": True,
        "SessionTimeout": store().session_timeout(),
        "Status": {"State": "Enabled", "Health": "OK"},
        "Sessions": odata_id("SessionService", "Sessions"),
    }


@blp.route("/redfish/v1/SessionService")
class SessionService(RedfishView):
    entity = "SessionService"
    privileges = declare(entity, "GET", "PATCH")
    cacheable = True

    def get(self):
        return service_doc()

    def patch(self):
        current = service_doc()
        check_if_match(current)
        changes = check_patch(json_body(), SessionServicePatch(), current)
        if "SessionTimeout" in changes:
            store().set_meta("session_timeout", str(changes["SessionTimeout"]))
        return render(service_doc())


def session_doc(sess: dict) -> dict:
    return {
        "@odata.id": f"{SESSIONS_URI}/{sess['id']}",
        "@odata.type": odata_type("Session"),
        "Id": sess["id"],
        "Name": "User Session",
        "UserName": sess["username"],
        "Password": None,
        "SessionType": "Redfish",
        "ClientOriginIPAddress": sess["client_ip"],
        "CreatedTime": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(sess["created"])),
    }


@blp.route(SESSIONS_URI)
class Sessions(RedfishView):
    entity = "SessionCollection"
    privileges = {**declare(entity, "GET"), "POST": exception(SESSIONS_URI, "POST")}  # login

    def get(self):
        p = principal()
        visible = [s for s in store().sessions(time.time())
                   if p.satisfies(CONFIGURE_MANAGER) or s["username"] == p.username]
        return collection("SessionCollection", "Session Collection", SESSIONS_URI,
                          [f"{SESSIONS_URI}/{s['id']}" for s in visible])

    def post(self):
        body = json_body()
        for key in ("UserName", "Password"):
            if key not in body:
                raise RedfishError.of(400, "PropertyMissing", key)
            if not isinstance(body[key], str):
                raise RedfishError.of(400, "PropertyValueTypeError", "<redacted>" if key == "Password"
                                      else str(body[key]), key)
        unknown = [k for k in body if k not in ("UserName", "Password") and not k.startswith("@")]
        if unknown:
            raise RedfishError.of(400, "PropertyUnknown", unknown[0])
        client = request.remote_addr or ""
        acct = login(store(), body["UserName"], body["Password"], via="Redfish session", client=client)
        if acct is None:
            raise RedfishError.of(401, "ResourceAtUriUnauthorized", SESSIONS_URI, "Unauthorized")
        created = store().create_session(acct["username"], client, time.time())
        if created is None:
            raise RedfishError.of(503, "SessionLimitExceeded")
        sess, token = created
        Audit(store()).write("SuccessfulLogin", [acct["username"], client, "Redfish session"])
        doc = session_doc(sess)
        if acct["password_change_required"]:  # DSP0266: log in, then change the password
            doc["@Message.ExtendedInfo"] = [message("PasswordChangeRequired",
                                                    f"/redfish/v1/AccountService/Accounts/{acct['id']}")]
        doc = with_etag(doc)
        return json_response(doc, 201, {"X-Auth-Token": token, "Location": doc["@odata.id"],
                                        "ETag": doc["@odata.etag"]})


@blp.route(f"{SESSIONS_URI}/Members")
class SessionsMembers(RedfishView):
    """DSP0266: a POST to a collection's Members URI creates like a POST to the collection."""

    entity = "SessionCollection"
    privileges = {"POST": exception(f"{SESSIONS_URI}/Members", "POST")}  # login

    def post(self):
        return Sessions().post()


@blp.route(f"{SESSIONS_URI}/<session_id>")
class Session(RedfishView):
    entity = "Session"
    privileges = declare(entity, "GET", "DELETE")

    def _get_visible(self, session_id: str) -> dict:
        sess = store().session(session_id)
        if sess is None:
            raise not_found("Session", session_id)
        require_self_or(sess["username"], CONFIGURE_MANAGER)
        return sess

    def get(self, session_id):
        return session_doc(self._get_visible(session_id))

    def delete(self, session_id):
        self._get_visible(session_id)
        store().delete_session(session_id)
        return "", 204
