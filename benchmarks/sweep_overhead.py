"""Sweeps and the run store: overhead against a plain loop, scaling, Ray's start-up, DuckDB and replan.

Measures, printing Markdown tables for BENCHMARKS.md:

1. ``twin sweep`` on one worker against a plain loop over :func:`twin.simulate` on the same
   scenarios and seeds (goal: overhead <= 5%): the sweep also hashes, checks the store and
   writes each run's Parquet parts and JSON.
2. The same sweep on 2 local workers (goal: >= 1.8x faster than the loop). 1 and 2 run in
   ``--rounds`` rounds of ``--round-runs`` runs interleaved with the loop, on fresh seeds and
   stores; medians of the per-round ratios (the shared VM's steal time moves single rounds by
   +-20%), and the 1-worker overhead also in CPU time, which steal time does not move.
3. Ray: ``ray.init`` of a local 2-CPU cluster (its start-up), and the sweep on it.
4. DuckDB over ``--duckdb-runs`` stored runs of ``singles_day`` with their records (``orders``
   tables): a KPI-with-CI query (per run on-time rate from the orders, then mean and 95% CI
   over runs) and the same from the ``kpis`` table (goal: < 2 s).
5. ``twin replan national_peak --close guangzhou`` (goal: < 1 s): warm (in this process, after
   one call) and the whole command in a fresh process.

    python benchmarks/sweep_overhead.py                   # 100 runs of singles_day; ~6 minutes
    python benchmarks/sweep_overhead.py --runs 20 --scale 0.2 --duckdb-runs 20   # a quick look
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import twin
from twin.scenario.loader import scale_scenario
from twin.studies.backends import RayBackend
from twin.studies.store import RunStore, code_version, query
from twin.studies.sweep import CodeChanged, sweep

KPI_CI_ORDERS = """
WITH per_run AS (
  SELECT run_id, avg(CASE WHEN status = 'delivered' AND delivered_at <= promised_at THEN 1.0 ELSE 0.0 END) AS on_time
  FROM orders GROUP BY run_id)
SELECT count(*) AS runs, avg(on_time) AS on_time_shipments,
       t975(count(*) - 1) * stddev_samp(on_time) / sqrt(count(*)) AS ci95
FROM per_run"""

KPI_CI_TABLE = """
SELECT scenario, count(*) AS runs, avg(on_time_rate) AS on_time_rate,
       t975(count(*) - 1) * stddev_samp(on_time_rate) / sqrt(count(*)) AS ci95,
       avg(cost_per_order) AS cost_per_order, quantile_cont(lead_time_p95_h, 0.5) AS median_p95_h
FROM kpis GROUP BY scenario"""


def _spec(runs: int, scale: float, records: bool = False, name: str = "bench") -> dict:
    return {"name": name, "scenario": "singles_day", "scale": scale, "factors": {"policy.routing.name": ["cheapest"]},
            "seeds": list(range(runs)), "records": records}


def _sweep(spec: dict, store: Path, **kw: object) -> object:
    """``sweep``, again in a fresh store if the sources changed meanwhile (others edit them)."""
    for attempt in range(3):
        try:
            return sweep(spec, store if attempt == 0 else Path(f"{store}-{attempt}"), **kw)
        except CodeChanged:
            if attempt == 2:
                raise
            code_version.cache_clear()
    raise AssertionError("unreachable")


def _cpu(res: object) -> float:
    """The CPU seconds of the sweep's runs (each measured in its worker)."""
    st = RunStore(res.path.parents[2])
    return sum(st.run_info(r)["cpu_s"] for r in res.table["run_id"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100, help="runs per sweep (seeds of one point)")
    ap.add_argument("--scale", type=float, default=1.0, help="singles_day scale for the overhead runs")
    ap.add_argument("--duckdb-runs", type=int, default=100, help="stored runs (with records) for the DuckDB query")
    ap.add_argument("--duckdb-scale", type=float, default=1.0, help="singles_day scale for those runs")
    ap.add_argument("--rounds", type=int, default=8, help="rounds of loop / 1 worker / 2 workers, interleaved")
    ap.add_argument("--round-runs", type=int, default=50, help="runs in each of those (seeds from 1000 on)")
    ap.add_argument("--no-ray", action="store_true", help="skip Ray")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="twin-bench-", dir="/tmp"))
    rows = []
    try:
        base = twin.load_scenario("singles_day", {"policy.routing.name": "cheapest"})
        sc = scale_scenario(base, a.scale) if a.scale != 1 else base
        twin.simulate(sc, seed=10_000)  # warm: imports, the kernel's first call
        # The loop, the sweep on 1 worker and on 2 workers, in --rounds rounds on fresh seeds, the
        # order reversed every other round (loop, 1, 2 / 2, 1, loop) so that the machine's load
        # (other VMs' steal time here) drifts over all three alike; the figures are medians of the
        # per-round ratios. Each sweep goes into a fresh store, so every run is computed.
        cpu_loop, cpu_one = [], []

        def run_loop(seeds: range) -> float:
            t0, c0 = time.perf_counter(), time.process_time()
            for s in seeds:
                twin.simulate(sc, seed=s)
            cpu_loop.append(time.process_time() - c0)
            return time.perf_counter() - t0

        def run_sweep(seeds: range, workers: int) -> tuple[float, object]:
            t0, c0 = time.perf_counter(), time.process_time()
            rb = _sweep({**_spec(0, a.scale, name=f"r{seeds.start}w{workers}"), "seeds": list(seeds)},
                        tmp / f"s-{seeds.start}-{workers}", workers=workers)
            wall = time.perf_counter() - t0
            if workers == 1:
                cpu_one.append(time.process_time() - c0)
            assert rb.computed == len(seeds)
            return wall, rb

        loops, ones, twos, inside, busy = [], [], [], [], []
        n = a.round_runs
        for k in range(a.rounds):
            seeds = range(1000 + k * n, 1000 + (k + 1) * n)
            order = ("loop", 1, 2) if k % 2 == 0 else (2, 1, "loop")
            for what in order:
                if what == "loop":
                    loops.append(run_loop(seeds))
                elif what == 1:
                    w, rb = run_sweep(seeds, 1)
                    ones.append(w)
                    st = RunStore(rb.path.parents[2])
                    inside.append(w / sum(st.run_info(r)["wall_s"] for r in rb.table["run_id"]))
                else:
                    w, rb = run_sweep(seeds, 2)
                    twos.append(w)
                    busy.append(_cpu(rb) / w)
        med = statistics.median
        over1 = [o / lp for o, lp in zip(ones, loops)]
        speed2 = [lp / t for t, lp in zip(twos, loops)]
        cpu1 = [o / lp for o, lp in zip(cpu_one, cpu_loop)]
        rounds = f"median of {a.rounds} rounds of {n} runs"

        def spread(xs: list[float], pct: bool = False) -> str:
            f = (lambda x: f"{100 * (x - 1):+.1f}%") if pct else (lambda x: f"{x:.2f}")
            return f"{f(min(xs))} .. {f(max(xs))}"

        rows.append((f"plain loop over twin.simulate ({rounds})", 1, med(loops),
                     f"{med(loops) / n * 1000:.0f} ms a run (rounds {spread(loops)} s)"))
        rows.append((f"twin sweep, local, 1 worker (in this process; {rounds})", 1, med(ones),
                     f"**overhead {100 * (med(over1) - 1):+.1f}%** in wall time (the rounds' ratios "
                     f"{spread(over1, True)}), **{100 * (med(cpu1) - 1):+.1f}% in CPU time** (the rounds' "
                     f"{spread(cpu1, True)}); {100 * (med(inside) - 1):+.1f}% over its runs' own simulate() time"))
        rows.append((f"twin sweep, local, 2 workers (forked; {rounds})", 2, med(twos),
                     f"**{med(speed2):.2f}x** the loop (the rounds' ratios {spread(speed2)}); {med(busy):.2f} "
                     "cores busy on average"))
        per100 = med(loops) * a.runs / n  # the loop's time for a.runs runs
        t0 = time.perf_counter()
        r1 = _sweep(_spec(a.runs, a.scale), tmp / "s1b", workers=1)
        wall1 = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import twin.studies.sweep, twin.results.runs, twin.sim.model"],
                       check=True)
        spawn_s = time.perf_counter() - t0  # what a spawned worker would cost before its first run
        r2 = _sweep(_spec(a.runs, a.scale), tmp / "s2", workers=2)
        assert r2.path.read_bytes() == r1.path.read_bytes()
        t0 = time.perf_counter()
        again = sweep(_spec(a.runs, a.scale), r2.path.parents[2], workers=2)
        rows.append(("the same sweep again (all in the store)", 2, time.perf_counter() - t0,
                     f"{again.computed} runs computed"))
        ray_line = None
        if not a.no_ray:
            b = RayBackend(workers=2, temp_dir=tmp / "ray")
            with b:
                t0 = time.perf_counter()
                r3 = _sweep(_spec(a.runs, a.scale), tmp / "s3", backend="ray", workers=2)
                ray_sweep = time.perf_counter() - t0
                cpu3 = _cpu(r3)
            assert r3.path.read_bytes() == r1.path.read_bytes()
            ray_line = b.startup_s
            rows.append(("twin sweep, Ray, 2 workers (cluster up)", 2, ray_sweep,
                         f"{per100 / ray_sweep:.2f}x the loop; its runs' CPU time {cpu3:.1f} s: "
                         f"{cpu3 / ray_sweep:.2f} cores busy on average"))
        print(f"## {a.runs} runs of singles_day x{a.scale:g} (cheapest routing), seeds 0..{a.runs - 1}\n")
        print("| what | workers | wall s | note |\n|---|---:|---:|---|")
        for what, w, s, note in rows:
            print(f"| {what} | {w} | {s:.2f} | {note} |")
        print(f"\nA spawned worker's start (a fresh interpreter importing the twin; workers are forked where "
              f"safe, twin.results.runs.start_method): {spawn_s:.1f} s; the single-sweep of {a.runs} on 1 worker: {wall1:.2f} s")
        if ray_line is not None:
            print(f"Ray start-up (ray.init, local cluster of 2 CPUs): {ray_line:.1f} s")
        print("Result tables byte-identical on 1 and 2 local workers" + (" and Ray" if not a.no_ray else ""))

        # DuckDB over stored runs with their records
        t0 = time.perf_counter()
        rd = _sweep(_spec(a.duckdb_runs, a.duckdb_scale, records=True, name="duck"), tmp / "duck", workers=2)
        duck = rd.path.parents[2]
        fill = time.perf_counter() - t0
        n_rows = int(rd.table["orders_created"].sum())
        size_mb = sum(p.stat().st_size for p in (duck / "orders").rglob("*.parquet")) / 2**20
        print(f"\n## DuckDB over {a.duckdb_runs} stored runs of singles_day x{a.duckdb_scale:g} "
              f"({n_rows:,} orders, orders tables {size_mb:,.0f} MB; filled in {fill:.0f} s on 2 workers)\n")
        print("| query | wall s (median of 3) | answer |\n|---|---:|---|")
        for label, sql in (("on-time per run from the orders, mean and 95% CI over runs", KPI_CI_ORDERS),
                           ("KPIs with CIs from the kpis table", KPI_CI_TABLE)):
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                df = query(duck, sql)
                times.append(time.perf_counter() - t0)
            ans = ", ".join(f"{c}={df[c].iloc[0]:.4g}" if isinstance(df[c].iloc[0], float) else f"{c}={df[c].iloc[0]}"
                            for c in df.columns[:4])
            print(f"| {label} | {statistics.median(times):.2f} | {ans} |")

        # replan
        from twin.studies.replan import replan

        replan("national_peak", ["guangzhou"])
        warm = []
        for _ in range(5):
            t0 = time.perf_counter()
            res = replan("national_peak", ["guangzhou"])
            warm.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "twin.cli", "replan", "national_peak", "--close", "guangzhou"],
                       check=True, capture_output=True)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "twin.cli", "scenarios"], check=True, capture_output=True)
        floor = time.perf_counter() - t0
        print("\n## twin replan national_peak --close guangzhou (37 warehouses, 31 regions)\n")
        print("| what | wall s |\n|---|---:|")
        print(f"| replan(), warm (median of 5): load, network, two LPs ({res.after.variables:,} variables) | "
              f"{statistics.median(warm):.3f} |")
        print(f"| of which the two LP solves | {res.before.solve_s + res.after.solve_s:.3f} |")
        print(f"| the whole command in a fresh process (imports included) | {cold:.2f} |")
        print(f"| `twin scenarios` in a fresh process (the CLI's start-up alone) | {floor:.2f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
