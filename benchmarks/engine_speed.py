"""Engine speed, side by side in one run: the twin's engines on ``singles_day``, and M/M/c
queues: the kernel engine on the ``erlang_c`` scenario vs a plain SimPy M/M/c and a tight
typed-Cython M/M/c loop (``ext/_mmc_tight.pyx``). Prints orders per second and the ratios.

    python benchmarks/engine_speed.py [--repeats 5] [--scale 1.0] [--mmc-customers 1000000]

Times the simulation only (model construction, run and records: ``FulfillmentModel(...)``,
``run()``, ``engine.finish()``), not loading the scenario or computing KPIs. Medians of repeats
on seeds 0, 1, ..., after one untimed warm-up run of each fast model (replications in one
process run warm). The kernel's and the tight loop's M/M/c runs alternate, and the goal is
judged on the median of the per-pair ratios. The machines are shared, so compare ratios from
one run rather than absolute figures.
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
from twin.scenario.loader import scale_scenario  # noqa: E402
from twin.sim.model import ENGINES, FulfillmentModel  # noqa: E402

MMC_SERVERS, MMC_RHO = 8, 0.85


def time_engine(sc: twin.Scenario, engine: str, seed: int) -> tuple[int, float]:
    """(orders created, wall seconds) of one run of ``sc`` on ``engine``."""
    t0 = time.perf_counter()
    m = FulfillmentModel(sc, seed=seed, engine=engine)
    m.run()
    m.engine.finish(m.end_time)
    return m.engine.counters.created, time.perf_counter() - t0


def mmc_scenario(customers: int) -> twin.Scenario:
    """``erlang_c`` (one warehouse, c = 8 exponential pickers at rho = 0.85, one-line orders)
    sped up 10x in model time (100 lines/h per AGV, 680 orders/h) so ``customers`` orders fit
    in the horizon, as one model tick: the kernel's own speed, not the per-tick agent work."""
    mu = 100.0
    lam = MMC_RHO * MMC_SERVERS * mu
    horizon = customers / lam
    return twin.load_scenario("erlang_c", {
        "horizon_h": horizon, "drain_h": 10, "tick_h": horizon + 10, "demand.base_rate_per_h": lam,
        "warehouses.shanghai.pick.lines_per_agv_h": mu})


def _row(name: str, runs: list[tuple[int, float]]) -> tuple[str, int, float, float]:
    return (name, int(statistics.median(r[0] for r in runs)), statistics.median(r[1] for r in runs),
            statistics.median(r[0] / r[1] for r in runs))


def _print(rows: list[tuple[str, int, float, float]]) -> None:
    print(f"{'model':<48} {'orders':>10} {'wall s':>8} {'orders/s':>12}")
    for name, n, wall, rate in rows:
        print(f"{name:<48} {n:>10,} {wall:>8.3f} {rate:>12,.0f}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--simpy-repeats", type=int, default=3, help="repeats of the (slow) simpy engine run")
    p.add_argument("--scale", type=float, default=1.0, help="scale singles_day (demand and capacity)")
    p.add_argument("--engines", nargs="*", default=list(ENGINES))
    p.add_argument("--mmc-customers", type=int, default=1_000_000)
    p.add_argument("--plain-customers", type=int, default=200_000, help="customers of the plain SimPy M/M/c")
    a = p.parse_args(argv)

    # -- the engines on singles_day
    sc = twin.load_scenario("singles_day")
    if a.scale != 1.0:
        sc = scale_scenario(sc, a.scale)
    rows = []
    rate = {}
    for engine in a.engines:
        reps = a.simpy_repeats if engine == "simpy" else a.repeats
        if engine != "simpy":  # warm-up (below); the simpy engine's 30 s runs do not need one
            time_engine(sc, engine, 0)
        rows.append(_row(f"{engine} engine, singles_day x{a.scale:g}", [time_engine(sc, engine, s) for s in range(reps)]))
        rate[engine] = rows[-1][3]
    print(f"== singles_day (x{a.scale:g}): build + run + records, medians of {a.repeats} (simpy: {a.simpy_repeats})")
    _print(rows)
    if "kernel" in rate and "simpy" in rate:
        r = rate["kernel"] / rate["simpy"]
        print(f"kernel / simpy engine: {r:.1f}x (goal >= 50x: {'met' if r >= 50 else 'MISSED'}); "
              f"kernel {rate['kernel'] / 1e6:.2f}M orders/s (goal >= 1M/s: "
              f"{'met' if rate['kernel'] >= 1e6 else 'MISSED'})")

    # -- M/M/c: the kernel on erlang_c vs plain SimPy vs a tight typed-Cython loop
    if "kernel" in a.engines:
        from ext._mmc_tight import run_mmc

        msc = mmc_scenario(a.mmc_customers)
        time_engine(msc, "kernel", 0), run_mmc(a.mmc_customers, MMC_SERVERS, MMC_RHO, 0)  # warm-ups
        run_plain_mmc(a.plain_customers // 10, MMC_SERVERS, MMC_RHO, 0)
        kern, tight = [], []
        for s in range(a.repeats):  # interleaved, so a change in the machine's load hits both alike
            kern.append(time_engine(msc, "kernel", s))
            tight.append(run_mmc(a.mmc_customers, MMC_SERVERS, MMC_RHO, s))
        pair = [k[1] / k[0] / (t["wall_s"] / t["customers"]) for k, t in zip(kern, tight, strict=True)]
        plain = [run_plain_mmc(a.plain_customers, MMC_SERVERS, MMC_RHO, s) for s in range(min(a.repeats, 3))]
        mrows = [
            _row("kernel engine, erlang_c (M/M/8, rho 0.85)", kern),
            _row("tight typed-Cython M/M/8 loop", [(r["customers"], r["wall_s"]) for r in tight]),
            _row("plain SimPy M/M/8", [(r["customers"], r["wall_s"]) for r in plain]),
        ]
        print(f"\n== M/M/c (c = {MMC_SERVERS}, rho = {MMC_RHO}): medians of {a.repeats} (plain SimPy: {len(plain)})")
        _print(mrows)
        k, t, s = (r[3] for r in mrows)
        print(f"tight loop / kernel: {t / k:.2f}x (ratio of the medians); per interleaved pair: median "
              f"{statistics.median(pair):.2f}x (min {min(pair):.2f}, max {max(pair):.2f}); goal <= 3x: "
              f"{'met' if statistics.median(pair) <= 3 else 'MISSED'}")
        print(f"kernel / plain SimPy: {k / s:.1f}x; tight loop / plain SimPy: {t / s:.1f}x")
        print(f"mean wait (mean service times): tight loop {statistics.median(r['mean_wait'] for r in tight):.4f}, "
              f"plain SimPy {statistics.median(r['mean_wait'] for r in plain):.4f} "
              f"(Erlang C 0.4771)")
    elif "simpy" in rate:  # the reference engine against plain SimPy on the same number of orders
        n = rows[0][1]
        plain = [run_plain_mmc(n, MMC_SERVERS, MMC_RHO, s) for s in range(a.simpy_repeats)]
        _print([_row("plain SimPy M/M/c (c=8, rho=0.85)", [(r["customers"], r["wall_s"]) for r in plain])])


if __name__ == "__main__":
    main()
