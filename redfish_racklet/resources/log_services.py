"""LogServices: the rack's event log, as the agent writes it to the store.

One log, seen three ways (each a LogService ``EventLog`` with its Entries):

- ``Managers/RMC/LogServices/EventLog``: every entry (the whole rack's log);
- ``Managers/UnitN-BMC/LogServices/EventLog``: the entries about unit N;
- ``Systems/UnitN/LogServices/EventLog``: the same entries of unit N, where a client
  looking at the compute unit expects its log.

An entry's URI is its store id under the log that shows it; an entry of another unit
is not found under a unit's log. ``ClearLog`` of the RMC's log clears everything, of a
unit's log that unit's entries; it needs ConfigureManager on a manager's log and
ConfigureComponents on a system's (the DMTF privilege registry's subordinate override).
The log keeps ``LOG_MAX`` entries and overwrites the oldest (``WrapsWhenFull``).

An Entries collection holds the entries themselves (the schema auto-expands its
Members), so up to ``LOG_MAX`` of them: ``$top``/``$skip`` read only the page asked for
from the store, with the total in ``Members@odata.count`` and ``Members@odata.nextLink``
exactly as the generic paging (``odata.page``) would give them; the other query options
then apply to the page as usual.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from dataclasses import dataclass

from flask import g, request
from flask_smorest import Blueprint

from ..agent import events
from ..messages import RedfishError, message
from ..privileges import declare
from ..store import LOG_MAX
from ..web import RedfishView, json_body, json_response, render, with_etag
from .common import not_found, odata_type, store
from .managers import manager_unit

blp = Blueprint("log_services", __name__, description="Event logs of the rack and its units")

EVENT_LOG = "EventLog"
CLEAR_ACTION = "LogService.ClearLog"
CLEAR_PARAMETERS = ("LogEntriesETag",)
ENTRY_ID = re.compile(r"[1-9][0-9]{0,17}")  # a store id as the URIs write it (below SQLite's 2**63)


@dataclass(frozen=True)
class Scope:
    """Which log a URI names: its LogServices collection, and the unit whose entries it
    shows (None: the whole rack)."""

    services: str
    unit: str | None

    @property
    def uri(self) -> str:
        return f"{self.services}/{EVENT_LOG}"

    @property
    def entries(self) -> str:
        return f"{self.uri}/Entries"


def log_scope(manager_id: str | None = None, system_id: str | None = None,
              log_service_id: str = EVENT_LOG) -> Scope:
    """The scope of a route's ids, or 404 for an unknown manager, system or log."""
    if manager_id is not None:
        unit = manager_unit(manager_id)
        scope = Scope(f"/redfish/v1/Managers/{manager_id}/LogServices", None if unit is None else unit["id"])
    else:
        if store().unit(system_id) is None:
            raise not_found("ComputerSystem", system_id)
        scope = Scope(f"/redfish/v1/Systems/{system_id}/LogServices", system_id)
    if log_service_id != EVENT_LOG:
        raise not_found("LogService", log_service_id)
    return scope


def iso_time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).replace(microsecond=0).isoformat()


# -- documents ------------------------------------------------------------------------

def services_doc(scope: Scope) -> dict:
    return {
        "@odata.id": scope.services,
        "@odata.type": "#LogServiceCollection.LogServiceCollection",
        "Name": "Log Service Collection",
        "Members": [{"@odata.id": scope.uri}],
        "Members@odata.count": 1,
    }


def service_doc(scope: Scope, now: float) -> dict:
    whose = "the whole rack: hot-plug, power, health and BMC resets of every unit and of the rack" \
        if scope.unit is None else f"{scope.unit}: its hot-plug, power, health and BMC resets"
    return {
        "@odata.id": scope.uri,
        "@odata.type": odata_type("LogService"),
        "Id": EVENT_LOG,
        "Name": "Event Log",
        "Description": f"The events of {whose}",
        "LogEntryType": "Event",
        "MaxNumberOfRecords": LOG_MAX,
        "OverWritePolicy": "WrapsWhenFull",
        "ServiceEnabled": True,
        "Persistency": True,  # in the state store: kept across restarts of the service
        "DateTime": iso_time(now),
        "DateTimeLocalOffset": "+00:00",
        "Status": {"State": "Enabled", "Health": "OK"},
        "Entries": {"@odata.id": scope.entries},
        "Actions": {f"#{CLEAR_ACTION}": {
            "target": f"{scope.uri}/Actions/{CLEAR_ACTION}",
            "@Redfish.ActionInfo": f"{scope.uri}/ClearLogActionInfo",
        }},
    }


def entry_doc(scope: Scope, entry: dict) -> dict:
    created = iso_time(entry["created"])
    doc = {
        "@odata.id": f"{scope.entries}/{entry['id']}",
        "@odata.type": odata_type("LogEntry"),
        "Id": str(entry["id"]),
        "Name": f"Log Entry {entry['id']}",
        "EntryType": "Event",
        "Severity": entry["severity"],
        "Created": created,
        "EventTimestamp": created,  # the agent logs an event as it sees it
        "Message": entry["message"],
        "MessageId": entry["message_id"],
        "MessageArgs": entry["args"],
    }
    if entry["origin"]:
        doc["Links"] = {"OriginOfCondition": {"@odata.id": entry["origin"]}}
    return doc


def entries_doc(scope: Scope, entries: list[dict], total: int) -> dict:
    """The collection of ``entries``, of ``total`` in all. Its Members are the entries
    themselves, not links: the schema auto-expands them (OData.AutoExpand)."""
    return {
        "@odata.id": scope.entries,
        "@odata.type": "#LogEntryCollection.LogEntryCollection",
        "Name": "Log Entry Collection",
        "Members": [entry_doc(scope, e) for e in entries],
        "Members@odata.count": total,
    }


def full_entries_doc(scope: Scope) -> dict:
    entries = store().log_entries(scope.unit)
    return entries_doc(scope, entries, len(entries))


def clear_log_etag(body: dict) -> str | None:
    """The ClearLog parameters: only ``LogEntriesETag`` (a string), which may be left out."""
    unknown = [k for k in body if k not in CLEAR_PARAMETERS and not k.startswith("@")]
    if unknown:
        raise RedfishError.of(400, "ActionParameterUnknown", CLEAR_ACTION, unknown[0])
    etag = body.get("LogEntriesETag")
    if etag is not None and not isinstance(etag, str):
        raise RedfishError.of(400, "ActionParameterValueTypeError", etag, "LogEntriesETag", CLEAR_ACTION)
    return etag


def action_body() -> dict:
    """An action's body: none at all counts as ``{}`` (ClearLog needs no parameter)."""
    if not request.get_data(cache=True).strip():
        return {}
    return json_body()


# -- routes: each serves the managers' logs and the systems' -------------------------------

MANAGER = "/redfish/v1/Managers/<manager_id>/LogServices"
SYSTEM = "/redfish/v1/Systems/<system_id>/LogServices"
LOG = "/<log_service_id>"


@blp.route(MANAGER, endpoint="ManagerLogServices")
@blp.route(SYSTEM, endpoint="SystemLogServices")
class LogServices(RedfishView):
    entity = "LogServiceCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, **ids):
        return services_doc(log_scope(**ids))


@blp.route(MANAGER + LOG, endpoint="ManagerLogService")
@blp.route(SYSTEM + LOG, endpoint="SystemLogService")
class LogService(RedfishView):
    entity = "LogService"
    privileges = declare(entity, "GET")  # DateTime: not cacheable

    def get(self, **ids):
        return service_doc(log_scope(**ids), time.time())


@blp.route(MANAGER + LOG + "/Entries", endpoint="ManagerLogEntries")
@blp.route(SYSTEM + LOG + "/Entries", endpoint="SystemLogEntries")
class LogEntries(RedfishView):
    """``get`` gives the whole collection (a plain GET, and ``$expand`` from elsewhere);
    a GET of this URI with ``$top``/``$skip`` reads only its page."""

    entity = "LogEntryCollection"
    privileges = declare(entity, "GET")
    cacheable = True

    def dispatch_request(self, **ids):
        q = g.get("query")
        if request.method in ("GET", "HEAD") and q is not None and not q.only \
                and (q.top is not None or q.skip is not None):
            return self.page(q, **ids)
        return super().dispatch_request(**ids)

    def get(self, **ids):
        return full_entries_doc(log_scope(**ids))

    @staticmethod
    def page(q, **ids):
        scope = log_scope(**ids)
        skip = q.skip or 0
        total, entries = store().log_page(scope.unit, skip, q.top)
        doc = entries_doc(scope, entries, total)
        if q.top and skip + q.top < total:  # as odata.page words it ($top=0: no next page)
            doc["Members@odata.nextLink"] = f"{scope.entries}?$skip={skip + q.top}&$top={q.top}"
        g.query = dataclasses.replace(q, top=None, skip=None)  # paged: the rest of the query as usual
        return render(doc)


@blp.route(MANAGER + LOG + "/Entries/<entry_id>", endpoint="ManagerLogEntry")
@blp.route(SYSTEM + LOG + "/Entries/<entry_id>", endpoint="SystemLogEntry")
class LogEntry(RedfishView):
    entity = "LogEntry"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, entry_id, **ids):
        scope = log_scope(**ids)
        entry = store().log_entry(int(entry_id)) if ENTRY_ID.fullmatch(entry_id) else None
        if entry is None or (scope.unit is not None and entry["unit"] != scope.unit):
            raise not_found("LogEntry", entry_id)
        return entry_doc(scope, entry)


@blp.route(MANAGER + LOG + "/ClearLogActionInfo", endpoint="ManagerClearLogActionInfo")
@blp.route(SYSTEM + LOG + "/ClearLogActionInfo", endpoint="SystemClearLogActionInfo")
class ClearLogActionInfo(RedfishView):
    entity = "ActionInfo"
    privileges = declare(entity, "GET")
    cacheable = True

    def get(self, **ids):
        scope = log_scope(**ids)
        return {
            "@odata.id": f"{scope.uri}/ClearLogActionInfo",
            "@odata.type": odata_type("ActionInfo"),
            "Id": "ClearLogActionInfo",
            "Name": "Clear Log Action Info",
            "Parameters": [{"Name": "LogEntriesETag", "Required": False, "DataType": "String"}],
        }


class _ClearLog(RedfishView):
    def post(self, **ids):
        scope = log_scope(**ids)
        etag = clear_log_etag(action_body())
        # The schema: an ETag other than the Entries collection's current one is 428.
        if etag is not None and etag != with_etag(full_entries_doc(scope))["@odata.etag"]:
            raise RedfishError.of(428, "PreconditionFailed")
        store().clear_log(scope.unit)
        # The log's first entry says who emptied it, and when (an audit trail of the clear).
        events.Log(store()).write("LogCleared", [scope.uri], scope.uri, scope.unit or "")
        return json_response({"@Message.ExtendedInfo": [message("Success")]})


@blp.route(MANAGER + LOG + f"/Actions/{CLEAR_ACTION}")
class ManagerClearLog(_ClearLog):
    entity = "LogService"  # an action: its LogService's POST
    privileges = declare(entity, "POST", under=("ManagerCollection", "Manager", "LogServiceCollection"))


@blp.route(SYSTEM + LOG + f"/Actions/{CLEAR_ACTION}")
class SystemClearLog(_ClearLog):
    entity = "LogService"  # an action: its LogService's POST
    privileges = declare(entity, "POST", under=("ComputerSystemCollection", "ComputerSystem",
                                                "LogServiceCollection"))
