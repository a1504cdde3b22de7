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


def random_orders(regions: list[str], warehouses: list[str], n: int, seed: int) -> list[dict]:
    """Varied orders: cold lines, unknown and differently written SKUs, closed, full and busy
    candidates, AGVs down, weather, promises, creation hours, strategies, splits."""
    g = np.random.default_rng(seed)
    out = []
    for i in range(n):
        lines = []
        for _ in range(int(g.integers(1, 6))):
            k = int(g.integers(0, 500)) if g.random() < 0.99 else int(g.choice([500, 10_000]))
            form = g.random()
            sku = f"sku-{k}" if form < 0.85 else (f"SKU{k}" if form < 0.93 else str(k))
            lines.append({"sku": sku, "qty": int(g.integers(1, 6)), "cold_chain": bool(g.random() < 0.15)})
        cands = []
        for w in g.permutation(warehouses)[: int(g.integers(1, len(warehouses) + 1))]:
            c: dict = {"warehouse_id": str(w), "remaining_capacity_orders": int(g.integers(0, 4) if g.random() < 0.2
                                                                               else 50),
                       "available": {ln["sku"]: int(g.integers(0, 8) if g.random() < 0.3 else g.integers(5, 30))
                                     for ln in lines if g.random() < 0.95}}
            if g.random() < 0.3:
                c["open"] = bool(g.random() < 0.7)
            if g.random() < 0.3:
                c["cold_ok"] = bool(g.random() < 0.6)
            if g.random() < 0.6:
                c["backlog_orders"] = int(g.choice([0, 1, 40, 300, 3000, 30_000, 3_000_000]))
            if g.random() < 0.5:
                c["agvs_up_ratio"] = float(g.choice([0.0, 0.01, 0.3, 0.77, 1.0, g.random()]))
            cands.append(c)
        o = {"order_id": f"o-{i}", "destination": {"region": str(g.choice(regions))}, "lines": lines,
             "service_level": str(g.choice(["express", "standard"])), "candidates": cands}
        if g.random() < 0.9:  # else "now"
            o["created_at"] = f"2026-11-{11 + i % 3}T{int(g.integers(0, 24)):02d}:{int(g.integers(0, 60)):02d}:" \
                              f"{int(g.integers(0, 60)):02d}+08:00"
        if g.random() < 0.3:
            o["destination"]["transit_multiplier"] = float(g.uniform(1, 10) if g.random() < 0.3 else g.uniform(1, 1.8))
        if g.random() < 0.2:
            o["promise_h"] = float(g.uniform(0.5, 200))
        if g.random() < 0.15:
            o["strategy"] = str(g.choice(["cost", "speed", "carbon", "weighted"]))
        if g.random() < 0.4:
            o["max_splits"] = int(g.integers(0, 4))
        out.append(o)
    return out


def assert_observation_is_the_envs(r, orders: list, varied: bool = True) -> None:  # noqa: ANN001 - a Router
    """The kernel's observation of ``orders`` equals ``twin.policies.features.order_features``
    (the env's code) row by row, and ``order_features_batch`` on the batch, to the byte; its
    "outside the training ranges" codes are the checks the numpy version made."""
    from twin.policies.features import backlog_hours, order_features, order_features_batch

    lanes = r.lanes
    A = r.kernel.prepare(orders, True, 13.75)
    obs = A["obs"]
    assert obs.dtype == np.float32 and obs.shape == (len(orders), r.kernel.F)
    servers, wh_open = A["ratio"] * lanes.agvs, A["listed"] & A["open"]
    args = (A["t_h"], r.horizon_h, A["region"], A["cold"], A["units"].astype(float), A["promise"], A["whole"],
            A["backlog"], servers, wh_open, A["mult"], A["cover"])
    assert obs.tobytes() == order_features_batch(lanes, *args).tobytes()
    for k in range(len(orders)):
        one = order_features(lanes, float(A["t_h"][k]), r.horizon_h, int(A["region"][k]), bool(A["cold"][k]),
                             float(A["units"][k]), float(A["promise"][k]), A["whole"][k], A["backlog"][k], servers[k],
                             wh_open[k], float(A["mult"][k]), A["cover"][k])
        assert obs[k].tobytes() == one.tobytes(), k
        bad = A["bad_line"][k] >= 0
        busy = bool((backlog_hours(lanes, A["backlog"][k], servers[k], wh_open[k]) > 48.0).any())
        want = 1 if bad else (2 if A["mult"][k] > r.max_weather else (3 if busy else 0))
        assert A["outside_why"][k] == want, k
    if varied:
        assert len(set(A["outside_why"])) == 4  # each code happens
        assert (obs[:, 2] == 1.0).any() == (r.horizon_h < 24)  # horizon_progress clipped where the horizon is short
    assert A["t_h"][[o.created_at is None for o in orders]].tolist() == [13.75] * sum(o.created_at is None
                                                                                     for o in orders)


def test_the_kernels_observation_is_order_features(tmp_path) -> None:
    from twin.policies.export import export_heuristic
    from twin.serve.router import Router
    from twin.serve.wire import as_order

    r = Router(export_heuristic("promise_aware", tmp_path / "pkg"))
    orders = [as_order(o) for o in random_orders(list(r.net.regions), list(r.net.warehouses), 600, 11)]
    assert_observation_is_the_envs(r, orders)
    for k in range(5):
        assert_observation_is_the_envs(r, orders[k:k + 1], varied=False)  # one order (the service's usual request) is no special case


def test_masked_scores_is_numpy_where() -> None:
    from ext._route import masked_scores

    g = np.random.default_rng(5)
    for m, w in ((1, 8), (37, 8), (5, 1), (0, 3)):
        logits = (g.normal(0, 3, (m, w)) * (g.random((m, w)) < 0.9) - 1e8 * (g.random((m, w)) < 0.1)).astype(np.float32)
        mask = g.random((m, w)) < 0.6
        got = masked_scores(logits, mask)
        assert got.dtype == np.float64 and got.tobytes() == np.where(mask, -logits.astype(float), np.inf).tobytes()
    assert masked_scores(logits[:, ::2].copy(), mask[:, ::2]).tobytes() == np.where(
        mask[:, ::2], -logits[:, ::2].astype(float), np.inf).tobytes()  # a non-contiguous mask is copied
    import pytest

    with pytest.raises(ValueError, match="same"):
        masked_scores(np.zeros((2, 3), np.float32), np.zeros((2, 4), bool))


def test_arrays_are_views_of_the_blocks(tmp_path) -> None:
    """``prepare``'s arrays (made when read) are views of its three blocks, as ``write`` reads
    them; an unknown name is a KeyError."""
    import pytest

    from twin.policies.export import export_heuristic
    from twin.serve.router import Router
    from twin.serve.wire import as_order

    r = Router(export_heuristic("cheapest", tmp_path / "pkg"))
    orders = [as_order(o) for o in random_orders(list(r.net.regions), list(r.net.warehouses), 7, 2)]
    A = r.kernel.prepare(orders, False, 0.0)
    fb, bb, ib = A["_blocks"]
    n, W, L = len(orders), r.kernel.W, max(len(o.lines) for o in orders)
    for name, block in (("est_cost", fb), ("whole", bb), ("why", ib), ("stock", ib), ("qty", ib), ("region", ib),
                        ("mult", fb), ("busy", bb)):
        assert np.shares_memory(A[name], block) and A[name] is A[name], name
    assert A["stock"].shape == (n, W, L) and A["qty"].shape == (n, L) and A["whole"].shape == (n, W)
    assert A["region"].tolist() == A["region_index"] == [r.net.regions.index(o.destination.region) for o in orders]
    assert A["qty"].tolist() == [[ln.qty for ln in o.lines] + [0] * (L - len(o.lines)) for o in orders]
    assert A["obs"] is None and "whole" in A and "nothing" not in A
    with pytest.raises(KeyError):
        A["nothing"]
