"""The static network built from a scenario: names, geography, lanes and SKU tables (numpy + networkx)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import networkx as nx
import numpy as np

from scenarios import expand_regions
from twin.scenario.schema import Scenario
from twin.world.costs import CostTable, cost_table

__all__ = ["Network", "build_network", "haversine_km", "ROAD_FACTOR"]

#: Road distance over great-circle distance (a typical circuity factor for China's road network).
ROAD_FACTOR = 1.25


def haversine_km(lat1, lon1, lat2, lon2):  # noqa: ANN001, ANN201 - numpy broadcasting
    """Great-circle distance in km between points given in degrees (broadcasts)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


@dataclass
class Network:
    """Everything about a scenario that does not change during a run.

    Arrays are indexed ``[carrier, warehouse, region]`` for lanes, ``[warehouse, sku]`` for stock.
    """

    scenario: Scenario
    warehouses: list[str]
    regions: list[str]
    carriers: list[str]
    wh_latlon: np.ndarray  # [W, 2]
    rg_latlon: np.ndarray  # [R, 2]
    region_weight: np.ndarray  # [R], sums to 1
    distance_km: np.ndarray  # [W, R] road distance
    wh_distance_km: np.ndarray  # [W, W] road distance between warehouses
    serves: np.ndarray  # [C, W, R] bool: carrier c runs lane w -> r
    transit_mean_h: np.ndarray  # [C, W, R]
    lane_co2_kg: np.ndarray  # [C, W, R] per parcel
    sku_cold: np.ndarray  # [S] bool
    sku_p: np.ndarray  # [S] popularity (sums to 1)
    initial_stock: np.ndarray  # [W, S] int64
    cold_capable: np.ndarray  # [W] bool
    costs: CostTable  # what a shipment costs (twin.world.costs): the one table

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The network as a directed graph: warehouse and region nodes (with coordinates),
        one edge per lane with its carriers and road distance. Built on first use (resets of
        RL environments build many networks and never ask for it)."""
        g = nx.DiGraph()
        for i, w in enumerate(self.scenario.warehouses):
            g.add_node(w.name, kind="warehouse", lat=w.lat, lon=w.lon, cold_storage=w.cold_storage)
        for j, r in enumerate(self.regions):
            g.add_node(r, kind="region", lat=float(self.rg_latlon[j, 0]), lon=float(self.rg_latlon[j, 1]),
                       weight=float(self.region_weight[j]))
        for i, j in zip(*np.nonzero(self.serves.any(axis=0))):
            carriers = [self.carriers[c] for c in np.flatnonzero(self.serves[:, i, j])]
            g.add_edge(self.warehouses[i], self.regions[j], carriers=carriers,
                       distance_km=float(self.distance_km[i, j]))
        return g

    @property
    def n_warehouses(self) -> int:
        return len(self.warehouses)

    @property
    def n_regions(self) -> int:
        return len(self.regions)

    @property
    def n_skus(self) -> int:
        return len(self.sku_p)


def _sku_tables(sc: Scenario) -> tuple[np.ndarray, np.ndarray]:
    s = sc.demand.skus
    rank = np.arange(1, s.count + 1, dtype=float)
    p = rank ** (-s.zipf_s)
    p /= p.sum()
    # every k-th SKU by popularity rank is a cold one, so cold SKUs span the popularity range
    n_cold = int(round(s.cold_share * s.count))
    cold = np.zeros(s.count, dtype=bool)
    if n_cold:
        cold[np.linspace(0, s.count - 1, n_cold).round().astype(int)] = True
    if sc.demand.cold_chain_share > 0 and not cold.any():
        cold[0] = True
    return cold, p


def same_network(a: Scenario, b: Scenario) -> bool:
    """Whether two scenarios build the same :class:`Network`: the same warehouses, regions,
    carriers and SKUs (demand rates, weather and disruptions may differ)."""
    return (a.warehouses == b.warehouses and a.regions == b.regions and a.carriers == b.carriers
            and a.demand.skus == b.demand.skus and a.demand.cold_chain_share == b.demand.cold_chain_share)


def network_for(sc: Scenario, reuse: Network | None = None) -> Network:
    """``build_network(sc)``, or ``reuse``'s arrays under ``sc`` when ``same_network`` says they
    are the same (an RL env builds its network once and reuses it for every episode's
    randomised scenario; the arrays are shared, never written)."""
    if reuse is not None and (reuse.scenario is sc or same_network(reuse.scenario, sc)):
        return dataclasses.replace(reuse, scenario=sc)
    return build_network(sc)


def build_network(sc: Scenario) -> Network:
    """Build the :class:`Network` of a validated scenario."""
    regions = expand_regions(sc.regions)
    W, R, C = len(sc.warehouses), len(regions), len(sc.carriers)
    wh = np.array([[w.lat, w.lon] for w in sc.warehouses], dtype=float)
    rg = np.array([[r.lat, r.lon] for r in regions], dtype=float)
    weight = np.array([r.weight for r in regions], dtype=float)
    weight /= weight.sum()
    dist = ROAD_FACTOR * haversine_km(wh[:, None, 0], wh[:, None, 1], rg[None, :, 0], rg[None, :, 1])

    wnames = [w.name for w in sc.warehouses]
    rnames = [r.name for r in regions]
    serves = np.zeros((C, W, R), dtype=bool)
    transit = np.zeros((C, W, R))
    cost = np.zeros((C, W, R))
    co2 = np.zeros((C, W, R))
    for c, car in enumerate(sc.carriers):
        wm = np.ones(W, bool) if car.warehouses == "all" else np.isin(wnames, car.warehouses)
        rm = np.ones(R, bool) if car.regions == "all" else np.isin(rnames, car.regions)
        serves[c] = wm[:, None] & rm[None, :]
        transit[c] = car.transit.base_h + dist / car.transit.speed_kmh
        cost[c] = car.cost.per_parcel + car.cost.per_km * dist
        co2[c] = car.co2.per_parcel_kg + car.co2.per_km_kg * dist
    surcharge = np.array([c.cost.reefer_surcharge for c in sc.carriers])

    sku_cold, sku_p = _sku_tables(sc)
    order = np.argsort(-sku_p, kind="stable")  # most popular first
    stock = np.zeros((W, len(sku_p)), dtype=np.int64)
    cold_capable = np.array([w.cold_storage for w in sc.warehouses], dtype=bool)
    for i, w in enumerate(sc.warehouses):
        carried = order[: max(1, int(round(w.stock.sku_fraction * len(sku_p))))]
        stock[i, carried] = w.stock.units_per_sku
        if not w.cold_storage:
            stock[i, sku_cold] = 0

    return Network(
        scenario=sc, warehouses=wnames, regions=rnames, carriers=[c.name for c in sc.carriers],
        wh_latlon=wh, rg_latlon=rg, region_weight=weight, distance_km=dist,
        wh_distance_km=ROAD_FACTOR * haversine_km(wh[:, None, 0], wh[:, None, 1], wh[None, :, 0], wh[None, :, 1]), serves=serves,
        transit_mean_h=transit, lane_co2_kg=co2,
        sku_cold=sku_cold, sku_p=sku_p, initial_stock=stock, cold_capable=cold_capable,
        costs=cost_table(cost, surcharge, np.array([w.handling_cost_per_line for w in sc.warehouses], dtype=float)),
    )
