"""The one definition of what a shipment costs: a table per (cold, carrier, warehouse, region)
plus handling per line.

``cost = parcel_cost[cold, c, w, r] + handling_per_line[w] * lines``, where the parcel cost is
the carrier's price on the lane (per parcel + per km) plus its reefer surcharge for a cold
parcel. Both engines' records, the running counters, the routing criteria and the RL envs read
these tables (the kernel keeps a compiled copy of the formula; a test checks its records).

Also the one definition of the objective every policy is judged by (the RL rewards, the
hindsight bound): cost + late penalty x late orders + lost penalty x lost orders + CO2 price x
CO2 (:class:`ObjectiveWeights`, :func:`objective_cny`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CostTable", "cost_table", "shipment_cost", "ObjectiveWeights", "objective_cny"]


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


@dataclass(frozen=True)
class ObjectiveWeights:
    """The prices of the objective, in CNY: per late order (delivered after its promise, or not
    delivered by the end of the run), per lost order, per kg of CO2."""

    late_penalty_cny: float = 50.0
    lost_penalty_cny: float = 100.0
    co2_price_cny_per_kg: float = 1.0

    def __post_init__(self) -> None:
        for name in ("late_penalty_cny", "lost_penalty_cny", "co2_price_cny_per_kg"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v!r}")


def objective_cny(cost_cny, late, lost, co2_kg, w: ObjectiveWeights):  # noqa: ANN001, ANN201 - floats or arrays
    """The objective in CNY (lower is better): ``cost + late_penalty x late + lost_penalty x
    lost + co2_price x co2`` (counts or amounts of orders; scalars or arrays)."""
    return cost_cny + w.late_penalty_cny * late + w.lost_penalty_cny * lost + w.co2_price_cny_per_kg * co2_kg
