"""``twin/OrderRouting-v0``: routing one order per step (a warehouse, with action masks)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from rl._common import (
    Ledger,
)
from rl.envs.base import _EPS, TwinEnv
from twin.policies import (
    ROUTING_POLICIES,
)
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
    [-1, 1]; names in ``env.unwrapped.feature_names``:

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
        n = 6 + R + 7 * W
        low = np.zeros(n, dtype=np.float32)
        low[:2] = -1.0
        self.observation_space = spaces.Box(low, np.ones(n, dtype=np.float32), dtype=np.float32)
        self.feature_names = (["time_of_day_sin", "time_of_day_cos", "horizon_progress"]
                              + [f"region[{r}]" for r in net.regions] + ["cold_chain", "lines", "promise"]
                              + [f"{f}[{w}]" for f in ("mask", "backlog_hours", "pick_capacity", "distance",
                                                       "lane_cost", "lane_transit", "stock_cover")
                                 for w in net.warehouses])
        # lane tables of the base heuristic's carrier, [cold, W, R]
        b = ROUTING_POLICIES[base]().bind(net, None)
        car = b.lane_carrier
        ok = car >= 0
        c = np.where(ok, car, 0)
        w_idx, r_idx = np.arange(W)[None, :, None], np.arange(R)[None, None, :]
        self._lane_ok = ok
        self._lane_cost = np.where(ok, net.costs.parcel[np.arange(2)[:, None, None], c, w_idx, r_idx], 0.0)
        self._lane_transit = np.where(ok, net.transit_mean_h[c, w_idx, r_idx], 0.0)
        self._max_promise = max(s.promise_h for s in self.scenario.demand.service_levels.values())
        self._agvs = np.array([w.pick.agvs for w in self.scenario.warehouses], dtype=float)
        self._ship_rate = np.array([w.pick.lines_per_agv_h / self.scenario.demand.lines_per_order
                                    for w in self.scenario.warehouses])

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
            eng.decide([a] * len(self._decision.sku))
        more = self._next_decision()
        if not more:
            self._finish()
        return (self._ledger.take(final=not more), not more,
                {"invalid_action": not valid and not self._episode["heuristic"]})

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
        ok = st.wh_open & self._lane_ok[int(d.cold), :, d.region]
        if d.cold:
            ok = ok & st.cold_ok
        return ok & (st.inventory[:, list(d.sku)] >= np.asarray(d.qty)).all(axis=1)

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
        W, R = net.n_warehouses, net.n_regions
        t = float(m.env.now)
        day = 2 * math.pi * (t % 24.0) / 24.0
        x = np.zeros(self.observation_space.shape, dtype=float)
        x[0], x[1], x[2] = math.sin(day), math.cos(day), min(t / self.horizon_h, 1.0)
        if self._finished or self._decision is None:
            return np.clip(x, self.observation_space.low, self.observation_space.high).astype(np.float32)
        d = self._decision
        sku, qty = list(d.sku), d.qty
        st = m.state
        r, cold = d.region, int(d.cold)
        x[3 + r] = 1.0
        i = 3 + R
        x[i] = float(cold)
        x[i + 1] = sum(qty) / 5.0
        x[i + 2] = (d.promised_at - d.created_at) / self._max_promise
        i += 3
        up = np.where(st.wh_open, st.pick_servers.astype(float), 0.0)
        rate = up * self._ship_rate
        backlog_h = np.where(rate > 0, st.backlog / np.maximum(rate, _EPS), np.where(st.backlog > 0, 24.0, 0.0))
        init = np.maximum(net.initial_stock[:, sku], 1).astype(float)
        cover = (st.inventory[:, sku] / init).min(axis=1)
        feats = [self._mask.astype(float), backlog_h / 24.0, st.pick_servers / np.maximum(self._agvs, 1.0),
                 net.distance_km[:, r] / 4000.0, self._lane_cost[cold, :, r] / 50.0,
                 self._lane_transit[cold, :, r] * st.region_transit_mult[r] / 72.0, cover]
        for f in feats:
            x[i:i + W] = f
            i += W
        return np.clip(x, self.observation_space.low, self.observation_space.high).astype(np.float32)


# ================================================================================ Reallocation-v0
