"""Running the twin: one simulation, replications in parallel processes, and saving results."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from twin.policies import RoutingPolicy
from twin.results.kpis import compute_kpis, summarize
from twin.scenario.loader import load_scenario
from twin.scenario.schema import Scenario
from twin.sim.model import ENGINES, FulfillmentModel
from twin.sim.records import orders_frame

__all__ = ["SimulationResult", "ReplicationResult", "simulate", "replicate"]


@dataclass
class SimulationResult:
    """What one run produced: ``kpis`` (dict), ``orders`` (one row per shipment),
    ``timeseries`` (one row per tick), and how it was made."""

    scenario: Scenario
    seed: int
    engine: str
    kpis: dict
    orders: pd.DataFrame = field(repr=False)
    timeseries: pd.DataFrame = field(repr=False)
    wall_s: float = 0.0

    def save(self, out_dir: str | Path, extra_kpis: Mapping[str, Any] | None = None) -> Path:
        """Write ``kpis.json``, ``orders.parquet``, ``timeseries.parquet``, ``scenario.json``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.orders.to_parquet(out / "orders.parquet", index=False)
        self.timeseries.to_parquet(out / "timeseries.parquet", index=False)
        kpis = dict(self.kpis)
        if extra_kpis:
            kpis.update(extra_kpis)
        (out / "kpis.json").write_text(json.dumps(jsonable(kpis), indent=2, allow_nan=False) + "\n")
        (out / "scenario.json").write_text(self.scenario.model_dump_json(indent=2) + "\n")
        return out


def jsonable(x: Any) -> Any:
    """``x`` with every non-finite float made None, so it is strict JSON."""
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def simulate(
    scenario: Scenario | str | Path,
    seed: int | None = None,
    engine: str = "kernel",
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
    routing: RoutingPolicy | None = None,
    progress: bool | Callable[[int, int], None] = False,
) -> SimulationResult:
    """Run one simulation.

    Args:
        scenario: a :class:`Scenario`, a built-in name or a YAML path.
        seed: seeds the run's random generator; None uses the scenario's ``seed``.
        engine: ``"kernel"`` (the Cython engine, the default) or ``"simpy"`` (the reference).
        overrides: what-if changes, ``{"warehouses.shanghai.pick.agvs": 150}``.
        routing: a routing policy object to use instead of the scenario's.
        progress: True for a progress bar on stderr, or a callable ``(ticks_done, ticks_total)``.

    Returns:
        A :class:`SimulationResult` with ``.kpis``, ``.orders``, ``.timeseries``.
    """
    sc = load_scenario(scenario, overrides)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    seed = sc.seed if seed is None else seed
    t0 = time.perf_counter()
    model = FulfillmentModel(sc, seed=seed, engine=engine, routing=routing)
    bar = None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=model.n_ticks, desc=f"{sc.name} seed {seed}", unit="h", leave=False)
        model.run(lambda done, total: bar.update(1))
        bar.close()
    else:
        model.run(progress or None)
    orders = orders_frame(model.engine.finish(model.end_time), model.net, model.end_time)  # no second reference
    ts = model.timeseries
    kpis = compute_kpis(orders, ts, model.net.warehouses, sc.horizon_h)
    kpis = {"scenario": sc.name, "seed": int(seed), "engine": engine, **kpis}
    return SimulationResult(sc, int(seed), engine, kpis, orders, ts, time.perf_counter() - t0)


@dataclass
class ReplicationResult:
    """Replications of one scenario on several seeds: ``kpis`` has the per-run KPIs under
    ``replications`` and ``{kpi: {mean, ci95}}`` under ``summary``."""

    results: list[SimulationResult]

    @property
    def kpis(self) -> dict:
        reps = [r.kpis for r in self.results]
        summary = summarize(reps)
        first = self.results[0]
        top = {"scenario": first.scenario.name, "seeds": [r.seed for r in self.results], "engine": first.engine}
        for name, s in summary.items():
            if "[" not in name:
                top[name] = s["mean"]
        top["utilization"] = {k[len("utilization["):-1]: s["mean"] for k, s in summary.items()
                              if k.startswith("utilization[")}
        return {**top, "replications": reps, "summary": summary}

    def save(self, out_dir: str | Path) -> Path:
        """Write the first replication's records and time series, and all KPIs."""
        first = self.results[0]
        return SimulationResult(first.scenario, first.seed, first.engine, self.kpis, first.orders,
                                first.timeseries).save(out_dir)


def _one(args: tuple) -> SimulationResult:
    sc, seed, engine = args
    return simulate(sc, seed=seed, engine=engine)


def replicate(
    scenario: Scenario | str | Path,
    seeds: Sequence[int],
    engine: str = "kernel",
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
    processes: int | None = None,
    progress: bool = False,
) -> ReplicationResult:
    """Run one simulation per seed, in parallel local processes (``processes`` defaults to the
    number of CPUs, at most the number of seeds; 1 runs in this process)."""
    sc = load_scenario(scenario, overrides)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    processes = min(processes or os.cpu_count() or 1, len(seeds))
    jobs = [(sc, s, engine) for s in seeds]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(seeds), desc=f"{sc.name} x{len(seeds)}", unit="run", leave=False)
    results: list[SimulationResult] = []
    if processes == 1:
        for j in jobs:
            results.append(_one(j))
            if bar:
                bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=processes) as pool:
            for r in pool.map(_one, jobs):
                results.append(r)
                if bar:
                    bar.update(1)
    if bar:
        bar.close()
    return ReplicationResult(results)
