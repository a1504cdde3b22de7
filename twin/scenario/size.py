"""How big a run is before it starts, and whether it fits: orders, events, ticks, work, memory.

:func:`estimate_run` reads only the scenario (no network is built, no engine is started) and
gives a :class:`RunSize`; :meth:`RunSize.check` raises :class:`~twin.errors.ScenarioError` when
the run cannot fit :class:`Limits`, one line per limit with the figures, the field that drives
them and what to change. :class:`twin.sim.model.FulfillmentModel` checks it first thing, so
every engine refuses the same runs before any work; ``twin validate`` prints it.

The figures are upper estimates:

* **orders**: the demand formula of :class:`twin.world.demand.DemandRate` at the middle of each
  tick (as ``DemandAgent.expected_orders``), times the demand surges in force (weighted by
  region) and the largest weather demand multiplier a region can reach;
* **events** (steps of work): each order's arrival and up to ``min(warehouses, lines_per_order)`` shipments
  of about five events each (pick, pack, dock, departure, delivery); the linehaul departures,
  ``warehouses x (horizon_h + drain_h - first_departure_h) / departure_interval_h`` per
  carrier; the AGV breakdowns and repairs, ``agvs x 2 (horizon_h + drain_h) / (mtbf_h +
  mttr_h)`` per warehouse; backorder retries (every order retried until it gives up); ticks,
  weather updates, stock reviews, reallocations (warehouses^2 pairs each) and disruptions;
* **cells**: array elements touched by the vectorised steps (each stock review touches
  warehouses x SKUs, a reallocation warehouses^2 x SKUs, a weather update regions x states, a
  tick one time-series row), the AGV schedules' draws and each breakdown's look at every
  warehouse's stations;
* **memory**: the records (:data:`BYTES_PER_ORDER` per order, measured on the kernel with its
  orders table and KPIs; the ``simpy`` engine's Python records take about 1.1 kB an order),
  stock and lane tables, AGV schedules, the time series and the kernel's hourly delivery
  calendar (which spans the latest delivery: the end plus a 1-in-a-billion transit draw).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from scenarios import expand_regions
from twin.errors import ScenarioError
from twin.scenario.distributions import dist_spec
from twin.scenario.schema import DemandSurge, Scenario

__all__ = ["RunSize", "Limits", "estimate_run", "default_limits", "run_limits", "machine_memory_bytes",
           "BYTES_PER_ORDER"]

#: Memory a run holds per order: the engine's records, the orders table and the KPIs' temporaries
#: (the kernel measures ~160 B at 10M orders, ~300 B at 80k).
BYTES_PER_ORDER = 400
#: ... and per shipment beyond an order's first (a split order).
BYTES_PER_SHIPMENT = 120
#: Events of one shipment: pick start and end, pack, the dock, the departure, the delivery.
EVENTS_PER_SHIPMENT = 5
#: A time-series value: a Python float in the DataCollector's table, then in the DataFrame.
BYTES_PER_SERIES_VALUE = 40
#: The kernel's delivery calendar: 24 B per hour up to the latest delivery, grown by doubling.
BYTES_PER_CALENDAR_HOUR = 48
#: ``[warehouse, SKU]`` int64 tables alive at once (stock, on order, initial, the review's).
STOCK_TABLES = 8
#: ``[carrier, warehouse, region]`` float tables (lanes, costs, CO2, scores, the kernel's copies).
LANE_TABLES = 12
#: No lane is longer: twin.world.network.ROAD_FACTOR (1.25) x half the Earth's circumference.
MAX_ROAD_KM = 1.25 * math.pi * 6371.0
#: A 1-in-a-billion draw: the normal quantile, and the exponential's.
_TAIL_Z = 6.0
_TAIL_EXP = math.log(1e9)
#: The share of the machine's memory a run may plan to use.
MEMORY_SHARE = 0.6


@lru_cache(maxsize=1)
def machine_memory_bytes() -> int:
    """Physical memory of this machine (or the container's limit, when lower); 8 GiB if unknown."""
    total = 0
    try:
        total = int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit, encoding="ascii") as f:
                v = int(f.read().strip())
        except (OSError, ValueError):  # absent, or "max"
            continue
        if v > 0:
            total = min(total, v) if total else v
    return total or 8 * 2**30


@dataclass(frozen=True)
class Limits:
    """What one run may need. ``memory_bytes`` None: :data:`MEMORY_SHARE` of the machine's."""

    max_orders: float = 50_000_000
    max_events: float = 1e9
    max_cells: float = 1e11
    max_ticks: float = 1_000_000
    max_delivery_h: float = 1e7
    memory_bytes: float | None = None

    @property
    def memory(self) -> float:
        return self.memory_bytes if self.memory_bytes is not None else MEMORY_SHARE * machine_memory_bytes()


_LIMITS: contextvars.ContextVar[Limits | None] = contextvars.ContextVar("twin_run_limits", default=None)


def default_limits() -> Limits:
    """The limits runs are checked against now (see :func:`run_limits`)."""
    return _LIMITS.get() or Limits()


@contextlib.contextmanager
def run_limits(**changes: float | None) -> Iterator[Limits]:
    """Within the block, check runs against other limits: ``with run_limits(max_events=1e6): ...``
    (tests, and a machine shared with other work)."""
    token = _LIMITS.set(replace(default_limits(), **changes))
    try:
        yield default_limits()
    finally:
        _LIMITS.reset(token)


def _num(x: float) -> str:
    x = float(x)
    if x >= 1e12:
        return f"{x:.3g}"
    if x >= 1e9:
        return f"{x / 1e9:.3g} billion"
    if x >= 1e6:
        return f"{x / 1e6:.3g} million"
    return f"{x:,.0f}"


def _bytes(b: float) -> str:
    b = float(b)
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("kiB", 2**10)):
        if b >= size:
            return f"{b / size:.3g} {unit}" if b < 2**60 else f"{b:.2e} B"
    return f"{b:.0f} B"


def _nice_scale(f: float) -> str:
    """A --scale factor at most ``f``, with one significant digit."""
    if not f > 0:
        return "0.001"
    e = math.floor(math.log10(f))
    return f"{math.floor(f / 10**e) * 10**e:.{max(0, -e)}f}"


@dataclass(frozen=True)
class RunSize:
    """The estimated size of one run (see the module's text for what each figure counts).

    ``events``, ``cells`` and ``memory`` are by source; ``drivers`` names, for each source,
    the scenario field that drives it and what to change."""

    scenario: str
    end_h: float
    ticks: int
    orders: float
    orders_max: float
    shipments_max: float
    events: dict[str, float]
    cells: dict[str, float]
    memory: dict[str, float]
    latest_delivery_h: float
    drivers: dict[str, tuple[str, str]] = field(default_factory=dict)
    delivery_note: tuple[str, str] = ("", "")

    @property
    def total_events(self) -> float:
        return float(sum(self.events.values()))

    @property
    def total_cells(self) -> float:
        return float(sum(self.cells.values()))

    @property
    def total_memory(self) -> float:
        return float(sum(self.memory.values()))

    def _top(self, parts: dict[str, float], fmt) -> tuple[str, str]:  # noqa: ANN001
        ranked = sorted(((v, k) for k, v in parts.items() if v > 0), reverse=True)
        text = ", ".join(f"{k} {fmt(v)}" for v, k in ranked[:3])
        return (ranked[0][1] if ranked else ""), text

    def _driver(self, source: str, scale: str) -> tuple[str, str]:
        path, advice = self.drivers.get(source, ("", ""))
        return path or "run size", advice.replace("{scale}", scale)

    def problems(self, limits: Limits | None = None) -> list[str]:
        """One line per limit the run breaks (empty if it fits)."""
        lim = limits or default_limits()
        out: list[str] = []
        # the --scale that fits the orders, their events and their records (what scaling shrinks)
        fits = [lim.max_orders / self.orders_max] if self.orders_max > 0 else []
        flow = self.events.get("orders", 0.0)
        if flow > 0 and self.total_events > lim.max_events:
            fits.append((lim.max_events - (self.total_events - flow)) / flow)
        rec = self.memory.get("records", 0.0)
        if rec > 0 and self.total_memory > lim.memory:
            fits.append((lim.memory - (self.total_memory - rec)) / rec)
        scale = _nice_scale(0.9 * min(fits)) if fits else "0.1"
        if self.orders_max > lim.max_orders:
            path, advice = self._driver("orders", scale)
            expected = (f" ({_num(self.orders)} expected before weather and surges)"
                        if _num(self.orders) != _num(self.orders_max) else "")
            out.append(f"{path}: the run would create up to {_num(self.orders_max)} orders{expected}; at most "
                       f"{_num(lim.max_orders)} fit one run: {advice}")
        if self.ticks > lim.max_ticks:
            path, advice = self._driver("ticks", scale)
            out.append(f"{path}: the run would have {_num(self.ticks)} ticks (horizon_h + drain_h = {self.end_h:g} h); "
                       f"at most {_num(lim.max_ticks)}: {advice}")
        if self.total_events > lim.max_events:
            top, text = self._top(self.events, _num)
            path, advice = self._driver(top, scale)
            out.append(f"{path}: the run would process ~{_num(self.total_events)} events ({text}); at most "
                       f"{_num(lim.max_events)}: {advice}")
        if self.total_cells > lim.max_cells:
            top, text = self._top(self.cells, _num)
            path, advice = self._driver(top, scale)
            out.append(f"{path}: the run's array steps would touch ~{_num(self.total_cells)} cells ({text}); at most "
                       f"{_num(lim.max_cells)}: {advice}")
        if self.latest_delivery_h > lim.max_delivery_h:
            path, advice = self.delivery_note
            out.append(f"{path}: a parcel may be delivered as late as t = {_num(self.latest_delivery_h)} h "
                       f"({advice}); the kernel's hourly delivery calendar spans at most {_num(lim.max_delivery_h)} h: "
                       "raise speed_kmh, lower base_h or the weather transit multipliers")
        if self.total_memory > lim.memory:
            top, text = self._top(self.memory, _bytes)
            path, advice = self._driver(top, scale)
            budget = (f"{MEMORY_SHARE:.0%} of this machine's {_bytes(machine_memory_bytes())}"
                      if lim.memory_bytes is None else "the limit set")
            out.append(f"{path}: the run would need ~{_bytes(self.total_memory)} of memory ({text}); the budget is "
                       f"{_bytes(lim.memory)} ({budget}): {advice}")
        return out

    def check(self, limits: Limits | None = None) -> RunSize:
        """Raise :class:`ScenarioError` if the run does not fit ``limits`` (default:
        :func:`default_limits`); return the estimate otherwise."""
        problems = self.problems(limits)
        if problems:
            raise ScenarioError(problems, self.scenario)
        return self

    def __str__(self) -> str:
        lim = default_limits()
        more = f" (up to {_num(self.orders_max)} with weather and surges)" if self.orders_max > 1.005 * self.orders else ""
        return (f"run size: ~{_num(self.orders)} orders{more}, ~{_num(self.total_events)} events, "
                f"{_num(self.ticks)} ticks of {self.end_h / max(self.ticks, 1):g} h, ~{_bytes(self.total_memory)} "
                f"of memory (budget {_bytes(lim.memory)})")


def _tail(kind: str, cv: float) -> float:
    """A 1-in-a-billion draw of a mean-1 distribution."""
    spec = dist_spec(kind, cv)
    if spec.code == 0:
        return 1.0
    if spec.kind == "exponential":
        return _TAIL_EXP
    return math.exp(spec.mu + spec.sigma * _TAIL_Z)


def _surge_factor(sc: Scenario, names: list[str], weight: np.ndarray, starts: np.ndarray,
                  ends: np.ndarray) -> np.ndarray:
    """For each tick ``[starts, ends)``: the largest network demand multiplier the surges in
    force during it give (the region-weighted mean of each region's product of multipliers)."""
    surges = [d for d in sc.disruptions if isinstance(d, DemandSurge)]
    out = np.ones(len(starts))
    if not surges:
        return out
    index = {n: i for i, n in enumerate(names)}
    log_m = np.zeros(len(names))
    zeros = np.zeros(len(names), dtype=np.int64)
    changes = sorted([(d.start_h, 1, i) for i, d in enumerate(surges)] + [(d.end_h, -1, i) for i, d in enumerate(surges)])
    for j, (when, sign, i) in enumerate(changes):
        d = surges[i]
        idx = slice(None) if d.regions == "all" else [index[r] for r in d.regions if r in index]
        if d.multiplier > 0:
            log_m[idx] += sign * math.log(d.multiplier)
        else:
            zeros[idx] += sign
        until = changes[j + 1][0] if j + 1 < len(changes) else math.inf
        if until > when:  # the factor over [when, until): the ticks that overlap it
            lo, hi = np.searchsorted(ends, when, "right"), np.searchsorted(starts, until, "left")
            if hi > lo:
                f = float(weight @ np.where(zeros > 0, 0.0, np.exp(log_m)))
                out[lo:hi] = np.maximum(out[lo:hi], f)
    return out


def _weather_max(sc: Scenario, attr: str) -> float:
    """The largest ``attr`` multiplier a region can have: the states the chain can reach from
    its initial state, and the scripted events."""
    w = sc.weather
    names = [s.name for s in w.states]
    seen, todo = set(), [names.index(w.initial)]
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        todo.extend(j for j, p in enumerate(w.transition[i]) if p > 0)
    values = [getattr(w.states[i], attr) for i in seen] + [getattr(e, attr) for e in w.events]
    return max(values)


def estimate_run(sc: Scenario) -> RunSize:
    """The :class:`RunSize` of a validated scenario (cheap: no network is built)."""
    regions = expand_regions(sc.regions)
    names = [r.name for r in regions]
    weight = np.array([r.weight for r in regions], dtype=float)
    weight = weight / weight.sum()
    W, R, C, S = len(sc.warehouses), len(regions), len(sc.carriers), sc.demand.skus.count
    end = sc.horizon_h + sc.drain_h
    ticks = max(1, math.ceil(end / sc.tick_h - 1e-9))
    d = sc.demand

    # orders: the demand formula (twin.world.demand.DemandRate) at each tick's middle, for the
    # part of the tick before the horizon (the model draws a tick's arrivals at that rate)
    starts = np.arange(0.0, sc.horizon_h, sc.tick_h)
    mids = starts + sc.tick_h / 2
    length = np.minimum(starts + sc.tick_h, sc.horizon_h) - starts
    pt = np.array([p[0] for p in d.profile], dtype=float)
    pm = np.array([p[1] for p in d.profile], dtype=float)
    rate = d.base_rate_per_h * np.interp(mids, pt, pm) * (1.0 + d.diurnal_amplitude * np.sin(2 * np.pi * (mids - 6.0) / 24.0))
    orders = float((rate * length).sum())
    surge = _surge_factor(sc, names, weight, starts, starts + length)
    orders_max = float((rate * length * surge).sum()) * _weather_max(sc, "demand_multiplier")
    per_order = min(W, d.lines_per_order) if sc.policy.routing.allow_split else 1.0
    shipments = orders_max * per_order

    events: dict[str, float] = {"orders": orders_max + EVENTS_PER_SHIPMENT * shipments, "ticks": float(ticks)}
    cells: dict[str, float] = {"time series": float(ticks) * (7 + 6 * W), "network": float(C * W * R + W * S)}
    memory: dict[str, float] = {
        "records": orders_max * BYTES_PER_ORDER + (shipments - orders_max) * BYTES_PER_SHIPMENT,
        "stock tables": 8.0 * W * S * STOCK_TABLES + 80.0 * S,
        "lane tables": 8.0 * C * W * R * LANE_TABLES,
        "time series": float(ticks) * (7 + 6 * W) * BYTES_PER_SERIES_VALUE,
    }
    drivers: dict[str, tuple[str, str]] = {
        "orders": ("demand.base_rate_per_h", "lower demand.base_rate_per_h or horizon_h, or run it scaled down "
                   "(--scale {scale})"),
        "records": ("demand.base_rate_per_h", "run it scaled down (--scale {scale}) or shorten horizon_h"),
        "ticks": ("tick_h", "raise tick_h"),
        "time series": ("tick_h", "raise tick_h"),
        "stock tables": ("demand.skus.count", "fewer SKUs (demand.skus.count) or warehouses"),
        "network": ("demand.skus.count", "fewer SKUs, warehouses, regions or carriers"),
        "lane tables": ("carriers", "fewer carriers, warehouses or regions"),
    }

    # linehaul departures: one per interval at each warehouse a carrier serves
    deps = []
    for c in sc.carriers:
        n_wh = W if c.warehouses == "all" else len(set(c.warehouses))
        deps.append(n_wh * max(0.0, math.ceil((end - c.first_departure_h) / c.departure_interval_h)))
    i = int(np.argmax(deps))
    events["departures"] = float(sum(deps))
    drivers["departures"] = (f"carriers[{i}].departure_interval_h",
                             f"raise departure_interval_h (carriers[{i}] departs {_num(deps[i])} times)")

    # AGV breakdowns and repairs: drawn for the whole run when the fleets are built
    agv_events, agv_draws, agv_block = [], [], 0.0
    for w in sc.warehouses:
        p = w.pick
        if p.mtbf_h is None or p.agvs == 0:
            agv_events.append(0.0)
            agv_draws.append(0.0)
            continue
        k = 2 * (math.ceil(end / (p.mtbf_h + p.mttr_h)) + 2)
        agv_events.append(p.agvs * 2.0 * end / (p.mtbf_h + p.mttr_h))
        agv_draws.append(float(p.agvs) * k)
        agv_block = max(agv_block, float(p.agvs) * k)
    i = int(np.argmax(agv_events))
    events["AGV breakdowns"] = float(sum(agv_events))
    cells["AGV schedules"] = float(sum(agv_draws)) + events["AGV breakdowns"] * W  # each re-reads every station
    memory["AGV schedules"] = agv_block * 8 * 3 + events["AGV breakdowns"] * 48
    drivers["AGV breakdowns"] = drivers["AGV schedules"] = (
        f"warehouses[{i}].pick.mtbf_h", f"raise warehouses[{i}].pick.mtbf_h and mttr_h, or use fewer AGVs")

    if d.unfulfillable == "backorder":  # at worst every order is retried until it gives up
        events["backorder retries"] = orders_max * math.floor(min(d.backorder_max_h, end) / d.backorder_retry_h)
        drivers["backorder retries"] = ("demand.backorder_retry_h",
                                        "raise demand.backorder_retry_h or lower backorder_max_h")
    if len(sc.weather.states) > 1:
        n = math.floor(end / sc.weather.update_interval_h)
        events["weather updates"] = float(n)
        cells["weather updates"] = float(n) * R * len(sc.weather.states)
        drivers["weather updates"] = ("weather.update_interval_h", "raise weather.update_interval_h")
    if sc.replenishment.mode != "none":
        n = math.floor(end / sc.replenishment.review_interval_h)
        events["stock reviews"] = float(n)
        cells["stock reviews"] = float(n) * W * S * 6
        drivers["stock reviews"] = ("replenishment.review_interval_h",
                                    "raise replenishment.review_interval_h, or use fewer SKUs")
    if sc.policy.reallocation.name != "none":
        n = math.floor(end / sc.policy.reallocation.interval_h)
        events["reallocations"] = float(n) * W * W  # each looks at every (receiver, sender) pair
        cells["reallocations"] = float(n) * W * W * S * 2
        memory["stock tables"] += 8.0 * W * W * S * 2  # each decision's [from, to, SKU] moves
        drivers["reallocations"] = ("policy.reallocation.interval_h",
                                    "raise policy.reallocation.interval_h, or use fewer SKUs or warehouses")
    events["disruptions"] = 2.0 * len(sc.disruptions) * (1 + W)  # each start and end recomputes the fleets

    # the latest delivery: the end of the run plus a 1-in-a-billion transit draw
    t_mult = _weather_max(sc, "transit_multiplier")
    transit = [(c.transit.base_h + MAX_ROAD_KM / c.transit.speed_kmh) * t_mult * _tail(c.transit.distribution, c.transit.cv)
               for c in sc.carriers]
    i = int(np.argmax(transit))
    c = sc.carriers[i].transit
    latest = end + transit[i]
    memory["delivery calendar"] = latest * BYTES_PER_CALENDAR_HOUR
    drivers["delivery calendar"] = (f"carriers[{i}].transit", "raise its speed_kmh or lower its base_h")
    note = (f"carriers[{i}].transit",
            f"base_h {c.base_h:g} + up to {MAX_ROAD_KM:,.0f} km at speed_kmh {c.speed_kmh:g}, x{t_mult:g} in the "
            f"worst weather, a 1-in-a-billion {c.distribution} draw")
    return RunSize(scenario=sc.name, end_h=end, ticks=ticks, orders=orders, orders_max=orders_max,
                   shipments_max=shipments, events=events, cells=cells, memory=memory, latest_delivery_h=latest,
                   drivers=drivers, delivery_note=note)
