"""The main job (`twin run`): records written and read back as categoricals, the report from
memory equal to the report from the files, progress bars per phase, replications from an
unguarded script, and Ctrl-C during replications."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import twin
from twin.report.html import write_report
from twin.results.runs import write_parquet
from twin.scenario.loader import scale_scenario
from twin.sim.records import COLUMNS

NAME_COLUMNS = ["region", "warehouse", "carrier", "status", "service_level"]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def small_run() -> twin.SimulationResult:
    sc = scale_scenario(twin.load_scenario("warehouse_outage"), 0.05)
    return twin.simulate(sc, seed=3)


def test_orders_parquet_reads_back_categorical(small_run: twin.SimulationResult, tmp_path: Path) -> None:
    out = small_run.save(tmp_path / "run")
    back = pd.read_parquet(out / "orders.parquet")
    assert list(back.columns) == COLUMNS
    for c in NAME_COLUMNS:
        assert isinstance(back[c].dtype, pd.CategoricalDtype), c
        # the same categories in the same order (unused ones too: "lost", "backordered", ...)
        assert list(back[c].cat.categories) == list(small_run.orders[c].cat.categories), c
        assert back[c].astype(object).equals(small_run.orders[c].astype(object)), c
    pd.testing.assert_frame_equal(back, small_run.orders)
    # nothing turned into strings or objects on the way; missing times are nulls, as pandas writes them
    schema = pq.read_schema(out / "orders.parquet")
    for c in NAME_COLUMNS:
        assert pa.types.is_dictionary(schema.field(c).type), c
    table = pq.read_table(out / "orders.parquet")
    assert table.column("delivered_at").null_count == int(small_run.orders["delivered_at"].isna().sum())


def test_write_parquet_row_groups_keep_categories(small_run: twin.SimulationResult, tmp_path: Path) -> None:
    seen = []
    p = write_parquet(small_run.orders, tmp_path / "o.parquet", progress=seen.append, row_group_rows=1000)
    assert sum(seen) == len(small_run.orders) and len(seen) == -(-len(small_run.orders) // 1000)
    assert pq.ParquetFile(p).metadata.num_row_groups == len(seen)
    back = pd.read_parquet(p)
    pd.testing.assert_frame_equal(back, small_run.orders)
    # a frame with plain string and object columns (a user's own table) is written as pandas writes it
    df = pd.DataFrame({"a": ["x", None, "y"], "b": [1.0, np.nan, 3.0], "c": [True, False, True]})
    write_parquet(df, tmp_path / "d.parquet")
    assert pq.read_table(tmp_path / "d.parquet").column("b").null_count == 1  # NaN is null, as pandas writes it
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "d.parquet"), pd.read_parquet(
        _to_parquet(df, tmp_path / "e.parquet")))


def _to_parquet(df: pd.DataFrame, path: Path) -> Path:
    df.to_parquet(path, index=False)
    return path


def test_report_from_memory_equals_report_from_files(small_run: twin.SimulationResult, tmp_path: Path) -> None:
    out = small_run.save(tmp_path / "run")
    write_report(out, result=small_run)
    from_memory = (out / "report.html").read_text(encoding="utf-8")
    pngs = {f.name: f.read_bytes() for f in out.glob("*.png")}
    write_report(out)  # `twin report DIR`: everything from the files
    assert (out / "report.html").read_text(encoding="utf-8") == from_memory
    assert len(pngs) == 5
    assert "Shipments recorded: <b>" + f"{len(small_run.orders):,}" in from_memory


def test_progress_per_phase_on_stderr(small_run: twin.SimulationResult, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    sc = scale_scenario(twin.load_scenario("baseline"), 0.02)
    res = twin.simulate(sc, seed=1, progress=True)
    res.save(tmp_path / "run", progress=True)
    write_report(tmp_path / "run", result=res, progress=True)
    err = capsys.readouterr().err
    for phase in ("simulation", "records", "KPIs", "files", "report"):
        assert phase in err, phase
    res = twin.simulate(sc, seed=1)
    res.save(tmp_path / "quiet")
    write_report(tmp_path / "quiet", result=res)
    assert capsys.readouterr().err == ""


def test_replicated_report_from_memory_names_its_replication(tmp_path: Path) -> None:
    sc = scale_scenario(twin.load_scenario("baseline"), 0.02)
    rep = twin.replicate(sc, seeds=[4, 5], processes=1)
    out = rep.save(tmp_path / "reps")
    text = write_report(out, result=rep).read_text(encoding="utf-8")
    assert "Tables and plots: replication 1 of 2, seed 4." in text
    assert "KPI table: mean ± 95% CI over 2 replications" in text
    assert "<h2>Warehouses (replication 1 of 2, seed 4)</h2>" in text
    # the warehouse table's utilisation is seed 4's, like the rest of the table
    u4 = rep.results[0].kpis["utilization"]
    w = next(iter(u4))
    assert f"{100 * u4[w]:.1f}" in text.split("<h2>Warehouses")[1].split("<h2>Regions")[0]


# --------------------------------------------------------------------------- replications
README_SCRIPT = """\
import twin
from twin.scenario.loader import scale_scenario

sc = scale_scenario(twin.load_scenario("baseline"), 0.02)
reps = twin.replicate(sc, seeds=range(3), processes=2)   # no __main__ guard, as in the README
s = reps.kpis["summary"]["lead_time_p95_h"]
print(s["n"], repr(s["mean"]), [r["orders_created"] for r in reps.kpis["replications"]])
"""


def test_readme_replicate_snippet_runs_as_a_script(tmp_path: Path) -> None:
    script = tmp_path / "what_if.py"
    script.write_text(README_SCRIPT)
    p = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       check=False)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    n, mean, created = p.stdout.strip().split(" ", 2)
    sc = scale_scenario(twin.load_scenario("baseline"), 0.02)
    runs = [twin.simulate(sc, seed=s) for s in range(3)]
    assert int(n) == 3
    assert created == repr([r.kpis["orders_created"] for r in runs])
    assert float(mean) == pytest.approx(np.mean([r.kpis["lead_time_p95_h"] for r in runs]), rel=1e-12)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("to_group", [False, True], ids=["parent", "process-group"])
def test_ctrl_c_during_replications_stops_cleanly(tmp_path: Path, to_group: bool) -> None:
    """SIGINT to the parent (or, as a terminal's Ctrl-C does, to its whole process group) while
    replications run: exit 130 within seconds, one line saying so, no traceback, no workers left."""
    cmd = [str(Path(sys.executable).with_name("twin")), "run", "baseline", "-r", "8", "-j", "2", "--scale", "8",
           "--out", str(tmp_path / "out")]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                         env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    t0 = time.time()
    workers: list[int] = []
    while time.time() - t0 < 60 and p.poll() is None:  # started: the pool's forked workers exist
        workers = [c for c in _children(p.pid) if "twin run" in _cmdline(c)]
        if len(workers) == 2:
            break
        time.sleep(0.05)
    assert len(workers) == 2, "the replications did not start"
    time.sleep(0.5)
    (os.killpg if to_group else os.kill)(p.pid, signal.SIGINT)
    t1 = time.time()
    try:
        _, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGABRT)  # faulthandler: where it hung
        _, err = p.communicate()
        pytest.fail("twin run did not stop within 10 s of SIGINT:\n" + err.decode(errors="replace"))
    took = time.time() - t1
    text = err.decode(errors="replace")
    assert p.returncode == 130, text
    assert took < 5, took
    assert "Traceback" not in text and "Error" not in text, text
    lines = [ln for ln in text.split("\n") if ln.strip()]  # a progress bar redraws with \r: one line
    assert len(lines) <= 6, text
    assert lines[-1].split("\r")[-1] == "twin: interrupted", text  # after the cleared bar
    deadline = time.time() + 5
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() and "twin run" in _cmdline(w) for w in workers):
        time.sleep(0.05)
    assert not any(Path(f"/proc/{w}").exists() and "twin run" in _cmdline(w) for w in workers), "workers left"
    assert not (tmp_path / "out" / "kpis.json").exists()


def test_a_failed_replication_raises_its_error() -> None:
    from twin.results import runs

    sc = scale_scenario(twin.load_scenario("baseline"), 0.02)
    with pytest.raises(ValueError, match="engine"):
        runs.replicate(sc, seeds=[0, 1], engine="nope", processes=2)
