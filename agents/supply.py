"""Stock moving in: supplier replenishment (periodic review) and transfers between warehouses."""

from __future__ import annotations

import mesa
import numpy as np


class _Inbound:
    """Books units as on order now and moves them on hand after a lead time."""

    def ship_in(self, qty: np.ndarray, lead_time_h: float) -> None:
        """``qty``: ``[W, S]`` units per warehouse and SKU."""
        m = self.model
        m.state.on_order += qty
        m.env.process(self._arrive(qty, lead_time_h))

    def ship_in_at(self, cells: np.ndarray, qty: np.ndarray, lead_time_h: float) -> None:
        """``qty[i]`` units of the (warehouse, SKU) cell ``cells[i]`` (flat indices into ``[W, S]``,
        each at most once): what a review orders touches few cells of a large network, so only
        those are written, and nothing of the network's size stays in flight."""
        m = self.model
        m.state.on_order.reshape(-1)[cells] += qty
        m.env.process(self._arrive_at(cells, qty, lead_time_h))

    def _arrive(self, qty: np.ndarray, lead_time_h: float):  # noqa: ANN202 - a SimPy process
        yield self.model.env.timeout(lead_time_h)
        st = self.model.state
        st.on_order -= qty
        st.inventory += qty
        self.model.state_changed()

    def _arrive_at(self, cells: np.ndarray, qty: np.ndarray, lead_time_h: float):  # noqa: ANN202
        yield self.model.env.timeout(lead_time_h)
        st = self.model.state
        st.on_order.reshape(-1)[cells] -= qty
        st.inventory.reshape(-1)[cells] += qty
        self.model.state_changed()


class SupplierAgent(_Inbound, mesa.Agent):
    """Periodic-review replenishment from suppliers (see :class:`twin.scenario.schema.Replenishment`).

    A review looks only at the (warehouse, SKU) cells that carry the SKU, with buffers allocated
    once: on a network of millions of cells a review costs a few passes over them, not fresh
    arrays of the network's size (whose first touch, page by page, cost more than the work)."""

    def __init__(self, model: mesa.Model) -> None:
        super().__init__(model)
        self.cfg = model.scenario.replenishment
        self.units_ordered = 0
        if self.cfg.mode != "none":
            model.env.process(self._review())

    def _review(self):  # noqa: ANN202
        m, c = self.model, self.cfg
        init = m.net.initial_stock.reshape(-1)
        cells = np.flatnonzero(init > 0)  # the carried cells; the others are never ordered
        up_to = np.ceil(c.order_up_to_frac * init[cells]).astype(np.int64)
        rop = np.floor(c.reorder_point_frac * init[cells]).astype(np.int64) if c.mode == "reorder_point" else up_to
        position = np.empty(len(cells), dtype=np.int64)
        low = np.empty(len(cells), dtype=bool)
        while True:
            yield m.env.timeout(c.review_interval_h)
            inv, on_order = m.state.inventory.reshape(-1), m.state.on_order.reshape(-1)
            np.take(inv, cells, out=position)
            position += on_order[cells]
            np.less_equal(position, rop, out=low)
            idx = np.flatnonzero(low)
            qty = up_to[idx] - position[idx]
            keep = qty > 0
            if keep.any():
                idx, qty = idx[keep], qty[keep]
                self.units_ordered += int(qty.sum())
                self.ship_in_at(cells[idx], qty, c.lead_time_h)


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
