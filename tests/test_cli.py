"""The ``twin`` command: runs write what they promise, replications summarise honestly, and a
user's mistake gets a clear message, a non-zero exit and no traceback."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from tests.test_scenarios import MALFORMED, _baseline_doc, _set
from twin.cli import main
from twin.sim.records import COLUMNS

SMALL = ["--scale", "0.02", "--set", "drain_h=24", "-q"]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twin.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_run_writes_kpis_records_timeseries_and_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sd"
    assert main(["run", "singles_day", "--seed", "3", "--out", str(out), *SMALL]) == 0
    printed = capsys.readouterr().out
    for f in ("kpis.json", "orders.parquet", "timeseries.parquet", "scenario.json", "report.html",
              "network_map.png", "lead_time.png", "kpis_over_time.png", "backlog.png", "utilization.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    k = json.loads((out / "kpis.json").read_text())
    required = ["orders_created", "orders_delivered", "orders_in_flight", "orders_lost", "on_time_rate",
                "lead_time_mean_h", "lead_time_p95_h", "cost_per_order", "co2_per_order_kg", "split_rate",
                "backlog_max", "cold_chain_violations", "service_gap", "utilization"]
    for name in required:
        assert name in k, name
        assert name in printed  # the summary table shows every KPI
    assert k["seed"] == 3 and k["scenario"] == "singles_day"
    orders = pd.read_parquet(out / "orders.parquet")
    assert list(orders.columns) == COLUMNS
    assert orders["order_id"].nunique() == k["orders_created"]
    assert set(k["utilization"]) == set(orders["warehouse"].dropna().astype(str)) | set(k["utilization"])
    ts = pd.read_parquet(out / "timeseries.parquet")
    assert ts["orders_created"].iloc[-1] == k["orders_created"]
    report = (out / "report.html").read_text()
    assert "singles_day" in report
    # the description the run records says what --set and --scale changed since it was written
    assert "(with overrides: drain_h=24; scale x0.02)" in report
    assert json.loads((out / "scenario.json").read_text())["description"].endswith(
        "(with overrides: drain_h=24; scale x0.02)")


def test_replications_summary_is_mean_and_t_interval(tmp_path: Path) -> None:
    out = tmp_path / "reps"
    assert main(["run", "baseline", "--replications", "3", "-j", "2", "--out", str(out), *SMALL]) == 0
    k = json.loads((out / "kpis.json").read_text())
    reps = k["replications"]
    assert [r["seed"] for r in reps] == [0, 1, 2]
    assert len({r["orders_created"] for r in reps}) == 3  # different seeds, different runs
    for name in ("on_time_rate", "lead_time_mean_h", "orders_created"):
        x = np.array([r[name] for r in reps], dtype=float)
        s = k["summary"][name]
        assert s["mean"] == pytest.approx(x.mean(), rel=1e-12)
        assert s["ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * x.std(ddof=1) / math.sqrt(3), rel=1e-9)
        assert k[name] == pytest.approx(x.mean(), rel=1e-12)
    # a replication run in a worker process equals the same seed run alone
    import twin
    from twin.scenario.loader import scale_scenario

    sc = scale_scenario(twin.load_scenario("baseline", {"drain_h": 24}), 0.02)
    alone = twin.simulate(sc, seed=1).kpis
    assert reps[1]["orders_created"] == alone["orders_created"]
    assert reps[1]["lead_time_mean_h"] == pytest.approx(alone["lead_time_mean_h"], rel=1e-12)


def test_set_override_changes_the_run(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", "baseline", "--out", str(a), "--no-report", *SMALL]) == 0
    assert main(["run", "baseline", "--out", str(b), "--no-report", *SMALL,
                 "--set", "policy.routing.name=cheapest"]) == 0
    ka, kb = (json.loads((d / "kpis.json").read_text()) for d in (a, b))
    assert kb["cost_per_order"] < ka["cost_per_order"]
    sa = json.loads((b / "scenario.json").read_text())
    assert sa["policy"]["routing"]["name"] == "cheapest"


def test_compare_prints_differences_and_writes_plot(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b = tmp_path / "base", tmp_path / "cheap"
    main(["run", "baseline", "--out", str(a), "--no-report", *SMALL])
    main(["run", "baseline", "--out", str(b), "--no-report", *SMALL, "--set", "policy.routing.name=cheapest"])
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out
    assert "cost_per_order" in printed and "Δ" in printed
    df = pd.read_csv(tmp_path / "cmp" / "compare.csv", index_col=0)
    ka, kb = (json.loads((d / "kpis.json").read_text()) for d in (a, b))
    delta = [c for c in df.columns if c.startswith("Δ")][0]
    assert df.loc["cost_per_order", delta] == pytest.approx(kb["cost_per_order"] - ka["cost_per_order"])
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 0


def test_scenarios_lists_every_builtin_with_a_description(capsys: pytest.CaptureFixture) -> None:
    import scenarios

    assert main(["scenarios"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == scenarios.builtin_names()
    assert all(len(ln.split(None, 1)) == 2 for ln in lines)


@pytest.mark.parametrize("keys,value,path,says", MALFORMED[:6])
def test_malformed_file_exits_nonzero_without_traceback(tmp_path: Path, keys: list, value: object, path: str,
                                                        says: list[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_set(_baseline_doc(), keys, value), sort_keys=False))
    r = _cli("run", str(bad), "--out", str(tmp_path / "out"), "-q")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert f"{path}:" in r.stderr
    for s in says:
        assert s in r.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.parametrize("args,says", [
    (["run", "no_such_scenario"], ["unknown scenario 'no_such_scenario'", "singles_day"]),
    (["run", "missing.yaml"], ["file not found", "missing.yaml"]),
    (["run", "baseline", "--set", "warehouses.suzhou.pick.agvs=3"], ["no element 'suzhou'", "shanghai"]),
    (["run", "baseline", "--set", "warehouses.shanghai.pick.agvs=-1"], ["warehouses[0].pick.agvs", "-1"]),
    (["run", "baseline", "--set", "horizon_h"], ["expected KEY=VALUE"]),
    (["run", "baseline", "--replications", "0"], ["--replications must be >= 1, got 0"]),
    (["run", "baseline", "--scale", "-2"], ["twin: error: --scale must be a finite number > 0, got -2\n"]),
    (["run", "baseline", "--scale", "0"], ["twin: error: --scale must be a finite number > 0, got 0\n"]),
    (["run", "baseline", "--scale", "inf"], ["twin: error: --scale must be a finite number > 0, got inf\n"]),
    (["run", "baseline", "--scale", "nan"], ["twin: error: --scale must be a finite number > 0, got nan\n"]),
    (["evaluate", "cheapest", "--scale", "inf"], ["twin: error: --scale must be a finite number > 0, got inf\n"]),
    (["run", "baseline", "--out", "afile"], ["twin: error: --out 'afile': a file of that name exists; give a directory"]),
    (["run", "baseline", "--out", "afile/sub"], ["twin: error: --out 'afile/sub': 'afile' is a file, not a directory"]),
    (["compare", "a", "b", "--out", "afile/sub"], ["twin: error: --out 'afile/sub': 'afile' is a file, not a directory"]),
    (["evaluate", "cheapest", "--out", "afile/sub"],
     ["twin: error: --out 'afile/sub': 'afile' is a file, not a directory"]),
    (["train", "--run-dir", "afile/sub"], ["twin: error: --run-dir 'afile/sub': 'afile' is a file, not a directory"]),
    (["train", "--run-dir", "afile"], ["twin: error: --run-dir 'afile': a file of that name exists; give a directory"]),
    (["compare", "only_one_dir"], ["at least two"]),
    (["report", "not_a_run_dir"], ["no kpis.json"]),
])
def test_user_mistakes_get_a_message_not_a_traceback(tmp_path: Path, args: list[str], says: list[str]) -> None:
    (tmp_path / "afile").write_text("not a directory\n")
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    for s in says:
        assert s in r.stderr, r.stderr
    assert r.stdout == ""  # refused before any work: no result table
    assert (tmp_path / "afile").read_text() == "not a directory\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing written


# ----------------------------------------------------------------------------- output directories
SMALL_SIMPY = [*SMALL, "--engine", "simpy", "--no-report"]


def _err_line(capsys: pytest.CaptureFixture) -> str:
    return next(ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("twin: error:"))


def test_an_unwritable_out_is_refused_before_the_simulation(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "results.csv"
    blocker.write_text("a user's file\n")
    for out, says in [(blocker, f"--out {str(blocker)!r}: a file of that name exists; give a directory"),
                      (blocker / "run", f"--out {str(blocker / 'run')!r}: {str(blocker)!r} is a file, not a directory")]:
        assert main(["run", "singles_day", "--out", str(out), "-q"]) == 2  # full size: would take minutes
        captured = capsys.readouterr()
        assert captured.err.splitlines()[-1] == f"twin: error: {says}"
        assert captured.out == ""
    assert blocker.read_text() == "a user's file\n"


def test_default_out_dir_names_the_overrides_and_is_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", "baseline", *SMALL_SIMPY]) == 0
    base = [d.name for d in (tmp_path / "runs").iterdir()]
    assert len(base) == 1 and re.fullmatch(r"baseline-seed0-[0-9a-f]{8}", base[0]), base
    assert f"twin: output directory {Path('runs') / base[0]}/\n" in capsys.readouterr().err
    # a what-if gets its own directory: it does not overwrite the run it is compared with
    assert main(["run", "baseline", *SMALL_SIMPY, "--set", "policy.routing.name=cheapest"]) == 0
    dirs = sorted(d.name for d in (tmp_path / "runs").iterdir())
    assert len(dirs) == 2 and base[0] in dirs
    (what_if,) = set(dirs) - set(base)
    assert re.fullmatch(r"baseline-seed0-[0-9a-f]{8}", what_if)
    assert json.loads((tmp_path / "runs" / what_if / "scenario.json").read_text())["policy"]["routing"]["name"] \
        == "cheapest"
    assert json.loads((tmp_path / "runs" / base[0] / "scenario.json").read_text())["policy"]["routing"]["name"] \
        == "nearest_with_stock"
    # the same changes in another order name the same directory (and rerunning it may overwrite it)
    again = ["--set", "policy.routing.name=cheapest", "-q", "--engine", "simpy", "--no-report", "--set", "drain_h=24",
             "--scale", "0.02"]
    assert main(["run", "baseline", *again]) == 0
    assert sorted(d.name for d in (tmp_path / "runs").iterdir()) == dirs


def test_default_out_dir_without_overrides_is_scenario_and_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "runs" / "erlang_c-seed0"
    old.mkdir(parents=True)
    (old / "kpis.json").write_text(json.dumps({"scenario": "erlang_c", "seed": 0, "engine": "simpy"}))
    # the default directory holds an erlang_c run on another engine: refused, before running
    assert main(["run", "erlang_c", "--engine", "kernel", "-q"]) == 2
    assert _err_line(capsys) == (
        f"twin: error: --out {str(Path('runs') / 'erlang_c-seed0')!r} holds a different run (engine simpy, this run "
        "kernel); choose another --out, or add --force to overwrite it")
    assert json.loads((old / "kpis.json").read_text())["engine"] == "simpy"


def test_a_different_run_is_not_overwritten_without_force(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["run", "baseline", "--out", str(out), *SMALL_SIMPY]) == 0
    first = json.loads((out / "kpis.json").read_text())
    refusals = [
        (["--seed", "1"], "seed 0, this run 1"),
        (["--replications", "2"], "replications 1, this run 2"),
        (["--engine", "kernel"], "engine simpy, this run kernel"),
        (["--set", "policy.routing.name=cheapest"],
         'scenario differs at policy.routing.name: "nearest_with_stock" -> "cheapest"'),
    ]
    for extra, why in refusals:
        assert main(["run", "baseline", "--out", str(out), *SMALL_SIMPY, *extra]) == 2, extra
        assert _err_line(capsys) == (f"twin: error: --out {str(out)!r} holds a different run ({why}); "
                                     "choose another --out, or add --force to overwrite it")
        assert json.loads((out / "kpis.json").read_text()) == first  # untouched
    assert main(["run", "warehouse_outage", "--out", str(out), *SMALL_SIMPY]) == 2
    assert "(scenario baseline, this run warehouse_outage)" in _err_line(capsys)
    # the identical run may overwrite; --force overwrites a different one
    assert main(["run", "baseline", "--out", str(out), *SMALL_SIMPY]) == 0
    assert main(["run", "baseline", "--out", str(out), *SMALL_SIMPY, "--seed", "1", "--force"]) == 0
    assert json.loads((out / "kpis.json").read_text())["seed"] == 1


def test_a_run_without_report_removes_the_stale_report(tmp_path: Path) -> None:
    from twin.report.html import PLOT_FILES

    out = tmp_path / "run"
    assert main(["run", "baseline", "--out", str(out), *SMALL_SIMPY]) == 0
    stale = ["report.html", *(f for f, _ in PLOT_FILES)]
    for name in stale:  # an earlier run's report, as `twin run` without --no-report leaves it
        (out / name).write_text("old")
    (out / "notes.txt").write_text("the user's")
    assert main(["run", "baseline", "--out", str(out), *SMALL_SIMPY]) == 0
    assert [n for n in stale if (out / n).exists()] == []
    assert (out / "notes.txt").read_text() == "the user's"
    assert {"kpis.json", "orders.parquet", "timeseries.parquet", "scenario.json"} <= {p.name for p in out.iterdir()}


def test_first_line_and_scenario_json_name_the_overrides(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "outage"
    assert main(["run", "warehouse_outage", "--out", str(out), *SMALL_SIMPY, "--set", "disruptions.0.end_h=30"]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    note = "(with overrides: drain_h=24, disruptions.0.end_h=30; scale x0.02)"
    assert first.startswith("twin: warehouse_outage: Singles' Day with the Langfang warehouse") and first.endswith(note)
    sc = json.loads((out / "scenario.json").read_text())
    assert sc["description"].endswith(note) and sc["disruptions"][0]["end_h"] == 30
