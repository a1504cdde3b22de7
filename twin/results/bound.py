"""The hindsight bound: the least objective any routing could reach on a run's realised orders,
from a transportation LP over warehouses, carriers and departures (scipy's HiGHS).

Every policy's objective per order (:func:`realised_objective`) can be set against it: the gap
is how much routing could still win on those orders.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from twin.scenario.schema import AGVBreakdown, CarrierCapacityLoss, Scenario, WarehouseOutage
from twin.world.costs import ObjectiveWeights, objective_cny, shipment_cost
from twin.world.network import Network, build_network

__all__ = ["BoundResult", "bound_run_dir", "format_bound", "hindsight_bound", "realised_objective"]


@dataclass
class BoundResult:
    """What :func:`hindsight_bound` found.

    Attributes:
        objective_per_order: the bound, CNY per order (cost + penalties + CO2 price).
        cost_per_order, co2_per_order_kg, late_rate, lost_rate: the parts of the LP's optimum
            (per created order). Only their weighted sum is a bound: the optimum trades them.
        orders, groups: the realised orders and the groups the LP aggregates them into.
        variables, constraints, nonzeros: the LP's size; status, message: HiGHS's answer;
        solve_s: seconds in HiGHS; build_s: seconds building the LP.
        bucket_h: the width of the time buckets; weights: the objective's prices.
    """

    objective_per_order: float
    cost_per_order: float
    co2_per_order_kg: float
    late_rate: float
    lost_rate: float
    orders: int
    groups: int
    variables: int
    constraints: int
    nonzeros: int
    status: int
    message: str
    solve_s: float
    build_s: float
    bucket_h: float
    weights: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- orders
def _codes(col: pd.Series, names: list[str]) -> np.ndarray:
    """Integer codes of a name column (names or codes already) in the order of ``names``."""
    if col.dtype.kind in "iu":
        return col.to_numpy().astype(np.int64)
    codes = pd.Categorical(col, categories=names).codes.astype(np.int64)
    if (codes < 0).any():
        bad = sorted(set(col[codes < 0].astype(str)))[:3]
        raise ValueError(f"orders: names {bad} are not in the scenario (allowed: {', '.join(names)})")
    return codes


def _per_order(orders: pd.DataFrame, net: Network) -> dict[str, np.ndarray]:
    """One entry per order: region, cold, service level (codes), lines (summed over its
    shipments), created and promised times."""
    missing = [c for c in ("order_id", "region", "cold_chain", "service_level", "lines", "created_at", "promised_at")
               if c not in orders.columns]
    if missing:
        raise ValueError(f"orders: missing columns {missing} (a records table of twin.sim.records)")
    oid = orders["order_id"].to_numpy()
    uniq, first, inverse = np.unique(oid, return_index=True, return_inverse=True)
    lines = np.bincount(inverse, weights=orders["lines"].to_numpy(dtype=float), minlength=len(uniq))
    sl_names = list(net.scenario.demand.service_levels)
    return {
        "region": _codes(orders["region"], net.regions)[first],
        "cold": orders["cold_chain"].to_numpy(dtype=bool)[first],
        "service": _codes(orders["service_level"], sl_names)[first],
        "lines": lines,
        "created": orders["created_at"].to_numpy(dtype=float)[first],
        "promised": orders["promised_at"].to_numpy(dtype=float)[first],
    }


def realised_objective(orders: pd.DataFrame, weights: ObjectiveWeights | None = None) -> dict[str, float]:
    """A run's objective per order from its records, as the RL ledger counts it: every
    shipment's cost and CO2, the late penalty for each order not delivered by its promise
    (late, or still in flight at the end), the lost penalty for each lost order."""
    from twin.results.kpis import order_table

    w = weights or ObjectiveWeights()
    t = order_table(orders)
    n = len(t)
    lost = int(t["lost"].sum())
    late = int(n - lost - t["on_time"].sum())
    cost, co2 = float(t["cost"].sum()), float(t["co2_kg"].sum())
    d = max(n, 1)
    return {"orders": n, "objective_per_order": float(objective_cny(cost, late, lost, co2, w)) / d,
            "cost_per_order": cost / d, "co2_per_order_kg": co2 / d, "late_rate": late / d, "lost_rate": lost / d}


# --------------------------------------------------------------------------- capacities
def _windows(sc: Scenario, kind: type, key: str, name: str) -> list[tuple[float, float, float]]:
    """``(start_h, end_h, fraction)`` of the disruptions of ``kind`` naming ``name``."""
    return [(d.start_h, d.end_h, float(getattr(d, "fraction", 1.0))) for d in sc.disruptions
            if isinstance(d, kind) and getattr(d, key) == name]


def _departures(sc: Scenario, c: int, w: int, end: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times of carrier ``c``'s departures from warehouse ``w`` before ``end`` and the ambient and
    reefer parcels each may take (capacity losses applied, none while the warehouse is closed)."""
    car, wh = sc.carriers[c], sc.warehouses[w].name
    n = max(0, math.ceil((end - car.first_departure_h) / car.departure_interval_h))
    t = car.first_departure_h + car.departure_interval_h * np.arange(n)
    t = t[t < end]
    mult = np.ones(len(t))
    for s, e, f in _windows(sc, CarrierCapacityLoss, "carrier", car.name):
        mult[(t >= s) & (t < e)] *= 1.0 - f
    for s, e, _f in _windows(sc, WarehouseOutage, "warehouse", wh):
        mult[(t >= s) & (t < e)] = 0.0
    # the agents' int(capacity * multiplier)
    return t, np.floor(car.capacity * mult + 1e-9), np.floor(car.reefer_capacity * mult + 1e-9)


def _pick_lines(sc: Scenario, w: int, edges: np.ndarray) -> np.ndarray:
    """Lines warehouse ``w`` picks in each bucket ``[edges[i], edges[i+1])`` at its mean rate:
    AGVs x lines per AGV-hour x battery duty x up-time ``mtbf / (mtbf + mttr)`` x the share no
    ``agv_breakdown`` disables, and nothing while it is closed (exact integrals over the windows)."""
    wh = sc.warehouses[w]
    p = wh.pick
    duty = 1.0 if p.battery_h is None else p.battery_h / (p.battery_h + p.charge_h)
    up = 1.0 if p.mtbf_h is None else p.mtbf_h / (p.mtbf_h + p.mttr_h)
    rate = p.agvs * p.lines_per_agv_h * duty * up
    breaks = _windows(sc, AGVBreakdown, "warehouse", wh.name)
    outages = _windows(sc, WarehouseOutage, "warehouse", wh.name)
    cuts = np.unique(np.concatenate([edges, [x for s, e, _ in breaks + outages for x in (s, e)]]))
    cuts = cuts[(cuts >= edges[0]) & (cuts <= edges[-1])]
    mid = (cuts[:-1] + cuts[1:]) / 2
    disabled = np.zeros(len(mid))
    for s, e, f in breaks:
        disabled += np.where((mid >= s) & (mid < e), f, 0.0)
    r = rate * (1.0 - np.minimum(disabled, 1.0))
    for s, e, _f in outages:
        r[(mid >= s) & (mid < e)] = 0.0
    piece = r * np.diff(cuts)
    which = np.searchsorted(edges, mid, side="right") - 1
    return np.bincount(which, weights=piece, minlength=len(edges) - 1)[: len(edges) - 1]


# --------------------------------------------------------------------------- the LP
class _LP:
    """A sparse LP under construction: columns with costs, rows (== or <=) by triplets."""

    def __init__(self) -> None:
        self.c: list[np.ndarray] = []
        self.n = 0
        self.eq: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.ub: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.b_eq: list[np.ndarray] = []
        self.b_ub: list[np.ndarray] = []
        self.n_eq = 0
        self.n_ub = 0

    def columns(self, cost: np.ndarray) -> np.ndarray:
        cost = np.asarray(cost, dtype=float)
        idx = np.arange(self.n, self.n + len(cost))
        self.c.append(cost)
        self.n += len(cost)
        return idx

    def rows(self, kind: str, rhs: np.ndarray) -> np.ndarray:
        rhs = np.asarray(rhs, dtype=float)
        if kind == "eq":
            idx = np.arange(self.n_eq, self.n_eq + len(rhs))
            self.n_eq += len(rhs)
            self.b_eq.append(rhs)
        else:
            idx = np.arange(self.n_ub, self.n_ub + len(rhs))
            self.n_ub += len(rhs)
            self.b_ub.append(rhs)
        return idx

    def put(self, kind: str, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray | float) -> None:
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        vals = np.broadcast_to(np.asarray(vals, dtype=float), rows.shape)
        (self.eq if kind == "eq" else self.ub).append((rows, cols, vals))

    def matrices(self) -> tuple[Any, ...]:
        from scipy.sparse import csr_matrix

        def mat(parts: list, m: int) -> Any:
            if not parts or m == 0:
                return None
            r, c, v = (np.concatenate(x) for x in zip(*parts))
            return csr_matrix((v, (r, c)), shape=(m, self.n))

        def cat(xs: list) -> np.ndarray:
            return np.concatenate(xs) if xs else np.empty(0)

        return (cat(self.c), mat(self.ub, self.n_ub), cat(self.b_ub) if self.n_ub else None,
                mat(self.eq, self.n_eq), cat(self.b_eq) if self.n_eq else None)


def _release_deadline_chain(lp: _LP, u: np.ndarray, coef: np.ndarray, a: np.ndarray, b: np.ndarray,
                            cap: np.ndarray) -> None:
    """Constrain work ``coef * x[u]`` released at slot ``a`` and due by slot ``b`` (``a <= b``)
    to fit slots of capacity ``cap``: exactly the fractional scheduling problem, as a flow.

    For each due slot ``b``: ``s[b, k]`` is the work due by ``b`` done in slot ``k`` and
    ``q[b, k]`` what of it still waits after slot ``k``; ``q[b, k-1] + released[b, k] =
    s[b, k] + q[b, k]`` for ``k`` from the earliest release to ``b`` (``q[b, b] = 0``: all done
    by then), and ``sum_b s[b, k] <= cap[k]``.
    """
    if not len(u):
        return
    s_cols: list[np.ndarray] = []
    s_slots: list[np.ndarray] = []
    for due in np.unique(b):
        m = b == due
        k0 = int(a[m].min())
        ks = np.arange(k0, due + 1)
        rows = lp.rows("eq", np.zeros(len(ks)))
        # released work enters its release slot's row
        lp.put("eq", rows[a[m] - k0], u[m], coef[m])
        open_ = cap[ks] > 0
        s = lp.columns(np.zeros(int(open_.sum())))
        lp.put("eq", rows[open_], s, -1.0)
        s_cols.append(s)
        s_slots.append(ks[open_])
        if len(ks) > 1:  # q[b, k] for k < b: out of row k, into row k + 1
            q = lp.columns(np.zeros(len(ks) - 1))
            lp.put("eq", rows[:-1], q, -1.0)
            lp.put("eq", rows[1:], q, 1.0)
    cols, slots = np.concatenate(s_cols), np.concatenate(s_slots)
    used = np.unique(slots)
    cap_rows = lp.rows("ub", cap[used])
    lp.put("ub", cap_rows[np.searchsorted(used, slots)], cols, 1.0)


def hindsight_bound(scenario: Scenario, orders: pd.DataFrame, weights: ObjectiveWeights | None = None,
                    bucket_h: float = 1.0, end_time: float | None = None, net: Network | None = None) -> BoundResult:
    """The least objective per order any routing could reach on a run's realised orders.

    A transportation LP (solved by scipy's HiGHS) over groups of orders, one group per region,
    cold-chain flag, service level and ``bucket_h``-wide bucket of creation times. Each group's
    orders are each served once: on time by a lane (warehouse, carrier) that serves the region
    (cold orders only from cold-storage warehouses with reefer room), late (the cheapest such
    lane plus the late penalty), or lost (the lost penalty). Per order, a lane costs its
    shipment cost (:func:`twin.world.costs.shipment_cost`, handling at the group's mean lines)
    plus the CO2 price times its CO2: the objective of :func:`twin.world.costs.objective_cny`
    with ``weights`` (the RL envs' defaults: 50 per late, 100 per lost order, 1 per kg CO2).

    On time means an expected delivery by the promise: a departure of the lane at or after the
    order's creation plus its mean pick and pack times, and no later than the promise minus the
    lane's mean transit time (weather taken at its mildest, x1 in every built-in). The late
    term uses these means, so the bound is one on the expected-value relaxation: a run whose
    realised transit times are short may beat it by luck.

    Every capacity is a relaxation of what a policy faces, so (up to those means) no policy
    does better:

    - linehaul: the on-time parcels of each (carrier, warehouse) fit its departures within
      their windows (ambient parcels in ``capacity``, cold ones in ``reefer_capacity``; capacity
      losses and warehouse outages applied per departure) -- the exact fractional problem;
    - picking: the on-time lines of each warehouse are picked between the creation bucket and
      the bucket of their latest departure, at the fleet's mean rate per bucket
      (:func:`_pick_lines`; outages and AGV breakdown windows applied); late orders need not be
      picked at all (one still in flight at the end is late);
    - stock is ignored (any warehouse may serve any order), and so are splits (a split order
      costs at least one parcel: its cost is at least a mix of single-lane costs), pack
      stations, lanes closed by weather, and the time spread inside a group (its earliest
      creation and latest promise are used).

    Args:
        scenario: the run's scenario (``scenario.json`` of a run directory).
        orders: the run's records (``orders.parquet``, one row per shipment).
        weights: the objective's prices (default :class:`~twin.world.costs.ObjectiveWeights`).
        bucket_h: width of the creation and pick-time buckets, hours (smaller: tighter, larger LP).
        end_time: the run's end (default ``horizon_h + drain_h``).
        net: the scenario's network, if built already.
    """
    from scipy.optimize import linprog

    if not (isinstance(bucket_h, (int, float)) and math.isfinite(bucket_h) and bucket_h > 0):
        raise ValueError(f"bucket_h must be a finite number of hours > 0, got {bucket_h!r}")
    w_ = weights or ObjectiveWeights()
    t0 = time.perf_counter()
    net = net or build_network(scenario)
    sc = scenario
    end = float(sc.horizon_h + sc.drain_h) if end_time is None else float(end_time)
    o = _per_order(orders, net)
    n_orders = len(o["region"])
    fmin = min([1.0] + [s.transit_multiplier for s in sc.weather.states]
               + [e.transit_multiplier for e in sc.weather.events])

    # groups: region, cold, service level, creation bucket
    bucket = np.floor(o["created"] / bucket_h).astype(np.int64)
    key = pd.DataFrame({"r": o["region"], "k": o["cold"].astype(np.int64), "s": o["service"], "b": bucket,
                        "lines": o["lines"], "created": o["created"], "promised": o["promised"]})
    g = key.groupby(["r", "k", "s", "b"], sort=True).agg(n=("lines", "size"), lines=("lines", "sum"),
                                                          created=("created", "min"), promised=("promised", "max"))
    g = g.reset_index()
    G = len(g)
    gr, gk = g["r"].to_numpy(), g["k"].to_numpy().astype(bool)
    gn, glines = g["n"].to_numpy(dtype=float), g["lines"].to_numpy(dtype=float)
    mean_lines = glines / np.maximum(gn, 1.0)
    gcreated, gpromised = g["created"].to_numpy(), g["promised"].to_numpy()

    lp = _LP()
    serve_rows = lp.rows("eq", gn)  # every order once: on time, late or lost
    C, W = len(net.carriers), net.n_warehouses
    parts: dict[str, list[np.ndarray]] = {"cost": [], "co2": [], "late": [], "lost": []}
    cols_of: dict[str, list[np.ndarray]] = {"cost": [], "co2": [], "late": [], "lost": []}

    def note(cols: np.ndarray, cost: np.ndarray, co2: np.ndarray, late: float, lost: float) -> None:
        for name, v in (("cost", cost), ("co2", co2), ("late", np.full(len(cols), late)),
                        ("lost", np.full(len(cols), lost))):
            parts[name].append(np.asarray(v, dtype=float))
            cols_of[name].append(cols)

    edges = np.arange(0.0, end + bucket_h, bucket_h)
    edges[-1] = max(edges[-1], end)
    n_slots = len(edges) - 1
    pick = {"u": [[] for _ in range(W)], "coef": [[] for _ in range(W)], "a": [[] for _ in range(W)],
            "b": [[] for _ in range(W)]}
    late_cost = np.full(G, np.inf)
    late_co2 = np.zeros(G)
    for w in range(W):
        wh = sc.warehouses[w]
        proc = mean_lines / wh.pick.lines_per_agv_h + wh.pack.time_h  # mean pick + pack hours
        for c in range(C):
            if not net.serves[c, w].any():
                continue
            times, amb_cap, cold_cap = _departures(sc, c, w, end)
            for cold in (False, True):
                m = (gk == cold) & net.serves[c, w, gr]
                if cold:
                    m &= bool(net.cold_capable[w])
                idx = np.flatnonzero(m)
                if not len(idx):
                    continue
                cost = np.asarray(shipment_cost(net.costs, c, w, gr[idx], int(cold), mean_lines[idx]), dtype=float)
                co2 = net.lane_co2_kg[c, w, gr[idx]]
                per = cost + w_.co2_price_cny_per_kg * co2
                better = per < late_cost[idx] + w_.co2_price_cny_per_kg * late_co2[idx]
                late_cost[idx[better]], late_co2[idx[better]] = cost[better], co2[better]
                cap = cold_cap if cold else amb_cap
                if not len(times) or cap.sum() <= 0:
                    continue
                a = np.searchsorted(times, gcreated[idx] + proc[idx], side="left")
                latest = gpromised[idx] - net.transit_mean_h[c, w, gr[idx]] * fmin
                b = np.searchsorted(times, latest, side="right") - 1
                ok = (a <= b) & (a < len(times))
                if not ok.any():
                    continue
                idx, a, b, cost, co2 = idx[ok], a[ok], b[ok], cost[ok], co2[ok]
                u = lp.columns(cost + w_.co2_price_cny_per_kg * co2)
                note(u, cost, co2, 0.0, 0.0)
                lp.put("eq", serve_rows[idx], u, 1.0)
                _release_deadline_chain(lp, u, np.ones(len(u)), a, b, cap)
                pick["u"][w].append(u)
                pick["coef"][w].append(mean_lines[idx])
                pick["a"][w].append(np.minimum(np.floor(gcreated[idx] / bucket_h).astype(np.int64), n_slots - 1))
                pick["b"][w].append(np.minimum(np.floor(times[b] / bucket_h).astype(np.int64), n_slots - 1))
    for w in range(W):
        if pick["u"][w]:
            cap = _pick_lines(sc, w, edges)
            _release_deadline_chain(lp, *(np.concatenate(pick[k][w]) for k in ("u", "coef", "a", "b")), cap)
    # late: the cheapest lane, no capacity (a late parcel may wait to the end)
    has = np.isfinite(late_cost)
    hidx = np.flatnonzero(has)
    v = lp.columns(late_cost[hidx] + w_.co2_price_cny_per_kg * late_co2[hidx] + w_.late_penalty_cny)
    note(v, late_cost[hidx], late_co2[hidx], 1.0, 0.0)
    lp.put("eq", serve_rows[hidx], v, 1.0)
    z = lp.columns(np.full(G, w_.lost_penalty_cny))
    note(z, np.zeros(G), np.zeros(G), 0.0, 1.0)
    lp.put("eq", serve_rows, z, 1.0)

    c_vec, A_ub, b_ub, A_eq, b_eq = lp.matrices()
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = linprog(c_vec, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    solve_s = time.perf_counter() - t1
    d = max(n_orders, 1)
    if res.status != 0 or res.x is None:
        raise RuntimeError(f"the bound's LP was not solved: HiGHS status {res.status}: {res.message}")
    x = res.x
    tot = {k: float(sum(np.dot(p, x[cc]) for p, cc in zip(parts[k], cols_of[k]))) for k in parts}
    nnz = sum(m.nnz for m in (A_ub, A_eq) if m is not None)
    return BoundResult(
        objective_per_order=float(res.fun) / d, cost_per_order=tot["cost"] / d, co2_per_order_kg=tot["co2"] / d,
        late_rate=tot["late"] / d, lost_rate=tot["lost"] / d, orders=int(n_orders), groups=int(G),
        variables=int(lp.n), constraints=int(lp.n_eq + lp.n_ub), nonzeros=int(nnz), status=int(res.status),
        message=str(res.message), solve_s=solve_s, build_s=build_s, bucket_h=float(bucket_h),
        weights=asdict(w_))



# --------------------------------------------------------------------------- run directories
def _sha256(path: Any) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bound_run_dir(run_dir: Any, weights: ObjectiveWeights | None = None, bucket_h: float = 1.0,
                  force: bool = False) -> dict[str, Any]:
    """:func:`hindsight_bound` of the run in ``run_dir`` (``scenario.json`` and
    ``orders.parquet`` of ``twin run``; of a replicated run, its first replication's records),
    beside the run's :func:`realised_objective`; written to ``run_dir/bound.json``.

    An existing ``bound.json`` of other inputs (other records, scenario, weights or buckets) is
    not overwritten unless ``force``; the same inputs give the same file.

    Raises:
        FileNotFoundError: ``run_dir`` is not a run directory (the message says what is missing).
        FileExistsError: ``bound.json`` holds the bound of other inputs and ``force`` is False.
    """
    import json
    from pathlib import Path

    from twin.scenario.loader import validate_scenario

    d = Path(run_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"{str(d)!r} is not a run directory: no such directory")
    for f in ("scenario.json", "orders.parquet"):
        if not (d / f).is_file():
            raise FileNotFoundError(f"{str(d)!r} is not a run directory: no {f} in it (write one with `twin run`)")
    w = weights or ObjectiveWeights()
    inputs = {"orders_sha256": _sha256(d / "orders.parquet"), "scenario_sha256": _sha256(d / "scenario.json"),
              "bucket_h": float(bucket_h), "weights": asdict(w)}
    out = d / "bound.json"
    if out.exists() and not force:
        try:
            old = json.loads(out.read_text(encoding="utf-8")).get("inputs")
        except (OSError, ValueError, AttributeError):
            old = None
        if old != inputs:
            raise FileExistsError(f"{str(out)!r} holds the bound of other inputs (records, scenario, weights or "
                                  "bucket_h differ); add --force to overwrite it")
    try:
        sc = validate_scenario(json.loads((d / "scenario.json").read_text(encoding="utf-8")), str(d / "scenario.json"))
    except ValueError as exc:
        raise ValueError(f"{str(d / 'scenario.json')!r} cannot be read: {exc}") from exc
    try:
        orders = pd.read_parquet(d / "orders.parquet")
    except Exception as exc:  # pyarrow's errors: a damaged or foreign file
        raise ValueError(f"{str(d / 'orders.parquet')!r} cannot be read: {exc}") from exc
    b = hindsight_bound(sc, orders, weights=w, bucket_h=bucket_h)
    real = realised_objective(orders, w)
    gap = (real["objective_per_order"] - b.objective_per_order) / b.objective_per_order \
        if b.objective_per_order > 0 else math.nan
    doc = {"scenario": sc.name, "inputs": inputs, "bound": b.to_dict(), "realised": real,
           "gap": gap if math.isfinite(gap) else None}
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    partial = d / "bound.json.partial"
    partial.write_text(text, encoding="utf-8")
    partial.replace(out)
    return doc


def format_bound(doc: dict[str, Any]) -> str:
    """A terminal table of :func:`bound_run_dir`'s result: realised vs bound per order, the gap."""
    b, r = doc["bound"], doc["realised"]
    rows = [("objective per order", f"{r['objective_per_order']:.2f} CNY", f"{b['objective_per_order']:.2f} CNY",
             "n/a" if doc["gap"] is None else f"{doc['gap']:+.1%}"),
            ("  cost per order", f"{r['cost_per_order']:.2f} CNY", f"{b['cost_per_order']:.2f} CNY", ""),
            ("  CO2 per order", f"{r['co2_per_order_kg']:.3f} kg", f"{b['co2_per_order_kg']:.3f} kg", ""),
            ("  late rate", f"{r['late_rate']:.1%}", f"{b['late_rate']:.1%}", ""),
            ("  lost rate", f"{r['lost_rate']:.1%}", f"{b['lost_rate']:.1%}", "")]
    head = ("", "realised", "bound", "gap")
    widths = [max(len(x[i]) for x in (head, *rows)) for i in range(4)]
    lines = ["  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)).rstrip()
             for row in (head, *rows)]
    lines.append(f"LP: {b['orders']:,} orders in {b['groups']:,} groups; {b['variables']:,} variables, "
                 f"{b['constraints']:,} constraints, {b['nonzeros']:,} nonzeros; HiGHS {b['solve_s']:.2f} s "
                 f"({b['message']})")
    lines.append("the bound's parts are its optimum's; only the objective is a bound (on expected transit times)")
    return "\n".join(lines)
