"""Scripted disruptions: each writes the State when its window ``[start_h, end_h)`` opens and again
when it closes, at exactly those times (SimPy processes; the engines apply an agent's change
before their own events at the same instant)."""

from __future__ import annotations

import mesa
import numpy as np

from twin.scenario.schema import AGVBreakdown, CarrierCapacityLoss, ColdChainFailure, DemandSurge, WarehouseOutage


class DisruptionAgent(mesa.Agent):
    """Keeps the set of active disruptions and recomputes the State arrays they touch from
    scratch at each change, so overlapping windows combine without drift."""

    def __init__(self, model: mesa.Model) -> None:
        super().__init__(model)
        self.items = list(model.scenario.disruptions)
        self.active: set[int] = set()
        self.log: list[tuple[float, str, str]] = []
        for i, d in enumerate(self.items):
            model.env.process(self._window(i, d))

    def _window(self, i: int, d):  # noqa: ANN001, ANN202
        env = self.model.env
        yield env.timeout(d.start_h)
        self.active.add(i)
        self.log.append((env.now, "start", d.type))
        self._apply()
        yield env.timeout(d.end_h - d.start_h)
        self.active.discard(i)
        self.log.append((env.now, "end", d.type))
        self._apply()

    def _apply(self) -> None:
        m = self.model
        st, net = m.state, m.net
        surge_before = st.surge_mult.copy()
        st.wh_open[:] = True
        st.cold_ok[:] = net.cold_capable
        st.carrier_capacity_mult[:] = 1.0
        st.surge_mult[:] = 1.0
        st.agv_disabled_frac[:] = 0.0
        for i in sorted(self.active):
            d = self.items[i]
            if isinstance(d, WarehouseOutage):
                st.wh_open[net.warehouses.index(d.warehouse)] = False
            elif isinstance(d, ColdChainFailure):
                st.cold_ok[net.warehouses.index(d.warehouse)] = False
            elif isinstance(d, CarrierCapacityLoss):
                st.carrier_capacity_mult[net.carriers.index(d.carrier)] *= 1.0 - d.fraction
            elif isinstance(d, AGVBreakdown):
                w = net.warehouses.index(d.warehouse)
                st.agv_disabled_frac[w] = min(1.0, st.agv_disabled_frac[w] + d.fraction)
            elif isinstance(d, DemandSurge):
                idx = range(net.n_regions) if d.regions == "all" else [net.regions.index(r) for r in d.regions]
                for r in idx:
                    st.surge_mult[r] *= d.multiplier
        for fleet in m.fleets:
            fleet.update()
        if not np.array_equal(surge_before, st.surge_mult):
            m.demand_changed()  # the arrival rates follow the surge from now
        m.state_changed()
