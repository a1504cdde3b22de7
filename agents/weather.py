"""Weather per region: a Markov chain over states, overridden by scripted events (typhoons)."""

from __future__ import annotations

import mesa
import numpy as np


class WeatherAgent(mesa.Agent):
    """The weather of one region. Each ``update_interval_h`` it draws its next state from the
    transition row of the current one; a scripted event covering the region overrides the
    state's effects while it lasts. Writes the region's transit and demand multipliers and
    whether its lanes run."""

    def __init__(self, model: mesa.Model, region: int) -> None:
        super().__init__(model)
        self.region = region
        cfg = model.scenario.weather
        self.cfg = cfg
        self.names = [s.name for s in cfg.states]
        self.state_index = self.names.index(cfg.initial)
        self._cum = np.cumsum(np.array(cfg.transition, dtype=float), axis=1)
        self._next_update = cfg.update_interval_h
        name = model.net.regions[region]
        self.events = [e for e in cfg.events if name in e.regions]

    @property
    def weather(self) -> str:
        return self.names[self.state_index]

    def step(self) -> None:
        """Advance the chain to the model's time and write the State."""
        now = self.model.env.now
        if len(self.names) > 1:
            while self._next_update <= now + 1e-9:
                row = self._cum[self.state_index]
                self.state_index = int(min(np.searchsorted(row, self.model.rng.random(), side="right"), len(row) - 1))
                self._next_update += self.cfg.update_interval_h
        st = self.model.state
        s = self.cfg.states[self.state_index]
        transit, demand, closed = s.transit_multiplier, s.demand_multiplier, s.closes_lanes
        for e in self.events:
            if e.start_h <= now < e.end_h:
                transit, demand, closed = e.transit_multiplier, e.demand_multiplier, e.closes_lanes
        st.region_transit_mult[self.region] = transit
        st.region_demand_mult[self.region] = demand
        st.region_open[self.region] = not closed
