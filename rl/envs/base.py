"""The shared machinery of the twin's Gymnasium environments (reset, step, pickling)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from rl._common import (
    Randomization,
    RewardWeights,
    base_scenario,
    default_engine,
    episode_scenario,
    mean_rate_per_h,
    objective,
)
from twin.policies import (
    ROUTING_POLICIES,
    RoutingPolicy,
)
from twin.scenario.schema import Scenario
from twin.sim.model import ENGINES
from twin.world.network import Network, build_network

__all__ = ["TwinEnv", "ROUTING_HEURISTICS", "REALLOCATION_HEURISTICS"]

#: The twin's routing heuristics, by name (the baselines of the routing envs).
ROUTING_HEURISTICS = tuple(ROUTING_POLICIES)
#: The twin's reallocation heuristics (the baselines of Reallocation-v0).
REALLOCATION_HEURISTICS = ("none", "rebalance")

_EPS = 1e-9



class TwinEnv(gym.Env):
    """Shared machinery: scenario and randomisation, seeding, reward weights, pickling by replay.

    A subclass builds its spaces in ``__init__`` and implements ``_start`` (build the model of
    ``self._episode``), ``_advance(action) -> (ledger part, terminated, info)`` (change the
    simulation) and ``_observe``.

    What an env can do is declared on its class (read it with :func:`rl._common.env_class`
    from an env id, without making one): ``supports_masks`` (``action_masks()`` for
    sb3-contrib's MaskablePPO), ``engines`` (the twin engines it runs on) and ``heuristics``
    (the names ``reset(options={"heuristic": ...})`` takes: its baselines).

    ``render_mode``: None (no rendering) or ``"ansi"``: ``render()`` returns a short text of
    the state (time, the episode's totals so far, one line per warehouse).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    supports_masks: bool = False
    engines: tuple[str, ...] = ENGINES
    heuristics: tuple[str, ...] = ROUTING_HEURISTICS
    _SIM: tuple[str, ...] = ("model", "_ledger", "_policy")

    def __init__(self, scenario: str | Scenario, scale: float, horizon_h: float | None, engine: str | None,
                 randomize: bool | Mapping[str, Any] | None, late_penalty_cny: float, lost_penalty_cny: float,
                 co2_price_cny_per_kg: float, reward_scale: float, render_mode: str | None = None) -> None:
        super().__init__()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {', '.join(map(repr, self.metadata['render_modes']))}"
                             f" for {type(self).__name__}; got {render_mode!r}")
        self.render_mode = render_mode
        self.scenario = base_scenario(scenario, scale, horizon_h)
        self.engine = default_engine() if engine is None else engine
        if self.engine not in self.engines:
            raise ValueError(f"engine must be one of {', '.join(self.engines)} for {type(self).__name__}; "
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
        if heuristic is not None and heuristic not in self.heuristics:
            raise ValueError(f"options['heuristic'] must be one of {', '.join(self.heuristics)}; got {heuristic!r}")
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
        outage = draw["outage"]
        info = {"seed": model_seed, "heuristic": heuristic or "", "demand_scale": float(draw["demand_scale"]),
                "weather_severity": float(draw["weather_severity"]),
                # {} or {"warehouse", "start_h", "end_h"}: data, not the text of a tuple
                "outage": {} if outage is None else {"warehouse": str(outage[0]), "start_h": float(outage[1]),
                                                     "end_h": float(outage[2])}}
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

    def render(self) -> str | None:
        """``"ansi"``: a short text of the state (see the class docstring); None: nothing."""
        if self.render_mode is None:
            return None
        if self.model is None:
            return f"{type(self).__name__}: no episode (call reset())\n"
        m, st, net = self.model, self.model.state, self.net
        t = self._ledger.total
        head = (f"{type(self).__name__} t={float(m.env.now):.2f}/{self.horizon_h:g} h"
                f"{' (ended)' if self._done else ''}: orders {t['orders']:.0f}, on time {t['on_time']:.0f}, "
                f"late {t['late']:.0f}, lost {t['lost']:.0f}, cost {t['cost_cny']:,.0f} CNY")
        lines = [head]
        width = max(len(w) for w in net.warehouses)
        for i, w in enumerate(net.warehouses):
            lines.append(f"  {w:<{width}}  {'open  ' if st.wh_open[i] else 'CLOSED'}  backlog {int(st.backlog[i]):>6}"
                         f"  pick servers {int(st.pick_servers[i]):>4}  units {int(st.inventory[i].sum()):>9}")
        return "\n".join(lines + self._render_extra()) + "\n"

    def _render_extra(self) -> list[str]:
        return []

    # ------------------------------------------------------------------ read-only views
    @property
    def orders_per_step(self) -> float:
        """The expected orders of one step (the reward's normaliser)."""
        return float(self._orders_per_step)

    @property
    def ledger_total(self) -> dict[str, float]:
        """The episode's totals so far (orders, shipments, cost_cny, co2_kg, delivered, on_time,
        late, lost): a copy."""
        if self._ledger is None:
            raise RuntimeError("no episode: call reset() first")
        return dict(self._ledger.total)

    @property
    def episode_scenario(self) -> Scenario:
        """The scenario of the current episode (the env's, with its randomisation draw)."""
        if self._episode is None:
            raise RuntimeError("no episode: call reset() first")
        return self._episode["scenario"]

    @property
    def episode_seed(self) -> int:
        """The seed of the current episode's model (drawn from ``np_random`` at reset)."""
        if self._episode is None:
            raise RuntimeError("no episode: call reset() first")
        return int(self._episode["seed"])

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

    def _epoch_ticks(self, epoch_h: float) -> int:
        """The model ticks of one decision epoch of ``epoch_h`` hours (a positive multiple of the
        scenario's tick)."""
        tick = self.scenario.tick_h
        ticks = int(round(epoch_h / tick)) if epoch_h > 0 else 0
        if not epoch_h > 0 or abs(ticks * tick - epoch_h) > 1e-9 or ticks < 1:
            raise ValueError(f"epoch_h must be a positive multiple of the scenario's tick_h={tick:g}, got {epoch_h!r}")
        return ticks

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
