"""The update family's parts that the API workers and the agent share (no drivers here):
the staging area, the trusted keys, tasks and their journal, https image locations,
and the automatic-update settings. The agent's side is ``agent/updater.py``.
"""

from __future__ import annotations

import json
import os
import urllib.parse

from . import bundle
from .agent import events

STAGING = "staging"          # in the state directory: uploads and downloads waiting for the agent
AUTO_MIN_INTERVAL = 60.0     # seconds between two reads of the automatic-update feed, at least
TASKS = "/redfish/v1/TaskService/Tasks"


def staging_dir(state_dir: str) -> str:
    path = os.path.join(state_dir, STAGING)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def trusted_keys(store) -> dict:
    return {k["id"]: bundle.load_public_key(k["pem"]) for k in store.signing_keys()}


def new_task(store, owner: str, params: dict, now: float) -> int:
    tid = store.add_task(owner, "Firmware update", params, [], now)
    record(store, tid, [events.message("TaskStarted", str(tid))])
    return tid



def record(store, tid: int, messages: list[dict], **changes) -> None:
    """Append ``messages`` to task ``tid`` (with any other changes) and write each one that
    comes from the TaskEvent or Update registry to the event journal as well, so event
    subscribers and the logs see an update progress (the task is its OriginOfCondition)."""
    store.update_task(tid, add_messages=messages, **changes)
    journal = events.Log(store)
    for m in messages:
        key = m["MessageId"].rsplit(".", 1)[1]
        if key in events.REGISTRY_KEYS:
            journal.write(key, m["MessageArgs"], f"{TASKS}/{tid}")


def check_image_uri(uri: str) -> str | None:
    """Why ``uri`` may not be fetched, or None: https only, with a host."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme.lower() != "https":
        return "only https:// image locations are accepted"
    if not parts.hostname:
        return "the image location has no host"
    return None


AUTO_DEFAULTS = {"enabled": False, "feed": None, "interval": 3600, "apply_time": "OnReset"}


def auto_settings(store) -> dict:
    raw = store.get_meta("auto_updates")
    return {**AUTO_DEFAULTS, **(json.loads(raw) if raw else {})}
