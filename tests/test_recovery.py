"""Recovery KPIs (issue 12): time to recover, service-level loss, orders late or lost in a
disruption, per-region effect, exact against hand computations: on constructed records, on the
hourly series alone, and on simulated outages of a network's only warehouse (every order
created while it is down is lost, every other one on time: a closed form), on both engines."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import twin
from twin.results.kpis import KPIS, compute_kpis, hourly_on_time, order_table, recover
from twin.scenario.loader import validate_scenario

NAN = math.nan


def _network(**extra: object) -> dict:
    """One warehouse far beyond its demand, two regions, a 72 h promise: every order is on time
    unless it is lost."""
    doc = {
        "name": "one_site", "horizon_h": 10, "drain_h": 80, "seed": 0,
        "warehouses": [{"name": "w1", "lat": 31.0, "lon": 121.0,
                        "pick": {"agvs": 500, "lines_per_agv_h": 5000, "pick_time": "deterministic"},
                        "stock": {"units_per_sku": 1_000_000}}],
        "regions": [{"name": "A", "lat": 31.2, "lon": 121.4, "weight": 1.0},
                    {"name": "B", "lat": 30.3, "lon": 120.2, "weight": 1.0}],
        "carriers": [{"name": "c1", "departure_interval_h": 0.5, "first_departure_h": 0.5, "capacity": 100_000,
                      "transit": {"base_h": 2.0, "distribution": "deterministic"}}],
        "demand": {"base_rate_per_h": 400, "skus": {"count": 20},
                   "service_levels": {"standard": {"share": 1.0, "promise_h": 72}}, "unfulfillable": "lost"},
        "replenishment": {"mode": "none"},
    }
    doc.update(extra)
    return doc


# --------------------------------------------------------------------------- by hand, on records
def _records() -> pd.DataFrame:
    """Ten hours of 40 orders each (created at h + i/40; even i in region A, odd in B), one row
    per order. By hand, in region A only: hour 3 all 20 late; hour 4 10 lost; hours 5, 6 and 7
    4, 3 and 2 late. Everything else on time."""
    rows = []
    late = {3: 20, 5: 4, 6: 3, 7: 2}
    for h in range(10):
        for i in range(40):
            created = h + i / 40
            region = "A" if i % 2 == 0 else "B"
            k = i // 2  # the k-th order of its region in the hour
            status, delivered = "delivered", created + 2.0
            if region == "A" and h == 4 and k < 10:
                status, delivered = "lost", NAN
            elif region == "A" and k < late.get(h, 0):
                delivered = created + 30.0
            rows.append((len(rows), len(rows), region, None if status == "lost" else "w1", status, created,
                         created + 0.1, created + 0.2, delivered, created + 24.0, 5.0, 0.1))
    df = pd.DataFrame(rows, columns=["order_id", "shipment_id", "region", "warehouse", "status", "created_at",
                                     "pick_start", "pick_end", "delivered_at", "promised_at", "cost", "co2_kg"])
    for c in ("region", "warehouse", "status"):
        df[c] = pd.Categorical(df[c])
    df["cold_violation"] = False
    lost = df["status"] == "lost"
    df["routed_at"] = np.where(lost, NAN, df["created_at"])
    df["shipped_at"] = np.where(lost, NAN, df["created_at"] + 1.0)
    df.loc[lost, ["pick_start", "pick_end"]] = NAN
    return df


def test_recovery_kpis_by_hand_on_constructed_records() -> None:
    sc = validate_scenario(_network(disruptions=[
        {"type": "warehouse_outage", "warehouse": "w1", "start_h": 3.0, "end_h": 6.0},
        {"type": "carrier_capacity_loss", "carrier": "c1", "fraction": 0.5, "start_h": 8.0, "end_h": 9.5},
    ]), "test")
    orders = _records()
    ts = pd.DataFrame({"time_h": [10.0], "backlog_peak": [5], "server_hours[w1]": [100.0]})
    k = compute_kpis(orders, ts, ["w1"], horizon_h=10.0, scenario=sc)
    # hourly on-time rate (orders created in the hour): hours 0-2 1.0; 3: 20/40; 4: 30/40;
    # 5: 36/40 = 0.9 (not below the failure threshold 0.9, not yet the recovery 0.95);
    # 6: 37/40; 7: 38/40 = 0.95 (recovered); 8, 9: 1.0
    rate = hourly_on_time(order_table(orders), 10)
    np.testing.assert_allclose(rate, [1, 1, 1, 0.5, 0.75, 0.9, 0.925, 0.95, 1, 1])
    # the outage fails the service at hour 3 and it recovers at 7: 4 h; the capacity loss never fails it
    out, cap = "warehouse_outage:w1@3h", "carrier_capacity_loss:c1@8h"
    assert k["time_to_recover_h_by_disruption"] == {out: 4.0, cap: 0.0}
    assert k["time_to_recover_h"] == 4.0
    # loss: (0.95 - 0.5) + (0.95 - 0.75) + (0.95 - 0.9) + (0.95 - 0.925) = 0.725 share-hours
    assert k["service_loss_h_by_disruption"][out] == pytest.approx(0.725)
    assert k["service_loss_h_by_disruption"][cap] == 0.0
    assert k["service_loss_h"] == pytest.approx(0.725)
    # impact windows: [3, 7) (the outage until recovered) and [8, 9.5) (the capacity loss)
    # late: 20 + 4 + 3 (hour 7's 2 are after the recovery); lost: 10
    assert k["orders_hit_by_disruption"] == {out: 37, cap: 0}
    assert (k["orders_late_in_disruption"], k["orders_lost_in_disruption"]) == (27, 10)
    # per region, inside the windows: A on time 0 + 10 + 16 + 17 (hours 3-6) + 20 (hour 8) + 10
    # (hour 9 before 9.5) = 73 of 110; B 110 of 110; outside: A 60 (hours 0-2) + 18 (hour 7) + 10
    # (hour 9 after 9.5) = 88 of 90, B 90 of 90
    assert k["service_gap_disrupted"] == pytest.approx(1 - 73 / 110)
    assert k["region_on_time_drop"] == pytest.approx({"A": 88 / 90 - 73 / 110, "B": 0.0})


def test_no_disruption_no_recovery_figures() -> None:
    sc = validate_scenario(_network(), "test")
    ts = pd.DataFrame({"time_h": [10.0], "backlog_peak": [5], "server_hours[w1]": [100.0]})
    k = compute_kpis(_records(), ts, ["w1"], horizon_h=10.0, scenario=sc)
    assert math.isnan(k["time_to_recover_h"]) and k["service_loss_h"] == 0.0
    assert k["time_to_recover_h_by_disruption"] == {} and k["region_on_time_drop"] == {}
    assert (k["orders_late_in_disruption"], k["orders_lost_in_disruption"]) == (0, 0)


def test_thresholds_come_from_the_scenario() -> None:
    """A stricter failure threshold (0.95) fails the service at hour 3 as before, and at a looser
    recovery threshold (0.9) it is back at hour 5: 2 h, loss (0.9 - 0.5) + (0.9 - 0.75)."""
    sc = validate_scenario(_network(recovery={"failure": 0.8, "recovery": 0.9}, disruptions=[
        {"type": "warehouse_outage", "warehouse": "w1", "start_h": 3.0, "end_h": 6.0}]), "test")
    ts = pd.DataFrame({"time_h": [10.0], "backlog_peak": [5], "server_hours[w1]": [100.0]})
    k = compute_kpis(_records(), ts, ["w1"], horizon_h=10.0, scenario=sc)
    assert k["time_to_recover_h"] == 2.0
    assert k["service_loss_h"] == pytest.approx(0.4 + 0.15)


def test_recover_on_hourly_series_by_hand() -> None:
    # on-time: below 0.9 first at hour 2 (inside [1.5, 4)), at 0.95 again at hour 5
    assert recover(np.array([1, 1, 0.6, 0.8, 0.92, 0.97, 1]), 1.5, 4.0, 0.9, 0.95) == (2, 5, pytest.approx(
        0.35 + 0.15 + 0.03))
    # a failure after the disruption ended is not its failure
    assert recover(np.array([1, 1, 1, 1, 0.5, 1]), 1.0, 3.0, 0.9, 0.95) == (None, None, 0.0)
    # never recovered: the loss runs to the end of the series; hours without orders count 0
    assert recover(np.array([1, 0.5, NAN, 0.7]), 1.0, 2.0, 0.9, 0.95) == (1, None, pytest.approx(0.45 + 0.25))
    # backlog: above 60 first at hour 3, at or below 10 again at hour 6; loss over 10 per hour
    assert recover(np.array([0, 5, 50, 120, 80, 30, 8, 2]), 1.5, 4.0, 60, 10, lower_is_worse=False) == (
        3, 6, pytest.approx(110 + 70 + 20))


def test_the_registry_declares_the_recovery_kpis() -> None:
    for name in ("time_to_recover_h", "service_loss_h", "orders_late_in_disruption", "orders_lost_in_disruption",
                 "service_gap_disrupted"):
        assert not KPIS[name].per_warehouse and KPIS[name].better == "lower"
    for name, keys in (("time_to_recover_h_by_disruption", "disruption"), ("service_loss_h_by_disruption", "disruption"),
                       ("orders_hit_by_disruption", "disruption"), ("region_on_time_drop", "region")):
        assert KPIS[name].per_warehouse and KPIS[name].keys == keys


# --------------------------------------------------------------------------- a simulated outage
@pytest.mark.parametrize("engine", ["kernel", "simpy"])
def test_an_outage_of_the_only_warehouse_by_closed_form(engine: str) -> None:
    """While the only warehouse is down every order created is lost at once, and every other
    order is delivered well within its 72 h promise: the hourly on-time rate is 1 outside
    [3, 6) and 0 inside, so the service fails at 3 and is back at 6 (3 h), the loss is 0.95 x 3,
    and the orders lost in the disruption are exactly those created in [3, 6)."""
    sc = validate_scenario(_network(disruptions=[
        {"type": "warehouse_outage", "warehouse": "w1", "start_h": 3.0, "end_h": 6.0}]), "test")
    res = twin.simulate(sc, seed=4, engine=engine)
    k = res.kpis
    t = order_table(res.orders)
    inside = ((t["created_at"] >= 3.0) & (t["created_at"] < 6.0)).to_numpy()
    assert inside.sum() > 1000
    assert (t["status"].to_numpy()[inside] == "lost").all() and t["on_time"].to_numpy()[~inside].all()
    assert k["time_to_recover_h"] == 3.0
    assert k["service_loss_h"] == pytest.approx(0.95 * 3)
    assert k["orders_lost_in_disruption"] == k["orders_lost"] == int(inside.sum())
    assert k["orders_late_in_disruption"] == 0
    assert k["service_gap_disrupted"] == 0.0  # every region loses every order
    assert k["region_on_time_drop"] == {"A": 1.0, "B": 1.0}


def test_an_outage_off_the_hour_by_closed_form() -> None:
    """Down over [2.5, 5.5): hours 2 and 5 are part lost (below 0.9), so the service fails at 2
    and is back at 6: 4 h; the loss is 0.95 - r2, 0.95 x 2 (hours 3, 4), 0.95 - r5, where r2 is
    the share of hour 2's orders created before 2.5 and r5 of hour 5's created from 5.5 on."""
    sc = validate_scenario(_network(disruptions=[
        {"type": "warehouse_outage", "warehouse": "w1", "start_h": 2.5, "end_h": 5.5}]), "test")
    res = twin.simulate(sc, seed=5)
    created = order_table(res.orders)["created_at"].to_numpy()
    h2, h5 = created[(created >= 2) & (created < 3)], created[(created >= 5) & (created < 6)]
    r2, r5 = (h2 < 2.5).mean(), (h5 >= 5.5).mean()
    assert r2 < 0.9 and r5 < 0.9
    assert res.kpis["time_to_recover_h"] == 4.0
    assert res.kpis["service_loss_h"] == pytest.approx((0.95 - r2) + 0.95 * 2 + (0.95 - r5))
    assert res.kpis["orders_lost_in_disruption"] == int(((created >= 2.5) & (created < 5.5)).sum())


def test_the_report_shows_the_recovery_kpis_and_shades_the_drawn_events(tmp_path, monkeypatch) -> None:
    """A run with risk events: its report's KPI table has the recovery KPIs, and every time plot
    gets the drawn events as windows (beside the scripted ones) at their drawn times."""
    from twin.report import html, plots

    sc = validate_scenario(_network(
        disruptions=[{"type": "carrier_capacity_loss", "carrier": "c1", "fraction": 0.5, "start_h": 1, "end_h": 2}],
        risks={"events": [{"name": "down", "window": {"start_h": 3, "end_h": 5}, "duration_h": 2,
                           "disruption": {"type": "warehouse_outage", "warehouse": "w1"}}]}), "test")
    res = twin.simulate(sc, seed=1)
    (ev,) = res.kpis["risk_events"]
    assert ev["name"] == "down" and 3 <= ev["start_h"] < 5 and ev["end_h"] == pytest.approx(ev["start_h"] + 2)
    seen = []
    real = plots.plot_kpis_over_time

    def spy(*args, **kw):  # records what the report hands the real plot
        seen.append(plots.disruption_windows(kw["scenario"]))
        return real(*args, **kw)

    monkeypatch.setattr(plots, "plot_kpis_over_time", spy)
    res.save(tmp_path)
    html.write_report(tmp_path)
    (windows,) = seen
    assert [(w.kind, w.target, w.start_h, w.end_h) for w in windows] == [
        ("carrier_capacity_loss", "c1 -50%", 1.0, 2.0), ("warehouse_outage", "w1", ev["start_h"], ev["end_h"])]
    text = (tmp_path / "report.html").read_text()
    for kpi in ("time_to_recover_h", "service_loss_h", "orders_lost_in_disruption", "time_to_recover_h_by_disruption"):
        assert f"<code>{kpi}</code>" in text
    assert "down: " in text  # the drawn event's own row in the per-disruption KPIs
