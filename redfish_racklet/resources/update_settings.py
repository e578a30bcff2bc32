"""PATCH of the UpdateService: its few settings, all checked before any is applied.

- ``VerifyRemoteServerCertificate`` (SimpleUpdate and automatic-update downloads): true
  by default; turning it off needs ConfigureManager (an Administrator), like every
  setting that decides what firmware the rack will accept:
- ``Oem.Racklet.SigningKeys``: the whole list of trusted Ed25519 public keys (PEM), each
  with a Comment; ``KeyId`` is computed (read-only);
- ``Oem.Racklet.AutomaticUpdates``: ``Enabled``, ``FeedURI`` (https), ``IntervalSeconds``,
  ``ApplyTime``. Off by default.
"""

from __future__ import annotations

import json
import time

from .. import bundle
from .. import updates as updater
from ..messages import RedfishError, message
from ..store_updates import MAX_SIGNING_KEYS
from ..web import check_tree, value_error
from ..bodies import Invalid
from .common import principal, store

ADMIN = [["ConfigureManager"]]
COMMENT_MAX = 256
PEM_MAX = 4096


def _bool(value):
    if not isinstance(value, bool):
        raise Invalid("PropertyValueTypeError")
    return value


def _feed(value):
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid("PropertyValueTypeError")
    if len(value) > 2048 or updater.check_image_uri(value):
        raise Invalid("PropertyValueFormatError")
    return value


def _interval(value):
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid("PropertyValueTypeError")
    low, high = updater.AUTO_MIN_INTERVAL, 7 * 86400
    if not low <= value <= high:
        raise Invalid("PropertyValueOutOfRange")
    return value


def _apply_time(value):
    if not isinstance(value, str):
        raise Invalid("PropertyValueTypeError")
    if value not in ("Immediate", "OnReset"):
        raise Invalid("PropertyValueNotInList")
    return value


WRITABLE = {
    "VerifyRemoteServerCertificate": _bool,
    "Oem": {"Racklet": {
        "AutomaticUpdates": {"Enabled": _bool, "FeedURI": _feed, "IntervalSeconds": _interval,
                             "ApplyTime": _apply_time},
    }},
}


def _keys(value, errors: list) -> list[tuple[str, str, str]] | None:
    where = "Oem/Racklet/SigningKeys"
    if not isinstance(value, list):
        errors.append(value_error("PropertyValueTypeError", value, where))
        return None
    if len(value) > MAX_SIGNING_KEYS:
        errors.append(message("ArraySizeTooLong", where, MAX_SIGNING_KEYS))
        return None
    out = []
    for i, item in enumerate(value):
        at = f"{where}/{i}"
        if not isinstance(item, dict):
            errors.append(value_error("PropertyValueTypeError", item, at))
            continue
        for k in item:
            if k == "KeyId":
                errors.append(message("PropertyNotWritable", f"{at}/KeyId"))
            elif k not in ("PublicKey", "Comment"):
                errors.append(message("PropertyUnknown", f"{at}/{k}"))
        pem, comment = item.get("PublicKey"), item.get("Comment", "")
        if "PublicKey" not in item:
            errors.append(message("PropertyMissing", f"{at}/PublicKey"))
            continue
        if not isinstance(pem, str) or len(pem) > PEM_MAX:
            errors.append(value_error("PropertyValueTypeError", "<key>", f"{at}/PublicKey"))
            continue
        if not isinstance(comment, str):
            errors.append(value_error("PropertyValueTypeError", comment, f"{at}/Comment"))
            continue
        if len(comment) > COMMENT_MAX:
            errors.append(value_error("StringValueTooLong", comment, f"{at}/Comment", COMMENT_MAX))
            continue
        try:
            key = bundle.load_public_key(pem)
        except bundle.BundleError:
            errors.append(value_error("PropertyValueFormatError", "<key>", f"{at}/PublicKey"))
            continue
        kid = bundle.key_id(key)
        if kid not in {k for k, _, _ in out}:
            out.append((kid, pem.strip() + "\n", comment))
    return out


def apply_patch(body: dict, current: dict) -> None:
    racklet = body.get("Oem", {}).get("Racklet", {}) if isinstance(body.get("Oem"), dict) else {}
    keys_given = isinstance(racklet, dict) and "SigningKeys" in racklet
    rest = body
    if keys_given:   # the list is checked here; the rest by check_tree
        rest = json.loads(json.dumps(body))
        del rest["Oem"]["Racklet"]["SigningKeys"]
        if not rest["Oem"]["Racklet"]:
            del rest["Oem"]["Racklet"]
        if not rest["Oem"]:
            del rest["Oem"]
    errors: list = []
    keys = _keys(racklet["SigningKeys"], errors) if keys_given else None
    cleaned: dict = {}
    if rest or not keys_given:
        try:
            cleaned = check_tree(rest, WRITABLE, current)
        except RedfishError as e:
            errors.extend(e.messages)
    if errors:
        raise RedfishError(400, errors)
    auto = cleaned.get("Oem", {}).get("Racklet", {}).get("AutomaticUpdates")
    turning_off = cleaned.get("VerifyRemoteServerCertificate") is False
    if (keys_given or auto or turning_off) and not principal().satisfies(ADMIN):
        raise RedfishError.of(403, "InsufficientPrivilege")
    s = store()
    settings = updater.auto_settings(s)
    if auto:
        names = {"Enabled": "enabled", "FeedURI": "feed", "IntervalSeconds": "interval", "ApplyTime": "apply_time"}
        new = dict(settings, **{names[k]: v for k, v in auto.items()})
        if new["enabled"] and not new["feed"]:
            raise RedfishError(400, [message("PropertyValueConflict", "Oem/Racklet/AutomaticUpdates/Enabled",
                                             "Oem/Racklet/AutomaticUpdates/FeedURI")],
                               text="automatic updates need a FeedURI")
    with s.tx():
        if keys is not None:
            s.replace_signing_keys(keys, time.time())
        if auto:
            s.set_meta("auto_updates", json.dumps({k: new[k] for k in updater.AUTO_DEFAULTS}))
        if "VerifyRemoteServerCertificate" in cleaned:
            s.set_meta("update_verify_remote", "1" if cleaned["VerifyRemoteServerCertificate"] else "0")
