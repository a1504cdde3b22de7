"""Replanning after a closure: every warehouse's share of the orders, from a transportation LP on
the network and its state at one moment, before and after closing warehouses or regions.

The LP (scipy's HiGHS) routes the order flow of one hour (orders per hour: the mean over the
horizon, or the rate at ``at`` hours with the disruptions and weather events in force then).
Variables are the orders per hour of each region by each lane (warehouse, carrier), ambient and
cold-chain apart, plus the orders per hour left unserved. Constraints:

- each region's demand (its weight x the rate, cold-chain share apart) is served or unserved;
- a warehouse picks at most ``max_utilization`` of its fleet's lines per hour (AGVs x lines per
  AGV-hour x battery duty x up-time, less AGVs an ``agv_breakdown`` disables), at
  ``lines_per_order`` lines an order, and packs at most ``max_utilization`` of its stations'
  rate;
- a carrier's departures from a warehouse take at most ``capacity / departure_interval_h``
  ambient and ``reefer_capacity / departure_interval_h`` cold parcels per hour (less a
  ``carrier_capacity_loss``); cold orders only from working cold storage.

An order by a lane costs its shipment cost (:func:`twin.world.costs.shipment_cost` at the mean
lines) + the CO2 price x its CO2 + the late penalty x the share of service levels whose promise
the lane's mean transit plus half a departure interval exceeds; an unserved order the lost
penalty (:class:`twin.world.costs.ObjectiveWeights`). Closing a warehouse sets its capacity to
0; closing a region closes the lanes into it (as a typhoon's ``closes_lanes``): its orders wait
for them to reopen, so it takes no share of the flow and keeps its shares from before.

``region_shares`` (``[regions, warehouses]``, rows summing to 1) is what
:class:`twin.policies.shares.AllocationShares` takes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin.scenario.loader import load_scenario
from twin.scenario.schema import (AGVBreakdown, CarrierCapacityLoss, ColdChainFailure, DemandSurge, Scenario,
                                  WarehouseOutage)
from twin.world.costs import ObjectiveWeights, shipment_cost
from twin.world.demand import DemandRate, mean_rate_per_h
from twin.world.network import Network, build_network

__all__ = ["Plan", "ReplanResult", "replan", "format_replan", "solve_shares"]


@dataclass
class Plan:
    """One LP's answer. Arrays are over warehouses ``[W]`` or regions x warehouses ``[R, W]``."""

    orders_per_h: np.ndarray  # [W] orders per hour each warehouse ships
    region_orders_per_h: np.ndarray  # [R, W]
    unserved_per_h: np.ndarray  # [R] demand no lane could take (0 for closed regions: they wait)
    waiting_per_h: np.ndarray  # [R] demand of closed regions (waits for the lanes)
    pick_utilization: np.ndarray  # [W] lines picked over the fleet's lines per hour (NaN: no fleet)
    objective_per_order: float  # CNY per routed order (served or unserved)
    variables: int
    status: int
    message: str
    solve_s: float

    @property
    def share(self) -> np.ndarray:
        """Each warehouse's share of the orders shipped (0..1, summing to 1)."""
        tot = self.orders_per_h.sum()
        return self.orders_per_h / tot if tot > 0 else np.zeros_like(self.orders_per_h)

    def region_shares(self, fallback: np.ndarray | None = None) -> np.ndarray:
        """``[R, W]`` rows summing to 1: each region's split of its served orders; a region with
        none served takes ``fallback``'s row (or an even split)."""
        m = self.region_orders_per_h
        tot = m.sum(axis=1, keepdims=True)
        even = np.full_like(m, 1.0 / m.shape[1])
        fb = even if fallback is None else fallback
        return np.where(tot > 0, m / np.where(tot > 0, tot, 1.0), fb)


@dataclass
class ReplanResult:
    """Before and after a closure, on one network at one moment."""

    scenario: str
    warehouses: list[str]
    regions: list[str]
    closed_warehouses: list[str]
    closed_regions: list[str]
    at_h: float | None
    demand_per_h: float
    before: Plan
    after: Plan
    build_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def region_shares_after(self) -> np.ndarray:
        """The shares to route by after the closure (``AllocationShares``' input); closed regions
        keep their shares from before."""
        return self.after.region_shares(self.before.region_shares())

    def to_dict(self) -> dict[str, Any]:
        def plan(p: Plan, shares: np.ndarray) -> dict[str, Any]:
            return {"share": p.share.round(6).tolist(), "orders_per_h": p.orders_per_h.round(3).tolist(),
                    "pick_utilization": [None if math.isnan(u) else round(float(u), 6) for u in p.pick_utilization],
                    "unserved_per_h": float(p.unserved_per_h.sum()), "waiting_per_h": float(p.waiting_per_h.sum()),
                    "objective_per_order": p.objective_per_order, "region_shares": shares.round(6).tolist(),
                    "solve_s": p.solve_s, "status": p.message}

        return {"scenario": self.scenario, "closed_warehouses": self.closed_warehouses,
                "closed_regions": self.closed_regions, "at_h": self.at_h, "demand_per_h": self.demand_per_h,
                "warehouses": self.warehouses, "regions": self.regions,
                "before": plan(self.before, self.before.region_shares()),
                "after": plan(self.after, self.region_shares_after)}


def _active(sc: Scenario, at: float | None) -> Iterator[Any]:
    if at is None:
        return iter(())
    return (d for d in sc.disruptions if d.start_h <= at < d.end_h)


def _state(sc: Scenario, net: Network, at: float | None) -> dict[str, np.ndarray]:
    """Rates and capacities at ``at`` (None: the horizon's mean demand, no disruption)."""
    W, R, C = net.n_warehouses, net.n_regions, len(net.carriers)
    wi = {w: i for i, w in enumerate(net.warehouses)}
    ci = {c: i for i, c in enumerate(net.carriers)}
    ri = {r: i for i, r in enumerate(net.regions)}
    rate = mean_rate_per_h(sc) if at is None else DemandRate(sc.demand).total(at)
    surge = np.ones(R)
    open_w = np.ones(W, bool)
    cold_ok = net.cold_capable.copy()
    disabled = np.zeros(W)
    cap_mult = np.ones(C)
    region_open = np.ones(R, bool)
    for d in _active(sc, at):
        if isinstance(d, WarehouseOutage):
            open_w[wi[d.warehouse]] = False
        elif isinstance(d, AGVBreakdown):
            disabled[wi[d.warehouse]] += d.fraction
        elif isinstance(d, CarrierCapacityLoss):
            cap_mult[ci[d.carrier]] *= 1.0 - d.fraction
        elif isinstance(d, ColdChainFailure):
            cold_ok[wi[d.warehouse]] = False
        elif isinstance(d, DemandSurge):
            idx = list(range(R)) if d.regions == "all" else [ri[r] for r in d.regions if r in ri]
            surge[idx] *= d.multiplier
    if at is not None:
        for e in sc.weather.events:
            if e.start_h <= at < e.end_h:
                idx = [ri[r] for r in e.regions if r in ri]
                surge[idx] *= e.demand_multiplier
                if e.closes_lanes:
                    region_open[idx] = False
    lines = sc.demand.lines_per_order
    pick = np.zeros(W)
    pack = np.full(W, np.inf)
    for i, w in enumerate(sc.warehouses):
        p = w.pick
        duty = 1.0 if p.battery_h is None else p.battery_h / (p.battery_h + p.charge_h)
        up = 1.0 if p.mtbf_h is None else p.mtbf_h / (p.mtbf_h + p.mttr_h)
        pick[i] = p.agvs * p.lines_per_agv_h * duty * up * (1.0 - min(disabled[i], 1.0))
        if w.pack.time_h > 0:
            pack[i] = w.pack.stations / w.pack.time_h
    interval = np.array([c.departure_interval_h for c in sc.carriers])
    amb = np.array([c.capacity for c in sc.carriers]) * cap_mult / interval
    reefer = np.array([c.reefer_capacity for c in sc.carriers]) * cap_mult / interval
    demand = rate * net.region_weight * surge
    cold = sc.demand.cold_chain_share
    return {"demand": np.stack([demand * (1 - cold), demand * cold]), "open_w": open_w, "cold_ok": cold_ok,
            "region_open": region_open, "pick_lines": pick, "pack": pack, "lines": np.array(lines),
            "cap": np.stack([amb, reefer]), "interval": interval}


def _lane_cost(sc: Scenario, net: Network, s: dict[str, np.ndarray], w: ObjectiveWeights) -> np.ndarray:
    """``[2, C, W, R]``: the objective of one order by each lane, ambient and cold."""
    C, W, R = net.serves.shape
    c, wh, r = np.arange(C)[:, None, None], np.arange(W)[None, :, None], np.arange(R)[None, None, :]
    lines = float(s["lines"])
    due = net.transit_mean_h + s["interval"][:, None, None] / 2.0
    late = sum(lvl.share * (due > lvl.promise_h) for lvl in sc.demand.service_levels.values())
    out = np.empty((2, C, W, R))
    for k in (0, 1):
        out[k] = (shipment_cost(net.costs, c, wh, r, k, lines) + w.co2_price_cny_per_kg * net.lane_co2_kg
                  + w.late_penalty_cny * late)
    return out


def solve_shares(sc: Scenario, net: Network, closed_w: Iterable[int] = (), closed_r: Iterable[int] = (),
                 at: float | None = None, max_utilization: float = 0.9,
                 weights: ObjectiveWeights | None = None, state: dict[str, np.ndarray] | None = None,
                 lane_cost: np.ndarray | None = None) -> Plan:
    """Solve the LP of the module docstring with warehouses ``closed_w`` and regions
    ``closed_r`` (indices) closed."""
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix

    w8 = weights or ObjectiveWeights()
    s = state if state is not None else _state(sc, net, at)
    cost = lane_cost if lane_cost is not None else _lane_cost(sc, net, s, w8)
    C, W, R = net.serves.shape
    open_w = s["open_w"].copy()
    open_w[list(closed_w)] = False
    open_r = s["region_open"].copy()
    open_r[list(closed_r)] = False
    lines = float(s["lines"])
    ks, cs, ws, rs = [], [], [], []
    for k in (0, 1):
        ok = net.serves & open_w[None, :, None] & open_r[None, None, :] & (s["cap"][k][:, None, None] > 0)
        if k == 1:
            ok &= s["cold_ok"][None, :, None]
        c, wv, r = np.nonzero(ok)
        ks.append(np.full(len(c), k))
        cs.append(c)
        ws.append(wv)
        rs.append(r)
    k, c, wv, r = (np.concatenate(x) for x in (ks, cs, ws, rs))
    n_x = len(k)
    d = s["demand"] * open_r[None, :]
    need = np.flatnonzero(d.ravel() > 0)  # (k, r) pairs with demand: one unserved column each
    n = n_x + len(need)
    c_vec = np.concatenate([cost[k, c, wv, r], np.full(len(need), w8.lost_penalty_cny)])
    # demand rows: one per (k, r) with demand
    row_of = np.full(2 * R, -1)
    row_of[need] = np.arange(len(need))
    x_row = row_of[k * R + r]
    keep = x_row >= 0
    a_eq = csr_matrix((np.ones(keep.sum() + len(need)),
                       (np.concatenate([x_row[keep], np.arange(len(need))]),
                        np.concatenate([np.flatnonzero(keep), n_x + np.arange(len(need))]))),
                      shape=(len(need), n))
    b_eq = d.ravel()[need]
    # capacity rows: pick (W), pack (W), carrier (2 x C x W)
    rows, cols, vals, rhs = [], [], [], []
    rows.append(wv)
    cols.append(np.arange(n_x))
    vals.append(np.full(n_x, lines))
    rhs.append(max_utilization * s["pick_lines"])
    rows.append(W + wv)
    cols.append(np.arange(n_x))
    vals.append(np.ones(n_x))
    rhs.append(np.where(np.isfinite(s["pack"]), max_utilization * s["pack"], 1e30))
    rows.append(2 * W + (k * C + c) * W + wv)
    cols.append(np.arange(n_x))
    vals.append(np.ones(n_x))
    rhs.append(s["cap"].reshape(-1, 1).repeat(W, axis=1).ravel())
    a_ub = csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(2 * W + 2 * C * W, n))
    b_ub = np.concatenate(rhs)
    t0 = time.perf_counter()
    res = linprog(c_vec, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq if len(need) else None, b_eq=b_eq if len(need) else None,
                  bounds=(0, None), method="highs")
    solve_s = time.perf_counter() - t0
    if res.status != 0:
        raise ValueError(f"replan: the LP was not solved ({res.message})")
    x = res.x[:n_x]
    per_rw = np.zeros((R, W))
    np.add.at(per_rw, (r, wv), x)
    unserved = np.zeros(2 * R)
    unserved[need] = res.x[n_x:]
    flow = per_rw.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        util = np.where(s["pick_lines"] > 0, flow * lines / s["pick_lines"], np.nan)
    total = float(d.sum())
    return Plan(orders_per_h=flow, region_orders_per_h=per_rw, unserved_per_h=unserved.reshape(2, R).sum(axis=0),
                waiting_per_h=(s["demand"] * ~open_r[None, :]).sum(axis=0), pick_utilization=util,
                objective_per_order=float(res.fun) / total if total > 0 else math.nan, variables=n,
                status=int(res.status), message=str(res.message), solve_s=solve_s)


def replan(scenario: Scenario | str | Path, close: Iterable[str], at: float | None = None,
           overrides: Iterable[str] | None = None, max_utilization: float = 0.9,
           weights: ObjectiveWeights | None = None) -> ReplanResult:
    """Every warehouse's order shares before and after closing ``close`` (warehouse or region
    names), by the LP of the module docstring at ``at`` hours (None: the horizon's mean rate).

    Raises:
        ValueError: a name that is neither a warehouse nor a region (the message lists them),
            nothing to close, or a bad ``at`` / ``max_utilization``.
    """
    t0 = time.perf_counter()
    sc = load_scenario(scenario, overrides)
    names = list(close)
    if not names:
        raise ValueError("--close: name at least one warehouse or region to close")
    if at is not None and not (math.isfinite(at) and 0 <= at <= sc.horizon_h + sc.drain_h):
        raise ValueError(f"--at must be an hour in 0..{sc.horizon_h + sc.drain_h:g} (the run), got {at:g}")
    if not (math.isfinite(max_utilization) and 0 < max_utilization <= 1):
        raise ValueError(f"--max-utilization must be in (0, 1], got {max_utilization:g}")
    net = build_network(sc)
    cw, cr = [], []
    for nm in names:
        if nm in net.warehouses:
            cw.append(net.warehouses.index(nm))
        elif nm in net.regions:
            cr.append(net.regions.index(nm))
        else:
            raise ValueError(f"--close {nm!r}: not a warehouse or a region of {sc.name}; warehouses: "
                             f"{', '.join(net.warehouses)}; regions: {', '.join(net.regions)}")
    w8 = weights or ObjectiveWeights()
    s = _state(sc, net, at)
    cost = _lane_cost(sc, net, s, w8)
    build_s = time.perf_counter() - t0
    before = solve_shares(sc, net, (), (), at, max_utilization, w8, s, cost)
    after = solve_shares(sc, net, cw, cr, at, max_utilization, w8, s, cost)
    notes = []
    if after.unserved_per_h.sum() > before.unserved_per_h.sum() + 1e-6:
        notes.append(f"the network cannot take all the orders after the closure: "
                     f"{after.unserved_per_h.sum():,.0f} orders/h unserved")
    return ReplanResult(sc.name, list(net.warehouses), list(net.regions), [net.warehouses[i] for i in cw],
                        [net.regions[i] for i in cr], at, float(s["demand"].sum()), before, after, build_s, notes)


def format_replan(res: ReplanResult, top: int | None = None) -> str:
    """Before/after per warehouse (share, orders per hour, pick utilisation), largest change first."""
    b, a = res.before, res.after
    delta = a.share - b.share
    order = np.argsort(-np.abs(delta), kind="stable")
    if top is not None:
        order = order[:top]
    width = max(len(w) for w in res.warehouses)
    closed = ", ".join(res.closed_warehouses + res.closed_regions)
    at = "the horizon's mean demand" if res.at_h is None else f"the state at {res.at_h:g} h"
    lines = [f"{res.scenario}: order shares before and after closing {closed} ({at}, {res.demand_per_h:,.0f} "
             f"orders/h)",
             f"  {'warehouse':<{width}}  {'before':>7}  {'after':>7}  {'change':>8}  {'orders/h':>10}  {'pick util':>9}"]
    for i in order:
        u = a.pick_utilization[i]
        mark = "  (closed)" if res.warehouses[i] in res.closed_warehouses else ""
        lines.append(f"  {res.warehouses[i]:<{width}}  {b.share[i]:>7.1%}  {a.share[i]:>7.1%}  "
                     f"{delta[i] * 100:>+6.1f}pp  {a.orders_per_h[i]:>10,.0f}  "
                     f"{'n/a' if math.isnan(u) else f'{u:.0%}':>9}{mark}")
    if top is not None and len(res.warehouses) > top:
        lines.append(f"  ... {len(res.warehouses) - top} more warehouses")
    lines.append(f"unserved orders/h: before {b.unserved_per_h.sum():,.1f}, after {a.unserved_per_h.sum():,.1f}"
                 + (f"; waiting for closed regions' lanes: {a.waiting_per_h.sum():,.0f}/h"
                    if a.waiting_per_h.sum() > 0 else ""))
    lines.append(f"objective per order: before {b.objective_per_order:.2f} CNY, after {a.objective_per_order:.2f} CNY")
    lines.append(f"LP: {a.variables:,} variables; built in {res.build_s * 1000:.0f} ms, solved in "
                 f"{(b.solve_s + a.solve_s) * 1000:.0f} ms (before and after)")
    lines += [f"note: {n}" for n in res.notes]
    return "\n".join(lines)


def write_replan(res: ReplanResult, path: str | Path) -> Path:
    """The result as JSON (shares per warehouse and per region, before and after)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(res.to_dict(), indent=2) + "\n", encoding="utf-8")
    return p
