"""Honest evaluation: a policy and every baseline on the same seeds, paired differences with
95% confidence intervals (Student t) on the episode reward and each KPI, a table and a plot.

``twin evaluate runs/rl/<run>/model.zip --scenario typhoon --replications 10``
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rl.baselines import EPISODE_METRICS, Heuristic, Learned, baseline_names, run_episode
from twin.results.kpis import paired_ci  # the one definition, re-exported
from twin.results.runs import jsonable

__all__ = ["paired_ci", "evaluate", "format_table", "load_run_args", "HELD_OUT_SEED", "TOTAL_METRICS"]

#: Evaluation seeds start here; training uses seeds below it (``twin train --seed`` is small).
HELD_OUT_SEED = 100_000

#: Per-episode totals of an env that has ``episode_totals()`` (the reallocation envs): what a
#: reallocation is judged on (late and lost orders at what transfer cost), compared paired too.
TOTAL_METRICS = ("late_orders", "lost_orders", "transfer_cny", "units_moved", "transfer_unit_km")


def _episode(env: Any, policy: Any, seed: int) -> dict[str, float]:
    """:func:`run_episode`, plus the env's ``episode_totals()`` where it has them."""
    row = run_episode(env, policy, seed)
    totals = getattr(env.unwrapped, "episode_totals", None)
    if totals is not None:
        row.update(totals())
    return row


def load_run_args(policy_path: str | Path) -> dict[str, Any]:
    """The ``args.json`` that `twin train` wrote beside a model zip (or, for a checkpoint in
    ``RUN_DIR/checkpoints/``, in the run directory), or {}."""
    here = Path(policy_path).parent
    for p in (here / "args.json", here.parent / "args.json"):
        if p.is_file() and (p.parent == here or here.name == "checkpoints"):
            return json.loads(p.read_text())
    return {}


def evaluate(policy: str, scenario: str | None = None, replications: int = 10, env_id: str | None = None,
             seed: int = HELD_OUT_SEED, out_dir: str | Path | None = None,
             env_kwargs: Mapping[str, Any] | None = None, baselines: Sequence[str] | None = None,
             bound: bool = True) -> dict[str, Any]:
    """Run ``policy`` and the baselines on seeds ``seed .. seed + replications - 1``.

    Args:
        policy: a model zip written by `twin train` (its ``args.json`` gives the env id and the
            env arguments it was trained with), or a baseline's name (to compare heuristics).
        scenario: the scenario to evaluate on (default: the one it was trained on).
        replications: episodes per policy (>= 2 for confidence intervals).
        env_id: the env (default: from ``args.json``, else ``twin/Routing-v0``).
        seed: the first reset seed (held out from training by default).
        out_dir: where to write ``eval.json`` and ``eval.png`` (None: nothing written).
        env_kwargs: env arguments overriding those of ``args.json``.
        baselines: the baselines to compare with (default: every baseline of the env).
        bound: also the hindsight bound of each seed's orders and each policy's gap to it
            (:func:`hindsight_bounds`, :func:`gap_table`).

    Returns:
        ``{"policy", "env_id", "env_kwargs", "seeds", "episodes": {name: [per-episode dicts]},
        "differences": {baseline: {metric: paired_ci}}}``; differences are policy minus baseline
        (reward: higher is better; objective, cost, late, lost, CO2: lower is better); on an env
        with ``episode_totals()`` (the reallocation envs) also the episode's late and lost orders,
        transfer cost (CNY), units moved and unit-km (:data:`TOTAL_METRICS`); with
        ``bound``, also ``"bound_per_order"`` (per seed) and ``"gap"`` ({name: gap figures}).
    """
    import gymnasium as gym

    import rl  # noqa: F401 - registers the envs

    if replications < 1:
        raise ValueError(f"replications must be >= 1, got {replications}")
    is_path = str(policy).endswith(".zip") or Path(policy).is_file()
    run_args = load_run_args(policy) if is_path else {}
    env_id = env_id or run_args.get("env_id", "twin/Routing-v0")
    kwargs = dict(run_args.get("env_kwargs", {}))
    kwargs.update(env_kwargs or {})
    if scenario is not None:
        kwargs["scenario"] = scenario
    elif "scenario" not in kwargs and "scenario" in run_args:
        kwargs["scenario"] = run_args["scenario"]
    kwargs.pop("randomize", None)  # evaluate on the scenario as it is
    names = list(baselines) if baselines is not None else list(baseline_names(env_id))
    if is_path:
        main: Any = Learned(policy, name="learned")
    else:
        if policy not in baseline_names(env_id):
            raise ValueError(f"policy must be a model zip or one of {', '.join(baseline_names(env_id))}; "
                             f"got {policy!r}")
        main = Heuristic(policy)
        names = [n for n in names if n != policy]
    env = gym.make(env_id, **kwargs)
    seeds = [seed + i for i in range(replications)]
    episodes = {main.name: [_episode(env, main, s) for s in seeds]}
    for n in names:
        episodes[n] = [_episode(env, Heuristic(n), s) for s in seeds]
    bounds = hindsight_bounds(env, seeds) if bound else None
    env.close()
    diffs = {}
    for n in names:
        diffs[n] = {m: paired_ci([e[m] for e in episodes[main.name]], [e[m] for e in episodes[n]])
                    for m in EPISODE_METRICS + TOTAL_METRICS if m in episodes[main.name][0]}
    result = {"policy": str(policy), "name": main.name, "env_id": env_id,
              "env_kwargs": {k: v for k, v in kwargs.items() if _plain(v)}, "seeds": seeds,
              "episodes": episodes, "differences": diffs}
    if bounds is not None:
        result["bound_per_order"] = bounds
        result["gap"] = gap_table(episodes, bounds)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps(jsonable(result), indent=2) + "\n")
        plot(result, out / "eval.png")
    return result


def hindsight_bounds(env: Any, seeds: Sequence[int]) -> list[float] | None:
    """Per seed, the hindsight bound (``twin bound``'s LP, :func:`twin.results.bound.hindsight_bound`)
    on the orders of the episode ``env.reset(seed)`` starts: they are the same whatever the
    policy (common random numbers), so one :func:`twin.simulate` of the episode's scenario and
    seed gives them. None for an env without a routing objective (no ``objective_per_order``)."""
    from twin.results.bound import hindsight_bound
    from twin.results.runs import simulate

    u = env.unwrapped
    if not hasattr(u, "episode_scenario"):
        return None
    out = []
    for s in seeds:
        env.reset(seed=int(s))
        sc = u.episode_scenario
        r = simulate(sc, seed=u.episode_seed, engine=u.engine)
        out.append(float(hindsight_bound(sc, r.orders).objective_per_order))
    return out


def gap_table(episodes: Mapping[str, list[dict]], bounds: Sequence[float],
              reference: str = "cheapest") -> dict[str, dict[str, float]]:
    """Per policy: its mean objective per order, its mean gap to the bound (``(objective -
    bound) / bound`` per seed) and the share of ``reference``'s gap to the bound it closes
    (``(ref - policy) / (ref - bound)`` on the means; 0 for the reference itself)."""
    b = np.asarray(bounds, dtype=float)
    out: dict[str, dict[str, float]] = {}
    ref = np.array([e["objective_per_order"] for e in episodes[reference]]) if reference in episodes else None
    for name, eps in episodes.items():
        obj = np.array([e["objective_per_order"] for e in eps])
        row = {"objective_per_order": float(obj.mean()), "gap_to_bound": float(np.mean((obj - b) / b))}
        if ref is not None and ref.mean() > b.mean():
            row[f"{reference}_gap_closed"] = float((ref.mean() - obj.mean()) / (ref.mean() - b.mean()))
        out[name] = row
    return out


def _plain(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool, type(None), list, dict))


def format_table(result: Mapping[str, Any]) -> str:
    """Mean per policy, then paired differences (policy - baseline) with 95% CIs."""
    eps = result["episodes"]
    metrics = [m for m in ("reward", "objective_per_order", "cost_per_order", "late_rate", "lost_rate",
                           "co2_per_order_kg", "late_orders", "lost_orders", "transfer_cny", "units_moved")
               if m in next(iter(eps.values()))[0]]
    width = max(len(n) for n in eps) + 2
    lines = [f"{result['env_id']} on {result['env_kwargs'].get('scenario', '?')}, {len(result['seeds'])} seeds "
             f"from {result['seeds'][0]} (paired: common seeds)", "",
             "mean per episode".ljust(width) + "".join(f"{m:>22}" for m in metrics)]
    for n, rows in eps.items():
        lines.append(n.ljust(width) + "".join(f"{np.mean([r[m] for r in rows]):>22.4f}" for m in metrics))
    lines += ["", f"{result['name']} - baseline (95% CI)".ljust(width) + "".join(f"{m:>22}" for m in metrics)]
    for n, d in result["differences"].items():
        cells = []
        for m in metrics:
            c = d[m]
            mark = "*" if c["n"] > 1 and (c["low"] > 0 or c["high"] < 0) else " "
            cells.append(f"{c['mean']:+.4f} ± {c['half_width']:.4f}{mark}".rjust(22))
        lines.append(n.ljust(width) + "".join(cells))
    lines.append("\n* the 95% CI excludes zero. reward: higher is better; the KPIs: lower is better.")
    if result.get("gap"):
        b = result["bound_per_order"]
        lines += ["", f"hindsight bound (twin bound's LP on each seed's orders): {np.mean(b):.4f} per order",
                  "objective per order".rjust(width + 20) + "gap to bound".rjust(16) + "cheapest's gap closed".rjust(24)]
        for n, g in result["gap"].items():
            closed = g.get("cheapest_gap_closed")
            lines.append(n.ljust(width) + f"{g['objective_per_order']:>20.4f}{100 * g['gap_to_bound']:>15.1f}%"
                         + (f"{100 * closed:>23.1f}%" if closed is not None else "".rjust(24)))
    return "\n".join(lines)


def plot(result: Mapping[str, Any], path: str | Path) -> Path:
    """Paired reward differences with their 95% CIs (left), objective per order per policy (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    diffs = result["differences"]
    names = list(diffs)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    if names:
        means = [diffs[n]["reward"]["mean"] for n in names]
        errs = [np.nan_to_num(diffs[n]["reward"]["half_width"]) for n in names]
        colors = ["tab:green" if d["reward"]["low"] > 0 else "tab:red" if d["reward"]["high"] < 0 else "tab:gray"
                  for d in diffs.values()]
        ax1.barh(names, means, xerr=errs, color=colors, capsize=4)
    ax1.axvline(0, color="black", lw=0.8)
    ax1.set_xlabel(f"episode reward: {result['name']} - baseline (95% CI)")
    ax1.set_title("paired differences (right of 0: the policy is better)")
    eps = result["episodes"]
    pol = list(eps)
    obj = [np.mean([r.get("objective_per_order", np.nan) for r in eps[n]]) for n in pol]
    ax2.barh(pol, obj, color=["tab:blue"] + ["tab:gray"] * (len(pol) - 1))
    ax2.set_xlabel("objective per order, CNY (lower is better)")
    ax2.set_title(f"{result['env_kwargs'].get('scenario', '')}, {len(result['seeds'])} seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
