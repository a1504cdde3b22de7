"""Weather per region: a Markov chain over states in each region, overridden by scripted events
(typhoons)."""

from __future__ import annotations

import mesa
import numpy as np


class WeatherAgent(mesa.Agent):
    """The weather of every region: one Markov chain per region, stepped together.

    Each ``update_interval_h`` every region draws its next state from the transition row of its
    current one (at the model's ticks); a scripted event covering a region overrides the
    state's effects during its window ``[start_h, end_h)``, from and to exactly those times (a
    SimPy process per event, like the disruptions: the engines apply it before their own events
    at the same instant). Writes each region's transit and demand multipliers and whether its
    lanes run.
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
        self.active: set[int] = set()  # the scripted events in force now (kept by their processes)
        self._written = False
        for i, (e, _) in enumerate(self.events):
            model.env.process(self._event(i, e))

    def weather(self, region: int) -> str:
        """The Markov state of ``region`` now (scripted events aside)."""
        return self.names[self.state_index[region]]

    def step(self) -> None:
        """Advance every region's chain to the model's time and write the State (only when a
        chain moved: nobody else writes these arrays)."""
        now = self.model.env.now
        moved = not self._written
        if len(self.names) > 1:
            rng = self.model.streams.weather
            while self._next_update <= now + 1e-9:
                u = rng.random(len(self.state_index))
                self.state_index = (u[:, None] >= self._cum[self.state_index]).sum(axis=1)
                self._next_update += self.cfg.update_interval_h
                moved = True
        if moved:
            self._write()

    def _event(self, i: int, e):  # noqa: ANN001, ANN202 - a SimPy process
        """Scripted event ``i``: in force from ``start_h`` to ``end_h``, at exactly those times."""
        env = self.model.env
        yield env.timeout(e.start_h)
        self.active.add(i)
        self._changed()
        yield env.timeout(e.end_h - e.start_h)
        self.active.discard(i)
        self._changed()

    def _changed(self) -> None:
        m = self.model
        demand_before = m.state.region_demand_mult.copy()
        self._write()
        if not np.array_equal(demand_before, m.state.region_demand_mult):
            m.demand_changed()  # the arrival rates follow from now
        m.state_changed()

    def _write(self) -> None:
        """The regions' multipliers and lanes: their Markov states', overridden by the scripted
        events in force (in the order they are listed)."""
        self._written = True
        st, s = self.model.state, self.state_index
        st.region_transit_mult[:] = self._transit[s]
        st.region_demand_mult[:] = self._demand[s]
        closed = self._closes[s]
        for i in sorted(self.active):
            e, mask = self.events[i]
            st.region_transit_mult[mask] = e.transit_multiplier
            st.region_demand_mult[mask] = e.demand_multiplier
            closed = np.where(mask, e.closes_lanes, closed)
        st.region_open[:] = ~closed
