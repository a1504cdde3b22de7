"""``twin/Reallocation-v0``: stock transfers between warehouses every few hours."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from rl._common import (
    Ledger,
    episode_scenario,
    network_bounds,
    network_feature_names,
    network_features,
)
from rl.envs.base import _EPS, REALLOCATION_HEURISTICS, TwinEnv
from twin.policies import (
    ROUTING_POLICIES,
    NoReallocation,
    ReallocationPolicy,
    Rebalance,
    transfers_from_nearest,
)
from twin.scenario.schema import Scenario
from twin.sim.model import FulfillmentModel
from twin.world.network import Network
from twin.world.state import State

__all__ = ["ReallocationEnv", "TargetCover"]


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


class ReallocationEnv(TwinEnv):
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
    ``transfer_cost_cny_per_unit_km`` (0.0005), the reward weights and ``render_mode`` as
    ``twin/Routing-v0``. ``reset(options=
    {"heuristic": "none" | "rebalance"})`` runs the twin's own reallocation instead.

    ## Version History

    * v0: initial version.
    """

    _SIM = ("model", "_ledger", "_policy", "_metered", "_moved", "_unit_km")
    heuristics = REALLOCATION_HEURISTICS

    def __init__(self, scenario: str | Scenario = "singles_day", scale: float = 0.1, horizon_h: float | None = None,
                 engine: str | None = None, randomize: bool | Mapping[str, Any] | None = False,
                 interval_h: float = 6.0, lead_time_h: float | None = None, routing: str = "nearest_with_stock",
                 top_skus: int = 50, transfer_cost_cny_per_unit_km: float = 0.0005,
                 late_penalty_cny: float = 50.0, lost_penalty_cny: float = 100.0, co2_price_cny_per_kg: float = 1.0,
                 reward_scale: float = 0.1, render_mode: str | None = None) -> None:
        super().__init__(scenario, scale, horizon_h, engine, randomize, late_penalty_cny, lost_penalty_cny,
                         co2_price_cny_per_kg, reward_scale, render_mode)
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
        self._policy = (NoReallocation() if h == "none" else Rebalance(lead_time_h=self.lead_time_h) if h == "rebalance"
                        else TargetCover(self.top_skus))
        self._metered = _Metered(self._policy)
        self.model = FulfillmentModel(ep["scenario"], seed=ep["seed"], engine=self.engine,
                                      routing=self._heuristic_policy(self.routing), reallocation=self._metered,
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

    def episode_totals(self) -> dict[str, float]:
        """The episode's totals so far, what a reallocation is judged on: late and lost orders,
        units moved, their unit-km and the transfer cost (CNY, at this env's rate); read by
        ``twin evaluate`` (:func:`rl.evaluate.evaluate`) after each episode."""
        t, unit_km = self._ledger.total, self._metered.unit_km
        return {"late_orders": float(t["late"]), "lost_orders": float(t["lost"]),
                "units_moved": float(self.model.reallocator.units_moved), "transfer_unit_km": float(unit_km),
                "transfer_cny": self.transfer_cost * unit_km}

    def _observe(self) -> np.ndarray:
        base = network_features(self.model, self.interval_h, self.rate_ref)
        inbound = (self.model.state.on_order * self._sku_w).sum(axis=1) / self._init_w / 2.0
        return np.concatenate([base, np.clip(inbound, 0.0, 1.0).astype(np.float32)])
