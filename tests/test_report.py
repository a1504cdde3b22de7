"""Tests of twin.report.html, twin.report.plots and twin.results.compare on a small hand-made run directory."""

from __future__ import annotations

import json
import math
from datetime import datetime
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


# --------------------------------------------------------------------------- the peak (issue 9)
def _small_run(tmp_path: Path, name: str = "baseline", agvs: dict[str, int] | None = None,
               hours: float = 8.0, **extra: object) -> tuple[object, dict, Path]:
    """A scaled-down run of a built-in scenario (its scenario dict changed by ``agvs`` and
    ``extra``), saved with its report."""
    import twin
    from twin.scenario.loader import scale_scenario, validate_scenario

    doc = scale_scenario(twin.load_scenario(name), 0.05).model_dump(mode="json")
    doc.update(horizon_h=hours, drain_h=24.0, **extra)
    for w in doc["warehouses"]:
        w["pick"]["agvs"] = (agvs or {}).get(w["name"], w["pick"]["agvs"])
    res = twin.simulate(validate_scenario(doc), seed=3)
    out = res.save(tmp_path / name)
    write_report(out, result=res)
    return res, json.loads((out / "scenario.json").read_text()), out


def _hand_orders(records: pd.DataFrame) -> pd.DataFrame:
    """Per order, by plain pandas: delivered (every shipment delivered), its last delivery, its
    promise and whether it was on time."""
    r = records.assign(done=records["status"].astype(str) == "delivered")
    g = r.groupby("order_id")
    o = pd.DataFrame({"created": g["created_at"].first(), "promised": g["promised_at"].first(),
                      "all_done": g["done"].all(), "last": g["delivered_at"].max()})
    o["delivered_at"] = o["last"].where(o["all_done"])
    o["on_time"] = o["all_done"] & (o["delivered_at"] <= o["promised"])
    return o


def test_hourly_counts_of_the_hand_made_records() -> None:
    from twin.report.summary import summarize_records

    s = summarize_records(_orders(), ["WH_North", "WH_South"], ["Beijing", "Guangdong", "Sichuan"])
    # the latest time is 5.0, a delivery: hours 0..5, the last one holding it
    assert s.n_hours == 6 and s.delivered_h.tolist() == [0, 0, 0, 1, 0, 1]
    orders = _orders().assign(delivered_at=lambda d: d["delivered_at"] - 0.5)
    orders["routed_at"] = orders["created_at"].where(orders["order_id"] != 4, orders["created_at"] + 0.5)
    s = summarize_records(orders, ["WH_North", "WH_South"], ["Beijing", "Guangdong", "Sichuan"])
    assert s.n_hours == 5  # the latest time is 4.5
    assert s.created_h.tolist() == [1, 1, 2, 0, 0]  # orders created at 0, 1, 2, 2.5
    assert s.delivered_h.tolist() == [0, 0, 1, 0, 1]  # order 1 at 2.5, order 2 at max(4.5, 3.5)
    assert s.on_time_h.tolist() == [0, 0, 1, 0, 0]  # 4.5 > its promise 4
    assert s.shipped_h.tolist() == [1, 2, 1, 1, 0]  # shipments at created + 0.5: 0.5, 1.5, 1.5, 2.5, 3.0
    assert plots.hourly_on_time_rate(s)[[2, 4]].tolist() == [1.0, 0.0]
    assert np.isnan(plots.hourly_on_time_rate(s)[[0, 1, 3]]).all()
    assert s.short_h.tolist() == [0, 0, 2, 0, 0]  # order 3 (created at 2) lost, order 4 (at 2.5) backordered


def test_hourly_panels_equal_a_hand_aggregation_of_the_records(tmp_path: Path) -> None:
    res, scenario, out = _small_run(tmp_path)
    from twin.report.summary import summarize_records

    s = summarize_records(res.orders, [w["name"] for w in scenario["warehouses"]], [], scenario=scenario)
    o = _hand_orders(res.orders)
    n = s.n_hours
    hour = lambda t: np.floor(t.dropna()).astype(int)  # noqa: E731
    per_h = lambda t: np.bincount(hour(t), minlength=n)[:n].tolist()  # noqa: E731
    assert n == int(np.floor(np.nanmax(res.orders[["created_at", "shipped_at", "delivered_at"]].to_numpy()))) + 1
    assert s.created_h.tolist() == per_h(o["created"])
    assert s.delivered_h.tolist() == per_h(o["delivered_at"])
    assert s.on_time_h.tolist() == per_h(o["delivered_at"][o["on_time"]])
    assert s.shipped_h.tolist() == per_h(res.orders["shipped_at"])
    assert s.delivered_h.sum() == res.kpis["orders_delivered"] > 0
    assert 0 < s.on_time_h.sum() < s.delivered_h.sum()  # some late orders: the rate is not trivially 1
    # the plot draws exactly these rates (steps: one value per hour, the last repeated)
    fig = plots.plot_kpis_over_time(res.timeseries, s, scenario=scenario)
    ax_rate = fig.axes[2]
    drawn = ax_rate.lines[0].get_ydata()[:-1]
    with np.errstate(invalid="ignore"):  # 0 / 0 in hours without deliveries: NaN, no line there
        want = 100.0 * np.array(per_h(o["delivered_at"][o["on_time"]])) / np.array(per_h(o["delivered_at"]))
    np.testing.assert_array_equal(np.isnan(drawn), np.isnan(want))
    np.testing.assert_allclose(drawn[~np.isnan(want)], want[~np.isnan(want)], rtol=0, atol=1e-12)
    created = fig.axes[0].lines[1]
    assert created.get_label() == "orders created" and created.get_ydata()[:-1].tolist() == s.created_h.tolist()
    # the report has the panels, the peak-hour column and the verdict before the KPI table
    text = (out / "report.html").read_text(encoding="utf-8")
    assert text.index('<div class="verdict"') < text.index("<h2>Key performance indicators")
    assert "Utilisation, peak hour (%)" in text and "Hours at &ge; 95%" in text
    assert "Start: <b>2026-10-13 00:00</b>" in text


def _span_x(p: object) -> tuple[float, float]:
    """An axvspan's x extent (a Rectangle from matplotlib 3.9, a Polygon before)."""
    if hasattr(p, "get_width"):
        return float(p.get_x()), float(p.get_x() + p.get_width())
    xs = np.asarray(p.get_xy())[:, 0]
    return float(xs.min()), float(xs.max())


@pytest.mark.parametrize("dated", [True, False])
def test_every_time_plot_shades_exactly_the_scenarios_windows(dated: bool) -> None:
    import matplotlib.dates as mdates
    from matplotlib.dates import ConciseDateFormatter

    import twin

    scenario = json.loads(twin.load_scenario("typhoon").model_dump_json())
    # the test's own windows and start (the typhoon file's may change with its calibration)
    for ev, (a, b) in zip(scenario["weather"]["events"], [(14.0, 38.0), (38.0, 50.0)], strict=True):
        ev["start_h"], ev["end_h"] = a, b
    scenario["start"] = "2026-10-13T00:00:00"
    scenario["disruptions"] = [
        {"type": "warehouse_outage", "warehouse": "nanjing", "start_h": 14.0, "end_h": 38.0},
        {"type": "carrier_capacity_loss", "carrier": "sf_express", "fraction": 0.6, "start_h": 12.0, "end_h": 36.0},
    ]
    if not dated:
        scenario["start"] = None
    expected_hours = {
        "disruption:warehouse outage: nanjing": (14.0, 38.0),
        "disruption:carrier capacity loss: sf_express -60%": (12.0, 36.0),
        "disruption:weather: typhoon_landfall (lanes closed, Zhejiang, Shanghai, Fujian, Jiangsu)": (14.0, 38.0),
        "disruption:weather: typhoon_aftermath (Zhejiang, Shanghai, Fujian, Jiangsu)": (38.0, 50.0),
    }
    start = datetime(2026, 10, 13)
    to_x = (lambda h: mdates.date2num(start) + h / 24.0) if dated else (lambda h: h)
    expected = {gid: (pytest.approx(to_x(a)), pytest.approx(to_x(b))) for gid, (a, b) in expected_hours.items()}
    ts, orders = _timeseries(), _orders()
    figures = [plots.plot_kpis_over_time(ts, orders, scenario=scenario), plots.plot_backlog(ts, scenario=scenario),
               plots.plot_utilization(ts, scenario=scenario)]
    for fig in figures:
        assert len(fig.axes) >= 2
        for ax in fig.axes:
            spans = {p.get_gid(): _span_x(p) for p in ax.patches if (p.get_gid() or "").startswith("disruption:")}
            assert spans == expected
            assert isinstance(ax.xaxis.get_major_formatter(), ConciseDateFormatter) is dated
        labels = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "window-label"]
        assert sorted(labels) == sorted(g.removeprefix("disruption:") for g in expected)
    # no disruptions, no weather events: nothing shaded
    quiet = dict(scenario, disruptions=[], weather={})
    fig = plots.plot_backlog(ts, scenario=quiet)
    assert not [p for ax in fig.axes for p in ax.patches if (p.get_gid() or "").startswith("disruption:")]


def test_verdict_names_the_warehouse_with_the_largest_backlog(tmp_path: Path) -> None:
    # chengdu (~19% of the orders, 4 AGVs at this scale) left with 1 AGV: its queue grows all day
    res, scenario, out = _small_run(tmp_path, agvs={"chengdu": 1})
    from twin.report.summary import hourly_utilization, summarize_records, verdict

    ts = res.timeseries
    dt = np.diff(np.r_[0.0, ts["time_h"].to_numpy()])
    backlog_hours = {w["name"]: float((ts[f"backlog[{w['name']}]"] * dt).sum()) for w in scenario["warehouses"]}
    worst = max(backlog_hours, key=backlog_hours.get)
    assert worst == "chengdu"
    s = summarize_records(res.orders, list(backlog_hours), [], scenario=scenario)
    v = verdict(s, ts)
    assert [w["warehouse"] for w in v.worst_warehouses][0] == "chengdu"
    assert v.worst_warehouses[0]["backlog_hours"] == pytest.approx(backlog_hours["chengdu"])
    assert v.binding == "pick capacity"
    # hourly ticks: an hour's utilisation is that tick's busy over server hours; pick bound where >= 0.95
    busy, cap = ts["busy_hours[chengdu]"].diff().fillna(ts["busy_hours[chengdu]"]), \
        ts["server_hours[chengdu]"].diff().fillna(ts["server_hours[chengdu]"])
    hand = busy / cap
    np.testing.assert_allclose(hourly_utilization(ts)["chengdu"].to_numpy(), hand.to_numpy(), rtol=1e-12)
    assert v.pick_hours["chengdu"] == [int(h) for h in np.flatnonzero(hand.to_numpy() >= 0.95)]
    assert len(v.pick_hours["chengdu"]) >= 5
    text = (out / "report.html").read_text(encoding="utf-8")
    assert '<b class="binding">Binding constraint: pick capacity</b>' in text
    first = text.split('<li class="worst-warehouses">Worst warehouses, by backlog: ')[1]
    assert first.startswith("<b>chengdu</b>")
    # the hours, as dates from the scenario's start (13 Oct 2026), and chengdu's count of them
    assert f"chengdu {len(v.pick_hours['chengdu'])} h" in text and "13 Oct " in text
    table = text.split("<h2>Warehouses")[1].split("<h2>Regions")[0]
    row = table.split("<td>chengdu</td>")[1].split("</tr>")[0]
    assert '<td class="num">100.0</td>' in row or f'<td class="num">{100 * hand.max():.1f}</td>' in row


def test_verdict_rules_on_constructed_counts() -> None:
    from twin.report.summary import RecordSummary, Verdict, verdict

    s = RecordSummary(["a"], ["r1", "r2", "r3", "r4"], n_hours=4,
                      ready_h=np.array([100, 100, 100, 100]), rolled_h=np.array([4, 5, 50, 0]),
                      created_h=np.array([200, 200, 200, 200]), short_h=np.array([1, 2, 0, 0]),
                      rg_orders=np.array([40, 40, 10, 40]), rg_on_time=np.array([30, 40, 0, 20]))
    v = verdict(s, None)
    assert v.bound_hours == {"pick capacity": [], "linehaul capacity": [1, 2], "stock": [1]}
    assert v.binding == "linehaul capacity"
    # r3 has fewer than 30 orders: left out while others have enough
    assert [r["region"] for r in v.worst_regions] == ["r4", "r1", "r2"]
    assert Verdict.spans([3, 4, 5, 9]) == [(3, 6), (9, 10)]
    assert verdict(RecordSummary(["a"], []), None).binding == "none"


def test_network_map_on_the_basemap_with_labels_that_do_not_overlap(tmp_path: Path) -> None:
    import twin
    from twin.report.summary import summarize_records

    bm = plots.china_basemap()
    assert "public domain" in bm["licence"] and len(bm["china"][-1]) > 200
    assert (Path(plots.__file__).parent / "data" / "china_basemap.json").stat().st_size < 100_000
    scenario = json.loads(twin.load_scenario("national_peak").model_dump_json())  # 37 warehouses, 31 regions
    fig = plots.plot_network_map(scenario, summarize_records(None), tmp_path / "map.png")
    _assert_png(tmp_path / "map.png")
    ax = fig.axes[0]
    gids = {c.get_gid() for c in ax.collections}
    assert {"basemap:china", "basemap:land"} <= gids
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if (t.get_gid() or "").startswith("label:")]
    names = {t.get_text() for t in labels}
    assert {w["name"] for w in scenario["warehouses"]} <= names  # every warehouse labelled
    assert sum(t.get_gid() == "label:region" for t in labels) >= 5
    boxes = [t.get_window_extent(renderer) for t in labels]
    overlaps = [(labels[i].get_text(), labels[j].get_text()) for i in range(len(boxes))
                for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]
    assert len(overlaps) <= len(scenario["warehouses"]) // 10  # only a crowded warehouse's label may touch one


def test_scenario_start_is_validated() -> None:
    import twin
    from twin.errors import ScenarioError

    assert twin.load_scenario("singles_day").start == datetime(2026, 11, 10)
    assert twin.load_scenario("erlang_c").start is None
    assert twin.load_scenario("baseline", overrides=["start=2026-11-10 08:30"]).start == datetime(2026, 11, 10, 8, 30)
    with pytest.raises(ScenarioError, match=r"start: must be an ISO date-time such as '2026-11-10T00:00' "
                                            r"\(the calendar time of t = 0\): month must be in 1\.\.12, "
                                            r"got '2026-13-10T00:00'"):
        twin.load_scenario("baseline", overrides=["start=2026-13-10T00:00"])
    with pytest.raises(ScenarioError, match=r"start: must be an ISO date-time .*: not a date-time, got 'soon'"):
        twin.load_scenario("baseline", overrides=["start=soon"])
