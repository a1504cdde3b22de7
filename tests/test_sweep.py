"""Sweeps: byte-identical result tables on every backend and worker count, runs computed once,
DuckDB over the store agreeing with pandas, designs and spec errors."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import twin
from twin.cli import main
from twin.studies.store import RunStore, query, run_id, scenario_hash
from twin.studies.sweep import (CodeChanged, SpecError, Task, design_points, execute, expand_overrides, load_spec,
                                point_scenario, sweep)

SPEC = {
    "name": "agv_small",
    "scenario": "erlang_c",
    "set": {"horizon_h": 30, "drain_h": 2},
    "factors": {"warehouses.*.pick.agvs": [8, 9], "demand.base_rate_per_h": [60, 68]},
    "seeds": [0, 1, 2],
}


@pytest.fixture(scope="session")
def ray_cluster():  # noqa: ANN201
    """One local Ray cluster for the test session (its temp dir short: unix socket paths)."""
    import ray

    tmp = tempfile.mkdtemp(prefix="tr-", dir="/tmp")
    ray.init(num_cpus=2, _temp_dir=tmp, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _files(store: Path) -> dict[str, bytes]:
    """Every Parquet file of the store by its path inside it."""
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*.parquet"))}


def test_result_tables_byte_identical_on_local_ray_and_any_worker_count(tmp_path: Path, ray_cluster) -> None:  # noqa: ANN001
    stores = {k: tmp_path / k for k in ("local1", "local2", "ray2")}
    r1 = sweep(SPEC, stores["local1"], backend="local", workers=1)
    r2 = sweep(SPEC, stores["local2"], backend="local", workers=2)
    r3 = sweep(SPEC, stores["ray2"], backend="ray", workers=2)
    assert r1.computed == r2.computed == r3.computed == 12
    files = [_files(s) for s in stores.values()]
    assert files[0] and files[0] == files[1] == files[2]  # every table, every run's part, byte for byte
    assert r1.path.read_bytes() == r2.path.read_bytes() == r3.path.read_bytes()
    # rows sorted by point, then seed; the factorial design in itertools.product order
    t = r1.table
    assert list(zip(t["point"], t["seed"])) == [(p, s) for p in range(4) for s in (0, 1, 2)]
    assert list(t["warehouses.*.pick.agvs"]) == [8] * 6 + [9] * 6
    assert list(t["demand.base_rate_per_h"]) == ([60] * 3 + [68] * 3) * 2


def test_a_stored_run_is_what_simulate_gives(tmp_path: Path) -> None:
    res = sweep(SPEC, tmp_path, workers=1)
    row = res.table.iloc[7]  # point 2 (9 AGVs, 60 orders/h), seed 1
    assert (row["point"], row["seed"]) == (2, 1)
    sc = twin.load_scenario("erlang_c", {"horizon_h": 30, "drain_h": 2, "warehouses.shanghai.pick.agvs": 9,
                                         "demand.base_rate_per_h": 60})
    k = twin.simulate(sc, seed=1).kpis
    for name in ("orders_created", "orders_delivered", "on_time_rate", "lead_time_mean_h", "pick_wait_mean_h",
                 "cost_per_order", "backlog_max"):
        assert row[name] == k[name], name
    assert row["run_id"] == run_id(scenario_hash(sc), 1, "kernel")
    info = RunStore(tmp_path).run_info(row["run_id"])
    assert info["kpis"]["orders_created"] == k["orders_created"] and info["seed"] == 1
    by_key = pd.read_parquet(tmp_path / "kpis_by_key")
    util = by_key[(by_key["run_id"] == row["run_id"]) & (by_key["kpi"] == "utilization")]
    assert list(util["key"]) == ["shanghai"] and util["value"].item() == k["utilization"]["shanghai"]


def test_a_repeated_sweep_recomputes_zero_runs(tmp_path: Path) -> None:
    first = sweep(SPEC, tmp_path, workers=2)
    assert (first.computed, first.cached) == (12, 0)
    parts = {p: p.stat().st_mtime_ns for p in (tmp_path / "kpis").rglob("*.parquet")}
    table_bytes = first.path.read_bytes()
    again = sweep(SPEC, tmp_path, workers=2)
    assert (again.computed, again.cached) == (0, 12)
    assert again.path == first.path and again.path.read_bytes() == table_bytes  # rows read back: the same bytes
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "kpis").rglob("*.parquet")} == parts  # not rewritten
    pd.testing.assert_frame_equal(first.table, again.table)
    # one more seed: only its 4 runs are new; a spec naming the same runs differently reuses them all
    more = sweep({**SPEC, "seeds": [0, 1, 2, 3]}, tmp_path, workers=1)
    assert (more.computed, more.cached) == (4, 12)
    renamed = sweep({**SPEC, "name": "other", "seeds": [2, 0]}, tmp_path, workers=1)
    assert (renamed.computed, renamed.cached) == (0, 8)


def test_run_ids_follow_content_not_text() -> None:
    sc = twin.load_scenario("erlang_c")
    h = scenario_hash(sc)
    assert scenario_hash(twin.load_scenario(sc, {"description": "other words", "seed": 7})) == h
    assert scenario_hash(twin.load_scenario(sc, {"warehouses.shanghai.pick.agvs": 9})) != h
    ids = {run_id(h, 0, "kernel"), run_id(h, 1, "kernel"), run_id(h, 0, "simpy"), run_id(h, 0, "kernel", "src-x")}
    assert len(ids) == 4


def test_a_worker_with_other_sources_refuses_the_run(tmp_path: Path) -> None:
    """A run is stored only under the code version that computed it: a worker whose sources
    changed since the caller named the runs refuses (and stores nothing)."""
    sc = twin.load_scenario("erlang_c", {"horizon_h": 5})
    h = scenario_hash(sc)
    with pytest.raises(CodeChanged, match="sources changed during the study"):
        execute(Task(run_id(h, 0, "kernel", "src-000000000000"), sc, h, 0, "kernel", str(tmp_path),
                     code="src-000000000000"))
    assert not any(tmp_path.rglob("*.json"))


def test_query_gives_the_numbers_pandas_gives(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sweep(SPEC, tmp_path, workers=1)
    sql = """SELECT "warehouses.*.pick.agvs" AS agvs, count(*) AS n, avg(on_time_rate) AS mean,
                    t975(count(*) - 1) * stddev_samp(on_time_rate) / sqrt(count(*)) AS ci95,
                    avg(pick_wait_mean_h) AS wait
             FROM sweeps WHERE sweep = 'agv_small' GROUP BY agvs ORDER BY agvs"""
    got = query(tmp_path, sql)
    table = pd.read_parquet(tmp_path / "sweeps")
    assert set(table["sweep"].astype(str)) == {"agv_small"}  # the hive partition column
    for agvs, g in table.groupby("warehouses.*.pick.agvs"):
        row = got[got["agvs"] == agvs].iloc[0]
        x = g["on_time_rate"].to_numpy()
        assert row["n"] == len(x) == 6
        assert row["mean"] == pytest.approx(x.mean(), rel=1e-12)
        ci = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
        assert row["ci95"] == pytest.approx(ci, rel=1e-9)
        assert row["wait"] == pytest.approx(g["pick_wait_mean_h"].mean(), rel=1e-12)
    assert got["wait"].iloc[0] > got["wait"].iloc[1]  # 9 AGVs wait less than 8
    # the runs' own table, per scenario content, against pandas on its files
    per = query(tmp_path, "SELECT scenario, scenario_hash, sum(orders_created) AS orders, max(lead_time_p95_h) AS p95 "
                          "FROM kpis GROUP BY ALL ORDER BY scenario_hash")
    kpis = pd.read_parquet(tmp_path / "kpis")
    assert len(kpis) == 12 and set(kpis["scenario"].astype(str)) == {"erlang_c"}
    want = kpis.groupby("scenario_hash").agg(orders=("orders_created", "sum"), p95=("lead_time_p95_h", "max"))
    assert list(per["scenario_hash"]) == list(want.index) and len(per) == 4
    assert list(per["orders"]) == list(want["orders"])
    assert list(per["p95"]) == list(want["p95"])
    # the CLI prints the same table
    assert main(["query", sql, "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["agvs", "n", "mean", "ci95", "wait"]
    assert out[1].split()[:2] == ["8", "6"] and float(out[1].split()[2]) == pytest.approx(got["mean"].iloc[0], rel=1e-5)


def test_records_are_kept_on_request_and_queried(tmp_path: Path) -> None:
    spec = {**SPEC, "factors": {"warehouses.*.pick.agvs": [8]}, "seeds": [0, 1]}
    sweep(spec, tmp_path, workers=1)
    assert not (tmp_path / "orders").exists()
    res = sweep({**spec, "records": True}, tmp_path, workers=1)
    assert res.computed == 2  # stored without records: run again to keep them
    n = query(tmp_path, "SELECT run_id, count(DISTINCT order_id) AS n FROM orders GROUP BY run_id ORDER BY run_id")
    created = res.table.set_index("run_id")["orders_created"]
    assert dict(zip(n["run_id"], n["n"])) == {r: created[r] for r in n["run_id"]} and len(n) == 2
    assert sweep({**spec, "records": True}, tmp_path, workers=1).computed == 0


def test_latin_hypercube_is_stratified_and_seeded() -> None:
    spec = load_spec({**SPEC, "design": "lhs", "samples": 8, "design_seed": 3,
                      "factors": {"demand.base_rate_per_h": {"low": 40, "high": 60},
                                  "warehouses.*.pick.agvs": {"low": 8, "high": 15, "integer": True}}})
    pts = design_points(spec)
    assert pts == design_points(spec) and len(pts) == 8
    rate = np.array([p["demand.base_rate_per_h"] for p in pts])
    assert sorted(np.floor((rate - 40) / 20 * 8).astype(int)) == list(range(8))  # one point per stratum
    assert sorted(p["warehouses.*.pick.agvs"] for p in pts) == list(range(8, 16))  # 8 strata of one integer each
    other = design_points(load_spec({**spec.to_dict(), "design_seed": 4}))
    assert other != pts


def test_star_sets_every_named_element() -> None:
    sc = twin.load_scenario("singles_day")
    ov = expand_overrides(sc.model_dump(mode="json"), {"warehouses.*.pick.agvs": 7})
    assert list(ov) == [f"warehouses.{w.name}.pick.agvs" for w in sc.warehouses]
    out = point_scenario(sc, {"warehouses.*.pick.agvs": 7})
    assert {w.pick.agvs for w in out.warehouses} == {7}
    with pytest.raises(SpecError, match=r"'\*' must stand for the elements of a list of named items"):
        expand_overrides(sc.model_dump(mode="json"), {"demand.*": 1})


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": "red"}, "unknown field 'colour'; allowed: name, scenario"),
    ({"seeds": [0, 0]}, "seeds: 0 is listed twice"),
    ({"seeds": [-1]}, "seeds: every seed must be an int >= 0, got -1"),
    ({"design": "lhs"}, "samples: an lhs design needs an int number of points"),
    ({"design": "sobol"}, "design: must be factorial or lhs, got 'sobol'"),
    ({"set": {"demand.base_rate_per_h": 10}}, "factors.demand.base_rate_per_h: also fixed under set"),
    ({"factors": {"warehouses.*.pick.agvs": []}}, "factors.warehouses.*.pick.agvs: needs at least one level"),
    ({"name": "a b"}, "name: must be 1-64 letters, digits"),
    ({"engine": "warp"}, "engine: must be one of"),
])
def test_bad_specs_are_refused_by_name(change: dict, message: str) -> None:
    with pytest.raises(SpecError, match=None) as e:
        load_spec({**SPEC, **change})
    assert message in str(e.value)


def test_cli_sweep_and_its_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("scenario: erlang_c\nset: {horizon_h: 20, drain_h: 2}\nfactors:\n  warehouses.*.pick.agvs: [8, 10]\n"
                    "seeds: {start: 5, count: 2}\n")
    store = tmp_path / "store"
    assert main(["sweep", str(spec), "--store", str(store), "-j", "1", "-q", "--kpi", "pick_wait_mean_h"]) == 0
    out = capsys.readouterr().out
    assert "sweep s: 4 rows (2 points x 2 seeds), 4 distinct runs: 4 computed, 0 from the store" in out
    assert "pick_wait_mean_h ci95" in out
    assert (store / "sweeps" / "sweep=s").is_dir()
    assert main(["sweep", str(spec), "--store", str(store), "-j", "1", "-q"]) == 0
    assert "0 computed, 4 from the store" in capsys.readouterr().out
    # a point that breaks the scenario names the point and the field
    spec.write_text("scenario: erlang_c\nfactors:\n  warehouses.*.pick.agvs: [8, -1]\nseeds: [0]\n")
    assert main(["sweep", str(spec), "--store", str(store), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("twin: error: invalid sweep spec") and "point 1 (warehouses.*.pick.agvs=-1)" in err
    assert "Traceback" not in err
    assert main(["sweep", str(tmp_path / "none.yaml"), "--store", str(store)]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["sweep", str(spec), "--store", str(store), "--address", "auto"]) == 2
    assert "--address is for --backend ray" in capsys.readouterr().err
    assert main(["query", "SELECT * FROM nothing", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "nothing" in err and "views in" in err and "kpis" in err


def test_workers_are_forked_only_where_no_other_thread_runs() -> None:
    import sys
    import threading

    from twin.results.runs import start_method

    others = threading.active_count() > 1  # pytest plugins or a Ray client may run threads
    assert start_method() == ("spawn" if others or not sys.platform.startswith("linux") else "fork")
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert start_method() == "spawn"  # forking beside a thread could deadlock a child
    finally:
        stop.set()
        t.join()
