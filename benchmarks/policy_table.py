"""Routing policies against each other and the hindsight bound, on held-out seeds (issue 9).

For each scenario and each held-out seed, every policy runs on the same orders and weather
(common random numbers), so differences are paired by seed. The objective is the one
definition (:func:`twin.world.costs.objective_cny`: cost + 50 CNY per late order + 100 per lost
order + 1 CNY per kg CO2), per created order, from the records
(:func:`twin.results.bound.realised_objective`). The bound is ``twin bound``'s LP
(:func:`twin.results.bound.hindsight_bound`) on each seed's realised orders (the same for every
policy). Prints a Markdown table: per scenario and policy the mean objective per order, the
on-time rate, the paired difference against ``cheapest`` with its 95% CI (negative: better),
the gap to the bound, and the share of cheapest's gap to the bound the policy closes.

    python benchmarks/policy_table.py --seeds 10 --processes 2 --out /tmp/policy_table.json
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

SCENARIOS = ("singles_day", "typhoon", "warehouse_outage", "carrier_capacity_loss", "cold_chain_failure")
POLICIES = ("cheapest", "nearest_with_stock", "fastest", "promise_aware", "promise_aware+spill+express_first")
HELD_OUT = 100_000  # rl.evaluate.HELD_OUT_SEED: training uses seeds below it


def _one(task: tuple[str, str, int, float, bool]) -> dict:
    name, policy, seed, scale, bound = task
    import twin
    from twin.results.bound import hindsight_bound, realised_objective
    from twin.scenario.loader import scale_scenario

    # "promise_aware+spill+express_first": the policy with levers (spill; express-first picking)
    base, *levers = policy.split("+")
    over: dict = {"policy.routing.name": base}
    if "spill" in levers:
        over["policy.routing.spill"] = True
    sc = twin.load_scenario(name, over)
    if "express_first" in levers:
        sc = twin.load_scenario(sc, {f"warehouses.{w.name}.pick.priority": "express_first" for w in sc.warehouses})
    if scale != 1.0:
        sc = scale_scenario(sc, scale)
    t0 = time.perf_counter()
    r = twin.simulate(sc, seed=seed)
    out = {"scenario": name, "policy": policy, "seed": seed, "run_s": time.perf_counter() - t0,
           "on_time_rate": float(r.kpis["on_time_rate"]), **realised_objective(r.orders)}
    if bound:
        b = hindsight_bound(sc, r.orders)
        out["bound_per_order"] = b.objective_per_order
        out["bound_status"] = b.status
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    ap.add_argument("--policies", nargs="*", default=list(POLICIES))
    ap.add_argument("--out", default=None, help="write every run's figures as JSON here")
    a = ap.parse_args()
    from twin.results.kpis import paired_ci

    seeds = [HELD_OUT + i for i in range(a.seeds)]
    tasks = [(n, p, s, a.scale, p == a.policies[0]) for n in a.scenarios for p in a.policies for s in seeds]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.processes) as ex:
        rows = list(ex.map(_one, tasks))
    wall = time.perf_counter() - t0
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    ref = a.policies[0]
    print(f"{len(rows)} runs, {wall:.0f} s wall, held-out seeds {seeds[0]}..{seeds[-1]}, scale {a.scale:g}\n")
    print(f"| scenario | policy | objective / order (CNY) | on-time | Δ vs {ref} (paired 95% CI) | gap to bound | "
          f"{ref}'s gap closed |")
    print("|---|---|---|---|---|---|---|")
    for n in a.scenarios:
        by = {p: sorted((r for r in rows if r["scenario"] == n and r["policy"] == p), key=lambda r: r["seed"])
              for p in a.policies}
        bound = np.array([r["bound_per_order"] for r in by[ref]])
        base = np.array([r["objective_per_order"] for r in by[ref]])
        for p in a.policies:
            obj = np.array([r["objective_per_order"] for r in by[p]])
            ot = np.mean([r["on_time_rate"] for r in by[p]])
            gap = np.mean((obj - bound) / bound)
            closed = np.mean(base - obj) / np.mean(base - bound)
            if p == ref:
                d = "—"
            else:
                ci = paired_ci(obj, base)
                d = f"{ci['mean']:+.3f} [{ci['low']:+.3f}, {ci['high']:+.3f}] ({100 * ci['mean'] / base.mean():+.1f}%)"
            print(f"| {n} | {p} | {obj.mean():.3f} | {ot:.3f} | {d} | {100 * gap:.1f}% | {100 * closed:.0f}% |")
        print(f"| {n} | bound (LP) | {bound.mean():.3f} | | | | |")


if __name__ == "__main__":
    main()
