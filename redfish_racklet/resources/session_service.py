"""SessionService: log in (POST Sessions), list, inspect and end sessions, and the timeout.

Sessions live in the store, so every API worker sees the same ones; only the
SHA-256 of a token is kept.
"""

from __future__ import annotations

import time

from flask import request
from flask_smorest import Blueprint
from marshmallow import Schema, validate

from ..auth import login
from ..messages import RedfishError
from ..store import SESSION_TIMEOUT_RANGE
from ..web import (CONFIGURE_MANAGER, LOGIN, NO_AUTH, RedfishView, StrictInteger, check_if_match, check_patch,
                   collection, json_body, json_response, odata_id, render, with_etag)
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
    privileges = {"GET": LOGIN, "PATCH": CONFIGURE_MANAGER}
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
    privileges = {"GET": LOGIN, "POST": NO_AUTH}

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
        acct = login(store(), body["UserName"], body["Password"])
        if acct is None:
            raise RedfishError.of(401, "ResourceAtUriUnauthorized", SESSIONS_URI, "Unauthorized")
        created = store().create_session(acct["username"], request.remote_addr or "", time.time())
        if created is None:
            raise RedfishError.of(503, "SessionLimitExceeded")
        sess, token = created
        doc = with_etag(session_doc(sess))
        return json_response(doc, 201, {"X-Auth-Token": token, "Location": doc["@odata.id"],
                                        "ETag": doc["@odata.etag"]})


@blp.route(f"{SESSIONS_URI}/Members")
class SessionsMembers(RedfishView):
    """DSP0266: a POST to a collection's Members URI creates like a POST to the collection."""

    privileges = {"POST": NO_AUTH}

    def post(self):
        return Sessions().post()


@blp.route(f"{SESSIONS_URI}/<session_id>")
class Session(RedfishView):
    privileges = {"GET": [["ConfigureManager"], ["ConfigureSelf"]],
                  "DELETE": [["ConfigureManager"], ["ConfigureSelf"]]}

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
