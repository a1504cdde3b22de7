"""``twin/Routing-v0``: routing per decision epoch (allocation shares per region)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from rl._common import (
    Ledger,
    network_bounds,
    network_feature_names,
    network_features,
)
from rl.envs.base import _EPS, TwinEnv
from twin.policies import (
    ROUTING_POLICIES,
    AllocationShares,
    Fastest,
)
from twin.scenario.schema import Scenario
from twin.sim.model import FulfillmentModel
from twin.world.network import Network

__all__ = ["RoutingEnv", "EpochShares"]


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


class RoutingEnv(TwinEnv):
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
    ``co2_price_cny_per_kg`` (1.0), ``reward_scale`` (0.1), ``render_mode`` (None or
    ``"ansi"``: ``render()`` returns a text of the time, the episode's totals and each
    warehouse). ``info`` carries, at reset, the episode's ``seed``, ``heuristic``,
    ``demand_scale``, ``weather_severity`` and ``outage`` (``{}`` or ``{"warehouse",
    "start_h", "end_h"}``); at each step the epoch's KPIs (orders, shipments, cost_cny,
    co2_kg, delivered, on_time, late, lost, objective_cny) and, at the end, ``episode_kpis``.

    ## Version History

    * v0: initial version.
    """

    def __init__(self, scenario: str | Scenario = "singles_day", scale: float = 1.0, horizon_h: float | None = None,
                 engine: str | None = None, randomize: bool | Mapping[str, Any] | None = False,
                 epoch_h: float = 1.0, base: str = "cheapest", temperature: float = 0.005, tilt_scale: float = 3.0,
                 late_penalty_cny: float = 50.0, lost_penalty_cny: float = 100.0, co2_price_cny_per_kg: float = 1.0,
                 reward_scale: float = 0.1, render_mode: str | None = None) -> None:
        super().__init__(scenario, scale, horizon_h, engine, randomize, late_penalty_cny, lost_penalty_cny,
                         co2_price_cny_per_kg, reward_scale, render_mode)
        self._ticks = self._epoch_ticks(epoch_h)
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
