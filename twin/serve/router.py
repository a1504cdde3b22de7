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
   observation the C kernel computes with the arithmetic of
   :func:`twin.policies.features.order_features`, the env's code (a test holds the two equal, to
   the byte);
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
from typing import Any

import msgspec
import numpy as np

from twin.errors import TwinError
from twin.policies.base import assign_order
from ext._route import RouteKernel, UnknownName, json_str, masked_scores
from twin.policies import features as _features
from twin.policies.features import OrderLanes, sku_index
from twin.policies.heuristics import ROUTING_POLICIES
from twin.policies.promise import late_probability
from twin.policies.runtime import OnnxActor, Package, load_package
from twin.scenario.distributions import dist_spec
from twin.serve.schema import Order
from twin.serve.wire import OrderS, as_order, order_digest
from twin.world.network import Network, build_network

__all__ = ["Router", "RequestError", "Faults", "Breaker", "Decided", "Prepared", "sku_index"]


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
        if self.opened_at is None:  # closed (read without the lock: one attribute)
            return True
        with self.lock:
            return self.state != "open"

    def record(self, ok: bool) -> None:
        if ok and self.opened_at is None and self.failures == 0:  # closed and stays so: nothing to write
            return
        with self.lock:
            if ok:
                self.failures, self.opened_at = 0, None
                return
            self.failures += 1
            if self.failures >= self.threshold or self.opened_at is not None:
                self.opened_at = self.clock()


class Prepared:
    """One order of a prepared batch (the arrays of ``Router._prepare``), as the Python scoring
    reads it: ``[W]`` views of the batch's arrays, made when read."""

    __slots__ = ("index", "order", "region", "_a", "_n", "_dist", "_p_late")

    def __init__(self, index: int, order: Order, arrays: Any, dist: list) -> None:
        self.index, self.order, self._a, self._dist = index, order, arrays, dist
        self.region = int(arrays["region"][index])
        self._n = len(order.lines)
        self._p_late: np.ndarray | None = None

    @property
    def qty(self) -> np.ndarray:
        """``[lines]`` units ordered."""
        return self._a["qty"][self.index, :self._n]

    @property
    def listed(self) -> np.ndarray:
        """``[W]`` bool: listed as a candidate."""
        return self._a["listed"][self.index]

    @property
    def usable(self) -> np.ndarray:
        """``[W]`` bool: may take lines (open, capacity, lane, cold)."""
        return self._a["usable"][self.index]

    @property
    def stock(self) -> np.ndarray:
        """``[W, lines]`` units available."""
        return self._a["stock"][self.index, :, :self._n]

    @property
    def est_cost(self) -> np.ndarray:
        """``[W]`` (inf: no lane)."""
        return self._a["est_cost"][self.index]

    @property
    def est_h(self) -> np.ndarray:
        return self._a["est_h"][self.index]

    @property
    def est_co2(self) -> np.ndarray:
        return self._a["est_co2"][self.index]

    @property
    def p_late(self) -> np.ndarray:
        """``[W]`` P(late) on the base heuristic's carrier (1: no lane); computed when a score
        reads it (the learned policy does not)."""
        if self._p_late is None:
            a, k = self._a, self.index
            slack, tr, cl, hl = (a["slack"][k].tolist(), a["transit"][k].tolist(), a["car0"][k].tolist(),
                                 a["has_lane"][k].tolist())
            dist = self._dist
            self._p_late = np.array([late_probability(slack[w], tr[w], *dist[cl[w]]) if hl[w] else 1.0
                                     for w in range(len(hl))])
        return self._p_late


#: a ranking's ``why_not`` by the first condition that fails (0: none, the candidate may take the order).
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
        self.policy_json = msgspec.json.encode(self.policy_ref)
        costs = net.costs
        self.kernel = RouteKernel(list(net.warehouses), list(net.regions), list(net.carriers), self.levels,
                                  self.lanes.lane_ok, net.cold_capable, self.car_lane, self.lanes.agvs,
                                  net.transit_mean_h, costs.parcel, costs.handling_per_line, net.lane_co2_kg,
                                  self.pick_h, self.pack_h, self.half_gap, self.lines_mean, self.lanes.ship_rate,
                                  self.lanes.initial_stock, sku_index, _features._EPS, list(_WHY),
                                  self.lanes.distance_km, self.lanes.lane_cost, self.lanes.lane_transit,
                                  self.lanes.max_promise_h, self.horizon_h, self.max_weather)

    # ------------------------------------------------------------------ preparing
    def _prepare(self, orders: list[Order], loc: tuple[Any, ...] = ("body",),
                 batch: bool = True) -> tuple[Any, list[str | None]]:
        """Resolve, check feasibility, estimate and observe ``n`` orders, in C
        (``ext._route.RouteKernel.prepare``: the structs read into ``[n, W]`` arrays, stock
        ``[n, W, lines]``, the feasibility layer, the estimates, and the observation ``obs``,
        the arithmetic of :func:`twin.policies.features.order_features`, the env's code, which a
        test holds it equal to). Returns the arrays (``ext._route.Arrays``: ``A["whole"]``...)
        and per order why it is outside the training ranges (None: inside). The first order
        naming something unknown raises its :class:`RequestError`."""
        net = self.net
        observe = self.actor is not None
        now_h = 0.0
        if observe:
            now = time.localtime()
            now_h = now.tm_hour + now.tm_min / 60 + now.tm_sec / 3600
        try:
            A = self.kernel.prepare(orders, observe, now_h)
        except UnknownName as exc:
            k, field, j, value = exc.args
            loc = (*loc, "orders", k) if batch else (*loc, "order")
            if field == "region":
                raise RequestError((*loc, "destination", "region"), f"{value!r} is not a region of the network "
                                   f"{self.package.manifest['network']['scenario']!r}; allowed: "
                                   f"{', '.join(net.regions)}") from None
            if field == "service_level":
                raise RequestError((*loc, "service_level"), f"{value!r} is not a service level of the network; "
                                   f"allowed: {', '.join(self.levels)}") from None
            raise RequestError((*loc, "candidates", j, "warehouse_id"), f"{value!r} is not a warehouse of the "
                               f"network; allowed: {', '.join(net.warehouses)}") from None
        why = A["outside_why"]
        outside: list[str | None] = [None] * len(orders)
        if observe and any(why):
            for k, code in enumerate(why):
                if code:
                    outside[k] = self._outside(A, k, code)
        return A, outside

    def _outside(self, A: Any, k: int, code: int) -> str:
        """Why order ``k`` is outside the training ranges (``code``: the kernel's ``outside_why``)."""
        if code == 1:
            sku = A["skus"][k][int(A["bad_line"][k])]
            return f"SKU {sku!r} is not one of the network's (sku-0..sku-{self.lanes.initial_stock.shape[1] - 1})"
        if code == 2:
            m, mw = float(A["mult"][k]), self.max_weather
            return f"transit_multiplier {m:g} is beyond the training weather's {mw:g}"
        # backlog_hours > 48 at a working candidate (the kernel's check)
        return "a candidate's backlog is more than 48 hours of its pick capacity (training saw <= 24 h)"

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
        """The decisions of ``orders`` as dicts in the shape of :class:`twin.serve.schema.Decision`,
        plus ``_audit`` (what the audit event records beyond the response): :meth:`decide_raw`'s
        JSON read back."""
        return self.decide_raw(orders, loc, batch).decisions()

    def decide_raw(self, orders: list[Order], loc: tuple[Any, ...] = ("body",), batch: bool = False,
                   raws: list[bytes | None] | None = None) -> Decided:
        """The decisions of ``orders`` as :class:`Decided` (each decision's JSON, written in C).
        ``raws``: each order's JSON as received (its request digest hashes it; None: the
        canonical JSON of the struct)."""
        orders = [o if type(o) is OrderS else as_order(o) for o in orders]
        if not orders:
            return Decided([], [], [], [], [], [], [], self.net.warehouses)
        n = len(orders)
        A, outside = self._prepare(orders, loc, batch)
        whole = A["whole"]
        any_whole = A["any_whole"]
        S: np.ndarray | None = None  # [n, W] scores, lower is better (made when first written)
        kind = [0] * n  # index into _KINDS
        fb: list[str | None] = [None] * n
        action = [-1] * n
        dep_down = self.faults.dependency_down
        prepared: dict[int, Prepared] = {}

        def prep(k: int) -> Prepared:
            p = prepared.get(k)
            if p is None:
                p = prepared[k] = Prepared(k, orders[k], A, self.transit_dist)
            return p

        def scores() -> np.ndarray:
            nonlocal S
            if S is None:
                S = np.full(whole.shape, np.inf)
            return S

        ask = []
        for k, o in enumerate(orders):
            if o.strategy is not None:
                kind[k] = 2
                scores()[k] = self.strategy_scores(prep(k))
            elif self.actor is None:
                if dep_down:
                    kind[k], fb[k] = 3, "dependency_down"
                else:
                    kind[k] = 1
                    scores()[k] = self.heuristic_scores(prep(k), self.heuristic_name, self.heuristic_params)
            elif dep_down:
                kind[k], fb[k] = 3, "dependency_down"
            elif outside[k] is not None:
                kind[k], fb[k] = 3, "outside_range"
            elif not any_whole[k]:  # split or unfillable
                scores()[k] = self.heuristic_scores(prep(k), self.fallback_name, self.fallback_params)
            else:
                ask.append(k)
        if ask:
            every = len(ask) == n  # the usual case: no copies of the rows
            if not self.breaker.allow():
                for k in ask:
                    kind[k], fb[k] = 3, "breaker_open"
            else:
                reason = None
                masks = whole if every else whole[ask]
                try:
                    acts, logits, took = self._model(A["obs"] if every else A["obs"][ask], masks)
                    if took > self.timeout_s:
                        reason = "timeout"
                except Exception:  # any failure of the model answers with the fallback
                    reason = "model_error"
                self.breaker.record(reason is None)
                if reason is None:
                    policy_scores = masked_scores(logits, masks)
                    if every:
                        S = policy_scores
                    else:
                        scores()[ask] = policy_scores
                    for k, act in zip(ask, acts.tolist()):
                        action[k] = act
                else:
                    for k in ask:
                        kind[k], fb[k] = 3, reason
        if 3 in kind:
            for k in [k for k in range(n) if kind[k] == 3]:
                scores()[k] = self.heuristic_scores(prep(k), self.fallback_name, self.fallback_params)
        S = scores()
        splits: dict[int, list[int] | None] = {}
        if not all(any_whole):
            for k in (k for k in range(n) if not any_whole[k]):
                split = None
                o = orders[k]
                if o.max_splits > 0 and len(o.lines) > 1:
                    p = prep(k)
                    score = S[k]
                    split = assign_order(np.where(np.isfinite(score), score, np.inf), p.usable, p.stock, p.qty, True)
                    if split is not None and len(set(split.tolist())) - 1 > o.max_splits:
                        split = None
                splits[k] = None if split is None else split.tolist()
        if raws is not None and len(raws) != n:
            raise ValueError(f"raws: one per order ({n}), got {len(raws)}")
        sha = self.policy_ref["sha256"]
        default = "policy" if self.actor is not None else self.package.name
        order_ids = [o.order_id for o in orders]
        strategies = [o.strategy or default for o in orders]
        digests = ([order_digest(o) for o in orders] if raws is None else
                   [order_digest(o, r) for o, r in zip(orders, raws)])
        prefix = f"{sha}:".encode()
        dids = [hashlib.sha256(prefix + d.encode()).hexdigest()[:32] for d in digests]
        bodies, data, choice = self.kernel.write(order_ids, A["skus"], A["qtys"], np.ascontiguousarray(S),
                                                 A["_blocks"], kind, _KIND_JSON, fb, _FB_JSON, action, splits, dids,
                                                 digests, strategies, self.policy_json)
        reasons = [(_KINDS[kind[k]] if any_whole[k] else ("unfillable" if splits[k] is None else "split"))
                   for k in range(n)]
        names = self.net.regions
        regions = [names[r] for r in A["region_index"]]
        return Decided(bodies, data, order_ids, dids, regions, reasons, fb, self.net.warehouses, choice, strategies,
                       digests)


#: ``Decided`` kinds: the reason of a decision with a whole candidate (3: a fallback)
_KINDS = ("policy", "heuristic", "strategy", "fallback")
_KIND_JSON = [json_str(k) for k in _KINDS]
_FB_JSON: dict[str | None, bytes] = {None: b"null", **{r: json_str(r) for r in
                                                     ("model_error", "timeout", "outside_range", "dependency_down",
                                                      "breaker_open")}}


class Decided:
    """A batch's decisions as JSON written once (``ext._route.RouteKernel.write``): each
    decision's object (``bodies``: the response's, and the bus message's value) and its audit
    data (``data``: up to ``"latency_s":``), with what the counters and the bus read."""

    __slots__ = ("bodies", "data", "order_ids", "dids", "regions", "reasons", "fallback_reasons", "names", "choice",
                 "strategies", "digests")

    def __init__(self, bodies: list[bytes], data: list[bytes], order_ids: list[str], dids: list[str],
                 regions: list[str], reasons: list[str], fallback_reasons: list[str | None], names: list[str],
                 choice: list[int] | None = None, strategies: list[str] | None = None,
                 digests: list[str] | None = None) -> None:
        self.bodies, self.data, self.order_ids, self.dids = bodies, data, order_ids, dids
        self.regions, self.reasons, self.fallback_reasons, self.names = regions, reasons, fallback_reasons, names
        self.choice, self.strategies, self.digests = choice or [], strategies or [], digests or []

    def __len__(self) -> int:
        return len(self.bodies)

    def warehouse(self, k: int) -> str | None:
        """The warehouse chosen for decision ``k`` (None: split or unfillable)."""
        c = self.choice[k]
        return self.names[c] if c >= 0 else None

    def outcomes(self) -> list[tuple[str, str]]:
        """``(strategy, outcome)`` of each decision (outcome: ``fallback`` or the reason)."""
        return [(s, "fallback" if f is not None else r) for s, f, r in
                zip(self.strategies, self.fallback_reasons, self.reasons)]

    def response(self) -> bytes:
        """The ``{"decisions": [...]}`` body."""
        return b'{"decisions":[' + b",".join(self.bodies) + b"]}"

    def decisions(self) -> list[dict]:
        """The decisions as dicts (the JSON read back), each with its ``_audit`` part."""
        out = []
        for k, body in enumerate(self.bodies):
            d = _decode(body)
            d["_audit"] = {"region": self.regions[k], "request_digest": self.digests[k],
                           "strategy": self.strategies[k]}
            out.append(d)
        return out

    @classmethod
    def concat(cls, parts: list[Decided], names: list[str]) -> Decided:
        """The decisions of ``parts`` one after another."""
        out = cls([], [], [], [], [], [], [], names)
        for p in parts:
            for f in cls.__slots__:
                if f != "names":
                    getattr(out, f).extend(getattr(p, f))
        return out

    def slice(self, start: int, stop: int) -> Decided:
        """Decisions ``start:stop``."""
        return Decided(self.bodies[start:stop], self.data[start:stop], self.order_ids[start:stop],
                       self.dids[start:stop], self.regions[start:stop], self.reasons[start:stop],
                       self.fallback_reasons[start:stop], self.names, self.choice[start:stop],
                       self.strategies[start:stop], self.digests[start:stop])


_decode = msgspec.json.Decoder().decode
