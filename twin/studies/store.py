"""The run store: every run once, content-addressed, as hive-partitioned Parquet plus a JSON per run.

A run is named by the hash of what decides its result: the scenario's content (every field but
its description and its ``seed``: the run's seed is given apart), the seed, the engine and the
code version (a digest of the sources that simulate and compute KPIs). The same run is never
computed twice: :meth:`RunStore.has` finds it. The layout::

    <root>/kpis/scenario=<name>/part-<run_id>.parquet         one row: the run's scalar KPIs
    <root>/kpis_by_key/scenario=<name>/part-<run_id>.parquet  one row per (KPI, key) of the KPIs
                                                              with a value per key (utilization
                                                              per warehouse, ...)
    <root>/orders/scenario=<name>/part-<run_id>.parquet       the records (when kept)
    <root>/timeseries/scenario=<name>/part-<run_id>.parquet   the time series (when kept)
    <root>/sweeps/sweep=<name>/part-<spec hash>.parquet       a sweep's result table
    <root>/runs/<run_id>.json                                 the run's KPIs and provenance
    <root>/scenarios/<scenario hash>.json                     the scenario the hash names

A run's JSON is written last (after its Parquet files, each written under a temporary name and
renamed), so a run whose JSON exists is complete. :func:`query` runs DuckDB SQL over the store
with one view per table (``kpis``, ``kpis_by_key``, ``orders``, ``timeseries``, ``sweeps``) and a
``t975(df)`` function (Student t's 97.5% quantile) for confidence intervals.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pandas as pd

from twin.results.kpis import KPIS
from twin.scenario.schema import Scenario

__all__ = ["RunStore", "code_version", "scenario_hash", "run_id", "partition_value", "query", "TABLES",
           "format_frame"]

#: The tables of the store, each a directory of hive-partitioned Parquet files.
TABLES = ("kpis", "kpis_by_key", "orders", "timeseries", "sweeps")

#: Source folders whose files decide a run's result (relative to the repository or site root).
_CODE_DIRS = ("twin/scenario", "twin/world", "twin/policies", "twin/sim", "twin/results")
_CODE_PACKAGES = ("agents", "ext", "scenarios")
_CODE_SUFFIXES = (".py", ".pyx", ".pxd", ".csv")


@lru_cache(maxsize=1)
def code_version() -> str:
    """``src-<12 hex>``: a digest of every source file that simulates a run or computes its KPIs
    (``twin.scenario``, ``world``, ``policies``, ``sim``, ``results``, ``agents``, ``ext``'s
    ``.pyx``/``.pxd``, ``scenarios``' region tables). An edit to any of them names new runs;
    an edit to the CLI, the report or the studies does not. Computed once per process."""
    twin_root = Path(__file__).resolve().parents[1]
    files: list[tuple[str, Path]] = []
    for d in _CODE_DIRS:
        base = twin_root / Path(d).relative_to("twin")
        files += [(f"{d}/{p.relative_to(base).as_posix()}", p) for p in base.rglob("*") if p.suffix in _CODE_SUFFIXES]
    for pkg in _CODE_PACKAGES:
        spec = find_spec(pkg)
        for loc in (spec.submodule_search_locations or []) if spec else []:
            base = Path(loc)
            files += [(f"{pkg}/{p.relative_to(base).as_posix()}", p) for p in base.rglob("*")
                      if p.suffix in _CODE_SUFFIXES and "build" not in p.relative_to(base).parts]
    h = hashlib.sha256()
    for name, p in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return f"src-{h.hexdigest()[:12]}"


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def scenario_document(sc: Scenario) -> dict[str, Any]:
    """The scenario as the hash sees it: its JSON without ``description`` (text about the data:
    it lists overrides in the order they were given) and ``seed`` (a run's seed is its own)."""
    doc = sc.model_dump(mode="json")
    doc.pop("description", None)
    doc.pop("seed", None)
    return doc


def scenario_hash(sc: Scenario) -> str:
    """16 hex digits naming the scenario's content (:func:`scenario_document`)."""
    return hashlib.sha256(_canonical(scenario_document(sc))).hexdigest()[:16]


def run_id(scenario_digest: str, seed: int, engine: str, code: str | None = None) -> str:
    """16 hex digits naming a run: its scenario hash, seed, engine and code version."""
    key = {"scenario": scenario_digest, "seed": int(seed), "engine": engine, "code": code or code_version()}
    return hashlib.sha256(_canonical(key)).hexdigest()[:16]


_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def partition_value(name: str) -> str:
    """A name as a hive partition value: letters, digits, ``_`` and ``-`` kept, others ``_``."""
    return _SAFE.sub("_", name)


def _kpi_schema() -> Any:
    import pyarrow as pa

    fields = [pa.field("run_id", pa.string()), pa.field("scenario_hash", pa.string()), pa.field("seed", pa.int64()),
              pa.field("engine", pa.string()), pa.field("code_version", pa.string())]
    fields += [pa.field(k.name, pa.int64() if k.kind == "count" else pa.float64())
               for k in KPIS.values() if not k.per_warehouse]
    return pa.schema(fields)


def _number(v: Any, integer: bool) -> Any:
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if integer:
        return int(v) if math.isfinite(v) else None
    return float(v)


def _write_table(table: Any, path: Path) -> None:
    """Write a pyarrow table under a temporary name, then rename it into place."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    pq.write_table(table, tmp, compression="snappy")
    os.replace(tmp, path)


def _write_json(doc: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


class RunStore:
    """A store of runs under ``root`` (see the module docstring for the layout)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ paths
    def run_json(self, rid: str) -> Path:
        return self.root / "runs" / f"{rid}.json"

    def part(self, table: str, scenario: str, rid: str) -> Path:
        return self.root / table / f"scenario={partition_value(scenario)}" / f"part-{rid}.parquet"

    # ------------------------------------------------------------------ reading
    def has(self, rid: str, records: bool = False) -> bool:
        """Whether run ``rid`` is stored complete (with its records, if ``records``)."""
        p = self.run_json(rid)
        if not p.is_file():
            return False
        if not records:
            return True
        try:
            return bool(json.loads(p.read_text(encoding="utf-8")).get("records"))
        except (OSError, ValueError):
            return False

    def run_info(self, rid: str) -> dict[str, Any]:
        """The run's JSON (KPIs and provenance)."""
        return json.loads(self.run_json(rid).read_text(encoding="utf-8"))

    def kpi_rows(self, rids: Sequence[str], scenarios: Sequence[str] | None = None,
                 known: Mapping[str, Any] | None = None) -> Any:
        """A pyarrow table of the ``kpis`` rows of ``rids``, in that order (repeats allowed).

        ``scenarios`` (each run's scenario name) spares reading the runs' JSON; ``known`` maps
        run ids to rows already in hand (what :meth:`write_run` returned), read from no file."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _kpi_schema()
        rows: dict[str, Any] = dict(known or {})
        names = dict(zip(rids, scenarios)) if scenarios is not None else {}
        for rid in dict.fromkeys(rids):
            if rid not in rows:
                name = names.get(rid) or self.run_info(rid)["scenario"]
                rows[rid] = pq.ParquetFile(self.part("kpis", name, rid)).read().cast(schema)
        return pa.concat_tables([rows[r] for r in rids]) if rids else schema.empty_table()

    # ------------------------------------------------------------------ writing
    def write_run(self, rid: str, result: Any, scenario_digest: str, records: bool = False,
                  extra: Mapping[str, Any] | None = None) -> Any:
        """Store one finished run (a :class:`twin.results.runs.SimulationResult`): its KPI row,
        its KPIs with a value per key (one row per KPI and key), its records and time series
        when ``records``, the scenario, and last its JSON. Returns the KPI row (a pyarrow table)."""
        import pyarrow as pa

        from twin.results.runs import write_parquet

        name = result.scenario.name
        code = code_version()
        k = result.kpis
        schema = _kpi_schema()
        row: dict[str, list[Any]] = {"run_id": [rid], "scenario_hash": [scenario_digest], "seed": [int(result.seed)],
                                     "engine": [result.engine], "code_version": [code]}
        for f in schema:
            if f.name not in row:
                row[f.name] = [_number(k.get(f.name), pa.types.is_integer(f.type))]
        kpi_row = pa.Table.from_pydict(row, schema=schema)
        _write_table(kpi_row, self.part("kpis", name, rid))
        keyed: dict[str, list[Any]] = {"kpi": [], "key": [], "value": []}
        for kpi in KPIS.values():
            if kpi.per_warehouse:
                for key, v in (k.get(kpi.name) or {}).items():
                    keyed["kpi"].append(kpi.name)
                    keyed["key"].append(str(key))
                    keyed["value"].append(_number(v, False))
        if keyed["kpi"]:
            t = pa.table({"run_id": pa.array([rid] * len(keyed["kpi"]), pa.string()),
                          "kpi": pa.array(keyed["kpi"], pa.string()), "key": pa.array(keyed["key"], pa.string()),
                          "value": pa.array(keyed["value"], pa.float64())})
            _write_table(t, self.part("kpis_by_key", name, rid))
        if records:
            for table, frame in (("orders", result.orders), ("timeseries", result.timeseries)):
                df = frame.copy(deep=False)
                df.insert(0, "run_id", pd.Categorical([rid] * len(df)))
                path = self.part(table, name, rid)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
                write_parquet(df, tmp)
                os.replace(tmp, path)
        sc_path = self.root / "scenarios" / f"{scenario_digest}.json"
        if not sc_path.is_file():
            _write_json(json.loads(result.scenario.model_dump_json()), sc_path)
        doc = {"run_id": rid, "scenario": name, "scenario_hash": scenario_digest, "seed": int(result.seed),
               "engine": result.engine, "code_version": code, "records": bool(records),
               "wall_s": round(float(result.wall_s), 4), **dict(extra or {}), "kpis": _jsonable(k)}
        _write_json(doc, self.run_json(rid))
        return kpi_row

    def write_sweep(self, name: str, table: Any, spec_digest: str, spec_doc: Mapping[str, Any]) -> Path:
        """Write a sweep's result table as ``sweeps/sweep=<name>/part-<spec_digest>.parquet``
        (other parts of that sweep name, from earlier specs, are removed) and its ``_spec.json``
        (the leading ``_`` keeps Parquet readers of the folder from reading it)."""
        d = self.root / "sweeps" / f"sweep={partition_value(name)}"
        path = d / f"part-{spec_digest}.parquet"
        _write_table(table, path)
        for old in d.glob("part-*.parquet"):
            if old != path:
                old.unlink(missing_ok=True)
        _write_json(_jsonable(dict(spec_doc)), d / "_spec.json")
        return path


# ---------------------------------------------------------------------- DuckDB
def connect(root: str | Path) -> Any:
    """A DuckDB connection with one view per table found under ``root`` and ``t975(df)``."""
    import duckdb
    from scipy.stats import t as student_t

    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"--store {str(root)!r}: no such directory (run `twin sweep` to fill a store)")
    con = duckdb.connect()
    con.create_function("t975", lambda df: float(student_t.ppf(0.975, df)) if df is not None and df >= 1 else None,
                        ["BIGINT"], "DOUBLE", null_handling="special")
    for table in TABLES:
        files = sorted((root / table).glob("*/*.parquet"))
        if not files:
            continue
        glob = str(root / table / "*" / "*.parquet").replace("'", "''")
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true, "
                    "union_by_name = true)")
    return con


def views(root: str | Path) -> list[str]:
    """The tables of the store at ``root`` that hold at least one file."""
    return [t for t in TABLES if any((Path(root) / t).glob("*/*.parquet"))]


def query(root: str | Path, sql: str) -> pd.DataFrame:
    """Run DuckDB ``sql`` over the store at ``root`` (views: :data:`TABLES` present) as a frame.

    Raises:
        ValueError: the store does not exist, or DuckDB refuses the SQL (its message, and the
            views there are).
    """
    import duckdb

    con = connect(root)
    try:
        return con.execute(sql).df()
    except duckdb.Error as exc:
        have = ", ".join(views(root)) or "none (the store is empty)"
        raise ValueError(f"query: {str(exc).strip()}\n(views in {str(root)!r}: {have})") from None
    finally:
        con.close()


def format_frame(df: pd.DataFrame, max_rows: int = 50) -> str:
    """A query result as a terminal table (floats to 6 significant digits), at most ``max_rows``."""
    if df.empty:
        return "(no rows)" if len(df.columns) == 0 else " | ".join(map(str, df.columns)) + "\n(no rows)"
    shown = df.head(max_rows)
    text = shown.to_string(index=False, float_format=lambda v: f"{v:.6g}")
    if len(df) > max_rows:
        text += f"\n... {len(df) - max_rows:,} more rows ({len(df):,} in all)"
    return text
