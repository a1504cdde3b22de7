"""KPIs from records, checked against hand computations on a small table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from twin.results.kpis import compute_kpis, order_table, summarize

NAN = math.nan


def _orders(shuffle: bool = False) -> pd.DataFrame:
    # order 0: one shipment, delivered on time; order 1: split in two, one late -> late;
    # order 2: lost; order 3: in flight (picking); order 4: split, both delivered on time
    rows = [
        # order, ship, region, warehouse, status, created, pick_s, pick_e, delivered, promised, cost, co2
        (0, 0, "A", "w1", "delivered", 0.0, 0.5, 0.6, 10.0, 24.0, 10.0, 0.2),
        (1, 1, "A", "w1", "delivered", 1.0, 1.5, 1.7, 20.0, 24.0, 11.0, 0.3),
        (1, 2, "A", "w2", "delivered", 1.0, 1.2, 1.3, 30.0, 24.0, 12.0, 0.4),
        (2, -1, "B", None, "lost", 2.0, NAN, NAN, NAN, 26.0, 0.0, 0.0),
        (3, 3, "B", "w2", "picking", 3.0, 3.5, NAN, NAN, 27.0, 9.0, 0.1),
        (4, 4, "B", "w1", "delivered", 4.0, 4.1, 4.2, 12.0, 28.0, 5.0, 0.1),
        (4, 5, "B", "w2", "delivered", 4.0, 4.3, 4.4, 14.0, 28.0, 6.0, 0.2),
    ]
    df = pd.DataFrame(rows, columns=["order_id", "shipment_id", "region", "warehouse", "status", "created_at",
                                     "pick_start", "pick_end", "delivered_at", "promised_at", "cost", "co2_kg"])
    for c in ("region", "warehouse", "status"):
        df[c] = pd.Categorical(df[c])
    df["cold_violation"] = [False, False, False, False, False, True, False]
    # in the backlog from routing until shipped (order 3 never shipped; shipment 2 after 20 h)
    df["routed_at"] = [0.0, 1.0, 1.0, NAN, 3.0, 4.0, 4.0]
    df["shipped_at"] = [2.0, 3.0, 25.0, NAN, NAN, 5.0, 6.0]
    return df.sample(frac=1.0, random_state=1) if shuffle else df


@pytest.mark.parametrize("shuffle", [False, True])
def test_order_table_by_hand(shuffle: bool) -> None:
    t = order_table(_orders(shuffle))
    assert list(t.index) == [0, 1, 2, 3, 4]
    assert list(t["status"]) == ["delivered", "delivered", "lost", "in_flight", "delivered"]
    assert list(t["on_time"]) == [True, False, False, False, True]
    np.testing.assert_array_equal(t["delivered_at"].to_numpy(), [10.0, 30.0, NAN, NAN, 14.0])
    assert list(t["shipments"]) == [1, 2, 0, 1, 2]
    assert list(t["cost"]) == [10.0, 23.0, 0.0, 9.0, 11.0]
    assert list(t["region"].astype(str)) == ["A", "A", "B", "B", "B"]


def test_kpis_by_hand() -> None:
    ts = pd.DataFrame({"time_h": [10.0, 20.0, 40.0], "backlog": [3, 1, 0], "backlog_peak": [3, 4, 4],
                       "server_hours[w1]": [5.0, 10.0, 20.0], "server_hours[w2]": [5.0, 10.0, 20.0]})
    k = compute_kpis(_orders(), ts, ["w1", "w2"], horizon_h=20.0)
    assert (k["orders_created"], k["orders_delivered"], k["orders_in_flight"], k["orders_lost"]) == (5, 3, 1, 1)
    assert k["on_time_rate"] == pytest.approx(2 / 5)
    assert k["lead_time_mean_h"] == pytest.approx((10.0 + 29.0 + 10.0) / 3)
    assert k["cost_per_order"] == pytest.approx((10 + 23 + 9 + 11) / 4)  # served orders: not the lost one
    assert k["co2_per_order_kg"] == pytest.approx((0.2 + 0.7 + 0.1 + 0.3) / 4)
    assert k["split_rate"] == pytest.approx(2 / 4)
    assert k["backlog_max"] == 4 and k["cold_chain_violations"] == 1  # the engine's exact peak, last row
    # backlog-hours in [0, 20): 2 + 2 + (20 - 1) + (20 - 3) + 1 + 2 = 43, over 20 h
    assert k["backlog_mean"] == pytest.approx(43 / 20)
    assert math.isnan(k["service_gap"])  # no region has 30 orders
    # picks until the horizon (20 h) over server-hours at 20 h: w1 0.1+0.2+0.1, w2 0.1+(20-3.5)+0.1
    assert k["utilization"]["w1"] == pytest.approx(0.4 / 10.0)
    assert k["utilization"]["w2"] == pytest.approx((0.1 + 16.5 + 0.1) / 10.0)


def test_summarize_is_mean_and_student_t() -> None:
    s = summarize([{"seed": 0, "x": 1.0, "u": {"w": 0.5}}, {"seed": 1, "x": 3.0, "u": {"w": 0.7}}])
    assert "seed" not in s
    assert s["x"]["mean"] == 2.0 and s["x"]["n"] == 2
    assert s["x"]["ci95"] == pytest.approx(12.706204736 * math.sqrt(2.0) / math.sqrt(2))
    assert s["u[w]"]["mean"] == pytest.approx(0.6)


def test_a_new_kpi_needs_only_the_registry(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """One entry in :data:`twin.results.kpis.KPIS` reaches the KPIs of a run, the CLI summary,
    ``twin compare`` and the report, with its label, unit and format."""
    import json

    import twin
    from twin.cli import format_kpis
    from twin.report import write_report
    from twin.results.compare import compare_runs
    from twin.results.kpis import KPI, KPIS
    from twin.scenario.loader import scale_scenario

    new = KPI("shipments_per_order", "Shipments per order", "shipments per created order", "shipments",
              "number", "{:.4f} sh", lambda c: float(c.t["shipments"].mean()))
    monkeypatch.setitem(KPIS, new.name, new)  # the one edit a new KPI needs (here undone after the test)
    sc = scale_scenario(twin.load_scenario("baseline"), 0.01)
    sc = sc.model_copy(update={"horizon_h": 3.0, "drain_h": 24.0})
    res = twin.simulate(sc, seed=0)
    t = order_table(res.orders)
    assert res.kpis["shipments_per_order"] == pytest.approx(t["shipments"].mean())
    line = next(x for x in format_kpis(res.kpis).splitlines() if "shipments_per_order" in x)
    assert line.split()[-2:] == [f"{res.kpis['shipments_per_order']:.4f}", "sh"]
    a, b = tmp_path / "a", tmp_path / "b"
    res.save(a)
    res.save(b)
    df = compare_runs([a, b])
    rows = list(df.index)
    last = [k.name for k in KPIS.values() if not k.per_warehouse][-2]  # the registry's last scalar before it
    assert rows.index("shipments_per_order") == rows.index(last) + 1
    write_report(a)
    html = (a / "report.html").read_text()
    assert "Shipments per order" in html and "Shipments per created order." in html
    assert json.loads((a / "kpis.json").read_text())["shipments_per_order"] == res.kpis["shipments_per_order"]
