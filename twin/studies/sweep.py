"""Sweeps: a design over scenario fields x an explicit seed list, run once each into the store.

A sweep spec (YAML)::

    name: agv_peak                 # names the sweep in the store (letters, digits, _ and -)
    scenario: singles_day          # a built-in name or a YAML path (relative to the spec file)
    set: {horizon_h: 24}           # fixed overrides (``--set`` paths), optional
    scale: 0.1                     # optional: demand and capacities x 0.1 (after the overrides)
    engine: kernel
    design: factorial              # factorial (every combination of levels) or lhs
    factors:                       # ``--set`` paths; ``*`` stands for every named element
      warehouses.*.pick.agvs: [40, 60, 80]
      carriers.zto.capacity: [2000, 4000]
    seeds: [0, 1, 2]               # or {start: 0, count: 10}
    records: false                 # true: keep each run's orders and time series too

An ``lhs`` design draws ``samples`` points by a Latin hypercube (:mod:`scipy.stats.qmc`, seeded
by ``design_seed``): a factor is then ``{low: 40, high: 80}`` (``integer: true`` for counts) or a
list of levels, one picked per point. Every point runs on every seed (common random numbers:
points are paired by seed). Each run is content-addressed (:mod:`twin.studies.store`) and
computed only if the store lacks it; the result table (one row per point and seed, sorted so,
with the factors and every scalar KPI) depends only on the spec, never on the backend, the
number of workers or which runs were already stored.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from twin.errors import TwinError
from twin.results.kpis import KPIS
from twin.scenario.loader import load_scenario, scale_scenario
from twin.scenario.schema import Scenario
from twin.studies.backends import make_backend
from twin.studies.store import RunStore, code_version, run_id, scenario_hash

__all__ = ["CodeChanged", "SpecError", "SweepSpec", "Task", "SweepResult", "load_spec", "design_points", "expand_overrides",
           "run_tasks", "sweep", "execute"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class SpecError(TwinError, ValueError):
    """A sweep spec is invalid; the message names the field, the value and what is allowed."""

    def __init__(self, problem: str, source: str | None = None) -> None:
        super().__init__(f"invalid sweep spec{' ' + source if source else ''}: {problem}")


# ---------------------------------------------------------------------- spec
@dataclass(frozen=True)
class Factor:
    """One factor: a ``--set`` path and its levels (factorial) or range (lhs)."""

    path: str
    levels: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    integer: bool = False


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec (see the module docstring)."""

    name: str
    scenario: str
    factors: tuple[Factor, ...]
    seeds: tuple[int, ...]
    design: str = "factorial"
    samples: int | None = None
    design_seed: int = 0
    overrides: Mapping[str, Any] = field(default_factory=dict)
    scale: float | None = None
    engine: str = "kernel"
    records: bool = False
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scenario": self.scenario, "set": dict(self.overrides), "scale": self.scale,
                "engine": self.engine, "design": self.design, "samples": self.samples,
                "design_seed": self.design_seed, "seeds": list(self.seeds), "records": self.records,
                "factors": {f.path: (list(f.levels) if f.levels is not None else
                                     {"low": f.low, "high": f.high, "integer": f.integer}) for f in self.factors}}


_SPEC_KEYS = ("name", "scenario", "set", "scale", "engine", "design", "samples", "design_seed", "factors", "seeds",
              "records")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _seeds(v: Any, src: str | None) -> tuple[int, ...]:
    if isinstance(v, Mapping):
        extra = set(v) - {"start", "count"}
        if extra or "count" not in v:
            raise SpecError(f"seeds: a mapping takes start and count (e.g. {{start: 0, count: 10}}), got {dict(v)}",
                            src)
        start, count = v.get("start", 0), v["count"]
        if not (_is_int(start) and start >= 0 and _is_int(count) and 1 <= count <= 100_000):
            raise SpecError(f"seeds: start must be an int >= 0 and count an int in 1..100000, got start={start!r}, "
                            f"count={count!r}", src)
        return tuple(range(start, start + count))
    if not isinstance(v, list) or not v:
        raise SpecError(f"seeds: must be a non-empty list of ints >= 0 or {{start, count}}, got {v!r}", src)
    bad = [s for s in v if not (_is_int(s) and s >= 0)]
    if bad:
        raise SpecError(f"seeds: every seed must be an int >= 0, got {bad[0]!r}", src)
    dup = [s for s in dict.fromkeys(v) if v.count(s) > 1]
    if dup:
        raise SpecError(f"seeds: {dup[0]} is listed twice (each seed once)", src)
    return tuple(int(s) for s in v)


def _factor(path: Any, v: Any, design: str, src: str | None) -> Factor:
    if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
        raise SpecError(f"factors: {path!r} is not a dotted path such as warehouses.shanghai.pick.agvs", src)
    if isinstance(v, list):
        if not v:
            raise SpecError(f"factors.{path}: needs at least one level, got []", src)
        return Factor(path, levels=tuple(v))
    if isinstance(v, Mapping) and design == "lhs":
        extra = set(v) - {"low", "high", "integer"}
        if extra:
            raise SpecError(f"factors.{path}: unknown key {sorted(extra)[0]!r}; allowed: low, high, integer", src)
        low, high, integer = v.get("low"), v.get("high"), v.get("integer", False)
        if not (_is_num(low) and _is_num(high) and low <= high):
            raise SpecError(f"factors.{path}: low and high must be finite numbers with low <= high, got low={low!r}, "
                            f"high={high!r}", src)
        if not isinstance(integer, bool) or (integer and not (_is_int(low) and _is_int(high))):
            raise SpecError(f"factors.{path}: integer must be true or false, and with true low and high must be "
                            f"ints, got integer={integer!r}, low={low!r}, high={high!r}", src)
        if integer:
            return Factor(path, low=int(low), high=int(high), integer=True)
        return Factor(path, low=float(low), high=float(high))
    allowed = "a list of levels" + (" or {low, high, integer}" if design == "lhs" else "")
    raise SpecError(f"factors.{path}: expected {allowed}, got {v!r}", src)


def _spec_loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        """A safe loader that refuses a key given twice in one mapping (YAML keeps the last)."""

        def construct_mapping(self, node, deep=False):  # noqa: ANN001, ANN201
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    return Loader


def load_spec(spec: str | Path | Mapping[str, Any]) -> SweepSpec:
    """Read and validate a sweep spec (a YAML path or a mapping).

    Raises:
        SpecError: the file is missing or not YAML, or a field is wrong (named with its value).
    """
    import yaml

    _SpecLoader = _spec_loader()
    src: str | None = None
    base_dir = Path.cwd()
    if isinstance(spec, Mapping):
        doc: Any = dict(spec)
    else:
        p = Path(spec)
        src = str(p)
        if not p.is_file():
            raise SpecError("file not found", src)
        try:
            doc = yaml.load(p.read_text(encoding="utf-8"), Loader=_SpecLoader)  # noqa: S506 - a SafeLoader
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise SpecError(f"not valid YAML: {' '.join(str(exc).split())}", src) from None
        base_dir = p.resolve().parent
    if not isinstance(doc, Mapping):
        raise SpecError(f"must be a mapping of fields ({', '.join(_SPEC_KEYS)}), got {type(doc).__name__}", src)
    unknown = [k for k in doc if k not in _SPEC_KEYS]
    if unknown:
        raise SpecError(f"unknown field {unknown[0]!r}; allowed: {', '.join(_SPEC_KEYS)}", src)
    for req in ("scenario", "factors", "seeds"):
        if req not in doc:
            raise SpecError(f"{req}: field required", src)
    name = doc.get("name", Path(src).stem if src else "sweep")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(f"name: must be 1-64 letters, digits, _ or - (starting with a letter or digit), got {name!r}",
                        src)
    scenario = doc["scenario"]
    if not isinstance(scenario, str) or not scenario:
        raise SpecError(f"scenario: a built-in name or a YAML path, got {scenario!r}", src)
    if scenario.endswith((".yaml", ".yml")) or "/" in scenario:
        sp = Path(scenario)
        scenario = str(sp if sp.is_absolute() else (base_dir / sp))
    design = doc.get("design", "factorial")
    if design not in ("factorial", "lhs"):
        raise SpecError(f"design: must be factorial or lhs, got {design!r}", src)
    samples = doc.get("samples")
    if design == "lhs":
        if not (_is_int(samples) and 1 <= samples <= 100_000):
            raise SpecError(f"samples: an lhs design needs an int number of points in 1..100000, got {samples!r}", src)
    elif samples is not None:
        raise SpecError(f"samples: only an lhs design takes samples (a factorial one runs every combination), "
                        f"got samples={samples!r}", src)
    design_seed = doc.get("design_seed", 0)
    if not (_is_int(design_seed) and design_seed >= 0):
        raise SpecError(f"design_seed: must be an int >= 0, got {design_seed!r}", src)
    factors = doc["factors"]
    if not isinstance(factors, Mapping) or not factors:
        raise SpecError(f"factors: a non-empty mapping of --set paths to levels, got {factors!r}", src)
    fs = tuple(_factor(k, v, design, src) for k, v in factors.items())
    overrides = doc.get("set") or {}
    if not isinstance(overrides, Mapping) or not all(isinstance(k, str) for k in overrides):
        raise SpecError(f"set: a mapping of --set paths to values, got {overrides!r}", src)
    clash = [f.path for f in fs if f.path in overrides]
    if clash:
        raise SpecError(f"factors.{clash[0]}: also fixed under set (a field is either fixed or a factor)", src)
    scale = doc.get("scale")
    if scale is not None and not (_is_num(scale) and scale > 0):
        raise SpecError(f"scale: must be a finite number > 0, got {scale!r}", src)
    engine = doc.get("engine", "kernel")
    from twin.sim.engine import engine_names

    if engine not in engine_names():
        raise SpecError(f"engine: must be one of {', '.join(engine_names())}, got {engine!r}", src)
    records = doc.get("records", False)
    if not isinstance(records, bool):
        raise SpecError(f"records: must be true or false, got {records!r}", src)
    return SweepSpec(name=name, scenario=scenario, factors=fs, seeds=_seeds(doc["seeds"], src), design=design,
                     samples=samples, design_seed=design_seed, overrides=dict(overrides),
                     scale=None if scale is None else float(scale), engine=engine, records=records, source=src)


# ---------------------------------------------------------------------- design
def design_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The design's points, each ``{factor path: value}``, in a fixed order: a factorial design
    in the order of ``itertools.product`` over the factors as listed; an lhs design as drawn."""
    if spec.design == "factorial":
        paths = [f.path for f in spec.factors]
        return [dict(zip(paths, combo)) for combo in itertools.product(*(f.levels for f in spec.factors))]
    from scipy.stats import qmc

    u = qmc.LatinHypercube(d=len(spec.factors), seed=spec.design_seed).random(spec.samples)
    points = []
    for row in u:
        p: dict[str, Any] = {}
        for f, x in zip(spec.factors, row):
            if f.levels is not None:
                p[f.path] = f.levels[min(int(x * len(f.levels)), len(f.levels) - 1)]
            elif f.integer:
                lo, hi = int(f.low), int(f.high)
                p[f.path] = min(lo + int(x * (hi - lo + 1)), hi)
            else:
                p[f.path] = float(f.low + x * (f.high - f.low))
        points.append(p)
    return points


def expand_overrides(doc: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` with each ``*`` in a path replaced by every named element of that list in
    ``doc`` (a scenario's JSON): ``warehouses.*.pick.agvs`` sets every warehouse's fleet.

    Raises:
        SpecError: a ``*`` that does not stand at a list of named elements.
    """
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        paths = [[]]
        for part in key.split("."):
            nxt = []
            for pre in paths:
                if part != "*":
                    nxt.append([*pre, part])
                    continue
                node: Any = doc
                for q in pre:
                    if isinstance(node, list):
                        names = [e.get("name") for e in node if isinstance(e, Mapping)]
                        node = node[names.index(q)] if q in names else (node[int(q)] if q.isdigit() else None)
                    elif isinstance(node, Mapping):
                        node = node.get(q)
                    else:
                        node = None
                if not isinstance(node, list) or not all(isinstance(e, Mapping) and "name" in e for e in node):
                    raise SpecError(f"{key}: '*' must stand for the elements of a list of named items (warehouses, "
                                    f"carriers, regions), but {'.'.join(pre) or '<root>'} is not one")
                nxt += [[*pre, str(e["name"])] for e in node]
            paths = nxt
        for p in paths:
            out[".".join(p)] = value
    return out


def point_scenario(base: Scenario, point: Mapping[str, Any], scale: float | None = None) -> Scenario:
    """The base scenario with a point's values set (wildcards expanded), then scaled."""
    ov = expand_overrides(base.model_dump(mode="json"), point) if point else {}
    sc = load_scenario(base, ov) if ov else base
    return scale_scenario(sc, scale) if scale is not None else sc


# ---------------------------------------------------------------------- running
@dataclass(frozen=True)
class Task:
    """One run to compute into the store at ``store``."""

    run_id: str
    scenario: Scenario
    scenario_hash: str
    seed: int
    engine: str
    store: str
    records: bool = False
    #: the code version the run is named by (the caller's); None: this process's
    code: str | None = None


class CodeChanged(TwinError, RuntimeError):
    """A worker's sources differ from those the runs were named by (edited during the study)."""


def execute(task: Task) -> tuple[str, Any]:
    """Run one task and store it (a worker's job, on any backend): ``(run_id, its KPI row)``.

    Only the scenario and the seed decide the run (its random streams are spawned from the seed,
    :mod:`twin.sim.rng`), so it gives the same KPIs in any process. A worker whose sources are
    not those the run was named by (files edited since the caller started) refuses it: a run
    is stored only under the name of the code that computed it."""
    from twin.results.runs import simulate

    if task.code is not None and code_version() != task.code:
        raise CodeChanged(f"the twin's sources changed during the study (runs named by {task.code}, this worker "
                          f"has {code_version()}): run it again")
    cpu = time.process_time()
    res = simulate(task.scenario, seed=task.seed, engine=task.engine)
    cpu_s = round(time.process_time() - cpu, 4)
    row = RunStore(task.store).write_run(task.run_id, res, task.scenario_hash, records=task.records,
                                         extra={"cpu_s": cpu_s})
    return task.run_id, row


def _bar(enabled: bool, total: int, initial: int, desc: str) -> Any:
    from tqdm import tqdm

    class Bar(tqdm):
        monitor_interval = 0  # no monitor thread: workers may then be forked (twin.results.runs.start_method)

    return Bar(total=total, initial=initial, desc=desc, unit="run", file=sys.stderr, disable=not enabled,
                leave=False)


@dataclass
class RunReport:
    """What :func:`run_tasks` did: runs computed and found in the store, the backend's start-up."""

    computed: int = 0
    cached: int = 0
    startup_s: float = 0.0
    wall_s: float = 0.0
    #: the KPI rows of the runs computed, by run id (as the store holds them)
    rows: dict[str, Any] = field(default_factory=dict)


def run_tasks(tasks: Sequence[Task], store: RunStore, backend: str = "local", workers: int | None = None,
              address: str | None = None, progress: bool = False, desc: str = "runs") -> RunReport:
    """Compute every task the store lacks (each run once, even if listed twice) on a backend."""
    t0 = time.perf_counter()
    unique = list({t.run_id: t for t in tasks}.values())
    todo = [t for t in unique if not store.has(t.run_id, records=t.records)]
    rep = RunReport(computed=len(todo), cached=len(unique) - len(todo))
    bar = _bar(progress, len(unique), rep.cached, desc)
    try:
        if todo:
            store.root.mkdir(parents=True, exist_ok=True)
            with make_backend(backend, workers, address=address, temp_dir=store.root / ".ray") as b:
                for rid, row in b.imap_unordered(execute, todo):
                    rep.rows[rid] = row
                    bar.update(1)
                rep.startup_s = b.startup_s
    finally:
        bar.close()
    rep.wall_s = time.perf_counter() - t0
    return rep


@dataclass
class SweepResult:
    """A finished sweep: its result ``table`` (one row per point and seed), where it was written,
    and how many runs were computed or found in the store."""

    spec: SweepSpec
    table: pd.DataFrame
    path: Path
    computed: int
    cached: int
    startup_s: float
    wall_s: float
    factors: list[str]


def _column(values: list[Any]) -> Any:
    """A factor column: ints, floats (ints and floats mixed), bools or strings (anything else as JSON)."""
    import pyarrow as pa

    if all(_is_int(v) for v in values):
        return pa.array(values, pa.int64())
    if all(_is_num(v) for v in values):
        return pa.array([float(v) for v in values], pa.float64())
    if all(isinstance(v, bool) for v in values):
        return pa.array(values, pa.bool_())
    return pa.array([v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in values], pa.string())


def sweep(spec: str | Path | Mapping[str, Any] | SweepSpec, store: str | Path = "runs/store",
          backend: str = "local", workers: int | None = None, address: str | None = None,
          progress: bool = False) -> SweepResult:
    """Run a sweep (see the module docstring) into the store at ``store``.

    Returns:
        A :class:`SweepResult`; its table is also written to
        ``<store>/sweeps/sweep=<name>/part-<hash>.parquet``.
    """
    import pyarrow as pa

    t0 = time.perf_counter()
    make_backend(backend, workers, address=address)  # refuse bad backend options before any work (starts nothing)
    s = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    base = load_scenario(s.scenario, s.overrides or None)
    points = design_points(s)
    st = RunStore(store)
    code = code_version()
    rows: list[tuple[int, int, str, str]] = []  # point, seed, run_id, scenario name
    tasks: list[Task] = []
    for i, point in enumerate(points):
        try:
            sc = point_scenario(base, point, s.scale)
        except (TwinError, ValueError) as exc:
            raise SpecError(f"point {i} ({', '.join(f'{k}={v!r}' for k, v in point.items())}): {exc}",
                            s.source) from None
        h = scenario_hash(sc)
        for seed in s.seeds:
            rid = run_id(h, seed, s.engine, code)
            rows.append((i, seed, rid, sc.name))
            tasks.append(Task(rid, sc, h, seed, s.engine, str(st.root), s.records, code))
    rep = run_tasks(tasks, st, backend, workers, address, progress, desc=f"sweep {s.name}")
    paths = [f.path for f in s.factors]
    kpi = st.kpi_rows([r[2] for r in rows], [r[3] for r in rows], known=rep.rows)
    cols: dict[str, Any] = {"point": pa.array([r[0] for r in rows], pa.int32()),
                            "seed": pa.array([r[1] for r in rows], pa.int64())}
    for p in paths:
        cols[p] = _column([points[r[0]][p] for r in rows])
    cols["scenario"] = pa.array([r[3] for r in rows], pa.string())
    for name in kpi.column_names:
        if name != "seed":
            cols[name] = kpi.column(name)
    table = pa.table(cols)
    digest = hashlib.sha256(json.dumps([s.to_dict(), [r[2] for r in rows]], sort_keys=True, default=str).encode())
    path = st.write_sweep(s.name, table, digest.hexdigest()[:16], {**s.to_dict(), "points": points})
    return SweepResult(s, table.to_pandas(), path, rep.computed, rep.cached, rep.startup_s,
                       time.perf_counter() - t0, paths)


def summary_table(res: SweepResult, kpis: Iterable[str] = ("on_time_rate", "cost_per_order")) -> pd.DataFrame:
    """Per point: the factor values, the number of seeds, and each KPI's mean and 95% CI
    half-width over the seeds (Student t)."""
    from twin.results.kpis import summarize

    out = []
    for point, g in res.table.groupby("point", sort=True):
        row: dict[str, Any] = {"point": int(point), **{f: g[f].iloc[0] for f in res.factors}, "seeds": len(g)}
        s = summarize([{k: float(v) for k, v in zip(kpis, vals)} for vals in g[list(kpis)].to_numpy()])
        for k in kpis:
            row[k] = s.get(k, {}).get("mean", math.nan)
            row[f"{k} ci95"] = s.get(k, {}).get("ci95", math.nan)
        out.append(row)
    return pd.DataFrame(out)


def check_kpis(names: Iterable[str]) -> list[str]:
    """``names`` if each is a scalar KPI of the registry, else a ValueError listing them."""
    allowed = [k.name for k in KPIS.values() if not k.per_warehouse]
    names = list(names)
    for n in names:
        if n not in allowed:
            raise ValueError(f"--kpi {n!r} is not a scalar KPI; allowed: {', '.join(allowed)}")
    return names
