"""Engine speed, side by side in one run: the twin's engines on ``singles_day`` and a plain
SimPy M/M/c model of the same number of orders. Prints orders per second and the ratios.

    python benchmarks/engine_speed.py [--repeats 3] [--scale 1.0]

Times the simulation only (model run and records), not loading or KPIs. Medians of repeats;
the machines are shared, so compare ratios from one run rather than absolute figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mmc_simpy import run_plain_mmc  # noqa: E402

import twin  # noqa: E402
from twin.loader import scale_scenario  # noqa: E402
from twin.model import ENGINES, FulfillmentModel  # noqa: E402


def time_engine(sc: twin.Scenario, engine: str, seed: int) -> tuple[int, float]:
    """(orders created, wall seconds) of one run of ``sc`` on ``engine``."""
    t0 = time.perf_counter()
    m = FulfillmentModel(sc, seed=seed, engine=engine)
    m.run()
    m.engine.finish(m.end_time)
    return m.engine.counters.created, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scale", type=float, default=1.0, help="scale singles_day (demand and capacity)")
    p.add_argument("--engines", nargs="*", default=list(ENGINES))
    a = p.parse_args(argv)
    sc = twin.load_scenario("singles_day")
    if a.scale != 1.0:
        sc = scale_scenario(sc, a.scale)
    rows = []
    n_orders = None
    for engine in a.engines:
        runs = [time_engine(sc, engine, seed) for seed in range(a.repeats)]
        n = int(statistics.median(r[0] for r in runs))
        rate = statistics.median(r[0] / r[1] for r in runs)
        rows.append((f"{engine} engine, singles_day", n, statistics.median(r[1] for r in runs), rate))
        n_orders = n_orders or n
    plain = [run_plain_mmc(n_orders, servers=8, utilization=0.85, seed=s) for s in range(a.repeats)]
    rows.append(("plain SimPy M/M/c (c=8, rho=0.85)", n_orders, statistics.median(r["wall_s"] for r in plain),
                 statistics.median(r["per_s"] for r in plain)))
    print(f"{'model':<40} {'orders':>10} {'wall s':>8} {'orders/s':>12}")
    for name, n, wall, rate in rows:
        print(f"{name:<40} {n:>10,} {wall:>8.2f} {rate:>12,.0f}")
    plain_rate = rows[-1][3]
    print()
    for name, _, _, rate in rows[:-1]:
        print(f"{name}: {rate / plain_rate:.3f}x plain SimPy M/M/c")
    if len(rows) > 2:
        base = rows[0][3]
        for name, _, _, rate in rows[1:-1]:
            print(f"{name}: {rate / base:.1f}x {rows[0][0]}")


if __name__ == "__main__":
    main()
