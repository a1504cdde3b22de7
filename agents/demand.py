"""Demand: the order rate per region, piecewise constant over each model tick."""

from __future__ import annotations

import mesa
import numpy as np

from twin.world.demand import DemandRate


class DemandAgent(mesa.Agent):
    """Sets ``State.region_rate`` each tick to the rates of :class:`twin.world.demand.DemandRate`
    (base rate x peak profile x diurnal cycle x region weight x weather demand multiplier x
    surge multiplier) at the middle of the tick; 0 after the horizon.
    """

    def __init__(self, model: mesa.Model) -> None:
        super().__init__(model)
        self.cfg = model.scenario.demand
        self.rate = DemandRate(self.cfg)

    def total_rate(self, t):  # noqa: ANN001, ANN201 - a float, or an array of times
        """Orders per hour over the whole network at time ``t`` (or each of an array of times)
        before weather and surges."""
        return self.rate.total(t)

    def expected_orders(self) -> float:
        """The orders the horizon's ticks expect before weather and surges (the rate at each
        tick's middle times the tick)."""
        sc = self.model.scenario
        mids = np.arange(sc.tick_h / 2, sc.horizon_h, sc.tick_h)
        return float(np.sum(self.total_rate(mids)) * sc.tick_h)

    def step(self) -> None:
        m = self.model
        st = m.state
        if m.env.now >= m.scenario.horizon_h:  # the drain: no more orders arrive
            if st.region_rate.any():
                st.region_rate[:] = 0.0
            return
        t_mid = m.env.now + m.scenario.tick_h / 2
        st.region_rate[:] = self.rate.regional(t_mid, m.net.region_weight, st.region_demand_mult, st.surge_mult)
