"""Who is asking, and may they: password hashing, roles, and request authentication.

Passwords are kept only as scrypt hashes (standard library). Requests authenticate
with a Redfish session token (``X-Auth-Token``) or HTTP Basic. Roles map to the
DMTF privilege names used by the privilege registry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

# scrypt cost: ~40 ms and 16 MiB per check on a Pi-class CPU's desktop cousin.
_N, _R, _P = 2**14, 8, 1
MIN_PASSWORD, MAX_PASSWORD = 12, 128

# Redfish predefined roles (Redfish_1.8.0_PrivilegeRegistry / DSP0266 "Roles").
ROLES: dict[str, tuple[str, ...]] = {
    "Administrator": ("Login", "ConfigureManager", "ConfigureUsers", "ConfigureComponents",
                      "ConfigureSelf"),
    "Operator": ("Login", "ConfigureComponents", "ConfigureSelf"),
    "ReadOnly": ("Login", "ConfigureSelf"),
}


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


def password_problem(password: str) -> str | None:
    """Why a password is not acceptable, or None."""
    if not isinstance(password, str):
        return "not a string"
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        return f"length must be {MIN_PASSWORD}..{MAX_PASSWORD} characters"
    return None


@dataclass(frozen=True)
class Principal:
    username: str
    role: str
    session_id: str | None = None

    @property
    def privileges(self) -> tuple[str, ...]:
        return ROLES.get(self.role, ())

    def satisfies(self, alternatives: list[list[str]]) -> bool:
        """Privilege-registry semantics: any one of the AND-lists must be fully held."""
        have = set(self.privileges)
        return any(set(needed) <= have for needed in alternatives)


def parse_basic(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, pw = raw.partition(":")
    return (user, pw) if sep else None


def login(store, username: str, password: str) -> dict | None:
    """The account if the credentials are right and the account may log in."""
    acct = store.account_by_name(username) if isinstance(username, str) else None
    ok = verify_password(password if isinstance(password, str) else "",
                         acct["password_hash"] if acct else None)
    if not ok or not acct["enabled"] or acct["locked"]:
        return None
    return acct
