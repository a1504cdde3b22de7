"""Supplier replenishment by periodic review, checked against a hand calculation."""

from __future__ import annotations

import numpy as np
import pytest

import twin
from twin.sim.model import FulfillmentModel


@pytest.mark.parametrize("engine", ["kernel", "simpy"])
def test_reorder_point_review_orders_exactly_up_to_the_target(engine: str) -> None:
    # no demand: only the review moves stock. 100 units of each SKU; reorder point 30%,
    # order up to 100%, review every 6 h, lead time 10 h
    sc = twin.load_scenario("erlang_c", {
        "horizon_h": 30, "drain_h": 1, "demand.base_rate_per_h": 0.0, "demand.skus.count": 5,
        "warehouses.shanghai.stock.units_per_sku": 100,
        "replenishment": {"mode": "reorder_point", "review_interval_h": 6, "reorder_point_frac": 0.3,
                          "order_up_to_frac": 1.0, "lead_time_h": 10}})
    m = FulfillmentModel(sc, seed=0, engine=engine)
    inv = m.state.inventory
    inv[0, :] = [100, 31, 30, 0, 12]  # SKUs 2, 3 and 4 are at or below 30
    for _ in range(7):  # to t = 7 h: the review at 6 h ordered 70 + 100 + 88 units
        m.step()
    assert m.state.on_order[0].tolist() == [0, 0, 70, 100, 88]
    assert inv[0].tolist() == [100, 31, 30, 0, 12]
    assert m.supplier.units_ordered == 258
    for _ in range(6):  # t = 13 h: the 12 h review saw them on order and ordered nothing more
        m.step()
    assert m.supplier.units_ordered == 258
    for _ in range(4):  # t = 17 h > 6 + 10: they arrived
        m.step()
    assert inv[0].tolist() == [100, 31, 100, 100, 100]
    assert not np.any(m.state.on_order)
