"""``order_features_batch`` is ``order_features`` row by row, exactly (it is the array
reference the service's C observation is compared with, which must be the env's)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.policies.features import OrderLanes, order_features, order_features_batch


def _lanes(g: np.random.Generator, W: int, R: int) -> OrderLanes:
    ok = g.random((2, W, R)) < 0.8
    return OrderLanes(lane_ok=ok, lane_cost=np.where(ok, g.uniform(3, 80, (2, W, R)), 0.0),
                      lane_transit=np.where(ok, g.uniform(6, 90, (2, W, R)), 0.0),
                      distance_km=g.uniform(0, 5000, (W, R)), max_promise_h=72.0,
                      agvs=g.integers(0, 40, W).astype(float), ship_rate=g.uniform(0.5, 30, W),
                      initial_stock=g.integers(0, 50, (W, 30)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_equals_one_by_one(seed: int) -> None:
    g = np.random.default_rng(seed)
    W, R, n = int(g.integers(1, 10)), int(g.integers(1, 12)), 257
    lanes = _lanes(g, W, R)
    t = g.uniform(0, 400, n)
    t[:5] = [0.0, 24.0, 23.999, 500.0, 12.0]  # day wrap, past the horizon
    region, cold = g.integers(0, R, n), g.random(n) < 0.3
    units, promise = g.integers(1, 12, n).astype(float), g.uniform(1, 120, n)
    mask, wh_open = g.random((n, W)) < 0.5, g.random((n, W)) < 0.8
    backlog = np.where(g.random((n, W)) < 0.2, 0, g.integers(0, 3000, (n, W))).astype(float)
    servers = g.random((n, W)) * lanes.agvs * (g.random((n, W)) < 0.9)
    mult = 1.0 + 3 * g.random(n) * (g.random(n) < 0.3)
    cover = g.random((n, W)) * 1.5
    got = order_features_batch(lanes, t, 96.0, region, cold, units, promise, mask, backlog, servers, wh_open,
                               mult, cover)
    assert got.dtype == np.float32 and got.shape == (n, 6 + R + 7 * W)
    for k in range(n):
        one = order_features(lanes, float(t[k]), 96.0, int(region[k]), bool(cold[k]), float(units[k]),
                             float(promise[k]), mask[k], backlog[k], servers[k], wh_open[k], float(mult[k]), cover[k])
        np.testing.assert_array_equal(got[k], one)
    assert (got[:, :3] != 0).any() and (got[:, 6 + R:] > 0).any()  # not trivially zero
    for k in (0, 7):  # a batch of one (which takes the per-order path) equals the row too
        one = order_features_batch(lanes, t[k:k + 1], 96.0, region[k:k + 1], cold[k:k + 1], units[k:k + 1],
                                   promise[k:k + 1], mask[k:k + 1], backlog[k:k + 1], servers[k:k + 1],
                                   wh_open[k:k + 1], mult[k:k + 1], cover[k:k + 1])
        assert one.shape == (1, got.shape[1]) and one.dtype == np.float32
        np.testing.assert_array_equal(one[0], got[k])
