"""Does the peak bind? ``singles_day`` (or ``--scenario``, e.g. ``singles_day_national``) at full
size on seeds 0..N-1, measured with :mod:`twin.results.peak`, and what each disruption scenario
costs ``cheapest``.

For each seed it runs (kernel engine):

- the scenario with its own routing (nearest_with_stock), stepped once more by
  :func:`twin.results.peak.watch_stock` for the per-SKU stock: warehouses at pick utilisation
  >= 0.95 for >= 6 h, the share of 11 Nov's departures (t in [24, 48)) that leave full, parcels
  rolled, split rate, hot-SKU stockouts (the 20 most popular SKUs), express on-time rate, and
  how long the backlog takes to halve after its post-midnight peak;
- the scenario and its ordinary day with ``policy.routing.name=cheapest``: on-time rate and cost
  per order. ``singles_day``'s ordinary day is ``baseline``; any other scenario's is the same
  network (fleets, carriers, prices, stock) at an ordinary day's demand (:data:`ORDINARY_DEMAND`:
  baseline's flat profile, Zipf 1.0, 1.5 lines per order, 5% cold);
- (``singles_day`` only: they are built on it) each disruption scenario with ``cheapest``,
  against ``singles_day`` with ``cheapest`` on the same seed: the objective per order
  (twin.world.costs.objective_cny: cost + 50 CNY per late order + 100 per lost + 1 CNY/kg CO2),
  the paired difference with its 95% CI.

It prints Markdown tables for RESULTS.md.

    python benchmarks/peak_binds.py              # 10 seeds (~3 minutes on one core)
    python benchmarks/peak_binds.py --seeds 3
    python benchmarks/peak_binds.py --scenario singles_day_national --seeds 3   # ~2 minutes
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import twin
from scenarios import builtin_names
from twin.results import peak
from twin.results.kpis import paired_ci

PEAK_DAY = (24.0, 48.0)  #: 11 Nov in singles_day's clock
DISRUPTIONS = ["warehouse_outage", "carrier_capacity_loss", "cold_chain_failure", "typhoon"]
CHEAPEST = {"policy.routing.name": "cheapest"}
#: An ordinary day's demand on a peak scenario's network: baseline's demand settings.
ORDINARY_DEMAND = {"demand.profile": [[0, 1.0]], "demand.skus.zipf_s": 1.0, "demand.lines_per_order": 1.5,
                   "demand.cold_chain_share": 0.05}


def ordinary_day(scenario: str) -> tuple[str, dict, str]:
    """The ordinary day a peak ``scenario`` is compared with: (scenario, overrides, label)."""
    if scenario == "singles_day":
        return "baseline", {}, "baseline"
    return scenario, ORDINARY_DEMAND, "same network, ordinary demand"


def _halving_h(res: twin.SimulationResult, after_h: float = 24.0) -> float:
    """Hours from the backlog's peak after ``after_h`` until it is at most half that peak."""
    ts = res.timeseries
    t = ts["time_h"].to_numpy(dtype=float)
    b = ts["backlog"].to_numpy(dtype=float)
    m = t > after_h
    i = int(np.argmax(np.where(m, b, -1.0)))
    later = np.flatnonzero((t > t[i]) & (b <= b[i] / 2))
    return float(t[later[0]] - t[i]) if len(later) else float("nan")


def measure(seed: int, scenario: str = "singles_day") -> dict:
    sd = twin.simulate(scenario, seed=seed)
    stock = peak.watch_stock(scenario, seed=seed)
    b = peak.binding(sd, window=PEAK_DAY, stock=stock, top=20)
    out = {"orders": sd.kpis["orders_created"], "lost": sd.kpis["orders_lost"], **b,
           "halving_h": _halving_h(sd)}
    ch = twin.simulate(scenario, seed=seed, overrides=CHEAPEST)
    ordinary, over, _ = ordinary_day(scenario)
    base = twin.simulate(ordinary, seed=seed, overrides={**CHEAPEST, **over})
    out["cheapest"] = {"on_time": ch.kpis["on_time_rate"], "cost": ch.kpis["cost_per_order"],
                       "objective": peak.objective(ch)}
    out["baseline_cheapest"] = {"on_time": base.kpis["on_time_rate"], "cost": base.kpis["cost_per_order"]}
    out["disrupted"] = {name: peak.objective(twin.simulate(name, seed=seed, overrides=CHEAPEST))
                        for name in (DISRUPTIONS if scenario == "singles_day" else [])}
    return out


def _row(label: str, values: list[float], fmt: str) -> str:
    return (f"| {label} | {fmt.format(values[0])} | {fmt.format(statistics.fmean(values))} | "
            f"{fmt.format(min(values))} – {fmt.format(max(values))} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    ap.add_argument("--scenario", default="singles_day",
                    help="a built-in peak scenario whose clock has 11 Nov at t in [24, 48) h (default singles_day)")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.scenario not in builtin_names():
        ap.error(f"--scenario: unknown built-in {args.scenario!r}; allowed: {', '.join(builtin_names())}")
    runs = []
    t0 = time.perf_counter()
    for s in range(args.seeds):
        runs.append(measure(s, args.scenario))
        print(f"seed {s} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    col = lambda key: [r[key] for r in runs]
    sat = [r["saturated_hours"] for r in runs]
    print(f"{args.scenario}, full size, kernel engine, seeds 0-{args.seeds - 1} (peak day: t in [24, 48) h)\n")
    print("| measure (nearest_with_stock) | seed 0 | mean | min – max |")
    print("|---|---:|---:|---:|")
    print(_row("orders created", col("orders"), "{:,.0f}"))
    print(_row("warehouses with >= 6 h at pick utilisation >= 0.95", col("warehouses_saturated_6h"), "{:.1f}"))
    for w in sat[0]:
        print(_row(f"  hours at >= 0.95: {w}", [x[w] for x in sat], "{:.1f}"))
    print(_row("backlog: hours from its post-midnight peak to half of it", col("halving_h"), "{:.1f}"))
    print(_row("departures on 11 Nov (all carriers and docks)", col("departures"), "{:.0f}"))
    print(_row("share of them that left full", col("full_departure_share"), "{:.1%}"))
    print(_row("parcels rolled to a later departure", col("rolled"), "{:,.0f}"))
    print(_row("split rate", col("split_rate"), "{:.3%}"))
    print(_row("hot-SKU stockouts (warehouse, SKU) of the top 20", col("hot_stockouts"), "{:.1f}"))
    print(_row("warehouses with a hot-SKU stockout", [len(r["stockout_sites"]) for r in runs], "{:.1f}"))
    print(_row("orders lost", col("lost"), "{:,.0f}"))
    print(_row("on-time rate", col("on_time_rate"), "{:.1%}"))
    print(_row("express on-time rate", col("express_on_time_rate"), "{:.1%}"))
    print()
    ordinary = ordinary_day(args.scenario)[2]
    print(f"| cheapest routing | {args.scenario} (mean) | {ordinary} (mean) | seeds where {args.scenario} is worse |")
    print("|---|---:|---:|---:|")
    for key, label, fmt, worse in [("on_time", "on-time rate", "{:.1%}", lambda a, b: a < b),
                                   ("cost", "cost per order, CNY", "{:.3f}", lambda a, b: a > b)]:
        a = [r["cheapest"][key] for r in runs]
        b = [r["baseline_cheapest"][key] for r in runs]
        n = sum(worse(x, y) for x, y in zip(a, b))
        print(f"| {label} | {fmt.format(statistics.fmean(a))} | {fmt.format(statistics.fmean(b))} | {n} of {len(a)} |")
    if args.scenario != "singles_day":
        return 0
    print()
    print("| scenario (cheapest) | objective CNY/order | vs singles_day, paired 95% CI | relative (min over seeds) |")
    print("|---|---:|---:|---:|")
    base = [r["cheapest"]["objective"] for r in runs]
    print(f"| singles_day | {statistics.fmean(base):.3f} | | |")
    for name in DISRUPTIONS:
        v = [r["disrupted"][name] for r in runs]
        ci = paired_ci(v, base)
        rel = [x / y - 1 for x, y in zip(v, base)]
        half = f" ± {ci['half_width']:.3f}" if len(v) > 1 else ""
        print(f"| {name} | {statistics.fmean(v):.3f} | {ci['mean']:+.3f}{half} | "
              f"{statistics.fmean(rel):+.1%} ({min(rel):+.1%}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
