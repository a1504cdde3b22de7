"""Deciding live orders: the feasibility layer, the package's policy, the heuristic fallback
with its circuit breaker, and the estimates an OMS sees.

For each order the :class:`Router` resolves names against the package's network (an unknown
region, service level or warehouse is a :class:`RequestError` naming the field), then:

1. **feasibility** (hard, outside the policy): a candidate may take the whole order if it is
   listed, open, has remaining capacity, has a lane of the base heuristic's carrier to the
   destination, working cold storage for a cold line (and the network says it has some), and
   the units of every line;
2. **scores**: the request's ``strategy`` (cost, speed, carbon, weighted), else the package's
   heuristic, else the learned policy (its masked logits; one onnxruntime call per batch), whose
   observation is :func:`twin.policies.features.order_features`, the env's code;
3. **fallback** to the package's fallback heuristic, with ``fallback_reason``: ``model_error``,
   ``timeout`` (the model's call took longer than the budget: onnxruntime is synchronous, so
   the budget is checked when it returns), ``outside_range`` (an SKU the network does not know,
   a weather multiplier or a backlog beyond what training saw), ``dependency_down`` (the live
   carrier-rate source failed: estimates come from the network's table), ``breaker_open``;
4. **choice**: the best-scored feasible candidate; none: the lines are split (most lines
   covered first, at most ``max_splits`` extra shipments) or the order is unfillable.

:class:`Faults` injects failures (tests, drills); :class:`Breaker` opens after consecutive
model failures and closes again after a successful trial.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from twin.errors import TwinError
from twin.policies.base import assign_order
from twin.policies.features import OrderLanes, backlog_hours, order_features_batch, sku_index
from twin.policies.heuristics import ROUTING_POLICIES
from twin.policies.promise import late_probability
from twin.policies.runtime import OnnxActor, Package, load_package
from twin.scenario.distributions import dist_spec
from twin.serve.schema import Order
from twin.serve.wire import OrderS, as_order, order_digest
from twin.world.network import Network, build_network

__all__ = ["Router", "RequestError", "Faults", "Breaker", "Prepared", "sku_index"]


class RequestError(TwinError, ValueError):
    """A request that names something the network does not have: ``loc`` is the field's path."""

    def __init__(self, loc: tuple[Any, ...], msg: str) -> None:
        self.loc = loc
        self.msg = msg
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}")


@dataclass
class Faults:
    """Injected failures: ``model_error`` (the model raises), ``model_delay_s`` (the model's
    call takes this much longer), ``dependency_down`` (the live carrier-rate source fails)."""

    model_error: bool = False
    model_delay_s: float = 0.0
    dependency_down: bool = False


class Breaker:
    """A circuit breaker on the model: ``threshold`` consecutive failures open it; after
    ``reset_s`` one trial call is let through (half-open); its success closes it, its failure
    opens it again."""

    def __init__(self, threshold: int = 5, reset_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if threshold < 1 or not reset_s > 0:
            raise ValueError(f"breaker: threshold must be >= 1 and reset_s > 0, got {threshold}, {reset_s}")
        self.threshold, self.reset_s, self.clock = int(threshold), float(reset_s), clock
        self.failures = 0
        self.opened_at: float | None = None
        self.lock = threading.Lock()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.reset_s else "open"

    def allow(self) -> bool:
        with self.lock:
            return self.state != "open"

    def record(self, ok: bool) -> None:
        with self.lock:
            if ok:
                self.failures, self.opened_at = 0, None
                return
            self.failures += 1
            if self.failures >= self.threshold or self.opened_at is not None:
                self.opened_at = self.clock()


class Batch:
    """A prepared batch's arrays, ``[n, W]`` unless noted (what :class:`Prepared` views)."""

    __slots__ = ("listed", "usable", "whole", "stock", "qty", "why", "carrier", "est_cost", "est_h", "est_co2",
                 "slack", "transit", "car0", "has_lane", "obs", "dist")

    def __init__(self, **kw: Any) -> None:
        for k, v in kw.items():
            setattr(self, k, v)


class Prepared:
    """One order of a :class:`Batch` after resolution and the feasibility layer (what the
    scoring reads): its scalars, and ``[W]`` views of the batch's arrays made when read."""

    __slots__ = ("index", "order", "region", "cold", "service", "promise_h", "units", "sku", "qty_list", "digest",
                 "outside", "_b", "_p_late")

    def __init__(self, index: int, order: Order, region: int, cold: bool, promise_h: float, units: int,
                 sku: list[str], qty_list: list[int], digest: str, outside: str | None, batch: Batch) -> None:
        self.index, self.order, self.region, self.cold = index, order, region, cold
        self.service, self.promise_h, self.units, self.sku = order.service_level, promise_h, units, sku
        self.qty_list, self.digest, self.outside, self._b = qty_list, digest, outside, batch
        self._p_late: np.ndarray | None = None

    @property
    def qty(self) -> np.ndarray:
        return self._b.qty[self.index, :len(self.sku)]

    @property
    def listed(self) -> np.ndarray:
        """``[W]`` bool: listed as a candidate."""
        return self._b.listed[self.index]

    @property
    def usable(self) -> np.ndarray:
        """``[W]`` bool: may take lines (open, capacity, lane, cold)."""
        return self._b.usable[self.index]

    @property
    def whole(self) -> np.ndarray:
        """``[W]`` bool: may take the whole order."""
        return self._b.whole[self.index]

    @property
    def stock(self) -> np.ndarray:
        """``[W, lines]`` units available."""
        return self._b.stock[self.index, :, :len(self.sku)]

    @property
    def why_not(self) -> list[str | None]:
        return [_WHY[c] for c in self._b.why[self.index]]

    @property
    def carrier(self) -> np.ndarray:
        """``[W]`` int, the base heuristic's carrier; -1: no lane."""
        return self._b.carrier[self.index]

    @property
    def est_cost(self) -> np.ndarray:
        """``[W]`` (inf: no lane)."""
        return self._b.est_cost[self.index]

    @property
    def est_h(self) -> np.ndarray:
        return self._b.est_h[self.index]

    @property
    def est_co2(self) -> np.ndarray:
        return self._b.est_co2[self.index]

    @property
    def obs(self) -> np.ndarray | None:
        """The observation the model reads (None: no model, or outside the training ranges)."""
        obs = self._b.obs
        return None if obs is None or self.outside is not None else obs[self.index]

    @property
    def p_late(self) -> np.ndarray:
        """``[W]`` P(late) on the base heuristic's carrier (1: no lane); computed when a score
        reads it (the learned policy does not)."""
        if self._p_late is None:
            b, k = self._b, self.index
            slack, tr, cl, hl = (b.slack[k].tolist(), b.transit[k].tolist(), b.car0[k].tolist(),
                                 b.has_lane[k].tolist())
            dist = b.dist
            self._p_late = np.array([late_probability(slack[w], tr[w], *dist[cl[w]]) if hl[w] else 1.0
                                     for w in range(len(hl))])
        return self._p_late


#: ``Prepared.why_not`` by the first condition that fails (0: none, the candidate may take the order).
_WHY = (None, "not a candidate", "closed", "at capacity", "no lane to the region", "no working cold storage",
        "stock short")


class Router:
    """Decides orders for one package (see the module docstring)."""

    def __init__(self, package: str | Package, timeout_s: float = 0.05, actor_threads: int = 1,
                 breaker: Breaker | None = None, faults: Faults | None = None) -> None:
        self.package = package if isinstance(package, Package) else load_package(package)
        pkg = self.package
        self.net: Network = build_network(pkg.scenario)
        pkg.check_network(self.net)
        self.lanes = OrderLanes.from_network(self.net, pkg.base)
        self.actor = OnnxActor(pkg.path / "policy.onnx", actor_threads) if pkg.kind == "onnx" else None
        self.timeout_s = float(timeout_s)
        self.breaker = breaker or Breaker()
        self.faults = faults or Faults()
        sc, net = pkg.scenario, self.net
        self.wh_index = {w: i for i, w in enumerate(net.warehouses)}
        self.region_index = {r: i for i, r in enumerate(net.regions)}
        self.levels = {k: v.promise_h for k, v in sc.demand.service_levels.items()}
        self.pick_h = np.array([1.0 / w.pick.lines_per_agv_h for w in sc.warehouses])
        self.pack_h = np.array([w.pack.time_h for w in sc.warehouses])
        self.half_gap = np.array([c.departure_interval_h / 2 for c in sc.carriers])
        self.lines_mean = float(sc.demand.lines_per_order)
        self.transit_dist = [(s.code, s.sigma, s.mu) for s in
                             (dist_spec(c.transit.distribution, c.transit.cv) for c in sc.carriers)]
        self.car_lane = np.array(
            [ROUTING_POLICIES[pkg.base]().bind(net, None).lane_carrier[c] for c in (0, 1)])  # [2, W, R]
        self.max_weather = max([1.0] + [s.transit_multiplier for s in sc.weather.states])
        self.horizon_h = float(pkg.manifest["observation"]["horizon_h"]) if pkg.kind == "onnx" else 24.0
        fb = pkg.manifest["fallback"]
        self.fallback_name, self.fallback_params = fb["name"], dict(fb["params"])
        if pkg.kind == "heuristic":
            self.heuristic_name = pkg.manifest["heuristic"]["name"]
            self.heuristic_params = dict(pkg.manifest["heuristic"]["params"])
        self.policy_ref = {"name": pkg.name, "version": pkg.version, "sha256": pkg.sha256}

    # ------------------------------------------------------------------ preparing
    def prepare(self, i: int, o: Order, loc: tuple[Any, ...]) -> Prepared:
        """One order: :meth:`prepare_batch` of a batch of one."""
        p = self.prepare_batch([o], [loc])[0]
        p.index = i
        return p

    def prepare_batch(self, orders: list[Order], locs: list[tuple[Any, ...]]) -> list[Prepared]:
        """The :class:`Prepared` orders of :meth:`_prepare`."""
        return self._prepare([as_order(o) for o in orders], locs)[0]

    def _prepare(self, orders: list[Order], locs: list[tuple[Any, ...]]) -> tuple[list[Prepared], dict[str, Any]]:
        """Resolve, check feasibility, estimate and observe ``n`` orders: one Python pass reads
        the requests into ``[n, W]`` (stock ``[n, W, lines]``) arrays, the rest is array work
        over the batch (the late probability is the scalar :func:`late_probability` per entry,
        and the observation :func:`twin.policies.features.order_features_batch`). The first
        order naming something unknown raises its :class:`RequestError`."""
        net, lanes = self.net, self.lanes
        W, n = net.n_warehouses, len(orders)
        if n == 0:
            return [], {}
        L = max(len(o.lines) for o in orders)
        regions, colds, units, promises, mults, skus, t_hs = [], [], [], [], [], [], []
        flags: list[float] = []  # [n, W, 6] row-major
        stock_flat: list[int] = []  # [n, W, L] row-major, lines padded with 0
        qty_flat: list[int] = []  # [n, L]
        none = (0.0, 0.0, 0.0, 0.0, 0.0, 0)
        levels, wh_index, region_index = self.levels, self.wh_index, self.region_index
        now = datetime.now().astimezone() if self.actor is not None else None
        zeros = [0] * L
        qtys: list[list[int]] = []
        for k, o in enumerate(orders):
            loc = locs[k]
            r = region_index.get(o.destination.region)
            if r is None:
                raise RequestError((*loc, "destination", "region"), f"{o.destination.region!r} is not a region of "
                                   f"the network {self.package.manifest['network']['scenario']!r}; allowed: "
                                   f"{', '.join(net.regions)}")
            if o.service_level not in levels:
                raise RequestError((*loc, "service_level"), f"{o.service_level!r} is not a service level of the "
                                   f"network; allowed: {', '.join(levels)}")
            lines = o.lines
            sku = [line.sku for line in lines]
            q = [line.qty for line in lines]
            pad = [0] * (L - len(sku))
            fl = [none] * W
            st = [zeros] * W
            for j, c in enumerate(o.candidates):
                w = wh_index.get(c.warehouse_id)
                if w is None:
                    raise RequestError((*loc, "candidates", j, "warehouse_id"), f"{c.warehouse_id!r} is not a "
                                       f"warehouse of the network; allowed: {', '.join(net.warehouses)}")
                fl[w] = (1.0, 1.0 if c.open else 0.0, 1.0 if c.remaining_capacity_orders > 0 else 0.0,
                         1.0 if c.cold_ok else 0.0, c.agvs_up_ratio, c.backlog_orders)
                av = c.available
                st[w] = [av.get(s, 0) for s in sku] + pad
            for t in fl:
                flags += t
            for row in st:
                stock_flat += row
            regions.append(r)
            colds.append(any(line.cold_chain for line in lines))
            units.append(sum(q))
            promises.append(float(o.promise_h) if o.promise_h is not None else float(levels[o.service_level]))
            mults.append(float(o.destination.transit_multiplier))
            skus.append(sku)
            qtys.append(q)
            qty_flat += q
            qty_flat += pad
            if now is not None:
                created = o.created_at or now
                t_hs.append(created.hour + created.minute / 60 + created.second / 3600)
        stock = np.array(stock_flat, dtype=np.int64).reshape(n, W, L)
        qty = np.array(qty_flat, dtype=np.int64).reshape(n, L)
        f = np.array(flags, dtype=float).reshape(n, W, 6)
        listed, open_, cap = f[:, :, 0] > 0, f[:, :, 1] > 0, f[:, :, 2] > 0
        cold = np.array(colds, dtype=bool)
        ci = cold.astype(np.int64)
        r_ = np.array(regions, dtype=np.int64)
        units_a = np.array(units, dtype=np.int64)
        w_idx = np.arange(W)[None, :]
        cold_ok = (f[:, :, 3] > 0) & net.cold_capable
        lane = lanes.lane_ok[ci[:, None], w_idx, r_[:, None]]
        usable = open_ & cap & lane & (cold_ok | ~cold[:, None])
        has_all = (stock >= qty[:, None, :]).all(axis=2)
        whole = usable & has_all
        # why not: the first failing condition (codes into _WHY)
        why = np.stack([whole, ~listed, ~open_, ~cap, ~lane, cold[:, None] & ~cold_ok,
                        np.ones_like(whole)]).argmax(axis=0)
        # estimates on the base heuristic's carrier
        car = self.car_lane[ci[:, None], w_idx, r_[:, None]]
        has = car >= 0
        c0 = np.where(has, car, 0)
        ratio, backlog = f[:, :, 4], f[:, :, 5]
        servers = np.maximum(ratio * lanes.agvs, 1.0)
        mult = np.array(mults)
        transit = net.transit_mean_h[c0, w_idx, r_[:, None]] * mult[:, None]
        u = units_a[:, None]
        ready = backlog * self.pick_h * self.lines_mean / servers + u * self.pick_h + self.pack_h
        gap = self.half_gap[c0]
        est_h = np.where(has, ready + gap + transit, np.inf)
        est_cost = np.where(has, net.costs.parcel[ci[:, None], c0, w_idx, r_[:, None]]
                            + net.costs.handling_per_line * u, np.inf)
        est_co2 = np.where(has, net.lane_co2_kg[c0, w_idx, r_[:, None]], np.inf)
        promise = np.array(promises)
        slack = promise[:, None] - (ready + gap)
        obs, outside = self._observe_batch(skus, stock, listed, open_, ratio, backlog, whole, r_, cold, units_a,
                                           promise, mult, t_hs)
        batch = Batch(listed=listed, usable=usable, whole=whole, stock=stock, qty=qty, why=why, carrier=car,
                      est_cost=est_cost, est_h=est_h, est_co2=est_co2, slack=slack, transit=transit, car0=c0,
                      has_lane=has, obs=obs, dist=self.transit_dist)
        out = [Prepared(k, o, regions[k], colds[k], promises[k], units[k], skus[k], qtys[k], order_digest(o),
                        outside[k], batch) for k, o in enumerate(orders)]
        return out, {"whole": whole, "listed": listed, "est_cost": est_cost, "est_h": est_h, "est_co2": est_co2,
                     "obs": obs, "batch": batch}

    def _observe_batch(self, skus: list[list[str]], stock: np.ndarray, listed: np.ndarray, open_: np.ndarray,
                       ratio: np.ndarray, backlog: np.ndarray, whole: np.ndarray, region: np.ndarray,
                       cold: np.ndarray, units: np.ndarray, promise: np.ndarray, mult: np.ndarray,
                       t_h: list[float]) -> tuple[np.ndarray | None, list[str | None]]:
        """The observations ``[n, F]`` of a batch and per order why it is outside the training
        ranges (None: inside; its row of the observations is then the one the model reads)."""
        n = len(skus)
        outside: list[str | None] = [None] * n
        if self.actor is None:
            return None, outside
        lanes = self.lanes
        S = lanes.initial_stock.shape[1]
        L = stock.shape[2]
        idx = np.zeros((n, L), dtype=np.int64)
        pad = np.ones((n, L), dtype=bool)
        for k, sku in enumerate(skus):
            ix = [sku_index(s, S) for s in sku]
            if any(i is None for i in ix):
                outside[k] = f"SKU {sku[ix.index(None)]!r} is not one of the network's (sku-0..sku-{S - 1})"
                continue
            idx[k, :len(ix)] = ix
            pad[k, :len(ix)] = False
        init = np.maximum(lanes.initial_stock[:, idx], 1).astype(float).transpose(1, 0, 2)  # [n, W, L]
        cover = np.where(pad[:, None, :], np.inf, stock / init).min(axis=2)
        servers = ratio * lanes.agvs
        wh_open = listed & open_
        # more than 48 h of backlog at a working site (an idle one reads 24 h: not busy)
        busy = (backlog_hours(lanes, backlog, servers, wh_open) > 48.0).any(axis=1)
        mw = self.max_weather
        for k in range(n):
            if outside[k] is not None:
                continue
            if mult[k] > mw:
                outside[k] = f"transit_multiplier {mult[k]:g} is beyond the training weather's {mw:g}"
            elif busy[k]:
                outside[k] = "a candidate's backlog is more than 48 hours of its pick capacity (training saw <= 24 h)"
        obs = order_features_batch(lanes, np.array(t_h), self.horizon_h, region, cold, units.astype(float), promise,
                                   whole, backlog, servers, wh_open, mult, cover)
        return obs, outside

    # ------------------------------------------------------------------ scoring
    def heuristic_scores(self, p: Prepared, name: str, params: dict[str, Any]) -> np.ndarray:
        """``[W]`` scores (lower is better) of the heuristic ``name`` on live input."""
        if name == "promise_aware":
            return (p.est_cost + float(params.get("co2_price_cny_per_kg", 1.0)) * p.est_co2
                    + float(params.get("late_penalty_cny", 50.0)) * p.p_late)
        if name == "cheapest":
            return p.est_cost
        if name == "fastest":
            return p.est_h
        if name == "greenest":
            return p.est_co2
        if name == "nearest_with_stock":
            return np.where(np.isfinite(p.est_cost), self.net.distance_km[:, p.region], np.inf)
        if name == "weighted":
            return self._weighted(p, params.get("cost", 1.0), params.get("time_h", 1.0), params.get("co2_kg", 1.0))
        raise ValueError(f"heuristic must be one of {', '.join(ROUTING_POLICIES)}; got {name!r}")

    def _weighted(self, p: Prepared, wc: float, wt: float, we: float) -> np.ndarray:
        ok = np.isfinite(p.est_cost) & p.listed

        def norm(x: np.ndarray) -> np.ndarray:
            m = float(x[ok].mean()) if ok.any() else 1.0
            return x / (m if m > 0 else 1.0)

        return wc * norm(p.est_cost) + wt * norm(p.est_h) + we * norm(p.est_co2)

    def strategy_scores(self, p: Prepared) -> np.ndarray:
        s = p.order.strategy
        if s == "cost":
            return p.est_cost
        if s == "speed":
            return p.est_h
        if s == "carbon":
            return p.est_co2
        w = p.order.weights
        return self._weighted(p, w.cost, w.speed, w.carbon) if w else self._weighted(p, 1.0, 1.0, 1.0)

    def _model(self, obs: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """``(actions, logits, seconds)`` of one onnxruntime call (faults applied)."""
        t0 = time.perf_counter()
        if self.faults.model_error:
            raise RuntimeError("injected model error")
        if self.faults.model_delay_s > 0:
            time.sleep(self.faults.model_delay_s)
        actions, logits = self.actor.run(obs, masks)
        return actions, logits, time.perf_counter() - t0

    # ------------------------------------------------------------------ deciding
    def decide(self, orders: list[Order], loc: tuple[Any, ...] = ("body",), batch: bool = False) -> list[dict]:
        """The decisions of ``orders`` (dicts in the shape of :class:`twin.serve.schema.Decision`,
        plus ``_audit``: what the audit event records beyond the response)."""
        if not orders:
            return []
        orders = [o if type(o) is OrderS else as_order(o) for o in orders]
        prepared, arrays = self._prepare(orders, [(*loc, "orders", i) if batch else (*loc, "order")
                                               for i in range(len(orders))])
        how: list[tuple[str, str | None]] = [("", None)] * len(prepared)
        whole = arrays["whole"]
        S = np.full(whole.shape, np.inf)  # [n, W] scores, lower is better
        any_whole = whole.any(axis=1).tolist()
        actions: dict[int, int] = {}
        dep_down = self.faults.dependency_down
        ask = []
        for k, p in enumerate(prepared):
            if p.order.strategy is not None:
                how[k] = ("strategy", None)
                S[k] = self.strategy_scores(p)
            elif self.actor is None:
                if dep_down:
                    how[k] = ("fallback", "dependency_down")
                else:
                    how[k] = ("heuristic", None)
                    S[k] = self.heuristic_scores(p, self.heuristic_name, self.heuristic_params)
            elif dep_down:
                how[k] = ("fallback", "dependency_down")
            elif p.outside is not None:
                how[k] = ("fallback", "outside_range")
            elif not any_whole[k]:
                how[k] = ("policy", None)  # nothing to choose: split or unfillable below
                S[k] = self.heuristic_scores(p, self.fallback_name, self.fallback_params)
            else:
                ask.append(k)
        if ask:
            if not self.breaker.allow():
                for k in ask:
                    how[k] = ("fallback", "breaker_open")
            else:
                reason = None
                masks = whole[ask]
                try:
                    acts, logits, took = self._model(arrays["obs"][ask], masks)
                    if took > self.timeout_s:
                        reason = "timeout"
                except Exception:  # any failure of the model answers with the fallback
                    reason = "model_error"
                self.breaker.record(reason is None)
                if reason is None:
                    S[ask] = np.where(masks, -logits.astype(float), np.inf)
                    for k, act in zip(ask, acts.tolist()):
                        how[k] = ("policy", None)
                        actions[k] = int(act)
                else:
                    for k in ask:
                        how[k] = ("fallback", reason)
        for k, p in enumerate(prepared):
            if how[k][0] == "fallback":
                S[k] = self.heuristic_scores(p, self.fallback_name, self.fallback_params)
        return self._finish_batch(prepared, arrays, S, how, actions)

    def _finish_batch(self, prepared: list[Prepared], arrays: dict[str, Any], S: np.ndarray,
                      how: list[tuple[str, str | None]], actions: dict[int, int]) -> list[dict]:
        """The decisions of a batch: the rankings' order (feasible first, then scored, by score,
        by warehouse) by one ``lexsort`` over ``[n, W]``, the numbers rounded from one
        ``tolist`` per quantity, the dicts assembled per order."""
        net = self.net
        W = net.n_warehouses
        whole = arrays["whole"]
        finite = np.isfinite(S)
        # stable: equal keys keep the warehouse order (the old sort's last key)
        rank = np.lexsort((np.where(finite, S, 0.0), ~finite, ~whole), axis=1).tolist()

        def nums(a: np.ndarray) -> list[list[float | None]]:
            """Rounded to 6 decimals, None where not finite (object arrays: no Python loop)."""
            return np.where(np.isfinite(a), np.round(a, 6), None).tolist()

        sc_, cost_, h_, co2_ = nums(S), nums(arrays["est_cost"]), nums(arrays["est_h"]), nums(arrays["est_co2"])
        sl_, wl_ = S.tolist(), whole.tolist()
        listed_ = arrays["listed"].tolist()
        batch = arrays["batch"]
        why_, car_ = batch.why.tolist(), batch.carrier.tolist()
        names, carriers, why_text = net.warehouses, net.carriers, _WHY
        out = []
        for k, p in enumerate(prepared):
            kind, fb_reason = how[k]
            action = actions.get(k)
            sl, wl, listed = sl_[k], wl_[k], listed_[k]
            assignments: list[dict] = []
            chosen: int | None = None
            if any(wl):
                chosen = action if action is not None else min((w for w in range(W) if wl[w]),
                                                               key=lambda w: (sl[w], w))
                wid, car = names[chosen], carriers[car_[k][chosen]]
                assignments = [{"line": i, "sku": s, "qty": q, "warehouse_id": wid, "carrier": car}
                               for i, (s, q) in enumerate(zip(p.sku, p.qty_list))]
                reason = "fallback" if kind == "fallback" else kind
            else:
                split = None
                if p.order.max_splits > 0 and len(p.sku) > 1:
                    score = S[k]
                    split = assign_order(np.where(finite[k], score, np.inf), p.usable, p.stock, p.qty, True)
                    if split is not None and len(set(split.tolist())) - 1 > p.order.max_splits:
                        split = None
                if split is None:
                    reason = "unfillable"
                else:
                    reason = "split"
                    assignments = [{"line": i, "sku": s, "qty": int(q), "warehouse_id": names[int(w)],
                                    "carrier": carriers[int(p.carrier[int(w)])]} for i, (s, q, w) in
                                   enumerate(zip(p.sku, p.qty, split))]
            sc, cost, hh, co2, why = sc_[k], cost_[k], h_[k], co2_[k], why_[k]
            rankings = [{"warehouse_id": names[w], "rank": n + 1, "score": sc[w], "feasible": wl[w],
                         "est_cost_cny": cost[w], "est_delivery_h": hh[w], "est_co2_kg": co2[w],
                         "why_not": why_text[why[w]]} for n, w in enumerate(w for w in rank[k] if listed[w])]
            ref = self.policy_ref
            decision_id = hashlib.sha256(f"{ref['sha256']}:{p.digest}".encode()).hexdigest()[:32]
            out.append({
                "decision_id": decision_id, "order_id": p.order.order_id,
                "warehouse_id": names[chosen] if chosen is not None else None,
                "carrier": carriers[car_[k][chosen]] if chosen is not None else None,
                "rankings": rankings, "assignments": assignments, "reason": reason,
                "fallback": kind == "fallback", "fallback_reason": fb_reason, "policy": ref,
                "_audit": {"region": net.regions[p.region], "request_digest": p.digest, "strategy":
                           p.order.strategy or ("policy" if self.actor is not None else self.package.name)},
            })
        return out
