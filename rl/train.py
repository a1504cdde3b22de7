"""Train a policy on a twin env with stable-baselines3: PPO, or MaskablePPO for the per-order env.

CleanRL-style: the arguments are one dataclass, the run reads top to bottom. Everything the run
writes goes to its run directory: ``args.json``, ``model.zip``, ``best_model.zip``,
``checkpoints/``, ``progress.csv`` (and TensorBoard events), ``monitor/`` episode logs and
``evaluations.json`` (the periodic evaluation against the best baseline).

``twin train --env twin/Routing-v0 --scenario singles_day --total-timesteps 100000``
"""

from __future__ import annotations

import dataclasses
import gc
import inspect
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import rl  # noqa: F401 - registers the envs
from rl._common import env_class
from rl.baselines import Heuristic, baseline_names, run_episode
from twin.scenario.loader import format_overrides, parse_overrides

__all__ = ["Args", "train", "make_env", "add_arguments", "args_from_namespace", "check_env_kwargs"]


@dataclass
class Args:
    """The arguments of a training run (``twin train --help`` lists them)."""

    env_id: str = "twin/Routing-v0"
    """registered env id"""
    scenario: str = "singles_day"
    """scenario name or YAML path"""
    scale: float = 0.1
    """demand and capacities x this (see twin.scenario.loader.scale_scenario)"""
    horizon_h: float | None = None
    """shorten the horizon (None: the env's default)"""
    engine: str | None = None
    """twin engine (None: kernel when built, else simpy)"""
    randomize: bool = False
    """domain randomisation of demand, weather and outages"""
    total_timesteps: int = 100_000
    """env steps to train for"""
    n_envs: int = 1
    """parallel envs (SubprocVecEnv when > 1)"""
    seed: int = 0
    """seeds torch, numpy, the envs (env i: seed + i) and the PPO sampling"""
    learning_rate: float = 3e-4
    n_steps: int = 512
    """steps per env per rollout"""
    batch_size: int = 128
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    net_arch: tuple[int, ...] = (64, 64)
    log_std_init: float = 0.0
    """initial log std of the Gaussian actions (Box action spaces)"""
    init_action: tuple[float, ...] = ()
    """a warm start (Box action spaces): the policy's initial mean action, one value per action
    dimension within the action's bounds, e.g. a constant action found by a search on
    validation seeds (empty: the zero action, the base heuristic of a residual env)"""
    eval_freq: int = 10_000
    """evaluate against the best baseline every this many steps (0: never)"""
    eval_episodes: int = 3
    eval_seed: int = 50_000
    """first seed of the evaluation episodes (not the training seeds)"""
    checkpoint_freq: int = 50_000
    """save a checkpoint every this many steps (0: never)"""
    torch_threads: int = 1
    run_dir: str | None = None
    """where everything goes (default: runs/rl/<env>__<scenario>__seed<N>__<time>)"""
    log_formats: tuple[str, ...] = ("stdout", "csv", "tensorboard")
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """further env arguments (reward weights, epoch_h, ...)"""
    device: str = "cpu"
    verbose: int = 0

    def full_env_kwargs(self) -> dict[str, Any]:
        kw = {"scenario": self.scenario, "scale": self.scale, "randomize": self.randomize, **self.env_kwargs}
        if self.horizon_h is not None:
            kw["horizon_h"] = self.horizon_h
        if self.engine is not None:  # the env says which engines it runs on
            kw["engine"] = self.engine
        return kw


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make`` after registering the twin's envs (picklable for SubprocVecEnv)."""
    import rl  # noqa: F401

    return gym.make(env_id, **kwargs)


def _masked(env_id: str) -> bool:
    return bool(env_class(env_id).supports_masks)


#: Env arguments that have their own option (``--scale``, not ``--env-arg scale=...``).
_OWN_OPTIONS = {"scenario": "--scenario", "scale": "--scale", "horizon_h": "--horizon-h", "engine": "--engine",
                "randomize": "--randomize"}

_TYPES: dict[str, tuple[type, ...]] = {"float": (int, float), "int": (int,), "str": (str,), "bool": (bool,),
                                       "None": (type(None),), "dict": (dict,), "Mapping": (dict,)}


def _fits(value: Any, annotation: str) -> bool | None:
    """Whether a JSON value fits a constructor annotation written as a string (``float | None``);
    None when the annotation names no type this knows."""
    known = False
    for part in annotation.split("|"):
        name = part.strip().split("[")[0]
        types = _TYPES.get(name)
        if types is None:
            continue
        known = True
        if isinstance(value, bool) and bool not in types:
            continue
        if isinstance(value, types) and not (name == "float" and not math.isfinite(value)):
            return True
    return None if not known else False


def _env_parameters(env_id: str) -> dict[str, inspect.Parameter]:
    """The constructor arguments of the env of ``env_id``."""
    return {n: p for n, p in inspect.signature(env_class(env_id).__init__).parameters.items()
            if n != "self" and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)}


def check_env_kwargs(env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Refuse env arguments that the env's constructor does not take, that have their own
    option, or whose value is not of the constructor's type, naming the argument and what is
    allowed (ValueError)."""
    cls = env_class(env_id)
    params = _env_parameters(env_id)
    extra = [n for n in params if n not in _OWN_OPTIONS]
    for key, value in env_kwargs.items():
        shown = f"--env-arg {format_overrides({key: value})}"
        if key in _OWN_OPTIONS:
            raise ValueError(f"{shown}: use {_OWN_OPTIONS[key]} for {key}")
        if key not in params:
            raise ValueError(f"{shown}: {env_id} ({cls.__name__}) takes no argument {key!r}; "
                             f"allowed: {', '.join(extra)}")
        ann = params[key].annotation
        ann = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
        if _fits(value, ann) is False:
            finite = " (finite)" if "float" in ann and isinstance(value, float) else ""
            raise ValueError(f"{shown}: {key} must be {ann}{finite}, got {type(value).__name__} {value!r}")


def _eval_callback_class() -> type:
    from stable_baselines3.common.callbacks import BaseCallback

    class _BaselineEval(BaseCallback):
        """Every ``eval_freq`` steps: the policy (deterministic) on fixed evaluation seeds, next
        to the best baseline on the same seeds; logs ``eval/*``, saves ``best_model.zip`` and
        appends to ``evaluations.json``."""

        def __init__(self, env_id: str, env_kwargs: dict[str, Any], seeds: list[int], eval_freq: int,
                     run_dir: Path) -> None:
            super().__init__()
            self.env = make_env(env_id, **env_kwargs)
            self.env_id, self.seeds, self.eval_freq, self.run_dir = env_id, seeds, eval_freq, run_dir
            self.masked = _masked(env_id)
            self.history: list[dict[str, Any]] = []
            self.best = -np.inf
            self._last = 0
            means = {n: float(np.mean([run_episode(self.env, Heuristic(n), s)["reward"] for s in seeds]))
                     for n in baseline_names(env_id)}
            self.baseline_name = max(means, key=means.get)
            self.baseline_reward = means[self.baseline_name]
            self.baselines = means

        def _policy(self, obs: np.ndarray, env: gym.Env) -> Any:
            if self.masked:
                return self.model.predict(obs, deterministic=True, action_masks=env.unwrapped.action_masks())[0]
            return self.model.predict(obs, deterministic=True)[0]

        def evaluate_now(self) -> dict[str, Any]:
            rewards = [run_episode(self.env, self._policy, s)["reward"] for s in self.seeds]
            row = {"timesteps": int(self.num_timesteps), "mean_reward": float(np.mean(rewards)),
                   "best_baseline": self.baseline_name, "best_baseline_reward": self.baseline_reward,
                   "advantage": float(np.mean(rewards)) - self.baseline_reward}
            self.history.append(row)
            self.logger.record("eval/mean_reward", row["mean_reward"])
            self.logger.record("eval/best_baseline_reward", self.baseline_reward)
            self.logger.record("eval/advantage_vs_best_baseline", row["advantage"])
            if row["mean_reward"] > self.best:
                self.best = row["mean_reward"]
                self.model.save(self.run_dir / "best_model.zip")
            (self.run_dir / "evaluations.json").write_text(json.dumps(
                {"seeds": self.seeds, "baselines": self.baselines, "history": self.history}, indent=2) + "\n")
            return row

        def _on_step(self) -> bool:
            if self.eval_freq > 0 and self.num_timesteps - self._last >= self.eval_freq:
                self._last = self.num_timesteps
                self.evaluate_now()
            return True

    return _BaselineEval


def _check_init_action(space: Any, init: tuple[float, ...]) -> np.ndarray:
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"init_action is for Box action spaces; this env's actions are {space}")
    a = np.asarray(init, dtype=float)
    if a.shape != space.shape:
        raise ValueError(f"init_action has {a.size} values; the env's action has {space.shape[0]} "
                         f"(shape {space.shape})")
    bad = np.flatnonzero(~np.isfinite(a) | (a < space.low) | (a > space.high))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"init_action[{i}] = {float(a[i])!r} is outside the action's bounds "
                         f"[{float(space.low[i]):g}, {float(space.high[i]):g}]")
    return a


def _warm_start(model: Any, space: Any, init: tuple[float, ...]) -> None:
    """Start the Gaussian policy's mean at ``init``: the action head's bias (its weights are
    SB3's orthogonal init with gain 0.01, so the mean is ``init`` up to ~0.01 per feature)."""
    import torch

    a = _check_init_action(space, init)
    with torch.no_grad():
        model.policy.action_net.bias.copy_(torch.as_tensor(a, dtype=model.policy.action_net.bias.dtype))


def train(args: Args) -> Path:
    """Train as ``args`` says; returns the run directory."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    if args.env_id not in rl.ENV_IDS:
        raise ValueError(f"env_id must be one of {', '.join(rl.ENV_IDS)}; got {args.env_id!r}")
    for name in ("total_timesteps", "n_envs", "n_steps", "batch_size", "n_epochs", "torch_threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(args, name)}")
    for f in dataclasses.fields(Args):
        v = getattr(args, f.name)
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{f.name} must be a finite number, got {v!r}")
    if not args.scale > 0:
        raise ValueError(f"scale must be a finite number > 0, got {args.scale!r}")
    check_env_kwargs(args.env_id, args.env_kwargs)
    env_kwargs = args.full_env_kwargs()
    try:  # one env first: a bad argument value fails here, before anything is written
        probe = make_env(args.env_id, **env_kwargs)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{args.env_id} with {json.dumps(env_kwargs, default=str)}: {exc}") from None
    if args.init_action:
        _check_init_action(probe.action_space, tuple(args.init_action))
    probe.close()
    # 1. the run directory and the seeds
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.run_dir or Path("runs") / "rl" /
                   f"{args.env_id.split('/')[-1]}__{Path(args.scenario).stem}__seed{args.seed}__{stamp}")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"run_dir {str(run_dir)!r}: cannot create it ({exc.strerror or exc})") from None
    (run_dir / "args.json").write_text(json.dumps({**dataclasses.asdict(args), "env_kwargs": env_kwargs},
                                                  indent=2, default=str) + "\n")
    torch.set_num_threads(args.torch_threads)
    set_random_seed(args.seed)

    # 2. the training envs: env i is seeded with seed + i, each in a Monitor
    vec_cls = SubprocVecEnv if args.n_envs > 1 else DummyVecEnv
    venv = make_vec_env(make_env, n_envs=args.n_envs, seed=args.seed, vec_env_cls=vec_cls,
                        env_kwargs={"env_id": args.env_id, **env_kwargs}, monitor_dir=str(run_dir / "monitor"))

    # 3. the algorithm, logging into the run directory
    algo: type = PPO
    if _masked(args.env_id):
        from sb3_contrib import MaskablePPO as algo  # noqa: N813
    policy_kwargs: dict[str, Any] = {"net_arch": list(args.net_arch)}
    if isinstance(venv.action_space, gym.spaces.Box):
        policy_kwargs["log_std_init"] = args.log_std_init
    model = algo("MlpPolicy", venv, learning_rate=args.learning_rate, n_steps=args.n_steps,
                 batch_size=args.batch_size, n_epochs=args.n_epochs, gamma=args.gamma, gae_lambda=args.gae_lambda,
                 clip_range=args.clip_range, ent_coef=args.ent_coef, seed=args.seed, device=args.device,
                 policy_kwargs=policy_kwargs, verbose=args.verbose)
    if args.init_action:
        _warm_start(model, venv.action_space, args.init_action)
    formats = [f for f in args.log_formats if f != "tensorboard" or _has_tensorboard()]
    model.set_logger(configure(str(run_dir), formats))

    # 4. callbacks: evaluation against the best baseline, checkpoints
    callbacks = []
    eval_cb = None
    if args.eval_freq > 0:
        seeds = [args.eval_seed + i for i in range(args.eval_episodes)]
        eval_cb = _eval_callback_class()(args.env_id, env_kwargs, seeds, args.eval_freq, run_dir)
        callbacks.append(eval_cb)
    if args.checkpoint_freq > 0:
        callbacks.append(CheckpointCallback(max(args.checkpoint_freq // args.n_envs, 1), str(run_dir / "checkpoints"),
                                            name_prefix="model"))

    # 5. train, evaluate once more at the end, save. gc.freeze(): the objects alive now (torch,
    # SB3, the envs: ~300k) leave the cyclic GC's generations, so its full collections during
    # training skip them (measured: 0.3 s less GC per 8k steps of the RESULTS.md configuration)
    gc.freeze()
    t0 = time.perf_counter()
    try:
        model.learn(total_timesteps=args.total_timesteps, callback=CallbackList(callbacks), progress_bar=False)
    finally:
        gc.unfreeze()  # back to the collector's oldest generation: nothing stays uncollectable
    wall = time.perf_counter() - t0
    if eval_cb is not None:
        eval_cb.evaluate_now()
    model.save(run_dir / "model.zip")
    venv.close()
    (run_dir / "train_summary.json").write_text(json.dumps(
        {"timesteps": int(model.num_timesteps), "wall_s": wall, "steps_per_s": model.num_timesteps / max(wall, 1e-9),
         "best_eval_reward": None if eval_cb is None else eval_cb.best,
         "best_baseline": None if eval_cb is None else eval_cb.baseline_name}, indent=2) + "\n")
    return run_dir


def add_arguments(p: Any) -> None:
    """Add one ``--option`` per :class:`Args` field to an argparse parser (for `twin train`)."""
    for f in dataclasses.fields(Args):
        if f.name in ("env_kwargs", "log_formats"):
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        flag = "--" + f.name.replace("_", "-")
        if f.name == "env_id":
            p.add_argument("--env", dest="env_id", default=default, choices=list(rl.ENV_IDS), help="env id")
        elif isinstance(default, bool):
            p.add_argument(flag, dest=f.name, action="store_true", help="(flag)")
        elif f.name == "init_action":
            p.add_argument(flag, dest=f.name, type=float, nargs="+", default=[], metavar="A",
                           help="warm start: the initial mean action, one value per dimension (default: zero)")
        elif isinstance(default, tuple):
            p.add_argument(flag, dest=f.name, type=int, nargs="+", default=list(default), help=f"(default {default})")
        elif f.name in ("horizon_h",):
            p.add_argument(flag, dest=f.name, type=float, default=None, help="(default: the env's)")
        elif f.name in ("engine", "run_dir"):
            p.add_argument(flag, dest=f.name, default=None, help="(default: automatic)")
        else:
            p.add_argument(flag, dest=f.name, type=type(default), default=default, help=f"(default {default})")
    p.add_argument("--env-arg", dest="env_kwargs", action="append", default=[], metavar="KEY=VALUE",
                   help="a further env argument, e.g. --env-arg late_penalty_cny=80 (repeatable; values are JSON)")


def args_from_namespace(a: Any) -> Args:
    kw = {f.name: getattr(a, f.name) for f in dataclasses.fields(Args) if hasattr(a, f.name)}
    kw["net_arch"] = tuple(kw.get("net_arch", (64, 64)))
    kw["init_action"] = tuple(kw.get("init_action", ()) or ())
    items = kw.pop("env_kwargs", []) or []
    for item in items:
        if "=" not in item:
            allowed = [n for n in _env_parameters(kw.get("env_id", Args.env_id)) if n not in _OWN_OPTIONS]
            raise ValueError(f"--env-arg {item!r}: expected KEY=VALUE (a JSON value), e.g. --env-arg "
                             f"late_penalty_cny=80; allowed keys: {', '.join(allowed)}")
    env_kwargs = parse_overrides(items, flag="--env-arg")
    if "env_id" in kw:  # a mistyped --env-arg is named here, before anything runs
        check_env_kwargs(kw["env_id"], env_kwargs)
    return Args(**kw, env_kwargs=env_kwargs)


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True
