"""Allocation shares: each region sends its orders to warehouses in given shares (RL's action)."""

from __future__ import annotations

import numpy as np

from twin.policies.base import INF, OrderBatch, RoutingPolicy, assign_order
from twin.policies.plan import RoutingPlan
from twin.world.network import Network
from twin.world.state import State

__all__ = ["AllocationShares"]


class AllocationShares(RoutingPolicy):
    """Each region sends its orders to warehouses in given shares (the RL routing action).

    ``shares[r, w] >= 0``; an order of region ``r`` goes to warehouse ``w`` with probability
    proportional to ``shares[r, w]`` among the warehouses that can serve it whole (open, with
    the stock, cold-capable for cold orders, with a lane): infeasible warehouses are projected
    out. A region whose shares are all 0 spreads evenly. Carrier: the fastest on the lane.
    The draw is an exponential race, ``argmin_w E_w / shares[r, w]``, so the shared
    :func:`assign_order` applies it (and splits, when no single warehouse can serve).
    """

    name = "shares"

    def __init__(self, shares: np.ndarray | None = None, allow_split: bool = True) -> None:
        super().__init__(allow_split)
        self._given = None if shares is None else np.asarray(shares, dtype=float)

    def lane_criterion(self, net: Network) -> np.ndarray:
        return net.transit_mean_h

    def bind(self, net: Network, rng: np.random.Generator | None = None) -> RoutingPolicy:
        super().bind(net, rng)
        self.set_shares(self._given if self._given is not None else np.ones((net.n_regions, net.n_warehouses)))
        return self

    def set_shares(self, shares: np.ndarray) -> None:
        """Replace the shares (``[regions, warehouses]``, each >= 0; rows need not sum to 1)."""
        net = self.net
        if net is None:
            raise RuntimeError("bind the policy to a network before setting shares")
        a = np.asarray(shares, dtype=float)
        if a.shape != (net.n_regions, net.n_warehouses):
            raise ValueError(f"shares must have shape (regions, warehouses) = ({net.n_regions}, {net.n_warehouses}), "
                             f"got {a.shape}")
        tot = a.sum(axis=1, keepdims=True)
        if not (a.min() >= 0 and np.isfinite(tot).all()):  # (a NaN fails the first test)
            raise ValueError("shares must be finite and >= 0")
        if not (tot > 0).all():  # a region with all zeros: uniform shares
            a = np.where(tot > 0, a, 1.0)
            tot = a.sum(axis=1, keepdims=True)
        self.shares = a / tot

    def plan(self) -> RoutingPlan:
        """``shares`` mode; the plan holds the current shares (after :meth:`set_shares`, ask again)."""
        self._require_bound()
        return RoutingPlan("shares", self.lane_carrier, bool(self.allow_split), self.static_score,
                           service_carrier=self.service_carrier,
                           shares=self.shares)

    def scores(self, batch: OrderBatch, state: State) -> np.ndarray:
        if self.rng is None:
            raise RuntimeError("AllocationShares draws: bind it with the run's generator (bind(net, rng))")
        sh = self.shares[batch.region]  # [n, W]
        e = self.rng.standard_exponential(sh.shape)
        with np.errstate(divide="ignore"):
            race = np.where(sh > 0, e / sh, INF)
        return race + np.where(np.isfinite(self.static_score[batch.cold.astype(np.int64), batch.region]), 0.0, INF)

    def route_one(self, region: int, cold: bool, sku: list[int], qty: list[int], state: State,
                  service: int = 0) -> list[int] | None:
        batch = OrderBatch.single(region, cold, np.asarray(sku), np.asarray(qty))
        score = self.scores(batch, state)[0]
        usable = (state.wh_open & state.cold_ok) if cold else state.wh_open
        out = assign_order(score, usable, state.inventory[:, sku], np.asarray(qty), self.allow_split)
        return None if out is None else out.tolist()
