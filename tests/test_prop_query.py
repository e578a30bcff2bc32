"""Property-based tests of query parsing: $select/$expand/$top/$skip/only (redfish_racklet/odata.py)
and the SSE stream's $filter (redfish_racklet/sse.py).

- Arbitrary query arguments: odata.parse returns a Query or raises RedfishError with a 400 or
  501, never another exception. Arbitrary text: sse.Filter parses or raises FilterError.
- Generated valid queries parse to what they say; $top/$skip page a collection as a slice;
  $select keeps exactly the selected properties.
- Generated valid $filter expressions parse and evaluate as a reference evaluation of the same
  expression tree says.

Derandomized in the suite; RACKLET_PROP_EXAMPLES=5000 for a longer, random run.
"""

from __future__ import annotations

import os

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="needs hypothesis (pip install -e '.[test]')")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from werkzeug.datastructures import MultiDict  # noqa: E402

from redfish_racklet import odata, sse  # noqa: E402
from redfish_racklet.messages import RedfishError  # noqa: E402

LONG = os.environ.get("RACKLET_PROP_EXAMPLES")


def bounded(examples: int):
    """The suite's settings: few examples, always the same; RACKLET_PROP_EXAMPLES for more, random."""
    return settings(max_examples=int(LONG or examples), derandomize=LONG is None, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow], print_blob=True)


QUERY_KEYS = ["$select", "$expand", "$top", "$skip", "only", "$filter", "$levels", "x", "$"]
values = st.one_of(st.text(max_size=30), st.sampled_from(["*", ".", "~", "*($levels=3)", ".($levels=0)", "1", "0",
                                                         "10000", "10001", "²", "١٢", "Id,Name", "Status/Health"]))


def parse_or_refuse(pairs) -> odata.Query | None:
    try:
        return odata.parse(MultiDict(pairs))
    except RedfishError as e:
        assert e.status in (400, 501) and e.messages, e
        return None


@bounded(300)
@given(pairs=st.lists(st.tuples(st.one_of(st.sampled_from(QUERY_KEYS), st.text(max_size=8)), values), max_size=4))
def test_any_query_parses_or_is_refused(pairs):
    q = parse_or_refuse(pairs)
    if q is not None:
        assert q.top is None or 0 <= q.top <= odata.MAX_TOP
        assert q.skip is None or 0 <= q.skip <= odata.MAX_TOP
        assert 1 <= q.levels <= odata.MAX_LEVELS


names = st.from_regex(r"\A[A-Za-z@#][A-Za-z0-9_@#.]{0,12}\Z")


@bounded(200)
@given(select=st.lists(st.lists(names, min_size=1, max_size=3), min_size=1, max_size=4),
       mode=st.sampled_from("*.~"), levels=st.none() | st.integers(1, odata.MAX_LEVELS),
       top=st.none() | st.integers(0, odata.MAX_TOP), skip=st.none() | st.integers(0, odata.MAX_TOP))
def test_valid_queries_parse_to_what_they_say(select, mode, levels, top, skip):
    pairs = [("$select", ",".join("/".join(p) for p in select)),
             ("$expand", mode + (f"($levels={levels})" if levels else ""))]
    pairs += [(k, str(v)) for k, v in (("$top", top), ("$skip", skip)) if v is not None]
    q = odata.parse(MultiDict(pairs))
    assert (q.select, q.expand, q.levels, q.top, q.skip) == (select, mode, levels or 1, top, skip)


@bounded(200)
@given(n=st.integers(0, 40), top=st.none() | st.integers(0, 50), skip=st.none() | st.integers(0, 50))
def test_top_and_skip_page_a_collection_as_a_slice(n, top, skip):
    members = [{"@odata.id": f"/redfish/v1/X/{i}"} for i in range(n)]
    doc = {"@odata.id": "/redfish/v1/X", "Members": members, "Members@odata.count": n}
    out = odata.page(doc, odata.Query(top=top, skip=skip))
    start = skip or 0
    assert out["Members"] == members[start:None if top is None else start + top]
    assert out["Members@odata.count"] == n
    if "Members@odata.nextLink" in out:   # the next page continues where this one ends
        nxt = parse_or_refuse([tuple(kv.split("=")) for kv in out["Members@odata.nextLink"].split("?")[1].split("&")])
        assert nxt.skip == start + len(out["Members"]) < n


@bounded(200)
@given(doc=st.dictionaries(names, st.one_of(st.integers(), st.dictionaries(names, st.integers(), max_size=3)),
                           max_size=6), paths=st.lists(st.lists(names, min_size=1, max_size=2), min_size=1, max_size=4))
def test_select_keeps_exactly_what_is_selected(doc, paths):
    out = odata.select(doc, paths)
    for key, value in out.items():
        assert key in odata._ANNOTATION_KEEP or any(p[0] == key for p in paths), key
        if isinstance(value, dict) and isinstance(doc[key], dict) and not any(p == [key] for p in paths):
            assert all(doc[key][k] == v and [key, k] in paths for k, v in value.items())
        elif not isinstance(value, dict) or any(p == [key] for p in paths):
            assert value == doc[key]
    for path in paths:   # everything selected that exists is there
        if path[0] in doc and (len(path) == 1 or not isinstance(doc[path[0]], dict)):
            assert out[path[0]] == doc[path[0]]


# -- $filter -------------------------------------------------------------------------------


@bounded(300)
@given(text=st.one_of(st.text(max_size=60), st.lists(st.sampled_from(
    ["(", ")", "not", "and", "or", "eq", "ne", "RegistryPrefix", "MessageId", "'Base'", "''", "'", "x",
     "SubordinateResources", "true", "EventFormatType", "Event", "OriginResource"]), max_size=15).map(" ".join)))
def test_any_filter_parses_or_is_refused(text):
    try:
        f = sse.Filter(text)
    except sse.FilterError:
        return
    assert f.tree


PREFIXES = ["Base", "ResourceEvent", "TaskEvent"]
MESSAGES = [f"{p}.1.{v}.0.{k}" for p in PREFIXES for v in (0, 3) for k in ("Created", "Removed")]


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


leaves = st.tuples(st.sampled_from(["RegistryPrefix", "MessageId"]), st.booleans(),
                   st.sampled_from(PREFIXES + MESSAGES + ["it's"]))
trees = st.recursive(leaves.map(lambda t: ("cmp",) + t), lambda inner: st.one_of(
    inner.map(lambda n: ("not", n)), st.tuples(st.sampled_from(["and", "or"]), inner, inner)), max_leaves=8)


def render(node) -> str:
    if node[0] == "cmp":
        return f"{node[1]} {'eq' if node[2] else 'ne'} {quote(node[3])}"
    if node[0] == "not":
        return f"not ({render(node[1])})"
    return f"({render(node[1])}) {node[0]} ({render(node[2])})"


def reference(node, message_id: str) -> bool:
    """The meaning of the tree, from the Redfish text: RegistryPrefix is the id's first part;
    MessageId compares registry name and key, whatever the version."""
    if node[0] == "not":
        return not reference(node[1], message_id)
    if node[0] in ("and", "or"):
        a, b = reference(node[1], message_id), reference(node[2], message_id)
        return (a and b) if node[0] == "and" else (a or b)
    _, prop, eq, operand = node
    parts, want = message_id.split("."), operand.split(".")
    hit = parts[0] == operand if prop == "RegistryPrefix" else (parts[0], parts[-1]) == (want[0], want[-1])
    return hit == eq


@bounded(300)
@given(tree=trees, message_id=st.sampled_from(MESSAGES))
def test_valid_filters_evaluate_as_their_tree_says(tree, message_id):
    f = sse.Filter(render(tree))
    row = {"message_id": message_id, "origin": "/redfish/v1/Systems/Unit1"}
    assert f.matches(row) == reference(tree, message_id), render(tree)
