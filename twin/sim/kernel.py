"""The ``kernel`` engine: the reference order flow (:mod:`twin.sim.reference`) in typed Cython.

This wrapper prepares the scenario's tables for :class:`ext._kernel.Kernel`, checks that the
State arrays can be shared without copies, and drives the kernel between the agents' coarse
events: ``advance(until)`` runs the kernel up to each agent event, lets the agent change the
State, and goes on. Random streams differ from the ``simpy`` engine (agreement is statistical);
for one seed the kernel is deterministic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from twin.policies import (
    AllocationShares,
    Cheapest,
    Fastest,
    Greenest,
    NearestWithStock,
    OrderBatch,
    RoutingPolicy,
    WeightedScore,
)
from twin.sim.records import Counters

if TYPE_CHECKING:
    from twin.sim.model import FulfillmentModel

__all__ = ["KernelEngine"]

_DIST = {"deterministic": 0, "exponential": 1, "lognormal": 2}
_STATIC = (NearestWithStock, Cheapest, Greenest)


def _dist(kind: str, cv: float) -> tuple[int, float, float]:
    """``(kind code, sigma, mu_shift)`` of :meth:`twin.sim.rng.Draws.sampler` for ``kind`` and ``cv``."""
    if kind == "deterministic" or (kind == "lognormal" and cv == 0):
        return 0, 0.0, 0.0
    if kind == "exponential":
        return 1, 0.0, 0.0
    if kind == "lognormal":
        sigma = float(np.sqrt(np.log1p(cv * cv)))
        return 2, sigma, -0.5 * sigma * sigma
    raise ValueError(f"distribution must be one of exponential, lognormal, deterministic; got {kind!r}")


def _route_mode(policy: RoutingPolicy) -> int:
    """0: static scores, 1: scores plus the queue term, 2: allocation shares, 3: Python batches.

    Exact types only: a subclass may override any method, so it is routed in batches."""
    t = type(policy)
    if t in _STATIC:
        return 0
    if t in (Fastest, WeightedScore):
        return 1
    if t is AllocationShares:
        return 2
    return 3


class KernelEngine:
    """Moves orders through the flow in the Cython kernel, on the model's State arrays.

    Args:
        model: the model whose State, agents and routing policy the kernel works with.
        routing_interval_h: for routing policies that are Python code (not one of the built-in
            score or share policies), the orders arriving in each interval of this length are
            routed together, with one ``policy.route(batch, state)`` call, at its end.
    """

    name = "kernel"

    def __init__(self, model: FulfillmentModel, routing_interval_h: float = 0.25) -> None:
        from ext._kernel import Kernel

        if not routing_interval_h > 0:
            raise ValueError(f"routing_interval_h must be > 0, got {routing_interval_h!r}")
        self.m = model
        self.env = model.env
        self.routing_interval_h = float(routing_interval_h)
        _check_state(model.state)
        self._tables = self._build_tables()
        seed = int(model.rng.integers(0, 2**63 - 1))
        self.k = Kernel(seed=seed, state=model.state, tables=self._tables)
        self._shares_obj = self._tables["shares"] if self._tables["mode"] == 2 else None
        # the fleets' breakdowns and repairs, merged in time order, run inside the kernel
        fleets = model.fleets
        times = np.concatenate([f.schedule[0] for f in fleets]) if fleets else np.empty(0)
        order = np.argsort(times, kind="stable")
        where = np.concatenate([np.full(len(f.schedule[0]), f.index) for f in fleets]) if fleets else np.empty(0)
        deltas = np.concatenate([f.schedule[1] for f in fleets]) if fleets else np.empty(0)
        self.k.set_agv_schedule(times[order], where[order], deltas[order])
        # the run's records in one allocation: the mean demand over the horizon, +25% for
        # weather and surges (address space only until written; more grows as needed)
        expected = model.demand.expected_orders()
        self.k.reserve(int(1.25 * expected) + 1024, int(1.25 * 1.1 * expected) + 1024)

    # ------------------------------------------------------------------ tables
    def _build_tables(self) -> dict:
        m = self.m
        sc, net, pol = m.scenario, m.net, m.routing
        W, R, C = net.n_warehouses, net.n_regions, len(net.carriers)
        mode = _route_mode(pol)
        if getattr(pol, "net", None) is not net:
            raise ValueError(f"routing policy {pol.name!r} is bound to another network: bind it to this model's")
        pref = np.full((2, R, W), -1, dtype=np.int32)
        npref = np.zeros((2, R), dtype=np.int32)
        for c in (0, 1):
            for r in range(R):
                p = pol._pref[c][r]
                pref[c, r, : len(p)] = p
                npref[c, r] = len(p)
        d = sc.demand
        amb = np.flatnonzero(~net.sku_cold)
        cold = np.flatnonzero(net.sku_cold)
        if len(amb) == 0:
            amb = cold
        if len(cold) == 0:
            cold = amb
        from ext._kernel import build_alias

        amb_prob, amb_alias = build_alias(net.sku_p[amb])
        cold_prob, cold_alias = build_alias(net.sku_p[cold])
        sl = list(d.service_levels.values())
        pick = [_dist(w.pick.pick_time, w.pick.pick_time_cv) for w in sc.warehouses]
        pack = [_dist(w.pack.distribution, 1.0) for w in sc.warehouses]
        tr = [_dist(c.transit.distribution, c.transit.cv) for c in sc.carriers]
        dyn_a, dyn_b = 1.0, 1.0
        if type(pol) is WeightedScore:
            dyn_a, dyn_b = float(pol.w[1]), float(pol._scale[1])
        label = f"{pol.name!r} ({type(pol).__name__})"
        f64 = lambda x: np.ascontiguousarray(x, dtype=np.float64)  # noqa: E731
        i32 = lambda x: np.ascontiguousarray(x, dtype=np.int32)  # noqa: E731
        i64 = lambda x: np.ascontiguousarray(x, dtype=np.int64)  # noqa: E731
        return {
            "W": W, "R": R, "C": C, "mode": mode, "allow_split": bool(pol.allow_split),
            "static_score": f64(pol.static_score), "pref": pref, "npref": npref,
            "lane_carrier": i64(pol.lane_carrier),
            "pick_h": f64([1.0 / w.pick.lines_per_agv_h for w in sc.warehouses]), "dyn_a": dyn_a, "dyn_b": dyn_b,
            "shares": f64(pol.shares) if mode == 2 else np.zeros((R, W)),
            "policy": pol, "policy_label": label, "batch_cls": OrderBatch, "wh_names": net.warehouses,
            "route_interval": self.routing_interval_h,
            "cold_share": float(d.cold_chain_share), "lam_lines": float(d.lines_per_order - 1.0),
            "amb_prob": amb_prob, "amb_alias": amb_alias, "amb_sku": i64(amb),
            "cold_prob": cold_prob, "cold_alias": cold_alias, "cold_sku": i64(cold),
            "sl_cum": f64(np.cumsum([v.share for v in sl])), "sl_promise": f64([v.promise_h for v in sl]),
            "backorder": d.unfulfillable == "backorder", "retry_h": float(d.backorder_retry_h),
            "max_h": float(d.backorder_max_h),
            "pick_kind": i32([p[0] for p in pick]), "pick_sigma": f64([p[1] for p in pick]),
            "pick_mu": f64([p[2] for p in pick]),
            "pick_mean": f64([1.0 / w.pick.lines_per_agv_h for w in sc.warehouses]),
            "pack_kind": i32([p[0] for p in pack]), "pack_sigma": f64([p[1] for p in pack]),
            "pack_mu": f64([p[2] for p in pack]), "pack_mean": f64([w.pack.time_h for w in sc.warehouses]),
            "pack_cap": i64([w.pack.stations if w.pack.time_h > 0 else 0 for w in sc.warehouses]),
            "tr_kind": i32([t[0] for t in tr]), "tr_sigma": f64([t[1] for t in tr]), "tr_mu": f64([t[2] for t in tr]),
            "transit_mean": f64(net.transit_mean_h),
            "parcel_cost": f64(net.costs.parcel.ravel()), "lane_co2": f64(net.lane_co2_kg.ravel()),
            "handling": f64(net.costs.handling_per_line),
            "car_cap": i64([c.capacity for c in sc.carriers]), "car_reefer": i64([c.reefer_capacity for c in sc.carriers]),
            "dep_first": f64([c.first_departure_h for c in sc.carriers]),
            "dep_interval": f64([c.departure_interval_h for c in sc.carriers]),
            "dock_active": net.serves.any(axis=2),
            "agvs": i64([f.agvs for f in m.fleets]), "duty": f64([f.duty for f in m.fleets]),
        }

    # ------------------------------------------------------------------ coarse hooks
    def on_state_change(self) -> None:
        self.k.on_state_change()

    def start_arrivals(self, t0: float, t1: float) -> None:
        """Generate the orders arriving in ``[t0, t1)`` at the State's region rates."""
        self.k.start_arrivals(t0, t1, self.m.state.region_rate)

    def advance(self, until: float) -> None:
        """Run orders and agents to ``until``: the kernel goes to each agent event, the agent
        changes the State, the kernel goes on. Afterwards ``env.now == until``."""
        if self._shares_obj is not None and self.m.routing.shares is not self._shares_obj:
            shares = np.ascontiguousarray(self.m.routing.shares, dtype=np.float64)
            self.k.set_shares(shares)
            self._shares_obj = self.m.routing.shares
        env, k = self.env, self.k
        while True:
            t = env.peek()
            if t >= until:
                break
            k.run_until(t)
            env.step()
        k.run_until(until)
        if env.now < until:
            env.run(until=until)

    # ------------------------------------------------------------------ measures
    @property
    def counters(self) -> Counters:
        return Counters(*self.k.counters())

    def station_areas(self) -> tuple[np.ndarray, np.ndarray]:
        """Per warehouse: (busy pick server-hours, available pick server-hours) so far."""
        return self.k.station_areas()

    def finish(self, end_time: float) -> dict[str, np.ndarray]:
        """The records as columns (see :mod:`twin.sim.records`), sorted by order then shipment.

        The call hands the records over: it releases the kernel's record storage, so a second
        call raises RuntimeError (holding no copy keeps a 10M-order run's memory down)."""
        col = self.k.columns()
        self.k.release_records()
        return col


def _check_state(st) -> None:  # noqa: ANN001
    """The kernel shares the State's arrays: each must have the dtype and layout it reads."""
    want = {"inventory": np.int64, "wh_open": np.bool_, "cold_ok": np.bool_, "region_open": np.bool_,
            "pick_servers": np.int64, "backlog": np.int64, "region_transit_mult": np.float64,
            "carrier_capacity_mult": np.float64, "agv_up": np.int64, "agv_disabled_frac": np.float64}
    for name, dt in want.items():
        a = getattr(st, name)
        if not isinstance(a, np.ndarray) or a.dtype != dt or not a.flags.c_contiguous or not a.flags.writeable:
            got = f"{a.dtype}, contiguous={a.flags.c_contiguous}" if isinstance(a, np.ndarray) else type(a).__name__
            raise TypeError(f"State.{name} must be a writeable C-contiguous numpy array of {np.dtype(dt)} "
                            f"(the kernel shares it, never copies); got {got}")

