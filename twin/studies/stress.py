"""Stress tests: Monte Carlo over a scenario's risk events on common random numbers, and each
node's time to recover against its time to survive (Simchi-Levi's TTR/TTS), computed with the twin.

:func:`stress` runs seeds ``seed .. seed + runs - 1`` of the scenario; each run draws its risk
events from its own ``risk`` stream (:mod:`twin.scenario.risks`), and, paired, the same seed of
the *calm* scenario (the same scenario without its risks): with common random numbers seed ``i``
sees the same orders whatever events fire, so the difference is what the events did to those
orders. From the runs: the distribution of every KPI (:data:`twin.results.kpis.KPIS`), best /
mean / worst per day, hourly quantiles of the service, and which events drove the worst runs.

The exposure table (:func:`exposure`) takes each warehouse, carrier and the lanes into each
region named by a risk event (every region with ``lanes="all"``) and finds, for a few seeds,
the longest total loss of that node starting at ``at_h`` that the network absorbs: the *time to
survive*, by bisection on a grid of ``step_h`` (a node absorbs an outage when it adds no hour
past the failure threshold of the scenario's ``recovery`` section to the calm run on the same
seed). The node's *time to recover* is how long the risk file's total losses of that node last
when they fire (their drawn durations over the Monte Carlo runs). A node whose TTS is shorter
than its TTR is exposed (flagged). Runs execute on a study backend (:mod:`twin.studies.backends`:
local ``spawn``ed processes by default).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.results.kpis import KPIS, hourly_backlog, hourly_on_time, order_table, scalar_kpis
from twin.results.runs import jsonable, simulate
from twin.scenario.risks import disruption_target
from twin.scenario.schema import (
    CarrierCapacityLoss,
    Risks,
    Scenario,
    WarehouseOutage,
    WeatherEvent,
)
from twin.world.demand import DemandRate

__all__ = [
    "NODE_KINDS",
    "StressResult",
    "busiest_hour",
    "calm_scenario",
    "exposure",
    "exposure_nodes",
    "node_disruption",
    "stress",
    "write_stress",
]

#: The kinds of node in the exposure table, and what a total loss of one is.
NODE_KINDS: dict[str, str] = {"warehouse": "warehouse_outage", "carrier": "carrier_capacity_loss 100%",
                              "lanes": "weather closing the lanes into the region"}


def _t975(n: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1)) if n > 1 else math.nan


def _mean_ci(x: Iterable[float]) -> tuple[float, float, int]:
    """Mean, 95% Student-t half-width and count of the finite values."""
    a = np.asarray([v for v in x if v is not None and np.isfinite(v)], dtype=float)
    if not len(a):
        return math.nan, math.nan, 0
    half = _t975(len(a)) * float(a.std(ddof=1)) / math.sqrt(len(a)) if len(a) > 1 else math.nan
    return float(a.mean()), half, len(a)


def calm_scenario(scenario: Scenario) -> Scenario:
    """The scenario without its risk events (its scripted disruptions stay)."""
    return scenario.model_copy(update={"risks": Risks()})


def busiest_hour(scenario: Scenario) -> float:
    """The start of the hour of the horizon with the highest order rate (at its middle)."""
    n = max(1, math.ceil(scenario.horizon_h - 1e-9))
    rate = DemandRate(scenario.demand).total(np.arange(n) + 0.5)
    return float(np.argmax(np.atleast_1d(rate)))


# --------------------------------------------------------------------------- one run
def _hourly(res: Any, n_hours: int) -> np.ndarray:
    rec = res.scenario.recovery
    if rec.metric == "on_time_rate":
        return hourly_on_time(order_table(res.orders), n_hours)
    return hourly_backlog(res.orders, n_hours)


def _bad(hourly: np.ndarray, scenario: Scenario) -> np.ndarray:
    rec = scenario.recovery
    return hourly < rec.failure if rec.metric == "on_time_rate" else hourly > rec.failure


def _summary(res: Any) -> dict[str, Any]:
    """What the study keeps of a run: scalar and per-disruption KPIs, drawn events, the hourly
    service and the daily on-time and lost counts."""
    sc = res.scenario
    n_hours = max(1, math.ceil(sc.horizon_h - 1e-9))
    t = order_table(res.orders)
    day = np.floor(t["created_at"].to_numpy(dtype=float) / 24.0).astype(np.int64)
    n_days = max(1, math.ceil(sc.horizon_h / 24.0 - 1e-9))
    keep = (day >= 0) & (day < n_days)
    created = np.bincount(day[keep], minlength=n_days)[:n_days]
    on_time = np.bincount(day[keep], weights=t["on_time"].to_numpy(dtype=bool)[keep], minlength=n_days)[:n_days]
    lost = np.bincount(day[keep], weights=t["lost"].to_numpy(dtype=bool)[keep], minlength=n_days)[:n_days]
    kpis = {k.name: res.kpis.get(k.name) for k in scalar_kpis()}
    per = {k.name: res.kpis.get(k.name) for k in KPIS.values() if k.per_warehouse and k.keys == "disruption"}
    return {"seed": int(res.seed), "kpis": kpis, "per_disruption": per, "events": res.kpis.get("risk_events", []),
            "hourly": _hourly(res, n_hours).tolist(), "day_created": created.tolist(),
            "day_on_time": on_time.tolist(), "day_lost": lost.astype(int).tolist()}


def _mc_task(task: tuple) -> dict[str, Any]:
    """A worker's Monte Carlo run: the scenario on one seed, and the calm scenario on it (paired)."""
    sc, calm, seed, engine = task
    out = _summary(simulate(sc, seed=seed, engine=engine))
    if calm is not None:
        out["calm"] = _summary(simulate(calm, seed=seed, engine=engine))
    return out


# --------------------------------------------------------------------------- nodes
def exposure_nodes(scenario: Scenario, lanes: str = "risks") -> list[tuple[str, str]]:
    """``(kind, name)`` of every node of the exposure table: each warehouse, each carrier, and
    the lanes into each region a risk event closes (``lanes="all"``: every region)."""
    from scenarios import expand_regions

    if lanes not in ("risks", "all"):
        raise ValueError(f"lanes must be 'risks' or 'all', got {lanes!r}")
    nodes = [("warehouse", w.name) for w in scenario.warehouses] + [("carrier", c.name) for c in scenario.carriers]
    regions = [r.name for r in expand_regions(scenario.regions)]
    if lanes == "all":
        closed = regions
    else:
        named = {r for e in scenario.risks.events if getattr(e.disruption, "closes_lanes", False)
                 for r in e.disruption.regions}
        closed = [r for r in regions if r in named]
    return nodes + [("lanes", r) for r in closed]


def node_disruption(kind: str, name: str, start_h: float, end_h: float) -> Any:
    """A total loss of a node over ``[start_h, end_h)``: a warehouse outage, a carrier's whole
    capacity, or a weather event closing the lanes into a region."""
    if kind == "warehouse":
        return WarehouseOutage(type="warehouse_outage", warehouse=name, start_h=start_h, end_h=end_h)
    if kind == "carrier":
        return CarrierCapacityLoss(type="carrier_capacity_loss", carrier=name, fraction=1.0, start_h=start_h,
                                   end_h=end_h)
    if kind == "lanes":
        return WeatherEvent(name=f"lanes_closed_{name}".replace(" ", "_"), regions=[name], closes_lanes=True,
                            start_h=start_h, end_h=end_h)
    raise ValueError(f"node kind must be one of {', '.join(NODE_KINDS)}; got {kind!r}")


def _with(scenario: Scenario, d: Any) -> Scenario:
    if isinstance(d, WeatherEvent):
        return scenario.model_copy(update={"weather": scenario.weather.model_copy(
            update={"events": [*scenario.weather.events, d]})})
    return scenario.model_copy(update={"disruptions": [*scenario.disruptions, d]})


def nodes_hit(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The nodes a drawn event (a ``risk_events`` record) takes out entirely."""
    d = event.get("disruption") or {}
    kind = d.get("type")
    if kind == "warehouse_outage":
        return [("warehouse", str(d["warehouse"]))]
    if kind == "carrier_capacity_loss" and float(d.get("fraction", 0)) >= 1.0:
        return [("carrier", str(d["carrier"]))]
    if kind == "weather" and d.get("closes_lanes"):
        return [("lanes", str(r)) for r in d.get("regions", [])]
    return []


def _tts_task(task: tuple) -> dict[str, Any]:
    """A worker's time to survive of one node on one seed, by bisection on the grid
    ``step_h, 2 step_h, ..., max_h`` (assumes a longer loss never hurts less)."""
    calm, kind, name, seed, engine, at_h, step_h, max_h, calm_bad = task
    calm_bad = np.asarray(calm_bad, dtype=bool)
    n_hours = len(calm_bad)
    first = max(0, math.floor(at_h))
    runs = 0

    def survives(k: int) -> bool:
        nonlocal runs
        runs += 1
        res = simulate(_with(calm, node_disruption(kind, name, at_h, at_h + k * step_h)), seed=seed, engine=engine)
        extra = _bad(_hourly(res, n_hours), calm) & ~calm_bad
        return not extra[first:].any()

    top = max(1, math.floor(max_h / step_h + 1e-9))
    if survives(top):
        tts, censored = top * step_h, True
    elif not survives(1):
        tts, censored = 0.0, False
    else:
        lo, hi = 1, top  # lo survives, hi does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if survives(mid):
                lo = mid
            else:
                hi = mid
        tts, censored = lo * step_h, False
    return {"kind": kind, "name": name, "seed": int(seed), "tts_h": float(tts), "censored": censored, "runs": runs}


# --------------------------------------------------------------------------- the study
@dataclass
class StressResult:
    """A stress test's runs and tables (:func:`stress`); :func:`write_stress` saves them."""

    scenario: Scenario
    seeds: list[int]
    engine: str
    runs: list[dict[str, Any]] = field(repr=False)
    kpis: pd.DataFrame = field(repr=False)  #: the distribution of every scalar KPI over the runs
    daily: pd.DataFrame = field(repr=False)  #: best / mean / worst per day
    drivers: pd.DataFrame = field(repr=False)  #: the events behind the worst runs
    worst_by: str = "on_time_rate"
    worst: list[int] = field(default_factory=list)  #: seeds of the worst runs
    exposure: pd.DataFrame | None = field(default=None, repr=False)
    tts_runs: list[dict[str, Any]] = field(default_factory=list, repr=False)
    config: dict[str, Any] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per run: seed, the scalar KPIs, the paired differences to the calm run
        (``d_<kpi>``; ``extra_late_or_lost``), and one column per risk event (1: it fired)."""
        rows = []
        names = [e.name for e in self.scenario.risks.events]
        for r in self.runs:
            row = {"seed": r["seed"], **{k: _num(v) for k, v in r["kpis"].items()}}
            fired = {e["name"] for e in r["events"]}
            if "calm" in r:
                for k in ("on_time_rate", "orders_lost", "cost_per_order", "lead_time_p95_h"):
                    row[f"d_{k}"] = _num(r["kpis"].get(k)) - _num(r["calm"]["kpis"].get(k))
                row["extra_late_or_lost"] = _not_on_time(r) - _not_on_time(r["calm"])
            row.update({f"event:{n}": int(n in fired) for n in names})
            rows.append(row)
        return pd.DataFrame(rows)


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None else math.nan


def _not_on_time(r: Mapping[str, Any]) -> int:
    return int(sum(r["day_created"]) - sum(r["day_on_time"]))


def _kpi_distribution(runs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    rows = []
    for k in scalar_kpis():
        x = np.array([_num(r["kpis"].get(k.name)) for r in runs], dtype=float)
        x = x[np.isfinite(x)]
        if not len(x):
            continue
        mean, half, n = _mean_ci(x)
        best = worst = math.nan
        if k.better == "higher":
            best, worst = float(x.max()), float(x.min())
        elif k.better == "lower":
            best, worst = float(x.min()), float(x.max())
        calm = [_num(r["calm"]["kpis"].get(k.name)) for r in runs if "calm" in r]
        rows.append({"kpi": k.name, "n": n, "mean": mean, "ci95": half, "best": best, "worst": worst,
                     "min": float(x.min()), "p5": float(np.percentile(x, 5)), "p50": float(np.percentile(x, 50)),
                     "p95": float(np.percentile(x, 95)), "max": float(x.max()),
                     "calm_mean": float(np.nanmean(calm)) if calm and np.isfinite(calm).any() else math.nan})
    return pd.DataFrame(rows).set_index("kpi")


def _daily(runs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    created = np.array([r["day_created"] for r in runs], dtype=float)
    rate = np.divide(np.array([r["day_on_time"] for r in runs], dtype=float), created,
                     out=np.full_like(created, np.nan), where=created > 0)
    lost = np.array([r["day_lost"] for r in runs], dtype=float)
    out = pd.DataFrame({"day": np.arange(created.shape[1]),
                        "on_time_best": np.nanmax(rate, axis=0), "on_time_mean": np.nanmean(rate, axis=0),
                        "on_time_worst": np.nanmin(rate, axis=0),
                        "lost_best": lost.min(axis=0), "lost_mean": lost.mean(axis=0), "lost_worst": lost.max(axis=0)})
    if all("calm" in r for r in runs):
        cc = np.array([r["calm"]["day_created"] for r in runs], dtype=float)
        cr = np.divide(np.array([r["calm"]["day_on_time"] for r in runs], dtype=float), cc,
                       out=np.full_like(cc, np.nan), where=cc > 0)
        out["on_time_calm_mean"] = np.nanmean(cr, axis=0)
    return out.set_index("day")


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean difference ``a - b`` and its 95% half-width (Welch), NaN when a side has < 2."""
    if len(a) < 1 or len(b) < 1:
        return math.nan, math.nan
    d = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return d, math.nan
    from scipy.stats import t

    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return d, 0.0
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return d, float(t.ppf(0.975, df) * se)


def _drivers(scenario: Scenario, runs: Sequence[Mapping[str, Any]], worst_by: str,
             worst_share: float) -> tuple[pd.DataFrame, list[int]]:
    kpi = KPIS[worst_by]
    y = np.array([_num(r["kpis"].get(worst_by)) for r in runs], dtype=float)
    ok = np.isfinite(y)
    order = np.argsort(np.where(ok, y, np.inf if kpi.better == "lower" else -np.inf), kind="stable")
    if kpi.better == "lower":
        order = order[::-1]
    k = max(1, math.ceil(worst_share * len(runs)))
    worst = [int(i) for i in order[:k] if ok[i]]
    rows = []
    for e in scenario.risks.events:
        fired = np.array([any(x["name"] == e.name for x in r["events"]) for r in runs])
        share = float(fired.mean()) if len(fired) else math.nan
        in_worst = float(fired[worst].mean()) if worst else math.nan
        d, half = _welch(y[fired & ok], y[~fired & ok])
        rows.append({"event": e.name, "type": e.disruption.type, "target": disruption_target(
            e.disruption.model_dump(mode="json")), "fired": share, "fired_in_worst": in_worst,
            "lift": in_worst / share if share > 0 else math.nan, f"effect_on_{worst_by}": d, "ci95": half,
            "runs_fired": int(fired.sum())})
    df = pd.DataFrame(rows)
    if len(df):
        df = df.sort_values(["fired_in_worst", "runs_fired"], ascending=False, kind="stable").set_index("event")
    return df, [int(runs[i]["seed"]) for i in worst]


def exposure(scenario: Scenario, runs: Sequence[Mapping[str, Any]], tts: Sequence[Mapping[str, Any]],
             nodes: Sequence[tuple[str, str]], max_h: float) -> pd.DataFrame:
    """The exposure table from the Monte Carlo runs (TTR: the drawn durations of the total
    losses of each node; the twin's time to recover the service from them) and the TTS runs."""
    rows = []
    for kind, name in nodes:
        durations, recovery, hit_runs = [], [], 0
        for r in runs:
            hit = False
            for e in r["events"]:
                if (kind, name) in nodes_hit(e):
                    durations.append(float(e["duration_h"]))
                    ttr = (r["per_disruption"].get("time_to_recover_h_by_disruption") or {}).get(e["name"])
                    recovery.append(_num(ttr))
                    hit = True
            hit_runs += hit
        ttr, ttr_ci, n_ttr = _mean_ci(durations)
        svc, svc_ci, _ = _mean_ci(recovery)
        t = [x for x in tts if x["kind"] == kind and x["name"] == name]
        tts_mean, tts_ci, n_tts = _mean_ci([x["tts_h"] for x in t])
        censored = sum(bool(x["censored"]) for x in t)
        # a seed that absorbed the longest loss tried gives only a lower bound: no verdict then
        exposed = bool(n_ttr and n_tts and not censored and tts_mean < ttr)
        clear = bool(exposed and np.isfinite(ttr_ci) and np.isfinite(tts_ci) and tts_mean + tts_ci < ttr - ttr_ci)
        rows.append({"kind": kind, "node": name, "p_hit": hit_runs / len(runs) if runs else math.nan,
                     "ttr_h": ttr, "ttr_ci95": ttr_ci, "ttr_n": n_ttr, "service_recovery_h": svc,
                     "service_recovery_ci95": svc_ci, "tts_h": tts_mean, "tts_ci95": tts_ci, "tts_n": n_tts,
                     "tts_censored": censored, "exposed": exposed, "exposed_clearly": clear})
    df = pd.DataFrame(rows)
    if len(df):
        df["_key"] = np.where(df["exposed"], 0, 1)
        df = df.sort_values(["_key", "tts_h", "kind", "node"], kind="stable").drop(columns="_key")
    df.attrs["max_h"] = max_h
    return df.reset_index(drop=True)


def stress(
    scenario: Scenario,
    runs: int,
    seed: int = 0,
    engine: str = "kernel",
    workers: int | None = None,
    backend: str = "local",
    paired: bool = True,
    worst_by: str = "on_time_rate",
    worst_share: float = 0.1,
    tts: bool = True,
    tts_seeds: int | None = None,
    at_h: float | None = None,
    step_h: float = 2.0,
    max_h: float | None = None,
    lanes: str = "risks",
    progress: bool = False,
) -> StressResult:
    """Monte Carlo of ``scenario``'s risk events over seeds ``seed .. seed + runs - 1`` (each
    paired with the calm scenario on the same seed unless ``paired`` is False), and the exposure
    table of TTR against TTS (``tts``: on the first ``tts_seeds`` seeds (default 5, at most
    ``runs``), total losses from
    ``at_h`` (default: the busiest hour), on a grid of ``step_h`` up to ``max_h`` (default: the
    rest of the horizon from ``at_h``; a seed that absorbs that much gives only a lower bound, and
    then no verdict)). ``worst_by``: the KPI that ranks runs (its registry direction says which end is
    worst), ``worst_share`` of them are the worst. ``workers`` / ``backend``: as ``twin sweep``
    (:func:`twin.studies.backends.make_backend`)."""
    from twin.studies.backends import make_backend

    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
        raise ValueError(f"--runs must be an integer >= 1, got {runs!r}")
    if seed < 0:
        raise ValueError(f"--seed must be >= 0, got {seed}")
    if not scenario.risks.events:
        raise ValueError(f"scenario {scenario.name!r} has no risk events: add a risks: section or pass a risk file "
                         "(--risks peak, or a YAML file with a risks: section)")
    kpi = KPIS.get(worst_by)
    if kpi is None or kpi.per_warehouse or not kpi.better:
        allowed = [k.name for k in scalar_kpis() if k.better]
        raise ValueError(f"--worst-by must be a KPI with a better direction; allowed: {', '.join(allowed)}; "
                         f"got {worst_by!r}")
    if not 0 < worst_share <= 1:
        raise ValueError(f"--worst-share must be in (0, 1], got {worst_share:g}")
    at_h = busiest_hour(scenario) if at_h is None else float(at_h)
    tts_seeds = min(5, runs) if tts_seeds is None else tts_seeds
    # by default up to the end of the horizon: the hourly service is measured on orders created in it
    max_h = float(max(step_h, scenario.horizon_h - at_h) if max_h is None else max_h)
    if tts:
        if not (step_h > 0 and math.isfinite(step_h)):
            raise ValueError(f"--tts-step-h must be > 0, got {step_h:g}")
        if not max_h >= step_h:
            raise ValueError(f"--tts-max-h must be >= --tts-step-h ({step_h:g}), got {max_h:g}")
        if not 0 <= at_h < scenario.horizon_h:
            raise ValueError(f"--tts-at must be within the horizon [0, {scenario.horizon_h:g}), got {at_h:g}")
        if not 1 <= tts_seeds <= runs:
            raise ValueError(f"--tts-seeds must be between 1 and --runs ({runs}), got {tts_seeds}")
        if not paired:
            raise ValueError("the exposure table needs the paired calm runs: drop --no-paired or add --no-exposure")
    nodes = exposure_nodes(scenario, lanes)
    calm = calm_scenario(scenario)
    seeds = list(range(seed, seed + runs))
    tasks = [(scenario, calm if paired else None, s, engine) for s in seeds]
    bar = _bar(progress, f"stress {scenario.name}: runs", len(tasks))
    results: dict[int, dict[str, Any]] = {}
    with make_backend(backend, workers) as ex:
        try:
            for r in ex.imap_unordered(_mc_task, tasks):
                results[r["seed"]] = r
                bar.update(1)
        finally:
            bar.close()
        mc = [results[s] for s in seeds]
        tts_rows: list[dict[str, Any]] = []
        if tts:
            ttasks = [(calm, kind, name, s, engine, at_h, step_h, max_h,
                       _bad(np.asarray(results[s]["calm"]["hourly"], dtype=float), calm).tolist())
                      for kind, name in nodes for s in seeds[:tts_seeds]]
            bar = _bar(progress, f"stress {scenario.name}: time to survive", len(ttasks))
            try:
                for r in ex.imap_unordered(_tts_task, ttasks):
                    tts_rows.append(r)
                    bar.update(1)
            finally:
                bar.close()
            tts_rows.sort(key=lambda r: (nodes.index((r["kind"], r["name"])), r["seed"]))
    drivers, worst = _drivers(scenario, mc, worst_by, worst_share)
    config = {"scenario": scenario.name, "runs": runs, "seed": seed, "engine": engine, "paired": paired,
              "worst_by": worst_by, "worst_share": worst_share, "recovery": scenario.recovery.model_dump(),
              "tts": tts, "tts_seeds": tts_seeds if tts else 0, "tts_at_h": at_h, "tts_step_h": step_h,
              "tts_max_h": max_h, "lanes": lanes}
    return StressResult(scenario, seeds, engine, mc, _kpi_distribution(mc), _daily(mc), drivers, worst_by, worst,
                        exposure(scenario, mc, tts_rows, nodes, max_h) if tts else None, tts_rows, config)


def _bar(enabled: bool, desc: str, total: int) -> Any:
    from twin.results.runs import _bar as bar

    return bar(enabled, desc, total, "run")


# --------------------------------------------------------------------------- output
def _md_table(df: pd.DataFrame, fmt: Mapping[str, str] | None = None, index: bool = True) -> str:
    fmt = fmt or {}
    d = df.reset_index() if index else df
    cols = [str(c) for c in d.columns]

    def cell(c: str, v: Any) -> str:
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else ""
        if isinstance(v, (float, np.floating)):
            return "" if not np.isfinite(v) else fmt.get(c, "{:.3g}").format(v)
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in d.iterrows():
        lines.append("| " + " | ".join(cell(c, row[c]) for c in cols) + " |")
    return "\n".join(lines)


def exposure_markdown(df: pd.DataFrame) -> str:
    """The exposure table as Markdown: TTR and TTS with their 95% CIs, flagged nodes first."""
    rows = []
    cap = df.attrs.get("max_h", math.nan)
    for _, r in df.iterrows():
        def ci(m: float, h: float, n: int, at_least: bool = False) -> str:
            if not n or not np.isfinite(m):
                return "—"
            s = (">= " if at_least else "") + f"{m:.1f}"
            return s + (f" ± {h:.1f}" if np.isfinite(h) else "") + f" (n={n})"

        rows.append({"node": f"{r['kind']} {r['node']}", "P(hit)": f"{r['p_hit']:.0%}" if r["ttr_n"] else "—",
                     "TTR h": ci(r["ttr_h"], r["ttr_ci95"], r["ttr_n"]),
                     "service back h": ci(r["service_recovery_h"], r["service_recovery_ci95"], r["ttr_n"]),
                     "TTS h": ci(r["tts_h"], r["tts_ci95"], r["tts_n"], bool(r["tts_censored"])),
                     "exposed": ("**TTS < TTR**" + (" (CIs apart)" if r["exposed_clearly"] else ""))
                     if r["exposed"] else ("? (TTS >= the longest loss tried)" if r["tts_censored"] and r["ttr_n"]
                                           and r["ttr_h"] >= cap - 1e-9 else "")})
    return _md_table(pd.DataFrame(rows), index=False)


def summary_markdown(res: StressResult) -> str:
    """The stress test as Markdown: the configuration, the KPI distribution, per day, the
    drivers of the worst runs and the exposure table."""
    c = res.config
    rec = c["recovery"]
    title = (f"# Stress test: {res.scenario.name}, {c['runs']} runs (seeds {res.seeds[0]}-{res.seeds[-1]}, "
             f"engine {c['engine']})")
    thresholds = (f"Recovery thresholds: {rec['metric']} fails below/above {rec['failure']:g}, recovered at "
                  f"{rec['recovery']:g}.")
    if c["paired"]:
        thresholds += " Each run is paired with the calm scenario (no risk events) on its seed."
    day_fmt = {k: "{:.1%}" for k in res.daily.columns if k.startswith("on_time")}
    day_fmt |= {k: "{:,.0f}" for k in res.daily.columns if k.startswith("lost")}
    worst = (f"## Events behind the worst runs (worst {len(res.worst)} by {res.worst_by}: seeds "
             f"{', '.join(map(str, res.worst))})")
    drivers = (_md_table(res.drivers, {"fired": "{:.0%}", "fired_in_worst": "{:.0%}", "lift": "{:.2f}"})
               if len(res.drivers) else "(no events)")
    out = [title, "", thresholds, "", "## KPIs over the runs", "",
           _md_table(res.kpis[["n", "mean", "ci95", "best", "worst", "p5", "p50", "p95", "calm_mean"]]), "",
           "## Per day (orders created that day)", "", _md_table(res.daily, day_fmt), "", worst, "", drivers]
    if res.exposure is not None:
        head = (f"## Exposure: time to recover vs time to survive (total loss from t = {c['tts_at_h']:g} h, "
                f"grid {c['tts_step_h']:g} h up to {c['tts_max_h']:g} h, {c['tts_seeds']} seeds)")
        out += ["", head, "", exposure_markdown(res.exposure)]
    return "\n".join(out) + "\n"


def write_stress(res: StressResult, out_dir: str | Path, plots: bool = True) -> Path:
    """Write ``stress.json`` (configuration, every run's seed, drawn events and KPIs, the TTS
    runs), ``runs.csv``, ``kpis.csv``, ``daily.csv``, ``drivers.csv``, ``exposure.csv``,
    ``stress.md`` and the plots (``stress_quantiles.png``, ``stress_kpis.png``,
    ``stress_exposure.png``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"config": res.config, "seeds": res.seeds, "worst_seeds": res.worst,
           "runs": [{k: r[k] for k in ("seed", "events", "kpis", "per_disruption")} |
                    ({"calm_kpis": r["calm"]["kpis"]} if "calm" in r else {}) for r in res.runs],
           "tts_runs": res.tts_runs}
    (out / "stress.json").write_text(json.dumps(jsonable(doc), indent=1, allow_nan=False) + "\n")
    res.table().to_csv(out / "runs.csv", index=False)
    res.kpis.to_csv(out / "kpis.csv")
    res.daily.to_csv(out / "daily.csv")
    res.drivers.to_csv(out / "drivers.csv")
    if res.exposure is not None:
        res.exposure.to_csv(out / "exposure.csv", index=False)
    (out / "stress.md").write_text(summary_markdown(res))
    if plots:
        from twin.report import stress as p

        hourly = np.array([r["hourly"] for r in res.runs], dtype=float)
        calm = np.array([r["calm"]["hourly"] for r in res.runs], dtype=float) if all(
            "calm" in r for r in res.runs) else None
        worst = next((r for r in res.runs if res.worst and r["seed"] == res.worst[0]), None)
        sc = res.scenario.model_dump(mode="json")
        p.plot_hourly_quantiles(hourly, calm, sc, worst["events"] if worst else [], res.config["recovery"],
                                out / "stress_quantiles.png", title=f"{res.scenario.name}: {len(res.runs)} runs",
                                worst_seed=worst["seed"] if worst else None,
                                worst=np.asarray(worst["hourly"], dtype=float) if worst else None)
        p.plot_kpi_distributions(res.table(), [k for k in ("on_time_rate", "orders_lost", "time_to_recover_h",
                                                           "service_loss_h", "cost_per_order", "lead_time_p95_h")
                                               if k in res.kpis.index], res.kpis, out / "stress_kpis.png",
                                 title=res.scenario.name)
        if res.exposure is not None:
            p.plot_exposure(res.exposure, out / "stress_exposure.png", title=res.scenario.name)
    return out
