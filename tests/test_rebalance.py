"""The `rebalance` reallocation rule: what it counts as stock coming, checked by hand.

Shanghai is the receiver; its nearest warehouses are hangzhou (170 km) then nanjing (292 km).
With 6,000 units of a SKU initially at shanghai, the band (20%, 60%) gives a trigger below 1,200
units and a target of ceil(0.4 * 6000) = 2,400; hangzhou (5,000 initially) can give what it
holds above ceil(0.6 * 5000) = 3,000.
"""

from __future__ import annotations

import numpy as np
import pytest

import twin
from twin.policies import Rebalance
from twin.sim.model import FulfillmentModel
from twin.world.state import State

SH, HZ, NJ = 0, 1, 2
SKU = 1  # carried by every warehouse of the baseline network


def _scenario(**over):  # noqa: ANN003, ANN202
    # no demand: only the supplier and the rebalance rule move stock
    return twin.load_scenario("baseline", {
        "horizon_h": 30, "drain_h": 1, "demand.base_rate_per_h": 0.0, "demand.skus.count": 5,
        "replenishment": {"mode": "reorder_point", "review_interval_h": 6, "reorder_point_frac": 0.3,
                          "order_up_to_frac": 1.0, "lead_time_h": 24},
        "policy.reallocation": {"name": "rebalance", "interval_h": 6, "lead_time_h": 12}, **over})


def test_the_hand_built_state() -> None:
    net = FulfillmentModel(_scenario(), seed=0).net
    init = net.initial_stock
    assert (init[SH, SKU], init[HZ, SKU], init[NJ, SKU]) == (6000, 5000, 6000)
    assert np.argsort(net.wh_distance_km[SH], kind="stable")[:3].tolist() == [SH, HZ, NJ]
    st = State.initial(net)
    st.inventory[SH, SKU] = 600  # 10%: below the trigger
    st.on_order[SH, SKU] = 5400  # a supplier reorder up to 100%, landing in 24 h
    pol = Rebalance(0.2, 0.6, lead_time_h=12)

    # (a) the supplier reorder does not suppress the transfer: 2400 - 600 = 1800 from hangzhou
    moves = pol.decide(st, net, 6.0)
    assert moves[HZ, SH, SKU] == 1800 and moves.sum() == 1800
    assert pol.in_transit(6.0, init.shape)[SH, SKU] == 1800
    # the agent ships it: out of hangzhou now, on order at shanghai
    st.inventory[HZ, SKU] -= 1800
    st.on_order[SH, SKU] += 1800

    # (b) while it is in transit (lands at 18 h) nothing more is shipped, although shanghai
    # still holds 600 and nanjing has 6000 - 3600 = 2400 to spare
    assert not pol.decide(st, net, 12.0).any()

    # landed at 18 h: no longer counted; shanghai, sold down to 1000 since, gets 2400 - 1000 =
    # 1400: hangzhou's 3200 - 3000 = 200 spare first, then 1200 from nanjing
    st.on_order[SH, SKU] -= 1800
    st.inventory[SH, SKU] = 1000
    moves = pol.decide(st, net, 18.0)
    assert (moves[HZ, SH, SKU], moves[NJ, SH, SKU], moves.sum()) == (200, 1200, 1400)


def test_a_new_run_forgets_the_old_transfers() -> None:
    net = FulfillmentModel(_scenario(), seed=0).net
    pol = Rebalance(0.2, 0.6, lead_time_h=12)
    for _ in range(2):  # the same policy object on two runs: the second run ships again
        st = State.initial(net)
        st.inventory[SH, SKU] = 600
        assert pol.decide(st, net, 6.0)[HZ, SH, SKU] == 1800


def test_the_lead_time_defaults_to_the_scenario_and_the_config_passes_it() -> None:
    from twin.policies import make_reallocation_policy

    sc = _scenario()
    assert make_reallocation_policy(sc.policy.reallocation).lead_time_h == 12.0
    net = FulfillmentModel(sc, seed=0).net
    pol = Rebalance()  # lead time from net.scenario: 12 h
    st = State.initial(net)
    st.inventory[SH, SKU] = 600
    assert pol.decide(st, net, 6.0).sum() == 1800
    assert pol.in_transit(17.9, net.initial_stock.shape)[SH, SKU] == 1800
    assert pol.in_transit(18.0, net.initial_stock.shape)[SH, SKU] == 0
    with pytest.raises(ValueError, match="lead_time_h must be >= 0"):
        Rebalance(lead_time_h=-1.0)


@pytest.mark.parametrize("engine", ["kernel", "simpy"])
def test_in_the_model_one_transfer_despite_a_supplier_reorder_and_no_double_shipping(engine: str) -> None:
    m = FulfillmentModel(_scenario(), seed=0, engine=engine)
    st = m.state
    st.inventory[SH, SKU] = 600
    # a supplier reorder up to 100% already placed, landing at 24 h (the review at 6 h sees it)
    cell = np.array([SH * m.net.n_skus + SKU])
    m.supplier.ship_in_at(cell, np.array([5400]), 24.0)
    for _ in range(7):  # t = 7 h: the 6 h decision moved 1800 from hangzhou
        m.step()
    assert m.reallocator.units_moved == 1800 and m.supplier.units_ordered == 0
    assert (st.inventory[SH, SKU], st.inventory[HZ, SKU], st.inventory[NJ, SKU]) == (600, 3200, 6000)
    assert st.on_order[SH, SKU] == 5400 + 1800
    for _ in range(6):  # t = 13 h: the 12 h decision saw the transfer in transit, shipped nothing
        m.step()
    assert m.reallocator.units_moved == 1800 and st.inventory[NJ, SKU] == 6000
    for _ in range(6):  # t = 19 h: landed at 18 h
        m.step()
    assert st.inventory[SH, SKU] == 2400 and st.on_order[SH, SKU] == 5400
    for _ in range(6):  # t = 25 h: the supplier's landed at 24 h
        m.step()
    assert st.inventory[SH, SKU] == 7800 and not st.on_order.any()
    assert m.reallocator.units_moved == 1800
