"""Whether a peak binds (issue 9): saturated pick hours, full linehaul departures, parcels rolled to
a later departure, split orders, hot-SKU stockouts, express on-time rate, and the objective.

Every measure reads a finished run (:class:`twin.results.runs.SimulationResult`: its records, time
series and scenario) except the stockouts, which need the per-SKU stock the records do not keep:
:func:`watch_stock` steps a model itself and reads ``State.inventory`` after every tick.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from twin.policies import RoutingPolicy
from twin.results.kpis import order_table
from twin.results.runs import SimulationResult
from twin.scenario.loader import load_scenario
from twin.scenario.schema import CarrierCapacityLoss, Scenario, WarehouseOutage
from twin.sim.model import FulfillmentModel
from twin.world.costs import ObjectiveWeights

__all__ = ["DEPARTURE_COLUMNS", "StockWatch", "binding", "departures", "express_on_time_rate",
           "full_departure_share", "objective", "pack_end", "rolled", "saturated_hours", "split_rate",
           "watch_stock"]

Window = tuple[float, float]


def _in(t: np.ndarray, window: Window | None) -> np.ndarray:
    if window is None:
        return np.ones(np.shape(t), dtype=bool)
    return (t >= window[0]) & (t < window[1])


def _codes(col: pd.Series, names: list[str]) -> np.ndarray:
    """Index of each row's name in ``names`` (-1: none), on a categorical's codes when it is one."""
    if isinstance(col.dtype, pd.CategoricalDtype) and list(col.cat.categories) == list(names):
        return col.cat.codes.to_numpy().astype(np.int64)
    return pd.Categorical(col, categories=names).codes.astype(np.int64)


# --------------------------------------------------------------------------- pick capacity
def saturated_hours(result: SimulationResult, threshold: float = 0.95, window: Window | None = None) -> dict[str, float]:
    """Per warehouse: hours of ticks whose pick utilisation (the time series'
    ``utilization[<warehouse>]``, busy over available pick-server hours in the tick) is at least
    ``threshold``. A tick counts by its length (the last may be shorter than ``tick_h``) and by
    its end time in ``window`` ``[t0, t1)`` if given. A tick with no pick capacity (an outage:
    utilisation NaN) never counts."""
    ts = result.timeseries
    end = ts["time_h"].to_numpy(dtype=float)
    dt = np.diff(np.r_[0.0, end])
    keep = _in(end - 1e-9, window)
    out = {}
    for w in result.scenario.warehouses:
        u = ts[f"utilization[{w.name}]"].to_numpy(dtype=float)
        out[w.name] = float(dt[keep & (u >= threshold)].sum())
    return out


# --------------------------------------------------------------------------- linehaul
def _capacity_mult(sc: Scenario, c: int, t: np.ndarray) -> np.ndarray:
    """Carrier ``c``'s departure-capacity multiplier at times ``t``, as
    :class:`agents.disruption.DisruptionAgent` sets it: 1, times ``1 - fraction`` of each of its
    capacity losses whose window ``[start_h, end_h)`` holds ``t``, in the scenario's order."""
    name = sc.carriers[c].name
    m = np.ones(len(t))
    for d in sc.disruptions:
        if isinstance(d, CarrierCapacityLoss) and d.carrier == name:
            active = (t >= d.start_h) & (t < d.end_h)
            m = np.where(active, m * (1.0 - d.fraction), m)
    return m


def _closed(sc: Scenario, warehouse: str, t: np.ndarray) -> np.ndarray:
    closed = np.zeros(len(t), dtype=bool)
    for d in sc.disruptions:
        if isinstance(d, WarehouseOutage) and d.warehouse == warehouse:
            closed |= (t >= d.start_h) & (t < d.end_h)
    return closed


def _departure_index(sc: Scenario, carrier: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The index k of each time on its carrier's schedule ``first + k * interval`` (the nearest)."""
    first = np.array([c.first_departure_h for c in sc.carriers])
    gap = np.array([c.departure_interval_h for c in sc.carriers])
    return np.rint((times - first[carrier]) / gap[carrier]).astype(np.int64)


#: The columns of :func:`departures`.
DEPARTURE_COLUMNS = ["carrier", "warehouse", "time_h", "ambient", "reefer", "ambient_capacity", "reefer_capacity",
                     "full"]


def departures(result: SimulationResult, window: Window | None = None) -> pd.DataFrame:
    """One row per linehaul departure in ``window`` ``[t0, t1)`` (the whole run if None): every
    scheduled time ``first_departure_h + k * departure_interval_h`` before the run's end, at every
    warehouse the carrier serves, with the parcels it took (``ambient``, ``reefer``: the
    shipments of that carrier and warehouse shipped at that time) and its room then (capacity
    and reefer capacity times the carrier's capacity multiplier in force, rounded down as the
    engines do). A departure at a warehouse that is down (an outage) does not run and is not
    listed. ``full``: its ambient load reached a non-zero ambient capacity, or its reefer load a
    non-zero reefer capacity."""
    sc = result.scenario
    end = sc.horizon_h + sc.drain_h
    wnames = [w.name for w in sc.warehouses]
    cnames = [c.name for c in sc.carriers]
    o = result.orders
    shipped = o["shipped_at"].to_numpy(dtype=float)
    ok = ~np.isnan(shipped)
    car = _codes(o["carrier"], cnames)[ok]
    wh = _codes(o["warehouse"], wnames)[ok]
    cold = o["cold_chain"].to_numpy(dtype=bool)[ok]
    k = _departure_index(sc, car, shipped[ok])
    frames = []
    for c, carrier in enumerate(sc.carriers):
        n = max(0, math.ceil((end - carrier.first_departure_h) / carrier.departure_interval_h - 1e-9))
        t = carrier.first_departure_h + carrier.departure_interval_h * np.arange(n)
        t = t[t < end - 1e-9]
        mult = _capacity_mult(sc, c, t)
        cap = (carrier.capacity * mult).astype(np.int64)
        reefer_cap = (carrier.reefer_capacity * mult).astype(np.int64)
        served = wnames if carrier.warehouses == "all" else [w for w in wnames if w in carrier.warehouses]
        mine = car == c
        for name in served:
            w = wnames.index(name)
            sel = mine & (wh == w)
            amb = np.bincount(k[sel & ~cold], minlength=len(t))[: len(t)]
            ref = np.bincount(k[sel & cold], minlength=len(t))[: len(t)]
            keep = _in(t, window) & ~_closed(sc, name, t)
            full = ((cap > 0) & (amb >= cap)) | ((reefer_cap > 0) & (ref >= reefer_cap))
            frames.append(pd.DataFrame({
                "carrier": carrier.name, "warehouse": name, "time_h": t[keep], "ambient": amb[keep],
                "reefer": ref[keep], "ambient_capacity": cap[keep], "reefer_capacity": reefer_cap[keep],
                "full": full[keep]}))
    if not frames:
        return pd.DataFrame({c: [] for c in DEPARTURE_COLUMNS})
    return pd.concat(frames, ignore_index=True)[DEPARTURE_COLUMNS]


def full_departure_share(result: SimulationResult, window: Window | None = None) -> float:
    """The share of :func:`departures` in ``window`` that left full (NaN if none ran)."""
    d = departures(result, window)
    return float(d["full"].mean()) if len(d) else math.nan


def pack_end(result: SimulationResult) -> np.ndarray:
    """Per shipment (row of ``result.orders``): when it left packing and joined its dock (NaN if
    never picked).

    Packing is a FIFO queue with ``pack.stations`` servers in the order shipments leave picking.
    With deterministic pack times (every built-in scenario) the queue is replayed exactly from the
    records' ``pick_end``; with random pack times, whose draws the records do not keep, it is
    ``pick_end`` plus the mean pack time (a parcel that packed slowly may then look rolled).
    """
    sc = result.scenario
    o = result.orders
    pe = o["pick_end"].to_numpy(dtype=float)
    out = np.full(len(pe), np.nan)
    wh = _codes(o["warehouse"], [w.name for w in sc.warehouses])
    for w, cfg in enumerate(sc.warehouses):
        rows = np.flatnonzero((wh == w) & ~np.isnan(pe))
        d, c = cfg.pack.time_h, cfg.pack.stations
        if d <= 0 or cfg.pack.distribution != "deterministic":
            out[rows] = pe[rows] + d
            continue
        rows = rows[np.argsort(pe[rows], kind="stable")]
        a = pe[rows]
        if len(a) <= c or bool((a[c:] - a[:-c] >= d).all()):  # never more than c in packing: no wait
            out[rows] = a + d
            continue
        free = [0.0] * min(c, len(a))  # the times the servers come free
        ends = np.empty(len(a))
        for i, t in enumerate(a.tolist()):
            start = max(t, heapq.heappop(free))
            ends[i] = start + d
            heapq.heappush(free, ends[i])
        out[rows] = ends
    return out


def rolled(result: SimulationResult) -> np.ndarray:
    """Per shipment (row of ``result.orders``): True if it shipped on a later departure of its
    carrier than the first one at or after it was packed (:func:`pack_end`): it waited for room
    (or for its region's lanes, or its warehouse, to open again)."""
    sc = result.scenario
    o = result.orders
    shipped = o["shipped_at"].to_numpy(dtype=float)
    ready = pack_end(result)
    ok = ~np.isnan(shipped) & ~np.isnan(ready)
    car = _codes(o["carrier"], [c.name for c in sc.carriers])[ok]
    first = np.array([c.first_departure_h for c in sc.carriers])[car]
    gap = np.array([c.departure_interval_h for c in sc.carriers])[car]
    k_ready = np.maximum(np.ceil((ready[ok] - first) / gap - 1e-9), 0).astype(np.int64)
    out = np.zeros(len(shipped), dtype=bool)
    out[ok] = _departure_index(sc, car, shipped[ok]) > k_ready
    return out


# --------------------------------------------------------------------------- orders
def split_rate(result: SimulationResult) -> float:
    """The share of served orders (at least one shipment) with more than one shipment (one per
    warehouse): the ``split_rate`` KPI."""
    t = order_table(result.orders)
    served = t["shipments"].to_numpy() > 0
    return float((t["shipments"].to_numpy()[served] > 1).mean()) if served.any() else math.nan


def express_on_time_rate(result: SimulationResult, level: str = "express") -> float:
    """The share of the orders of service level ``level`` that were delivered by their promise."""
    levels = list(result.scenario.demand.service_levels)
    if level not in levels:
        raise ValueError(f"level {level!r} is not a service level of {result.scenario.name}; allowed: "
                         f"{', '.join(levels)}")
    t = order_table(result.orders)
    o = result.orders
    first = np.r_[True, o["order_id"].to_numpy()[1:] != o["order_id"].to_numpy()[:-1]]
    mine = _codes(o["service_level"], levels)[first] == levels.index(level)
    return float(t["on_time"].to_numpy()[mine].mean()) if mine.any() else math.nan


def objective(result: SimulationResult, weights: ObjectiveWeights | None = None) -> float:
    """The objective of a run per created order, CNY (lower is better): the one definition,
    :func:`twin.world.costs.objective_cny` (shipment cost + late penalty x late orders + lost
    penalty x lost orders + CO2 price x CO2), over the run's records, as
    :func:`twin.results.bound.realised_objective` counts it (an order is late when it was
    neither delivered by its promise nor lost: delivered late, or still in flight at the end)."""
    from twin.results.bound import realised_objective

    if len(result.orders) == 0:
        return math.nan
    return realised_objective(result.orders, weights)["objective_per_order"]


# --------------------------------------------------------------------------- stock
@dataclass
class StockWatch:
    """Per-SKU stock of one run, read after every tick: ``first_out_h[w, s]`` the end of the first
    tick after which warehouse ``w`` had no unreserved unit of SKU ``s`` left (NaN: never),
    ``hours_out[w, s]`` the hours of the ticks that began so (out from one tick's end to the
    next tick end that finds stock again). Only SKUs a warehouse starts with
    count (``initial[w, s] > 0``). ``rank[s]``: the SKU's popularity rank (0: most popular)."""

    warehouses: list[str]
    initial: np.ndarray
    rank: np.ndarray
    first_out_h: np.ndarray
    hours_out: np.ndarray

    def table(self, top: int | None = None) -> pd.DataFrame:
        """One row per (warehouse, SKU) that ran out, by time: warehouse, sku, rank, first_out_h,
        hours_out; only the ``top`` most popular SKUs if given."""
        w, s = np.nonzero(~np.isnan(self.first_out_h))
        if top is not None:
            keep = self.rank[s] < top
            w, s = w[keep], s[keep]
        df = pd.DataFrame({"warehouse": [self.warehouses[i] for i in w], "sku": s, "rank": self.rank[s],
                           "first_out_h": self.first_out_h[w, s], "hours_out": self.hours_out[w, s]})
        return df.sort_values(["first_out_h", "warehouse", "rank"], kind="stable", ignore_index=True)

    def count(self, top: int | None = None) -> int:
        """(warehouse, SKU) pairs that ran out (of the ``top`` most popular SKUs if given)."""
        return len(self.table(top))

    def sites(self, top: int | None = None) -> list[str]:
        """The warehouses where some SKU (of the ``top`` most popular) ran out."""
        return sorted(set(self.table(top)["warehouse"]), key=self.warehouses.index)


def watch_stock(scenario: Scenario | str, seed: int | None = None, engine: str = "kernel",
                overrides: Iterable[str] | Mapping[str, Any] | None = None,
                routing: RoutingPolicy | None = None) -> StockWatch:
    """Run ``scenario`` tick by tick (``FulfillmentModel.step``) and watch ``State.inventory``
    after each tick: which (warehouse, SKU) pairs run out, when, and for how long. With the same
    seed, engine, overrides and routing it is the run :func:`twin.simulate` makes."""
    sc = load_scenario(scenario, overrides)
    model = FulfillmentModel(sc, seed=sc.seed if seed is None else seed, engine=engine, routing=routing)
    initial = model.net.initial_stock.copy()
    carried = initial > 0
    first = np.full(initial.shape, np.nan)
    hours = np.zeros(initial.shape)
    last = 0.0
    out = np.zeros(initial.shape, dtype=bool)
    while model.running:
        model.step()
        now = model.time_h
        hours[out] += now - last  # out at the last tick's end: out through this tick
        out = carried & (model.state.inventory <= 0)
        first[out & np.isnan(first)] = now
        last = now
    rank = np.empty(len(model.net.sku_p), dtype=np.int64)
    rank[np.argsort(-model.net.sku_p, kind="stable")] = np.arange(len(rank))
    return StockWatch(list(model.net.warehouses), initial, rank, first, hours)


# --------------------------------------------------------------------------- all of it
def binding(result: SimulationResult, window: Window | None = None, threshold: float = 0.95,
            stock: StockWatch | None = None, top: int = 20) -> dict[str, Any]:
    """The measures of a peak that binds, as one dict: ``saturated_hours`` (per warehouse, the
    whole run), ``warehouses_saturated_6h`` (how many spent >= 6 h at ``threshold``),
    ``full_departure_share`` and ``departures`` in ``window``, ``rolled`` parcels (the run),
    ``split_rate``, ``express_on_time_rate``, ``on_time_rate``, ``cost_per_order``,
    ``objective_per_order``, and with ``stock`` the ``hot_stockouts`` ((warehouse, SKU) pairs of the
    ``top`` SKUs that ran out) and ``stockout_sites``."""
    sat = saturated_hours(result, threshold)
    dep = departures(result, window)
    out: dict[str, Any] = {
        "saturated_hours": sat,
        "warehouses_saturated_6h": sum(h >= 6.0 for h in sat.values()),
        "departures": len(dep),
        "full_departure_share": float(dep["full"].mean()) if len(dep) else math.nan,
        "rolled": int(rolled(result).sum()),
        "split_rate": split_rate(result),
        "express_on_time_rate": express_on_time_rate(result) if "express" in result.scenario.demand.service_levels
        else math.nan,
        "on_time_rate": float(result.kpis["on_time_rate"]),
        "cost_per_order": float(result.kpis["cost_per_order"]),
        "objective_per_order": objective(result),
    }
    if stock is not None:
        out["hot_stockouts"] = stock.count(top)
        out["stockout_sites"] = stock.sites(top)
    return out
