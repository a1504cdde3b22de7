"""Demand: the order rate per region, piecewise constant over each model tick (and between the
demand multipliers' changes inside it)."""

from __future__ import annotations

import mesa
import numpy as np

from twin.world.demand import DemandRate


class DemandAgent(mesa.Agent):
    """Sets ``State.region_rate`` each tick to the rates of :class:`twin.world.demand.DemandRate`
    (base rate x peak profile x diurnal cycle x region weight x weather demand multiplier x
    surge multiplier) at the middle of the tick; 0 after the horizon. When a surge or a scripted
    weather event changes a multiplier inside the tick, :meth:`refresh` writes the rates again
    at that moment (``FulfillmentModel.demand_changed``).
    """

    def __init__(self, model: mesa.Model) -> None:
        super().__init__(model)
        self.cfg = model.scenario.demand
        self.rate = DemandRate(self.cfg)
        self._t_mid = 0.0  # the middle of the tick under way (its base rate)

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
        self._t_mid = m.env.now + m.scenario.tick_h / 2
        self.refresh()

    def refresh(self) -> None:
        """Write the rates: the tick's base rate with the demand multipliers in force now."""
        m = self.model
        st = m.state
        st.region_rate[:] = self.rate.regional(self._t_mid, m.net.region_weight, st.region_demand_mult, st.surge_mult)
