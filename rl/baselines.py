"""Baselines and learned policies behind one interface, and the episode runner they share.

A policy here is a callable ``policy(obs, env) -> action`` with a ``name`` and the ``options``
it needs at ``env.reset`` (None for learned policies). The twin's heuristics run inside the
same env (``reset(options={"heuristic": name})``: the env's model routes with the heuristic and
ignores the actions), so their rewards and KPIs are computed by exactly the same code as the
learned policy's.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["Heuristic", "Learned", "baseline_names", "baselines", "run_episode", "EPISODE_METRICS"]

#: What :func:`run_episode` reports for each episode (besides the seed).
EPISODE_METRICS = ("reward", "objective_per_order", "cost_per_order", "late_rate", "lost_rate", "on_time_rate",
                   "co2_per_order_kg", "orders")


def baseline_names(env_id: str) -> tuple[str, ...]:
    """The heuristics that are the baselines of ``env_id`` (its class declares them:
    ``heuristics``)."""
    from rl._common import env_class

    return tuple(env_class(env_id).heuristics)


class Heuristic:
    """One of the twin's heuristics, run by the env itself (the action is ignored)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.options: dict[str, Any] | None = {"heuristic": name}

    def __call__(self, obs: np.ndarray, env: gym.Env) -> Any:
        space = env.action_space
        if isinstance(space, gym.spaces.Discrete):
            return 0
        return np.zeros(space.shape, dtype=space.dtype)

    def __repr__(self) -> str:
        return f"Heuristic({self.name!r})"


def baselines(env_id: str) -> list[Heuristic]:
    return [Heuristic(n) for n in baseline_names(env_id)]


class Learned:
    """A policy trained with stable-baselines3 (PPO or sb3-contrib's MaskablePPO), from its zip.

    Acts deterministically (the mean action); with ``action_masks()`` on the env, masked.
    """

    def __init__(self, path: str | Path, name: str | None = None, device: str = "cpu") -> None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no trained policy at {str(p)!r} (a .zip written by `twin train`)")
        if not zipfile.is_zipfile(p):
            raise ValueError(f"{str(p)!r} is not a stable-baselines3 zip")
        with zipfile.ZipFile(p) as z:
            data = z.read("data").decode() if "data" in z.namelist() else ""
        if "sb3_contrib" in data and "Maskable" in data:
            from sb3_contrib import MaskablePPO as Algo
        else:
            from stable_baselines3 import PPO as Algo
        self.model = Algo.load(p, device=device)
        self.masked = Algo.__name__ == "MaskablePPO"
        self.name = name or "learned"
        self.options: dict[str, Any] | None = None

    def __call__(self, obs: np.ndarray, env: gym.Env) -> Any:
        if self.masked:
            masks = env.unwrapped.action_masks()
            action, _ = self.model.predict(obs, deterministic=True, action_masks=masks)
        else:
            action, _ = self.model.predict(obs, deterministic=True)
        return action

    def __repr__(self) -> str:
        return f"Learned({self.name!r})"


def run_episode(env: gym.Env, policy: Any, seed: int) -> dict[str, float]:
    """One episode of ``policy`` from ``env.reset(seed=seed)``: total reward, steps and the
    episode's KPIs (see :meth:`rl._common.Ledger.episode_kpis`)."""
    obs, _ = env.reset(seed=int(seed), options=getattr(policy, "options", None))
    total, steps, done, info = 0.0, 0, False, {}
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy(obs, env))
        total += float(reward)
        steps += 1
        done = terminated or truncated
    kpis = info.get("episode_kpis", {})
    return {"seed": int(seed), "reward": total, "steps": steps, **{k: float(v) for k, v in kpis.items()}}
