"""Who is asking, and may they: passwords, the account policy, lockout, and login.

- Passwords are kept only as scrypt hashes (standard library), checked in constant work:
  an unknown user, a locked or disabled account and a wrong password all cost one scrypt.
- ``AccountPolicy``: the AccountService settings (password lengths, lockout), in the store.
- ``login``: the one check of a user name and password (HTTP Basic and session creation
  both use it). It counts failures towards a lockout, lifts an expired one, and writes
  the AccountSecurity audit entries. A refusal never says why.
- ``BasicCache``: repeated good HTTP Basic requests skip scrypt (see docs/security.md).
- ``Principal``: the authenticated caller; roles map to the DMTF privilege names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, fields

from . import heap

# scrypt cost: ~40 ms and 16 MiB per check on a Pi-class CPU's desktop cousin.
_N, _R, _P = 2**14, 8, 1


heap.give_big_buffers_back()   # scrypt's 16 MiB buffers: see heap.py
MIN_PASSWORD, MAX_PASSWORD = 12, 128   # defaults of MinPasswordLength / MaxPasswordLength
PASSWORD_LENGTH_BOUNDS = (8, 128)      # what a PATCH of the AccountService may set them to
USERNAME_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")

# Redfish predefined roles (Redfish_1.8.0_PrivilegeRegistry / DSP0266 "Roles").
ROLES: dict[str, tuple[str, ...]] = {
    "Administrator": ("Login", "ConfigureManager", "ConfigureUsers", "ConfigureComponents",
                      "ConfigureSelf"),
    "Operator": ("Login", "ConfigureComponents", "ConfigureSelf"),
    "ReadOnly": ("Login", "ConfigureSelf"),
}
_HELD = {role: frozenset(privileges) for role, privileges in ROLES.items()}
ACCOUNT_SERVICE_URI = "/redfish/v1/AccountService"
ACCOUNTS_URI = f"{ACCOUNT_SERVICE_URI}/Accounts"
SESSIONS_URI = "/redfish/v1/SessionService/Sessions"


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "scrypt${}${}${}${}${}".format(_N, _R, _P, base64.b64encode(salt).decode(),
                                          base64.b64encode(digest).decode())


_DUMMY = None


def verify_password(password: str, stored: str | None) -> bool:
    """Constant-work check; an unknown user (stored None) costs the same as a known one."""
    global _DUMMY
    if stored is None:
        if _DUMMY is None:
            _DUMMY = hash_password(secrets.token_hex(8))
        stored, result = _DUMMY, False
    else:
        result = True
    try:
        _, n, r, p, salt, digest = stored.split("$")
        calc = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                              p=int(p), dklen=32)
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(calc, base64.b64decode(digest)) and result


def generate_password() -> str:
    """A strong random password (24 URL-safe characters, ~143 bits)."""
    return secrets.token_urlsafe(18)


# -- the account policy (AccountService) ---------------------------------------------------

@dataclass(frozen=True)
class AccountPolicy:
    """The AccountService's settings. Lockout (DMTF AccountService semantics): after
    ``lockout_threshold`` failed logins, each within ``counter_reset_after`` seconds of
    the previous one, the account is locked for ``lockout_duration`` seconds. A threshold
    or a duration of 0: no lockout. ``counter_reset_enabled`` false: the count is reset
    only by a good login, and a lockout lasts until an administrator unlocks."""

    min_password: int = MIN_PASSWORD
    max_password: int = MAX_PASSWORD
    lockout_threshold: int = 20
    lockout_duration: int = 600
    counter_reset_after: int = 600
    counter_reset_enabled: bool = True

    META_KEY = "account_policy"

    @classmethod
    def load(cls, store) -> "AccountPolicy":
        raw = store.cached(("meta", cls.META_KEY), lambda: store.get_meta(cls.META_KEY))
        if not raw:
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(raw).items() if k in known})

    def save(self, store) -> None:
        store.set_meta(self.META_KEY, json.dumps(asdict(self)))

    @property
    def lock_at(self) -> int | None:
        """Failures that lock an account; None: lockout is off."""
        engaged = self.lockout_threshold > 0 and (self.lockout_duration > 0 or not self.counter_reset_enabled)
        return self.lockout_threshold if engaged else None

    def lockout_expired(self, acct: dict, now: float) -> bool:
        return (bool(acct["locked"]) and self.counter_reset_enabled and self.lockout_duration > 0
                and now - acct["locked_since"] >= self.lockout_duration)


def password_problem(password, username: str | None = None, policy: AccountPolicy | None = None) -> str | None:
    """Why a password is not acceptable, or None. Never includes the password."""
    policy = policy or AccountPolicy()
    if not isinstance(password, str):
        return "not a string"
    if not policy.min_password <= len(password) <= policy.max_password:
        return f"length must be {policy.min_password}..{policy.max_password} characters"
    if username is not None and password.casefold() == username.casefold():
        return "must not be the user name"
    return None


def username_problem(name) -> str | None:
    if not isinstance(name, str):
        return "not a string"
    if not USERNAME_RE.fullmatch(name):
        return "1 to 32 letters, digits, '.', '_' or '-'"
    return None


# -- the caller ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Principal:
    username: str
    role: str
    session_id: str | None = None
    account_id: str | None = None
    password_change_required: bool = False

    @property
    def privileges(self) -> tuple[str, ...]:
        return ROLES.get(self.role, ())

    @property
    def account_uri(self) -> str:
        return f"{ACCOUNTS_URI}/{self.account_id}"

    def satisfies(self, alternatives: list[list[str]]) -> bool:
        """Privilege-registry semantics: any one of the AND-lists must be fully held."""
        have = _HELD.get(self.role, frozenset())
        return any(have.issuperset(needed) for needed in alternatives)


def principal_of(acct: dict, session_id: str | None = None) -> Principal:
    """The caller authenticated as account row ``acct`` (a session's row carries
    ``account_id`` instead of ``id``)."""
    return Principal(acct["username"], acct["role_id"], session_id, acct.get("account_id", acct.get("id")),
                     bool(acct["password_change_required"]))


def password_change_allows(p: Principal, method: str, path: str) -> bool:
    """DSP0266 "Password change required": such an account may read and PATCH (its
    password) its own account, and read or end its own session; nothing else."""
    path = path.rstrip("/")
    if path == p.account_uri:
        return method in ("GET", "HEAD", "PATCH")
    return p.session_id is not None and path == f"{SESSIONS_URI}/{p.session_id}" and \
        method in ("GET", "HEAD", "DELETE")


def parse_basic(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, pw = raw.partition(":")
    return (user, pw) if sep else None


# -- the HTTP Basic cache ----------------------------------------------------------------

class BasicCache:
    """Good HTTP Basic credentials seen recently by this worker process, so that a tool
    sending Basic on every request pays scrypt once per ``ttl`` seconds, not each time.

    Keyed by HMAC-SHA256 under a random per-process key of (user name, password): the
    password itself is not kept. An entry holds the account's stored hash as it was, and
    counts only while the account's row still has that hash (a new password has a new
    salt, so any password change misses at once); the caller also re-reads Enabled,
    Locked and the role from the row on every request. Failures are never cached.
    """

    def __init__(self, ttl: float = 60.0, size: int = 256, clock=time.monotonic):
        self.ttl, self.size, self.clock = ttl, size, clock
        self._key = secrets.token_bytes(32)
        self._entries: dict[bytes, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _digest(self, username: str, password: str) -> bytes:
        return hmac.new(self._key, username.encode() + b"\0" + password.encode(), hashlib.sha256).digest()

    def hit(self, username: str, password: str, acct: dict) -> bool:
        if self.ttl <= 0:
            return False
        entry = self._entries.get(self._digest(username, password))
        return (entry is not None and entry[1] > self.clock()
                and hmac.compare_digest(entry[0], acct["password_hash"]))

    def remember(self, username: str, password: str, acct: dict) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[self._digest(username, password)] = (acct["password_hash"], self.clock() + self.ttl)


# -- login ---------------------------------------------------------------------------------

# At most one scrypt check at a time per worker process. Another arriving meanwhile waits
# at most PASSWORD_CHECK_WAIT (a few ~40 ms checks: a handful of honest clients logging
# in at once all get through), then is answered 503 with Retry-After (PasswordCheckBusy):
# a flood of wrong passwords costs at most one core per worker and holds the worker
# threads that token and cached-Basic requests need only briefly.
_PASSWORD_CHECKS = threading.BoundedSemaphore(1)
PASSWORD_CHECK_WAIT = 0.25


class PasswordCheckBusy(Exception):
    """A password check is already running in this worker; retry in a moment."""


def usable(acct: dict) -> bool:
    return bool(acct["enabled"]) and not acct["locked"]


def login(store, username, password, *, via: str = "Redfish", client: str = "",
          cache: BasicCache | None = None, now: float | None = None) -> dict | None:
    """The account if the credentials are right and the account may log in, else None
    (the same None, after the same work, whatever the reason)."""
    now = time.time() if now is None else now
    if not isinstance(username, str) or not isinstance(password, str):
        username, password = str(username)[:64], ""
    acct = store.account_cached(username) if username else None
    if acct is not None and cache is not None and usable(acct) and cache.hit(username, password, acct):
        if acct["failed_logins"]:
            store.clear_login_failures(acct["id"])
        return acct
    if not _PASSWORD_CHECKS.acquire(timeout=PASSWORD_CHECK_WAIT):
        raise PasswordCheckBusy()
    try:
        ok = verify_password(password, acct["password_hash"] if acct else None)  # always: constant work
    finally:
        _PASSWORD_CHECKS.release()
    audit = Audit(store, now)
    if acct is None:
        audit.write("InvalidCredentials", [_shown(username), _over(via, client)])
        return None
    policy = AccountPolicy.load(store)
    if policy.lockout_expired(acct, now):
        acct = store.change_account(acct["id"], {"locked": 0, "failed_logins": 0, "locked_since": 0})
        audit.write("AccountLockoutExpired", [acct["username"]])
    if ok and usable(acct):
        if acct["failed_logins"]:
            store.clear_login_failures(acct["id"])
        if cache is not None:
            cache.remember(username, password, acct)
        return acct
    audit.write("InvalidCredentials", [acct["username"], _over(via, client)])
    reset_after = policy.counter_reset_after if policy.counter_reset_enabled else None
    if store.record_login_failure(acct["id"], now, reset_after, policy.lock_at):
        audit.write("AccountLocked", [acct["username"]])
    return None


def refresh_lockout(store, acct: dict, now: float | None = None) -> dict:
    """The account with an expired lockout lifted (and audited): what a GET shows."""
    now = time.time() if now is None else now
    if AccountPolicy.load(store).lockout_expired(acct, now):
        acct = store.change_account(acct["id"], {"locked": 0, "failed_logins": 0, "locked_since": 0}) or acct
        Audit(store, now).write("AccountLockoutExpired", [acct["username"]])
    return acct


def _shown(username: str) -> str:
    """A user name as logged: an attacker's text, so printable and at most 64 characters."""
    return "".join(c if c.isprintable() else "?" for c in username[:64])


def _over(via: str, client: str) -> str:
    return f"{via} from {client}" if client else via


class Audit:
    """AccountSecurity entries in the event log (agent/events.py holds the texts)."""

    def __init__(self, store, now: float | None = None):
        from .agent.events import Log
        self.log = Log(store, (lambda: now) if now is not None else time.time)

    def write(self, key: str, args: list) -> None:
        """OriginOfCondition is the AccountService, not the account: account ids are never
        reused, so an account's URI would point nowhere once it is deleted (and clients
        and validators follow OriginOfCondition). The account's name is in the arguments."""
        self.log.write(key, args, ACCOUNT_SERVICE_URI)
