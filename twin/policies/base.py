"""The routing policy interface: an order batch, the base class, and turning scores into lines.

A routing policy scores the warehouses for each order of a batch (lower is better) and picks
a carrier per lane; the shared :func:`assign_lines` turns scores into a warehouse per order
line, keeping an order whole when one warehouse can serve it and splitting it otherwise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from twin.policies.plan import RoutingPlan, preference_lists
from twin.world.network import Network
from twin.world.state import State

__all__ = ["DECIDING_METHODS", "INF", "OrderBatch", "RoutingPolicy", "assign_lines", "assign_order", "lane_choice"]

INF = np.inf


@dataclass
class OrderBatch:
    """Orders to route: ``n`` orders, their lines flattened (order ``i`` owns lines
    ``line_start[i]:line_start[i+1]``)."""

    region: np.ndarray  # [n] int
    cold: np.ndarray  # [n] bool
    line_start: np.ndarray  # [n+1] int
    sku: np.ndarray  # [L] int
    qty: np.ndarray  # [L] int units per line

    @classmethod
    def single(cls, region: int, cold: bool, sku: np.ndarray, qty: np.ndarray) -> OrderBatch:
        return cls(np.array([region]), np.array([cold]), np.array([0, len(sku)]), sku, qty)

    def __len__(self) -> int:
        return len(self.region)


#: Overriding one of these changes the decisions a native plan would take.
DECIDING_METHODS = ("scores", "route", "route_one", "dynamic_score")


class RoutingPolicy(ABC):
    """Decides which warehouse serves each order line, and which carrier takes each parcel.

    Subclasses give a static lane criterion (:meth:`lane_criterion`) and may add a dynamic
    term per warehouse (:meth:`dynamic_score`).
    """

    name: str = "policy"

    def __init__(self, allow_split: bool = True) -> None:
        self.allow_split = allow_split
        self.net: Network | None = None
        #: carrier choice by service level: ``{service level name: [C, W, R] lane criterion}``
        #: (lower is better), set before :meth:`bind`; levels not named use ``lane_carrier``
        self.service_criteria: dict[str, np.ndarray | Callable[[Network], np.ndarray]] = {}

    # -- set-up ---------------------------------------------------------------------------
    def bind(self, net: Network, rng: np.random.Generator | None = None) -> RoutingPolicy:
        """Precompute the lane tables of ``net``; ``rng`` is the run's generator, for policies
        that draw. Returns self."""
        self.net = net
        self.rng = rng
        self.lane_carrier, self.lane_score = lane_choice(net, self.lane_criterion(net))  # [2, W, R]
        levels = list(net.scenario.demand.service_levels)
        unknown = sorted(set(self.service_criteria) - set(levels))
        if unknown:
            raise ValueError(f"service_criteria names unknown service levels {unknown}; the scenario has {levels}")
        #: ``[2, K, W, R]`` carrier per (cold, service level, warehouse, region), or None when
        #: every level takes ``lane_carrier``
        self.service_carrier: np.ndarray | None = None
        if self.service_criteria:
            sc = np.repeat(self.lane_carrier[:, None], len(levels), axis=1)
            for name, crit in self.service_criteria.items():
                table = crit(net) if callable(crit) else np.asarray(crit, dtype=float)
                sc[:, levels.index(name)] = lane_choice(net, table)[0]
            self.service_carrier = sc
        self.static_score = self.warehouse_score(net)  # [2, R, W]
        self._pref = preference_lists(self.static_score)
        return self

    # -- how an engine may run it -----------------------------------------------------------
    def plan(self) -> RoutingPlan:
        """How an engine may run this policy without calling it per order (:mod:`twin.policies.plan`).

        The base class says ``batch``: call :meth:`route` on batches of orders. A subclass
        that overrides a deciding method (:data:`DECIDING_METHODS`) without also overriding
        ``plan`` is routed in batches too, so a native plan never hides its code.
        """
        self._require_bound()
        return RoutingPlan("batch", self.lane_carrier, bool(self.allow_split), self.static_score,
                           service_carrier=self.service_carrier)

    def _require_bound(self) -> None:
        if self.net is None:
            raise RuntimeError(f"routing policy {self.name!r} is not bound to a network: call bind(net, rng) first")

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "plan" not in cls.__dict__ and any(m in cls.__dict__ for m in DECIDING_METHODS):
            cls.plan = RoutingPolicy.plan  # its own decisions: run in batches

    @abstractmethod
    def lane_criterion(self, net: Network) -> np.ndarray:
        """``[C, W, R]`` criterion of each carrier lane (lower is better)."""

    def warehouse_score(self, net: Network) -> np.ndarray:
        """``[2, R, W]`` static score of each warehouse for a (cold, region); inf: no lane."""
        return np.transpose(self.lane_score, (0, 2, 1)).copy()

    def dynamic_score(self, state: State) -> np.ndarray | None:
        """``[W]`` state-dependent term added to the static score, or None."""
        return None

    # -- deciding -------------------------------------------------------------------------
    def scores(self, batch: OrderBatch, state: State) -> np.ndarray:
        """``[n, W]`` score of each warehouse for each order; inf means not allowed."""
        s = self.static_score[batch.cold.astype(np.int64), batch.region]
        d = self.dynamic_score(state)
        return s if d is None else s + d

    def route(self, batch: OrderBatch, state: State) -> np.ndarray:
        """Warehouse index of each line (``[L]``), -1 for every line of an order that cannot be
        served whole. Pure: reads ``state``, reserves nothing."""
        return assign_lines(batch, self.scores(batch, state), state, self.allow_split)

    def route_one(self, region: int, cold: bool, sku: list[int], qty: list[int], state: State,
                  service: int = 0) -> list[int] | None:
        """:meth:`route` for one order (the reference engine calls it at each arrival): the
        warehouse of each line, or None if the order cannot be served whole. ``service``: the
        order's service level index (policies that weigh promises read it; ``state.clock``
        holds the time).

        Same decisions as :func:`assign_order`, faster for one order: it walks the warehouses
        in score order and takes the first that can serve every line.
        """
        c = int(cold)
        d = self.dynamic_score(state)
        if d is None:
            pref = self._pref[c][region]
        else:
            score = (self.static_score[c, region] + d).tolist()
            pref = sorted(self._pref[c][region], key=score.__getitem__)
        wh_open, cold_ok, inv = state.wh_open, state.cold_ok, state.inventory
        lines = list(zip(sku, qty))
        for w in pref:
            if wh_open[w] and (not cold or cold_ok[w]) and all(inv[w, k] >= q for k, q in lines):
                return [w] * len(lines)
        if not self.allow_split or len(lines) == 1:
            return None
        score = self.static_score[c, region] if d is None else self.static_score[c, region] + d
        usable = (wh_open & cold_ok) if cold else wh_open
        out = assign_order(score, usable, inv[:, sku], np.asarray(qty), True)
        return None if out is None else out.tolist()

    def carrier(self, warehouse: int, region: int, cold: bool, service: int = 0) -> int:
        """The carrier taking a parcel of service level ``service`` from ``warehouse`` to ``region``."""
        if self.service_carrier is not None:
            return int(self.service_carrier[int(cold), service, warehouse, region])
        return int(self.lane_carrier[int(cold), warehouse, region])


def lane_choice(net: Network, criterion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per (cold, warehouse, region): the carrier with a lane (reefer room for cold) of the lowest
    ``criterion`` ``[C, W, R]`` (ties: the lower index; -1: no lane), and that value (inf: none)."""
    reefer = np.array([c.reefer_capacity > 0 for c in net.scenario.carriers])
    carrier = np.full((2, net.n_warehouses, net.n_regions), -1, dtype=np.int64)
    score = np.full((2, net.n_warehouses, net.n_regions), INF)
    for cold in (0, 1):
        ok = net.serves & (reefer[:, None, None] if cold else True)
        c = np.where(ok, criterion, INF)
        val = c.min(axis=0)
        carrier[cold] = np.where(np.isfinite(val), c.argmin(axis=0), -1)
        score[cold] = val
    return carrier, score


def assign_lines(batch: OrderBatch, scores: np.ndarray, state: State, allow_split: bool = True) -> np.ndarray:
    """Turn warehouse scores into a warehouse per line, honouring stock, openness and cold chain.

    Orders earlier in the batch reserve stock for later ones (on a private copy: the State is
    not changed). See :func:`assign_order` for one order.
    """
    n = len(batch)
    out = np.full(len(batch.sku), -1, dtype=np.int64)
    cols, sku_col = np.unique(batch.sku, return_inverse=True)
    inv = state.inventory[:, cols].copy()
    usable = state.wh_open & state.cold_ok
    for i in range(n):
        a, b = batch.line_start[i], batch.line_start[i + 1]
        if a == b:
            continue
        ok = usable if batch.cold[i] else state.wh_open
        lc, q = sku_col[a:b], batch.qty[a:b]
        w = assign_order(scores[i], ok, inv[:, lc], q, allow_split)
        if w is not None:
            out[a:b] = w
            np.subtract.at(inv, (w, lc), q)
    return out


def assign_order(score: np.ndarray, usable: np.ndarray, stock: np.ndarray, qty: np.ndarray,
                 allow_split: bool = True) -> np.ndarray | None:
    """The warehouse of each line of one order, or None if the order cannot be served whole.

    Args:
        score: ``[W]`` warehouse scores, lower is better; inf: not allowed.
        usable: ``[W]`` bool, the warehouse may take this order (open; cold storage if cold).
        stock: ``[W, lines]`` units on hand of each line's SKU.
        qty: ``[lines]`` units per line.

    The order goes whole to its best-scored warehouse that can serve every line; otherwise,
    if splitting is allowed, lines go greedily to the warehouse covering most remaining lines
    (ties to the better score).
    """
    ok = usable & (score < INF)
    feas = (stock >= qty) & ok[:, None]  # [W, lines]
    full = feas.all(axis=1)
    if full.any():
        return np.full(len(qty), int(np.argmin(np.where(full, score, INF))), dtype=np.int64)
    if not allow_split or not feas.any(axis=0).all():
        return None
    out = np.empty(len(qty), dtype=np.int64)
    left = np.ones(len(qty), dtype=bool)
    while left.any():
        cover = (feas & left).sum(axis=1)
        w = int(np.lexsort((score, -cover))[0])  # most lines covered, then the better score
        take = feas[w] & left
        out[take] = w
        left &= ~take
    return out
