"""The state store: one SQLite database (WAL) shared by the agent and every API worker.

It owns the schema and every query; callers get plain dicts and never write SQL.
Each thread gets its own connection (SQLite connections are not shared across
threads); the database file is the only thing the processes share.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
import secrets
import sqlite3
import threading
import time
import uuid

from .store_updates import SCHEMA as _UPDATE_SCHEMA, UpdateRecords

SCHEMA_VERSION = 1
COMMANDS_KEPT = 1000  # finished commands kept for audit; older ones are pruned

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts(
    id TEXT PRIMARY KEY,
    username TEXT UNIQUE NOT NULL,
    password_hash TEXT NOT NULL,
    role_id TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    locked INTEGER NOT NULL DEFAULT 0,
    password_change_required INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sessions(
    id TEXT PRIMARY KEY,
    token_hash TEXT UNIQUE NOT NULL,
    username TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL NOT NULL,
    client_ip TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS units(
    id TEXT PRIMARY KEY,
    slot INTEGER NOT NULL,
    info TEXT NOT NULL,
    present INTEGER NOT NULL,
    power_state TEXT NOT NULL,
    desired_power TEXT NOT NULL DEFAULT 'On',
    asset_tag TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS readings(
    unit TEXT NOT NULL,
    kind TEXT NOT NULL,
    value REAL,
    updated REAL NOT NULL,
    PRIMARY KEY (unit, kind));
CREATE TABLE IF NOT EXISTS unit_settings(
    unit TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (unit, key));
CREATE TABLE IF NOT EXISTS log(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    unit TEXT NOT NULL,
    created REAL NOT NULL,
    severity TEXT NOT NULL,
    message_id TEXT NOT NULL,
    args TEXT NOT NULL,
    message TEXT NOT NULL,
    origin TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS log_by_unit ON log(unit, id);
CREATE TABLE IF NOT EXISTS subscriptions(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    settings TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'Enabled',
    cursor INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS commands(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    unit TEXT NOT NULL,
    action TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    message TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    finished REAL);
"""

# Settings the API may change, with their defaults (stored in meta).
DEFAULT_SESSION_TIMEOUT = 1800
SESSION_TIMEOUT_RANGE = (30, 86400)
MAX_SESSIONS = 64
MAX_SESSIONS_PER_USER = 16
MAX_ACCOUNTS = 32
# Columns added to ``accounts`` after the first release: ``create`` adds those an older
# store lacks (CREATE TABLE IF NOT EXISTS never adds a column to an existing table).
ACCOUNT_COLUMNS = {
    "failed_logins": "INTEGER NOT NULL DEFAULT 0",  # failed logins counted towards a lockout
    "last_failure": "REAL NOT NULL DEFAULT 0",      # time of the last one
    "locked_since": "REAL NOT NULL DEFAULT 0",      # when the lockout began (locked=1)
}


class LastAdministrator(Exception):
    """A change or deletion would leave no enabled Administrator account."""


class AccountChanged(Exception):
    """The account is no longer as the caller read it (a conditional write lost a race)."""


class StoreError(Exception):
    """The store file cannot be used as it is; the message names the file and what to do."""


_REMEDY = ("stop the service and restore the file from a backup, or move it aside and run "
           "'redfish-racklet init' for an empty rack (accounts, settings and logs are then lost)")


def check(path: str) -> None:
    """Refuse a store that is not a whole SQLite database of a schema this version knows,
    before any process opens it for writing: garbage, a truncated file, a directory, a
    store from a newer release. Read-only (``mode=ro``): the file is left exactly as it
    is, never re-initialised. Raises StoreError."""
    if not os.path.isfile(path):
        raise StoreError(f"the store {path} is not a regular file; {_REMEDY}")
    try:
        c = sqlite3.connect(pathlib.Path(os.path.abspath(path)).as_uri() + "?mode=ro", uri=True, timeout=10)
        try:
            problems = [r[0] for r in c.execute("PRAGMA quick_check")]
            row = c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        finally:
            c.close()
    except sqlite3.DatabaseError as e:   # "file is not a database", "malformed", no meta table
        raise StoreError(f"the store {path} is unreadable or damaged ({e}); {_REMEDY}") from None
    if problems != ["ok"]:
        raise StoreError(f"the store {path} is damaged ({problems[0]}); {_REMEDY}")
    version = row[0] if row else ""
    if not version.isdigit():
        raise StoreError(f"the store {path} has no schema version; {_REMEDY}")
    if int(version) > SCHEMA_VERSION:
        raise StoreError(f"the store {path} has schema version {version}, newer than this release's "
                         f"({SCHEMA_VERSION}): run the release that wrote it, or restore a backup made "
                         f"by this one")
LOG_MAX = 1000  # entries kept in the event log; the oldest are overwritten (WrapsWhenFull)
READ_CACHE_MAX = 1024  # entries per thread and store generation


def is_full(e: BaseException) -> bool:
    """An SQLite error saying the store's file system is full (the transaction was rolled back)."""
    return isinstance(e, sqlite3.OperationalError) and getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


def token_digest(token: str) -> str:
    """Sessions are stored by the SHA-256 of their token, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


class Store(UpdateRecords):
    """Thread-safe facade over the SQLite state file (the update family's methods: ``store_updates``)."""

    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()
        self._uuid: str | None = None

    # -- connections -------------------------------------------------------
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            c.row_factory = sqlite3.Row
            c.execute("PRAGMA busy_timeout=10000")
            # FULL: in WAL mode the log is fsynced at every commit, so what the API
            # acknowledged survives a power cut, not only a crash (NORMAL would wait for
            # the next checkpoint). The agent commits a sweep a second: one small fsync.
            c.execute("PRAGMA synchronous=FULL")
            c.execute("PRAGMA foreign_keys=ON")
            self._local.conn = c
        return c

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    # -- read cache --------------------------------------------------------------
    def generation(self) -> tuple[int, int]:
        """Changes whenever the database may have changed: by another connection
        (``PRAGMA data_version``, any process) or by this one (``total_changes``)."""
        c = self.conn()
        return c.execute("PRAGMA data_version").fetchone()[0], c.total_changes

    def cached(self, key, load):
        """``load()``, or its result from an earlier call in the same generation.

        Exact, not approximate: an entry lives only while nothing was written to the
        database since it was read. Results are shared: callers must not mutate them.
        """
        gen = self.generation()
        local = self._local
        if getattr(local, "gen", None) != gen:
            local.gen, local.cache = gen, {}
        try:
            return local.cache[key]
        except KeyError:
            if len(local.cache) >= READ_CACHE_MAX:  # e.g. a flood of unknown tokens
                local.cache = {}
            value = local.cache[key] = load()
            return value

    def create(self) -> None:
        """Create the schema (idempotent) and the service's identity."""
        c = self.conn()
        c.execute("PRAGMA journal_mode=WAL")
        c.executescript(_SCHEMA + _UPDATE_SCHEMA)
        have = {r[1] for r in c.execute("PRAGMA table_info(accounts)")}
        for name, decl in ACCOUNT_COLUMNS.items():
            if name not in have:
                c.execute(f"ALTER TABLE accounts ADD COLUMN {name} {decl}")
        with self.tx() as t:
            t.execute("INSERT OR IGNORE INTO meta VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
            t.execute("INSERT OR IGNORE INTO meta VALUES('service_uuid', ?)", (str(uuid.uuid4()),))
        os.chmod(self.path, 0o600)

    def tx(self):
        return _Tx(self.conn())

    # -- meta ----------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.conn().execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (key, value))

    def agent_stats(self) -> dict:
        """What the agent counts about itself (sweeps, their time, sensor errors): the
        metrics endpoint shows it; persisted so counters never go back."""
        raw = self.get_meta("agent_stats")
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return {}

    def set_agent_stats(self, stats: dict) -> None:
        self.set_meta("agent_stats", json.dumps(stats))

    def service_uuid(self) -> str:
        if self._uuid is None:  # written once by init, never changed
            self._uuid = self.get_meta("service_uuid")
        return self._uuid

    def session_timeout(self) -> int:
        return int(self.get_meta("session_timeout", str(DEFAULT_SESSION_TIMEOUT)))

    # -- accounts --------------------------------------------------------------
    def add_account(self, username: str, password_hash: str, role_id: str, *, enabled: bool = True,
                    password_change_required: bool = False, limit: int | None = None) -> str | None:
        """The new account's id; None when ``limit`` accounts exist already. Ids are never
        reused (a deleted account's URI does not come back as someone else's)."""
        with self.tx() as t:
            if limit is not None and t.execute("SELECT COUNT(*) FROM accounts").fetchone()[0] >= limit:
                return None
            n = t.execute("SELECT MAX(COALESCE(MAX(CAST(id AS INTEGER)), 0) + 1, COALESCE((SELECT CAST(value "
                          "AS INTEGER) FROM meta WHERE key='next_account_id'), 1)) FROM accounts").fetchone()[0]
            t.execute("INSERT INTO accounts(id, username, password_hash, role_id, enabled, "
                      "password_change_required) VALUES(?,?,?,?,?,?)",
                      (str(n), username, password_hash, role_id, int(enabled), int(password_change_required)))
            t.execute("INSERT OR REPLACE INTO meta VALUES('next_account_id', ?)", (str(n + 1),))
        return str(n)

    def change_account(self, account_id: str, changes: dict, keep_session: str | None = None,
                       expect: dict | None = None) -> dict | None:
        """Apply ``changes`` (column -> value) to an account and what follows for its
        sessions, in one transaction: a new UserName moves them, disabling ends them all, a
        new password or role ends all but ``keep_session`` (the caller's own). Raises
        LastAdministrator, changing nothing, if no enabled Administrator would remain, and
        AccountChanged if a column differs from ``expect`` (If-Match, checked atomically).
        The account as changed; None if there is no such account."""
        unknown = set(changes) - _ACCOUNT_FIELDS
        if unknown:
            raise ValueError(f"not account columns: {unknown}")
        with self.tx() as t:
            old = t.execute("SELECT * FROM accounts WHERE id=?", (account_id,)).fetchone()
            if old is None:
                return None
            if expect and any(old[k] != v for k, v in expect.items()):
                raise AccountChanged()
            admins = _enabled_admins(t)
            if changes:
                t.execute(f"UPDATE accounts SET {', '.join(f'{k}=?' for k in changes)} WHERE id=?",
                          (*changes.values(), account_id))
            if admins and not _enabled_admins(t):
                raise LastAdministrator()
            name = changes.get("username", old["username"])
            if name != old["username"]:
                t.execute("UPDATE sessions SET username=? WHERE username=?", (name, old["username"]))
            if not changes.get("enabled", True):
                t.execute("DELETE FROM sessions WHERE username=?", (name,))
            elif "password_hash" in changes or changes.get("role_id", old["role_id"]) != old["role_id"]:
                t.execute("DELETE FROM sessions WHERE username=? AND id IS NOT ?", (name, keep_session))
            return dict(t.execute("SELECT * FROM accounts WHERE id=?", (account_id,)).fetchone())

    def delete_account(self, account_id: str) -> dict | None:
        """Remove an account and its sessions; the account removed, None if there was none.
        Raises LastAdministrator, removing nothing, for the last enabled Administrator."""
        with self.tx() as t:
            row = t.execute("SELECT * FROM accounts WHERE id=?", (account_id,)).fetchone()
            if row is None:
                return None
            admins = _enabled_admins(t)
            t.execute("DELETE FROM accounts WHERE id=?", (account_id,))
            if admins and not _enabled_admins(t):
                raise LastAdministrator()
            t.execute("DELETE FROM sessions WHERE username=?", (row["username"],))
        return dict(row)

    def record_login_failure(self, account_id: str, now: float, reset_after: float | None,
                             lock_at: int | None) -> bool:
        """Count a failed login. The count restarts when the previous failure is more than
        ``reset_after`` seconds old (None: only a good login resets it); reaching ``lock_at``
        (None: never) locks the account. True when this failure locked it."""
        with self.tx() as t:
            row = t.execute("SELECT failed_logins, last_failure, locked FROM accounts WHERE id=?",
                            (account_id,)).fetchone()
            if row is None:
                return False
            stale = reset_after is not None and now - row["last_failure"] > reset_after
            n = 1 if stale else row["failed_logins"] + 1
            lock = not row["locked"] and lock_at is not None and n >= lock_at
            t.execute("UPDATE accounts SET failed_logins=?, last_failure=?, locked=locked OR ?, "
                      "locked_since=CASE WHEN ? THEN ? ELSE locked_since END WHERE id=?",
                      (n, now, int(lock), int(lock), now, account_id))
        return lock

    def clear_login_failures(self, account_id: str) -> None:
        """A good login resets the count (no write when there is nothing to reset)."""
        self.conn().execute("UPDATE accounts SET failed_logins=0 WHERE id=? AND failed_logins != 0",
                            (account_id,))

    def account_count(self) -> int:
        return self.conn().execute("SELECT COUNT(*) FROM accounts").fetchone()[0]

    def set_password_hash(self, username: str, password_hash: str) -> None:
        self.conn().execute("UPDATE accounts SET password_hash=? WHERE username=?",
                            (password_hash, username))

    def account_by_name(self, username: str) -> dict | None:
        row = self.conn().execute("SELECT * FROM accounts WHERE username=?", (username,)).fetchone()
        return dict(row) if row else None

    def account(self, account_id: str) -> dict | None:
        row = self.conn().execute("SELECT * FROM accounts WHERE id=?", (account_id,)).fetchone()
        return dict(row) if row else None

    def accounts(self) -> list[dict]:
        rows = self.conn().execute("SELECT * FROM accounts ORDER BY CAST(id AS INTEGER)")
        return [dict(r) for r in rows]

    def account_cached(self, username: str) -> dict | None:
        """``account_by_name`` through the read cache (every Basic request asks)."""
        return self.cached(("account", username), lambda: self.account_by_name(username))

    # -- sessions --------------------------------------------------------------
    def create_session(self, username: str, client_ip: str, now: float) -> tuple[dict, str] | None:
        """Create a session; None when a cap is reached (MAX_SESSIONS in all,
        MAX_SESSIONS_PER_USER for one account). Returns (session, token)."""
        token = secrets.token_hex(32)  # 256 bits; hex, so clients and validators can test its randomness
        sid = secrets.token_hex(8)
        with self.tx() as t:
            self._expire_sessions(t, now)
            if t.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] >= MAX_SESSIONS:
                return None
            if t.execute("SELECT COUNT(*) FROM sessions WHERE username=?",
                         (username,)).fetchone()[0] >= MAX_SESSIONS_PER_USER:
                return None
            t.execute("INSERT INTO sessions VALUES(?,?,?,?,?,?)",
                      (sid, token_digest(token), username, now, now, client_ip))
        return self.session(sid), token

    def _expire_sessions(self, t, now: float) -> None:
        t.execute("DELETE FROM sessions WHERE last_used < ?", (now - self.session_timeout(),))

    def session_by_token(self, token: str, now: float) -> dict | None:
        """The live session for a token, with its account's role and state, in one query
        (this runs on every request). Refreshes the idle timer at most once per 5 s. The
        dict is shared through the read cache: callers must not change it."""
        digest = token_digest(token)
        row = self.cached(("token", digest), lambda: _dict_or_none(self.conn().execute(
            "SELECT s.id, s.username, s.last_used, a.id AS account_id, a.role_id, a.enabled, a.locked, "
            "a.password_change_required, "
            f"COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key='session_timeout'), "
            f"{DEFAULT_SESSION_TIMEOUT}) AS timeout "
            "FROM sessions s JOIN accounts a ON a.username = s.username WHERE s.token_hash=?",
            (digest,)).fetchone()))
        if row is None:
            return None
        if row["last_used"] < now - row["timeout"]:
            self.conn().execute("DELETE FROM sessions WHERE id=?", (row["id"],))
            return None
        if now - row["last_used"] > 5:
            try:
                self.conn().execute("UPDATE sessions SET last_used=? WHERE id=?", (now, row["id"]))
            except sqlite3.OperationalError as e:   # a full disk: reads go on, the idle timer is not
                if not is_full(e):                  # refreshed (the session may end sooner)
                    raise
        return row

    def session(self, sid: str) -> dict | None:
        row = self.conn().execute("SELECT * FROM sessions WHERE id=?", (sid,)).fetchone()
        return dict(row) if row else None

    def sessions(self, now: float) -> list[dict]:
        with self.tx() as t:
            self._expire_sessions(t, now)
            rows = t.execute("SELECT * FROM sessions ORDER BY created").fetchall()
        return [dict(r) for r in rows]

    def delete_session(self, sid: str) -> bool:
        return self.conn().execute("DELETE FROM sessions WHERE id=?", (sid,)).rowcount == 1

    # -- units (observed state written by the agent) ----------------------------
    def upsert_unit(self, unit_id: str, slot: int, info: dict, present: bool,
                    power_state: str, now: float) -> None:
        self.conn().execute(
            "INSERT INTO units(id, slot, info, present, power_state, updated) VALUES(?,?,?,?,?,?) "
            "ON CONFLICT(id) DO UPDATE SET slot=excluded.slot, info=excluded.info, "
            "present=excluded.present, power_state=excluded.power_state, updated=excluded.updated",
            (unit_id, slot, json.dumps(info), int(present), power_state, now))

    def remove_units_except(self, keep: list[str]) -> None:
        marks = ",".join("?" * len(keep))
        self.conn().execute(f"DELETE FROM units WHERE id NOT IN ({marks})", keep)

    def set_observed(self, unit_id: str, present: bool, power_state: str, now: float) -> None:
        self.conn().execute("UPDATE units SET present=?, power_state=?, updated=? WHERE id=?",
                            (int(present), power_state, now, unit_id))

    def set_desired_power(self, unit_id: str, desired: str) -> None:
        self.conn().execute("UPDATE units SET desired_power=? WHERE id=?", (desired, unit_id))

    def set_asset_tag(self, unit_id: str, tag: str) -> None:
        self.conn().execute("UPDATE units SET asset_tag=? WHERE id=?", (tag, unit_id))

    def unit(self, unit_id: str) -> dict | None:
        def load():
            row = self.conn().execute("SELECT * FROM units WHERE id=?", (unit_id,)).fetchone()
            return _unit(row) if row else None
        return self.cached(("unit", unit_id), load)

    def units(self) -> list[dict]:
        return [_unit(r) for r in self.conn().execute("SELECT * FROM units ORDER BY slot")]

    # -- settings of a unit that the API writes and the agent applies ---------------
    # Keys: 'led' (Off/Lit/Blinking), 'boot' (the Boot override), 'outlet' (its
    # PowerOnDelaySeconds and PowerRestorePolicy); values are JSON. The agent writes
    # 'bmc_reset' (time of the BMC's last reset) and 'fault' (the tray's rail/presence
    # hardware does not answer: the reason), removed when it answers again.
    def settings(self, unit_id: str) -> dict:
        def load():
            rows = self.conn().execute("SELECT key, value FROM unit_settings WHERE unit=?", (unit_id,))
            return {r["key"]: json.loads(r["value"]) for r in rows}
        return self.cached(("settings", unit_id), load)

    def all_settings(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for r in self.conn().execute("SELECT unit, key, value FROM unit_settings"):
            out.setdefault(r["unit"], {})[r["key"]] = json.loads(r["value"])
        return out

    def set_setting(self, unit_id: str, key: str, value) -> None:
        self.conn().execute("INSERT OR REPLACE INTO unit_settings VALUES(?,?,?)",
                            (unit_id, key, json.dumps(value)))

    def delete_setting(self, unit_id: str, key: str) -> None:
        self.conn().execute("DELETE FROM unit_settings WHERE unit=? AND key=?", (unit_id, key))

    # -- the rack (facts written by the agent at start; the power limit by the API) --
    def rack_info(self) -> dict:
        return self.cached(("rack_info",), lambda: json.loads(self.get_meta("rack_info", "{}")))

    def set_rack_info(self, info: dict) -> None:
        self.set_meta("rack_info", json.dumps(info))

    def power_limit(self) -> float | None:
        """The rack's power limit in watts (PowerLimit), None when not set (the supply's capacity)."""
        raw = self.cached(("power_limit",), lambda: self.get_meta("power_limit_watts"))
        return None if raw in (None, "") else float(raw)

    def set_power_limit(self, watts: float | None) -> None:
        self.set_meta("power_limit_watts", "" if watts is None else repr(float(watts)))

    # -- sensor readings (written by the agent, one transaction per sweep) ---------
    def write_readings(self, sweep: dict[str, dict[str, float | None]], now: float) -> None:
        with self.tx() as t:
            t.executemany("INSERT OR REPLACE INTO readings VALUES(?,?,?,?)",
                          [(uid, kind, value, now) for uid, r in sweep.items() for kind, value in r.items()])

    def readings(self, unit_id: str) -> dict[str, dict]:
        """{kind: {value, updated}} of a unit, or of the rack (unit id 'Rack': busbar
        power/voltage/current/energy, temperature, fan_rpm, fan_duty)."""
        def load():
            rows = self.conn().execute("SELECT kind, value, updated FROM readings WHERE unit=?", (unit_id,))
            return {r["kind"]: {"value": r["value"], "updated": r["updated"]} for r in rows}
        return self.cached(("readings", unit_id), load)

    def energy_joules(self) -> dict[str, float]:
        rows = self.conn().execute("SELECT unit, value FROM readings WHERE kind='energy' AND value IS NOT NULL")
        return {r["unit"]: r["value"] for r in rows}

    # -- the event log (written by the agent; one table, read per unit or rack-wide) ----
    def add_log(self, unit: str, severity: str, message_id: str, args: list, message: str,
                origin: str, now: float) -> int:
        """Append an entry ('' as unit: the rack's own); the oldest beyond LOG_MAX go."""
        with self.tx() as t:
            cur = t.execute("INSERT INTO log(unit, created, severity, message_id, args, message, origin) "
                            "VALUES(?,?,?,?,?,?,?)", (unit, now, severity, message_id, json.dumps(args),
                                                      message, origin))
            t.execute("DELETE FROM log WHERE id <= ?", (cur.lastrowid - LOG_MAX,))
        return cur.lastrowid

    def log_entries(self, unit: str | None = None, skip: int = 0, top: int | None = None) -> list[dict]:
        """Entries, oldest first; ``unit`` None: all of them (the rack's event log)."""
        where, args = ("", []) if unit is None else ("WHERE unit=?", [unit])
        rows = self.conn().execute(f"SELECT * FROM log {where} ORDER BY id LIMIT ? OFFSET ?",
                                   args + [-1 if top is None else top, skip])
        return [dict(r, args=json.loads(r["args"])) for r in rows]

    def log_count(self, unit: str | None = None) -> int:
        where, args = ("", []) if unit is None else ("WHERE unit=?", [unit])
        return self.conn().execute(f"SELECT COUNT(*) FROM log {where}", args).fetchone()[0]

    def log_entry(self, entry_id: int) -> dict | None:
        row = self.conn().execute("SELECT * FROM log WHERE id=?", (entry_id,)).fetchone()
        return dict(row, args=json.loads(row["args"])) if row else None

    def log_page(self, unit: str | None, skip: int, top: int | None) -> tuple[int, list[dict]]:
        """(log_count, log_entries) read in one snapshot, so a page agrees with its count
        while the agent writes."""
        c = self.conn()
        c.execute("BEGIN")  # deferred: a read transaction, one WAL snapshot
        try:
            return self.log_count(unit), self.log_entries(unit, skip, top)
        finally:
            c.execute("COMMIT")

    def clear_log(self, unit: str | None = None) -> int:
        where, args = ("", []) if unit is None else ("WHERE unit=?", [unit])
        return self.conn().execute(f"DELETE FROM log {where}", args).rowcount

    # -- event subscriptions (the API writes settings; the agent's delivery, cursor and state) --
    # ``settings`` is JSON (destination, context, filters, headers, retry policy); ``cursor``
    # the id of the last journal (``log``) entry handled; ``state`` Enabled or Suspended.
    def add_subscription(self, owner: str, settings: dict, now: float, limit: int) -> int | None:
        """A new subscription, starting at the journal's current end; None at ``limit``."""
        with self.tx() as t:
            if t.execute("SELECT COUNT(*) FROM subscriptions WHERE json_extract(settings, '$.sse') IS NULL"
                         ).fetchone()[0] >= limit:
                return None
            end = t.execute("SELECT COALESCE(MAX(id), 0) FROM log").fetchone()[0]
            end = max(end, t.execute("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name='log'), 0)")
                      .fetchone()[0])
            cur = t.execute("INSERT INTO subscriptions(owner, settings, cursor, created) VALUES(?,?,?,?)",
                            (owner, json.dumps(settings), end, now))
        return cur.lastrowid

    def add_stream_subscription(self, owner: str, settings: dict, now: float) -> int:
        """The EventDestination of an open SSE stream (``settings["sse"]`` true): made when the
        stream opens, deleted when it ends (sse_server.py); not a push subscription."""
        cur = self.conn().execute("INSERT INTO subscriptions(owner, settings, created) VALUES(?,?,?)",
                                  (owner, json.dumps(dict(settings, sse=True)), now))
        return cur.lastrowid

    def delete_stream_subscriptions(self) -> int:
        """Those of streams a previous SSE listener left (it stopped without ending them)."""
        return self.conn().execute("DELETE FROM subscriptions WHERE json_extract(settings, '$.sse') IS NOT NULL"
                                   ).rowcount

    def subscription_ids(self) -> set[int]:
        return {r[0] for r in self.conn().execute("SELECT id FROM subscriptions")}

    def subscriptions(self) -> list[dict]:
        return [_subscription(r) for r in self.conn().execute("SELECT * FROM subscriptions ORDER BY id")]

    def subscription(self, sub_id: int) -> dict | None:
        row = self.conn().execute("SELECT * FROM subscriptions WHERE id=?", (sub_id,)).fetchone()
        return _subscription(row) if row else None

    def change_subscription(self, sub_id: int, settings: dict | None = None, state: str | None = None) -> bool:
        """New settings and/or state (the API); False if it is gone."""
        sets, args = [], []
        if settings is not None:
            sets.append("settings=?")
            args.append(json.dumps(settings))
        if state is not None:
            sets.append("state=?")
            args.append(state)
        if not sets:
            return self.subscription(sub_id) is not None
        return self.conn().execute(f"UPDATE subscriptions SET {', '.join(sets)} WHERE id=?",
                                   (*args, sub_id)).rowcount == 1

    def advance_subscription(self, sub_id: int, cursor: int, state: str | None = None) -> bool:
        """The delivery's progress (and a suspension); False if it is gone."""
        if state is None:
            q, args = "UPDATE subscriptions SET cursor=MAX(cursor, ?) WHERE id=?", (cursor, sub_id)
        else:
            q, args = "UPDATE subscriptions SET cursor=MAX(cursor, ?), state=? WHERE id=?", (cursor, state, sub_id)
        return self.conn().execute(q, args).rowcount == 1

    def delete_subscription(self, sub_id: int) -> bool:
        return self.conn().execute("DELETE FROM subscriptions WHERE id=?", (sub_id,)).rowcount == 1

    def log_after(self, cursor: int, limit: int) -> list[dict]:
        """At most ``limit`` journal entries with an id above ``cursor``, oldest first."""
        rows = self.conn().execute("SELECT * FROM log WHERE id > ? ORDER BY id LIMIT ?", (cursor, limit))
        return [dict(r, args=json.loads(r["args"])) for r in rows]

    # -- commands (API -> agent) -------------------------------------------------
    def add_command(self, unit_id: str, action: str, now: float) -> int:
        cur = self.conn().execute("INSERT INTO commands(unit, action, created) VALUES(?,?,?)",
                                  (unit_id, action, now))
        return cur.lastrowid

    def claim_command(self, cid: int) -> dict | None:
        """Atomically move a pending command to running; None if it was not pending."""
        c = self.conn()
        if c.execute("UPDATE commands SET state='running' WHERE id=? AND state='pending'",
                     (cid,)).rowcount != 1:
            return None
        return dict(c.execute("SELECT * FROM commands WHERE id=?", (cid,)).fetchone())

    def pending_commands(self) -> list[int]:
        return [r[0] for r in self.conn().execute(
            "SELECT id FROM commands WHERE state='pending' ORDER BY id")]

    def finish_command(self, cid: int, state: str, message: str, now: float) -> None:
        with self.tx() as t:
            t.execute("UPDATE commands SET state=?, message=?, finished=? WHERE id=?",
                      (state, message, now, cid))
            t.execute("DELETE FROM commands WHERE state NOT IN ('pending', 'running') AND id <= ?",
                      (cid - COMMANDS_KEPT,))

    def cancel_command(self, cid: int, now: float) -> bool:
        """Withdraw a command the agent has not started; True if it was withdrawn."""
        return self.conn().execute(
            "UPDATE commands SET state='cancelled', finished=? WHERE id=? AND state='pending'",
            (now, cid)).rowcount == 1

    def command(self, cid: int) -> dict | None:
        row = self.conn().execute("SELECT * FROM commands WHERE id=?", (cid,)).fetchone()
        return dict(row) if row else None


    # -- factory reset ------------------------------------------------------------
    def factory_wipe(self, admin: str, admin_hash: str) -> None:
        """One transaction: forget people, settings, logs and identity (see factory.py)."""
        keep_meta = ("schema_version", "rack_info", "sse_port", "agent_stats")
        with self.tx() as t:
            for table in ("sessions", "accounts", "log", "unit_settings", "subscriptions", "signing_keys", "tasks",
                          "metric_reports"):
                t.execute(f"DELETE FROM {table}")
            t.execute("DELETE FROM commands WHERE state NOT IN ('running')")
            t.execute("DELETE FROM report_definitions WHERE builtin=0")
            t.execute("UPDATE units SET desired_power='Off', asset_tag=''")
            t.execute(f"DELETE FROM meta WHERE key NOT IN ({','.join('?' * len(keep_meta))})", keep_meta)
            t.execute("INSERT INTO meta VALUES('service_uuid', ?)", (str(uuid.uuid4()),))
            t.execute("INSERT INTO accounts(id, username, password_hash, role_id) VALUES('1', ?, ?, "
                      "'Administrator')", (admin, admin_hash))
        self._uuid = None


_ACCOUNT_FIELDS = frozenset({"username", "password_hash", "role_id", "enabled", "locked",
                             "password_change_required", *ACCOUNT_COLUMNS})


def _dict_or_none(row: sqlite3.Row | None) -> dict | None:
    return dict(row) if row is not None else None


def _enabled_admins(t: sqlite3.Connection) -> int:
    return t.execute("SELECT COUNT(*) FROM accounts WHERE role_id='Administrator' AND enabled=1").fetchone()[0]


@functools.lru_cache(maxsize=64)
def _info(raw: str) -> dict:
    return json.loads(raw)


def _subscription(row: sqlite3.Row) -> dict:
    d = dict(row)
    d["settings"] = json.loads(d["settings"])
    return d


def _unit(row: sqlite3.Row) -> dict:
    d = dict(row)
    d["info"] = _info(d["info"])  # static facts: parsed once per distinct value (read-only)
    d["present"] = bool(d["present"])
    return d


class _Tx:
    """``with store.tx() as c:`` — one IMMEDIATE transaction, rolled back on error. Inside
    another one (same connection) it joins it: the outer one commits or rolls back."""

    def __init__(self, conn: sqlite3.Connection):
        self.c = conn
        self.joined = False

    def __enter__(self) -> sqlite3.Connection:
        if self.c.in_transaction:
            self.joined = True
        else:
            self.c.execute("BEGIN IMMEDIATE")
        return self.c

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.joined:
            self.c.execute("ROLLBACK" if exc_type else "COMMIT")


def now() -> float:
    return time.time()
