"""Push delivery of the journal to EventService subscriptions (run by the agent).

Design: one ``Delivery`` supervisor thread and one worker thread per Enabled
subscription (at most ``event_service.MAX_SUBSCRIPTIONS``), so a slow or dead
subscriber only ever delays itself. The agent's selector loop never touches the
network: it only starts and stops the supervisor.

A worker follows the journal (the store's ``log`` table) from its subscription's
``cursor`` (persisted: delivery resumes after a restart; a new subscription starts at
the journal's end), reading at most ``PAGE`` entries at a time. Each entry that passes
the filters (RegistryPrefixes, ResourceTypes by ``events.resource_type``, OriginResources)
is POSTed as an ``Event`` with one EventRecord, over HTTPS with ``TIMEOUT`` seconds per
socket operation, verifying the destination against the system trust store plus
``STATE_DIR/event-trust.pem`` when present. A failed POST is retried
DeliveryRetryAttempts times, the n-th after DeliveryRetryIntervalSeconds * 2**(n-1)
(capped at ``MAX_BACKOFF``); then, by DeliveryRetryPolicy, the subscription is
Suspended (SuspendRetries), deleted (TerminateAfterRetries) or retried on
(RetryForever: the interval; RetryForeverWithBackoff: the capped backoff).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import ssl
import threading
import urllib.error
import urllib.request

from .. import telemetry
from ..store import Store
from .events import resource_type

log = logging.getLogger("racklet.delivery")

PAGE = 64  # journal entries read at a time
POLL_SECONDS = 0.1  # how often an idle worker looks at the journal
SUPERVISE_SECONDS = 0.25  # how often the supervisor looks at the subscriptions
TIMEOUT = 5.0  # seconds per socket operation of one POST
MAX_BACKOFF = 300.0
TRUST_FILE = "event-trust.pem"
DEFAULT_RETRY_ATTEMPTS = 3
DEFAULT_RETRY_INTERVAL = 30
EVENT_TYPE = "#Event.v1_13_0.Event"

def retry_settings(store: Store) -> tuple[int, int]:
    return (int(store.get_meta("event_retry_attempts", str(DEFAULT_RETRY_ATTEMPTS))),
            int(store.get_meta("event_retry_interval", str(DEFAULT_RETRY_INTERVAL))))


def matches(settings: dict, entry: dict) -> bool:
    if settings.get("format") == "MetricReport":   # only new reports, of the definitions asked for
        report = telemetry.report_of(entry)
        wanted = settings.get("report_definitions") or []
        return report is not None and (not wanted or telemetry.definition_uri(report) in wanted)
    prefixes = settings.get("registry_prefixes") or []
    if prefixes and entry["message_id"].split(".", 1)[0] not in prefixes:
        return False
    types = settings.get("resource_types") or []
    if types and resource_type(entry["origin"]) not in types:
        return False
    origins = settings.get("origin_resources") or []
    return not origins or entry["origin"] in origins


def payload(store: Store, entry: dict, settings: dict) -> dict | None:
    """What a subscriber gets for a journal entry: an Event, or (EventFormatType
    MetricReport) the MetricReport the entry announces."""
    if settings.get("format") != "MetricReport":
        return event_payload(entry, settings.get("context"))
    report = store.metric_report(telemetry.report_of(entry) or "")
    if report is None:
        return None
    body = dict(report["body"])
    if settings.get("context") is not None:
        body["Context"] = settings["context"]
    return body


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).replace(microsecond=0).isoformat()


def event_payload(entry: dict, context: str | None) -> dict:
    record = {
        "MemberId": "0",
        "EventType": "Other",
        "EventId": str(entry["id"]),
        "EventTimestamp": iso(entry["created"]),
        "Severity": entry["severity"],
        "MessageSeverity": entry["severity"],
        "Message": entry["message"],
        "MessageId": entry["message_id"],
        "MessageArgs": entry["args"],
    }
    if entry["origin"]:
        record["OriginOfCondition"] = {"@odata.id": entry["origin"]}
    doc = {"@odata.type": EVENT_TYPE, "Id": str(entry["id"]), "Name": "Event", "Events": [record]}
    if context is not None:
        doc["Context"] = context
        record["Context"] = context
    return doc


def ssl_context(state_dir: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    trust = os.path.join(state_dir, TRUST_FILE)
    if os.path.exists(trust):
        ctx.load_verify_locations(cafile=trust)
    return ctx


def post(url: str, body: dict, headers: dict, ctx: ssl.SSLContext) -> None:
    """POST ``body``; raises OSError (or a subclass) unless the answer is 2xx."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    for k, v in headers.items():
        req.add_header(k, v)
    req.add_header("Content-Type", "application/json")
    with urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                     _NoRedirect()).open(req, timeout=TIMEOUT) as r:
        r.read(65536)
        if not 200 <= r.status < 300:
            raise OSError(f"HTTP {r.status}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):  # a redirect is a failed delivery, not a new target
        return None


class Delivery:
    """The supervisor: one worker thread per Enabled subscription."""

    def __init__(self, store_path: str, state_dir: str):
        self.store_path, self.state_dir = store_path, state_dir
        self.stop_event = threading.Event()
        self.workers: dict[int, threading.Thread] = {}
        self.thread = threading.Thread(target=self._run, name="delivery", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self.stop_event.set()
        self.thread.join(timeout)
        for t in list(self.workers.values()):
            t.join(max(0.0, timeout / 4))  # daemons: one stuck in a POST ends with the process

    def _run(self) -> None:
        store = Store(self.store_path)
        try:
            while not self.stop_event.is_set():
                try:
                    self._supervise(store)
                except Exception:  # noqa: BLE001 -- the supervisor must outlive a bad moment
                    log.exception("event delivery supervisor")
                self.stop_event.wait(SUPERVISE_SECONDS)
        finally:
            store.close()

    def _supervise(self, store: Store) -> None:
        for sid in [s for s, t in self.workers.items() if not t.is_alive()]:
            del self.workers[sid]
        for sub in (s for s in store.subscriptions() if not s["settings"].get("sse")):
            if sub["state"] == "Enabled" and sub["id"] not in self.workers:
                t = threading.Thread(target=self._worker, args=(sub["id"],), name=f"delivery-{sub['id']}",
                                     daemon=True)
                self.workers[sub["id"]] = t
                t.start()

    def _worker(self, sid: int) -> None:
        store = Store(self.store_path)
        try:
            Worker(store, sid, self.state_dir, self.stop_event).run()
        except Exception:  # noqa: BLE001
            log.exception("event delivery to subscription %s", sid)
        finally:
            store.close()


class Worker:
    """Delivers one subscription's events until it is deleted, suspended or stopped."""

    def __init__(self, store: Store, sid: int, state_dir: str, stop: threading.Event):
        self.store, self.sid, self.state_dir, self.stop = store, sid, state_dir, stop

    def run(self) -> None:
        while not self.stop.is_set():
            sub = self.store.subscription(self.sid)
            if sub is None or sub["state"] != "Enabled":
                return
            entries = self.store.log_after(sub["cursor"], PAGE)
            if not entries:
                self.stop.wait(POLL_SECONDS)
                continue
            cursor = sub["cursor"]
            for entry in entries:
                if matches(sub["settings"], entry):
                    if cursor != sub["cursor"]:
                        self.store.advance_subscription(self.sid, cursor)  # the skipped ones
                    outcome = self.deliver(sub, entry)
                    if outcome != "delivered":
                        return
                cursor = entry["id"]
                sub = self.store.subscription(self.sid) or {}
                if sub.get("state") != "Enabled":
                    return
            self.store.advance_subscription(self.sid, cursor)

    def deliver(self, sub: dict, entry: dict) -> str:
        """POST one entry, retrying; 'delivered', 'gone', 'stopped' or 'suspended'."""
        s = sub["settings"]
        body = payload(self.store, entry, s)
        if body is None:   # the report is gone (its definition deleted): nothing to send
            self.store.advance_subscription(self.sid, entry["id"])
            return "delivered"
        headers = {k: v for h in s.get("headers", []) for k, v in h.items()}
        ctx = ssl_context(self.state_dir)
        failures = 0
        while True:
            try:
                post(s["destination"], body, headers, ctx)
                self.store.advance_subscription(self.sid, entry["id"])
                return "delivered"
            except (OSError, ValueError, ssl.SSLError, urllib.error.URLError) as e:
                failures += 1
                attempts, interval = retry_settings(self.store)
                policy = s.get("policy", "SuspendRetries")
                log.info("subscription %s: event %s to %s failed (%s), failure %d", self.sid, entry["id"],
                         s["destination"], e, failures)
                if failures > attempts and policy in ("SuspendRetries", "TerminateAfterRetries"):
                    if policy == "SuspendRetries":
                        self.store.advance_subscription(self.sid, entry["id"] - 1, "Suspended")
                        log.warning("subscription %s suspended after %d failed deliveries", self.sid, failures)
                        return "suspended"
                    self.store.delete_subscription(self.sid)
                    log.warning("subscription %s terminated after %d failed deliveries", self.sid, failures)
                    return "gone"
                if policy == "RetryForever":
                    delay = float(interval)
                else:
                    delay = min(MAX_BACKOFF, interval * 2 ** min(failures - 1, 16))
                if self.stop.wait(delay):
                    return "stopped"
                current = self.store.subscription(self.sid)
                if current is None or current["state"] != "Enabled":
                    return "gone"
                s = current["settings"]
                headers = {k: v for h in s.get("headers", []) for k, v in h.items()}
