"""Routing and reallocation policies: one interface for heuristics, learned and exported policies.

A routing policy scores the warehouses for each order of a batch (lower is better) and picks
a carrier per lane; the shared :func:`assign_lines` turns scores into a warehouse per order
line, keeping an order whole when one warehouse can serve it and splitting it otherwise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from twin.network import Network
from twin.schema import ReallocationConfig, RoutingConfig
from twin.state import State

__all__ = [
    "AllocationShares", "OrderBatch", "RoutingPolicy", "NearestWithStock", "Cheapest", "Fastest", "Greenest", "WeightedScore",
    "ReallocationPolicy", "NoReallocation", "Rebalance", "make_routing_policy", "make_reallocation_policy",
    "assign_lines", "assign_order", "transfers_from_nearest", "ROUTING_POLICIES",
]

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


class RoutingPolicy(ABC):
    """Decides which warehouse serves each order line, and which carrier takes each parcel.

    Subclasses give a static lane criterion (:meth:`lane_criterion`) and may add a dynamic
    term per warehouse (:meth:`dynamic_score`).
    """

    name: str = "policy"

    def __init__(self, allow_split: bool = True) -> None:
        self.allow_split = allow_split
        self.net: Network | None = None

    # -- set-up ---------------------------------------------------------------------------
    def bind(self, net: Network, rng: np.random.Generator | None = None) -> RoutingPolicy:
        """Precompute the lane tables of ``net``; ``rng`` is the run's generator, for policies
        that draw. Returns self."""
        self.net = net
        self.rng = rng
        crit = self.lane_criterion(net)  # [C, W, R]
        reefer = np.array([c.reefer_capacity > 0 for c in net.scenario.carriers])
        self.lane_carrier = np.full((2, net.n_warehouses, net.n_regions), -1, dtype=np.int64)
        self.lane_score = np.full((2, net.n_warehouses, net.n_regions), INF)
        for cold in (0, 1):
            ok = net.serves & (reefer[:, None, None] if cold else True)
            c = np.where(ok, crit, INF)
            best = c.argmin(axis=0)
            val = c.min(axis=0)
            self.lane_carrier[cold] = np.where(np.isfinite(val), best, -1)
            self.lane_score[cold] = val
        self.static_score = self.warehouse_score(net)  # [2, R, W]
        # warehouses with a lane, best static score first (ties: lower index), per (cold, region)
        order = np.argsort(self.static_score, axis=2, kind="stable")
        finite = np.isfinite(np.take_along_axis(self.static_score, order, axis=2))
        self._pref = [[order[c, r][finite[c, r]].tolist() for r in range(net.n_regions)] for c in (0, 1)]
        return self

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

    def route_one(self, region: int, cold: bool, sku: list[int], qty: list[int], state: State) -> list[int] | None:
        """:meth:`route` for one order (the reference engine calls it at each arrival): the
        warehouse of each line, or None if the order cannot be served whole.

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

    def carrier(self, warehouse: int, region: int, cold: bool) -> int:
        """The carrier taking a parcel from ``warehouse`` to ``region``."""
        return int(self.lane_carrier[int(cold), warehouse, region])


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


class NearestWithStock(RoutingPolicy):
    """The nearest warehouse (road distance) that has the stock; its fastest carrier."""

    name = "nearest_with_stock"

    def lane_criterion(self, net: Network) -> np.ndarray:
        return net.transit_mean_h

    def warehouse_score(self, net: Network) -> np.ndarray:
        d = np.where(np.isfinite(self.lane_score), net.distance_km[None], INF)
        return np.transpose(d, (0, 2, 1)).copy()


class Cheapest(RoutingPolicy):
    """The lowest cost per parcel: carrier price (reefer surcharge for cold) plus handling."""

    name = "cheapest"

    def lane_criterion(self, net: Network) -> np.ndarray:
        handling = np.array([w.handling_cost_per_line for w in net.scenario.warehouses])
        return net.lane_cost + handling[None, :, None]


class Greenest(RoutingPolicy):
    """The lowest CO2 per parcel."""

    name = "greenest"

    def lane_criterion(self, net: Network) -> np.ndarray:
        return net.lane_co2_kg


class Fastest(RoutingPolicy):
    """The earliest expected delivery: queue wait at the warehouse now + pick + half a
    departure interval + transit. Picks the fastest way to meet the promise."""

    name = "fastest"

    def lane_criterion(self, net: Network) -> np.ndarray:
        half_gap = np.array([c.departure_interval_h / 2 for c in net.scenario.carriers])
        return net.transit_mean_h + half_gap[:, None, None]

    def bind(self, net: Network, rng: np.random.Generator | None = None) -> RoutingPolicy:
        self._pick_h = np.array([1.0 / w.pick.lines_per_agv_h for w in net.scenario.warehouses])
        return super().bind(net, rng)

    def dynamic_score(self, state: State) -> np.ndarray:
        servers = np.maximum(state.pick_servers, 1)
        return state.backlog * self._pick_h / servers + self._pick_h


class WeightedScore(Fastest):
    """A weighted sum of cost, expected time and CO2, each divided by its network mean."""

    name = "weighted"

    def __init__(self, cost: float = 1.0, time_h: float = 1.0, co2_kg: float = 1.0, allow_split: bool = True) -> None:
        super().__init__(allow_split)
        self.w = (float(cost), float(time_h), float(co2_kg))
        if min(self.w) < 0 or sum(self.w) == 0:
            raise ValueError(f"weights must be >= 0 and not all 0, got cost={cost}, time_h={time_h}, co2_kg={co2_kg}")

    def lane_criterion(self, net: Network) -> np.ndarray:
        t = Fastest.lane_criterion(self, net)
        handling = np.array([w.handling_cost_per_line for w in net.scenario.warehouses])
        cost = net.lane_cost + handling[None, :, None]
        m = net.serves
        self._scale = (cost[m].mean(), t[m].mean(), net.lane_co2_kg[m].mean())
        wc, wt, we = self.w
        return wc * cost / self._scale[0] + wt * t / self._scale[1] + we * net.lane_co2_kg / self._scale[2]

    def dynamic_score(self, state: State) -> np.ndarray:
        return self.w[1] * super().dynamic_score(state) / self._scale[1]


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

    def scores(self, batch: OrderBatch, state: State) -> np.ndarray:
        if self.rng is None:
            raise RuntimeError("AllocationShares draws: bind it with the run's generator (bind(net, rng))")
        sh = self.shares[batch.region]  # [n, W]
        e = self.rng.standard_exponential(sh.shape)
        with np.errstate(divide="ignore"):
            race = np.where(sh > 0, e / sh, INF)
        return race + np.where(np.isfinite(self.static_score[batch.cold.astype(np.int64), batch.region]), 0.0, INF)

    def route_one(self, region: int, cold: bool, sku: list[int], qty: list[int], state: State) -> list[int] | None:
        batch = OrderBatch.single(region, cold, np.asarray(sku), np.asarray(qty))
        score = self.scores(batch, state)[0]
        usable = (state.wh_open & state.cold_ok) if cold else state.wh_open
        out = assign_order(score, usable, state.inventory[:, sku], np.asarray(qty), self.allow_split)
        return None if out is None else out.tolist()


ROUTING_POLICIES: dict[str, type[RoutingPolicy]] = {
    p.name: p for p in (NearestWithStock, Cheapest, Fastest, Greenest, WeightedScore)
}


def make_routing_policy(cfg: RoutingConfig | str, net: Network, rng: np.random.Generator | None = None) -> RoutingPolicy:
    """Build and bind the routing policy a scenario (or a name) asks for."""
    if isinstance(cfg, str):
        cfg = RoutingConfig(name=cfg)
    if cfg.name == "weighted":
        p: RoutingPolicy = WeightedScore(cfg.weights.cost, cfg.weights.time_h, cfg.weights.co2_kg, cfg.allow_split)
    else:
        p = ROUTING_POLICIES[cfg.name](cfg.allow_split)
    return p.bind(net, rng)


# ------------------------------------------------------------------------------ reallocation
class ReallocationPolicy(ABC):
    """Every few hours, decides transfers of stock between warehouses."""

    name = "reallocation"

    @abstractmethod
    def decide(self, state: State, net: Network, t: float) -> np.ndarray:
        """``[W_from, W_to, S]`` units to move now (they arrive after the lead time)."""


class NoReallocation(ReallocationPolicy):
    name = "none"

    def decide(self, state: State, net: Network, t: float) -> np.ndarray:
        return np.zeros((net.n_warehouses, net.n_warehouses, net.n_skus), dtype=np.int64)


class Rebalance(ReallocationPolicy):
    """Top up SKUs that fell below ``low_frac`` of their initial stock to the middle of the band,
    from the nearest warehouses holding more than ``high_frac`` of theirs."""

    name = "rebalance"

    def __init__(self, low_frac: float = 0.2, high_frac: float = 0.6) -> None:
        if not 0 <= low_frac <= high_frac:
            raise ValueError(f"need 0 <= low_frac <= high_frac, got low_frac={low_frac}, high_frac={high_frac}")
        self.low, self.high = low_frac, high_frac

    def decide(self, state: State, net: Network, t: float) -> np.ndarray:
        init = net.initial_stock
        spare = np.maximum(state.inventory - np.ceil(self.high * init).astype(np.int64), 0)
        spare[~state.wh_open] = 0
        target = np.ceil((self.low + self.high) / 2 * init).astype(np.int64)
        need = np.where(state.inventory < self.low * init, target - state.inventory - state.on_order, 0)
        return transfers_from_nearest(np.maximum(need, 0), spare, net)


def transfers_from_nearest(need: np.ndarray, spare: np.ndarray, net: Network,
                           order: np.ndarray | None = None) -> np.ndarray:
    """``[W_from, W_to, S]`` transfers that cover each warehouse's ``need[w, s]`` from the spare
    units ``spare[w, s]`` of the nearest warehouses first (road distance).

    Receivers are served in ``order`` (default: by index); ``need`` and ``spare`` are consumed.
    Shared by the reallocation policies (the rule-based one and RL's target-cover action).
    """
    W = need.shape[0]
    moves = np.zeros((W, W, need.shape[1]), dtype=np.int64)
    for to in (range(W) if order is None else order):
        if not need[to].any():
            continue
        for frm in np.argsort(net.wh_distance_km[to], kind="stable"):
            if frm == to:
                continue
            q = np.minimum(need[to], spare[frm])
            moves[frm, to] = q
            need[to] -= q
            spare[frm] -= q
    return moves


def make_reallocation_policy(cfg: ReallocationConfig) -> ReallocationPolicy:
    if cfg.name == "rebalance":
        return Rebalance(cfg.low_frac, cfg.high_frac)
    return NoReallocation()
