"""The fast wire format (``twin.serve.wire``) answers every body as pydantic alone would:
whatever msgspec accepts, pydantic accepts with the same values; whatever msgspec refuses is
answered by pydantic (its errors, or its coerced values). Bodies: a valid order and batch,
hand-picked edge cases, and hypothesis mutations of any field to any JSON value."""

from __future__ import annotations

import copy
import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.serve import wire
from twin.serve.schema import Order, RouteRequest

ORDER: dict[str, Any] = {
    "order_id": "o-1", "created_at": "2026-11-11T09:30:00+08:00",
    "destination": {"region": "Hubei", "transit_multiplier": 1.5},
    "lines": [{"sku": "sku-3", "qty": 2}, {"sku": "sku-9", "qty": 1, "cold_chain": True}],
    "service_level": "express", "promise_h": 24.0,
    "candidates": [{"warehouse_id": "wuhan", "available": {"sku-3": 5, "sku-9": 1}, "remaining_capacity_orders": 10,
                    "backlog_orders": 4, "agvs_up_ratio": 0.5},
                   {"warehouse_id": "nanjing", "available": {}, "remaining_capacity_orders": 0, "open": False}],
    "strategy": "weighted", "weights": {"cost": 1.0, "speed": 0.0, "carbon": 2},
}


def pydantic_answer(body: bytes) -> tuple[str, Any]:
    """What FastAPI with the pydantic models answered: ``("ok", values)`` or ``("422", errors)``."""
    try:
        doc = json.loads(body)
    except json.JSONDecodeError:
        return "422", "json"
    try:
        return "ok", RouteRequest.model_validate(doc).model_dump(mode="json")
    except Exception as exc:  # pydantic's ValidationError
        return "422", [(tuple(e["loc"]), e["type"]) for e in exc.errors()]


def wire_answer(body: bytes) -> tuple[str, Any]:
    try:
        orders, batch = wire.decode_request(body)
    except wire.InvalidRequest as exc:
        if exc.errors[0]["type"] == "json_invalid":
            return "422", "json"
        return "422", [(tuple(e["loc"][1:]), e["type"]) for e in exc.errors]
    req = {"orders": orders} if batch else {"order": orders[0]}
    return "ok", RouteRequest.model_validate(msgspec.to_builtins(req)).model_dump(mode="json")


def fast_accepts(body: bytes) -> bool:
    try:
        wire.strict_request(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return False
    return True


def check(doc: Any) -> tuple[str, Any]:
    body = json.dumps(doc).encode()
    want, got = pydantic_answer(body), wire_answer(body)
    assert got == want, (doc, got, want)
    if fast_accepts(body):  # msgspec alone: never wider than pydantic
        assert want[0] == "ok", doc
    return got


def test_valid_bodies_decode_fast_to_pydantic_values() -> None:
    for doc in ({"order": ORDER}, {"orders": [ORDER, {**ORDER, "order_id": "o-2", "strategy": None}]}):
        assert fast_accepts(json.dumps(doc).encode())
        assert check(doc)[0] == "ok"
    orders, batch = wire.decode_request(json.dumps({"orders": [ORDER]}).encode())
    assert batch and isinstance(orders[0], wire.OrderS) and orders[0].candidates[1].open is False
    assert orders[0].max_splits == 3 and orders[0].lines[0].cold_chain is False  # pydantic's defaults


EDGES = [
    ("lines", 0, "qty", "2"), ("lines", 0, "qty", 2.0), ("lines", 0, "qty", True), ("lines", 0, "qty", 0),
    ("lines", 0, "qty", 10_001), ("lines", 0, "qty", 2**70), ("lines", 0, "cold_chain", 1),
    ("lines", 0, "cold_chain", "true"), ("lines", 0, "sku", ""), ("lines", 0, "sku", "x" * 65),
    ("destination", "transit_multiplier", 0.99), ("destination", "transit_multiplier", "1.5"),
    ("promise_h", 0), ("promise_h", 1440.0), ("promise_h", 1440.5), ("promise_h", None),
    ("created_at", "2026-11-11 09:30:00"), ("created_at", 1_700_000_000), ("created_at", "yesterday"),
    ("created_at", "2026-11-11T09:30:00"), ("strategy", "fastest"), ("strategy", None),
    ("weights", {"cost": 0, "speed": 0, "carbon": 0}), ("weights", None), ("max_splits", -1),
    ("candidates", 0, "available", {"": 1}), ("candidates", 0, "available", {"sku-1": -1}),
    ("candidates", 0, "available", {"sku-1": "3"}), ("candidates", 1, "warehouse_id", "wuhan"),
    ("candidates", 0, "agvs_up_ratio", 1.01), ("candidates", 0, "surprise", 1), ("order_id", ""),
    ("lines", []), ("candidates", []), ("service_level", 7),
]


@pytest.mark.parametrize("edit", EDGES, ids=lambda e: "/".join(map(str, e[:-1])) + "=" + repr(e[-1])[:20])
def test_edge_cases_answer_as_pydantic(edit: tuple) -> None:
    doc = copy.deepcopy(ORDER)
    *path, value = edit
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    check({"order": doc})


def test_request_shapes_answer_as_pydantic() -> None:
    for doc in ({}, {"order": ORDER, "orders": [ORDER]}, {"orders": []}, {"order": None}, [ORDER], {"order": []},
                {"orders": [ORDER] * 1001}, {"order": ORDER, "x": 1}):
        assert check(doc)[0] == "422"
    assert wire_answer(b"{not json") == ("422", "json")


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


PATHS = [p for p in _paths(ORDER) if p]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 2**65) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=70) | st.sampled_from(["express", "standard", "2026-11-11T00:00:00Z", "3", "1.5", "sku-1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=json_values, drop=st.booleans())
def test_any_field_set_to_any_value_answers_as_pydantic(path: tuple, value: Any, drop: bool) -> None:
    doc = copy.deepcopy(ORDER)
    node = doc
    for k in path[:-1]:
        node = node[k]
    if drop and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    check({"order": doc})


def test_as_order_and_digest() -> None:
    a = wire.as_order(ORDER)
    b = wire.as_order(Order.model_validate(ORDER))
    c = wire.decode_order(json.dumps(ORDER).encode())
    assert a == b == c and wire.order_digest(a) == wire.order_digest(c)
    assert wire.order_digest(wire.as_order({**ORDER, "order_id": "o-2"})) != wire.order_digest(a)
    with pytest.raises(wire.InvalidRequest, match="qty"):
        wire.decode_order(json.dumps({**ORDER, "lines": [{"sku": "a", "qty": 0}]}).encode(), ("data",))
    assert wire.encode({"x": float("inf"), "s": "\ud800"}) == b'{"x":null,"s":"\\ud800"}'


def test_raw_orders_are_the_bytes_received() -> None:
    """``decode_request_raw`` gives each order's JSON exactly as it sits in the body (what its
    request digest hashes), for a batch, a single order and a body pydantic had to answer."""
    import hashlib

    pretty = json.dumps({"orders": [ORDER, {**ORDER, "order_id": "o-2"}]}, indent=3)
    orders, batch, raws = wire.decode_request_raw(pretty.encode())
    assert batch and [o.order_id for o in orders] == [ORDER["order_id"], "o-2"]
    for raw, o, sent in zip(raws, orders, [ORDER, {**ORDER, "order_id": "o-2"}]):
        assert bytes(raw).decode() in pretty and json.loads(bytes(raw)) == sent
        assert wire.order_digest(o, raw) == hashlib.sha256(raw).hexdigest()
    assert wire.order_digest(orders[0], raws[0]) != wire.order_digest(orders[0])  # not the canonical form
    single = b'{"order":  ' + json.dumps(ORDER).encode() + b"}"
    o, batch, raws = wire.decode_request_raw(single)
    assert not batch and [bytes(r) for r in raws] == [json.dumps(ORDER).encode()]
    lax = json.dumps({"order": {**ORDER, "max_splits": "2"}}).encode()  # pydantic's lax mode takes "2"
    o, _, raws = wire.decode_request_raw(lax)
    assert o[0].max_splits == 2 and json.loads(bytes(raws[0]))["max_splits"] == "2"


def test_decoded_requests_are_not_tracked_by_the_garbage_collector() -> None:
    """The structs of a decoded batch are untracked (``gc=False``: no collection is set off by
    decoding), whether msgspec decoded them or pydantic's path converted them; the lists and
    dicts in them are the interpreter's usual ones."""
    import gc

    orders, batch = wire.decode_request(json.dumps({"orders": [ORDER, ORDER]}).encode())
    assert batch and len(orders) == 2
    structs = [o for o in orders] + [o.destination for o in orders] + [x for o in orders for x in o.lines] + \
        [c for o in orders for c in o.candidates]
    assert len(structs) == 2 * (1 + 1 + 2 + 2)
    assert not any(gc.is_tracked(s) for s in structs)
    lax = dict(ORDER, lines=[{"sku": "sku-3", "qty": "2"}])  # "2": msgspec refuses, pydantic takes
    (o,), _ = wire.decode_request(json.dumps({"order": lax}).encode())
    assert o.lines[0].qty == 2 and not gc.is_tracked(o) and not gc.is_tracked(o.lines[0])
    assert gc.is_tracked(o.lines)  # a list, tracked as ever
