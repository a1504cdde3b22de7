"""Demand: the order rate per region, piecewise constant over each model tick."""

from __future__ import annotations

import mesa
import numpy as np


class DemandAgent(mesa.Agent):
    """Sets ``State.region_rate`` each tick: base rate x peak profile x diurnal cycle x
    region weight x weather demand multiplier x surge multiplier (0 after the horizon).

    The profile is piecewise linear between its ``[time_h, multiplier]`` points and holds its
    end values outside them; it is evaluated at the middle of the tick.
    """

    def __init__(self, model: mesa.Model) -> None:
        super().__init__(model)
        d = model.scenario.demand
        self.cfg = d
        self._pt = np.array([p[0] for p in d.profile], dtype=float)
        self._pm = np.array([p[1] for p in d.profile], dtype=float)

    def total_rate(self, t):  # noqa: ANN001, ANN201 - a float, or an array of times
        """Orders per hour over the whole network at time ``t`` (or each of an array of times)
        before weather and surges."""
        d = self.cfg
        prof = np.interp(t, self._pt, self._pm)
        diurnal = 1.0 + d.diurnal_amplitude * np.sin(2 * np.pi * (np.asarray(t) - 6.0) / 24.0)
        rate = d.base_rate_per_h * prof * diurnal
        return float(rate) if np.ndim(rate) == 0 else rate

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
        st.region_rate[:] = self.total_rate(t_mid) * m.net.region_weight * st.region_demand_mult * st.surge_mult
