"""``twin/Routing-v1``: routing per decision epoch on a binding peak, as a residual on ``promise_aware``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from rl._common import Ledger, hot_skus, network_bounds, network_feature_names, network_features
from rl.envs.base import _EPS, TwinEnv
from twin.policies import PromiseAware
from twin.scenario.schema import PICK_PRIORITIES, Scenario, WarehouseOutage
from twin.sim.model import FulfillmentModel
from twin.world.network import Network

__all__ = ["RoutingV1Env", "V1Knobs", "PEAK_FEATURES"]

#: The features Routing-v1 adds to Routing-v0's, per warehouse and per carrier (in this order).
PEAK_FEATURES = {
    "warehouse": ("backlog_trend", "dock_load", "hot_sku_cover", "outage_soon"),
    "carrier": ("capacity_now", "next_departure"),
}
_EXPRESS_FIRST = PICK_PRIORITIES.index("express_first")
_FIFO = PICK_PRIORITIES.index("fifo")


class V1Knobs:
    """What Routing-v1's observation and action mean, apart from the env: the one code the env
    steps with and that runs a trained policy where a planner looks (:mod:`rl.controller`,
    ``twin run --policy model.zip``). See :class:`RoutingV1Env` for the definitions."""

    def __init__(self, net: Network, scenario: Scenario, epoch_h: float, tilt_cny: float, late_range: float,
                 late_penalty_cny: float, rate_ref: float) -> None:
        if not (np.isfinite(tilt_cny) and tilt_cny >= 0):
            raise ValueError(f"tilt_cny must be a finite number >= 0, got {tilt_cny!r}")
        if not (np.isfinite(late_range) and late_range >= 1):
            raise ValueError(f"late_range must be a finite number >= 1, got {late_range!r}")
        self.net, self.epoch_h, self.rate_ref = net, float(epoch_h), float(rate_ref)
        self.tilt_cny, self.late_range, self.late_penalty = float(tilt_cny), float(late_range), float(late_penalty_cny)
        sc = scenario
        W, C = net.n_warehouses, len(net.carriers)
        self.W, self.C, self.K = W, C, len(sc.demand.service_levels)
        self.n_actions = 2 * W + self.K
        self._room = np.array([[c.capacity if net.serves[i, w].any() else 0 for w in range(W)]
                               for i, c in enumerate(sc.carriers)], dtype=float).sum(axis=0)
        self._first = np.array([c.first_departure_h for c in sc.carriers])
        self._interval = np.array([c.departure_interval_h for c in sc.carriers])
        lines = sc.demand.lines_per_order
        self._ship_rate = np.array([w.pick.lines_per_agv_h / lines for w in sc.warehouses])
        # per warehouse, the 10 most popular SKUs it carries, and their initial stock
        self._hot = hot_skus(net, 10)
        self._hot_rows = np.arange(W)[:, None]
        self._hot_init = np.maximum(net.initial_stock[self._hot_rows, self._hot].astype(float), 1.0)
        self._default_prio = np.array([PICK_PRIORITIES.index(w.pick.priority) for w in sc.warehouses], dtype=np.int64)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        low, high = network_bounds(self.W, self.net.n_regions)
        extra = len(PEAK_FEATURES["warehouse"]) * self.W + len(PEAK_FEATURES["carrier"]) * self.C
        return (np.concatenate([low, np.zeros(extra, np.float32)]),
                np.concatenate([high, np.ones(extra, np.float32)]))

    def feature_names(self) -> list[str]:
        net = self.net
        names = network_feature_names(net.warehouses, net.regions)
        for f in PEAK_FEATURES["warehouse"]:
            names += [f"{f}[{w}]" for w in net.warehouses]
        for f in PEAK_FEATURES["carrier"]:
            names += [f"{f}[{c}]" for c in net.carriers]
        return names

    def start(self, model: FulfillmentModel) -> None:
        """A new run: the outages it announces, and the backlog trend from zero."""
        self._outages = [(self.net.warehouses.index(d.warehouse), d.start_h, d.end_h)
                         for d in model.scenario.disruptions if isinstance(d, WarehouseOutage)]
        self._last_backlog_h = self._backlog_hours(model)
        self._trend = np.zeros(self.W)

    def apply(self, policy: PromiseAware, state: Any, action: Any) -> None:
        """Turn the knobs: the policy's offsets and late penalties, the State's pick priorities."""
        W, K = self.W, self.K
        a = np.clip(np.asarray(action, dtype=float), -1.0, 1.0)
        policy.warehouse_offset[:] = self.tilt_cny * a[:W]
        policy.late_penalty_by_service[:] = self.late_penalty * self.late_range ** a[W:W + K]
        prio = self._default_prio.copy()
        prio[a[W + K:] > 0.5] = _EXPRESS_FIRST
        prio[a[W + K:] < -0.5] = _FIFO
        state.pick_priority[:] = prio

    def end_epoch(self, model: FulfillmentModel) -> None:
        now_h = self._backlog_hours(model)
        self._trend = now_h - self._last_backlog_h
        self._last_backlog_h = now_h

    def _backlog_hours(self, model: FulfillmentModel) -> np.ndarray:
        st = model.state
        rate = np.maximum(st.pick_servers * st.wh_open * self._ship_rate, 1e-9)
        return st.backlog / rate

    def observe(self, model: FulfillmentModel) -> np.ndarray:
        st = model.state
        t = float(model.env.now)
        base = network_features(model, self.epoch_h, self.rate_ref)
        trend = np.clip(0.5 + self._trend / 12.0, 0.0, 1.0)  # [-6 h, +6 h] -> [0, 1]
        dock = np.clip(st.dock_waiting.sum(axis=0) / np.maximum(self._room, 1.0) / 4.0, 0.0, 1.0)
        cover = (st.inventory[self._hot_rows, self._hot] / self._hot_init).min(axis=1)
        soon = np.zeros(self.W)
        for w, s, e in self._outages:
            if s - 6.0 <= t < e:
                soon[w] = 1.0
        nxt = np.where(t <= self._first, self._first - t, (self._first - t) % self._interval)
        carrier = np.concatenate([np.clip(st.carrier_capacity_mult, 0, 1), np.clip(nxt / self._interval, 0, 1)])
        return np.concatenate([base, trend, dock, np.clip(cover, 0, 1), soon, carrier]).astype(np.float32)


class RoutingV1Env(TwinEnv):
    """Order routing per decision epoch on a binding peak: the policy adjusts ``promise_aware``,
    the strongest heuristic, for the next epoch.

    ## Description

    The twin runs a fulfillment network (default: the binding Singles' Day, ~177k orders in
    48 h, full size) with the ``kernel`` or ``simpy`` engine. Every order is routed natively by
    :class:`twin.policies.PromiseAware`: the warehouse able to serve it whole and the carrier with
    the lowest expected objective, cost + CO2 price + late penalty x P(late) (the pick queue,
    the departure clock and the dock's load, the lane's transit under today's weather). At each
    epoch (``epoch_h`` hours) the agent turns that rule's knobs, which the engines read in place:
    a score offset per warehouse (draws load to it or pushes load away: queues, outages, stock),
    the late penalty per service level (how readily express or standard parcels take the
    faster, dearer carrier), and each warehouse's pick priority (FIFO or express first). The
    zero action is ``promise_aware`` exactly, so a policy starts from the best heuristic and
    learns corrections (a residual policy).

    ## Action Space

    ``Box(-1, 1, (2W + K,), float32)`` (``W`` warehouses, ``K`` service levels):

    - ``action[:W]``: warehouse ``w``'s score offset, ``tilt_cny * a`` CNY per order (default
      ``tilt_cny`` 5): positive pushes orders away, negative draws them.
    - ``action[W:W+K]``: service level ``k``'s late penalty, the objective's late penalty times
      ``late_range ** a`` (default ``late_range`` 4: from a quarter to four times).
    - ``action[W+K:]``: warehouse ``w`` picks express first when ``a > 0.5``, FIFO when
      ``a < -0.5``, and as its scenario says otherwise.

    Why not per-region shares and per-region carriers (the issue's first sketch): ``promise_aware``
    already chooses per order, from the state, which warehouse and carrier serve each region
    best; what it cannot see is the future (the midnight spike, a coming outage, stock about to
    run out) and the network effects of its own choices (queues it builds elsewhere). Offsets,
    penalties and priorities are the few numbers that change those choices network-wide.

    ## Observation Space

    ``Box(low, high, (5 + 5W + 3R + 4W + 2C,), float32)``: Routing-v0's features
    (:func:`rl._common.network_features`: time of day, horizon progress, demand forecast for the
    next epoch and 6 h ahead, per warehouse open / cold storage working / AGVs up / backlog in
    hours of pick capacity / inventory cover, per region weather delay / lanes open / demand
    multiplier), then per warehouse ``backlog_trend`` (the change of the backlog over the last
    epoch in hours of pick capacity, / 6 h, mapped from [-1, 1] to [0, 1]), ``dock_load``
    (parcels waiting for a departure over the room of one departure of every carrier there,
    / 4), ``hot_sku_cover`` (the lowest stock cover among the 10 most popular SKUs it carries:
    on hand over initial; 0 for a site that carries none), ``outage_soon`` (1 when the scenario's outage of that warehouse is
    under way or starts within 6 h: announced disruptions), then per carrier ``capacity_now``
    (its capacity multiplier) and ``next_departure`` (hours to its next departure over its
    interval). Names in ``env.unwrapped.feature_names``; every feature in [0, 1] except the time
    of day in [-1, 1].

    ## Rewards

    As Routing-v0: ``-reward_scale * (cost + late_penalty_cny * late + lost_penalty_cny * lost +
    co2_price_cny_per_kg * co2_kg) / orders_per_step`` for the epoch, the orders not delivered
    when the model has drained counted late at the last step; the episode's rewards sum to
    ``-reward_scale / orders_per_step`` times its whole objective (identical to the records).

    ## Starting State

    Time 0 of the scenario, the model seeded from ``self.np_random``; with ``randomize`` the
    demand scale, weather severity and a possible warehouse outage are drawn
    (:class:`rl._common.Randomization`), or set by ``reset(options=...)``.

    ## Episode End

    Terminates at the horizon (``horizon_h / epoch_h`` steps, 48 by default); no truncation.

    ## Arguments

    ``scenario`` (default ``"singles_day"``), ``scale`` (1.0), ``horizon_h`` (None: the
    scenario's), ``engine`` (None: ``"kernel"`` when built), ``randomize`` (False), ``epoch_h``
    (1.0), ``tilt_cny`` (5.0), ``late_range`` (4.0), ``late_penalty_cny`` (50),
    ``lost_penalty_cny`` (100), ``co2_price_cny_per_kg`` (1.0), ``reward_scale`` (0.1),
    ``render_mode`` (None or ``"ansi"``). ``info`` as Routing-v0's.

    ## Version History

    * v1: a residual on ``promise_aware`` (warehouse offsets, late penalty per service level,
      pick priority per warehouse) on the binding Singles' Day, with peak observations.
      ``twin/Routing-v0`` (allocation shares and a per-region fast-carrier switch over
      ``cheapest``) stays registered unchanged.
    """

    def __init__(self, scenario: str | Scenario = "singles_day", scale: float = 1.0, horizon_h: float | None = None,
                 engine: str | None = None, randomize: bool | Mapping[str, Any] | None = False,
                 epoch_h: float = 1.0, tilt_cny: float = 5.0, late_range: float = 4.0,
                 late_penalty_cny: float = 50.0, lost_penalty_cny: float = 100.0, co2_price_cny_per_kg: float = 1.0,
                 reward_scale: float = 0.1, render_mode: str | None = None) -> None:
        super().__init__(scenario, scale, horizon_h, engine, randomize, late_penalty_cny, lost_penalty_cny,
                         co2_price_cny_per_kg, reward_scale, render_mode)
        self._ticks = self._epoch_ticks(epoch_h)
        self.epoch_h = float(epoch_h)
        self.knobs = V1Knobs(self.net, self.scenario, self.epoch_h, tilt_cny, late_range, self.weights.late_penalty_cny,
                             self.rate_ref)
        self.tilt_cny, self.late_range, self.K = self.knobs.tilt_cny, self.knobs.late_range, self.knobs.K
        self.action_space = spaces.Box(-1.0, 1.0, (self.knobs.n_actions,), dtype=np.float32)
        low, high = self.knobs.bounds()
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.feature_names = self.knobs.feature_names()
        self._orders_per_step = self.rate_ref * self.epoch_h

    # ------------------------------------------------------------------ episode
    def _start(self) -> None:
        ep = self._episode
        self._policy = self._heuristic_policy(ep["heuristic"] or "promise_aware")
        self.model = FulfillmentModel(ep["scenario"], seed=ep["seed"], engine=self.engine, routing=self._policy,
                                      timeseries=False, network=self.net)
        self._ledger = Ledger(self.model)
        self.knobs.start(self.model)

    def _advance(self, action: Any) -> tuple[dict[str, float], bool, dict[str, Any]]:
        m = self.model
        if not self._episode["heuristic"]:
            self.knobs.apply(self._policy, m.state, action)
        for _ in range(self._ticks):
            if m.env.now >= self.horizon_h - _EPS:
                break
            self._tick()
        self.knobs.end_epoch(m)
        terminated = m.env.now >= self.horizon_h - _EPS
        if terminated:
            self._drain()
        return self._ledger.take(final=terminated), terminated, {}

    def _observe(self) -> np.ndarray:
        return self.knobs.observe(self.model)

    def _heuristic_policy(self, name: str):  # noqa: ANN202
        if name == "promise_aware":
            return PromiseAware(late_penalty_cny=self.weights.late_penalty_cny,
                                co2_price_cny_per_kg=self.weights.co2_price_cny_per_kg)
        return super()._heuristic_policy(name)

