"""The one definition of what a shipment costs: a table per (cold, carrier, warehouse, region)
plus handling per line.

``cost = parcel_cost[cold, c, w, r] + handling_per_line[w] * lines``, where the parcel cost is
the carrier's price on the lane (per parcel + per km) plus its reefer surcharge for a cold
parcel. Both engines' records, the running counters, the routing criteria and the RL envs read
these tables (the kernel keeps a compiled copy of the formula; a test checks its records).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CostTable", "cost_table", "shipment_cost"]


class CostTable:
    """``parcel[cold, c, w, r]`` (CNY per parcel) and ``handling_per_line[w]`` (CNY per line)."""

    __slots__ = ("parcel", "handling_per_line")

    def __init__(self, parcel: np.ndarray, handling_per_line: np.ndarray) -> None:
        self.parcel = parcel
        self.handling_per_line = handling_per_line

    def lanes(self, cold: bool, lines: int = 1) -> np.ndarray:
        """``[C, W, R]``: the cost of a shipment of ``lines`` lines on every lane."""
        _, C, W, R = self.parcel.shape
        return shipment_cost(self, np.arange(C)[:, None, None], np.arange(W)[None, :, None],
                             np.arange(R)[None, None, :], int(cold), lines)


def cost_table(lane_cost: np.ndarray, reefer_surcharge: np.ndarray, handling_per_line: np.ndarray) -> CostTable:
    """The table from the ambient lane prices ``[C, W, R]``, the carriers' reefer surcharges
    ``[C]`` and the warehouses' handling cost per line ``[W]``."""
    parcel = np.stack([lane_cost, lane_cost + reefer_surcharge[:, None, None]])
    return CostTable(np.ascontiguousarray(parcel, dtype=np.float64),
                     np.ascontiguousarray(handling_per_line, dtype=np.float64))


def shipment_cost(costs: CostTable, carrier, warehouse, region, cold, lines):  # noqa: ANN001, ANN201 - broadcasts
    """CNY of shipments (scalars or arrays that broadcast): the parcel on its lane plus handling."""
    return (costs.parcel[np.asarray(cold, dtype=np.int64), carrier, warehouse, region]
            + costs.handling_per_line[warehouse] * lines)
