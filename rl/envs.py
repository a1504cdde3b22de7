"""Gymnasium environments on the twin: routing per decision epoch, routing per order, and
inventory reallocation between warehouses.

Registered in :mod:`rl` as ``twin/Routing-v0``, ``twin/OrderRouting-v0`` and
``twin/Reallocation-v0``. This module imports numpy, gymnasium and the twin only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rl._common import (
    Ledger,
    Randomization,
    RewardWeights,
    base_scenario,
    default_engine,
    episode_scenario,
    mean_rate_per_h,
    network_bounds,
    network_feature_names,
    network_features,
    objective,
)
from twin.model import ENGINES, FulfillmentModel
from twin.network import Network, build_network
from twin.policies import (
    ROUTING_POLICIES,
    AllocationShares,
    Fastest,
    NoReallocation,
    ReallocationPolicy,
    Rebalance,
    RoutingPolicy,
    transfers_from_nearest,
)
from twin.schema import Scenario
from twin.state import State

__all__ = ["RoutingEnv", "OrderRoutingEnv", "ReallocationEnv", "EpochShares", "TargetCover",
           "ROUTING_HEURISTICS", "REALLOCATION_HEURISTICS"]

#: The twin's routing heuristics, by name (the baselines of the routing envs).
ROUTING_HEURISTICS = tuple(ROUTING_POLICIES)
#: The twin's reallocation heuristics (the baselines of Reallocation-v0).
REALLOCATION_HEURISTICS = ("none", "rebalance")

_EPS = 1e-9


class _TwinEnv(gym.Env):
    """Shared machinery: scenario and randomisation, seeding, reward weights, pickling by replay.

    A subclass builds its spaces in ``__init__`` and implements ``_start`` (build the model of
    ``self._episode``), ``_advance(action) -> (ledger part, terminated, info)`` (change the
    simulation) and ``_observe``.
    """

    metadata = {"render_modes": []}
    _SIM: tuple[str, ...] = ("model", "_ledger", "_policy")
    _heuristics: tuple[str, ...] = ROUTING_HEURISTICS
    _engines: tuple[str, ...] = ENGINES

    def __init__(self, scenario: str | Scenario, scale: float, horizon_h: float | None, engine: str | None,
                 randomize: bool | Mapping[str, Any] | None, late_penalty_cny: float, lost_penalty_cny: float,
                 co2_price_cny_per_kg: float, reward_scale: float) -> None:
        super().__init__()
        self.scenario = base_scenario(scenario, scale, horizon_h)
        self.engine = default_engine() if engine is None else engine
        if self.engine not in self._engines:
            raise ValueError(f"engine must be one of {', '.join(self._engines)} for {type(self).__name__}; "
                             f"got {self.engine!r}")
        self.randomization = Randomization.parse(randomize)
        self.weights = RewardWeights(late_penalty_cny, lost_penalty_cny, co2_price_cny_per_kg, reward_scale)
        self.net: Network = build_network(self.scenario)
        self.rate_ref = mean_rate_per_h(self.scenario)
        self.horizon_h = float(self.scenario.horizon_h)
        self._episode: dict[str, Any] | None = None
        for k in self._SIM:
            setattr(self, k, None)

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # noqa: ANN201
        """Start an episode. ``options`` may set ``demand_scale``, ``weather_severity`` and
        ``outage`` (``(warehouse, start_h, end_h)`` or None), overriding the randomisation draw,
        and ``heuristic``: the name of one of the twin's heuristics to decide this episode
        instead of the actions (which are then ignored), for baselines in the same env."""
        super().reset(seed=seed)
        opts = dict(options or {})
        heuristic = opts.pop("heuristic", None)
        if heuristic is not None and heuristic not in self._heuristics:
            raise ValueError(f"options['heuristic'] must be one of {', '.join(self._heuristics)}; got {heuristic!r}")
        draw: dict[str, Any] = {"demand_scale": 1.0, "weather_severity": 1.0, "outage": None}
        if self.randomization is not None:
            draw = self.randomization.draw(self.np_random, self.net.warehouses, self.horizon_h)
        bad = set(opts) - set(draw)
        if bad:
            raise ValueError(f"reset options: unknown keys {sorted(bad)}; allowed: heuristic, {', '.join(draw)}")
        draw.update(opts)
        model_seed = int(self.np_random.integers(2**31))
        self._episode = {"scenario": self._episode_scenario(draw), "seed": model_seed, "heuristic": heuristic,
                         "draw": draw, "actions": []}
        self._start()
        info = {"seed": model_seed, "heuristic": heuristic or "", "demand_scale": float(draw["demand_scale"]),
                "weather_severity": float(draw["weather_severity"]), "outage": str(draw["outage"] or "")}
        return self._observe(), info

    def step(self, action: Any):  # noqa: ANN201
        if self._episode is None or self.model is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended: call reset()")
        self._episode["actions"].append(np.array(action, copy=True))
        part, terminated, extra = self._advance(action)
        obj = objective(part, self.weights, part.get("transfer_cny", 0.0))
        reward = -self.weights.scale * obj / self._orders_per_step
        info: dict[str, Any] = {"time_h": float(self.model.env.now), **part, "objective_cny": obj, **extra}
        if terminated:
            info["episode_kpis"] = self._ledger.episode_kpis(self.weights)
        return self._observe(), float(reward), bool(terminated), False, info

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """Everything but the running simulation (SimPy processes are generators, which do not
        pickle): unpickling rebuilds it by replaying the episode's seed and actions, which gives
        the same state exactly."""
        state = self.__dict__.copy()
        for k in self._SIM:
            state[k] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._episode is not None:
            self._start()
            for a in self._episode["actions"]:
                self._advance(a)

    # ------------------------------------------------------------------ helpers
    @property
    def _done(self) -> bool:
        return not self.model.running

    def _episode_scenario(self, draw: dict[str, Any]) -> Scenario:
        return episode_scenario(self.scenario, draw["demand_scale"], draw["weather_severity"], draw["outage"])

    def _tick(self) -> None:
        """One model tick. The env's models record no time-series rows (``timeseries=False``:
        the ledger reads the engine's running counters), so ``model.timeseries`` stays empty."""
        self.model.step()

    def _drain(self) -> None:
        """Run the model to its end (horizon plus drain: no new orders, parcels delivered)."""
        m = self.model
        while m.running:
            self._tick()

    def _heuristic_policy(self, name: str) -> RoutingPolicy:
        return ROUTING_POLICIES[name]()

    _orders_per_step: float = 1.0

    def _start(self) -> None:
        raise NotImplementedError

    def _advance(self, action: Any) -> tuple[dict[str, float], bool, dict[str, Any]]:
        raise NotImplementedError

    def _observe(self) -> np.ndarray:
        raise NotImplementedError


# ====================================================================================== Routing-v0
class EpochShares:
    """Turns a Routing-v0 action into the parameters of an :class:`AllocationShares` policy.

    Shares: ``softmax_w(-rel_score[r, w] / temperature + tilt_scale * tilt[w])``, where
    ``rel_score`` is the ``base`` heuristic's static score of warehouse ``w`` for region ``r``
    minus the region's best, over the network's mean score; with ``tilt = 0`` and a small
    temperature, each region sends its orders to the base heuristic's choice. Carriers: region
    ``r``'s lanes take the fastest carrier for the epoch when ``fast[r] > 0.5``, else the base
    heuristic's (so the zero action is the base heuristic). The policy stays an exact ``AllocationShares``, so the kernel routes it natively:
    ``set_shares`` swaps the shares, and the lane carrier table is written in place.
    """

    def __init__(self, net: Network, base: str, temperature: float, tilt_scale: float) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        b = ROUTING_POLICIES[base]().bind(net, None)
        self.cheap_carrier = b.lane_carrier.copy()
        fast = Fastest().bind(net, None).lane_carrier
        self.fast_carrier = np.where(fast >= 0, fast, self.cheap_carrier)
        s = b.static_score[0]  # [R, W], ambient
        finite = np.isfinite(s)
        best = np.where(finite, s, np.inf).min(axis=1, keepdims=True)
        rel = np.where(finite, s - best, 0.0) / max(float(np.abs(s[finite]).mean()), _EPS)
        prior = np.where(finite, -rel / temperature, -np.inf)
        # softmax_w(prior + s * tilt) = exp(prior) * exp(s * tilt), normalised per region (each
        # region's best prior is 0, so exp(prior) is in [0, 1]; exp(-inf) = 0 for infeasible
        # ones); regions without any finite score get uniform shares
        self._exp_prior = np.where(finite.any(axis=1, keepdims=True), np.exp(prior), 1.0)
        self.tilt_scale = float(tilt_scale)
        self._fast: bytes | None = None  # the carrier switch last written (skip equal rewrites)
        self._lane: np.ndarray | None = None  # ... into this policy's lane table

    def apply(self, policy: AllocationShares, tilt: np.ndarray, fast: np.ndarray) -> None:
        policy.set_shares(self._exp_prior * np.exp(self.tilt_scale * np.asarray(tilt, dtype=float)))
        use_fast = np.asarray(fast) > 0.5
        key = use_fast.tobytes()
        if key != self._fast or policy.lane_carrier is not self._lane:
            policy.lane_carrier[...] = np.where(use_fast[None, None, :], self.fast_carrier, self.cheap_carrier)
            self._fast, self._lane = key, policy.lane_carrier


class RoutingEnv(_TwinEnv):
    """Order routing per decision epoch: the policy sets how each region's orders are spread
    over the warehouses, and which carrier they take, for the next epoch.

    ## Description

    The twin (a Mesa model with the ``kernel`` or ``simpy`` engine) runs a fulfillment network
    on a scenario (default: Singles' Day at its full size, ~166k orders in 48 h). At each
    decision epoch (``epoch_h`` hours, a multiple of the scenario's tick) the agent chooses
    routing parameters; the engine then routes every order of the epoch with them (~3,500 orders
    per 1 h step at full size, ~350 at ``scale=0.1``) through an :class:`twin.policies.AllocationShares` policy (see :class:`EpochShares`):
    infeasible warehouses (closed, out of stock, not cold-capable for a cold order, no lane)
    are projected out for each order, and orders no single warehouse can serve are split.

    ## Action Space

    ``Box(-1, 1, (W + R,), float32)``. Why this parametrisation rather than the ``R x W``
    shares: the raw shares (248 numbers for 8 warehouses and 31 regions) are hard to learn from
    a few thousand episodes, and most of them are obviously bad (a region served from the far
    side of the country). Instead:

    - ``action[:W]``: a tilt per warehouse; region ``r`` sends orders to warehouse ``w`` in
      shares ``softmax_w(-rel_score[r, w] / temperature + tilt_scale * tilt[w])``, where
      ``rel_score`` is the ``base`` heuristic's static score relative to the region's best. A
      zero tilt is (about) the base heuristic; a positive tilt draws load to a warehouse, a
      negative one pushes it away (to relieve queues, outages, stock-outs).
    - ``action[W:]``: per region, ``a > 0.5`` ships the region's parcels of the epoch by the
      fastest carrier of each lane instead of the base heuristic's carrier (for the default
      ``cheapest`` base: the express carrier instead of the cheap road network). A threshold
      rather than a per-parcel mix so that the kernel routes with a plain lane table; the
      Gaussian exploration of PPO makes the expected reward smooth in the action mean anyway.

    The zero action is (about) the base heuristic, so a policy starts from it and learns
    corrections.

    ## Observation Space

    ``Box(low, high, (5 + 5W + 3R,), float32)``, every feature in [0, 1] except the time of
    day in [-1, 1]; names in ``env.unwrapped.feature_names``, definitions in
    :func:`rl._common.network_features`: time of day (sin, cos), horizon progress, demand
    forecast for the next epoch and 6 h ahead, per warehouse open / cold storage working /
    share of AGVs up / backlog in hours of pick capacity / inventory cover, per region weather
    transit delay / lanes open / demand multiplier.

    ## Rewards

    ``-reward_scale * (cost + late_penalty_cny * late + lost_penalty_cny * lost +
    co2_price_cny_per_kg * co2_kg) / orders_per_step``, where cost (CNY: carrier, reefer,
    handling) and CO2 are charged for the shipments routed in the epoch, ``late`` counts the
    orders delivered after their promise in the epoch, ``lost`` the orders lost, and
    ``orders_per_step`` is the expected number of orders of an epoch (the horizon's mean rate
    x ``epoch_h``), so a step's reward is about -1. At the last step the model runs to its end
    (the drain) and every order not delivered by then counts as late: the episode's rewards
    sum to ``-reward_scale / orders_per_step`` times its whole objective.

    ## Starting State

    Time 0 of the scenario with its initial stock, the model seeded from ``self.np_random``;
    with ``randomize`` the demand scale, weather severity and a possible warehouse outage are
    drawn (see :class:`rl._common.Randomization`), or set by ``reset(options=...)``.

    ## Episode End

    Terminates when the horizon is reached (``horizon_h / epoch_h`` steps, 48 by default). No
    truncation inside the env (wrap it in ``TimeLimit`` to add one).

    ## Arguments

    ``scenario`` (name, YAML path or Scenario; default ``"singles_day"``), ``scale`` (1.0: the
    scenario's size, so that a step carries thousands of orders and the env's per-step Python is
    a small part of it; ``scale=0.1`` gives steps ~7x quicker for training on one core),
    ``horizon_h`` (None: the scenario's), ``engine`` (None: ``"kernel"`` when available, else
    ``"simpy"``), ``randomize`` (False, True or a dict of ranges), ``epoch_h`` (1.0), ``base``
    (``"cheapest"``), ``temperature`` (0.005: low enough that the zero action routes like the
    base heuristic; at 0.03 a few percent of orders leak to second-best warehouses),
    ``tilt_scale`` (3.0), ``late_penalty_cny`` (50), ``lost_penalty_cny`` (100),
    ``co2_price_cny_per_kg`` (1.0), ``reward_scale`` (0.1).
    ``info`` carries the epoch's KPIs (orders, shipments, cost_cny, co2_kg, delivered, on_time,
    late, lost, objective_cny) and, at the end, ``episode_kpis``.

    ## Version History

    * v0: initial version.
    """

    def __init__(self, scenario: str | Scenario = "singles_day", scale: float = 1.0, horizon_h: float | None = None,
                 engine: str | None = None, randomize: bool | Mapping[str, Any] | None = False,
                 epoch_h: float = 1.0, base: str = "cheapest", temperature: float = 0.005, tilt_scale: float = 3.0,
                 late_penalty_cny: float = 50.0, lost_penalty_cny: float = 100.0, co2_price_cny_per_kg: float = 1.0,
                 reward_scale: float = 0.1) -> None:
        super().__init__(scenario, scale, horizon_h, engine, randomize, late_penalty_cny, lost_penalty_cny,
                         co2_price_cny_per_kg, reward_scale)
        tick = self.scenario.tick_h
        self._ticks = int(round(epoch_h / tick))
        if not epoch_h > 0 or abs(self._ticks * tick - epoch_h) > 1e-9 or self._ticks < 1:
            raise ValueError(f"epoch_h must be a positive multiple of the scenario's tick_h={tick:g}, got {epoch_h!r}")
        if base not in ROUTING_POLICIES:
            raise ValueError(f"base must be one of {', '.join(ROUTING_POLICIES)}; got {base!r}")
        self.epoch_h, self.base = float(epoch_h), base
        self._params = EpochShares(self.net, base, temperature, tilt_scale)
        W, R = self.net.n_warehouses, self.net.n_regions
        self.action_space = spaces.Box(-1.0, 1.0, (W + R,), dtype=np.float32)
        low, high = network_bounds(W, R)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self.feature_names = network_feature_names(self.net.warehouses, self.net.regions)
        self._orders_per_step = self.rate_ref * self.epoch_h

    def _start(self) -> None:
        ep = self._episode
        if ep["heuristic"]:
            self._policy = self._heuristic_policy(ep["heuristic"])
        else:
            self._policy = AllocationShares()
        self.model = FulfillmentModel(ep["scenario"], seed=ep["seed"], engine=self.engine, routing=self._policy,
                                      timeseries=False, network=self.net)
        self._ledger = Ledger(self.model)

    def _advance(self, action: Any) -> tuple[dict[str, float], bool, dict[str, Any]]:
        m, W = self.model, self.net.n_warehouses
        if not self._episode["heuristic"]:
            a = np.clip(np.asarray(action, dtype=float), -1.0, 1.0)
            self._params.apply(self._policy, a[:W], a[W:])
        for _ in range(self._ticks):
            if m.env.now >= self.horizon_h - _EPS:
                break
            self._tick()
        terminated = m.env.now >= self.horizon_h - _EPS
        if terminated:
            self._drain()
        return self._ledger.take(final=terminated), terminated, {}

    def _observe(self) -> np.ndarray:
        return network_features(self.model, self.epoch_h, self.rate_ref)


# ================================================================================ OrderRouting-v0
class OrderRoutingEnv(_TwinEnv):
    """Order routing one order at a time: a discrete warehouse choice with action masks.

    ## Description

    The ``simpy`` engine stops at each order arrival and asks (``SimPyEngine.asking``): the
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
    ``reward_scale`` as in ``twin/Routing-v0``. ``info``: the KPIs accrued since the last step,
    ``invalid_action``, and at the end ``episode_kpis``.

    ## Version History

    * v0: initial version.
    """

    _SIM = ("model", "_ledger", "_policy", "_tick_end", "_mask", "_finished")
    _engines = ("simpy",)

    def __init__(self, scenario: str | Scenario = "singles_day", scale: float = 0.1,
                 horizon_h: float | None = 12.0, engine: str | None = "simpy",
                 randomize: bool | Mapping[str, Any] | None = False, base: str = "cheapest",
                 late_penalty_cny: float = 50.0, lost_penalty_cny: float = 100.0, co2_price_cny_per_kg: float = 1.0,
                 reward_scale: float = 0.1) -> None:
        super().__init__(scenario, scale, horizon_h, "simpy" if engine is None else engine, randomize,
                         late_penalty_cny, lost_penalty_cny, co2_price_cny_per_kg, reward_scale)
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
        surcharge = np.array([0.0, 1.0])[:, None, None] * net.reefer_surcharge[c]
        self._lane_ok = ok
        self._lane_cost = np.where(ok, net.lane_cost[c, w_idx, r_idx] + surcharge, 0.0)
        self._lane_transit = np.where(ok, net.transit_mean_h[c, w_idx, r_idx], 0.0)
        self._max_promise = max(s.promise_h for s in self.scenario.demand.service_levels.values())
        self._agvs = np.array([w.pick.agvs for w in self.scenario.warehouses], dtype=float)
        self._ship_rate = np.array([w.pick.lines_per_agv_h / self.scenario.demand.lines_per_order
                                    for w in self.scenario.warehouses])

    # ------------------------------------------------------------------ episode
    def _start(self) -> None:
        ep = self._episode
        self._policy = self._heuristic_policy(ep["heuristic"] or self.base)
        self.model = FulfillmentModel(ep["scenario"], seed=ep["seed"], engine="simpy", routing=self._policy,
                                      timeseries=False, network=self.net)
        self.model.engine.asking = True
        self._ledger = Ledger(self.model)
        self._finished = False
        self._begin_tick()
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
            eng.decide([a] * len(eng.pending[1]))
        more = self._next_decision()
        if not more:
            self._finish()
        return (self._ledger.take(final=not more), not more,
                {"invalid_action": not valid and not self._episode["heuristic"]})

    def _finish(self) -> None:
        self.model.engine.asking = False
        self._drain()
        self._finished = True

    # The order flow stops inside a tick, so this env runs the tick itself with the model's own
    # begin_tick / end_tick, stopping at each order that waits for a decision in between.
    def _begin_tick(self) -> None:
        self._tick_end = self.model.begin_tick()

    def _end_tick(self) -> None:
        m = self.model
        m.env.run(until=self._tick_end)
        m.steps += 1
        m.end_tick()

    def _next_decision(self) -> bool:
        """Run the simulation to the next order with a choice (True) or past the horizon (False)."""
        m = self.model
        env, eng = m.env, m.engine
        while True:
            while eng.pending is None and env.peek() < self._tick_end:
                env.step()
            if eng.pending is not None:
                self._mask = self._order_mask()
                if self._episode["heuristic"] or self._mask.any():
                    return True
                eng.decide(None)  # no warehouse can take it whole: the base heuristic splits it or it is lost
                continue
            self._end_tick()
            if env.now >= self.horizon_h - _EPS or not m.running:
                return False
            self._begin_tick()

    def _order_mask(self) -> np.ndarray:
        order, sku, qty, _ = self.model.engine.pending
        st: State = self.model.state
        ok = st.wh_open & self._lane_ok[int(order.cold), :, order.region]
        if order.cold:
            ok = ok & st.cold_ok
        return ok & (st.inventory[:, sku] >= np.asarray(qty)).all(axis=1)

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
        if self._finished or m.engine.pending is None:
            return np.clip(x, self.observation_space.low, self.observation_space.high).astype(np.float32)
        order, sku, qty, _ = m.engine.pending
        st = m.state
        r, cold = order.region, int(order.cold)
        x[3 + r] = 1.0
        i = 3 + R
        x[i] = float(cold)
        x[i + 1] = sum(qty) / 5.0
        x[i + 2] = (order.promised_at - order.created_at) / self._max_promise
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
class TargetCover(ReallocationPolicy):
    """Transfers that bring each warehouse's most popular SKUs to a target cover.

    ``target[w]`` is a share of the warehouse's initial stock of each SKU. At each decision, for
    the ``top_skus`` most popular SKUs, a warehouse below its target (counting stock inbound)
    receives from warehouses above theirs, nearest donors first; closed warehouses neither give
    nor receive.
    """

    name = "target_cover"

    def __init__(self, top_skus: int = 50) -> None:
        if top_skus < 1:
            raise ValueError(f"top_skus must be >= 1, got {top_skus}")
        self.top_skus = int(top_skus)
        self.target: np.ndarray | None = None

    def decide(self, state: State, net: Network, t: float) -> np.ndarray:
        W = net.n_warehouses
        moves = np.zeros((W, W, net.n_skus), dtype=np.int64)
        if self.target is None:
            return moves
        top = np.argsort(-net.sku_p, kind="stable")[: self.top_skus]
        init = net.initial_stock[:, top]
        goal = np.ceil(self.target[:, None] * init).astype(np.int64)
        inv = state.inventory[:, top]
        need = np.maximum(goal - inv - state.on_order[:, top], 0)
        spare = np.maximum(inv - goal, 0)
        need[~state.wh_open] = 0
        spare[~state.wh_open] = 0
        moves[:, :, top] = transfers_from_nearest(need, spare, net, np.argsort(-need.sum(axis=1), kind="stable"))
        return moves


class _Metered(ReallocationPolicy):
    """Runs a reallocation policy and keeps the unit-km it moves (for the transfer cost)."""

    def __init__(self, inner: ReallocationPolicy) -> None:
        self.inner = inner
        self.name = inner.name
        self.unit_km = 0.0

    def decide(self, state: State, net: Network, t: float) -> np.ndarray:
        moves = self.inner.decide(state, net, t)
        self.unit_km += float((moves.sum(axis=2) * net.wh_distance_km).sum())
        return moves


class ReallocationEnv(_TwinEnv):
    """Inventory reallocation: every few hours, transfers between warehouses ahead of demand.

    ## Description

    Orders are routed by a fixed heuristic of the twin (``routing``). Every ``interval_h`` hours
    the agent sets a target stock cover per warehouse; a :class:`TargetCover` reallocation
    policy, run by the twin's reallocation agent, turns it into transfers of the ``top_skus``
    most popular SKUs (nearest donors first), which arrive after ``lead_time_h``.

    ## Action Space

    ``Box(-1, 1, (W,), float32)``: per warehouse, the target cover ``0.1 + 0.9 * (a + 1) / 2``
    of its initial stock of each top SKU. Why per-warehouse targets rather than per (from, to,
    SKU) quantities: W numbers instead of W x W x S, always feasible (donors only give their
    surplus over their own target), and the knob planners use (cover by site) — raising a
    site's target ahead of a peak or a neighbour's outage pulls stock there.

    ## Observation Space

    ``Box(low, high, (5 + 6W + 3R,), float32)``: the network features of ``twin/Routing-v0``
    (see :func:`rl._common.network_features`), plus per warehouse ``inbound_cover``: units
    inbound (supplier orders and transfers) over initial units, popularity-weighted / 2,
    clipped to [0, 1].

    ## Rewards

    As ``twin/Routing-v0`` plus the transfer cost, ``transfer_cost_cny_per_unit_km`` per unit
    and km moved, charged when a transfer is decided; normalised by the expected orders of an
    interval.

    ## Starting State

    The model runs from time 0 to the first decision (``interval_h``) with no transfer; seeding
    and randomisation as ``twin/Routing-v0``.

    ## Episode End

    Terminates at the horizon (``horizon_h / interval_h - 1`` steps, 7 by default); the last
    step runs the model to its end.

    ## Arguments

    ``scenario`` (``"singles_day"``), ``scale`` (0.1), ``horizon_h``, ``engine``, ``randomize``
    as ``twin/Routing-v0``; ``interval_h`` (6.0), ``lead_time_h`` (None: the scenario's
    reallocation lead time), ``routing`` (``"nearest_with_stock"``), ``top_skus`` (50),
    ``transfer_cost_cny_per_unit_km`` (0.0005), and the reward weights. ``reset(options=
    {"heuristic": "none" | "rebalance"})`` runs the twin's own reallocation instead.

    ## Version History

    * v0: initial version.
    """

    _SIM = ("model", "_ledger", "_policy", "_metered", "_moved", "_unit_km")
    _heuristics = REALLOCATION_HEURISTICS

    def __init__(self, scenario: str | Scenario = "singles_day", scale: float = 0.1, horizon_h: float | None = None,
                 engine: str | None = None, randomize: bool | Mapping[str, Any] | None = False,
                 interval_h: float = 6.0, lead_time_h: float | None = None, routing: str = "nearest_with_stock",
                 top_skus: int = 50, transfer_cost_cny_per_unit_km: float = 0.0005,
                 late_penalty_cny: float = 50.0, lost_penalty_cny: float = 100.0, co2_price_cny_per_kg: float = 1.0,
                 reward_scale: float = 0.1) -> None:
        super().__init__(scenario, scale, horizon_h, engine, randomize, late_penalty_cny, lost_penalty_cny,
                         co2_price_cny_per_kg, reward_scale)
        tick = self.scenario.tick_h
        n = int(round(interval_h / tick))
        if not interval_h > 0 or abs(n * tick - interval_h) > 1e-9 or n < 1 or interval_h >= self.horizon_h:
            raise ValueError(f"interval_h must be a positive multiple of tick_h={tick:g} below the horizon "
                             f"{self.horizon_h:g} h, got {interval_h!r}")
        if routing not in ROUTING_POLICIES:
            raise ValueError(f"routing must be one of {', '.join(ROUTING_POLICIES)}; got {routing!r}")
        if not transfer_cost_cny_per_unit_km >= 0:
            raise ValueError(f"transfer_cost_cny_per_unit_km must be >= 0, got {transfer_cost_cny_per_unit_km!r}")
        self.interval_h, self.routing, self.top_skus = float(interval_h), routing, int(top_skus)
        self.lead_time_h = self.scenario.policy.reallocation.lead_time_h if lead_time_h is None else float(lead_time_h)
        self.transfer_cost = float(transfer_cost_cny_per_unit_km)
        W, R = self.net.n_warehouses, self.net.n_regions
        self.action_space = spaces.Box(-1.0, 1.0, (W,), dtype=np.float32)
        low, high = network_bounds(W, R)
        self.observation_space = spaces.Box(np.concatenate([low, np.zeros(W, np.float32)]),
                                            np.concatenate([high, np.ones(W, np.float32)]), dtype=np.float32)
        self.feature_names = (network_feature_names(self.net.warehouses, self.net.regions)
                              + [f"inbound_cover[{w}]" for w in self.net.warehouses])
        self._orders_per_step = self.rate_ref * self.interval_h
        init = self.net.initial_stock.astype(float)
        self._sku_w = np.where(init > 0, self.net.sku_p[None, :], 0.0)
        self._init_w = np.maximum((init * self._sku_w).sum(axis=1), _EPS)

    def _episode_scenario(self, draw: dict[str, Any]) -> Scenario:
        return episode_scenario(self.scenario, draw["demand_scale"], draw["weather_severity"], draw["outage"],
                                reallocation={"interval_h": self.interval_h, "lead_time_h": self.lead_time_h})

    def _start(self) -> None:
        ep = self._episode
        h = ep["heuristic"]
        self._policy = (NoReallocation() if h == "none" else Rebalance() if h == "rebalance"
                        else TargetCover(self.top_skus))
        self._metered = _Metered(self._policy)
        self.model = FulfillmentModel(ep["scenario"], seed=ep["seed"], engine=self.engine,
                                      routing=ROUTING_POLICIES[self.routing](), reallocation=self._metered,
                                      timeseries=False, network=self.net)
        self._ledger = Ledger(self.model)
        self._moved, self._unit_km = 0, 0.0
        while self.model.env.now < self.interval_h - _EPS:
            self._tick()
        self._ledger.take()  # the lead-in before the first decision is not the agent's doing

    def _advance(self, action: Any) -> tuple[dict[str, float], bool, dict[str, Any]]:
        m = self.model
        if isinstance(self._policy, TargetCover):
            a = np.clip(np.asarray(action, dtype=float), -1.0, 1.0)
            self._policy.target = 0.1 + 0.9 * (a + 1.0) / 2.0
        end = m.env.now + self.interval_h
        while m.env.now < min(end, self.horizon_h) - _EPS:
            self._tick()
        terminated = m.env.now >= self.horizon_h - _EPS
        if terminated:
            self._drain()
        part = self._ledger.take(final=terminated)
        moved, unit_km = self.model.reallocator.units_moved, self._metered.unit_km
        part["units_moved"] = float(moved - self._moved)
        part["transfer_cny"] = self.transfer_cost * (unit_km - self._unit_km)
        self._moved, self._unit_km = moved, unit_km
        return part, terminated, {}

    def _observe(self) -> np.ndarray:
        base = network_features(self.model, self.interval_h, self.rate_ref)
        inbound = (self.model.state.on_order * self._sku_w).sum(axis=1) / self._init_w / 2.0
        return np.concatenate([base, np.clip(inbound, 0.0, 1.0).astype(np.float32)])
