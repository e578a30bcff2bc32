"""OData query options of DSP0266 as pure functions over resource dicts.

Supported: ``$select``, ``$expand`` (``*``, ``.``, ``~`` with ``$levels``), ``$top``,
``$skip``, ``only``. Unknown ``$`` options are refused (501); other unknown
parameters are ignored, as the specification requires. ``$expand`` is bounded in
depth (``MAX_LEVELS``) and in the number of resources it inlines
(``MAX_EXPANDED``), so it is safe to leave on.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable

from .messages import RedfishError

MAX_LEVELS = 3
MAX_EXPANDED = 200
MAX_TOP = 10_000

PROTOCOL_FEATURES = {
    "ExpandQuery": {"ExpandAll": True, "Levels": True, "Links": True, "NoLinks": True,
                    "MaxLevels": MAX_LEVELS},
    "SelectQuery": True,
    "OnlyMemberQuery": True,
    "TopSkipQuery": True,
    "FilterQuery": False,
    "ExcerptQuery": False,
    "DeepOperations": {"DeepPATCH": False, "DeepPOST": False},
}

_KNOWN = {"$select", "$expand", "$top", "$skip", "only"}
_EXPAND = re.compile(r"^([*.~])(?:\(\$levels=(\d+)\))?$")
_ANNOTATION_KEEP = ("@odata.id", "@odata.type", "@odata.etag", "@odata.context")


@dataclass(frozen=True)
class Query:
    select: list[list[str]] | None = None
    expand: str | None = None  # '*', '.' or '~'
    levels: int = 1
    top: int | None = None
    skip: int | None = None
    only: bool = False

    @property
    def empty(self) -> bool:
        return (self.select is None and self.expand is None and self.top is None
                and self.skip is None and not self.only)


def parse(args) -> Query:
    """Parse a request's query arguments (a MultiDict) into a Query or raise RedfishError."""
    q: dict = {}
    for key in args.keys():
        if key.startswith("$") and key not in _KNOWN:
            raise RedfishError.of(501, "QueryParameterUnsupported", key)
        if key in _KNOWN and len(args.getlist(key)) > 1:
            raise RedfishError.of(400, "QueryParameterValueFormatError", args.get(key), key)
    if "only" in args:
        if args.get("only") != "":
            raise RedfishError.of(400, "QueryParameterValueFormatError", args.get("only"), "only")
        q["only"] = True
    if "$select" in args:
        raw = args.get("$select")
        props = [p.strip() for p in raw.split(",")]
        if not raw or any(not p or not re.fullmatch(r"[A-Za-z@#][\w@#.]*(/[A-Za-z@#][\w@#.]*)*", p)
                          for p in props):
            raise RedfishError.of(400, "QueryParameterValueFormatError", raw, "$select")
        q["select"] = [p.split("/") for p in props]
    if "$expand" in args:
        raw = args.get("$expand")
        m = _EXPAND.match(raw)
        if not m:
            raise RedfishError.of(400, "QueryParameterValueFormatError", raw, "$expand")
        q["expand"] = m.group(1)
        if m.group(2) is not None:
            q["levels"] = int(m.group(2))
            if not 1 <= q["levels"] <= MAX_LEVELS:
                raise RedfishError.of(400, "QueryParameterOutOfRange", m.group(2), "$levels",
                                      f"1-{MAX_LEVELS}")
    for key in ("$top", "$skip"):
        if key in args:
            raw = args.get(key)
            if not (raw.isascii() and raw.isdigit()):   # "²".isdigit(), but int("²") fails
                raise RedfishError.of(400, "QueryParameterValueTypeError", raw, key)
            val = int(raw)
            if val > MAX_TOP:
                raise RedfishError.of(400, "QueryParameterOutOfRange", raw, key, f"0-{MAX_TOP}")
            q[key[1:]] = val
    return Query(**q)


def is_collection(doc: dict) -> bool:
    return isinstance(doc.get("Members"), list) and "Members@odata.count" in doc


def page(doc: dict, q: Query) -> dict:
    """Apply $top/$skip to a collection's Members (count stays the total)."""
    if q.top is None and q.skip is None:
        return doc
    members = doc["Members"]
    start = q.skip or 0
    end = len(members) if q.top is None else start + q.top
    out = dict(doc, Members=members[start:end])
    if end < len(members) and q.top != 0:  # $top=0 asks for no members, not a next page
        out["Members@odata.nextLink"] = f"{doc['@odata.id']}?$skip={end}" + (
            f"&$top={q.top}" if q.top is not None else "")
    return out


def select(doc: dict, paths: list[list[str]]) -> dict:
    """Keep the selected properties (and the annotations that identify the resource)."""
    out = {k: v for k, v in doc.items() if k in _ANNOTATION_KEEP}
    for path in paths:
        _copy_path(doc, out, path)
    return out


def _copy_path(src: dict, dst: dict, path: list[str]) -> None:
    key = path[0]
    if key not in src:
        return
    if len(path) == 1 or not isinstance(src[key], dict):
        dst[key] = src[key]
        return
    sub = dst.setdefault(key, {})
    if isinstance(sub, dict):
        _copy_path(src[key], sub, path[1:])


class Expander:
    """Inline linked resources; ``fetch(uri)`` returns a resource dict or None."""

    def __init__(self, fetch: Callable[[str], dict | None]):
        self.fetch = fetch
        self.budget = MAX_EXPANDED

    def expand(self, doc, mode: str, levels: int, in_links: bool = False):
        if levels <= 0:
            return doc
        if isinstance(doc, list):
            return [self.expand(v, mode, levels, in_links) for v in doc]
        if not isinstance(doc, dict):
            return doc
        out = {}
        for k, v in doc.items():
            links = in_links or k == "Links"
            if isinstance(v, dict) and set(v) == {"@odata.id"} and self._wanted(mode, links, k):
                out[k] = self._inline(v, mode, levels)
            elif isinstance(v, list) and k not in ("@Message.ExtendedInfo",):
                out[k] = [self._inline(i, mode, levels)
                          if isinstance(i, dict) and set(i) == {"@odata.id"} and self._wanted(mode, links, k)
                          else self.expand(i, mode, levels, links) for i in v]
            elif isinstance(v, dict) and k not in ("Actions", "Oem"):
                out[k] = self.expand(v, mode, levels, links)
            else:
                out[k] = v
        return out

    @staticmethod
    def _wanted(mode: str, in_links: bool, key: str) -> bool:
        if key.endswith("@odata.nextLink"):
            return False
        return mode == "*" or (mode == "." and not in_links) or (mode == "~" and in_links)

    def _inline(self, ref: dict, mode: str, levels: int):
        if self.budget <= 0:
            return ref
        target = self.fetch(ref["@odata.id"])
        if target is None:
            return ref
        self.budget -= 1
        return self.expand(target, mode, levels - 1)


def etag(raw: bytes) -> str:
    """A strong ETag over the serialised JSON of a resource (without its @odata.etag)."""
    return '"' + hashlib.blake2b(raw, digest_size=12).hexdigest() + '"'
