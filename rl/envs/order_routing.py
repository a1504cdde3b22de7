"""``twin/OrderRouting-v0``: routing one order per step (a warehouse, with action masks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from rl._common import (
    Ledger,
)
from rl.envs.base import TwinEnv
from twin.policies import (
    ROUTING_POLICIES,
)
from twin.policies.features import OrderLanes, order_bounds, order_feature_names, order_features, order_mask
from twin.scenario.schema import Scenario
from twin.sim.model import FulfillmentModel
from twin.world.state import State

__all__ = ["OrderRoutingEnv"]


class OrderRoutingEnv(TwinEnv):
    """Order routing one order at a time: a discrete warehouse choice with action masks.

    ## Description

    The ``simpy`` engine stops at each order arrival (its decision points, ``model.next_decision``): the
    agent picks the warehouse that ships the whole order. Orders that no single warehouse can
    serve are not asked: the ``base`` heuristic splits them (or they are lost). The parcel takes
    the ``base`` heuristic's carrier on the chosen lane.

    ## Action Space

    ``Discrete(W)``: the warehouse. ``action_masks()`` (for sb3-contrib's MaskablePPO) is True
    for a warehouse that is open, cold-capable if the order is cold, holds the stock of every
    line and has a lane to the order's region. An action outside the mask is not an error: the
    ``base`` heuristic routes that order instead and ``info["invalid_action"]`` is True.

    ## Observation Space

    ``Box(low, high, (6 + R + 7W,), float32)``, all in [0, 1] except the time of day in
    [-1, 1]; names in ``env.unwrapped.feature_names``; computed by
    :func:`twin.policies.features.order_features` (the one definition, which the exported
    policy's runtime and the routing service call on live input):

    - time of day (sin, cos), horizon progress;
    - the order: region (one-hot, R), cold chain (0/1), lines / 5 (clipped), promise / the
      longest promise of the scenario;
    - per warehouse: ``mask`` (the action mask), ``backlog_hours`` (shipments waiting over the
      pick rate of the AGVs up, / 24 h, clipped), ``pick_capacity`` (AGVs up / fleet),
      ``distance`` (km to the order's region / 4000, clipped), ``lane_cost`` (CNY of the lane's
      carrier for this order / 50, clipped), ``lane_transit`` (mean transit hours x the region's
      weather multiplier / 72, clipped), ``stock_cover`` (the smallest ratio over the order's
      lines of units on hand to the warehouse's initial units of that SKU, clipped to 1).

    ## Rewards

    ``-reward_scale * (cost + late_penalty_cny * late + lost_penalty_cny * lost +
    co2_price_cny_per_kg * co2_kg)`` accrued since the previous decision (this order's
    shipment, deliveries late, orders lost; normalised per order, so about -1 per step). At the
    end the model runs to its end and every order not delivered counts as late.

    ## Starting State

    As ``twin/Routing-v0``: time 0 of the scenario, the model seeded from ``self.np_random``,
    randomisation drawn per episode or set by ``reset(options=...)``; the first observation is
    the first order that has a choice.

    ## Episode End

    Terminates after the last order of the horizon has been routed (thousands of steps: the
    default scenario is Singles' Day at 10% of its volume over its first 12 h, about 1,800
    orders).

    ## Arguments

    ``scenario`` (``"singles_day"``), ``scale`` (0.1), ``horizon_h`` (12.0), ``engine``
    (``"simpy"`` only: the kernel routes inside C), ``randomize``, ``base``
    (``"cheapest"``), ``late_penalty_cny``, ``lost_penalty_cny``, ``co2_price_cny_per_kg``,
    ``reward_scale``, ``render_mode`` as in ``twin/Routing-v0`` (``"ansi"`` adds the waiting
    order and its allowed warehouses). ``info``: the KPIs accrued since the last step,
    ``invalid_action``, and at the end ``episode_kpis``.

    ## Version History

    * v0: initial version.
    """

    _SIM = ("model", "_ledger", "_policy", "_decision", "_mask", "_finished")
    supports_masks = True
    engines = ("simpy",)

    def __init__(self, scenario: str | Scenario = "singles_day", scale: float = 0.1,
                 horizon_h: float | None = 12.0, engine: str | None = "simpy",
                 randomize: bool | Mapping[str, Any] | None = False, base: str = "cheapest",
                 late_penalty_cny: float = 50.0, lost_penalty_cny: float = 100.0, co2_price_cny_per_kg: float = 1.0,
                 reward_scale: float = 0.1, render_mode: str | None = None) -> None:
        super().__init__(scenario, scale, horizon_h, "simpy" if engine is None else engine, randomize,
                         late_penalty_cny, lost_penalty_cny, co2_price_cny_per_kg, reward_scale, render_mode)
        if base not in ROUTING_POLICIES:
            raise ValueError(f"base must be one of {', '.join(ROUTING_POLICIES)}; got {base!r}")
        self.base = base
        net = self.net
        W, R = net.n_warehouses, net.n_regions
        self.action_space = spaces.Discrete(W)
        low, high = order_bounds(W, R)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.feature_names = order_feature_names(net.warehouses, net.regions)
        #: the network's tables the observation reads (the base heuristic's lanes): the one
        #: definition of the features, shared with the exported-policy runtime and the service
        self.lanes = OrderLanes.from_network(net, base)
        self._lane_ok = self.lanes.lane_ok

    # ------------------------------------------------------------------ episode
    def _start(self) -> None:
        ep = self._episode
        self._policy = self._heuristic_policy(ep["heuristic"] or self.base)
        self.model = FulfillmentModel(ep["scenario"], seed=ep["seed"], engine=self.engine, routing=self._policy,
                                      timeseries=False, network=self.net)
        self._ledger = Ledger(self.model)
        self._finished = False
        self._decision = None
        if not self._next_decision():
            self._finish()

    @property
    def _done(self) -> bool:
        return self._finished

    def _advance(self, action: Any) -> tuple[dict[str, float], bool, dict[str, Any]]:
        eng = self.model.engine
        a = int(np.asarray(action).item())
        valid = 0 <= a < len(self._mask) and bool(self._mask[a])
        if self._episode["heuristic"] or not valid:
            eng.decide(None)
        else:
            self._decide(a)
        more = self._next_decision()
        if not more:
            self._finish()
        return (self._ledger.take(final=not more), not more,
                {"invalid_action": not valid and not self._episode["heuristic"]})

    def _decide(self, a: int) -> None:
        """Answer the waiting order with the valid action ``a`` (here: the warehouse of every line)."""
        self.model.engine.decide([a] * len(self._decision.sku))

    def _finish(self) -> None:
        self._decision = None
        self._drain()
        self._finished = True

    def _next_decision(self) -> bool:
        """Run the model to the next order with a choice (True) or past the horizon (False),
        with the model's decision points (:meth:`FulfillmentModel.next_decision`)."""
        m = self.model
        while True:
            d = m.next_decision(stop_h=self.horizon_h)
            if d is None:
                self._decision = None
                return False
            self._decision = d
            self._mask = self._order_mask()
            if self._episode["heuristic"] or self._mask.any():
                return True
            m.engine.decide(None)  # no warehouse can take it whole: the base heuristic splits it or it is lost

    def _order_mask(self) -> np.ndarray:
        d = self._decision
        st: State = self.model.state
        return order_mask(self.lanes, d.region, bool(d.cold), st.wh_open, st.cold_ok, st.inventory[:, list(d.sku)],
                          np.asarray(d.qty))

    def _render_extra(self) -> list[str]:
        d = None if self._finished else self._decision
        if d is None:
            return []
        allowed = [w for w, ok in zip(self.net.warehouses, self._mask) if ok]
        return [f"  waiting: order to {self.net.regions[d.region]}{' (cold)' if d.cold else ''}, "
                f"{len(d.sku)} line(s); allowed: {', '.join(allowed) or 'none'}"]

    def action_masks(self) -> np.ndarray:
        """The warehouses allowed for the waiting order (see Action Space)."""
        if self.model is None or self._finished:
            return np.ones(self.net.n_warehouses, dtype=bool)
        return self._mask.copy()

    def _observe(self) -> np.ndarray:
        m, net = self.model, self.net
        t = float(m.env.now)
        if self._finished or self._decision is None:
            none = np.zeros(net.n_warehouses)
            return order_features(self.lanes, t, self.horizon_h, 0, False, 0.0, 0.0, none, none, none, none, 1.0, None)
        d = self._decision
        sku, st = list(d.sku), m.state
        init = np.maximum(net.initial_stock[:, sku], 1).astype(float)
        cover = (st.inventory[:, sku] / init).min(axis=1)
        return order_features(self.lanes, t, self.horizon_h, d.region, bool(d.cold), float(sum(d.qty)),
                              d.promised_at - d.created_at, self._mask, st.backlog, st.pick_servers, st.wh_open,
                              float(st.region_transit_mult[d.region]), cover)


# ================================================================================ Reallocation-v0
