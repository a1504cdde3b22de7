"""RL throughput (issue 4): env steps/s and simulated orders/s inside the steps of each env, the
model's own speed on the same scenario for reference, and SB3 PPO training steps/s with the
share of PPO's wall time spent inside the env.

    python benchmarks/rl_speed.py                  # every row (a few minutes)
    python benchmarks/rl_speed.py --quick          # tiny budgets, to check that it runs
    python benchmarks/rl_speed.py --spread 14      # full-size Routing-v0 vs the model, 14 short repeats

Definitions (one process, ``torch.set_num_threads(1)``, fixed zero actions or random masked
actions for the env rows):

- ``orders/step``: orders created per env step (the drain of the last step creates none).
- ``env steps/s``: steps / wall seconds inside ``env.step`` (resets excluded; ``reset ms`` is
  their mean cost).
- ``orders/s in steps``: per episode, orders created / wall seconds inside its ``env.step``
  calls; the median over the episodes (min and max beside it).
- ``model orders/s``: the twin alone on the same scenario and scale, the ``cheapest`` policy
  routed natively by the engine: orders created / wall seconds of ``FulfillmentModel(...)`` and
  ``run()`` (the kernel benchmark's definition without ``finish()``); median over as many seeds.
  It is what "the kernel's speed" means on this scenario, measured in the same process, so the
  ratio of the two columns does not depend on how loaded the machine is.
- ``PPO steps/s``: ``model.learn`` steps / its wall seconds; ``env share``: wall seconds inside
  ``env.step`` and ``env.reset`` (the ``Timed`` wrapper) over ``learn``'s wall seconds. The PPO
  configuration is the one of the RESULTS.md run (``RESULT_PPO``); for the result row the
  median of ``--ppo-repeats`` runs of ``--ppo-rollouts`` rollouts (other rows: one short run).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np

import rl  # noqa: F401 - registers the envs
from rl._common import base_scenario, default_engine

#: The env arguments of the RESULTS.md run (``twin train ... --scale 0.1 --randomize
#: --env-arg temperature=0.005``).
RESULT_ENV = {"scenario": "singles_day", "scale": 0.1, "epoch_h": 1.0, "temperature": 0.005, "randomize": True}
#: The PPO configuration of the RESULTS.md run (SB3's default n_steps/batch/epochs, MLP 256x256).
RESULT_PPO = {"n_steps": 2048, "batch_size": 64, "n_epochs": 10, "learning_rate": 3e-4,
              "policy_kwargs": {"net_arch": [256, 256], "log_std_init": -1.0}}


#: Routing-v1's training configuration in RESULTS.md (``twin train --env twin/Routing-v1 --scale 0.1
#: --randomize --log-std-init -1.5``: the trainer's defaults otherwise).
V1_ENV = {"scenario": "singles_day", "scale": 0.1, "epoch_h": 1.0, "randomize": True}
V1_PPO = {"n_steps": 512, "batch_size": 128, "n_epochs": 10, "learning_rate": 3e-4,
          "policy_kwargs": {"net_arch": [64, 64], "log_std_init": -1.5}}


#: Reallocation-v1's training configuration in RESULTS.md (``twin train --env twin/Reallocation-v1
#: --scenario singles_day --scale 0.1``: the trainer's defaults).
REALLOC_V1_ENV = {"scenario": "singles_day", "scale": 0.1}
REALLOC_V1_PPO = {"n_steps": 512, "batch_size": 128, "n_epochs": 10, "learning_rate": 3e-4,
                  "policy_kwargs": {"net_arch": [64, 64], "log_std_init": 0.0}}


class Timed(gym.Wrapper):
    """Adds up the wall time spent in ``step`` and ``reset`` of the wrapped env, and the orders
    its steps report."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.step_s = 0.0
        self.reset_s = 0.0
        self.steps = 0
        self.resets = 0
        self.orders = 0.0

    @property
    def env_s(self) -> float:
        return self.step_s + self.reset_s

    def step(self, action):  # noqa: ANN001, ANN201
        t = time.perf_counter()
        out = self.env.step(action)
        self.step_s += time.perf_counter() - t
        self.steps += 1
        self.orders += out[4].get("orders", 0.0)
        return out

    def reset(self, **kw):  # noqa: ANN003, ANN201
        t = time.perf_counter()
        out = self.env.reset(**kw)
        self.reset_s += time.perf_counter() - t
        self.resets += 1
        return out


def env_speed(env_id: str, kwargs: dict[str, Any], episodes: int, max_steps: int | None = None) -> dict[str, float]:
    """Step ``episodes`` episodes (at most ``max_steps`` steps each) with zero (or random masked)
    actions; time inside ``step`` and ``reset``."""
    env = Timed(gym.make(env_id, **kwargs))
    u = env.unwrapped
    rng = np.random.default_rng(0)
    env.reset(seed=10_000)  # warm up (first-call costs), untimed
    for _ in range(3):
        env.step(env.action_space.sample() if not hasattr(u, "action_masks")
                 else int(np.flatnonzero(u.action_masks())[0]))
    env.step_s = env.reset_s = env.orders = 0.0
    env.steps = env.resets = 0
    rates = []
    for ep in range(episodes):
        env.reset(seed=ep)
        s0, o0, n0 = env.step_s, env.orders, env.steps
        done = False
        while not done and (max_steps is None or env.steps - n0 < max_steps):
            if hasattr(u, "action_masks"):
                a: Any = int(rng.choice(np.flatnonzero(u.action_masks())))
            else:
                a = np.zeros(env.action_space.shape, np.float32)
            _, _, term, trunc, _ = env.step(a)
            done = term or trunc
        rates.append((env.orders - o0) / max(env.step_s - s0, 1e-12))
    steps, orders, step_s = env.steps, env.orders, env.step_s
    return {"orders_step": orders / max(steps, 1), "steps_s": steps / step_s, "orders_s": statistics.median(rates),
            "orders_s_min": min(rates), "orders_s_max": max(rates), "reset_ms": 1e3 * env.reset_s / env.resets}


def model_speed(kwargs: dict[str, Any], seeds: int, engine: str) -> float:
    """The twin alone on the env's scenario and scale (cheapest routing): median orders/s."""
    from twin.policies import Cheapest
    from twin.sim.model import FulfillmentModel

    sc = base_scenario(kwargs.get("scenario", "singles_day"), kwargs.get("scale", 0.1), kwargs.get("horizon_h"))
    rates = []
    for seed in range(seeds):
        t = time.perf_counter()
        m = FulfillmentModel(sc, seed=seed, engine=engine, routing=Cheapest())
        m.run()
        rates.append(m.engine.counters.created / (time.perf_counter() - t))
    return statistics.median(rates)


def _timed_vec(venv: Any) -> Any:
    """``venv`` (a SubprocVecEnv) behind a wrapper that times, in the learner's process, the
    wall seconds it waits for the workers' steps and resets (``env_s``, ``steps``)."""
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class TimedVec(VecEnvWrapper):
        def __init__(self, v: Any) -> None:
            super().__init__(v)
            self.step_s = self.reset_s = 0.0
            self.steps = self.resets = 0

        @property
        def env_s(self) -> float:
            return self.step_s + self.reset_s

        def step_async(self, actions: Any) -> None:
            self._t = time.perf_counter()
            self.venv.step_async(actions)

        def step_wait(self) -> Any:
            out = self.venv.step_wait()
            self.step_s += time.perf_counter() - self._t
            self.steps += self.num_envs
            return out

        def reset(self) -> Any:
            t = time.perf_counter()
            out = self.venv.reset()
            self.reset_s += time.perf_counter() - t
            self.resets += self.num_envs
            return out

    return TimedVec(venv)


def ppo_speed(env_id: str, kwargs: dict[str, Any], timesteps: int, ppo: dict[str, Any],
              n_envs: int = 1) -> dict[str, float]:
    """SB3 PPO's ``learn`` for ``timesteps`` steps; with ``n_envs`` > 1 the envs run in a
    ``SubprocVecEnv`` (as ``twin train --n-envs``), ``n_steps`` per env, and the env share is the
    learner's wait for the workers (their stepping and the pipes)."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from rl.train import make_env
    from twin.results.runs import start_method

    torch.set_num_threads(1)
    if n_envs > 1:
        timed = _timed_vec(SubprocVecEnv([lambda: Monitor(make_env(env_id, **kwargs)) for _ in range(n_envs)],
                                         start_method=start_method()))
        venv = timed
    else:
        timed = Timed(gym.make(env_id, **kwargs))
        venv = DummyVecEnv([lambda: Monitor(timed)])
    algo: Any = PPO
    ppo = {**ppo, "policy_kwargs": dict(ppo["policy_kwargs"])}
    if "OrderRouting" in env_id:  # discrete actions: no Gaussian std
        ppo["policy_kwargs"].pop("log_std_init", None)
        from sb3_contrib import MaskablePPO as algo  # noqa: N813
    model = algo("MlpPolicy", venv, seed=0, device="cpu", verbose=0, **ppo)
    gc.freeze()  # as twin train does before learn (rl/train.py)
    t0 = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    wall = time.perf_counter() - t0
    gc.unfreeze()
    if n_envs > 1:
        venv.close()
        timed.steps = model.num_timesteps
    return {"ppo_steps_s": model.num_timesteps / wall, "env_share": timed.env_s / wall,
            "env_ms": 1e3 * timed.env_s / max(timed.steps, 1), "learner_ms": 1e3 * (wall - timed.env_s) /
            max(model.num_timesteps, 1)}


def spread(n: int, engine: str) -> None:
    """Orders/s inside full-size Routing-v0 steps (1 h and 4 h epochs) and of the model alone,
    ``n`` short repeats in turn, then the medians and ranges over the repeats."""
    kw1 = {**RESULT_ENV, "scale": 1.0, "randomize": False, "engine": engine}
    kw4 = {**kw1, "epoch_h": 4.0}
    rows = []
    for _ in range(n):
        rows.append((env_speed("twin/Routing-v0", kw1, 4)["orders_s"], env_speed("twin/Routing-v0", kw4, 4)["orders_s"],
                     model_speed(kw1, 4, engine)))
        print(f"{time.strftime('%H:%M:%S')}  1 h epochs {rows[-1][0]:>12,.0f}  4 h epochs {rows[-1][1]:>12,.0f}  "
              f"model {rows[-1][2]:>12,.0f}", flush=True)
    for i, name in enumerate(("1 h epochs", "4 h epochs", "model")):
        v = [r[i] for r in rows]
        print(f"{name}: median {statistics.median(v):,.0f} ({min(v):,.0f}–{max(v):,.0f}); "
              f">= 1M in {sum(x >= 1e6 for x in v)} of {n}")


def training_configs(engine: str, repeats: int, rollouts: int, quick: bool) -> None:
    """PPO steps/s and the env's share of PPO wall time in the RESULTS.md configurations of
    Routing-v1 and Reallocation-v1, one env in the learner's process and two env processes."""
    rows = [("twin/Routing-v1", {**V1_ENV, "engine": engine}, V1_PPO, rollouts),
            ("twin/Reallocation-v1", {**REALLOC_V1_ENV, "engine": engine}, REALLOC_V1_PPO, max(rollouts // 4, 1))]
    print("| env | configuration | env processes | PPO steps/s | env share of PPO wall, median (min–max) | "
          "env / learner ms per step |")
    print("|---|---|---:|---:|---:|---:|")
    for env_id, kw, ppo, n_roll in rows:
        if quick:
            ppo = {**ppo, "n_steps": 64, "batch_size": 64}
        for n_envs in (1, 2):
            conf = {**ppo, "n_steps": ppo["n_steps"] // n_envs}
            reps = [ppo_speed(env_id, kw, n_roll * ppo["n_steps"], conf, n_envs) for _ in range(repeats)]
            t = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
            shares = [r["env_share"] for r in reps]
            desc = ", ".join(f"{k}={v}" for k, v in kw.items() if k != "engine")
            print(f"| {env_id} | {desc}; n_steps {conf['n_steps']} x {n_envs}, batch {ppo['batch_size']}, "
                  f"MLP {'x'.join(map(str, ppo['policy_kwargs']['net_arch']))} | {n_envs} | {t['ppo_steps_s']:,.0f} | "
                  f"{t['env_share']:.0%} ({min(shares):.0%}–{max(shares):.0%}) | {t['env_ms']:.2f} / "
                  f"{t['learner_ms']:.2f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=8, help="episodes per env row")
    p.add_argument("--ppo-rollouts", type=int, default=8, help="PPO rollouts of n_steps for the result row")
    p.add_argument("--ppo-repeats", type=int, default=3, help="PPO measurements of the result row (median shown)")
    p.add_argument("--engine", default=None, help="engine of Routing-v0 and Reallocation-v0 (default: kernel if built)")
    p.add_argument("--quick", action="store_true", help="tiny budgets (checks that the script runs)")
    p.add_argument("--spread", type=int, default=0, metavar="N",
                   help="instead of the table: N short repeats of the full-size Routing-v0 rows (1 h and 4 h "
                        "epochs, 4 episodes each) beside the model (4 runs), to see how the rates move together")
    p.add_argument("--training-configs", action="store_true",
                   help="instead of the table: PPO's env share in the RESULTS.md training configurations of the "
                        "v1 envs, with one env and with two in a SubprocVecEnv (n_steps halved per env: the same "
                        "rollout), --ppo-repeats runs each")
    a = p.parse_args()
    if a.training_configs:
        training_configs(a.engine or default_engine(), a.ppo_repeats, 1 if a.quick else a.ppo_rollouts, a.quick)
        return
    if a.spread:
        spread(a.spread, a.engine or default_engine())
        return
    engine = a.engine or default_engine()
    eps = 1 if a.quick else a.episodes
    rollouts = 1 if a.quick else a.ppo_rollouts
    small_ppo = {**RESULT_PPO, "n_steps": 64, "batch_size": 64}
    # (label, env id, env kwargs, episodes, max steps per episode, model reference?, PPO (config, timesteps) or None)
    result_ppo = (RESULT_PPO if not a.quick else small_ppo)
    cases: list[tuple[str, str, dict[str, Any], int, int | None, bool, tuple[dict[str, Any], int] | None]] = [
        ("result config", "twin/Routing-v0", {**RESULT_ENV, "engine": engine}, eps, None, True,
         (result_ppo, rollouts * result_ppo["n_steps"])),
        ("full size, 1 h epochs", "twin/Routing-v0",
         {**RESULT_ENV, "scale": 1.0, "randomize": False, "engine": engine}, eps, None, True, None),
        ("full size, 4 h epochs", "twin/Routing-v0",
         {**RESULT_ENV, "scale": 1.0, "epoch_h": 4.0, "randomize": False, "engine": engine}, eps, None, True, None),
        ("result config, simpy", "twin/Routing-v0", {**RESULT_ENV, "engine": "simpy"}, 1, None if not a.quick else 4,
         False, None) if engine != "simpy" else None,
        ("v1 training config", "twin/Routing-v1", {**V1_ENV, "engine": engine}, eps, None, True,
         (V1_PPO if not a.quick else small_ppo, rollouts * (V1_PPO if not a.quick else small_ppo)["n_steps"])),
        ("full size, 1 h epochs", "twin/Routing-v1", {**V1_ENV, "scale": 1.0, "randomize": False, "engine": engine},
         eps, None, True, None),
        ("default", "twin/OrderRouting-v0", {}, 1 if a.quick else 2, 200 if a.quick else None, False,
         ({**RESULT_PPO, "n_steps": 512 if not a.quick else 64}, 2048 if not a.quick else 64)),
        ("default", "twin/Reallocation-v0", {"engine": engine}, eps, None, False,
         ({**RESULT_PPO, "n_steps": 64, "batch_size": 64}, 64 * (2 if not a.quick else 1))),
        ("default", "twin/OrderRouting-v1", {}, 1 if a.quick else 2, 200 if a.quick else None, False,
         ({**RESULT_PPO, "n_steps": 512 if not a.quick else 64}, 2048 if not a.quick else 64)),
        ("default", "twin/Reallocation-v1", {"engine": engine}, eps, None, False,
         ({**RESULT_PPO, "n_steps": 64, "batch_size": 64}, 64 * (2 if not a.quick else 1))),
    ]
    print("| env | configuration | engine | orders/step | env steps/s | reset ms | orders/s in steps, median "
          "(min–max) | model orders/s | PPO steps/s | env share of PPO wall (env / learner ms per step) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for case in cases:
        if case is None:
            continue
        label, env_id, kw, n_ep, max_steps, ref, ppo = case
        e = env_speed(env_id, kw, n_ep, max_steps)
        eng = kw.get("engine", "simpy")
        ref_s = f"{model_speed(kw, n_ep, eng):,.0f}" if ref else "—"
        ppo_s, share_s = "—", "—"
        if ppo is not None:
            reps = [ppo_speed(env_id, kw, ppo[1], ppo[0]) for _ in range(a.ppo_repeats if label == "result config"
                                                                         and not a.quick else 1)]
            t = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
            ppo_s = f"{t['ppo_steps_s']:,.0f}"
            share_s = f"{t['env_share']:.0%} ({t['env_ms']:.2f} / {t['learner_ms']:.2f})"
        conf = ", ".join(f"{k}={v}" for k, v in kw.items() if k != "engine")
        print(f"| {env_id} | {label}: {conf or 'defaults'} | {eng} | {e['orders_step']:,.0f} | {e['steps_s']:,.0f} | "
              f"{e['reset_ms']:.1f} | {e['orders_s']:,.0f} ({e['orders_s_min']:,.0f}–{e['orders_s_max']:,.0f}) | "
              f"{ref_s} | {ppo_s} | {share_s} |", flush=True)


if __name__ == "__main__":
    main()
