"""How an engine may run a routing policy without calling it for every order: a small typed plan.

A policy's :meth:`~twin.policies.base.RoutingPolicy.plan` returns one of these modes:

- ``static``: each order goes whole to the first warehouse, in ``static_score`` order, that
  can serve it (open, stock, cold storage for cold orders); otherwise it is split.
- ``queue``: as ``static``, with the expected pick-queue wait added to each score:
  ``static_score + queue_weight * (backlog * pick_h / servers + pick_h) / queue_scale``.
- ``shares``: an exponential race over ``shares[region]`` among the warehouses that can serve
  the order whole (infeasible ones projected out).
- ``promise``: per order, the warehouse (able to serve it whole) and carrier with the lowest
  expected objective, cost + CO2 price x CO2 + late penalty x P(late)
  (:mod:`twin.policies.promise`); split as ``static`` otherwise.
- ``batch``: none of these: the engine calls ``policy.route(batch, state)`` on batches.

Every mode carries the carrier per lane (``lane_carrier``) and whether orders may be split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PLAN_MODES", "RoutingPlan", "preference_lists"]

#: The modes, by the code engines use for them.
PLAN_MODES: dict[str, int] = {"static": 0, "queue": 1, "shares": 2, "batch": 3, "promise": 4}


@dataclass(frozen=True, eq=False)
class RoutingPlan:
    """What an engine needs to run a policy natively (see the module docstring).

    Attributes:
        mode: ``static``, ``queue``, ``shares`` or ``batch``.
        lane_carrier: ``[2, W, R]`` int64 carrier per (cold, warehouse, region); -1: no lane.
        allow_split: orders no single warehouse can serve may be split.
        static_score: ``[2, R, W]`` score per (cold, region, warehouse), lower is better; inf:
            not allowed. Read by ``static``, ``queue`` (and ``shares``, for which lanes exist).
        queue_weight: the queue term's weight (``queue``).
        queue_scale: the queue term's divisor (``queue``).
        shares: ``[R, W]`` allocation shares, rows summing to 1 (``shares``).
        service_carrier: ``[2, K, W, R]`` carrier per (cold, service level, warehouse, region),
            or None: every service level takes ``lane_carrier``.
        late_penalty_by_service: ``[K]`` CNY per late order of each service level (``promise``;
            engines read the array itself, so changing it in place changes the routing).
        warehouse_offset: ``[W]`` CNY added to each warehouse's score (``promise``; likewise).
        co2_price: CNY per kg of CO2 (``promise``).
    """

    mode: str
    lane_carrier: np.ndarray
    allow_split: bool
    static_score: np.ndarray
    queue_weight: float = 0.0
    queue_scale: float = 1.0
    shares: np.ndarray | None = None
    co2_price: float = 0.0
    service_carrier: np.ndarray | None = None
    late_penalty_by_service: np.ndarray | None = None
    warehouse_offset: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.mode not in PLAN_MODES:
            raise ValueError(f"RoutingPlan.mode must be one of {', '.join(PLAN_MODES)}; got {self.mode!r}")
        if self.mode == "shares" and self.shares is None:
            raise ValueError("RoutingPlan.shares must be given in mode 'shares'")
        if self.mode == "queue" and not (self.queue_scale > 0 and self.queue_weight >= 0):
            raise ValueError(f"RoutingPlan: queue_weight must be >= 0 and queue_scale > 0, got "
                             f"{self.queue_weight!r} and {self.queue_scale!r}")

    @property
    def code(self) -> int:
        return PLAN_MODES[self.mode]


def preference_lists(static_score: np.ndarray) -> list[list[list[int]]]:
    """Per (cold, region): the warehouses with a lane, best static score first (ties: lower
    index). The one ordering both engines and :meth:`RoutingPolicy.route_one` walk."""
    order = np.argsort(static_score, axis=2, kind="stable")
    finite = np.isfinite(np.take_along_axis(static_score, order, axis=2))
    return [[order[c, r][finite[c, r]].tolist() for r in range(static_score.shape[1])]
            for c in range(static_score.shape[0])]
