"""The observation of one order to route: the one definition shared by ``twin/OrderRouting-v0``,
the exported-policy runtime in the twin and the routing service on live input.

An observation is ``6 + R + 7W`` floats (``R`` regions, ``W`` warehouses of the network):

- ``time_of_day_sin``, ``time_of_day_cos`` (the hour of day on the unit circle, in [-1, 1]);
  ``horizon_progress`` (time / horizon, clipped to 1);
- the order: ``region[r]`` (one-hot), ``cold_chain`` (0/1), ``lines`` (units / 5, clipped to 1),
  ``promise`` (promised hours / the scenario's longest promise, clipped);
- per warehouse: ``mask`` (the warehouse may take the whole order), ``backlog_hours`` (shipments
  waiting over the shipments/h its AGVs up can pick, / 24 h, clipped; 1 when it has a backlog
  and nothing picks), ``pick_capacity`` (AGVs up / fleet), ``distance`` (km to the order's
  region / 4000), ``lane_cost`` (CNY of the base heuristic's carrier on the lane / 50),
  ``lane_transit`` (that carrier's mean transit hours x the region's weather multiplier / 72),
  ``stock_cover`` (the smallest ratio over the order's lines of units on hand to the
  warehouse's initial units of the SKU, clipped to 1).

:data:`ORDER_FEATURES` lists the groups with their divisors and bounds (the normalisation an
exported package records in its manifest); :func:`order_features` computes a vector from plain
arrays, so the env (reading the twin's State) and the service (reading an OMS request) call the
same code.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from twin.world.network import Network

__all__ = [
    "ORDER_FEATURES",
    "backlog_hours",
    "OrderLanes",
    "feature_schema",
    "order_bounds",
    "order_feature_names",
    "order_features",
    "order_features_batch",
    "order_mask",
    "sku_index",
]

_EPS = 1e-9

#: ``(group, per, raw quantity, divisor)``; ``per`` is ``""`` (one value), ``"region"`` or
#: ``"warehouse"`` (one per region or warehouse, in the network's order). Each value is the raw
#: quantity over the divisor, clipped to [0, 1] ([-1, 1] for the time of day).
ORDER_FEATURES: tuple[tuple[str, str, str, float], ...] = (
    ("time_of_day_sin", "", "sin(2 pi hour_of_day / 24)", 1.0),
    ("time_of_day_cos", "", "cos(2 pi hour_of_day / 24)", 1.0),
    ("horizon_progress", "", "hours since the start / the training horizon", 1.0),
    ("region", "region", "1 for the order's destination region", 1.0),
    ("cold_chain", "", "1 if the order needs the cold chain", 1.0),
    ("lines", "", "units in the order", 5.0),
    ("promise", "", "promised hours / the scenario's longest promise", 1.0),
    ("mask", "warehouse", "1 if the warehouse may take the whole order", 1.0),
    ("backlog_hours", "warehouse", "shipments waiting / shipments per hour the AGVs up pick", 24.0),
    ("pick_capacity", "warehouse", "AGVs up / fleet", 1.0),
    ("distance", "warehouse", "road km to the order's region", 4000.0),
    ("lane_cost", "warehouse", "CNY per parcel of the base heuristic's carrier on the lane", 50.0),
    ("lane_transit", "warehouse", "mean transit hours of that carrier x the region's weather multiplier", 72.0),
    ("stock_cover", "warehouse", "min over the lines of units on hand / initial units of the SKU", 1.0),
)


def order_feature_names(warehouses: list[str], regions: list[str]) -> list[str]:
    """The names of the observation's entries, in order."""
    names: list[str] = []
    for group, per, _, _ in ORDER_FEATURES:
        if per == "region":
            names += [f"{group}[{r}]" for r in regions]
        elif per == "warehouse":
            names += [f"{group}[{w}]" for w in warehouses]
        else:
            names.append(group)
    return names


def order_bounds(n_warehouses: int, n_regions: int) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` of the observation (float32)."""
    low, high = _bounds(n_warehouses, n_regions)
    return low.copy(), high.copy()


@functools.lru_cache(maxsize=64)
def _bounds(n_warehouses: int, n_regions: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`order_bounds`, made once per shape (read-only: the features clip to them)."""
    n = 6 + n_regions + 7 * n_warehouses
    low = np.zeros(n, dtype=np.float32)
    low[:2] = -1.0
    high = np.ones(n, dtype=np.float32)
    low.setflags(write=False)
    high.setflags(write=False)
    return low, high


def feature_schema(warehouses: list[str], regions: list[str]) -> list[dict[str, object]]:
    """The observation's entries for a manifest: name, what it is, divisor, low, high."""
    low, high = order_bounds(len(warehouses), len(regions))
    names = order_feature_names(warehouses, regions)
    out, i = [], 0
    for group, per, what, div in ORDER_FEATURES:
        k = {"region": len(regions), "warehouse": len(warehouses)}.get(per, 1)
        for _ in range(k):
            out.append({"index": i, "name": names[i], "group": group, "raw": what, "divisor": div,
                        "low": float(low[i]), "high": float(high[i])})
            i += 1
    return out


@dataclass(frozen=True)
class OrderLanes:
    """What the features read of the network that does not change in a run: the base
    heuristic's carrier lanes (ok, cost, mean transit per (cold, warehouse, region)), the
    distances, the longest promise, the fleets and their shipment rates, the initial stock."""

    lane_ok: np.ndarray  # [2, W, R] bool
    lane_cost: np.ndarray  # [2, W, R] CNY per parcel
    lane_transit: np.ndarray  # [2, W, R] mean hours
    distance_km: np.ndarray  # [W, R]
    max_promise_h: float
    agvs: np.ndarray  # [W] float
    ship_rate: np.ndarray  # [W] shipments per AGV-hour
    initial_stock: np.ndarray  # [W, S]

    @classmethod
    def from_network(cls, net: Network, base: str = "cheapest") -> OrderLanes:
        """The tables for ``net`` with the carriers of the heuristic ``base``."""
        from twin.policies.heuristics import ROUTING_POLICIES

        if base not in ROUTING_POLICIES:
            raise ValueError(f"base must be one of {', '.join(ROUTING_POLICIES)}; got {base!r}")
        W, R = net.n_warehouses, net.n_regions
        car = ROUTING_POLICIES[base]().bind(net, None).lane_carrier
        ok = car >= 0
        c = np.where(ok, car, 0)
        w_idx, r_idx = np.arange(W)[None, :, None], np.arange(R)[None, None, :]
        sc = net.scenario
        return cls(
            lane_ok=ok,
            lane_cost=np.where(ok, net.costs.parcel[np.arange(2)[:, None, None], c, w_idx, r_idx], 0.0),
            lane_transit=np.where(ok, net.transit_mean_h[c, w_idx, r_idx], 0.0),
            distance_km=np.asarray(net.distance_km, dtype=float),
            max_promise_h=max(s.promise_h for s in sc.demand.service_levels.values()),
            agvs=np.array([w.pick.agvs for w in sc.warehouses], dtype=float),
            ship_rate=np.array([w.pick.lines_per_agv_h / sc.demand.lines_per_order for w in sc.warehouses]),
            initial_stock=np.asarray(net.initial_stock),
        )

    @property
    def n_warehouses(self) -> int:
        return self.lane_ok.shape[1]

    @property
    def n_regions(self) -> int:
        return self.lane_ok.shape[2]


def order_mask(lanes: OrderLanes, region: int, cold: bool, wh_open: np.ndarray, cold_ok: np.ndarray,
               stock: np.ndarray, qty: np.ndarray) -> np.ndarray:
    """``[W]`` the warehouses that may take the whole order: open, a lane of the base
    heuristic's carrier to ``region``, working cold storage for a cold order, and ``stock``
    (``[W, lines]`` units on hand of each line's SKU) covering ``qty`` (``[lines]``)."""
    ok = np.asarray(wh_open, dtype=bool) & lanes.lane_ok[int(cold), :, region]
    if cold:
        ok = ok & np.asarray(cold_ok, dtype=bool)
    return ok & (np.asarray(stock) >= np.asarray(qty)).all(axis=1)


def backlog_hours(lanes: OrderLanes, backlog: np.ndarray, pick_servers: np.ndarray,
                  wh_open: np.ndarray) -> np.ndarray:
    """Hours each warehouse needs to ship its backlog at its pick rate (``[W]`` or ``[n, W]``):
    24 for a backlog at a closed or idle site, 0 for none."""
    rate = np.where(wh_open, pick_servers, 0.0) * lanes.ship_rate
    backlog = np.asarray(backlog)
    return np.where(rate > 0, backlog / np.maximum(rate, _EPS), np.where(backlog > 0, 24.0, 0.0))


def order_features(lanes: OrderLanes, t_h: float, horizon_h: float, region: int, cold: bool, units: float,
                   promise_h: float, mask: np.ndarray, backlog: np.ndarray, pick_servers: np.ndarray,
                   wh_open: np.ndarray, transit_mult: float, cover: np.ndarray | None) -> np.ndarray:
    """The observation (float32, ``6 + R + 7W``) of one order routed at hour ``t_h``.

    Args:
        lanes: the network's tables (:class:`OrderLanes`).
        t_h: the hour of the decision (its hour of day gives the time features).
        horizon_h: the training horizon (``horizon_progress`` is ``t_h / horizon_h``).
        region: the destination region's index; ``cold``: the cold-chain flag.
        units: the order's units (sum of the lines' quantities); ``promise_h``: hours promised.
        mask: ``[W]`` :func:`order_mask`.
        backlog: ``[W]`` shipments waiting to be picked; ``pick_servers``: ``[W]`` AGVs up;
            ``wh_open``: ``[W]`` bool.
        transit_mult: the weather's transit multiplier into the region.
        cover: ``[W]`` the smallest ratio of units on hand to initial units over the lines, or
            None (an order with no lines: the per-warehouse features are left 0).
    """
    W, R = lanes.n_warehouses, lanes.n_regions
    low, high = _bounds(W, R)
    x = np.zeros(len(low), dtype=float)
    day = 2 * math.pi * (t_h % 24.0) / 24.0
    x[0], x[1], x[2] = math.sin(day), math.cos(day), min(t_h / horizon_h, 1.0)
    if cover is None:
        return np.clip(x, low, high).astype(np.float32)
    x[3 + region] = 1.0
    i = 3 + R
    x[i] = float(cold)
    x[i + 1] = units / 5.0
    x[i + 2] = promise_h / lanes.max_promise_h
    i += 3
    servers = np.asarray(pick_servers, dtype=float)
    backlog_h = backlog_hours(lanes, backlog, servers, wh_open)
    c = int(cold)
    feats = (np.asarray(mask, dtype=float), backlog_h / 24.0, servers / np.maximum(lanes.agvs, 1.0),
             lanes.distance_km[:, region] / 4000.0, lanes.lane_cost[c, :, region] / 50.0,
             lanes.lane_transit[c, :, region] * transit_mult / 72.0, cover)
    for f in feats:
        x[i:i + W] = f
        i += W
    return np.clip(x, low, high).astype(np.float32)


def order_features_batch(lanes: OrderLanes, t_h: np.ndarray, horizon_h: float, region: np.ndarray,
                         cold: np.ndarray, units: np.ndarray, promise_h: np.ndarray, mask: np.ndarray,
                         backlog: np.ndarray, pick_servers: np.ndarray, wh_open: np.ndarray,
                         transit_mult: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """:func:`order_features` of ``n`` orders at once (float32, ``[n, 6 + R + 7W]``): the same
    arithmetic on arrays, so row ``k`` equals ``order_features`` of order ``k`` exactly (a test).
    The service no longer calls it (its C kernel, ``ext._route.RouteKernel.prepare``, computes
    the observation itself); it stays as the array reference the kernel's tests compare with.

    The per-order arguments are ``[n]`` arrays (``t_h``, ``region``, ``cold``, ``units``,
    ``promise_h``, ``transit_mult``) and ``[n, W]`` arrays (``mask``, ``backlog``,
    ``pick_servers``, ``wh_open``, ``cover``); every order has lines (``cover`` is given).
    """
    W, R = lanes.n_warehouses, lanes.n_regions
    region = np.asarray(region, dtype=np.int64)
    n = len(region)
    if n == 1:  # one order: the per-order function (fewer, smaller array operations; equal)
        return order_features(lanes, float(t_h[0]), horizon_h, int(region[0]), bool(cold[0]), float(units[0]),
                              float(promise_h[0]), mask[0], backlog[0], pick_servers[0], wh_open[0],
                              float(transit_mult[0]), cover[0])[None, :]
    low, high = _bounds(W, R)
    x = np.zeros((n, len(low)), dtype=float)
    t = np.asarray(t_h, dtype=float).tolist()
    days = [2 * math.pi * (v % 24.0) / 24.0 for v in t]  # math.sin/cos as order_features calls them
    x[:, 0] = [math.sin(d) for d in days]
    x[:, 1] = [math.cos(d) for d in days]
    x[:, 2] = [min(v / horizon_h, 1.0) for v in t]
    rows = np.arange(n)
    x[rows, 3 + region] = 1.0
    i = 3 + R
    c = np.asarray(cold, dtype=bool).astype(np.int64)
    x[:, i] = c
    x[:, i + 1] = np.asarray(units, dtype=float) / 5.0
    x[:, i + 2] = np.asarray(promise_h, dtype=float) / lanes.max_promise_h
    i += 3
    servers = np.asarray(pick_servers, dtype=float)
    backlog_h = backlog_hours(lanes, backlog, servers, wh_open)
    w_idx = np.arange(W)[None, :]
    feats = (np.asarray(mask, dtype=float), backlog_h / 24.0, servers / np.maximum(lanes.agvs, 1.0),
             lanes.distance_km[:, region].T / 4000.0, lanes.lane_cost[c[:, None], w_idx, region[:, None]] / 50.0,
             lanes.lane_transit[c[:, None], w_idx, region[:, None]] * np.asarray(transit_mult, dtype=float)[:, None]
             / 72.0, cover)
    for f in feats:
        x[:, i:i + W] = f
        i += W
    return np.clip(x, low, high).astype(np.float32)


def sku_index(sku: str, n_skus: int) -> int | None:
    """The network's SKU index of ``sku`` (``sku-17``, ``SKU17`` or ``17``), or None."""
    s = sku.strip().lower()
    for p in ("sku-", "sku_", "sku"):
        if s.startswith(p):
            s = s[len(p):]
            break
    if s.isdigit() and int(s) < n_skus:
        return int(s)
    return None
