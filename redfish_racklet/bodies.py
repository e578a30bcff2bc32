"""Request bodies: the one path from a JSON body to checked values or a Redfish 400.

- ``json_body``: the request's JSON object (415, 400 otherwise).
- ``check_patch``: a flat PATCH body against a marshmallow schema of the writable
  properties, with the strict field types below.
- ``check_tree``: a nested PATCH body (objects, arrays of objects) against a tree of
  leaf checks, each problem named by its path ("Boot/HttpBootUri",
  "PowerControl/0/PowerLimit/LimitInWatts").
- ``action_parameter``: the one parameter of an action such as Reset.

Every refusal lists all the problems of the body at once, with the Base message ids
a client expects, and nothing is applied unless all of it is valid. Resources import
these names from ``web``.
"""

from __future__ import annotations

import json
from typing import Callable

from flask import request
from marshmallow import Schema, ValidationError, fields

from .messages import RedfishError, message


def json_body() -> dict:
    """The request's JSON object, or a Redfish error (415, 400)."""
    if request.mimetype != "application/json":
        raise RedfishError.of(415, "HeaderInvalid", f"Content-Type: {request.content_type or ''}")
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[…" a mile deep
        raise RedfishError.of(400, "MalformedJSON") from None
    if not isinstance(body, dict):
        raise RedfishError.of(400, "UnrecognizedRequestBody")
    if too_deep(body, MAX_JSON_DEPTH):
        raise RedfishError.of(400, "UnrecognizedRequestBody")
    return body


MAX_JSON_DEPTH = 16  # Redfish bodies nest a few levels; deeper is an attack on the code below


def too_deep(value, limit: int) -> bool:
    """Whether containers nest deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > limit:
                return True
            stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))
    return False


def value_error(msg_id: str, value, where: str, limit=None) -> dict:
    """The Base message refusing ``value`` for the property at ``where`` ("A/B"), with its
    arguments in the registry's order (``limit``: StringValueTooLong's length)."""
    shown = value if isinstance(value, str) else json.dumps(value)
    args = {"StringValueTooLong": (shown, limit),
            "PropertyValueIncorrect": (where, shown)}.get(msg_id, (shown, where))
    return message(msg_id, *args, related=[f"#/{where}"])


# -- strict JSON types for marshmallow schemas -----------------------------------------

class StrictInteger(fields.Integer):
    """A JSON integer: not a float, not a string, not a boolean."""

    def __init__(self, **kw):
        kw.setdefault("error_messages", {"invalid": "type", "null": "type"})
        super().__init__(strict=True, **kw)

    def _deserialize(self, value, attr, data, **kw):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kw)


class StrictNumber(fields.Float):
    """A JSON number: not a string, not a boolean, finite."""

    def __init__(self, **kw):
        kw.setdefault("error_messages", {"invalid": "type", "null": "type", "special": "range",
                                         "too_large": "range"})
        super().__init__(allow_nan=False, **kw)

    def _deserialize(self, value, attr, data, **kw):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kw)


class StrictBoolean(fields.Boolean):
    """A JSON true or false (marshmallow's Boolean also takes 1, "yes", "on"…)."""

    def __init__(self, **kw):
        kw.setdefault("error_messages", {"invalid": "type", "null": "type"})
        super().__init__(**kw)

    def _deserialize(self, value, attr, data, **kw):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


# -- flat PATCH bodies ------------------------------------------------------------------

# marshmallow error code -> Base message id
_MARSHMALLOW_CODES = {
    "type": "PropertyValueTypeError",
    "list": "PropertyValueNotInList",
    "range": "PropertyValueOutOfRange",
    "length": "StringValueTooLong",
}


def check_patch(body: dict, schema: Schema, current: dict) -> dict:
    """Validate a PATCH body against ``schema`` (its fields are the writable properties).

    Unknown and read-only properties, wrong types and bad values are refused, all of
    them reported at once; nothing is applied unless everything is valid.
    """
    body = {k: v for k, v in body.items() if not is_odata_annotation(k)}
    if not body:
        raise RedfishError.of(400, "NoOperation")
    writable = schema.fields
    errors = [_not_writable(key, key in current) for key in body if key not in writable]
    known = {k: v for k, v in body.items() if k in writable}
    try:
        cleaned = schema.load(known)
    except ValidationError as e:
        cleaned = {}
        for key, codes in sorted(e.normalized_messages().items()):
            code = codes[0] if isinstance(codes, list) else "type"
            msg_id = _MARSHMALLOW_CODES.get(code, "PropertyValueTypeError")
            limit = None
            if msg_id == "StringValueTooLong":
                limit = next((v.max for v in writable[key].validators if hasattr(v, "max")), "")
            errors.append(value_error(msg_id, body.get(key), key, limit))
    if errors:
        raise RedfishError(400, errors)
    return cleaned


def _not_writable(where: str, known: bool) -> dict:
    return message("PropertyNotWritable" if known else "PropertyUnknown", where, related=[f"#/{where}"])


# -- nested PATCH bodies -----------------------------------------------------------------

class Invalid(Exception):
    """A value refused by a ``check_tree`` leaf check: the Base message id to answer with
    (and, for StringValueTooLong, the length limit)."""

    def __init__(self, msg_id: str, limit=None):
        super().__init__(msg_id)
        self.msg_id = msg_id
        self.limit = limit


def is_odata_annotation(key: str) -> bool:
    return key.startswith("@odata.")


def is_annotation(key: str) -> bool:
    """Any annotation (``@odata.etag``, ``X@Redfish.AllowableValues``…)."""
    return "@" in key


def one_of(values: tuple[str, ...]) -> Callable[[object], str]:
    """A leaf check: a string from ``values``."""
    def check(value) -> str:
        if not isinstance(value, str):
            raise Invalid("PropertyValueTypeError")
        if value not in values:
            raise Invalid("PropertyValueNotInList")
        return value
    return check


def check_tree(body: dict, writable: dict, current: dict, *,
               ignored: Callable[[str], bool] = is_odata_annotation) -> dict:
    """Validate a nested PATCH body (objects and arrays of objects, as Power's).

    ``writable`` mirrors the resource: a property maps to a leaf check (value → cleaned
    value, raising ``Invalid``), to a dict (an object) or to a list of dicts (an array,
    one template per member). A property not in ``writable`` is PropertyNotWritable if
    ``current`` (the resource as served) has it, else PropertyUnknown; keys for which
    ``ignored`` is true are skipped. Everything is checked and reported before anything
    is applied; the cleaned tree holds only the properties given. NoOperation when it
    holds no value at all.
    """
    errors: list[dict] = []
    cleaned = walk_tree(body, writable, current, errors, ignored=ignored)
    if errors:
        raise RedfishError(400, errors)
    if not _has_leaf(cleaned):
        raise RedfishError.of(400, "NoOperation")
    return cleaned


def walk_tree(body: dict, writable: dict, current, errors: list, path: str = "", *,
              ignored: Callable[[str], bool] = is_odata_annotation) -> dict:
    """``check_tree``'s walk: the cleaned tree, each problem appended to ``errors``."""
    out: dict = {}
    for key, value in body.items():
        if ignored(key):
            continue
        where = f"{path}/{key}".lstrip("/")
        rule = writable.get(key)
        here = current.get(key) if isinstance(current, dict) else None
        if rule is None:
            errors.append(_not_writable(where, isinstance(current, dict) and key in current))
        elif isinstance(rule, dict):
            if isinstance(value, dict):
                out[key] = walk_tree(value, rule, here, errors, where, ignored=ignored)
            else:
                errors.append(value_error("PropertyValueTypeError", value, where))
        elif isinstance(rule, list):
            if not isinstance(value, list):
                errors.append(value_error("PropertyValueTypeError", value, where))
                continue
            out[key] = []
            for i, item in enumerate(value):
                at = f"{where}/{i}"
                if i >= len(rule):
                    errors.append(_not_writable(at, False))
                elif not isinstance(item, dict):
                    errors.append(value_error("PropertyValueTypeError", item, at))
                else:
                    member = here[i] if isinstance(here, list) and i < len(here) else None
                    out[key].append(walk_tree(item, rule[i], member, errors, at, ignored=ignored))
        else:
            try:
                out[key] = rule(value)
            except Invalid as e:
                errors.append(value_error(e.msg_id, value, where, e.limit))
    return out


def _has_leaf(tree) -> bool:
    if isinstance(tree, dict):
        return any(not isinstance(v, (dict, list)) or _has_leaf(v) for v in tree.values())
    if isinstance(tree, list):
        return any(_has_leaf(v) for v in tree)
    return True


# -- action parameters ------------------------------------------------------------------

_REQUIRED = object()


def action_parameter(body: dict, action: str, name: str, allowed: tuple[str, ...], default=_REQUIRED) -> str:
    """The value of an action's one parameter ``name``: a string from ``allowed``
    (``default`` when the body leaves it out, if the action has one)."""
    unknown = [k for k in body if k != name and not k.startswith("@")]
    if unknown:
        raise RedfishError.of(400, "ActionParameterUnknown", action, unknown[0])
    if name not in body and default is _REQUIRED:
        raise RedfishError.of(400, "ActionParameterMissing", action, name)
    value = body.get(name, default)
    if not isinstance(value, str):
        raise RedfishError.of(400, "ActionParameterValueTypeError", value, name, action)
    if value not in allowed:
        raise RedfishError.of(400, "ActionParameterValueNotInList", value, name, action)
    return value
