"""A trained epoch policy, run where a planner looks: ``twin run SCENARIO --policy RUN_DIR/model.zip``.

A ``twin/Routing-v1`` policy turns ``promise_aware``'s knobs once per epoch. :class:`LearnedController`
does exactly what the env does around the policy, with the env's own code
(:class:`rl.envs.routing_v1.V1Knobs`: the observation and the action's meaning), but inside an
ordinary :func:`twin.simulate` run (time series, records, report), through its ``before_tick``
hook: at each epoch start it observes, asks the policy (deterministic), and turns the knobs.
On the env's scenario and model seed the run is the env's episode exactly (a test checks it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from twin.policies import PromiseAware

__all__ = ["LearnedController", "SUPPORTED_ENVS"]

#: The envs whose trained policies can route a run.
SUPPORTED_ENVS = ("twin/Routing-v1",)


class LearnedController:
    """Load a ``twin train`` model zip of ``twin/Routing-v1`` and route a run with it.

    Args:
        path: the model zip, or the run directory that holds ``model.zip`` and ``args.json``.

    Attributes:
        routing: the routing policy to give :func:`twin.simulate` (``routing=``).
        label: what the report and ``kpis.json`` call the policy.
    """

    def __init__(self, path: str | Path) -> None:
        p = Path(path)
        zip_path = p / "model.zip" if p.is_dir() else p
        args_path = zip_path.parent / "args.json"
        if not zip_path.is_file():
            raise FileNotFoundError(f"no model zip at {str(zip_path)!r} (twin train writes RUN_DIR/model.zip)")
        if not args_path.is_file():
            raise FileNotFoundError(f"{str(zip_path)!r} has no args.json beside it (written by twin train): "
                                    "the env it was trained on is unknown")
        args = json.loads(args_path.read_text(encoding="utf-8"))
        self.env_id = args.get("env_id")
        if self.env_id not in SUPPORTED_ENVS:
            if self.env_id == "twin/OrderRouting-v0":
                how = "`twin export` it and pass the package directory"
            elif self.env_id == "twin/OrderRouting-v1":
                how = ("its per-order warehouse x carrier choices run only in its env so far: `twin evaluate` it; "
                       "`twin export` takes twin/OrderRouting-v0 policies")
            else:
                how = "its actions are not routing decisions"
            raise ValueError(f"--policy: a model of {self.env_id!r} cannot route a run; the envs whose models can "
                             f"are {', '.join(SUPPORTED_ENVS)}, and twin/OrderRouting-v0 through `twin export` "
                             f"({how})")
        from stable_baselines3 import PPO

        self.model = PPO.load(str(zip_path), device="cpu")
        kw = dict(args.get("env_kwargs", {}))
        self.epoch_h = float(kw.get("epoch_h", 1.0))
        self.tilt_cny = float(kw.get("tilt_cny", 5.0))
        self.late_range = float(kw.get("late_range", 4.0))
        self.late_penalty = float(kw.get("late_penalty_cny", 50.0))
        self.co2_price = float(kw.get("co2_price_cny_per_kg", 1.0))
        self.routing = PromiseAware(late_penalty_cny=self.late_penalty, co2_price_cny_per_kg=self.co2_price)
        self.label = f"learned {self.env_id} ({zip_path}) on promise_aware"
        self._knobs: Any = None
        self._ticks_per_epoch = 0

    def before_tick(self, model: Any) -> None:
        """The ``before_tick`` hook of :func:`twin.simulate`: at each epoch start within the
        horizon, observe, decide and turn the knobs (as ``RoutingV1Env.step`` does)."""
        from rl._common import mean_rate_per_h
        from rl.envs.routing_v1 import V1Knobs

        sc = model.scenario
        if self._knobs is None:
            self._ticks_per_epoch = int(round(self.epoch_h / sc.tick_h))
            if self._ticks_per_epoch < 1 or abs(self._ticks_per_epoch * sc.tick_h - self.epoch_h) > 1e-9:
                raise ValueError(f"the policy's epoch_h={self.epoch_h:g} is not a multiple of the scenario's "
                                 f"tick_h={sc.tick_h:g}")
            self._knobs = V1Knobs(model.net, sc, self.epoch_h, self.tilt_cny, self.late_range, self.late_penalty,
                                  mean_rate_per_h(sc))
            self._knobs.start(model)
        if model.env.now >= sc.horizon_h - 1e-9 or model.steps % self._ticks_per_epoch:
            return
        if model.steps > 0:
            self._knobs.end_epoch(model)
        obs = self._knobs.observe(model)
        action, _ = self.model.predict(obs, deterministic=True)
        self._knobs.apply(self.routing, model.state, np.asarray(action))
