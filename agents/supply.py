"""Stock moving in: supplier replenishment (periodic review) and transfers between warehouses."""

from __future__ import annotations

import mesa
import numpy as np


class _Inbound:
    """Books units as on order now and moves them on hand after a lead time."""

    def ship_in(self, qty: np.ndarray, lead_time_h: float) -> None:
        m = self.model
        m.state.on_order += qty
        m.env.process(self._arrive(qty, lead_time_h))

    def _arrive(self, qty: np.ndarray, lead_time_h: float):  # noqa: ANN202 - a SimPy process
        yield self.model.env.timeout(lead_time_h)
        st = self.model.state
        st.on_order -= qty
        st.inventory += qty
        self.model.state_changed()


class SupplierAgent(_Inbound, mesa.Agent):
    """Periodic-review replenishment from suppliers (see :class:`twin.scenario.schema.Replenishment`)."""

    def __init__(self, model: mesa.Model) -> None:
        super().__init__(model)
        self.cfg = model.scenario.replenishment
        self.units_ordered = 0
        if self.cfg.mode != "none":
            model.env.process(self._review())

    def _review(self):  # noqa: ANN202
        m, c = self.model, self.cfg
        init = m.net.initial_stock
        up_to = np.ceil(c.order_up_to_frac * init).astype(np.int64)
        rop = np.floor(c.reorder_point_frac * init).astype(np.int64) if c.mode == "reorder_point" else up_to
        while True:
            yield m.env.timeout(c.review_interval_h)
            position = m.state.inventory + m.state.on_order
            qty = np.where((init > 0) & (position <= rop), up_to - position, 0)
            qty = np.maximum(qty, 0)
            if qty.any():
                self.units_ordered += int(qty.sum())
                self.ship_in(qty, c.lead_time_h)


class ReallocationAgent(_Inbound, mesa.Agent):
    """Runs the reallocation policy every ``interval_h`` and ships the transfers it decides."""

    def __init__(self, model: mesa.Model) -> None:
        super().__init__(model)
        self.cfg = model.scenario.policy.reallocation
        self.units_moved = 0
        if model.reallocation.name != "none":
            model.env.process(self._run())

    def _run(self):  # noqa: ANN202
        m = self.model
        while True:
            yield m.env.timeout(self.cfg.interval_h)
            moves = m.reallocation.decide(m.state, m.net, m.env.now)
            if moves.any():
                out = moves.sum(axis=1)  # [W_from, S]
                if (out > m.state.inventory).any():
                    raise ValueError("reallocation policy moved more units than a warehouse holds")
                m.state.inventory -= out
                self.units_moved += int(out.sum())
                self.ship_in(moves.sum(axis=0), self.cfg.lead_time_h)
