"""Tests of twin.report.html, twin.report.plots and twin.results.compare on a small hand-made run directory."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from twin.report import plots, write_compare
from twin.report.html import KPI_INFO, PLOT_FILES, region_summary, warehouse_summary, write_report
from twin.results.compare import compare_runs, format_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAN = float("nan")

SCENARIO = {
    "name": "tiny_test_net",
    "description": "Two warehouses, three regions <b>not bold</b> & co.",
    "horizon_h": 6.0,
    "warehouses": [
        {"name": "WH_North", "lat": 39.9, "lon": 116.4, "cold_storage": False},
        {"name": "WH_South", "lat": 23.13, "lon": 113.26, "cold_storage": True},
    ],
    "regions": [
        {"name": "Beijing", "lat": 39.9, "lon": 116.4, "weight": 2.0},
        {"name": "Guangdong", "lat": 23.13, "lon": 113.26, "weight": 3.0},
        {"name": "Sichuan", "lat": 30.67, "lon": 104.06, "weight": 1.0},
    ],
}


def _kpis(**over: object) -> dict:
    k = {
        "scenario": "tiny_test_net",
        "seed": 7,
        "engine": "synthetic",
        "orders_created": 4,
        "orders_delivered": 2,
        "orders_in_flight": 1,
        "orders_lost": 1,
        "on_time_rate": 0.5,
        "lead_time_mean_h": 4.5,
        "lead_time_p95_h": 5.85,
        "cost_per_order": 12.25,
        "co2_per_order_kg": 0.4,
        "split_rate": 0.25,
        "backlog_max": 3,
        "cold_chain_violations": 0,
        "service_gap": 0.5,
        "utilization": {"WH_North": 0.6, "WH_South": 0.3},
    }
    k.update(over)
    return k


def _orders() -> pd.DataFrame:
    # order 1: Beijing, one shipment from WH_North, on time (created 0, delivered 3, promised 10) -> lead 3
    # order 2: Guangdong, split: WH_North delivered 5 (promised 4 -> late), WH_South delivered 4 -> lead 5-1=4?
    #          created at 1 -> lead = max(5, 4) - 1 = 4; order late (5 > 4)
    # order 3: Sichuan, lost (no warehouse)
    # order 4: Sichuan, WH_South, in transit
    rows = [
        # order, ship, region, wh, status, cold, created, delivered, promised, cost
        (1, 11, "Beijing", "WH_North", "delivered", False, 0.0, 3.0, 10.0, 10.0),
        (2, 21, "Guangdong", "WH_North", "delivered", False, 1.0, 5.0, 4.0, 12.0),
        (2, 22, "Guangdong", "WH_South", "delivered", True, 1.0, 4.0, 4.0, 15.0),
        (3, 31, "Sichuan", None, "lost", False, 2.0, NAN, 50.0, 0.0),
        (4, 41, "Sichuan", "WH_South", "in_transit", False, 2.5, NAN, 50.0, 12.0),
    ]
    df = pd.DataFrame(rows, columns=["order_id", "shipment_id", "region", "warehouse", "status", "cold_chain",
                                     "created_at", "delivered_at", "promised_at", "cost"])
    df["order_id"] = df["order_id"].astype("int64")
    df["shipment_id"] = df["shipment_id"].astype("int64")
    df["service_level"] = "standard"
    df["lines"] = 1
    for c in ("routed_at", "pick_start", "pick_end", "shipped_at"):
        df[c] = df["created_at"] + 0.5
    df["co2_kg"] = 0.4
    df["cold_violation"] = False
    return df


def _timeseries() -> pd.DataFrame:
    t = np.arange(6, dtype=float)
    return pd.DataFrame({
        "time_h": t,
        "orders_created": [1, 2, 4, 4, 4, 4],
        "orders_delivered": [0, 0, 0, 1, 1, 2],
        "orders_lost": [0, 0, 1, 1, 1, 1],
        "orders_in_flight": [1, 2, 3, 2, 2, 1],
        "on_time_rate": [NAN, NAN, NAN, 1.0, 1.0, 0.5],
        "backlog": [1, 2, 3, 1, 0, 0],
        "backlog[WH_North]": [1, 2, 2, 1, 0, 0],  # mean 1.0, max 2
        "backlog[WH_South]": [0, 0, 1, 0, 0, 0],
        "utilization[WH_North]": [0.5, 1.0, 1.0, 0.5, 0.3, 0.0],
        "utilization[WH_South]": [0.0, 0.0, 0.5, 0.5, 0.2, 0.0],
        "servers[WH_North]": [2, 2, 2, 1, 2, 2],
        "servers[WH_South]": [1, 1, 1, 1, 1, 1],
        "stock[WH_North]": [100, 99, 97, 97, 97, 97],
        "stock[WH_South]": [50, 50, 49, 48, 48, 48],
    })


def _make_run(d: Path, kpis: dict | None = None, orders: pd.DataFrame | None = None,
              ts: pd.DataFrame | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "kpis.json").write_text(json.dumps(kpis if kpis is not None else _kpis()), encoding="utf-8")
    (d / "scenario.json").write_text(json.dumps(SCENARIO), encoding="utf-8")
    (orders if orders is not None else _orders()).to_parquet(d / "orders.parquet")
    (ts if ts is not None else _timeseries()).to_parquet(d / "timeseries.parquet")
    return d


def _assert_png(p: Path) -> None:
    assert p.is_file(), p
    data = p.read_bytes()
    assert data[:8] == PNG_MAGIC, p
    assert len(data) > 1000, p


# --------------------------------------------------------------------------- report
def test_write_report_html_and_pngs(tmp_path: Path) -> None:
    run = _make_run(tmp_path / "base")
    out = write_report(run)
    assert out == run / "report.html"
    text = out.read_text(encoding="utf-8")
    assert "tiny_test_net" in text
    for key in KPI_INFO:
        assert key in text, key
    # description is escaped, not interpreted
    assert "&lt;b&gt;not bold&lt;/b&gt; &amp; co." in text
    assert "<b>not bold</b>" not in text
    for fname, _ in PLOT_FILES:
        _assert_png(run / fname)
        assert f'src="{fname}"' in text
    # values rendered: on-time 50.0 %, cost 12.25, warehouse and region names present
    assert "50.0" in text and "12.25" in text
    for name in ("WH_North", "WH_South", "Beijing", "Guangdong", "Sichuan"):
        assert name in text
    assert "<style>" in text and "http" not in text.split("<body>")[1].split("</style>")[0]


def test_order_lead_times() -> None:
    lead = plots.order_lead_times(_orders())
    # only orders 1 and 2 are fully delivered: 3 - 0 and max(5, 4) - 1
    assert lead.to_dict() == {1: 3.0, 2: 4.0}


def test_warehouse_and_region_summaries() -> None:
    wh = warehouse_summary(_orders(), _timeseries(), _kpis(), SCENARIO)
    assert list(wh.index) == ["WH_North", "WH_South"]
    assert wh.loc["WH_North", "utilization"] == pytest.approx(0.6)  # from kpis.json, not the timeseries
    assert wh.loc["WH_North", "shipments"] == 2
    assert wh.loc["WH_North", "delivered"] == 2
    assert wh.loc["WH_North", "on_time_rate"] == pytest.approx(0.5)  # ship 11 on time, 21 late
    assert wh.loc["WH_South", "shipments"] == 2
    assert wh.loc["WH_South", "on_time_rate"] == pytest.approx(1.0)  # ship 22 on time, 41 not delivered
    assert wh.loc["WH_North", "backlog_mean"] == pytest.approx(1.0)
    assert wh.loc["WH_North", "backlog_max"] == pytest.approx(2.0)
    assert bool(wh.loc["WH_South", "cold_storage"]) is True

    rg = region_summary(_orders(), SCENARIO)
    assert list(rg.index) == ["Beijing", "Guangdong", "Sichuan"]
    assert rg["orders"].to_dict() == {"Beijing": 1, "Guangdong": 1, "Sichuan": 2}
    assert rg.loc["Beijing", "on_time_rate"] == 1.0
    assert rg.loc["Guangdong", "on_time_rate"] == 0.0  # the late WH_North shipment makes the order late
    assert rg.loc["Sichuan", "on_time_rate"] == 0.0  # one lost, one in flight: neither on time (KPI definition)
    assert rg["lost"].to_dict() == {"Beijing": 0, "Guangdong": 0, "Sichuan": 1}
    assert rg.loc["Guangdong", "lead_time_mean_h"] == pytest.approx(4.0)


def test_write_report_with_no_orders_and_nan_kpis(tmp_path: Path) -> None:
    empty = _orders().iloc[0:0]
    ts = _timeseries()
    ts["on_time_rate"] = NAN
    ts["orders_delivered"] = 0
    k = _kpis(on_time_rate=None, lead_time_mean_h=None, lead_time_p95_h=None, orders_delivered=0)
    run = _make_run(tmp_path / "empty", kpis=k, orders=empty, ts=ts)
    text = write_report(run).read_text(encoding="utf-8")
    assert "n/a" in text
    for fname, _ in PLOT_FILES:
        _assert_png(run / fname)


def test_write_report_missing_optional_files_and_preset(tmp_path: Path) -> None:
    run = tmp_path / "bare"
    run.mkdir()
    (run / "kpis.json").write_text(json.dumps(_kpis()), encoding="utf-8")
    scen = dict(SCENARIO, regions={"preset": "china_provinces", "include": ["Beijing", "Sichuan"]})
    (run / "scenario.json").write_text(json.dumps(scen), encoding="utf-8")
    text = write_report(run).read_text(encoding="utf-8")
    assert "orders.parquet not found" in text
    assert "Sichuan" in text  # region from the preset
    _assert_png(run / "network_map.png")
    regs = plots.region_table(scen)
    assert list(regs["name"]) == ["Beijing", "Sichuan"]
    assert regs.loc[1, "lat"] == pytest.approx(30.6, abs=0.5)


def test_report_with_replications_shows_ci(tmp_path: Path) -> None:
    reps = [_kpis(on_time_rate=0.4), _kpis(on_time_rate=0.6)]
    k = _kpis(replications=reps, summary={"on_time_rate": {"mean": 0.5, "ci95": 0.05},
                                          "cost_per_order": {"mean": 12.25, "ci95": 1.5}})
    run = _make_run(tmp_path / "reps", kpis=k)
    text = write_report(run).read_text(encoding="utf-8")
    assert "50.0 ± 5.0" in text
    assert "12.25 ± 1.50" in text
    assert "2 replications" in text


def test_write_report_missing_kpis(tmp_path: Path) -> None:
    (tmp_path / "nokpis").mkdir()
    with pytest.raises(FileNotFoundError, match=r"nokpis.*kpis\.json"):
        write_report(tmp_path / "nokpis")


# --------------------------------------------------------------------------- compare
def test_compare_runs_differences(tmp_path: Path) -> None:
    a = _make_run(tmp_path / "base")
    b = _make_run(tmp_path / "typhoon", kpis=_kpis(
        orders_lost=5, on_time_rate=0.75, cost_per_order=15.0, lead_time_mean_h=None,
        utilization={"WH_North": 0.9, "WH_East": 0.2}, extra_metric=3.5))
    out = tmp_path / "cmp"
    df = compare_runs([a, b])
    write_compare(df, out)
    assert list(df.columns) == ["base", "typhoon", "Δ typhoon vs base"]
    d = df["Δ typhoon vs base"]
    assert d["orders_lost"] == 4.0
    assert d["on_time_rate"] == pytest.approx(0.25)
    assert d["cost_per_order"] == pytest.approx(2.75)
    assert d["orders_created"] == 0.0
    assert math.isnan(d["lead_time_mean_h"])  # null in the second run
    assert d["utilization[WH_North]"] == pytest.approx(0.3)
    assert math.isnan(d["utilization[WH_South]"]) and math.isnan(d["utilization[WH_East]"])
    assert df.loc["extra_metric", "typhoon"] == 3.5
    assert "seed" not in df.index and "scenario" not in df.index
    assert df.index[0] == "orders_created"
    # files
    csv = pd.read_csv(out / "compare.csv", index_col="kpi")
    assert csv.loc["orders_lost", "Δ typhoon vs base"] == 4.0
    _assert_png(out / "compare.png")
    # terminal table
    txt = format_table(df)
    lines = txt.splitlines()
    assert lines[0].split()[:3] == ["kpi", "base", "typhoon"]
    assert len({len(line) for line in lines[2:] if line.startswith("on_time_rate")}) == 1
    row = next(line for line in lines if line.startswith("orders_lost"))
    assert row.split() == ["orders_lost", "1", "5", "+4"]
    row = next(line for line in lines if line.startswith("lead_time_mean_h"))
    assert row.split()[-1] == "n/a"


def test_compare_unique_labels(tmp_path: Path) -> None:
    a = _make_run(tmp_path / "x" / "out")
    b = _make_run(tmp_path / "y" / "out", kpis=_kpis(orders_created=10))
    df = compare_runs([a, b, a])
    runs = [c for c in df.columns if not c.startswith("Δ ")]
    assert len(set(runs)) == 3
    assert df.loc["orders_created", f"Δ {runs[1]} vs {runs[0]}"] == 6.0
    assert df.loc["orders_created", f"Δ {runs[2]} vs {runs[0]}"] == 0.0


def test_compare_errors(tmp_path: Path) -> None:
    a = _make_run(tmp_path / "a")
    missing = tmp_path / "no_kpis_here"
    missing.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no_kpis_here.*kpis\.json"):
        compare_runs([a, missing])
    with pytest.raises(FileNotFoundError, match=r"does_not_exist"):
        compare_runs([a, tmp_path / "does_not_exist"])
    with pytest.raises(ValueError, match="at least two"):
        compare_runs([a])
    with pytest.raises(ValueError, match="at least two"):
        compare_runs([])
    (missing / "kpis.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="JSON object"):
        compare_runs([a, missing])


# --------------------------------------------------------------------------- summaries from counts
def _categorical(df: pd.DataFrame) -> pd.DataFrame:
    """The hand-made records with the name columns as categoricals whose categories are in
    another order than the scenario's (and with names no row uses), as orders.parquet has them."""
    out = df.copy()
    out["region"] = pd.Categorical(out["region"], categories=["Sichuan", "Guangdong", "Tibet", "Beijing"])
    out["warehouse"] = pd.Categorical(out["warehouse"], categories=["WH_South", "WH_Unused", "WH_North"])
    out["status"] = pd.Categorical(out["status"], categories=["queued", "in_transit", "delivered", "lost"])
    return out


@pytest.mark.parametrize("kind", ["strings", "categorical"])
def test_record_summary_counts_by_hand(kind: str) -> None:
    from twin.report.summary import summarize_records

    orders = _orders() if kind == "strings" else _categorical(_orders())
    s = summarize_records(orders, ["WH_North", "WH_South"], ["Beijing", "Guangdong", "Sichuan"])
    assert s.warehouses == ["WH_North", "WH_South"] and s.regions == ["Beijing", "Guangdong", "Sichuan"]
    assert s.shipments_recorded == 5
    # shipments 11, 21 from WH_North (21 late); 22, 41 from WH_South (41 in transit); 31 lost, no warehouse
    assert s.wh_shipments.tolist() == [2, 2]
    assert s.wh_delivered.tolist() == [2, 1]
    assert s.wh_on_time.tolist() == [1, 1]
    assert s.flows.tolist() == [[1, 1, 0], [0, 1, 1]]
    # orders: 1 Beijing on time; 2 Guangdong delivered late (its last parcel at 5 > 4); 3 lost, 4 in flight
    assert s.rg_orders.tolist() == [1, 1, 2]
    assert s.rg_delivered.tolist() == [1, 1, 0]
    assert s.rg_on_time.tolist() == [1, 0, 0]
    assert s.rg_lost.tolist() == [0, 0, 1]
    assert s.rg_lead_sum.tolist() == [3.0, 4.0, 0.0]
    assert (s.lead_n, s.lead_mean, s.lead_p95) == (2, 3.5, pytest.approx(3.95))
    assert s.lead_counts.sum() == 2 and len(s.lead_counts) == 10 and s.lead_counts[0] == s.lead_counts[-1] == 1
    assert s.lead_edges[0] == 3.0 and s.lead_edges[-1] == 4.0


@pytest.mark.parametrize("kind", ["strings", "categorical"])
def test_tables_from_counts_equal_the_hand_made_expectations(kind: str) -> None:
    from twin.report.summary import summarize_records

    orders = _orders() if kind == "strings" else _categorical(_orders())
    # a shipment from a warehouse the scenario does not list, to a region it does not list
    extra = orders.iloc[[0]].copy()
    extra["order_id"], extra["shipment_id"] = 5, 51
    if kind == "categorical":
        extra["warehouse"] = extra["warehouse"].cat.add_categories("WH_East")
        extra["region"] = extra["region"].cat.add_categories("Macau")
        orders["warehouse"] = orders["warehouse"].cat.add_categories("WH_East")
        orders["region"] = orders["region"].cat.add_categories("Macau")
    extra.loc[:, "warehouse"] = "WH_East"
    extra.loc[:, "region"] = "Macau"
    orders = pd.concat([orders, extra], ignore_index=True)
    for source in (orders, summarize_records(orders, ["WH_North", "WH_South"], ["Beijing", "Guangdong", "Sichuan"])):
        wh = warehouse_summary(source, _timeseries(), _kpis(), SCENARIO)
        assert list(wh.index) == ["WH_North", "WH_South", "WH_East"]
        assert wh["shipments"].tolist() == [2, 2, 1]
        assert wh["delivered"].tolist() == [2, 1, 1]
        assert wh["on_time_rate"].tolist() == [0.5, 1.0, 1.0]
        assert wh["utilization"].iloc[:2].tolist() == [0.6, 0.3] and math.isnan(wh.loc["WH_East", "utilization"])
        assert wh["backlog_max"].iloc[:2].tolist() == [2.0, 1.0]
        rg = region_summary(source, SCENARIO)
        assert list(rg.index) == ["Beijing", "Guangdong", "Sichuan", "Macau"]
        assert rg["orders"].tolist() == [1, 1, 2, 1]
        assert rg["delivered"].tolist() == [1, 1, 0, 1]
        assert rg["on_time_rate"].tolist() == [1.0, 0.0, 0.0, 1.0]
        assert rg["lost"].tolist() == [0, 0, 1, 0]
        assert rg["lead_time_mean_h"].iloc[[0, 1, 3]].tolist() == [3.0, 4.0, 3.0]
        assert math.isnan(rg.loc["Sichuan", "lead_time_mean_h"])


def test_plots_from_counts(tmp_path: Path) -> None:
    from twin.report.summary import summarize_records

    s = summarize_records(_categorical(_orders()), ["WH_North", "WH_South"], ["Beijing", "Guangdong", "Sichuan"])
    for make, name in ((lambda p: plots.plot_lead_time(s, p), "lead.png"),
                       (lambda p: plots.plot_network_map(SCENARIO, s, p), "map.png"),
                       (lambda p: plots.plot_lead_time(summarize_records(None), p), "none.png")):
        assert isinstance(make(tmp_path / name), Figure)
        _assert_png(tmp_path / name)


def test_replicated_report_says_whose_tables_and_plots(tmp_path: Path) -> None:
    reps = [_kpis(seed=11, on_time_rate=0.4, utilization={"WH_North": 0.123, "WH_South": 0.3}),
            _kpis(seed=12, on_time_rate=0.6, utilization={"WH_North": 0.5, "WH_South": 0.3})]
    k = {key: v for key, v in _kpis(utilization={"WH_North": 0.3115, "WH_South": 0.3}).items() if key != "seed"}
    k.update(seeds=[11, 12], replications=reps, summary={"on_time_rate": {"mean": 0.5, "ci95": 0.05}})
    run = _make_run(tmp_path / "reps", kpis=k)
    text = write_report(run).read_text(encoding="utf-8")
    assert "Tables and plots: replication 1 of 2, seed 11." in text
    assert "KPI table: mean ± 95% CI over 2 replications" in text
    for h in ("Warehouses", "Regions", "Plots"):
        assert f"<h2>{h} (replication 1 of 2, seed 11)</h2>" in text
    assert "<h2>Key performance indicators (mean ± 95% CI over 2 replications)</h2>" in text
    assert "Seeds: <b>11, 12</b>" in text
    # the warehouse table shows replication 1's utilisation (12.3%), the KPI table the mean (31.1 ...)
    wh_table = text.split("<h2>Warehouses")[1].split("<h2>Regions")[0]
    assert "12.3" in wh_table and "31.1" not in wh_table
    single = write_report(_make_run(tmp_path / "one")).read_text(encoding="utf-8")
    assert "replication 1 of" not in single and "<h2>Warehouses</h2>" in single
