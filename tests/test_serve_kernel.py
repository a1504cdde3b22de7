"""The routing service's C loops (``ext._route``) write numbers and strings that read back as
what the numpy/Python code meant: numpy's ``round(x, 6)`` exactly, ``null`` for a non-finite
number, and every string (quotes, backslashes, control characters, non-ASCII, lone surrogates)."""

from __future__ import annotations

import json
import math

import numpy as np

from ext._route import json_str, round6_json


def test_numbers_read_back_as_numpy_round_6() -> None:
    rng = np.random.default_rng(0)
    xs = np.concatenate([
        rng.normal(0, 1, 20_000), rng.normal(0, 1e3, 20_000), rng.uniform(-1e-5, 1e-5, 5_000),
        10.0 ** rng.uniform(-12, 15, 20_000) * rng.choice([-1, 1], 20_000),
        np.round(rng.uniform(0, 100, 5_000), 6), np.round(rng.uniform(0, 100, 5_000), 2),
        [0.0, -0.0, 0.5e-6, -0.5e-6, 1.5e-6, 2.5e-6, 1e16, -1e16, 9.007199254740993e9, 1e300, 5e-324,
         123456.7890125, 10.0, 100.0],
    ])
    for x in xs.tolist():
        got = json.loads(round6_json(x))
        want = float(np.round(x, 6))
        assert got == want and math.copysign(1, got) == math.copysign(1, want), (x, round6_json(x), want)
    assert round6_json(10.0) == b"10.0" and round6_json(0.1234564) == b"0.123456" and round6_json(-2.5) == b"-2.5"
    for x in (math.inf, -math.inf, math.nan):
        assert round6_json(x) == b"null"


def test_strings_read_back_exactly() -> None:
    cases = ["", "a", 'quote"d', "back\\slash", "tab\tnl\ncr\r", "\x00\x01\x1f\x7f", "uni\u00e9\u4e2d\U0001f600",
             "brace}, {x", "lone \ud800 surrogate", "order/o-1"]
    for s in cases:
        b = json_str(s)
        assert json.loads(b) == s and b.startswith(b'"') and b.endswith(b'"')
    assert json_str('a"b') == b'"a\\"b"' and json_str("\n") == b'"\\u000a"'


def test_the_kernels_backlog_check_is_backlog_hours(tmp_path) -> None:
    """The service's "backlog beyond training" check, written in C, is
    ``twin.policies.features.backlog_hours > 48`` at some candidate, on random candidates."""
    from twin.policies.export import export_heuristic
    from twin.policies.features import backlog_hours
    from twin.serve.router import Router
    from twin.serve.wire import as_order

    r = Router(export_heuristic("promise_aware", tmp_path / "pkg"))
    rng = np.random.default_rng(3)
    W = r.net.warehouses
    orders = [as_order({
        "order_id": f"o-{i}", "destination": {"region": r.net.regions[i % len(r.net.regions)]},
        "lines": [{"sku": "sku-1", "qty": 1}], "service_level": "standard",
        "candidates": [{"warehouse_id": w, "remaining_capacity_orders": 3, "open": bool(rng.random() < 0.8),
                        "backlog_orders": int(rng.choice([0, 1, 50, 500, 5_000, 50_000])),
                        "agvs_up_ratio": float(rng.choice([0.0, 0.01, 0.3, 1.0]))}
                       for w in W if rng.random() < 0.8]}) for i in range(400)]
    A = r.kernel.prepare(orders, True, 12.0)
    lanes = r.lanes
    want = (backlog_hours(lanes, A["backlog"], A["ratio"] * lanes.agvs, A["listed"] & A["open"]) > 48.0).any(axis=1)
    assert 40 < want.sum() < 360  # both answers are common
    assert (A["busy"] == want).all()
