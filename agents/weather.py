"""Weather per region: a Markov chain over states in each region, overridden by scripted events
(typhoons)."""

from __future__ import annotations

import mesa
import numpy as np


class WeatherAgent(mesa.Agent):
    """The weather of every region: one Markov chain per region, stepped together.

    Each ``update_interval_h`` every region draws its next state from the transition row of its
    current one; a scripted event covering a region overrides the state's effects while it
    lasts. Writes each region's transit and demand multipliers and whether its lanes run.
    """

    def __init__(self, model: mesa.Model) -> None:
        super().__init__(model)
        cfg = model.scenario.weather
        self.cfg = cfg
        self.names = [s.name for s in cfg.states]
        R = model.net.n_regions
        self.state_index = np.full(R, self.names.index(cfg.initial), dtype=np.int64)
        self._cum = np.cumsum(np.array(cfg.transition, dtype=float), axis=1)
        self._cum[:, -1] = np.inf  # rounding never lets a draw fall off the row
        self._next_update = cfg.update_interval_h
        self._transit = np.array([s.transit_multiplier for s in cfg.states])
        self._demand = np.array([s.demand_multiplier for s in cfg.states])
        self._closes = np.array([s.closes_lanes for s in cfg.states])
        regions = model.net.regions
        self.events = [(e, np.isin(regions, e.regions)) for e in cfg.events]
        self._active: list[int] | None = None  # the scripted events in force at the last write

    def weather(self, region: int) -> str:
        """The Markov state of ``region`` now (scripted events aside)."""
        return self.names[self.state_index[region]]

    def step(self) -> None:
        """Advance every region's chain to the model's time and write the State (only when a
        chain moved or a scripted event started or ended: nobody else writes these arrays)."""
        now = self.model.env.now
        moved = self._active is None
        if len(self.names) > 1:
            rng = self.model.rng
            while self._next_update <= now + 1e-9:
                u = rng.random(len(self.state_index))
                self.state_index = (u[:, None] >= self._cum[self.state_index]).sum(axis=1)
                self._next_update += self.cfg.update_interval_h
                moved = True
        active = [i for i, (e, _) in enumerate(self.events) if e.start_h <= now < e.end_h]
        if not moved and active == self._active:
            return
        self._active = active
        st, s = self.model.state, self.state_index
        st.region_transit_mult[:] = self._transit[s]
        st.region_demand_mult[:] = self._demand[s]
        closed = self._closes[s]
        for i in active:
            e, mask = self.events[i]
            st.region_transit_mult[mask] = e.transit_multiplier
            st.region_demand_mult[mask] = e.demand_multiplier
            closed = np.where(mask, e.closes_lanes, closed)
        st.region_open[:] = ~closed
