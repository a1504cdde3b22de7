"""Shadow replay of an order history: the OMS's logged decisions and a candidate policy
package, each executed by the twin on the same orders, compared block by block.

Both replays play the history's orders (:func:`twin.results.history.arrival_table`) on the
``simpy`` engine with one seed, so pick, pack and transit times, weather, breakdowns and risk
events are the same draws in both (common random numbers); only the decisions differ:

- **logged**: each order goes where the OMS sent each line, when that is feasible in the twin
  at that moment (open, working cold storage for a cold order, a lane, the stock); otherwise,
  and for orders the OMS did not route at creation, the scenario's routing policy routes it
  (counted as ``logged_infeasible`` and ``logged_unrouted``). Carriers are the scenario's
  routing policy's on the chosen lanes; backorders retry as the scenario says;
- **candidate**: the package's policy routes every order (:func:`twin.policies.runtime.routing_policy`).

The orders are cut into blocks by creation time (``block_h``, 24 h: order-days). Per block and
replay the KPIs of its orders come from the records (:data:`SHADOW_KPIS`: objective, cost and
CO2 per order, on-time rate, lost rate); per KPI the paired differences (candidate - logged)
over the blocks give a 95% Student-t interval (:func:`twin.results.kpis.paired_ci`).

**The go-live rule** (:func:`go_live`): the candidate goes live only if it is no worse on at
least 90% of the blocks (its objective per order at most the logged decisions' on that block)
and no KPI's interval is worse (for a lower-is-better KPI, the interval's low end is not
above 0; for a higher-is-better one, its high end is not below 0: no KPI significantly worse).
At least two blocks are needed for an interval; with fewer the rule fails.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.policies.runtime import Package, load_package, routing_policy
from twin.results.history import History, Replayable, arrival_table, read_history
from twin.results.kpis import order_table, paired_ci
from twin.scenario.schema import Scenario
from twin.world.costs import ObjectiveWeights, objective_cny

__all__ = ["GO_LIVE_SHARE", "SHADOW_KPIS", "block_kpis", "format_shadow", "go_live", "replay", "shadow"]

#: KPI -> greater is better (the gate's, per block of orders).
SHADOW_KPIS: dict[str, bool] = {"objective_per_order": False, "cost_per_order": False, "co2_per_order_kg": False,
                                "on_time_rate": True, "lost_rate": False}
#: The share of blocks on which the candidate must be no worse.
GO_LIVE_SHARE = 0.9
_TOL = 1e-9


def replay(scenario: Scenario, seed: int, rep: Replayable, routing: Any = None, logged: bool = False,
           ) -> dict[str, Any]:
    """Play ``rep``'s orders through the twin: with the logged decisions (``logged``) or with
    ``routing`` (a routing policy; None: the scenario's). Returns the records (``orders``),
    per order (in the table's order) the set of warehouses its lines went to at creation
    (``chosen``: a sorted tuple, () if not routed then) and the counts of logged decisions
    followed, infeasible and unrouted."""
    from twin.sim.model import FulfillmentModel
    from twin.sim.records import orders_frame

    m = FulfillmentModel(scenario, seed=seed, engine="simpy", routing=routing, timeseries=False,
                         arrivals=rep.arrivals)
    eng, st, pol = m.engine, m.state, m.routing
    ls = rep.arrivals.line_start
    n = len(rep.arrivals)
    chosen: list[tuple[int, ...]] = [()] * n
    followed = infeasible = unrouted = 0
    t0 = time.perf_counter()
    while (d := m.next_decision()) is not None:
        i = d.order_id
        sku, qty = list(d.sku), list(d.qty)
        want = None
        if logged:
            wh = rep.logged[ls[i]:ls[i + 1]].tolist()
            if min(wh) < 0:
                unrouted += 1
            elif _feasible(st, pol, d, wh):
                want = wh
                followed += 1
            else:
                infeasible += 1
        if want is None:
            st.clock[0] = m.env.now
            want = pol.route_one(d.region, d.cold, sku, qty, st, service=d.service_level)
        if want is not None:
            chosen[i] = tuple(sorted({int(w) for w in want}))
        eng.decide(None if want is None else [int(w) for w in want])
    m.run()
    took = time.perf_counter() - t0
    orders = orders_frame(eng.finish(m.end_time), m.net, m.end_time)
    return {"orders": orders, "chosen": chosen, "followed": followed, "infeasible": infeasible,
            "unrouted": unrouted, "seconds": took}


def _feasible(st: Any, pol: Any, d: Any, wh: list[int]) -> bool:
    """Whether the twin can send each line of order ``d`` to ``wh`` now."""
    need: dict[tuple[int, int], int] = {}
    for w, k, q in zip(wh, d.sku, d.qty):
        if not st.wh_open[w] or (d.cold and not st.cold_ok[w]) or pol.carrier(w, d.region, d.cold,
                                                                                d.service_level) < 0:
            return False
        need[(w, k)] = need.get((w, k), 0) + q
    return all(st.inventory[w, k] >= q for (w, k), q in need.items())


def block_kpis(orders: pd.DataFrame, block_h: float, n_blocks: int,
               weights: ObjectiveWeights | None = None) -> pd.DataFrame:
    """Per block of creation time (``[b * block_h, (b + 1) * block_h)``) the KPIs of
    :data:`SHADOW_KPIS` over its orders: the objective counts every shipment's cost and CO2
    (at ``co2_price``), the late penalty for an order not delivered by its promise (late or
    still in flight) and the lost penalty for a lost one, as :func:`twin.results.bound.realised_objective`."""
    w = weights or ObjectiveWeights()
    t = order_table(orders)
    b = np.minimum((t["created_at"].to_numpy() // block_h).astype(np.int64), n_blocks - 1)
    n = np.bincount(b, minlength=n_blocks).astype(float)
    lost = np.bincount(b, weights=t["lost"].to_numpy(dtype=float), minlength=n_blocks)
    on_time = np.bincount(b, weights=t["on_time"].to_numpy(dtype=float), minlength=n_blocks)
    cost = np.bincount(b, weights=t["cost"].to_numpy(dtype=float), minlength=n_blocks)
    co2 = np.bincount(b, weights=t["co2_kg"].to_numpy(dtype=float), minlength=n_blocks)
    late = n - lost - on_time
    d = np.maximum(n, 1.0)
    obj = objective_cny(cost, late, lost, co2, w)
    return pd.DataFrame({"block": np.arange(n_blocks), "orders": n.astype(np.int64), "objective_per_order": obj / d,
                         "cost_per_order": cost / d, "co2_per_order_kg": co2 / d, "on_time_rate": on_time / d,
                         "lost_rate": lost / d})


def go_live(logged: pd.DataFrame, candidate: pd.DataFrame, share: float = GO_LIVE_SHARE) -> dict[str, Any]:
    """The go-live rule (module docstring) on per-block KPI tables of the two replays (the
    same blocks, in order; blocks without orders are left out)."""
    keep = (logged["orders"].to_numpy() > 0)
    a, b = candidate[keep], logged[keep]
    n = int(keep.sum())
    no_worse = (a["objective_per_order"].to_numpy() <= b["objective_per_order"].to_numpy() + _TOL)
    kpis = {}
    for kpi, greater in SHADOW_KPIS.items():
        ci = paired_ci(a[kpi].to_numpy(), b[kpi].to_numpy())
        if n < 2:
            worse = None
        elif greater:
            worse = bool(ci["high"] < -_TOL)
        else:
            worse = bool(ci["low"] > _TOL)
        kpis[kpi] = {"candidate_mean": float(a[kpi].mean()) if n else math.nan,
                     "logged_mean": float(b[kpi].mean()) if n else math.nan,
                     "difference": ci, "greater_is_better": greater, "ci_worse": worse}
    share_ok = float(no_worse.mean()) if n else 0.0
    reasons = []
    if n < 2:
        reasons.append(f"{n} block(s) with orders: an interval needs at least 2 (use a shorter block_h)")
    if share_ok < share - 1e-12:
        reasons.append(f"no worse on {share_ok:.1%} of the blocks, the rule needs {share:.0%}")
    reasons += [f"{k}: the interval is worse" for k, v in kpis.items() if v["ci_worse"]]
    return {"blocks": n, "no_worse_blocks": int(no_worse.sum()), "no_worse_share": share_ok, "required_share": share,
            "kpis": kpis, "passed": not reasons, "reasons": reasons}


def shadow(package: str | Path | Package, history: str | Path | History, scenario: Scenario | None = None,
           seed: int | None = None, block_h: float = 24.0, start: datetime | None = None,
           weights: ObjectiveWeights | None = None) -> dict[str, Any]:
    """Replay ``history`` with its logged decisions and with ``package``; the report document
    (see the module docstring).

    Args:
        scenario: the world to replay in (default: the package's scenario); its horizon is
            lengthened to cover the history's last order when it is shorter.
        seed: the replays' seed (default the scenario's).
        block_h: hours per block of the go-live rule (24: order-days).
        start: the calendar time of hour 0 (default: the scenario's ``start``, else midnight
            UTC of the first order's day).
    """
    from twin.world.network import build_network

    if not (isinstance(block_h, (int, float)) and math.isfinite(block_h) and block_h > 0):
        raise ValueError(f"block_h must be a finite number of hours > 0, got {block_h!r}")
    pkg = package if isinstance(package, Package) else load_package(package)
    hist = history if isinstance(history, History) else read_history(history)
    sc = scenario if scenario is not None else pkg.scenario
    seed = sc.seed if seed is None else int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    # the horizon covers the history (orders arrive only from the table)
    probe = arrival_table(hist, build_network(sc.model_copy(update={"horizon_h": 1e6})), start)
    last = float(probe.arrivals.created_h[-1])
    if last >= sc.horizon_h:
        sc = sc.model_copy(update={"horizon_h": float(math.floor(last) + 1)})
    net = build_network(sc)
    pkg.check_network(net)
    rep = arrival_table(hist, net, start)
    n_blocks = max(1, math.ceil((last + 1e-12) / block_h))
    t0 = time.perf_counter()
    base = replay(sc, seed, rep, logged=True)
    cand = replay(sc, seed, rep, routing=routing_policy(pkg))
    took = time.perf_counter() - t0
    kb, kc = block_kpis(base["orders"], block_h, n_blocks, weights), block_kpis(cand["orders"], block_h, n_blocks,
                                                                                weights)
    routed = [i for i, c in enumerate(base["chosen"]) if c]
    agree = sum(base["chosen"][i] == cand["chosen"][i] for i in routed)
    n = len(rep.order_ids)
    rule = go_live(kb, kc)
    per_block = [{"block": int(b), "start_h": float(b * block_h), "orders": int(kb["orders"][b]),
                  **{f"logged_{k}": float(kb[k][b]) for k in SHADOW_KPIS},
                  **{f"candidate_{k}": float(kc[k][b]) for k in SHADOW_KPIS}} for b in range(n_blocks)]
    return {"package": pkg.name, "version": pkg.version, "package_sha256": pkg.sha256, "history": hist.path,
            "scenario": sc.name, "seed": seed, "engine": "simpy", "start": rep.start.isoformat(), "block_h": block_h,
            "orders": n, "lines": len(rep.arrivals.sku),
            "logged_followed": base["followed"], "logged_infeasible": base["infeasible"],
            "logged_unrouted": base["unrouted"],
            "agreement": {"orders": len(routed), "same_warehouses": agree,
                          "rate": agree / len(routed) if routed else math.nan},
            "replay_seconds": took, "blocks": per_block, "go_live": rule}


def format_shadow(doc: Mapping[str, Any]) -> str:
    """A terminal summary: agreement, per KPI the means and the paired 95% CI, the verdict."""
    r = doc["go_live"]
    ag = doc["agreement"]
    out = [(f"shadow replay of {doc['history']} ({doc['orders']:,} orders) on {doc['scenario']} seed {doc['seed']}: "
           f"logged decisions vs {doc['package']} {doc['version']} (common random numbers, simpy)"),
           (f"  logged decisions followed {doc['logged_followed']:,}, infeasible in the twin "
           f"{doc['logged_infeasible']:,}, not routed by the OMS {doc['logged_unrouted']:,}"),
           (f"  decision agreement: {ag['same_warehouses']:,} of {ag['orders']:,} orders ({ag['rate']:.1%}) go to the "
           "same warehouse(s)"),
           f"  per block of {doc['block_h']:g} h ({r['blocks']} blocks), candidate - logged:"]
    for kpi, v in r["kpis"].items():
        d = v["difference"]
        flag = "" if v["ci_worse"] is None else (" WORSE" if v["ci_worse"] else " ok")
        out.append(f"    {kpi:<20} {v['candidate_mean']:10.4f} vs {v['logged_mean']:10.4f}  diff {d['mean']:+.4f} "
                   f"[{d['low']:+.4f}, {d['high']:+.4f}]{flag}")
    out.append(f"  no worse on {r['no_worse_blocks']} of {r['blocks']} blocks ({r['no_worse_share']:.1%}; "
               f"the rule needs {r['required_share']:.0%})")
    out.append(f"go-live: {'PASS' if r['passed'] else 'FAIL'}" + (f" ({'; '.join(r['reasons'])})" if r["reasons"]
                                                                   else ""))
    return "\n".join(out)
