"""RL throughput: env steps/s and simulated orders/s of each env, and SB3 PPO training steps/s
with the share of PPO's wall time spent inside ``env.step`` (issue 4).

    python benchmarks/rl_speed.py [--timesteps 4096] [--engine kernel]

One process, ``torch.set_num_threads(1)``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import rl  # noqa: F401 - registers the envs
from rl._common import default_engine


class Timed(gym.Wrapper):
    """Adds up the wall time spent in ``step`` and ``reset`` of the wrapped env."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.env_s = 0.0
        self.steps = 0
        self.orders = 0.0

    def step(self, action):  # noqa: ANN001, ANN201
        t = time.perf_counter()
        out = self.env.step(action)
        self.env_s += time.perf_counter() - t
        self.steps += 1
        self.orders += out[4].get("orders", 0.0)
        return out

    def reset(self, **kw):  # noqa: ANN003, ANN201
        t = time.perf_counter()
        out = self.env.reset(**kw)
        self.env_s += time.perf_counter() - t
        return out


def env_speed(env_id: str, kwargs: dict, seconds: float) -> dict:
    env = gym.make(env_id, **kwargs)
    rng = np.random.default_rng(0)
    u = env.unwrapped
    t0 = time.perf_counter()
    env.reset(seed=0)
    steps, orders = 0, 0.0
    while time.perf_counter() - t0 < seconds:
        if hasattr(u, "action_masks"):
            a = int(rng.choice(np.flatnonzero(u.action_masks())))
        else:
            a = np.zeros(env.action_space.shape, np.float32)
        _, _, term, trunc, info = env.step(a)
        steps += 1
        orders += info["orders"]
        if term or trunc:
            env.reset()
    wall = time.perf_counter() - t0
    return {"steps_s": steps / wall, "orders_s": orders / wall, "orders_step": orders / max(steps, 1)}


def ppo_speed(env_id: str, kwargs: dict, timesteps: int, n_steps: int) -> dict:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)
    timed = Timed(gym.make(env_id, **kwargs))
    venv = DummyVecEnv([lambda: Monitor(timed)])
    algo = PPO
    if "OrderRouting" in env_id:
        from sb3_contrib import MaskablePPO as algo  # noqa: N813
    model = algo("MlpPolicy", venv, n_steps=n_steps, batch_size=min(128, n_steps), n_epochs=10, seed=0,
                 device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    wall = time.perf_counter() - t0
    return {"ppo_steps_s": model.num_timesteps / wall, "env_share": timed.env_s / wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timesteps", type=int, default=4096, help="PPO steps per env")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds of random stepping per env")
    p.add_argument("--engine", default=None, help="engine of Routing-v0 and Reallocation-v0 (default: kernel if built)")
    a = p.parse_args()
    engine = a.engine or default_engine()
    cases = [
        ("twin/Routing-v0", {"engine": engine}, 480),
        ("twin/Routing-v0", {"engine": "simpy"}, 480) if engine != "simpy" else None,
        ("twin/OrderRouting-v0", {}, 512),
        ("twin/Reallocation-v0", {"engine": engine}, 70),
    ]
    print(f"| env | engine | orders/step | env steps/s | orders/s (in env.step) | PPO steps/s | env share of PPO wall |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for case in cases:
        if case is None:
            continue
        env_id, kw, n_steps = case
        e = env_speed(env_id, kw, a.seconds)
        steps = a.timesteps if kw.get("engine") != "simpy" or "OrderRouting" in env_id else max(a.timesteps // 8, 480)
        t = ppo_speed(env_id, kw, steps, n_steps)
        eng = kw.get("engine", "simpy")
        print(f"| {env_id} | {eng} | {e['orders_step']:,.0f} | {e['steps_s']:,.0f} | {e['orders_s']:,.0f} | "
              f"{t['ppo_steps_s']:,.0f} | {t['env_share']:.0%} |", flush=True)


if __name__ == "__main__":
    main()
