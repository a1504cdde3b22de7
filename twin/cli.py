"""The ``twin`` command: run scenarios, list them, compare runs, rebuild reports."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

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
    r.add_argument("--engine", default="kernel", choices=["kernel", "simpy"],
                   help="event engine: kernel (Cython, fast) or simpy (the readable reference); default: kernel")
    r.add_argument("--out", "-o", default=None, help="output directory (default: runs/<scenario>-seed<N>)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario field, e.g. --set warehouses.shanghai.pick.agvs=150 (repeatable)")
    r.add_argument("--scale", type=float, default=None,
                   help="multiply demand and every capacity by this factor (quick looks: --scale 0.1)")
    r.add_argument("--processes", "-j", type=int, default=None, help="parallel processes for replications")
    r.add_argument("--no-report", action="store_true", help="skip the HTML report and plots")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    sub.add_parser("scenarios", help="list the built-in scenarios")

    v = sub.add_parser("validate", help="check a scenario file (and overrides) without running it")
    v.add_argument("scenario")
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    c = sub.add_parser("compare", help="KPIs of two or more runs side by side, with differences and a plot")
    c.add_argument("dirs", nargs="+", help="run directories written by `twin run`")
    c.add_argument("--out", "-o", default=None, help="where to write compare.csv and compare.png")

    rep = sub.add_parser("report", help="rebuild report.html and the plots of a run directory")
    rep.add_argument("dir")

    tr = sub.add_parser("train", help="train an RL policy on a twin env (needs the rl extra)")
    ev = sub.add_parser("evaluate", help="a trained policy vs every baseline on common seeds, paired 95%% CIs")
    _rl_arguments(tr, ev)
    return p


def _rl_arguments(tr: argparse.ArgumentParser, ev: argparse.ArgumentParser) -> None:
    try:
        from rl.train import add_arguments
    except ImportError:  # the rl extra is not installed: the commands say so when run
        return
    add_arguments(tr)
    ev.add_argument("policy", help="a model zip written by `twin train`, or a baseline's name")
    ev.add_argument("--scenario", default=None, help="scenario to evaluate on (default: the training one)")
    ev.add_argument("--replications", "-r", type=int, default=10, help="episodes per policy, on common seeds")
    ev.add_argument("--env", dest="env_id", default=None, help="env id (default: from the run's args.json)")
    ev.add_argument("--seed", type=int, default=100_000, help="first evaluation seed (held out from training)")
    ev.add_argument("--scale", type=float, default=None, help="override the env's scale")
    ev.add_argument("--out", "-o", default=None, help="output directory (default: beside the policy, eval-<scenario>)")


def _cmd_run(a: argparse.Namespace) -> int:
    from twin.results.runs import replicate, simulate
    from twin.scenario.loader import load_scenario

    if a.replications < 1:
        raise _UserError(f"--replications must be >= 1, got {a.replications}")
    if a.processes is not None and a.processes < 1:
        raise _UserError(f"--processes must be >= 1, got {a.processes}")
    if a.seed is not None and a.seed < 0:
        raise _UserError(f"--seed must be >= 0, got {a.seed}")
    sc = load_scenario(a.scenario, a.overrides)
    if a.scale is not None:
        if not a.scale > 0:
            raise _UserError(f"--scale must be > 0, got {a.scale}")
        from twin.scenario.loader import scale_scenario

        sc = scale_scenario(sc, a.scale)
    seed = sc.seed if a.seed is None else a.seed
    suffix = f"seed{seed}" if a.replications == 1 else f"seed{seed}-x{a.replications}"
    out = Path(a.out) if a.out else Path("runs") / f"{sc.name}-{suffix}"
    print(f"twin: {sc.name}: {sc.description}".rstrip(": "), file=sys.stderr)
    if a.replications == 1:
        res = simulate(sc, seed=seed, engine=a.engine, progress=not a.quiet)
        res.save(out)
        kpis = res.kpis
        took = f"{res.wall_s:.1f} s, {res.kpis['orders_created'] / max(res.wall_s, 1e-9):,.0f} orders/s"
    else:
        rep = replicate(sc, range(seed, seed + a.replications), engine=a.engine, processes=a.processes,
                        progress=not a.quiet)
        rep.save(out)
        kpis = rep.kpis
        took = f"{a.replications} replications"
    if not a.no_report:
        from twin.report.html import write_report

        write_report(out)
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
    from twin.scenario.loader import load_scenario
    from twin.world.network import build_network

    sc = load_scenario(a.scenario, a.overrides)
    net = build_network(sc)
    print(f"{sc.name}: valid ({net.n_warehouses} warehouses, {net.n_regions} regions, {len(net.carriers)} carriers,"
          f" {net.n_skus} SKUs, horizon {sc.horizon_h:g} h)")
    return 0


def _cmd_compare(a: argparse.Namespace) -> int:
    from twin.results.compare import compare_runs, format_table

    if len(a.dirs) < 2:
        raise _UserError(f"compare needs at least two run directories, got {len(a.dirs)}")
    out = Path(a.out) if a.out else Path(a.dirs[0]).parent / "compare"
    df = compare_runs(a.dirs)
    from twin.report import write_compare

    write_compare(df, out)
    print(format_table(df))
    print(f"\nwrote {out}/compare.csv and compare.png")
    return 0


def _cmd_report(a: argparse.Namespace) -> int:
    from twin.report.html import write_report

    if not (Path(a.dir) / "kpis.json").is_file():
        raise _UserError(f"{a.dir!r} is not a run directory: no kpis.json in it")
    print(f"wrote {write_report(a.dir)}")
    return 0


def _cmd_train(a: argparse.Namespace) -> int:
    if not hasattr(a, "total_timesteps"):
        raise _UserError("training needs the rl extra: pip install -e '.[rl]'")
    from rl.train import args_from_namespace, train

    run_dir = train(args_from_namespace(a))
    print(f"wrote {run_dir}/: model.zip, args.json, progress.csv, evaluations.json, checkpoints/, monitor/")
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    if not hasattr(a, "policy"):
        raise _UserError("evaluation needs the rl extra: pip install -e '.[rl]'")
    from rl.evaluate import evaluate, format_table

    if a.replications < 1:
        raise _UserError(f"--replications must be >= 1, got {a.replications}")
    is_path = a.policy.endswith(".zip")
    if is_path and not Path(a.policy).is_file():
        raise _UserError(f"no trained policy at {a.policy!r}")
    out = Path(a.out) if a.out else (Path(a.policy).parent if is_path else Path("runs") / "rl") / (
        f"eval-{Path(a.scenario).stem if a.scenario else 'train-scenario'}")
    kw = {"scale": a.scale} if a.scale is not None else None
    res = evaluate(a.policy, a.scenario, a.replications, env_id=a.env_id, seed=a.seed, out_dir=out, env_kwargs=kw)
    print(format_table(res))
    print(f"\nwrote {out}/eval.json and eval.png")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``twin`` command; returns the exit status."""
    parser = build_parser()
    a = parser.parse_args(argv)
    handler = {"run": _cmd_run, "scenarios": _cmd_scenarios, "validate": _cmd_validate, "compare": _cmd_compare,
               "report": _cmd_report, "train": _cmd_train, "evaluate": _cmd_evaluate}[a.command]
    try:
        return handler(a)
    except (TwinError, _UserError, FileNotFoundError, json.JSONDecodeError) as exc:
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
