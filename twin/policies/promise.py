"""``promise_aware``: per order, the warehouse and carrier with the lowest expected objective.

For an order of region ``r`` (cold flag, service level with promise ``P``, ``n`` lines) routed at
time ``t``, every warehouse ``w`` that can serve it whole and every carrier ``c`` with a lane
``w -> r`` (reefer room for cold orders) is scored

    parcel cost[cold, c, w, r] + handling[w] * n + co2_price * co2[c, w, r]
        + late_penalty * P(late)

where the parcel is ready at ``t + backlog[w] * pick_h[w] * L / max(servers[w], 1) + n * pick_h[w]
+ pack_h[w]`` (``L``: the mean lines per order), leaves on carrier ``c``'s first departure
after that plus one departure per full load already waiting at its dock (``dock_waiting[c, w]
// capacity now``), and is late when its transit (the lane's mean x the region's weather
multiplier, with the carrier's distribution) exceeds the slack ``t + P - departure``. The
lowest score wins (ties: the cheaper warehouse in the ``cheapest`` order, then the lower
carrier index). An order no warehouse can serve whole is split as ``cheapest`` splits it, on
``cheapest``'s carriers.

The kernel runs the same rule natively (plan mode ``promise``); :meth:`PromiseAware.route_one`
is the readable reference the ``simpy`` engine calls.
"""

from __future__ import annotations

import math

import numpy as np

from twin.policies.base import INF, RoutingPolicy, assign_order
from twin.policies.plan import RoutingPlan
from twin.scenario.distributions import DISTRIBUTIONS, dist_spec
from twin.world.costs import ObjectiveWeights
from twin.world.network import Network
from twin.world.state import State

__all__ = ["PromiseAware", "late_probability", "next_departure"]

_DEFAULT = ObjectiveWeights()


def next_departure(ready: float, first: float, interval: float) -> float:
    """The first departure at or after ``ready`` of a schedule ``first + k * interval``."""
    if ready <= first:
        return first
    return first + interval * math.ceil((ready - first) / interval)


def late_probability(slack: float, mean: float, kind: int, sigma: float, mu_shift: float) -> float:
    """P(transit > ``slack``) for a transit of mean ``mean`` with the distribution ``kind``
    (:data:`twin.scenario.distributions.DISTRIBUTIONS` codes; lognormal log-sd ``sigma`` and
    log-mean shift ``mu_shift``, as :func:`~twin.scenario.distributions.dist_spec` gives)."""
    if not slack > 0:
        return 1.0
    if not math.isfinite(slack):
        return 0.0
    if kind == DISTRIBUTIONS["exponential"]:
        return math.exp(-slack / mean) if mean > 0 else 0.0
    if kind == DISTRIBUTIONS["lognormal"] and sigma > 0 and mean > 0:
        z = (math.log(slack) - math.log(mean) - mu_shift) / (sigma * math.sqrt(2.0))
        return 0.5 * math.erfc(z)
    return 1.0 if mean > slack else 0.0


class PromiseAware(RoutingPolicy):
    """The lowest expected objective per order (see the module docstring).

    Args:
        late_penalty_cny: the price of a late order (default: the objective's,
            :class:`twin.world.costs.ObjectiveWeights`).
        co2_price_cny_per_kg: the price of CO2 (likewise).
        allow_split: orders no warehouse can serve whole may be split.
    """

    name = "promise_aware"

    def __init__(self, late_penalty_cny: float = _DEFAULT.late_penalty_cny,
                 co2_price_cny_per_kg: float = _DEFAULT.co2_price_cny_per_kg, allow_split: bool = True) -> None:
        super().__init__(allow_split)
        ObjectiveWeights(late_penalty_cny=late_penalty_cny, co2_price_cny_per_kg=co2_price_cny_per_kg)  # checks
        self.late_penalty = float(late_penalty_cny)
        self.co2_price = float(co2_price_cny_per_kg)
        self._chosen: tuple[int, int] | None = None

    def lane_criterion(self, net: Network) -> np.ndarray:
        return net.costs.lanes(cold=False, lines=1)  # cheapest's lanes: the fallback and the order

    def bind(self, net: Network, rng: np.random.Generator | None = None) -> RoutingPolicy:
        super().bind(net, rng)
        sc = net.scenario
        self._pick_h = [1.0 / w.pick.lines_per_agv_h for w in sc.warehouses]
        self._pack_h = [w.pack.time_h for w in sc.warehouses]
        self._lines_mean = float(sc.demand.lines_per_order)
        self._promise = [v.promise_h for v in sc.demand.service_levels.values()]
        self._first = [c.first_departure_h for c in sc.carriers]
        self._interval = [c.departure_interval_h for c in sc.carriers]
        self._cap = [(c.capacity, c.reefer_capacity) for c in sc.carriers]
        specs = [dist_spec(c.transit.distribution, c.transit.cv) for c in sc.carriers]
        self._tr = [(s.code, s.sigma, s.mu) for s in specs]
        self._parcel = net.costs.parcel  # [2, C, W, R]
        self._handling = net.costs.handling_per_line
        reefer = np.array([c.reefer_capacity > 0 for c in sc.carriers])
        # per (cold, w, r): the carriers with a lane, in index order
        self._lanes = [[[np.flatnonzero(net.serves[:, w, r] & (reefer if cold else True)).tolist()
                         for r in range(net.n_regions)] for w in range(net.n_warehouses)] for cold in (0, 1)]
        #: ``[K]`` CNY per late order of each service level, and ``[W]`` CNY added to each
        #: warehouse's score: the policy's knobs. Engines read these arrays themselves, so writing
        #: them in place (an RL env each epoch) changes the routing from then on.
        self.late_penalty_by_service = np.full(len(self._promise), self.late_penalty)
        self.warehouse_offset = np.zeros(net.n_warehouses)
        return self

    def plan(self) -> RoutingPlan:
        self._require_bound()
        return RoutingPlan("promise", self.lane_carrier, bool(self.allow_split), self.static_score,
                           service_carrier=self.service_carrier,
                           co2_price=self.co2_price,
                           late_penalty_by_service=self.late_penalty_by_service,
                           warehouse_offset=self.warehouse_offset)

    def score(self, w: int, c: int, region: int, cold: bool, service: int, lines: int, state: State) -> float:
        """The expected objective of sending the order by carrier ``c`` from warehouse ``w`` now."""
        cost, p_late = self.score_parts(w, c, region, cold, service, lines, state)
        return cost + float(self.late_penalty_by_service[service]) * p_late + float(self.warehouse_offset[w])

    def score_parts(self, w: int, c: int, region: int, cold: bool, service: int, lines: int,
                    state: State) -> tuple[float, float]:
        """``(expected cost, P(late))`` of :meth:`score`: the parcel, handling and CO2 price in
        CNY, and the probability that the parcel is late (what the score weighs by the late
        penalty; the warehouse offset is not in either)."""
        net, t = self.net, float(state.clock[0])
        srv = max(int(state.pick_servers[w]), 1)
        ready = (t + int(state.backlog[w]) * self._pick_h[w] * self._lines_mean / srv + lines * self._pick_h[w]
                 + self._pack_h[w])
        cap = int(self._cap[c][1 if cold else 0] * float(state.carrier_capacity_mult[c]))
        if cap <= 0:
            p_late = 1.0
        else:
            dep = next_departure(ready, self._first[c], self._interval[c])
            dep += (int(state.dock_waiting[c, w]) // cap) * self._interval[c]
            mean = float(net.transit_mean_h[c, w, region]) * float(state.region_transit_mult[region])
            p_late = late_probability(t + self._promise[service] - dep, mean, *self._tr[c])
        return (float(self._parcel[int(cold), c, w, region]) + float(self._handling[w]) * lines
                + self.co2_price * float(net.lane_co2_kg[c, w, region])), p_late

    def best(self, region: int, cold: bool, service: int, lines: int, state: State,
             sku: list[int], qty: list[int]) -> tuple[int, int] | None:
        """``(warehouse, carrier)`` of the lowest score among the warehouses that can serve the
        order whole, or None."""
        c = int(cold)
        wh_open, cold_ok, inv = state.wh_open, state.cold_ok, state.inventory
        best, best_s = None, INF
        for w in self._pref[c][region]:
            if not (wh_open[w] and (not cold or cold_ok[w]) and all(inv[w, k] >= q for k, q in zip(sku, qty))):
                continue
            for car in self._lanes[c][w][region]:
                s = self.score(w, car, region, cold, service, lines, state)
                if s < best_s:
                    best, best_s = (w, car), s
        return best

    def route_one(self, region: int, cold: bool, sku: list[int], qty: list[int], state: State,
                  service: int = 0) -> list[int] | None:
        lines = int(sum(qty))
        choice = self.best(region, cold, service, lines, state, sku, qty)
        self._chosen = choice
        if choice is not None:
            return [choice[0]] * len(sku)
        if not self.allow_split or len(sku) == 1:
            return None
        usable = (state.wh_open & state.cold_ok) if cold else state.wh_open
        out = assign_order(self.static_score[int(cold), region], usable, state.inventory[:, sku], np.asarray(qty), True)
        return None if out is None else out.tolist()

    def carrier(self, warehouse: int, region: int, cold: bool, service: int = 0) -> int:
        """The carrier :meth:`route_one` chose for the order it just routed whole; ``cheapest``'s
        lane carrier for the shipments of a split order."""
        chosen, self._chosen = self._chosen, None  # one answer per routed order
        if chosen is not None and chosen[0] == warehouse:
            return chosen[1]
        return super().carrier(warehouse, region, cold, service)
