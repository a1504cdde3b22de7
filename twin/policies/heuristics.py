"""The built-in heuristic routing policies, and building one from a scenario's config."""

from __future__ import annotations

import numpy as np

from twin.policies.base import INF, RoutingPolicy
from twin.policies.plan import RoutingPlan
from twin.policies.promise import PromiseAware
from twin.scenario.schema import RoutingConfig
from twin.world.network import Network
from twin.world.state import State

__all__ = ["NearestWithStock", "Cheapest", "Greenest", "Fastest", "WeightedScore", "ROUTING_POLICIES",
           "make_routing_policy"]


class _Static(RoutingPolicy):
    """A heuristic whose scores do not depend on the state: the kernel walks them natively."""

    def plan(self) -> RoutingPlan:
        self._require_bound()
        return RoutingPlan("static", self.lane_carrier, bool(self.allow_split), self.static_score,
                           service_carrier=self.service_carrier)


class NearestWithStock(_Static):
    """The nearest warehouse (road distance) that has the stock; its fastest carrier."""

    name = "nearest_with_stock"

    def lane_criterion(self, net: Network) -> np.ndarray:
        return net.transit_mean_h

    def warehouse_score(self, net: Network) -> np.ndarray:
        d = np.where(np.isfinite(self.lane_score), net.distance_km[None], INF)
        return np.transpose(d, (0, 2, 1)).copy()


class Cheapest(_Static):
    """The lowest cost per parcel: carrier price (reefer surcharge for cold) plus handling."""

    name = "cheapest"

    def lane_criterion(self, net: Network) -> np.ndarray:
        return net.costs.lanes(cold=False, lines=1)


class Greenest(_Static):
    """The lowest CO2 per parcel."""

    name = "greenest"

    def lane_criterion(self, net: Network) -> np.ndarray:
        return net.lane_co2_kg


class Fastest(RoutingPolicy):
    """The earliest expected delivery: queue wait at the warehouse now + pick + half a
    departure interval + transit. Picks the fastest way to meet the promise."""

    name = "fastest"

    def lane_criterion(self, net: Network) -> np.ndarray:
        half_gap = np.array([c.departure_interval_h / 2 for c in net.scenario.carriers])
        return net.transit_mean_h + half_gap[:, None, None]

    def bind(self, net: Network, rng: np.random.Generator | None = None) -> RoutingPolicy:
        self._pick_h = np.array([1.0 / w.pick.lines_per_agv_h for w in net.scenario.warehouses])
        return super().bind(net, rng)

    def dynamic_score(self, state: State) -> np.ndarray:
        servers = np.maximum(state.pick_servers, 1)
        return state.backlog * self._pick_h / servers + self._pick_h

    def plan(self) -> RoutingPlan:
        self._require_bound()
        return RoutingPlan("queue", self.lane_carrier, bool(self.allow_split), self.static_score,
                           service_carrier=self.service_carrier,
                           queue_weight=1.0, queue_scale=1.0)


class WeightedScore(Fastest):
    """A weighted sum of cost, expected time and CO2, each divided by its network mean (a
    criterion that is 0 on every lane, such as an all-electric fleet's CO2, adds nothing)."""

    name = "weighted"

    def __init__(self, cost: float = 1.0, time_h: float = 1.0, co2_kg: float = 1.0, allow_split: bool = True) -> None:
        super().__init__(allow_split)
        self.w = (float(cost), float(time_h), float(co2_kg))
        if not all(np.isfinite(self.w)) or min(self.w) < 0 or sum(self.w) == 0:
            raise ValueError(f"weights must be finite, >= 0 and not all 0, got cost={cost}, time_h={time_h}, "
                             f"co2_kg={co2_kg}")

    def lane_criterion(self, net: Network) -> np.ndarray:
        t = Fastest.lane_criterion(self, net)
        cost = net.costs.lanes(cold=False, lines=1)
        m = net.serves

        def scale(x: np.ndarray) -> float:
            # a criterion that is 0 on every lane (an all-electric fleet's CO2) tells lanes
            # apart by nothing: any divisor leaves it 0, so it is 1, never 0
            mean = float(x[m].mean()) if m.any() else 0.0
            return mean if mean > 0 and np.isfinite(mean) else 1.0

        self._scale = (scale(cost), scale(t), scale(net.lane_co2_kg))
        wc, wt, we = self.w
        return wc * cost / self._scale[0] + wt * t / self._scale[1] + we * net.lane_co2_kg / self._scale[2]

    def dynamic_score(self, state: State) -> np.ndarray:
        return self.w[1] * super().dynamic_score(state) / self._scale[1]

    def plan(self) -> RoutingPlan:
        self._require_bound()
        return RoutingPlan("queue", self.lane_carrier, bool(self.allow_split), self.static_score,
                           service_carrier=self.service_carrier,
                           queue_weight=float(self.w[1]), queue_scale=float(self._scale[1]))


ROUTING_POLICIES: dict[str, type[RoutingPolicy]] = {
    p.name: p for p in (NearestWithStock, Cheapest, Fastest, Greenest, WeightedScore, PromiseAware)
}


def make_routing_policy(cfg: RoutingConfig | str, net: Network, rng: np.random.Generator | None = None) -> RoutingPolicy:
    """Build and bind the routing policy a scenario (or a name) asks for."""
    if isinstance(cfg, str):
        cfg = RoutingConfig(name=cfg)
    if cfg.name == "weighted":
        p: RoutingPolicy = WeightedScore(cfg.weights.cost, cfg.weights.time_h, cfg.weights.co2_kg, cfg.allow_split)
    elif cfg.name == "promise_aware":
        p = PromiseAware(allow_split=cfg.allow_split)
    else:
        p = ROUTING_POLICIES[cfg.name](cfg.allow_split)
    p.service_criteria = {level: ROUTING_POLICIES[crit]().lane_criterion for level, crit in cfg.carriers.items()}
    return p.bind(net, rng)
