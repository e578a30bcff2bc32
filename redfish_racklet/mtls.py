"""Client certificates (mTLS): which account a verified client certificate logs in as.

The TLS layer (``server.tls_context``) asks every client for a certificate and accepts
only one that chains to the rack's client CA (``pki.CLIENT_CA_CERT``, its only trust
anchor for clients) and is within its validity dates; a certificate from another CA
or an expired one fails the handshake. What the TLS layer cannot know is decided here,
at every request:

- the certificate must be one ``redfish-racklet cert issue`` recorded, and not revoked
  (``cert revoke``): the record lives in the store, so every worker sees a revocation
  at once, without a reload;
- still within its dates (a keep-alive connection can outlive its certificate);
- client-certificate login must be enabled (AccountService
  ``MultiFactorAuth/ClientCertificate/Enabled``);
- the name it maps to (``CertificateMappingAttribute``: the subject's CommonName, or
  the local part of its UserPrincipalName otherName) must be an account that may log
  in now (enabled, not locked).

Anything else authenticates nobody and the request falls back to its token or Basic
credentials, if any: by default a certificate is one more way in, not the only one.

The peer certificate reaches the WSGI app through gunicorn's ``environ["gunicorn.socket"]``
(the worker's ``ssl.SSLSocket``): ``getpeercert(binary_form=True)`` gives the DER that
OpenSSL verified in the handshake.
"""

from __future__ import annotations

import functools
import json
import re
import time
from dataclasses import dataclass

from cryptography import x509

from . import auth, pki
from .auth import Principal
from .bodies import Invalid, check_tree, one_of
from .store import Store

ISSUED_KEY = "mtls.certificates"   # meta: {serial hex: {"name", "not_after", "revoked"}}
ENABLED_KEY = "mtls.enabled"       # meta: "1" / "0"
MAPPING_KEY = "mtls.mapping"       # meta: a MAPPINGS value
MAPPINGS = ("CommonName", "UserPrincipalName")
DEFAULT_MAPPING = "CommonName"
CLIENT_CA_URI = "/redfish/v1/AccountService/MultiFactorAuth/ClientCertificate/Certificates"


@dataclass(frozen=True)
class Facts:
    """What a request needs from a client certificate (parsed once per distinct DER)."""
    serial: str
    common_name: str | None
    upn_user: str | None
    not_after: float


@functools.lru_cache(maxsize=256)
def facts(der: bytes) -> Facts | None:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    cns, upns = pki.common_names(cert), pki.user_principal_names(cert)
    upn_user = upns[0].rpartition("@")[0] if upns and "@" in upns[0] else None
    return Facts(pki.serial_hex(cert), cns[0] if cns else None, upn_user or None,
                 cert.not_valid_after_utc.timestamp())


def peer_certificate(environ: dict) -> bytes | None:
    """The DER of the verified client certificate of this request's connection, if any."""
    sock = environ.get("gunicorn.socket")
    getpeercert = getattr(sock, "getpeercert", None)  # a plain socket has none
    if getpeercert is None:
        return None
    try:
        return getpeercert(binary_form=True) or None
    except (ValueError, OSError):  # the connection is gone
        return None


def principal(request, store: Store, now: float | None = None) -> Principal | None:
    """The account the request's client certificate logs in as, or None."""
    der = peer_certificate(request.environ)
    if der is None:
        return None
    return principal_for(store, der, time.time() if now is None else now)


def principal_for(store: Store, der: bytes, now: float) -> Principal | None:
    f = facts(der)
    if f is None or f.not_after <= now or not enabled(store):
        return None
    record = store.cached(("mtls.issued",), lambda: issued(store)).get(f.serial)  # read-only here
    if record is None or record["revoked"]:
        return None
    name = f.upn_user if mapping(store) == "UserPrincipalName" else f.common_name
    if not name or name != record["name"]:
        return None
    acct = store.account_by_name(name)
    if acct is not None and acct["locked"]:
        acct = auth.refresh_lockout(store, acct, now)  # a lockout that has run out is lifted
    if acct is None or not auth.usable(acct):
        return None
    return auth.principal_of(acct)


# -- the record of issued certificates ---------------------------------------------------

def issued(store: Store) -> dict[str, dict]:
    return json.loads(store.get_meta(ISSUED_KEY) or "{}")


def record_issued(store: Store, cert: x509.Certificate, name: str) -> str:
    serial = pki.serial_hex(cert)
    with store.tx():
        certs = issued(store)
        certs[serial] = {"name": name, "not_after": cert.not_valid_after_utc.timestamp(), "revoked": False}
        store.set_meta(ISSUED_KEY, json.dumps(certs, sort_keys=True))
    return serial


def normalise_serial(text: str) -> str | None:
    """A serial as ``cert issue`` prints it (hex), with or without colons or 0x; None if not hex."""
    s = text.strip().lower().removeprefix("0x").replace(":", "")
    return format(int(s, 16), "x") if re.fullmatch(r"[0-9a-f]{1,64}", s) else None


def revoke(store: Store, what: str) -> list[tuple[str, str]]:
    """Revoke the certificate with serial ``what``, or every certificate of the account
    named ``what``; the (serial, account) pairs newly revoked."""
    serial = normalise_serial(what)
    done = []
    with store.tx():
        certs = issued(store)
        for s, rec in certs.items():
            if (s == serial or rec["name"] == what) and not rec["revoked"]:
                rec["revoked"] = True
                done.append((s, rec["name"]))
        store.set_meta(ISSUED_KEY, json.dumps(certs, sort_keys=True))
    return done


def upn_domain(store: Store) -> str:
    """The domain part of the UPNs this rack issues: its name, as a DNS label."""
    name = (store.rack_info() or {}).get("name") or "racklet"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "racklet"


# -- AccountService MultiFactorAuth/ClientCertificate --------------------------------------

def enabled(store: Store) -> bool:
    return store.get_meta(ENABLED_KEY, "1") == "1"


def mapping(store: Store) -> str:
    return store.get_meta(MAPPING_KEY, DEFAULT_MAPPING)


def multi_factor_auth(store: Store, respond_to_unauthenticated: bool) -> dict:
    """AccountService ``MultiFactorAuth`` (``respond_to_unauthenticated``: False when
    ``serve --require-client-cert`` refuses handshakes without a certificate)."""
    return {"ClientCertificate": {
        "Enabled": enabled(store),
        "RespondToUnauthenticatedClients": respond_to_unauthenticated,
        "CertificateMappingAttribute": mapping(store),
        "Certificates": {"@odata.id": CLIENT_CA_URI},
    }}


def _boolean(value) -> bool:
    if not isinstance(value, bool):
        raise Invalid("PropertyValueTypeError")
    return value


WRITABLE = {"MultiFactorAuth": {"ClientCertificate": {
    "Enabled": _boolean, "CertificateMappingAttribute": one_of(MAPPINGS)}}}


def split_patch(store: Store, body: dict, current: dict):
    """Take the ``MultiFactorAuth`` part out of an AccountService PATCH body: (the rest of
    the body, or None when nothing else is left; a function applying the part). A bad
    part is a 400 naming every problem, before anything is applied."""
    if "MultiFactorAuth" not in body:
        return body, lambda: None
    cleaned = check_tree({"MultiFactorAuth": body["MultiFactorAuth"]}, WRITABLE, current)
    rest = {k: v for k, v in body.items() if k != "MultiFactorAuth"}
    return (rest if any(not k.startswith("@") for k in rest) else None), lambda: apply_patch(store, cleaned)


def apply_patch(store: Store, cleaned: dict) -> None:
    cc = cleaned.get("MultiFactorAuth", {}).get("ClientCertificate", {})
    with store.tx():
        if "Enabled" in cc:
            store.set_meta(ENABLED_KEY, "1" if cc["Enabled"] else "0")
        if "CertificateMappingAttribute" in cc:
            store.set_meta(MAPPING_KEY, cc["CertificateMappingAttribute"])
