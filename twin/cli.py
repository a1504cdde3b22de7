"""The ``twin`` command: run scenarios, list them, compare runs, rebuild reports."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from twin.errors import TwinError

__all__ = ["main", "build_parser", "format_kpis"]

class _UserError(Exception):
    """A mistake in the command line: printed without a traceback."""


def format_kpis(kpis: dict) -> str:
    """A terminal table of the KPIs (:data:`twin.results.kpis.KPIS`); with replications,
    mean ± 95% CI half-width."""
    from twin.results.kpis import KPIS, format_ci, format_value

    summary = kpis.get("summary") or {}
    rows = []

    def cell(kpi, key: str, v: float | None) -> str:  # noqa: ANN001
        s = summary.get(key)
        if s is None:
            return format_value(kpi, v)
        out = format_value(kpi, s["mean"])
        if s.get("ci95") is not None and not math.isnan(s["ci95"]):
            out += " ± " + format_ci(kpi, s["ci95"])
        return out

    for kpi in KPIS.values():
        if kpi.per_warehouse:
            for w, u in (kpis.get(kpi.name) or {}).items():
                key = f"{kpi.name}[{w}]"
                rows.append((key, cell(kpi, key, u)))
        else:
            rows.append((kpi.name, cell(kpi, kpi.name, kpis.get(kpi.name))))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twin", description="Fulfillment Twin: what-if runs of a fulfillment network.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    r = sub.add_parser("run", help="run a scenario and write KPIs, records, time series and a report")
    r.add_argument("scenario", help="a built-in scenario name (see `twin scenarios`) or a YAML file")
    r.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's)")
    r.add_argument("--replications", "-r", type=int, default=1,
                   help="independent runs on seeds seed, seed+1, ...; summary gives mean and 95%% CI")
    from twin.sim.engine import engine_names, engine_spec

    r.add_argument("--engine", default="kernel", choices=engine_names(),
                   help="event engine: " + "; ".join(f"{n}: {engine_spec(n).description}" for n in engine_names())
                   + "; default: kernel")
    r.add_argument("--out", "-o", default=None,
                   help="output directory (default: runs/<scenario>-seed<N>, plus -<hash> of --set and --scale)")
    r.add_argument("--force", action="store_true",
                   help="overwrite the output directory even if it holds a different run")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario field, e.g. --set warehouses.shanghai.pick.agvs=150 (repeatable)")
    r.add_argument("--scale", type=float, default=None,
                   help="multiply demand and every capacity by this factor (quick looks: --scale 0.1)")
    r.add_argument("--processes", "-j", type=int, default=None, help="parallel processes for replications")
    r.add_argument("--no-report", action="store_true", help="skip the HTML report and plots")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    r.add_argument("--policy", default=None, metavar="DIR",
                   help="route with a policy package written by `twin export` (checksums verified), or a model "
                        "`twin train` wrote on twin/Routing-v1 (RUN_DIR or RUN_DIR/model.zip; needs the rl extra), "
                        "instead of the scenario's routing policy")

    sub.add_parser("scenarios", help="list the built-in scenarios")

    v = sub.add_parser("validate", help="check a scenario file (and overrides) without running it")
    v.add_argument("scenario")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    v.add_argument("--strict", action="store_true",
                   help="exit 1 if there are warnings (demand far above capacity, regions without a carrier, ...)")

    c = sub.add_parser("compare", help="KPIs of two or more runs side by side, with differences and a plot")
    c.add_argument("dirs", nargs="+", help="run directories written by `twin run`")
    c.add_argument("--out", "-o", default=None, help="where to write compare.csv and compare.png")

    rep = sub.add_parser("report", help="rebuild report.html and the plots of a run directory")
    rep.add_argument("dir")

    bd = sub.add_parser("bound", help="hindsight bound: the least objective per order any routing could reach on "
                                      "a run's orders (an LP), beside the run's own; writes bound.json")
    bd.add_argument("dir", help="a run directory written by `twin run`")
    bd.add_argument("--bucket-h", type=float, default=1.0,
                    help="width of the LP's time buckets, hours (smaller: tighter bound, larger LP; default 1)")
    bd.add_argument("--late-penalty-cny", type=float, default=50.0, help="CNY per late order (default 50)")
    bd.add_argument("--lost-penalty-cny", type=float, default=100.0, help="CNY per lost order (default 100)")
    bd.add_argument("--co2-price-cny-per-kg", type=float, default=1.0, help="CNY per kg of CO2 (default 1)")
    bd.add_argument("--force", action="store_true", help="overwrite a bound.json of other inputs")

    _study_arguments(sub, engine_names())
    _stress_arguments(sub, engine_names())

    ex = sub.add_parser("export", help="package a policy for the routing service: ONNX (learned) or parameters "
                                       "(heuristic), manifest.json with checksums, MODEL_CARD.md; no pickle")
    ex.add_argument("policy", help="a model zip (or run directory) written by `twin train` on twin/OrderRouting-v0, "
                                   "or a heuristic's name (cheapest, promise_aware, ...)")
    ex.add_argument("--out", "-o", required=True, help="the package directory to write")
    ex.add_argument("--scenario", default=None, help="a heuristic's network (default singles_day)")
    ex.add_argument("--param", dest="params", action="append", default=[], metavar="KEY=VALUE",
                    help="a heuristic's parameter, e.g. --param late_penalty_cny=80 (repeatable; values are JSON)")
    ex.add_argument("--name", default=None, help="the package's name (default: the heuristic's, or from the run)")
    ex.add_argument("--version", default=None, help="the package's version (default 1)")
    ex.add_argument("--fallback", default="promise_aware", help="the heuristic the service falls back to")
    ex.add_argument("--force", action="store_true", help="write into a non-empty directory that is not a package")

    gt = sub.add_parser("gate", help="gate a policy package: held-out seeds of the peak and every disruption vs the "
                                     "best heuristic on common random numbers; writes gate.json; exit 1 on FAIL")
    gt.add_argument("dir", help="a package written by `twin export`")
    gt.add_argument("--seeds", "-n", type=int, default=30, help="held-out seeds per scenario (default 30)")
    gt.add_argument("--first-seed", type=int, default=None, help="the first held-out seed (default 200000)")
    gt.add_argument("--scenario", dest="scenarios", action="append", default=None,
                    help="a scenario to gate on (repeatable; default: singles_day and every disruption on it)")
    gt.add_argument("--baseline", default="promise_aware", help="the heuristic to beat (default promise_aware)")
    gt.add_argument("--margin", dest="margins", action="append", default=[], metavar="KPI=VALUE",
                    help="how much worse than the baseline a KPI may be, e.g. --margin cost_per_order=0.5")
    gt.add_argument("--scale", type=float, default=None, help="shrink every scenario (quick looks)")
    gt.add_argument("--horizon-h", type=float, default=None, help="shorten every scenario's horizon")
    gt.add_argument("--engine", default="kernel", choices=engine_names(), help="event engine (default kernel)")

    hi = sub.add_parser("history", help="write an order history (orders, lines, the warehouse chosen per line) from a "
                                        "twin run, for `twin shadow`: Parquet, CSV or CloudEvents JSON lines")
    hi.add_argument("source", help="a run directory written by `twin run` (its scenario and seed), or a scenario "
                                   "(built-in name or YAML)")
    hi.add_argument("--out", "-o", required=True, help="the history file: .parquet, .csv, or .jsonl (CloudEvents)")
    hi.add_argument("--seed", type=int, default=None, help="the run's seed (default: the run's, or the scenario's)")
    hi.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a scenario field (repeatable)")
    hi.add_argument("--scale", type=float, default=None, help="scale the scenario (as `twin run --scale`)")
    hi.add_argument("--start", default=None, help="the calendar time of hour 0, ISO 8601 (default: the scenario's "
                                                  "start, else 2026-11-10T00:00Z)")
    hi.add_argument("--force", action="store_true", help="overwrite an existing file")

    sh = sub.add_parser("shadow", help="replay an order history through the twin with its logged decisions and with a "
                                       "candidate package: agreement, paired KPI deltas per order-day, the go-live rule; "
                                       "exit 1 when the rule fails")
    sh.add_argument("dir", help="the candidate package (written by `twin export`)")
    sh.add_argument("--history", required=True, help="the order history (.parquet, .csv or .jsonl; see the README)")
    sh.add_argument("--scenario", default=None, help="the world to replay in: a run directory, a built-in name or a "
                                                     "YAML (default: the package's scenario)")
    sh.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    sh.add_argument("--scale", type=float, default=None)
    sh.add_argument("--seed", type=int, default=None, help="the replays' seed (default: the run's or scenario's)")
    sh.add_argument("--block-h", type=float, default=24.0,
                    help="hours per block of the go-live rule (default 24: order-days)")
    sh.add_argument("--start", default=None, help="the calendar time of hour 0, ISO 8601 (default: the scenario's "
                                                  "start, else midnight UTC of the first order's day)")
    sh.add_argument("--out", "-o", default=None, help="write shadow.json into this directory")

    sv = sub.add_parser("serve", help="serve a policy package to an OMS: POST /v1/route, health, metrics, audit "
                                      "(needs the serve extra)")
    sv.add_argument("dir", help="the champion package (written by `twin export`)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8080)
    sv.add_argument("--shadow", default=None, metavar="DIR", help="a challenger package scored off the response path")
    sv.add_argument("--audit", default="audit.jsonl", help="the append-only CloudEvents audit log (JSON lines)")
    sv.add_argument("--timeout-ms", type=float, default=50.0, help="model time budget before the fallback answers")
    sv.add_argument("--kafka", default=None, metavar="BROKERS",
                    help="also consume order-created CloudEvents from Kafka and produce decisions")
    sv.add_argument("--admin", action="store_true",
                    help="offer POST /v1/admin/swap (hot swap to another package, audited); off by default")
    sv.add_argument("--orders-topic", default="orders.created")
    sv.add_argument("--decisions-topic", default="routing.decisions")

    tr = sub.add_parser("train", help="train an RL policy on a twin env (needs the rl extra)")
    ev = sub.add_parser("evaluate", help="a trained policy (model zip) or a policy package vs every baseline on "
                                         "common seeds, paired 95%% CIs")
    ev.add_argument("policy", help="a model zip written by `twin train`, a package written by `twin export`, or a "
                                   "baseline's name")
    ev.add_argument("--scenario", default=None, help="scenario to evaluate on (default: the training one, or the "
                                                     "package's)")
    ev.add_argument("--replications", "-r", type=int, default=10, help="episodes (runs) per policy, on common seeds")
    ev.add_argument("--env", dest="env_id", default=None, help="env id (default: from the run's args.json)")
    ev.add_argument("--seed", type=int, default=100_000, help="first evaluation seed (held out from training)")
    ev.add_argument("--scale", type=float, default=None, help="override the env's scale (a package: the scenario's)")
    ev.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="a package: override a scenario field (repeatable)")
    ev.add_argument("--engine", default=None, choices=engine_names(), help="a package: the event engine "
                                                                           "(default kernel)")
    ev.add_argument("--env-arg", dest="env_args", action="append", default=[], metavar="KEY=VALUE",
                    help="a model zip: override an env argument it was trained with, e.g. --env-arg "
                         "transfer_cost_cny_per_unit_km=0.0005 (repeatable; values are JSON)")
    ev.add_argument("--out", "-o", default=None, help="output directory (default: beside the policy, eval-<scenario>;"
                                                      " a package: runs/eval/<name>-<scenario>)")
    _rl_arguments(tr, ev)
    return p


def _rl_arguments(tr: argparse.ArgumentParser, ev: argparse.ArgumentParser) -> None:
    try:
        from rl.train import add_arguments
    except ImportError:  # the rl extra is not installed: the commands say so when run
        return
    add_arguments(tr)


def _study_arguments(sub: Any, engines: list[str]) -> None:
    """The study commands' arguments: sweep, query, size, replan."""
    def backend_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--store", default="runs/store", help="the run store (default runs/store)")
        p.add_argument("--backend", default="local", choices=["local", "ray"],
                       help="local processes (default) or a Ray cluster (started on demand, or --address)")
        p.add_argument("--workers", "-j", type=int, default=None, help="parallel runs (default: the CPUs)")
        p.add_argument("--address", default=None, help="a Ray cluster to join (--backend ray), e.g. auto")
        p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    sw = sub.add_parser("sweep", help="a factorial or Latin-hypercube design over scenario fields x seeds, each run "
                                      "once into a Parquet store (local processes or Ray)")
    sw.add_argument("spec", help="a sweep spec (YAML): scenario, factors, seeds (see twin.studies.sweep)")
    sw.add_argument("--kpi", dest="kpis", action="append", default=None,
                    help="a KPI to summarise per point (repeatable; default on_time_rate and cost_per_order)")
    backend_args(sw)

    q = sub.add_parser("query", help="DuckDB SQL over the run store (views kpis, kpis_by_key, orders, timeseries, "
                                     "sweeps; t975(df) for CIs)")
    q.add_argument("sql", help='e.g. "SELECT scenario, avg(on_time_rate) FROM kpis GROUP BY scenario"')
    q.add_argument("--store", default="runs/store", help="the run store (default runs/store)")
    q.add_argument("--csv", default=None, metavar="FILE", help="also write the result as CSV")
    q.add_argument("--max-rows", type=int, default=50, help="rows printed (default 50)")

    sz = sub.add_parser("size", help="the smallest value of an integer field meeting a KPI target with 95%% "
                                     "confidence (sequential t checks in a bisection)")
    sz.add_argument("scenario")
    sz.add_argument("--field", required=True, help="a --set path of an integer field, * for every element, e.g. "
                                                   "warehouses.*.pick.agvs")
    sz.add_argument("--target", required=True, help="KPI>=VALUE or KPI<=VALUE, e.g. on_time_rate>=0.95")
    sz.add_argument("--min", dest="low", type=int, default=None, help="smallest value tried (default 1)")
    sz.add_argument("--max", dest="high", type=int, default=None,
                    help="largest value tried (default twice the largest current value)")
    sz.add_argument("--confidence", type=float, default=0.95, help="confidence of the answer (default 0.95)")
    sz.add_argument("--batch", type=int, default=5, help="seeds added per look (default 5)")
    sz.add_argument("--max-seeds", type=int, default=30, help="most seeds per value (default 30)")
    sz.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    sz.add_argument("--engine", default="kernel", choices=engines, help="event engine (default kernel)")
    sz.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    sz.add_argument("--scale", type=float, default=None, help="multiply demand and every capacity by this factor")
    backend_args(sz)

    rp = sub.add_parser("replan", help="every warehouse's order shares before and after closing warehouses or "
                                       "regions (an LP on the network and its state)")
    rp.add_argument("scenario")
    rp.add_argument("--close", action="append", required=True, metavar="REGION_OR_WAREHOUSE",
                    help="a warehouse or region to close (repeatable)")
    rp.add_argument("--at", type=float, default=None, help="the hour whose demand and disruptions to plan for "
                                                          "(default: the horizon's mean demand)")
    rp.add_argument("--max-utilization", type=float, default=0.9, help="pick and pack utilisation cap (default 0.9)")
    rp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    rp.add_argument("--out", "-o", default=None, metavar="FILE", help="write the shares before and after as JSON")
    rp.add_argument("--top", type=int, default=None, help="show only the warehouses that change most")


def _stress_arguments(sub: Any, engines: list[str]) -> None:
    """``twin stress``'s arguments."""
    st = sub.add_parser("stress", help="Monte Carlo over a scenario's risk events on common random numbers: KPI "
                                       "distributions, the events behind the worst runs, and each node's time to "
                                       "recover vs time to survive")
    st.add_argument("scenario", help="a built-in scenario or a YAML file (with a risks: section, or see --risks)")
    st.add_argument("--runs", "-n", type=int, required=True, help="Monte Carlo runs, on seeds seed .. seed+N-1")
    st.add_argument("--risks", default=None, metavar="NAME_OR_FILE",
                    help="a risk file (built-in: scenarios/risks/*.yaml, e.g. peak) replacing the scenario's risks")
    st.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    st.add_argument("--engine", default="kernel", choices=engines, help="event engine (default kernel)")
    st.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a scenario field (repeatable), e.g. risks.events.nanjing_closure.probability=0.8")
    st.add_argument("--scale", type=float, default=None, help="multiply demand and every capacity by this factor")
    st.add_argument("--out", "-o", default=None, help="output directory (default runs/stress-<scenario>-n<N>)")
    st.add_argument("--worst-by", default="on_time_rate", help="the KPI that ranks the runs (default on_time_rate)")
    st.add_argument("--worst-share", type=float, default=0.1, help="share of runs that are the worst (default 0.1)")
    st.add_argument("--no-paired", action="store_true",
                    help="skip the calm run (no risk events) on each seed (and the exposure table)")
    st.add_argument("--no-exposure", action="store_true", help="skip the time-to-survive runs")
    st.add_argument("--tts-seeds", type=int, default=None,
                    help="seeds per node for the time to survive (default 5, at most --runs)")
    st.add_argument("--tts-at", type=float, default=None,
                    help="hour the node losses start (default: the busiest hour of the horizon)")
    st.add_argument("--tts-step-h", type=float, default=2.0, help="resolution of the time to survive (default 2 h)")
    st.add_argument("--tts-max-h", type=float, default=None, help="longest loss tried (default: the horizon)")
    st.add_argument("--lanes", choices=["risks", "all"], default="risks",
                    help="lanes in the exposure table: into regions a risk event closes (default) or every region")
    st.add_argument("--backend", default="local", choices=["local", "ray"], help="local processes (default) or Ray")
    st.add_argument("--workers", "-j", type=int, default=None, help="parallel runs (default: the CPUs)")
    st.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    st.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _cmd_stress(a: argparse.Namespace) -> int:
    from twin.scenario.loader import load_scenario, scale_scenario
    from twin.scenario.risks import load_risks, with_risks
    from twin.studies.stress import exposure_markdown, stress, write_stress

    _check_scale(a.scale)
    if a.workers is not None and a.workers < 1:
        raise _UserError(f"--workers must be >= 1, got {a.workers}")
    sc = load_scenario(a.scenario)
    if a.risks:
        sc = with_risks(sc, load_risks(a.risks))
    if a.overrides:
        sc = load_scenario(sc, a.overrides)
    if a.scale is not None:
        sc = scale_scenario(sc, a.scale)
    out = _check_output_dir(a.out if a.out else Path("runs") / f"stress-{sc.name}-n{a.runs}")
    res = stress(sc, a.runs, seed=a.seed, engine=a.engine, workers=a.workers, backend=a.backend,
                 paired=not a.no_paired, worst_by=a.worst_by, worst_share=a.worst_share,
                 tts=not (a.no_exposure or a.no_paired), tts_seeds=a.tts_seeds, at_h=a.tts_at, step_h=a.tts_step_h,
                 max_h=a.tts_max_h, lanes=a.lanes, progress=not a.quiet)
    write_stress(res, out, plots=not a.no_plots)
    k = res.kpis
    print(f"\n{sc.name}: {a.runs} runs (seeds {res.seeds[0]}-{res.seeds[-1]}, engine {a.engine})")
    for name in ("on_time_rate", "orders_lost", "time_to_recover_h", "service_loss_h"):
        if name in k.index:
            r = k.loc[name]
            print(f"  {name:<20} mean {r['mean']:.4g}  best {r['best']:.4g}  worst {r['worst']:.4g}  "
                  f"p5-p95 {r['p5']:.4g}-{r['p95']:.4g}")
    if len(res.drivers):
        top = res.drivers.head(3)
        print(f"  worst runs ({len(res.worst)} by {res.worst_by}): "
              + "; ".join(f"{e} fired in {r['fired_in_worst']:.0%} (overall {r['fired']:.0%})"
                          for e, r in top.iterrows()))
    if res.exposure is not None:
        print("\n" + exposure_markdown(res.exposure))
    print(f"\nwrote {out}/: stress.md, stress.json, runs.csv, kpis.csv, daily.csv, drivers.csv"
          + (", exposure.csv" if res.exposure is not None else "") + ("" if a.no_plots else ", plots"))
    return 0


def _cmd_sweep(a: argparse.Namespace) -> int:
    from twin.studies.store import format_frame
    from twin.studies.sweep import check_kpis, summary_table, sweep

    kpis = check_kpis(a.kpis or ["on_time_rate", "cost_per_order"])
    if a.workers is not None and a.workers < 1:
        raise _UserError(f"--workers must be >= 1, got {a.workers}")
    _check_output_dir(a.store, "--store")
    res = sweep(a.spec, a.store, backend=a.backend, workers=a.workers, address=a.address, progress=not a.quiet)
    runs = res.computed + res.cached
    print(f"sweep {res.spec.name}: {len(res.table):,} rows ({res.table['point'].nunique()} points x "
          f"{len(res.spec.seeds)} seeds), {runs:,} distinct runs: {res.computed:,} computed, {res.cached:,} from "
          f"the store; {res.wall_s:.1f} s" + (f" (backend start-up {res.startup_s:.1f} s)" if res.startup_s else ""))
    print(format_frame(summary_table(res, kpis)))
    print(f"\nwrote {res.path}")
    return 0


def _cmd_query(a: argparse.Namespace) -> int:
    from twin.studies.store import format_frame, query

    if a.max_rows < 0:
        raise _UserError(f"--max-rows must be >= 0, got {a.max_rows}")
    df = query(a.store, a.sql)
    print(format_frame(df, a.max_rows))
    if a.csv:
        df.to_csv(a.csv, index=False)
        print(f"\nwrote {a.csv}")
    return 0


def _cmd_size(a: argparse.Namespace) -> int:
    from twin.studies.size import format_size, size

    _check_scale(a.scale)
    if a.workers is not None and a.workers < 1:
        raise _UserError(f"--workers must be >= 1, got {a.workers}")
    _check_output_dir(a.store, "--store")
    res = size(a.scenario, a.field, a.target, low=a.low, high=a.high, overrides=a.overrides, scale=a.scale,
               confidence=a.confidence, batch=a.batch, max_seeds=a.max_seeds, seed=a.seed, engine=a.engine,
               store=a.store, backend=a.backend, workers=a.workers, address=a.address, progress=not a.quiet)
    print(format_size(res))
    return 0 if res.answer is not None else 1


def _cmd_replan(a: argparse.Namespace) -> int:
    from twin.studies.replan import format_replan, replan, write_replan

    if a.top is not None and a.top < 1:
        raise _UserError(f"--top must be >= 1, got {a.top}")
    res = replan(a.scenario, a.close, at=a.at, overrides=a.overrides, max_utilization=a.max_utilization)
    print(format_replan(res, a.top))
    if a.out:
        print(f"\nwrote {write_replan(res, a.out)}")
    return 0


def _check_scale(scale: float | None) -> None:
    if scale is not None and not (math.isfinite(scale) and scale > 0):
        raise _UserError(f"--scale must be a finite number > 0, got {scale:g}")


def _check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Refuse, before any long work, an output directory that cannot be written: an existing
    file, a path under a file, or a place without write permission. Creates nothing."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise _UserError(f"{option} {str(out)!r}: a file of that name exists; give a directory")
    base = out
    while not base.exists() and not base.is_symlink() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise _UserError(f"{option} {str(out)!r}: {str(base)!r} is a file, not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise _UserError(f"{option} {str(out)!r}: cannot write in {str(base)!r} (permission denied)")
    return out


def _overrides_tag(overrides: list[str], scale: float | None) -> str:
    """A short stable hash of the what-if (``--set`` and ``--scale``) for the default output
    directory, or "" when there is none; the same changes give the same tag."""
    from twin.scenario.loader import parse_overrides

    ov = parse_overrides(overrides)
    if not ov and scale in (None, 1.0):
        return ""
    key = json.dumps({"set": ov, "scale": scale}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def _differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Where two JSON documents differ: ``path: old -> new``, at most a few."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in list(old) + [k for k in new if k not in old]:
            out += _differences(old.get(k), new.get(k), f"{path}.{k}" if path else str(k))
        return out[:3]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (x, y) in enumerate(zip(old, new)):
            out += _differences(x, y, f"{path}[{i}]")
        return out[:3]
    return [] if old == new else [f"{path or '<root>'}: {json.dumps(old)} -> {json.dumps(new)}"]


def _check_previous_run(out: Path, scenario: Any, seed: int, engine: str, replications: int,
                        policy_source: str | None = None) -> None:
    """Refuse to overwrite a run in ``out`` that is not this one (scenario after overrides and
    scale, seed, engine, replications, the ``--policy`` it routed with); rerunning the identical
    run may overwrite it."""
    kpis_f, sc_f = out / "kpis.json", out / "scenario.json"
    if not (kpis_f.exists() or sc_f.exists()):
        return
    why = []
    try:
        if kpis_f.exists():
            k = json.loads(kpis_f.read_text(encoding="utf-8"))
            old_seeds = k["seeds"] if "seeds" in k else [k.get("seed")]
            if old_seeds[0] != seed:
                why.append(f"seed {old_seeds[0]}, this run {seed}")
            if len(old_seeds) != replications:
                why.append(f"replications {len(old_seeds)}, this run {replications}")
            if k.get("engine") != engine:
                why.append(f"engine {k.get('engine')}, this run {engine}")
            if k.get("policy_source") != policy_source:
                why.append(f"--policy {k.get('policy_source') or 'none'}, this run {policy_source or 'none'}")
        if sc_f.exists():
            old = json.loads(sc_f.read_text(encoding="utf-8"))
            new = json.loads(scenario.model_dump_json())
            # the data decide (the description is text about them: it may list the same
            # overrides in another order)
            old.pop("description", None)
            new.pop("description", None)
            if old.get("name") != new["name"]:
                why.append(f"scenario {old.get('name')}, this run {new['name']}")
            elif old != new:
                why.append("scenario differs at " + "; ".join(_differences(old, new)))
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        why.append(f"its kpis.json or scenario.json cannot be read: {exc}")
    if why:
        raise _UserError(f"--out {str(out)!r} holds a different run ({'; '.join(why)}); "
                         "choose another --out, or add --force to overwrite it")


def _remove_stale_report(out: Path) -> None:
    """Delete a previous run's report.html and plots, so that none is left beside new data."""
    from twin.report.html import PLOT_FILES

    for name in ("report.html", *(f for f, _ in PLOT_FILES)):
        (out / name).unlink(missing_ok=True)


def _cmd_run(a: argparse.Namespace) -> int:
    from twin.results.runs import replicate, simulate
    from twin.scenario.lint import format_warning
    from twin.scenario.loader import load_scenario
    from twin.scenario.size import estimate_run
    from twin.world.lint import lint

    if a.replications < 1:
        raise _UserError(f"--replications must be >= 1, got {a.replications}")
    if a.processes is not None and a.processes < 1:
        raise _UserError(f"--processes must be >= 1, got {a.processes}")
    if a.seed is not None and a.seed < 0:
        raise _UserError(f"--seed must be >= 0, got {a.seed}")
    _check_scale(a.scale)
    sc = load_scenario(a.scenario, a.overrides)
    if a.scale is not None:
        from twin.scenario.loader import scale_scenario

        sc = scale_scenario(sc, a.scale)
    estimate_run(sc).check()  # refuse a run that cannot fit before any work
    seed = sc.seed if a.seed is None else a.seed
    suffix = f"seed{seed}" if a.replications == 1 else f"seed{seed}-x{a.replications}"
    tag = _overrides_tag(a.overrides, a.scale)
    out = _check_output_dir(a.out if a.out else Path("runs") / f"{sc.name}-{suffix}{'-' + tag if tag else ''}")
    policy_source = str(Path(a.policy).resolve()) if a.policy is not None else None
    if not a.force:
        _check_previous_run(out, sc, seed, a.engine, a.replications, policy_source)
    print(f"twin: {sc.name}: {sc.description}".rstrip(": "), file=sys.stderr)
    for w in lint(sc):  # a scenario that cannot work as meant says so, and still runs
        print(f"twin: {format_warning(w)}", file=sys.stderr)
    print(f"twin: output directory {out}/", file=sys.stderr)
    routing = before_tick = policy_label = None
    if a.policy is not None:
        if a.replications > 1:
            raise _UserError("--policy runs one replication (use `twin gate` for paired replications)")
        p = Path(a.policy)
        if p.suffix == ".zip" or (p / "model.zip").is_file():  # a model twin train wrote
            try:
                from rl.controller import LearnedController
            except ImportError as exc:
                raise _UserError(f"--policy {a.policy}: a trained model needs the rl extra "
                                 f"(pip install -e '.[rl]'): {exc}") from None
            try:
                ctl = LearnedController(p)
            except (FileNotFoundError, ValueError) as exc:
                raise _UserError(str(exc)) from None
            routing, before_tick, policy_label = ctl.routing, ctl.before_tick, ctl.label
        else:
            from twin.policies.runtime import load_package, routing_policy

            pkg = load_package(a.policy)
            routing = routing_policy(pkg)
            policy_label = f"package {pkg.name} {pkg.version} (sha256 {pkg.sha256[:12]})"
        print(f"twin: routing with {policy_label}", file=sys.stderr)
    if a.replications == 1:
        res = simulate(sc, seed=seed, engine=a.engine, progress=not a.quiet, routing=routing, before_tick=before_tick)
        if policy_label is not None:
            res.kpis["policy"] = policy_label  # the report and kpis.json name the policy
            res.kpis["policy_source"] = policy_source
        res.save(out, progress=not a.quiet, wait=a.no_report)  # the report waits for orders.parquet
        kpis = res.kpis
        took = f"{res.wall_s:.1f} s, {res.kpis['orders_created'] / max(res.wall_s, 1e-9):,.0f} orders/s"
    else:
        rep = replicate(sc, range(seed, seed + a.replications), engine=a.engine, processes=a.processes,
                        progress=not a.quiet)
        rep.save(out, progress=not a.quiet, wait=a.no_report)
        kpis = rep.kpis
        took = f"{a.replications} replications"
    _remove_stale_report(out)
    if not a.no_report:
        from twin.report.html import write_report

        write_report(out, result=res if a.replications == 1 else rep, progress=not a.quiet)  # records in memory
    print(f"\n{sc.name} (seed {seed}{', ' + str(a.replications) + ' replications' if a.replications > 1 else ''},"
          f" engine {a.engine}; {took})")
    print(format_kpis(kpis))
    print(f"\nwrote {out}/: kpis.json, orders.parquet, timeseries.parquet"
          + ("" if a.no_report else ", report.html"))
    return 0


def _cmd_scenarios(a: argparse.Namespace) -> int:
    from scenarios import describe_builtins

    rows = describe_builtins()
    width = max(len(n) for n, _ in rows)
    for name, desc in rows:
        print(f"{name:<{width}}  {desc}")
    return 0


def _cmd_validate(a: argparse.Namespace) -> int:
    from twin.scenario.lint import format_warning
    from twin.scenario.loader import load_scenario
    from twin.scenario.size import estimate_run
    from twin.world.lint import lint
    from twin.world.network import build_network

    sc = load_scenario(a.scenario, a.overrides)
    size = estimate_run(sc).check()  # a run that cannot fit is refused here too (before building it)
    net = build_network(sc)
    print(f"{sc.name}: valid ({net.n_warehouses} warehouses, {net.n_regions} regions, {len(net.carriers)} carriers,"
          f" {net.n_skus} SKUs, horizon {sc.horizon_h:g} h)")
    print(size)
    warnings = lint(sc, net)
    for w in warnings:
        print(format_warning(w))
    return 1 if warnings and a.strict else 0


def _cmd_compare(a: argparse.Namespace) -> int:
    from twin.results.compare import compare_runs, format_table

    if len(a.dirs) < 2:
        raise _UserError(f"compare needs at least two run directories, got {len(a.dirs)}")
    out = _check_output_dir(a.out if a.out else Path(a.dirs[0]).parent / "compare")
    df = compare_runs(a.dirs)
    from twin.report import write_compare

    write_compare(df, out)
    print(format_table(df))
    for lab, p in df.attrs.get("paired", {}).items():
        print(f"{lab} vs {df.attrs['runs'][0]}: {p['note']}")
    print(f"\nwrote {out}/compare.csv and compare.png")
    return 0


def _cmd_report(a: argparse.Namespace) -> int:
    from twin.report.html import write_report

    if not (Path(a.dir) / "kpis.json").is_file():
        raise _UserError(f"{a.dir!r} is not a run directory: no kpis.json in it")
    print(f"wrote {write_report(a.dir)}")
    return 0


def _cmd_bound(a: argparse.Namespace) -> int:
    from twin.results.bound import bound_run_dir, format_bound
    from twin.world.costs import ObjectiveWeights

    if not (math.isfinite(a.bucket_h) and a.bucket_h > 0):
        raise _UserError(f"--bucket-h must be a finite number of hours > 0, got {a.bucket_h:g}")
    for name in ("late_penalty_cny", "lost_penalty_cny", "co2_price_cny_per_kg"):
        v = getattr(a, name)
        if not (math.isfinite(v) and v >= 0):
            raise _UserError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {v:g}")
    w = ObjectiveWeights(a.late_penalty_cny, a.lost_penalty_cny, a.co2_price_cny_per_kg)
    doc = bound_run_dir(a.dir, weights=w, bucket_h=a.bucket_h, force=a.force)
    print(f"{doc['scenario']}: hindsight bound on {a.dir}")
    print(format_bound(doc))
    print(f"\nwrote {Path(a.dir) / 'bound.json'}")
    return 0


def _parse_params(items: list[str], flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise _UserError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _cmd_export(a: argparse.Namespace) -> int:
    from twin.policies.heuristics import ROUTING_POLICIES

    if a.fallback not in ROUTING_POLICIES:
        raise _UserError(f"--fallback must be one of {', '.join(ROUTING_POLICIES)}; got {a.fallback!r}")
    _check_output_dir(a.out)
    params = _parse_params(a.params, "--param")
    if a.policy in ROUTING_POLICIES:
        from twin.policies.export import export_heuristic

        out = export_heuristic(a.policy, a.out, a.scenario or "singles_day", params, a.version or "1", a.fallback,
                               a.force)
    else:
        if not Path(a.policy).exists():
            raise _UserError(f"no trained policy at {a.policy!r}, and it is no heuristic; heuristics: "
                             f"{', '.join(ROUTING_POLICIES)}")
        try:
            from rl.export import export_policy
        except ImportError:
            raise _UserError("exporting a learned policy needs the rl and serve extras: "
                             "pip install -e '.[rl,serve]'") from None
        out = export_policy(a.policy, a.out, a.scenario, a.name, a.version, a.fallback, params, a.force)
    from twin.policies.runtime import load_package

    pkg = load_package(out)
    print(f"wrote {out}/: {', '.join(sorted(pkg.manifest['files']))}, manifest.json "
          f"({pkg.kind} package {pkg.name} {pkg.version}, sha256 {pkg.sha256})")
    return 0


def _cmd_gate(a: argparse.Namespace) -> int:
    from twin.results.gate import GATE_SCENARIOS, HELD_OUT_SEED, format_gate, gate_package

    if a.seeds < 2:
        raise _UserError(f"--seeds must be >= 2 (a paired confidence interval), got {a.seeds}")
    _check_scale(a.scale)
    if a.horizon_h is not None and not (math.isfinite(a.horizon_h) and a.horizon_h > 0):
        raise _UserError(f"--horizon-h must be a finite number of hours > 0, got {a.horizon_h:g}")
    first = HELD_OUT_SEED if a.first_seed is None else a.first_seed
    if first < 0:
        raise _UserError(f"--first-seed must be >= 0, got {first}")
    margins = _parse_params(a.margins, "--margin")
    doc = gate_package(a.dir, scenarios=a.scenarios or GATE_SCENARIOS, seeds=range(first, first + a.seeds),
                       baseline=a.baseline, margins=margins, scale=a.scale, horizon_h=a.horizon_h, engine=a.engine)
    print(format_gate(doc))
    print(f"\nwrote {Path(a.dir) / 'gate.json'}; the verdict is in manifest.json")
    return 0 if doc["passed"] else 1


def _cmd_serve(a: argparse.Namespace) -> int:
    try:
        from twin.serve.app import serve
    except ImportError as exc:
        raise _UserError(f"serving needs the serve extra: pip install -e '.[serve]' ({exc})") from None
    if not 0 < a.port < 65536:
        raise _UserError(f"--port must be in 1..65535, got {a.port}")
    if not (math.isfinite(a.timeout_ms) and a.timeout_ms > 0):
        raise _UserError(f"--timeout-ms must be a finite number > 0, got {a.timeout_ms:g}")
    return serve(a.dir, host=a.host, port=a.port, shadow=a.shadow, audit=a.audit, timeout_ms=a.timeout_ms,
                 kafka=a.kafka, orders_topic=a.orders_topic, decisions_topic=a.decisions_topic, admin=a.admin)


def _scenario_source(source: str, overrides: list[str], scale: float | None) -> tuple[Any, int | None]:
    """A scenario and seed from a run directory (its scenario.json and kpis.json), or a
    scenario from a built-in name or YAML (seed None)."""
    from twin.scenario.loader import load_scenario, scale_scenario, validate_scenario

    _check_scale(scale)
    d = Path(source)
    seed = None
    if d.is_dir():
        if not (d / "scenario.json").is_file():
            raise _UserError(f"{source!r} is a directory without scenario.json: not a run directory of `twin run`")
        sc = validate_scenario(json.loads((d / "scenario.json").read_text(encoding="utf-8")), str(d / "scenario.json"))
        if (d / "kpis.json").is_file():
            k = json.loads((d / "kpis.json").read_text(encoding="utf-8"))
            seed = k["seeds"][0] if "seeds" in k else k.get("seed")
        if overrides:
            sc = load_scenario(sc, overrides)
    else:
        sc = load_scenario(source, overrides)
    if scale is not None:
        sc = scale_scenario(sc, scale)
    return sc, seed


def _start(value: str | None, flag: str = "--start") -> Any:
    if value is None:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _UserError(f"{flag} must be an ISO 8601 date-time such as 2026-11-10T00:00Z, got {value!r}") from None


def _cmd_history(a: argparse.Namespace) -> int:
    from twin.results.history import history_format, twin_history, write_history

    history_format(a.out)  # the suffix names the format: checked before the run
    out = Path(a.out)
    if out.exists() and not a.force:
        raise _UserError(f"--out {a.out!r} exists; add --force to overwrite it")
    _check_output_dir(out.parent if str(out.parent) else ".", "--out")
    if a.seed is not None and a.seed < 0:
        raise _UserError(f"--seed must be >= 0, got {a.seed}")
    sc, run_seed = _scenario_source(a.source, a.overrides, a.scale)
    seed = a.seed if a.seed is not None else run_seed if run_seed is not None else sc.seed
    lines, info = twin_history(sc, seed, _start(a.start))
    write_history(lines, out)
    routed = int(lines.groupby("order_id", sort=False)["warehouse_id"].first().notna().sum())
    print(f"wrote {out}: {info['orders']:,} orders, {len(lines):,} lines of {sc.name} seed {seed} (simpy, "
          f"{sc.policy.routing.name}; hour 0 = {info['start']}); {routed:,} routed at creation")
    return 0


def _cmd_shadow(a: argparse.Namespace) -> int:
    from twin.results.runs import jsonable
    from twin.results.shadow import format_shadow, shadow

    if not (math.isfinite(a.block_h) and a.block_h > 0):
        raise _UserError(f"--block-h must be a finite number of hours > 0, got {a.block_h:g}")
    if a.seed is not None and a.seed < 0:
        raise _UserError(f"--seed must be >= 0, got {a.seed}")
    out = _check_output_dir(a.out) if a.out else None
    sc, run_seed = (None, None)
    if a.scenario is not None:
        sc, run_seed = _scenario_source(a.scenario, a.overrides, a.scale)
    elif a.overrides or a.scale is not None:
        raise _UserError("--set and --scale need --scenario (the package's scenario is replayed as it is)")
    seed = a.seed if a.seed is not None else run_seed
    doc = shadow(a.dir, a.history, sc, seed=seed, block_h=a.block_h, start=_start(a.start))
    print(format_shadow(doc))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "shadow.json").write_text(json.dumps(jsonable(doc), indent=2, allow_nan=False) + "\n",
                                         encoding="utf-8")
        print(f"\nwrote {out / 'shadow.json'}")
    return 0 if doc["go_live"]["passed"] else 1


def _cmd_train(a: argparse.Namespace) -> int:
    if not hasattr(a, "total_timesteps"):
        raise _UserError("training needs the rl extra: pip install -e '.[rl]'")
    from rl.train import args_from_namespace, train

    if a.run_dir is not None:
        _check_output_dir(a.run_dir, "--run-dir")
    run_dir = train(args_from_namespace(a))
    print(f"wrote {run_dir}/: model.zip, args.json, progress.csv, evaluations.json, checkpoints/, monitor/")
    return 0


def _cmd_evaluate_package(a: argparse.Namespace) -> int:
    from twin.results.gate import evaluate_package, format_evaluation
    from twin.results.runs import jsonable

    if a.env_id is not None:
        raise _UserError("--env is for a model zip; a package is evaluated in the twin on its network")
    if a.seed < 0:
        raise _UserError(f"--seed must be >= 0, got {a.seed}")
    from twin.policies.runtime import load_package

    pkg = load_package(a.policy)
    sc = None
    if a.scenario is not None:
        sc, _ = _scenario_source(a.scenario, a.overrides, a.scale)
    elif a.overrides or a.scale is not None:
        from twin.scenario.loader import load_scenario, scale_scenario

        sc = load_scenario(pkg.scenario, a.overrides)
        sc = scale_scenario(sc, a.scale) if a.scale is not None else sc
    name = (sc or pkg.scenario).name
    out = _check_output_dir(a.out if a.out else Path("runs") / "eval" / f"{pkg.name}-{name}")
    doc = evaluate_package(pkg.path, sc, a.replications, seed=a.seed, engine=a.engine or "kernel")
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(jsonable(doc), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(format_evaluation(doc))
    print(f"\nwrote {out}/eval.json")
    return 0


def _evaluate_env_kwargs(a: argparse.Namespace) -> dict[str, Any] | None:
    """``--scale`` and ``--env-arg KEY=VALUE`` of ``twin evaluate``, checked against the env's
    constructor (the env of the run's ``args.json``, or ``--env``) before anything runs."""
    from rl.evaluate import load_run_args
    from rl.train import check_env_kwargs
    from twin.scenario.loader import parse_overrides

    kw: dict[str, Any] = {}
    if a.env_args:
        env_id = a.env_id or load_run_args(a.policy).get("env_id", "twin/Routing-v0")
        try:
            kw.update(parse_overrides(a.env_args, flag="--env-arg"))
            check_env_kwargs(env_id, kw)
        except ValueError as e:
            raise _UserError(str(e)) from None
    if a.scale is not None:
        kw["scale"] = a.scale
    return kw or None


def _cmd_evaluate(a: argparse.Namespace) -> int:
    if a.replications < 1:
        raise _UserError(f"--replications must be >= 1, got {a.replications}")
    _check_scale(a.scale)
    if Path(a.policy).is_dir() and (Path(a.policy) / "manifest.json").is_file():
        return _cmd_evaluate_package(a)
    if a.overrides or a.engine is not None:
        raise _UserError("--set and --engine are for a policy package (a model zip is evaluated on its env)")
    if a.env_args and not a.policy.endswith(".zip"):
        raise _UserError("--env-arg is for a model zip (its env's arguments); a baseline is compared on --env's "
                         "defaults")
    try:
        from rl.evaluate import evaluate, format_table
    except ImportError:
        raise _UserError("evaluating a model zip needs the rl extra: pip install -e '.[rl]'") from None

    is_path = a.policy.endswith(".zip")
    if is_path and not Path(a.policy).is_file():
        raise _UserError(f"no trained policy at {a.policy!r}")
    out = _check_output_dir(a.out if a.out else (Path(a.policy).parent if is_path else Path("runs") / "rl") / (
        f"eval-{Path(a.scenario).stem if a.scenario else 'train-scenario'}"))
    kw = _evaluate_env_kwargs(a)
    res = evaluate(a.policy, a.scenario, a.replications, env_id=a.env_id, seed=a.seed, out_dir=out, env_kwargs=kw)
    print(format_table(res))
    print(f"\nwrote {out}/eval.json and eval.png")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``twin`` command; returns the exit status."""
    parser = build_parser()
    a = parser.parse_args(argv)
    handler = {"run": _cmd_run, "scenarios": _cmd_scenarios, "validate": _cmd_validate, "compare": _cmd_compare,
               "report": _cmd_report, "bound": _cmd_bound, "train": _cmd_train, "evaluate": _cmd_evaluate,
               "export": _cmd_export, "gate": _cmd_gate, "serve": _cmd_serve,
               "history": _cmd_history, "shadow": _cmd_shadow,
               "sweep": _cmd_sweep, "query": _cmd_query, "size": _cmd_size, "replan": _cmd_replan,
               "stress": _cmd_stress}[a.command]
    try:
        return handler(a)
    except (TwinError, _UserError, OSError, json.JSONDecodeError) as exc:  # OSError: a file that cannot be written
        print(f"twin: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad argument values reaching the API
        print(f"twin: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("twin: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
