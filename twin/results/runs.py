"""Running the twin: one simulation, replications in parallel processes, and saving results."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.policies import RoutingPolicy
from twin.results.kpis import KPIS, compute_kpis, summarize
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

    _writing: Any = field(default=None, init=False, repr=False, compare=False)

    def save(self, out_dir: str | Path, extra_kpis: Mapping[str, Any] | None = None,
             progress: bool = False, wait: bool = True) -> Path:
        """Write ``kpis.json``, ``orders.parquet``, ``timeseries.parquet``, ``scenario.json``.

        ``orders.parquet`` is written with pyarrow in row groups of about a million rows, straight
        from the table's arrays (no copy of the table): the name columns (region, warehouse,
        carrier, status, service level) as dictionary columns, which pandas reads back as the same
        categoricals. It appears under its name only when complete (written as
        ``orders.parquet.partial``, then renamed).

        Args:
            out_dir: the run directory (created if needed).
            extra_kpis: entries added to ``kpis.json``.
            progress: a bar on stderr while ``orders.parquet`` is written.
            wait: False returns once the small files are written, with ``orders.parquet`` still
                being written by a thread (pyarrow works without the GIL): meanwhile the
                caller can build the report from this result in memory.
                :meth:`wait_saved` waits for it and raises its error, and
                :func:`twin.report.html.write_report` ``(dir, result=this)`` calls it before it
                returns (``twin run`` does so).
        """
        self.wait_saved()  # one writer at a time
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        kpis = dict(self.kpis)
        if extra_kpis:
            kpis.update(extra_kpis)
        (out / "kpis.json").write_text(json.dumps(jsonable(kpis), indent=2, allow_nan=False) + "\n")
        (out / "scenario.json").write_text(self.scenario.model_dump_json(indent=2) + "\n")
        self.timeseries.to_parquet(out / "timeseries.parquet", index=False)
        bar = _bar(progress, "files: orders.parquet", len(self.orders), "rows")
        orders = self.orders

        def write() -> None:
            try:
                partial = out / "orders.parquet.partial"
                write_parquet(orders, partial, progress=bar.update)
                os.replace(partial, out / "orders.parquet")
            finally:
                bar.close()

        if wait:
            write()
        else:
            self._writing = _Writing(write)
        return out

    def wait_saved(self) -> None:
        """Wait until the ``orders.parquet`` of a :meth:`save` with ``wait=False`` is written;
        raise the error that writing it raised, if any. Nothing to wait for: returns at once."""
        w, self._writing = self._writing, None
        if w is not None:
            w.wait()


class _Writing:
    """A file being written by a thread; :meth:`wait` joins it and raises what it raised."""

    def __init__(self, target: Callable[[], None]) -> None:
        self.error: BaseException | None = None

        def run() -> None:
            try:
                target()
            except BaseException as e:  # noqa: BLE001 - handed to wait()
                self.error = e

        self.thread = threading.Thread(target=run, name="twin-save-orders")
        self.thread.start()

    def wait(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(enabled: bool, desc: str, total: int, unit: str = "step") -> Any:
    """A tqdm bar on stderr that disappears when closed, or one that does nothing."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "rows", leave=False, file=sys.stderr)


#: Rows per row group of ``orders.parquet``.
ROW_GROUP_ROWS = 1 << 20


def _arrow_column(s: pd.Series) -> Any:
    """One column as a pyarrow array without copying its values: numbers and flags as they are
    (NaN stored as null, as pandas writes them), a categorical as a dictionary array of its codes
    (-1: null) and its categories."""
    import pyarrow as pa

    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy()
        missing = codes < 0
        indices = pa.array(codes, mask=missing) if missing.any() else pa.array(codes)
        return pa.DictionaryArray.from_arrays(indices, pa.array(s.cat.categories.to_numpy(), from_pandas=True),
                                              ordered=s.cat.ordered)
    a = s.to_numpy()
    if a.dtype.kind == "f":
        nan = np.isnan(a)
        return pa.array(a, mask=nan) if nan.any() else pa.array(a)
    if a.dtype.kind in "biu":
        return pa.array(a)
    return pa.array(s, from_pandas=True)  # strings, objects: pyarrow's conversion


def _few_distinct(a: np.ndarray, sample: int = 1 << 16) -> bool:
    """Whether a float column looks dictionary-friendly: few distinct values among its first
    ``sample`` (costs per lane, scheduled departure times), unlike arrival or pick times."""
    head = a[:sample]
    return len(head) > 0 and len(np.unique(head)) <= len(head) // 10


def write_parquet(df: pd.DataFrame, path: str | Path, progress: Callable[[int], Any] | None = None,
                  row_group_rows: int = ROW_GROUP_ROWS) -> Path:
    """Write ``df`` (no index) to ``path`` with pyarrow, one row group of ``row_group_rows`` at a
    time, calling ``progress(rows)`` after each.

    Each column gets the encoding that suits it (what pandas' ``to_parquet`` would write, in
    about a third of the time and a smaller file): categoricals as dictionaries (snappy);
    integers delta-encoded (sorted ids take almost nothing); floats with few distinct values
    (costs, scheduled departures) as dictionaries (snappy), other floats plain and
    uncompressed (random times do not compress: snappy would only spend time); strings as
    pandas writes them. Statistics (min/max per row group) are kept for the integer columns:
    order ids prune row groups; names' statistics would cost more than they give."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [str(c) for c in df.columns]
    arrays, dictionary, encoding, compression, stats = [], [], {}, {}, []
    for name, c in zip(names, df.columns):
        s = df[c]
        arrays.append(_arrow_column(s))
        kind = "c" if isinstance(s.dtype, pd.CategoricalDtype) else s.dtype.kind
        if kind == "c":
            dictionary.append(name)
            compression[name] = "snappy"
        elif kind in "iu":
            encoding[name] = "DELTA_BINARY_PACKED"
            compression[name] = "none"
            stats.append(name)
        elif kind == "f":
            few = _few_distinct(s.to_numpy())
            if few:
                dictionary.append(name)
            compression[name] = "snappy" if few else "none"
        elif kind == "b":
            compression[name] = "none"  # bit-packed already
        else:
            dictionary.append(name)
            compression[name] = "snappy"
    table = pa.Table.from_arrays(arrays, names=names)
    del arrays
    n = table.num_rows
    with pq.ParquetWriter(path, table.schema, use_dictionary=dictionary or False, column_encoding=encoding or None,
                          compression=compression or "snappy", write_statistics=stats or False) as w:
        for i in range(0, max(n, 1), row_group_rows):
            w.write_table(table.slice(i, row_group_rows), row_group_size=row_group_rows)
            if progress is not None:
                progress(min(row_group_rows, n - i))
    return Path(path)


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
    before_tick: Callable[[Any], None] | None = None,
) -> SimulationResult:
    """Run one simulation.

    Args:
        scenario: a :class:`Scenario`, a built-in name or a YAML path.
        seed: seeds the run's random generator; None uses the scenario's ``seed``.
        engine: ``"kernel"`` (the Cython engine, the default) or ``"simpy"`` (the reference).
        overrides: what-if changes, ``{"warehouses.shanghai.pick.agvs": 150}``.
        routing: a routing policy object to use instead of the scenario's.
        progress: True for progress bars on stderr, one per phase (simulation in simulated
            hours, records, KPIs), or a callable ``(ticks_done, ticks_total)`` for the simulation.
        before_tick: called with the model before each tick (a controller turning the routing
            policy's knobs, e.g. a learned epoch policy: ``rl.controller``).

    Returns:
        A :class:`SimulationResult` with ``.kpis``, ``.orders``, ``.timeseries``.
    """
    sc = load_scenario(scenario, overrides)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    seed = sc.seed if seed is None else seed
    t0 = time.perf_counter()
    model = FulfillmentModel(sc, seed=seed, engine=engine, routing=routing)
    show = progress is True
    if show:
        bar = _bar(True, f"{sc.name} seed {seed}: simulation", model.n_ticks, "h")
        try:
            model.run(lambda done, total: bar.update(1), before_tick)
        finally:
            bar.close()
    else:
        model.run(progress or None, before_tick)
    bar = _bar(show, "records", 2)
    try:
        col = model.engine.finish(model.end_time)  # the engine's record storage is released here
        bar.update(1)
        orders = orders_frame(col, model.net, model.end_time)
        del col  # the frame holds the columns (no second reference, no copy)
        bar.update(1)
    finally:
        bar.close()
    ts = model.timeseries
    warehouses, horizon = model.net.warehouses, sc.horizon_h
    drawn = model.risk_events  # the risk events this run drew (scenario.risks), played as disruptions
    del model
    bar = _bar(show, "KPIs", len(KPIS) + 1)
    try:
        kpis = compute_kpis(orders, ts, warehouses, horizon, progress=lambda name: bar.update(1), scenario=sc,
                            risk_events=drawn)
    finally:
        bar.close()
    kpis = {"scenario": sc.name, "seed": int(seed), "engine": engine, **kpis}
    if sc.risks.events:
        kpis["risk_events"] = [e.as_dict() for e in drawn]
    return SimulationResult(sc, int(seed), engine, kpis, orders, ts, time.perf_counter() - t0)


@dataclass
class ReplicationResult:
    """Replications of one scenario on several seeds: ``kpis`` has the per-run KPIs under
    ``replications`` and ``{kpi: {mean, ci95}}`` under ``summary``."""

    results: list[SimulationResult]
    _saving: Any = field(default=None, init=False, repr=False, compare=False)

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

    def save(self, out_dir: str | Path, progress: bool = False, wait: bool = True) -> Path:
        """Write the first replication's records and time series (``orders.parquet``,
        ``timeseries.parquet``: the report's tables and plots say so), and all KPIs.
        ``progress`` and ``wait``: as :meth:`SimulationResult.save`."""
        self.wait_saved()
        first = self.results[0]
        self._saving = SimulationResult(first.scenario, first.seed, first.engine, self.kpis, first.orders,
                                        first.timeseries)
        return self._saving.save(out_dir, progress=progress, wait=wait)

    def wait_saved(self) -> None:
        """As :meth:`SimulationResult.wait_saved`."""
        saving, self._saving = self._saving, None
        if saving is not None:
            saving.wait_saved()


def _one(args: tuple) -> SimulationResult:
    sc, seed, engine = args
    return simulate(sc, seed=seed, engine=engine)


def _one_to_file(args: tuple) -> str:
    """A worker's replication: the result is pickled into the parent's temporary directory and
    only its path goes back through the pool's pipe. A worker stopped by Ctrl-C can then never
    leave half a result in the pipe (a path is one atomic write; half of a pickled 10M-row
    table would block the pool's reader thread, and the interpreter's exit with it)."""
    sc, seed, engine, tmp = args
    res = _one((sc, seed, engine))
    fd, path = tempfile.mkstemp(prefix=f"seed{seed}-", suffix=".pickle", dir=tmp)
    with os.fdopen(fd, "wb") as f:
        pickle.dump(res, f, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _load(path: str) -> SimulationResult:
    with open(path, "rb") as f:
        res = pickle.load(f)
    os.unlink(path)
    return res


def _ignore_sigint() -> None:
    """Worker initializer: Ctrl-C is the parent's to handle (it stops the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_method() -> str:
    """The start method of local worker pools (replications here, sweeps' local backend):
    ``fork`` on Linux when this process runs no thread but the main one, else ``spawn``.

    Importing Mesa sets multiprocessing's default to ``spawn``, and ``spawn`` (like
    ``forkserver``) runs the calling script again in every worker, so a script without an
    ``if __name__ == "__main__":`` guard would break the pool, and each worker pays ~1.5 s of
    imports before its first run. A forked worker starts from a copy of this process in
    milliseconds and runs only its task. Forking a process that runs other threads can deadlock
    a child (a lock held by a thread that does not exist there), hence the check: pools fork
    all their workers at once, before the pool's own threads and before a progress bar's
    monitor thread exist. (On macOS system libraries such as Accelerate are not fork-safe, so
    there scripts keep the guard.)
    """
    import threading

    return "fork" if sys.platform.startswith("linux") and threading.active_count() == 1 else "spawn"


def _stop(pool: ProcessPoolExecutor, futures: Sequence[Any]) -> None:
    """Cancel what has not started and end the workers now (they ignore SIGINT)."""
    for f in futures:
        f.cancel()
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        if p.is_alive():
            p.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.join(timeout=5)


def replicate(
    scenario: Scenario | str | Path,
    seeds: Sequence[int],
    engine: str = "kernel",
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
    processes: int | None = None,
    progress: bool = False,
) -> ReplicationResult:
    """Run one simulation per seed, in parallel local processes (``processes`` defaults to the
    number of CPUs, at most the number of seeds; 1 runs in this process).

    On Linux the workers are forked (see :func:`start_method`), so a script calling this needs
    no ``if __name__ == "__main__":`` guard. Ctrl-C stops every worker and raises one
    KeyboardInterrupt here; a replication that fails stops the others and raises its error."""
    sc = load_scenario(scenario, overrides)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    processes = min(processes or os.cpu_count() or 1, len(seeds))
    jobs = [(sc, s, engine) for s in seeds]
    if processes == 1:
        bar = _bar(progress, f"{sc.name} x{len(seeds)}", len(seeds), "run")
        try:
            results = []
            for j in jobs:
                results.append(_one(j))
                bar.update(1)
        finally:
            bar.close()
        return ReplicationResult(results)
    tmp = tempfile.mkdtemp(prefix="twin-replicate-")
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context(start_method()),
                               initializer=_ignore_sigint)
    futures: list[Any] = []
    bar: Any = _NoBar()
    try:
        futures = [pool.submit(_one_to_file, (*j, tmp)) for j in jobs]  # forks every worker now
        bar = _bar(progress, f"{sc.name} x{len(seeds)}", len(seeds), "run")
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            bar.update(len(done))
            for f in done:
                f.result()  # a failed replication raises here, and the others are stopped
        results = [_load(f.result()) for f in futures]
    except BaseException:  # Ctrl-C (KeyboardInterrupt) or a failed run: stop every worker, raise once
        bar.close()
        _stop(pool, futures)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bar.close()
    pool.shutdown(wait=True)
    return ReplicationResult(results)
