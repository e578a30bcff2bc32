"""The store's firmware and task records: A/B slot state, trusted signing keys, tasks.

A mixin of ``store.Store`` (the tables are in its schema): the update family's queries
live here so that ``store.py`` stays about people, units and the journal.

- ``firmware``: per (target, component) — which slot is the default (``active``), which
  is written and verified but not yet tried (``staged``, with ``apply`` 'OnReset' when it
  waits for the next reset), which is on trial (``trial`` since ``trial_since``, for task
  ``task``), and the security-version ``floor`` (raised when a slot is marked good).
- ``slots``: per slot, its state (``empty``, ``writing``, ``valid``) and what the bundle's
  signed manifest said of it. A row is ``writing`` from before the first byte reaches the
  device until the slot is verified on disk; the agent resolves one left by a crash.
- ``signing_keys``: the Ed25519 public keys whose bundles the rack accepts.
- ``tasks``: every update (or activation) is a Task; bounded to ``TASKS_KEPT`` finished ones.
"""

from __future__ import annotations

import json
import sqlite3

TASKS_KEPT = 100   # finished tasks kept; older ones are pruned
MAX_SIGNING_KEYS = 16
RUNNING_TASK_STATES = ("New", "Starting", "Running", "Pending")

SCHEMA = """
CREATE TABLE IF NOT EXISTS firmware(
    target TEXT NOT NULL,
    component TEXT NOT NULL,
    active TEXT NOT NULL DEFAULT 'A',
    staged TEXT,
    apply TEXT,
    trial TEXT,
    trial_since REAL,
    task INTEGER,
    floor INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (target, component));
CREATE TABLE IF NOT EXISTS slots(
    target TEXT NOT NULL,
    component TEXT NOT NULL,
    slot TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'empty',
    version TEXT,
    security_version INTEGER,
    sha256 TEXT,
    size INTEGER,
    key_id TEXT,
    written REAL,
    PRIMARY KEY (target, component, slot));
CREATE TABLE IF NOT EXISTS signing_keys(
    id TEXT PRIMARY KEY,
    pem TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    added REAL NOT NULL);
CREATE TABLE IF NOT EXISTS report_definitions(
    id TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    builtin INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS metric_reports(
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tasks(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'New',
    status TEXT NOT NULL DEFAULT 'OK',
    percent INTEGER NOT NULL DEFAULT 0,
    messages TEXT NOT NULL DEFAULT '[]',
    params TEXT NOT NULL DEFAULT '{}',
    started REAL NOT NULL,
    ended REAL);
"""

SLOT_FIELDS = ("version", "security_version", "sha256", "size", "key_id")


class UpdateRecords:
    """Methods of ``Store`` for the update family (see the module docstring)."""

    # -- firmware components and their slots -----------------------------------------
    def ensure_firmware(self, target: str, component: str, factory: dict | None, now: float) -> None:
        """Create a component's rows on first sight; ``factory`` describes slot A's
        content at delivery (version, sha256, size…), or None when it is unknown."""
        with self.tx() as t:
            t.execute("INSERT OR IGNORE INTO firmware(target, component) VALUES(?,?)", (target, component))
            for slot in ("A", "B"):
                t.execute("INSERT OR IGNORE INTO slots(target, component, slot) VALUES(?,?,?)",
                          (target, component, slot))
            if factory is not None:
                t.execute("UPDATE slots SET state='valid', version=?, security_version=?, sha256=?, size=?, "
                          "key_id=?, written=? WHERE target=? AND component=? AND slot='A' AND state='empty'",
                          (factory["version"], factory.get("security_version", 0), factory.get("sha256"),
                           factory.get("size"), factory.get("key_id", ""), now, target, component))

    def firmware(self, target: str, component: str) -> dict | None:
        row = self.conn().execute("SELECT * FROM firmware WHERE target=? AND component=?",
                                  (target, component)).fetchone()
        return dict(row) if row else None

    def firmware_all(self) -> list[dict]:
        def load():
            return [dict(r) for r in self.conn().execute("SELECT * FROM firmware ORDER BY target, component")]
        return self.cached(("firmware",), load)

    def slots_all(self) -> dict[tuple[str, str, str], dict]:
        def load():
            return {(r["target"], r["component"], r["slot"]): dict(r)
                    for r in self.conn().execute("SELECT * FROM slots")}
        return self.cached(("slots",), load)

    def slot(self, target: str, component: str, slot: str) -> dict | None:
        row = self.conn().execute("SELECT * FROM slots WHERE target=? AND component=? AND slot=?",
                                  (target, component, slot)).fetchone()
        return dict(row) if row else None

    def begin_slot_write(self, target: str, component: str, slot: str, now: float) -> bool:
        """Mark ``slot`` as being written (its old content is forgotten first, so a crash
        never leaves old metadata on new bytes). False if it is the active or trial slot."""
        with self.tx() as t:
            fw = t.execute("SELECT * FROM firmware WHERE target=? AND component=?", (target, component)).fetchone()
            if fw is None or slot in (fw["active"], fw["trial"]):
                return False
            if fw["staged"] == slot:
                t.execute("UPDATE firmware SET staged=NULL, apply=NULL WHERE target=? AND component=?",
                          (target, component))
            t.execute("UPDATE slots SET state='writing', version=NULL, security_version=NULL, sha256=NULL, "
                      "size=NULL, key_id=NULL, written=? WHERE target=? AND component=? AND slot=?",
                      (now, target, component, slot))
            return True

    def finish_slot_write(self, target: str, component: str, slot: str, manifest: dict, now: float,
                          apply: str | None, task: int | None) -> None:
        """The slot holds the verified image: record what it is and stage it."""
        with self.tx() as t:
            t.execute("UPDATE slots SET state='valid', version=?, security_version=?, sha256=?, size=?, key_id=?, "
                      "written=? WHERE target=? AND component=? AND slot=?",
                      (*(manifest[k] for k in SLOT_FIELDS), now, target, component, slot))
            t.execute("UPDATE firmware SET staged=?, apply=?, task=? WHERE target=? AND component=?",
                      (slot, apply, task, target, component))

    def clear_slot(self, target: str, component: str, slot: str) -> None:
        self.conn().execute("UPDATE slots SET state='empty', version=NULL, security_version=NULL, sha256=NULL, "
                            "size=NULL, key_id=NULL, written=NULL WHERE target=? AND component=? AND slot=?",
                            (target, component, slot))

    def set_firmware(self, target: str, component: str, **changes) -> None:
        allowed = {"active", "staged", "apply", "trial", "trial_since", "task", "floor"}
        if not changes or set(changes) - allowed:
            raise ValueError(f"firmware fields {sorted(set(changes) - allowed)}")
        cols = ", ".join(f"{k}=?" for k in changes)
        self.conn().execute(f"UPDATE firmware SET {cols} WHERE target=? AND component=?",
                            (*changes.values(), target, component))

    # -- signing keys ---------------------------------------------------------------------
    def signing_keys(self) -> list[dict]:
        def load():
            return [dict(r) for r in self.conn().execute("SELECT * FROM signing_keys ORDER BY added, id")]
        return self.cached(("signing_keys",), load)

    def add_signing_key(self, key_id: str, pem: str, comment: str, now: float) -> bool:
        """False if the key is already trusted or the rack holds ``MAX_SIGNING_KEYS``."""
        with self.tx() as t:
            if t.execute("SELECT COUNT(*) FROM signing_keys").fetchone()[0] >= MAX_SIGNING_KEYS:
                return False
            try:
                t.execute("INSERT INTO signing_keys VALUES(?,?,?,?)", (key_id, pem, comment, now))
            except sqlite3.IntegrityError:
                return False
            return True

    def remove_signing_key(self, key_id: str) -> bool:
        return self.conn().execute("DELETE FROM signing_keys WHERE id=?", (key_id,)).rowcount == 1

    def replace_signing_keys(self, keys: list[tuple[str, str, str]], now: float) -> None:
        """The whole set at once (a PATCH of the list): [(key_id, pem, comment)]."""
        with self.tx() as t:
            t.execute("DELETE FROM signing_keys")
            for i, (kid, pem, comment) in enumerate(keys):
                t.execute("INSERT INTO signing_keys VALUES(?,?,?,?)", (kid, pem, comment, now + i * 1e-6))

    # -- telemetry: MetricReportDefinitions and their latest MetricReports (telemetry.py) ---------
    def ensure_report_definition(self, def_id: str, settings: dict, now: float) -> None:
        """A built-in definition, made once (a user's changes to it are kept)."""
        self.conn().execute("INSERT OR IGNORE INTO report_definitions VALUES(?,?,1,?)",
                            (def_id, json.dumps(settings), now))

    def report_definitions(self) -> dict[str, dict]:
        def load():
            return {r["id"]: {"settings": json.loads(r["settings"]), "builtin": bool(r["builtin"]),
                              "created": r["created"]}
                    for r in self.conn().execute("SELECT * FROM report_definitions ORDER BY created, id")}
        return self.cached(("report_definitions",), load)

    def add_report_definition(self, def_id: str, settings: dict, now: float, limit: int) -> bool:
        """False if the id is taken or the rack holds ``limit`` user definitions."""
        with self.tx() as t:
            if t.execute("SELECT COUNT(*) FROM report_definitions WHERE builtin=0").fetchone()[0] >= limit:
                return False
            try:
                t.execute("INSERT INTO report_definitions VALUES(?,?,0,?)", (def_id, json.dumps(settings), now))
            except sqlite3.IntegrityError:
                return False
            return True

    def change_report_definition(self, def_id: str, settings: dict) -> bool:
        return self.conn().execute("UPDATE report_definitions SET settings=? WHERE id=?",
                                   (json.dumps(settings), def_id)).rowcount == 1

    def delete_report_definition(self, def_id: str) -> bool:
        with self.tx() as t:
            t.execute("DELETE FROM metric_reports WHERE id=?", (def_id,))
            return t.execute("DELETE FROM report_definitions WHERE id=? AND builtin=0", (def_id,)).rowcount == 1

    def put_metric_report(self, def_id: str, body: dict, now: float) -> None:
        self.conn().execute("INSERT OR REPLACE INTO metric_reports VALUES(?,?,?)", (def_id, json.dumps(body), now))

    def metric_report(self, def_id: str) -> dict | None:
        row = self.conn().execute("SELECT * FROM metric_reports WHERE id=?", (def_id,)).fetchone()
        return {"body": json.loads(row["body"]), "updated": row["updated"]} if row else None

    def metric_reports(self) -> dict[str, dict]:
        def load():
            return {r["id"]: {"body": json.loads(r["body"]), "updated": r["updated"]}
                    for r in self.conn().execute("SELECT * FROM metric_reports ORDER BY id")}
        return self.cached(("metric_reports",), load)

    # -- tasks ------------------------------------------------------------------------------
    def add_task(self, owner: str, name: str, params: dict, messages: list[dict], now: float,
                 state: str = "Running") -> int:
        with self.tx() as t:
            cur = t.execute("INSERT INTO tasks(owner, name, state, messages, params, started) VALUES(?,?,?,?,?,?)",
                            (owner, name, state, json.dumps(messages), json.dumps(params), now))
            tid = cur.lastrowid
            placeholders = ",".join("?" * len(RUNNING_TASK_STATES))
            t.execute(f"DELETE FROM tasks WHERE state NOT IN ({placeholders}) AND id <= ?",
                      (*RUNNING_TASK_STATES, tid - TASKS_KEPT))
            return tid

    def task(self, tid: int) -> dict | None:
        row = self.conn().execute("SELECT * FROM tasks WHERE id=?", (tid,)).fetchone()
        return _task(row) if row else None

    def tasks(self) -> list[dict]:
        def load():
            return [_task(r) for r in self.conn().execute("SELECT * FROM tasks ORDER BY id")]
        return self.cached(("tasks",), load)

    def running_tasks(self) -> list[dict]:
        placeholders = ",".join("?" * len(RUNNING_TASK_STATES))
        return [_task(r) for r in self.conn().execute(
            f"SELECT * FROM tasks WHERE state IN ({placeholders}) ORDER BY id", RUNNING_TASK_STATES)]

    def update_task(self, tid: int, *, state: str | None = None, status: str | None = None,
                    percent: int | None = None, add_messages: list[dict] = (), params: dict | None = None,
                    ended: float | None = None) -> None:
        """Change a task in one transaction; messages are appended (a task's history)."""
        with self.tx() as t:
            row = t.execute("SELECT messages, params FROM tasks WHERE id=?", (tid,)).fetchone()
            if row is None:
                return
            messages = json.loads(row["messages"]) + list(add_messages)
            merged = {**json.loads(row["params"]), **(params or {})}
            t.execute("UPDATE tasks SET state=COALESCE(?, state), status=COALESCE(?, status), "
                      "percent=COALESCE(?, percent), messages=?, params=?, ended=COALESCE(?, ended) WHERE id=?",
                      (state, status, percent, json.dumps(messages[-64:]), json.dumps(merged), ended, tid))

    def delete_task(self, tid: int, force: bool = False) -> bool:
        """Delete a finished task (``force``: any, e.g. one the agent refused to start)."""
        if force:
            return self.conn().execute("DELETE FROM tasks WHERE id=?", (tid,)).rowcount == 1
        placeholders = ",".join("?" * len(RUNNING_TASK_STATES))
        return self.conn().execute(f"DELETE FROM tasks WHERE id=? AND state NOT IN ({placeholders})",
                                   (tid, *RUNNING_TASK_STATES)).rowcount == 1


def _task(row: sqlite3.Row) -> dict:
    d = dict(row)
    d["messages"] = json.loads(d["messages"])
    d["params"] = json.loads(d["params"])
    return d
