"""The gate a policy package passes before it serves: held-out seeds of the peak and every
disruption scenario, against the best heuristic, on common random numbers.

For each scenario and each held-out seed the package's policy and the baseline (``promise_aware``
by default) run on the same seed, so they see the same orders, weather and breakdowns; per KPI
the paired differences (candidate - baseline) give a 95% Student-t interval
(:func:`twin.results.kpis.paired_ci`). A KPI passes when the interval's worse end is within its
margin: for a lower-is-better KPI ``high <= margin``, for a higher-is-better one
``low >= -margin`` (non-inferiority with a stated margin). The package passes when every KPI of
every scenario passes. ``gate.json`` holds every interval (with MLflow ``MetricThreshold``
style fields); the verdict goes into the package's manifest, whose checksums are rewritten.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from twin.policies.export import model_card, rewrite_manifest
from twin.policies.runtime import heuristic_policy, load_package, routing_policy
from twin.results.kpis import paired_ci

__all__ = ["DEFAULT_MARGINS", "EVAL_SEED", "GATE_KPIS", "GATE_SCENARIOS", "HELD_OUT_SEED", "evaluate_package",
           "format_evaluation", "format_gate", "gate_package", "run_gate"]

#: The peak and every built-in disruption on it.
GATE_SCENARIOS = ("singles_day", "warehouse_outage", "carrier_capacity_loss", "cold_chain_failure", "typhoon")
#: KPI -> greater is better.
GATE_KPIS: dict[str, bool] = {"objective_per_order": False, "cost_per_order": False, "on_time_rate": True,
                              "co2_per_order_kg": False, "lost_rate": False}
#: How much worse than the baseline a KPI may be (its unit: CNY or kg per order, a rate).
DEFAULT_MARGINS: dict[str, float] = {"objective_per_order": 0.0, "cost_per_order": 0.25, "on_time_rate": 0.005,
                                     "co2_per_order_kg": 0.02, "lost_rate": 0.001}
#: Held-out seeds start here (training and evaluation inside training use lower ones).
HELD_OUT_SEED = 200_000
#: ``twin evaluate DIR`` starts here (as ``twin evaluate model.zip``: rl.evaluate.HELD_OUT_SEED).
EVAL_SEED = 100_000


def _kpis(result: Any) -> dict[str, float]:
    from twin.results.bound import realised_objective

    obj = realised_objective(result.orders)
    return {"objective_per_order": obj["objective_per_order"], "cost_per_order": obj["cost_per_order"],
            "on_time_rate": float(result.kpis["on_time_rate"]), "co2_per_order_kg": obj["co2_per_order_kg"],
            "lost_rate": obj["lost_rate"]}


def run_gate(package: str | Path, scenarios: Sequence[str] = GATE_SCENARIOS, seeds: Iterable[int] | None = None,
             n_seeds: int = 30, baseline: str = "promise_aware", margins: Mapping[str, float] | None = None,
             scale: float | None = None, horizon_h: float | None = None, engine: str = "kernel",
             progress: bool = False) -> dict[str, Any]:
    """Gate the package at ``package`` (see the module docstring); returns the gate document.

    Args:
        scenarios: built-in names or YAML paths; each must have the package's network.
        seeds: the held-out seeds (default ``HELD_OUT_SEED .. + n_seeds - 1``); >= 2.
        baseline: the heuristic to beat (its default parameters).
        margins: per KPI, how much worse than the baseline it may be (default
            :data:`DEFAULT_MARGINS`; a KPI left out keeps its default).
        scale, horizon_h: shrink each scenario (tests, quick looks); recorded in the document.
    """
    import sys

    from twin.results.runs import simulate
    from twin.scenario.loader import annotate_description, load_scenario, scale_scenario
    from twin.sim.model import ENGINES

    pkg = load_package(package)
    seeds = list(range(HELD_OUT_SEED, HELD_OUT_SEED + n_seeds) if seeds is None else seeds)
    if len(seeds) < 2:
        raise ValueError(f"the gate needs at least 2 held-out seeds for a confidence interval, got {len(seeds)}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    m = {**DEFAULT_MARGINS, **(margins or {})}
    bad = sorted(set(m) - set(GATE_KPIS))
    if bad:
        raise ValueError(f"margins name unknown KPIs {bad}; allowed: {', '.join(GATE_KPIS)}")
    for k, v in m.items():
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"margin of {k} must be a finite number >= 0, got {v!r}")
    heuristic_policy(baseline, {})  # the name is checked before any run
    doc: dict[str, Any] = {"package": pkg.name, "version": pkg.version, "package_sha256": pkg.sha256,
                           "baseline": baseline, "engine": engine, "seeds": seeds, "scale": scale,
                           "horizon_h": horizon_h, "margins": m, "scenarios": {}}
    for name in scenarios:
        sc = load_scenario(name)
        if scale is not None:
            sc = scale_scenario(sc, scale)
        if horizon_h is not None:
            sc = sc.model_copy(update={"horizon_h": float(horizon_h),
                                       "description": annotate_description(sc.description, f"horizon {horizon_h:g} h")})
        cand, base = [], []
        for s in seeds:
            cand.append(_kpis(simulate(sc, seed=s, engine=engine, routing=routing_policy(pkg))))
            base.append(_kpis(simulate(sc, seed=s, engine=engine, routing=heuristic_policy(baseline, {}))))
            if progress:
                print(f"twin gate: {sc.name} seed {s} done", file=sys.stderr)
        rows = {}
        for kpi, greater in GATE_KPIS.items():
            ci = paired_ci([c[kpi] for c in cand], [b[kpi] for b in base])
            margin = float(m[kpi])
            worse_end = ci["low"] if greater else ci["high"]
            ok = (worse_end >= -margin) if greater else (worse_end <= margin)
            if math.isnan(worse_end):
                ok = ci["mean"] == 0.0 if not math.isnan(ci["mean"]) else False
            rows[kpi] = {"candidate_mean": sum(c[kpi] for c in cand) / len(cand),
                         "baseline_mean": sum(b[kpi] for b in base) / len(base),
                         "difference": ci, "margin": margin, "greater_is_better": greater,
                         "threshold": None, "min_absolute_change": -margin, "min_relative_change": None,
                         "passed": bool(ok)}
        doc["scenarios"][sc.name] = {"scenario": str(name), "kpis": rows,
                                     "passed": all(r["passed"] for r in rows.values())}
    doc["passed"] = all(s["passed"] for s in doc["scenarios"].values())
    doc["failed"] = [f"{s}.{k}" for s, v in doc["scenarios"].items() for k, r in v["kpis"].items() if not r["passed"]]
    return doc


def gate_package(package: str | Path, **kwargs: Any) -> dict[str, Any]:
    """:func:`run_gate`, then write ``gate.json`` into the package, the verdict into its
    manifest and model card, and the checksums again."""
    from twin.policies.export import sha256_file

    d = Path(package)
    doc = run_gate(d, **kwargs)
    pkg = load_package(d)  # again: nothing changed it meanwhile
    from twin.results.runs import jsonable

    (d / "gate.json").write_text(json.dumps(jsonable(doc), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    man = dict(pkg.manifest)
    man["gate"] = {"passed": doc["passed"], "baseline": doc["baseline"], "scenarios": list(doc["scenarios"]),
                   "n_seeds": len(doc["seeds"]), "seeds": [doc["seeds"][0], doc["seeds"][-1]],
                   "failed": doc["failed"], "scale": doc["scale"], "horizon_h": doc["horizon_h"],
                   "gate_json_sha256": sha256_file(d / "gate.json")}
    (d / "MODEL_CARD.md").write_text(model_card(man), encoding="utf-8")
    rewrite_manifest(d, man)
    return doc


def format_gate(doc: Mapping[str, Any]) -> str:
    """A terminal table: per scenario and KPI the means, the paired 95% CI and pass/fail."""
    out = [f"gate of {doc['package']} {doc['version']} vs {doc['baseline']} on {len(doc['seeds'])} held-out seeds "
           f"(common random numbers, {doc['engine']})"]
    for name, s in doc["scenarios"].items():
        out.append(f"  {name}: {'pass' if s['passed'] else 'FAIL'}")
        for kpi, r in s["kpis"].items():
            d = r["difference"]
            out.append(f"    {kpi:<20} {r['candidate_mean']:10.4f} vs {r['baseline_mean']:10.4f}  "
                       f"diff {d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]  margin {r['margin']:g}  "
                       f"{'pass' if r['passed'] else 'FAIL'}")
    out.append(f"verdict: {'PASS' if doc['passed'] else 'FAIL'}" + (f" ({', '.join(doc['failed'])})"
                                                                    if doc["failed"] else ""))
    return "\n".join(out)


def evaluate_package(package: str | Path, scenario: Any = None, replications: int = 10, seed: int = EVAL_SEED,
                     baselines: Sequence[str] | None = None, engine: str = "kernel",
                     progress: bool = False) -> dict[str, Any]:
    """``twin evaluate DIR``: the package's policy (as ``twin run --policy`` routes) and every
    baseline heuristic on the seeds ``seed .. seed + replications - 1`` of one scenario (common
    random numbers: every policy sees the same orders, weather and breakdowns), and per baseline
    and KPI the paired 95% CI of package - baseline.

    Args:
        scenario: a :class:`~twin.scenario.schema.Scenario`, name or YAML (default: the
            package's scenario); it must have the package's network.
        baselines: heuristic names (default: every routing heuristic but a heuristic package's own).
    """
    import sys

    from twin.policies.heuristics import ROUTING_POLICIES
    from twin.results.runs import simulate
    from twin.scenario.loader import load_scenario
    from twin.sim.model import ENGINES
    from twin.world.network import build_network

    if replications < 1:
        raise ValueError(f"replications must be >= 1, got {replications}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    pkg = load_package(package)
    sc = pkg.scenario if scenario is None else load_scenario(scenario)
    pkg.check_network(build_network(sc))
    own = pkg.manifest["heuristic"]["name"] if pkg.kind == "heuristic" else None
    names = [n for n in (baselines if baselines is not None else ROUTING_POLICIES) if n != own]
    for n in names:
        heuristic_policy(n, {})
    seeds = [int(seed) + i for i in range(replications)]
    runs: dict[str, list[dict[str, float]]] = {pkg.name: [], **{n: [] for n in names}}
    for s in seeds:
        runs[pkg.name].append(_kpis(simulate(sc, seed=s, engine=engine, routing=routing_policy(pkg))))
        for n in names:
            runs[n].append(_kpis(simulate(sc, seed=s, engine=engine, routing=heuristic_policy(n, {}))))
        if progress:
            print(f"twin evaluate: {sc.name} seed {s} done", file=sys.stderr)
    diffs = {n: {k: paired_ci([r[k] for r in runs[pkg.name]], [r[k] for r in runs[n]]) for k in GATE_KPIS}
             for n in names}
    return {"package": pkg.name, "version": pkg.version, "package_sha256": pkg.sha256, "scenario": sc.name,
            "engine": engine, "seeds": seeds, "runs": runs, "differences": diffs,
            "greater_is_better": dict(GATE_KPIS)}


def format_evaluation(doc: Mapping[str, Any]) -> str:
    """Mean per policy, then package - baseline with 95% CIs (``*``: the CI excludes 0)."""
    kpis = list(GATE_KPIS)
    runs = doc["runs"]
    width = max(len(n) for n in runs) + 2
    out = [(f"{doc['package']} {doc['version']} on {doc['scenario']}, {len(doc['seeds'])} seeds from "
            f"{doc['seeds'][0]} ({doc['engine']}; paired: common random numbers)"), "",
           "mean per run".ljust(width) + "".join(f"{k:>24}" for k in kpis)]
    for n, rows in runs.items():
        out.append(n.ljust(width) + "".join(f"{sum(r[k] for r in rows) / len(rows):>24.4f}" for k in kpis))
    out += ["", f"{doc['package']} - baseline (95% CI)".ljust(width)]
    for n, d in doc["differences"].items():
        cells = []
        for k in kpis:
            c = d[k]
            mark = "*" if c["n"] > 1 and (c["low"] > 0 or c["high"] < 0) else " "
            half = c["half_width"]
            cells.append((f"{c['mean']:+.4f} ± {half:.4f}" if not math.isnan(half) else f"{c['mean']:+.4f}") + mark)
        out.append(n.ljust(width) + "".join(cell.rjust(24) for cell in cells))
    out.append("\n* the 95% CI excludes zero. on_time_rate: higher is better; the others: lower is better.")
    return "\n".join(out)
