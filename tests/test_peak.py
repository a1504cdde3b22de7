"""The measures of a peak that binds (twin.results.peak), each against a hand count, and the
binding properties of a scaled-down singles_day."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import twin
from twin.results import peak
from twin.results.runs import SimulationResult
from twin.scenario.loader import load_scenario, scale_scenario, validate_scenario
from twin.scenario.schema import Scenario
from twin.sim.records import RECORD_DTYPES, STATUS, orders_frame
from twin.world.network import build_network

NAN = math.nan


def _scenario(*, capacity: int = 2, reefer: int = 1, stock: tuple[int, ...] = (1_000_000,), skus: int = 3,
              rate: float = 6.0, horizon: float = 6.0, drain: float = 20.0, disruptions=(), cold: float = 0.0,
              pack_stations: int = 100, agvs: int = 100) -> Scenario:
    """Warehouses ``w0``, ``w1``... (one per ``stock`` entry, ``w0`` nearest to the one region
    ``r0``), one carrier ``c0`` leaving each every hour from t=1 with room for ``capacity``
    ambient and ``reefer`` cold parcels; deterministic pick (0.01 h a line), pack (0.01 h) and
    transit (2 h); ``rate`` one-line orders an hour, a third express (promise 3 h)."""
    def warehouse(i: int, units: int) -> dict:
        return {"name": f"w{i}", "lat": 30.0, "lon": 110.0 + 3 * i, "cold_storage": True,
                "pick": {"agvs": agvs, "lines_per_agv_h": 100, "pick_time": "deterministic"},
                "pack": {"stations": pack_stations, "time_h": 0.01, "distribution": "deterministic"},
                "stock": {"units_per_sku": units}}

    doc = {"name": "tiny", "horizon_h": horizon, "drain_h": drain, "tick_h": 1.0,
           "warehouses": [warehouse(i, u) for i, u in enumerate(stock)],
           "regions": [{"name": "r0", "lat": 30.0, "lon": 110.0, "weight": 1.0}],
           "carriers": [{"name": "c0", "departure_interval_h": 1.0, "first_departure_h": 1.0, "capacity": capacity,
                         "reefer_capacity": reefer, "transit": {"base_h": 2.0, "distribution": "deterministic"},
                         "cost": {"per_parcel": 5.0, "per_km": 0.0, "reefer_surcharge": 10.0},
                         "co2": {"per_parcel_kg": 0.5, "per_km_kg": 0.0}}],
           "demand": {"base_rate_per_h": rate, "lines_per_order": 1.0, "cold_chain_share": cold,
                      "skus": {"count": skus, "cold_share": 0.34 if cold else 0.0},
                      "service_levels": {"express": {"share": 1 / 3, "promise_h": 3.0},
                                         "standard": {"share": 2 / 3, "promise_h": 48.0}}},
           "replenishment": {"mode": "none"},
           "disruptions": list(disruptions),
           "policy": {"routing": {"name": "nearest_with_stock", "allow_split": True}}}
    return validate_scenario(doc, "tiny")


def _result(sc: Scenario, rows: list[dict], timeseries: pd.DataFrame | None = None,
            kpis: dict | None = None) -> SimulationResult:
    """A result whose records are ``rows`` (one dict per shipment; missing times NaN)."""
    net = build_network(sc)
    defaults = {"shipment_id": 0, "region": 0, "warehouse": 0, "carrier": 0, "status": STATUS["delivered"],
                "cold_chain": False, "service_level": 1, "lines": 1, "created_at": 0.0, "routed_at": 0.0,
                "pick_start": NAN, "pick_end": NAN, "shipped_at": NAN, "delivered_at": NAN, "promised_at": 48.0,
                "cost": 0.0, "co2_kg": 0.0}
    col = {k: np.array([{**defaults, **r}[k] for r in rows], dtype=t) for k, t in RECORD_DTYPES.items()}
    orders = orders_frame(col, net, sc.horizon_h + sc.drain_h)
    ts = timeseries if timeseries is not None else pd.DataFrame({"time_h": [1.0]})
    return SimulationResult(sc, 0, "kernel", kpis or {}, orders, ts)


# --------------------------------------------------------------------------- by hand
def test_saturated_hours_count_ticks_at_or_above_the_threshold() -> None:
    sc = _scenario(stock=(10, 10))
    # ticks of 1 h, the last one 0.5 h: w0 at >= 0.95 in the ticks ending 2, 3 and 4.5 (2.5 h);
    # w1's 0.9499 is below, NaN (no capacity) never counts
    ts = pd.DataFrame({"time_h": [1.0, 2.0, 3.0, 4.0, 4.5],
                       "utilization[w0]": [0.5, 0.95, 1.0, 0.94, 0.99],
                       "utilization[w1]": [0.9499, NAN, 1.0, 1.0, 0.2]})
    res = _result(sc, [{"order_id": 0}], timeseries=ts)
    assert peak.saturated_hours(res) == {"w0": 2.5, "w1": 2.0}
    assert peak.saturated_hours(res, threshold=0.9) == {"w0": 3.5, "w1": 3.0}
    assert peak.saturated_hours(res, window=(2.0, 4.0)) == {"w0": 1.0, "w1": 2.0}  # ticks ending 3 and 4


def test_departures_count_loads_and_fullness_by_hand() -> None:
    """Capacity 2 ambient + 1 reefer per hourly departure from t=1, 20 h drain after a 6 h
    horizon: departures at 1, 2, ..., 25. Shipments: two ambient at t=1 (full), one ambient and
    one cold at 2 (full by reefer), one ambient at 3 (not full), none later."""
    sc = _scenario()
    rows = [{"order_id": 0, "shipped_at": 1.0}, {"order_id": 1, "shipped_at": 1.0},
            {"order_id": 2, "shipped_at": 2.0}, {"order_id": 3, "shipped_at": 2.0, "cold_chain": True},
            {"order_id": 4, "shipped_at": 3.0}, {"order_id": 5, "status": STATUS["lost"], "warehouse": -1,
                                                 "carrier": -1}]
    d = peak.departures(_result(sc, rows))
    assert list(d.columns) == peak.DEPARTURE_COLUMNS
    assert d["time_h"].tolist() == [float(t) for t in range(1, 26)]
    assert d["ambient"].tolist()[:4] == [2, 1, 1, 0] and d["reefer"].tolist()[:4] == [0, 1, 0, 0]
    assert d["ambient"].sum() == 4 and d["reefer"].sum() == 1
    assert (d["ambient_capacity"] == 2).all() and (d["reefer_capacity"] == 1).all()
    assert d["full"].tolist()[:3] == [True, True, False] and d["full"].sum() == 2
    res = _result(sc, rows)
    assert peak.full_departure_share(res) == pytest.approx(2 / 25)
    assert peak.full_departure_share(res, window=(1.0, 3.0)) == 1.0  # departures at 1 and 2
    assert peak.full_departure_share(res, window=(2.0, 6.0)) == 0.25  # 2, 3, 4, 5: one full


def test_departures_honour_capacity_losses_and_outages() -> None:
    """Half of c0's room is lost in [2, 4): capacity int(2 * 0.5) = 1, reefer int(1 * 0.5) = 0
    (a compartment with no room never makes a departure full); a second loss of 0.5 in [3, 5)
    compounds (int(2 * 0.25) = 0 at t=3). w0 is down in [5, 7): its departures at 5 and 6 do not
    run. One ambient parcel at 2 fills the 1-parcel departure."""
    sc = _scenario(disruptions=[
        {"type": "carrier_capacity_loss", "carrier": "c0", "fraction": 0.5, "start_h": 2.0, "end_h": 4.0},
        {"type": "carrier_capacity_loss", "carrier": "c0", "fraction": 0.5, "start_h": 3.0, "end_h": 5.0},
        {"type": "warehouse_outage", "warehouse": "w0", "start_h": 5.0, "end_h": 7.0}])
    d = peak.departures(_result(sc, [{"order_id": 0, "shipped_at": 2.0}]), window=(1.0, 9.0))
    assert d["time_h"].tolist() == [1.0, 2.0, 3.0, 4.0, 7.0, 8.0]
    assert d["ambient_capacity"].tolist() == [2, 1, 0, 1, 2, 2]
    assert d["reefer_capacity"].tolist() == [1, 0, 0, 0, 1, 1]
    assert d["full"].tolist() == [False, True, False, False, False, False]


def test_rolled_parcels_by_hand() -> None:
    """Ready (pick end + 0.01 h pack) at 0.5 -> first departure 1: shipped at 1 is not rolled, at
    2 is. Ready at 1.995 -> departure 2 (not rolled at 2, rolled at 3). Never shipped or never
    picked: not rolled."""
    sc = _scenario()
    rows = [{"order_id": 0, "pick_end": 0.49, "shipped_at": 1.0},
            {"order_id": 1, "pick_end": 0.49, "shipped_at": 2.0},
            {"order_id": 2, "pick_end": 1.985, "shipped_at": 2.0},
            {"order_id": 3, "pick_end": 1.985, "shipped_at": 3.0},
            {"order_id": 4, "pick_end": 3.2},
            {"order_id": 5}]
    res = _result(sc, rows)
    np.testing.assert_allclose(peak.pack_end(res)[:4], [0.5, 0.5, 1.995, 1.995])
    assert peak.rolled(res).tolist() == [False, True, False, True, False, False]


def test_pack_end_replays_a_busy_pack_queue() -> None:
    """One pack station, 0.01 h each: shipments leaving picking at 0.5, 0.5, 0.5 and 0.525 pack
    until 0.51, 0.52, 0.53 and 0.54 (the last waits for the third)."""
    sc = _scenario(pack_stations=1)
    res = _result(sc, [{"order_id": i, "pick_end": t} for i, t in enumerate([0.5, 0.5, 0.5, 0.525])])
    np.testing.assert_allclose(peak.pack_end(res), [0.51, 0.52, 0.53, 0.54])


def test_split_express_on_time_and_objective_by_hand() -> None:
    """Four orders: 0 split in two shipments (delivered at 2 and 5; express, promised 4: late),
    1 express delivered at 3 (promised 4: on time), 2 standard still in flight (late), 3 lost.
    Cost 5 + 6 + 7 + 8 = 26 CNY, CO2 1 + 1 + 1 + 1 = 4 kg: objective (26 + 50 x 2 late + 100 x
    1 lost + 4) / 4 orders = 57.5 CNY per order."""
    sc = _scenario(stock=(10, 10))
    d, lost = STATUS["delivered"], STATUS["lost"]
    rows = [{"order_id": 0, "shipment_id": 0, "service_level": 0, "delivered_at": 2.0, "promised_at": 4.0,
             "cost": 5.0, "co2_kg": 1.0, "status": d},
            {"order_id": 0, "shipment_id": 1, "service_level": 0, "delivered_at": 5.0, "promised_at": 4.0,
             "cost": 6.0, "co2_kg": 1.0, "warehouse": 1, "status": d},
            {"order_id": 1, "shipment_id": 2, "service_level": 0, "delivered_at": 3.0, "promised_at": 4.0,
             "cost": 7.0, "co2_kg": 1.0, "status": d},
            {"order_id": 2, "shipment_id": 3, "service_level": 1, "status": STATUS["in_transit"], "cost": 8.0,
             "co2_kg": 1.0},
            {"order_id": 3, "shipment_id": -1, "service_level": 1, "status": lost, "warehouse": -1, "carrier": -1}]
    res = _result(sc, rows)
    assert peak.split_rate(res) == pytest.approx(1 / 3)  # served orders 0, 1, 2; order 0 split
    assert peak.express_on_time_rate(res) == 0.5
    assert peak.express_on_time_rate(res, "standard") == 0.0
    assert peak.objective(res) == pytest.approx((26 + 50 * 2 + 100 + 4) / 4)
    from twin.world.costs import ObjectiveWeights

    assert peak.objective(res, ObjectiveWeights(late_penalty_cny=0, lost_penalty_cny=0)) == pytest.approx(30 / 4)
    with pytest.raises(ValueError, match="level 'sameday' is not a service level of tiny; allowed: express, "
                                         "standard"):
        peak.express_on_time_rate(res, "sameday")


# --------------------------------------------------------------------------- on tiny runs
@pytest.mark.parametrize("engine", ["simpy", "kernel"])
def test_every_departure_of_a_flooded_dock_is_full(engine: str) -> None:
    """60 orders an hour against 2 parcels a departure: from the first departure until the dock
    has drained, every departure leaves with exactly 2; the loads sum to the shipments; a
    parcel is rolled iff it left later than the first departure after its pack end (checked
    one by one)."""
    sc = _scenario(rate=60.0, reefer=0, drain=400.0)
    res = twin.simulate(sc, seed=1, engine=engine)
    o = res.orders
    shipped = o["shipped_at"].dropna().to_numpy()
    d = peak.departures(res)
    assert d["ambient"].sum() == len(shipped)
    busy = d[d["time_h"] <= shipped.max()]
    assert (busy["ambient"] == 2).all() and busy["full"].all()
    assert not d[d["time_h"] > shipped.max()]["full"].any()
    assert peak.full_departure_share(res) == pytest.approx(len(busy) / len(d))
    ready = o["pick_end"].to_numpy() + 0.01
    expect = [bool(s > math.ceil(r - 1e-9)) if not math.isnan(s) else False
              for r, s in zip(ready, o["shipped_at"].to_numpy())]
    assert peak.rolled(res).tolist() == expect
    assert sum(expect) > len(shipped) // 2  # most of them waited


@pytest.mark.parametrize("engine", ["simpy", "kernel"])
def test_saturated_hours_of_an_overloaded_warehouse(engine: str) -> None:
    """One AGV picking 100 lines an hour against 300 orders an hour for 6 h: busy every tick
    until the queue (~1,200 shipments) is gone, ~18 h; the time series' utilisation and the
    records agree."""
    sc = _scenario(rate=300.0, agvs=1, capacity=1000)
    res = twin.simulate(sc, seed=2, engine=engine)
    last_pick = float(res.orders["pick_end"].max())
    hours = peak.saturated_hours(res)["w0"]
    assert math.floor(last_pick) - 1 <= hours <= math.ceil(last_pick)
    assert hours > 15


@pytest.mark.parametrize("engine", ["simpy", "kernel"])
def test_watch_stock_finds_each_warehouse_running_out(engine: str) -> None:
    """One SKU, 3 units at w0 (nearest), 4 at w1, no replenishment: orders 1-3 go to w0, 4-7 to
    w1, the rest are lost. w0 runs out at the end of the tick of the 3rd order, w1 of the 7th."""
    sc = _scenario(stock=(3, 4), skus=1, rate=4.0)
    watch = peak.watch_stock(sc, seed=3, engine=engine)
    res = twin.simulate(sc, seed=3, engine=engine)
    t = res.orders.sort_values("created_at")
    served = t[t["status"] != "lost"]
    assert len(served) == 7 and served["warehouse"].astype(str).tolist() == ["w0"] * 3 + ["w1"] * 4
    created = served["created_at"].to_numpy()
    end = sc.horizon_h + sc.drain_h
    out0, out1 = math.ceil(created[2]), math.ceil(created[6])
    np.testing.assert_array_equal(watch.first_out_h, [[out0], [out1]])
    np.testing.assert_array_equal(watch.hours_out, [[end - out0], [end - out1]])
    table = watch.table()
    assert table[["warehouse", "sku", "rank"]].values.tolist() == [["w0", 0, 0], ["w1", 0, 0]]
    assert watch.count() == watch.count(top=1) == 2 and watch.sites() == ["w0", "w1"]


def test_watch_stock_counts_only_stock_a_warehouse_carries() -> None:
    """Plenty of stock: nothing runs out; a SKU a warehouse never carried (sku_fraction) is not
    a stockout."""
    sc = load_scenario(_scenario(skus=4), {"warehouses.w0.stock.sku_fraction": 0.5})
    watch = peak.watch_stock(sc, seed=0, engine="simpy")
    assert watch.initial.tolist() == [[1_000_000, 1_000_000, 0, 0]]
    assert watch.count() == 0 and np.isnan(watch.first_out_h).all() and (watch.hours_out == 0).all()
    assert watch.rank.tolist() == [0, 1, 2, 3]


# --------------------------------------------------------------------------- singles_day binds
SCALE = 0.1  # demand, AGVs, pack stations, carrier capacities and stock scaled together
CHEAPEST = {"policy.routing.name": "cheapest"}


def _small(name: str, overrides: dict | None = None) -> Scenario:
    return scale_scenario(load_scenario(name, overrides), SCALE)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_singles_day_binds(seed: int) -> None:
    """singles_day scaled to 10% (its loads stay those of the full size) with its own routing:
    at least three warehouses spend >= 6 h at pick utilisation >= 0.95, at least 20% of 11 Nov's
    departures leave full, parcels roll, hot SKUs stock out at some sites, some orders split,
    and express promises are missed."""
    sc = _small("singles_day")
    res = twin.simulate(sc, seed=seed)
    b = peak.binding(res, window=(24.0, 48.0), stock=peak.watch_stock(sc, seed=seed), top=20)
    assert b["warehouses_saturated_6h"] >= 3, b["saturated_hours"]
    assert b["full_departure_share"] >= 0.20
    assert b["rolled"] > 0
    assert b["hot_stockouts"] > 0 and 0 < len(b["stockout_sites"]) <= len(sc.warehouses)
    assert b["split_rate"] > 0 and b["split_rate"] == pytest.approx(res.kpis["split_rate"])
    assert b["express_on_time_rate"] < 0.97


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cheapest_on_singles_day_is_later_and_dearer_than_on_baseline(seed: int) -> None:
    peak_day = twin.simulate(_small("singles_day", CHEAPEST), seed=seed).kpis
    ordinary = twin.simulate(_small("baseline", CHEAPEST), seed=seed).kpis
    assert peak_day["on_time_rate"] < ordinary["on_time_rate"]
    assert peak_day["cost_per_order"] > ordinary["cost_per_order"]


def test_each_disruption_costs_cheapest_at_least_five_percent() -> None:
    """Each disruption scenario is singles_day plus one event; with cheapest routing its objective
    per order is >= 5% above singles_day's on every one of three seeds (paired by seed)."""
    base = load_scenario("singles_day")
    for name in ("warehouse_outage", "carrier_capacity_loss", "cold_chain_failure", "typhoon"):
        sc = load_scenario(name)
        assert sc.warehouses == base.warehouses and sc.carriers == base.carriers and sc.demand == base.demand
        for seed in range(3):
            plain = peak.objective(twin.simulate(_small("singles_day", CHEAPEST), seed=seed))
            hit = peak.objective(twin.simulate(_small(name, CHEAPEST), seed=seed))
            assert hit >= 1.05 * plain, (name, seed, hit, plain)
