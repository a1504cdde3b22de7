"""``twin/OrderRouting-v1``: routing one order per step, warehouse x carrier, with action masks
and ``promise_aware``'s view of every choice."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from rl.envs.order_routing import OrderRoutingEnv
from twin.policies import PromiseAware
from twin.policies.features import order_bounds
from twin.scenario.schema import Scenario

__all__ = ["PAIR_COST_CNY", "PAIR_FEATURES", "OrderRoutingV1Env"]

#: The features OrderRouting-v1 adds to OrderRouting-v0's, per (warehouse, carrier) pair.
PAIR_FEATURES = ("exp_cost", "p_late")
#: ``exp_cost`` is the pair's expected cost in CNY over this (clipped to 1).
PAIR_COST_CNY = 100.0


class OrderRoutingV1Env(OrderRoutingEnv):
    """Order routing one order at a time: the warehouse and the carrier, with action masks.

    ## Description

    As ``twin/OrderRouting-v0``, the ``simpy`` engine stops at each order arrival and the agent
    routes the order whole, but it now chooses the carrier as well: the parcel leaves by the
    carrier chosen (the engine's ``decide(line_wh, carrier=...)``). The observation shows, for
    every (warehouse, carrier) pair, what the ``promise_aware`` rule weighs: the expected cost
    and the probability of being late, so a policy sees what the rule sees and may learn what
    it does not (the queues its choices build, the next hours). Orders that no single
    warehouse can serve are not asked: the ``base`` heuristic (``promise_aware``: as
    ``cheapest``) splits them, or they are lost.

    ## Action Space

    ``Discrete(W * C)``: action ``a`` is warehouse ``a // C`` with carrier ``a % C`` (``C``
    carriers, in the scenario's order). ``action_masks()`` is True for a pair whose warehouse
    can take the whole order (v0's mask: open, cold-capable for a cold order, the stock of
    every line, a lane to the region) and whose carrier has a lane from that warehouse to the
    order's region (reefer room for a cold order). An action outside the mask is not an error:
    the ``base`` heuristic routes that order and ``info["invalid_action"]`` is True.

    ## Observation Space

    ``Box(low, high, (6 + R + 7W + 2WC,), float32)``: OrderRouting-v0's features (computed by
    :func:`twin.policies.features.order_features` with the ``base`` heuristic's lanes), then per
    pair (warehouse-major, ``exp_cost[w/c]`` for every pair, then ``p_late[w/c]``):

    - ``exp_cost``: :meth:`twin.policies.PromiseAware.score_parts`'s expected cost (parcel,
      handling per line, CO2 price x the lane's CO2) / 100 CNY, clipped to 1;
    - ``p_late``: its probability that the parcel is late (ready after the pick queue and
      packing, the departure it makes after the dock's waiting loads, the lane's transit under
      today's weather against the promise).

    A pair outside the mask reads 1 in both. The rule itself is ``argmin exp_cost * 100 +
    late_penalty_cny * p_late`` over the mask (:meth:`promise_action`). Names in
    ``env.unwrapped.feature_names``; all in [0, 1] except the time of day in [-1, 1].

    ## Rewards

    As OrderRouting-v0: ``-reward_scale * (cost + late_penalty_cny * late + lost_penalty_cny *
    lost + co2_price_cny_per_kg * co2_kg)`` accrued since the previous decision, per order; the
    episode's rewards sum to ``-reward_scale`` times its objective, the cost and CO2 those of
    the engine's records.

    ## Starting State

    As ``twin/OrderRouting-v0``.

    ## Episode End

    As ``twin/OrderRouting-v0``: after the last order of the horizon has been routed and the
    model has drained.

    ## Arguments

    As ``twin/OrderRouting-v0`` (``scenario`` ``"singles_day"``, ``scale`` 0.1, ``horizon_h``
    12, ``engine`` ``"simpy"`` only, ``randomize``, ``late_penalty_cny``, ``lost_penalty_cny``,
    ``co2_price_cny_per_kg``, ``reward_scale``, ``render_mode``), with ``base`` defaulting to
    ``"promise_aware"``. ``heuristics`` (the baselines, ``reset(options={"heuristic": ...})``):
    the twin's routing heuristics, ``promise_aware`` (with the env's late penalty and CO2 price)
    among them.

    ## Version History

    * v1: the action is (warehouse, carrier), the engine ships by the chosen carrier; per pair
      the ``promise_aware`` score components in the observation; ``base`` ``promise_aware``.
      ``twin/OrderRouting-v0`` (a warehouse only, the base heuristic's carrier) stays
      registered unchanged, for the results and exported policies made with it.
    * v0: initial version.
    """

    _SIM = (*OrderRoutingEnv._SIM, "_wmask", "_cost", "_plate")

    def __init__(self, scenario: str | Scenario = "singles_day", scale: float = 0.1,
                 horizon_h: float | None = 12.0, engine: str | None = "simpy",
                 randomize: bool | Mapping[str, Any] | None = False, base: str = "promise_aware",
                 late_penalty_cny: float = 50.0, lost_penalty_cny: float = 100.0, co2_price_cny_per_kg: float = 1.0,
                 reward_scale: float = 0.1, render_mode: str | None = None) -> None:
        super().__init__(scenario, scale, horizon_h, engine, randomize, base, late_penalty_cny, lost_penalty_cny,
                         co2_price_cny_per_kg, reward_scale, render_mode)
        net = self.net
        W, R, C = net.n_warehouses, net.n_regions, len(net.carriers)
        self.n_carriers = C
        self.action_space = spaces.Discrete(W * C)
        low, high = order_bounds(W, R)
        extra = len(PAIR_FEATURES) * W * C
        self.observation_space = spaces.Box(np.concatenate([low, np.zeros(extra, np.float32)]),
                                            np.concatenate([high, np.ones(extra, np.float32)]), dtype=np.float32)
        pairs = [f"{w}/{c}" for w in net.warehouses for c in net.carriers]
        self.feature_names = self.feature_names + [f"{f}[{p}]" for f in PAIR_FEATURES for p in pairs]
        #: the rule whose view the observation shows (its knobs stay at zero)
        self.scorer = self._heuristic_policy("promise_aware").bind(net, None)
        reefer = np.array([c.reefer_capacity > 0 for c in self.scenario.carriers])
        #: ``[2, W, C, R]`` carrier ``c`` has a lane ``w -> r`` (cold: and reefer room)
        serves = np.transpose(np.asarray(net.serves, dtype=bool), (1, 0, 2))  # [W, C, R]
        self._pair_lane = np.stack([serves, serves & reefer[None, :, None]])

    # ------------------------------------------------------------------ decisions
    def _order_mask(self) -> np.ndarray:
        """The ``[W * C]`` pair mask; also the pair features of the waiting order."""
        self._wmask = wmask = super()._order_mask()
        d, st = self._decision, self.model.state
        mask = wmask[:, None] & self._pair_lane[int(d.cold), :, :, d.region]
        W, C = mask.shape
        cost, plate = np.full((W, C), PAIR_COST_CNY), np.ones((W, C))
        st.clock[0] = self.model.env.now  # as the engine sets it before the rule routes
        lines, cold = int(sum(d.qty)), bool(d.cold)
        for w, c in zip(*np.nonzero(mask)):
            cost[w, c], plate[w, c] = self.scorer.score_parts(int(w), int(c), d.region, cold, d.service_level, lines,
                                                              st)
        self._cost, self._plate = cost, plate
        return mask.ravel()

    def _decide(self, a: int) -> None:
        w, c = divmod(a, self.n_carriers)  # the pair (warehouse, carrier): every line, that carrier
        self.model.engine.decide([w] * len(self._decision.sku), carrier=c)

    def promise_action(self) -> int:
        """The pair ``promise_aware`` chooses for the waiting order, from the observation's
        components (lowest ``expected cost + late penalty x P(late)`` over the mask; ties as the
        rule breaks them: the warehouse first in ``cheapest``'s order, then the lower carrier).
        0 when no order is waiting."""
        if self.model is None or self._finished or self._decision is None:
            return 0
        d, s = self._decision, self.scorer
        pen = float(s.late_penalty_by_service[d.service_level])
        mask = self._mask.reshape(self._cost.shape)
        best, best_s = 0, np.inf
        for w in s._pref[int(d.cold)][d.region]:
            for c in np.flatnonzero(mask[w]):
                score = float(self._cost[w, c]) + pen * float(self._plate[w, c]) + float(s.warehouse_offset[w])
                if score < best_s:
                    best, best_s = int(w) * self.n_carriers + int(c), score
        return best

    def action_masks(self) -> np.ndarray:
        """The (warehouse, carrier) pairs allowed for the waiting order (see Action Space)."""
        if self.model is None or self._finished:
            return np.ones(self.action_space.n, dtype=bool)
        return self._mask.copy()

    def _render_extra(self) -> list[str]:
        d = None if self._finished else self._decision
        if d is None:
            return []
        net, C = self.net, self.n_carriers
        allowed = [f"{net.warehouses[a // C]}/{net.carriers[a % C]}" for a in np.flatnonzero(self._mask)]
        return [f"  waiting: order to {net.regions[d.region]}{' (cold)' if d.cold else ''}, "
                f"{len(d.sku)} line(s); allowed: {', '.join(allowed) or 'none'}"]

    def _observe(self) -> np.ndarray:
        if self._finished or self._decision is None:
            W = self.net.n_warehouses
            none = np.zeros(W)
            self._cost, self._plate = np.full((W, self.n_carriers), PAIR_COST_CNY), np.ones((W, self.n_carriers))
            self._wmask = none
        mask, self._mask = self._mask, self._wmask  # v0's features read the warehouse mask
        try:
            base = super()._observe()
        finally:
            self._mask = mask
        pair = np.concatenate([np.clip(self._cost / PAIR_COST_CNY, 0.0, 1.0).ravel(),
                               np.clip(self._plate, 0.0, 1.0).ravel()])
        return np.concatenate([base, pair]).astype(np.float32)

    def _heuristic_policy(self, name: str):  # noqa: ANN202
        if name == "promise_aware":
            return PromiseAware(late_penalty_cny=self.weights.late_penalty_cny,
                                co2_price_cny_per_kg=self.weights.co2_price_cny_per_kg)
        return super()._heuristic_policy(name)

