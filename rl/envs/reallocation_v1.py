"""``twin/Reallocation-v1``: stock transfers on the binding Singles' Day, seeing hot-SKU cover."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from rl._common import hot_skus
from rl.envs.reallocation import ReallocationEnv
from twin.policies import PromiseAware
from twin.scenario.schema import Scenario

__all__ = ["HOT_FEATURES", "ReallocationV1Env", "hot_skus"]

#: The features Reallocation-v1 adds to Reallocation-v0's, per warehouse (in this order).
HOT_FEATURES = ("hot_sku_cover", "hot_sku_out", "hot_sku_inbound")


class ReallocationV1Env(ReallocationEnv):
    """Inventory reallocation on the binding Singles' Day: transfers ahead of hot-SKU stockouts.

    ## Description

    As ``twin/Reallocation-v0`` (every ``interval_h`` hours the agent sets a target stock cover
    per warehouse, which :class:`rl.envs.reallocation.TargetCover` turns into transfers of the
    ``top_skus`` most popular SKUs, nearest donors first), on the rebuilt Singles' Day, where the
    hot SKUs (Zipf 1.2: the top 10 take ~59% of lines) sell out at the big sites on 11 Nov and
    the suppliers' replenishment takes 24 h: orders then go to farther sites or split, dearer and
    later. A transfer arrives after the scenario's 12 h. Orders are routed by ``promise_aware``
    (the strongest routing heuristic, with the env's late penalty and CO2 price) by default.

    ## Action Space

    As ``twin/Reallocation-v0``: ``Box(-1, 1, (W,), float32)``, per warehouse the target cover
    ``0.1 + 0.9 * (a + 1) / 2`` of its initial stock of each top SKU.

    ## Observation Space

    ``Box(low, high, (5 + 6W + 3R + 3W,), float32)``: Reallocation-v0's features, then per
    warehouse, over the 10 most popular SKUs it carries (:func:`hot_skus`):

    - ``hot_sku_cover``: the lowest cover, units on hand over initial units;
    - ``hot_sku_out``: the share of them out of stock (none on hand);
    - ``hot_sku_inbound``: units inbound (supplier orders and transfers) over initial units,
      averaged over them, / 2, clipped to 1.

    Names in ``env.unwrapped.feature_names``; all in [0, 1] except the time of day in [-1, 1].

    ## Rewards

    As ``twin/Reallocation-v0``: the objective (cost + late penalty + lost penalty + CO2 price)
    plus the transfer cost, ``transfer_cost_cny_per_unit_km`` per unit and km, normalised by the
    expected orders of an interval.

    ## Starting State

    As ``twin/Reallocation-v0``: the model runs to the first decision (``interval_h``) with no
    transfer.

    ## Episode End

    As ``twin/Reallocation-v0``: at the horizon (``horizon_h / interval_h - 1`` steps, 7 by
    default); the last step runs the model to its end.

    ## Arguments

    As ``twin/Reallocation-v0`` (``scenario`` ``"singles_day"``, ``scale`` 0.1, ``interval_h``
    6, ``top_skus`` 50, ...), with ``routing`` defaulting to ``"promise_aware"``. Baselines
    (``reset(options={"heuristic": ...})``): ``"none"`` and ``"rebalance"`` (the twin's rule:
    top up SKUs below 20% of initial stock to 40%, counting its own transfers still in transit
    but not the suppliers' reorders, from sites above 60%; see :class:`twin.policies.Rebalance`).
    On ``singles_day`` at 10% ``rebalance`` moves ~900 units, but a hot SKU falls below 20% only
    at ~36 h, so its transfers land from 48 h on, after the last order: its KPIs equal ``none``'s
    and it pays the transfers; the zero action (a 55% target) moves ~1,250 units, from 30 h on,
    and lowers the objective (tested).

    ## Version History

    * v1: hot-SKU cover, stock-outs and inbound per warehouse in the observation; routing
      ``promise_aware`` by default; for the binding Singles' Day. ``twin/Reallocation-v0``
      stays registered unchanged, for the results and models made with it.
    * v0: initial version.
    """

    def __init__(self, scenario: str | Scenario = "singles_day", scale: float = 0.1, horizon_h: float | None = None,
                 engine: str | None = None, randomize: bool | Mapping[str, Any] | None = False,
                 interval_h: float = 6.0, lead_time_h: float | None = None, routing: str = "promise_aware",
                 top_skus: int = 50, transfer_cost_cny_per_unit_km: float = 0.0005,
                 late_penalty_cny: float = 50.0, lost_penalty_cny: float = 100.0, co2_price_cny_per_kg: float = 1.0,
                 reward_scale: float = 0.1, render_mode: str | None = None) -> None:
        super().__init__(scenario, scale, horizon_h, engine, randomize, interval_h, lead_time_h, routing, top_skus,
                         transfer_cost_cny_per_unit_km, late_penalty_cny, lost_penalty_cny, co2_price_cny_per_kg,
                         reward_scale, render_mode)
        net = self.net
        W = net.n_warehouses
        extra = len(HOT_FEATURES) * W
        low, high = self.observation_space.low, self.observation_space.high
        self.observation_space = spaces.Box(np.concatenate([low, np.zeros(extra, np.float32)]),
                                            np.concatenate([high, np.ones(extra, np.float32)]), dtype=np.float32)
        self.feature_names = self.feature_names + [f"{f}[{w}]" for f in HOT_FEATURES for w in net.warehouses]
        self.hot = hot_skus(net)
        self._rows = np.arange(W)[:, None]
        self._hot_init = np.maximum(net.initial_stock[self._rows, self.hot].astype(float), 1.0)

    def hot_features(self) -> np.ndarray:
        """``[3, W]``: hot-SKU cover, share out of stock and inbound (see Observation Space)."""
        st = self.model.state
        on_hand = st.inventory[self._rows, self.hot]
        cover = (on_hand / self._hot_init).min(axis=1)
        out = (on_hand <= 0).mean(axis=1)
        inbound = (st.on_order[self._rows, self.hot] / self._hot_init).mean(axis=1) / 2.0
        return np.clip(np.stack([cover, out, inbound]), 0.0, 1.0)

    def _observe(self) -> np.ndarray:
        return np.concatenate([super()._observe(), self.hot_features().ravel().astype(np.float32)])

    def _heuristic_policy(self, name: str):  # noqa: ANN202
        if name == "promise_aware":
            return PromiseAware(late_penalty_cny=self.weights.late_penalty_cny,
                                co2_price_cny_per_kg=self.weights.co2_price_cny_per_kg)
        return super()._heuristic_policy(name)
